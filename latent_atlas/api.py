"""The functions a notebook needs, each one call into the library below.

import latent_atlas as la
vae = la.load(la.shipped() / "vae")                       # .encode, .decode, .latent_dim
grid = la.decode_grid(vae, steps=21)                      # grid.cells: [21, 21, 1, 28, 28]
[result] = la.analyze([vae])                              # result.metrics: typed numbers
la.write_report("reports", [vae, la.shipped() / "ae"], labels=["VAE", "AE"])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from latent_atlas.display import Grid, Report
from latent_atlas.pipeline import AnalysisConfig, Cache, ModelAnalysis, analyze_model
from latent_atlas.runs import ComparisonConfig, run_comparison
from latent_atlas.shipped import shipped_classifier
from latent_atlas.toolkit.data import ImageDataset, load_dataset
from latent_atlas.toolkit.grid import GridSpec
from latent_atlas.toolkit.grid import decode_grid as _decode_grid
from latent_atlas.toolkit.runtime import Model
from latent_atlas.toolkit.runtime import load as _load

__all__ = ["analyze", "decode_grid", "load", "load_dataset", "write_report"]

ModelSource = str | Path | Model


def load(source: str | Path, provider: str = "auto", threads: int = 0) -> Model:
    """A model from a folder (``decoder.onnx``, with ``encoder.onnx`` when there is one) or a
    decoder ``.onnx`` file: ``.encode(images)``, ``.decode(z)``, ``.latent_dim``,
    ``.image_shape``; hashes checked against its manifest.json. See docs/models.md."""
    return _load(Path(source), provider, threads)


def _model(m: ModelSource) -> Model:
    return m if isinstance(m, Model) else load(m)


def decode_grid(
    model: ModelSource,
    steps: int | tuple[int, int] = 21,
    value_range: tuple[float, float] = (-4.0, 4.0),
    mode: str = "linear",
    plane: str = "axes",
    axes: tuple[int, int] = (0, 1),
    data: ImageDataset | None = None,
    batch_size: int = 4096,
) -> Grid:
    """Decode a latent grid: ``.cells`` is a numpy array ``[ny, nx, C, H, W]`` in [0, 1]
    (``cells[i, j]`` decoded at ``x[j], y[i]`` on ``.plane``), ``.x``/``.y`` the coordinates.
    ``mode="auto"``, ``plane="pca"`` and the embedding mean for the other dims of a model with
    more than two need the test set: ``data`` (default: the default dataset). In a notebook
    it shows its mosaic."""
    m = _model(model)
    nx, ny = (steps, steps) if isinstance(steps, int) else steps
    spec = GridSpec(steps=(nx, ny), x_range=value_range, y_range=value_range, mode=mode,
                    plane=plane, axes=axes)  # fmt: skip
    embeddings = None
    if m.encoder is not None and (mode == "auto" or plane == "pca" or m.latent_dim > 2):
        embeddings = m.encode((data or load_dataset(train=False)).test.images, batch_size)
    return Grid.of(_decode_grid(m.decoder, spec, embeddings, batch_size, cell_px=m.image_shape[2]))


def analyze(
    models: Sequence[ModelSource],
    data: ImageDataset | None = None,
    classifier: str | Path | None = "auto",
    config: AnalysisConfig | None = None,
) -> list[ModelAnalysis]:
    """Every metric of each model on the test split: ``result[i].metrics`` (typed; its
    ``to_json()`` is what metrics.json holds), plus the arrays behind the figures
    (``.embeddings``, ``.grids``). ``classifier``: a file, None, or "auto" (the shipped
    classifier for the dataset when there is one)."""
    data = data or load_dataset(train=False)
    clf = shipped_classifier(data.name) if classifier == "auto" else classifier
    cfg = config or AnalysisConfig()
    cache = Cache()
    return [analyze_model(_model(m), Path(clf) if clf else None, data, cfg, cache) for m in models]


def write_report(
    out: str | Path,
    models: Sequence[str | Path],
    labels: Sequence[str] = (),
    classifier: str | Path | None = "auto",
    name: str = "report",
    data: str | Path | None = None,
    study: str | None = None,
    config: AnalysisConfig | None = None,
) -> Report:
    """Compare two or more models and write ``out/name/`` (report.html, report.md,
    metrics.json); returns that folder (a Path that shows the verdicts in a notebook)."""
    cfg = ComparisonConfig(
        name=name, models=tuple(Path(m) for m in models), labels=tuple(labels),
        classifier=Path(classifier) if isinstance(classifier, str | Path) and classifier != "auto"
        else classifier, data=data, study=study, analysis=config or AnalysisConfig(),
    )  # fmt: skip
    folder = Path(out) / name
    run_comparison(cfg, folder)
    return Report(folder)
