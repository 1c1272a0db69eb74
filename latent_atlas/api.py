"""The functions a notebook needs, each one call into the library below.

import latent_atlas as la
vae = la.load(la.shipped() / "vae")                       # .encode, .decode, .latent_dim
grid = la.decode_grid(vae, steps=21)                      # grid.cells: [21, 21, 1, 28, 28]
[result] = la.analyze([vae])                              # result.metrics: typed numbers
la.write_report("reports", [vae, la.shipped() / "ae"], labels=["VAE", "AE"])
mag = la.magnification(vae, [[0, 0], [1, 2]])             # √det JᵀJ at two codes
path = la.geodesic(vae, [-2, 0], [2, 1])                  # .points, .images, .length
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from latent_atlas.analysis import geometry as geo
from latent_atlas.analysis.dimensions import DimensionDiagnostics
from latent_atlas.display import Grid, Report
from latent_atlas.geometry import Geodesic, GeodesicConfig
from latent_atlas.geometry import geodesic as _geodesic
from latent_atlas.pipeline import AnalysisConfig, Cache, ModelAnalysis, analyze_model
from latent_atlas.runs import ComparisonConfig, run_comparison
from latent_atlas.shipped import shipped_classifier
from latent_atlas.toolkit.data import ImageDataset, load_dataset
from latent_atlas.toolkit.grid import GridSpec
from latent_atlas.toolkit.grid import decode_grid as _decode_grid
from latent_atlas.toolkit.jacobian import jacobian as _jacobian
from latent_atlas.toolkit.runtime import Model, OnnxModel
from latent_atlas.toolkit.runtime import load as _load
from latent_atlas.traversals import Interpolation, TraversalResult

__all__ = [
    "analyze",
    "decode_grid",
    "dimensions",
    "geodesic",
    "interpolate",
    "jacobian",
    "load",
    "load_dataset",
    "magnification",
    "traverse",
    "write_report",
]

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
    plane: str = "active",
    axes: tuple[int, int] = (0, 1),
    data: ImageDataset | None = None,
    batch_size: int = 4096,
    images: tuple[int, int, int] | None = None,
) -> Grid:
    """Decode a latent grid: ``.cells`` is a numpy array ``[ny, nx, C, H, W]`` in [0, 1]
    (``cells[i, j]`` decoded at ``x[j], y[i]`` on ``.plane``), ``.x``/``.y`` the coordinates.
    ``mode="auto"``, ``plane="pca"`` and the embedding mean for the other dims of a model with
    more than two need the test set: ``data`` (default: the default dataset). ``plane``:
    "active" (the two most varied dims), "axes" (``axes``, from 0), "pca", or "images" with
    ``images=(A, B, C)``: the plane through those test images' embeddings (``.plane.marks``
    holds their plane coordinates). In a notebook it shows its mosaic."""
    m = _model(model)
    nx, ny = (steps, steps) if isinstance(steps, int) else steps
    spec = GridSpec(steps=(nx, ny), x_range=value_range, y_range=value_range, mode=mode,
                    plane=plane, axes=axes, images=tuple(images or ()))  # fmt: skip
    embeddings = None
    if m.encoder is not None and (mode == "auto" or plane in ("pca", "images")
                                  or m.latent_dim > 2):  # fmt: skip
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


def jacobian(model: ModelSource, points: ArrayLike, precision: str = "auto") -> np.ndarray:
    """The decoder's Jacobian at each code, by central finite differences through onnxruntime.

    Parameters
    ----------
    model : str, Path or Model
        A model folder, a decoder ``.onnx`` file, or a loaded model.
    points : array_like [N, latent_dim]
        Latent codes.
    precision : {"auto", "float64", "float32"}
        ``auto``: the decoder's graph widened to float64 where onnxruntime has the kernels
        (exact to ~1e-8 even for ReLU decoders), else the float32 graph (see
        ``latent_atlas.toolkit.jacobian`` for the step rule and its errors).

    Returns
    -------
    numpy.ndarray [N, pixels, latent_dim], float32
        ``∂f/∂z``, pixels = C·H·W in the image's ``[C, H, W]`` order, per latent unit.
    """
    m = _model(model)
    return _jacobian(m, np.asarray(points), precision=precision)[1]


def magnification(model: ModelSource, points: ArrayLike, precision: str = "auto") -> np.ndarray:
    """The magnification factor ``√det(JᵀJ)`` at each code: how much image-space volume
    (all pixel values, image units) one unit of latent volume maps to (Bishop, Svensén &
    Williams 1997; Arvanitidis, Hansen & Hauberg 2018).

    Parameters
    ----------
    model : str, Path or Model
    points : array_like [N, latent_dim]
    precision : {"auto", "float64", "float32"}

    Returns
    -------
    numpy.ndarray [N], float64, >= 0
        Scaling the latent by ``s`` divides it by ``s^latent_dim``.
    """
    jac = jacobian(model, points, precision)
    return geo.magnification(geo.pullback_metric(jac))


def geodesic(
    model: ModelSource,
    z0: ArrayLike,
    z1: ArrayLike,
    graph_steps: int = 64,
    neighbours: int = 8,
    points: int = 32,
    value_range: tuple[float, float] = (-4.0, 4.0),
) -> Geodesic:
    """The shortest path from ``z0`` to ``z1`` under the decoder's pullback metric.

    A 2-D latent space starts from Dijkstra on a ``graph_steps²`` grid over ``value_range``
    (edge weight: the distance between the two decoded images; Chen et al. 2018), then
    refines a ``points``-point polyline to least curve energy (Arvanitidis et al. 2018). A
    latent space of more than two dims is refined from the straight line, in all dims.

    Returns
    -------
    Geodesic
        ``.points`` ``[points, latent_dim]``, ``.images`` ``[points, C, H, W]``, ``.length``
        and ``.straight_length``: the curve's and the straight segment's length in image
        space, ``Σ‖f(z_{i+1}) − f(z_i)‖₂`` over all pixel values, unnormalised; ``.ratio``.
    """
    cfg = GeodesicConfig(graph_steps=graph_steps, neighbours=neighbours, points=points)
    return _geodesic(_model(model), z0, z1, cfg, value_range=value_range)


def _classifier(
    classifier: str | Path | None, data: ImageDataset, model: Model
) -> OnnxModel | None:
    from latent_atlas.shipped import resolve_classifier
    from latent_atlas.traversals import open_classifier

    path = resolve_classifier(classifier, data.name, data.sha256, [model.folder])
    return open_classifier(path, data)


def dimensions(
    model: ModelSource, data: ImageDataset | None = None, threshold: float = 0.01
) -> DimensionDiagnostics:
    """Which latent dims ``model`` uses, over the test set of ``data`` (default: the default
    dataset): ``.variance`` per dim (of the posterior means), ``.order`` (largest first),
    ``.active`` (variance > ``threshold``, Burda et al. 2016), ``.kl`` per dim (nats; None
    without a ``logvar`` encoder output). Dims are numbered from 0."""
    from latent_atlas.traversals import diagnose

    return diagnose(_model(model), data or load_dataset(train=False), threshold).diagnostics


def traverse(
    model: ModelSource,
    data: ImageDataset | None = None,
    classifier: str | Path | None = "auto",
    k: int = 8,
    steps: int = 11,
    base: str | int = "mean",
    dims: Sequence[int] = (),
    threshold: float = 0.01,
) -> TraversalResult:
    """Latent traversals: for the ``k`` most active dims (or ``dims``), ``steps`` images over
    the test embeddings' 1st–99th percentile of that dim, the others at ``base`` ("mean" or a
    test image's index). ``.traversal.images`` ``[k, steps, C, H, W]``, ``.traversal.values``,
    ``.metrics`` (change per dim, the classifier's labels and confidences)."""
    from latent_atlas.toolkit.traversal import TraversalSpec
    from latent_atlas.traversals import traverse as _traverse

    m = _model(model)
    data = data or load_dataset(train=False)
    spec = TraversalSpec(k=k, steps=steps, base=base, dims=tuple(dims))
    return _traverse(m, data, spec, _classifier(classifier, data, m), threshold)


def interpolate(
    model: ModelSource,
    a: int,
    b: int,
    steps: int = 11,
    data: ImageDataset | None = None,
    classifier: str | Path | None = "auto",
    geodesic: bool = False,
) -> Interpolation:
    """The straight line between the codes of test images ``a`` and ``b``, decoded:
    ``.images`` ``[steps, C, H, W]``, ``.t`` from 0 to 1, ``.logits`` with a classifier.
    With ``geodesic``, also ``.geodesic``: the geodesic between the two codes on the plane
    through them and the test codes' mean (see :func:`geodesic`), at ``steps`` points, with
    ``.length`` and ``.straight_length`` in image space."""
    from latent_atlas.traversals import interpolate as _interpolate

    m = _model(model)
    data = data or load_dataset(train=False)
    return _interpolate(m, data, a, b, steps, _classifier(classifier, data, m),
                        geodesic=geodesic)  # fmt: skip
