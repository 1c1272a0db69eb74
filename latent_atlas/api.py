"""The functions a notebook needs, each one call into the runners below it."""

from __future__ import annotations

from pathlib import Path

from latent_atlas.pipeline import AnalysisConfig, Cache, ModelAnalysis, analyze_model
from latent_atlas.runs import ComparisonConfig, run_comparison
from latent_atlas.shipped import shipped
from latent_atlas.toolkit.data import FashionMNIST, load_fashion_mnist
from latent_atlas.toolkit.grid import DecodedGrid, GridSpec
from latent_atlas.toolkit.grid import decode_grid as _decode_grid
from latent_atlas.toolkit.runtime import ModelPair

__all__ = ["analyze", "decode_grid", "load", "load_dataset", "write_report"]

ModelSource = str | Path | ModelPair  # noqa: UP040 (a plain alias: mypy reads it)


def load(path: str | Path, provider: str = "auto", threads: int = 0) -> ModelPair:
    """Load a model folder (``encoder.onnx`` + ``decoder.onnx``): ``.encode(images)``,
    ``.decode(z)``, ``.latent_dim``, ``.image_shape``; hashes checked against its manifest."""
    return ModelPair.from_dir(Path(path), provider, threads)


def load_dataset(source: str | Path | None = None) -> FashionMNIST:
    """The dataset at ``source`` (default: Debian's Fashion-MNIST)."""
    return load_fashion_mnist(source)


def decode_grid(
    model: ModelSource,
    steps: int | tuple[int, int] = 21,
    value_range: tuple[float, float] = (-4.0, 4.0),
    mode: str = "linear",
    batch_size: int = 4096,
) -> DecodedGrid:
    """Decode a latent grid: ``.cells`` is a numpy array ``[ny, nx, H, W]`` in [0, 1]
    (``cells[i, j]`` decoded at ``z₁ = x[j], z₂ = y[i]``), ``.x``/``.y`` the coordinates."""
    pair = model if isinstance(model, ModelPair) else load(model)
    nx, ny = (steps, steps) if isinstance(steps, int) else steps
    spec = GridSpec(steps=(nx, ny), x_range=value_range, y_range=value_range, mode=mode)
    embeddings = None
    if mode == "auto":
        embeddings = pair.encoder(load_dataset().test.float_images(), batch_size)
    return _decode_grid(pair.decoder, spec, embeddings, batch_size, cell_px=28)


def analyze(
    models: list[ModelSource],
    data: FashionMNIST | None = None,
    classifier: str | Path | None = None,
    config: AnalysisConfig | None = None,
) -> list[ModelAnalysis]:
    """Every metric of each model on the test split: ``result[i].metrics`` (a JSON-ready dict),
    plus the arrays behind the figures (``.embeddings``, ``.grids``)."""
    data = data or load_dataset()
    classifier = Path(classifier or shipped() / "classifier" / "classifier.onnx")
    cfg = config or AnalysisConfig()
    cache = Cache()
    out = []
    for m in models:
        if isinstance(m, ModelPair):
            cache.pairs[str(m.folder.resolve())] = m
            folder = m.folder
        else:
            folder = Path(m)
        out.append(analyze_model(folder, classifier, data, cfg, cache))
    return out


def write_report(
    out: str | Path,
    model_a: str | Path,
    model_b: str | Path,
    labels: tuple[str, str] = ("A", "B"),
    classifier: str | Path | None = None,
    name: str = "report",
    config: AnalysisConfig | None = None,
) -> Path:
    """Compare two models and write ``out/name/`` (report.html, report.md, metrics.json)."""
    cfg = ComparisonConfig(
        name=name, model_a=Path(model_a), model_b=Path(model_b),
        classifier=Path(classifier or shipped() / "classifier" / "classifier.onnx"),
        label_a=labels[0], label_b=labels[1], analysis=config or AnalysisConfig(),
    )  # fmt: skip
    folder = Path(out) / name
    run_comparison(cfg, folder)
    return folder
