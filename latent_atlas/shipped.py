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
