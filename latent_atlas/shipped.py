"""Where the shipped models are: ``artifacts/`` in the repository, installed as the package data
``latent_atlas.artifacts`` (so a wheel carries them and an editable install points at the
repository's folder)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def shipped(dataset: str = "fashion-mnist") -> Path:
    """The folder of the shipped models trained on ``dataset`` (``vae/``, ``ae/``,
    ``classifier/``, ``manifest.json``)."""
    return Path(str(files("latent_atlas.artifacts"))) / dataset


def shipped_classifier(dataset: str) -> Path | None:
    """The shipped classifier for a dataset (by its name), if there is one."""
    root = Path(str(files("latent_atlas.artifacts")))
    if dataset not in {p.name for p in root.iterdir() if p.is_dir()}:
        return None  # only the shipped datasets' own folders, whatever the name holds
    path = root / dataset / "classifier" / "classifier.onnx"
    return path if path.is_file() else None
