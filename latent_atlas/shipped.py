"""Where the shipped models are: ``artifacts/`` in the repository, installed as the package data
``latent_atlas.artifacts`` (so a wheel carries them and an editable install points at the
repository's folder)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path


def _artifacts() -> Path:
    return Path(str(files("latent_atlas.artifacts")))


def _model_folder(model: Path | str) -> Path:
    """The folder of a model given as a folder or as one of its files."""
    return Path(model) if Path(model).is_dir() else Path(model).parent


def shipped(dataset: str = "fashion-mnist") -> Path:
    """The folder of the shipped models trained on ``dataset`` (``vae/``, ``ae/``,
    ``classifier/``, ``manifest.json``)."""
    return _artifacts() / dataset


def shipped_classifier(dataset: str) -> Path | None:
    """The shipped classifier for a dataset (by its name), if there is one."""
    root = _artifacts()
    if dataset not in {p.name for p in root.iterdir() if p.is_dir()}:
        return None  # only the shipped datasets' own folders, whatever the name holds
    path = root / dataset / "classifier" / "classifier.onnx"
    return path if path.is_file() else None


def classifier_beside(models: Sequence[Path], dataset_sha256: str) -> Path | None:
    """``classifier/classifier.onnx`` in the artifact folder of one of ``models`` (a model
    folder's parent, as `latent-atlas export` lays them out), if its metadata says it was
    trained on the data of that sha256; None otherwise."""
    for model in models:
        path = _model_folder(model).parent / "classifier" / "classifier.onnx"
        if path.is_file() and path.stat().st_size < 2**30 and _trained_on(path) == dataset_sha256:
            return path
    return None


LAYOUT_FILES = ("encoder.onnx", "decoder.onnx", "classifier.onnx")  # as `export` names them


def classifier_file(given: Path | str) -> Path:
    """The classifier file a --classifier path names: a folder holding ``classifier.onnx``
    stands for that file."""
    path = Path(given)
    return path / "classifier.onnx" if (path / "classifier.onnx").is_file() else path


def resolve_classifier(
    classifier: Path | str | None, dataset: str, dataset_sha256: str, models: Sequence[Path]
) -> Path | None:
    """The classifier file for a dataset (its name and sha256): "auto" — the shipped one for a
    shipped dataset, else ``classifier/classifier.onnx`` beside the models when trained on
    this data; None or "none" — none; a path — :func:`classifier_file`."""
    if classifier == "auto":
        return shipped_classifier(dataset) or classifier_beside(models, dataset_sha256)
    if classifier is None or classifier == "none":
        return None
    return classifier_file(classifier)


def input_paths(models: Sequence[Path | str], classifier: object = None) -> list[Path]:
    """What a run reads, as the paths no output may be, hold or lie inside: each model and a
    classifier given by path (a file named as `latent-atlas export` names them —
    ``decoder.onnx``, ``classifier.onnx`` … — stands for its folder too), and with
    ``classifier="auto"`` every classifier it may pick: the shipped ones and ``classifier/``
    beside the models."""
    paths: list[Path] = []
    given = [classifier] if isinstance(classifier, str | Path) and classifier != "auto" else []
    for m in [*models, *given]:
        path = Path(m)
        paths.append(path)
        if path.name in LAYOUT_FILES:  # and, through a link, the folder of the file it names
            paths += [path.parent, path.resolve().parent]
    if classifier == "auto":
        beside = [d / "classifier" for d in _artifacts().iterdir()]
        beside += [_model_folder(m).parent / "classifier" for m in models]
        paths += [d for d in beside if d.is_dir()]
    return paths


def _trained_on(path: Path) -> str | None:
    import onnx  # here, not at the top: `import latent_atlas` stays light

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not a model: then not this data's classifier either
        return None
    return {p.key: p.value for p in model.metadata_props}.get("dataset_sha256")
