"""Typed results of the analysis: plain numbers in dataclasses, one ``to_json`` (rounding in
one place), read back with :func:`from_json`.

A measure that cannot be computed for a model (no encoder, no classifier) is ``None`` and
named in ``ModelMetrics.not_available`` with the reason, never a failure.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from latent_atlas.analysis.dimensions import DimensionDiagnostics

# 12 significant digits: stable across reruns (the BLAS's last bits do not reach them), exact
# enough for every figure the reports quote.
DIGITS = 12


def rounded(value: Any) -> Any:
    """``value`` with every float rounded to :data:`DIGITS` significant digits; non-finite
    floats become ``None`` (JSON null); dataclasses become dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: rounded(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) or hasattr(value, "__float__"):
        v = float(value)
        return float(f"{v:.{DIGITS}g}") if math.isfinite(v) else None
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


class JsonMixin:
    def to_json(self) -> dict[str, Any]:
        out = rounded(self)
        assert isinstance(out, dict)
        return out


def _build(tp: Any, raw: Any) -> Any:
    """Rebuild a (possibly nested, possibly optional) dataclass from its JSON."""
    if raw is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return _build(options[0], raw) if len(options) == 1 else raw
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: _build(hints[f.name], raw[f.name])
                     for f in dataclasses.fields(tp) if f.name in raw})  # fmt: skip
    if origin is dict:
        _, vt = typing.get_args(tp)
        return {k: _build(vt, v) for k, v in raw.items()}
    if origin is list:
        (vt,) = typing.get_args(tp)
        return [_build(vt, v) for v in raw]
    return raw


def from_json(cls: type, raw: dict[str, Any]) -> Any:
    """The dataclass ``cls`` rebuilt from what its ``to_json`` wrote."""
    return _build(cls, raw)


@dataclass
class EmbeddingMetrics(JsonMixin):
    """The test set's codes, measured in the full latent space (``latent_dim`` dims)."""

    latent_dim: int
    knn_accuracy: float  # k-NN classification accuracy, k-fold cross-validated, in [0, 1]
    silhouette: float  # in [-1, 1]
    trustworthiness: float  # in [0, 1]
    mean: list[float]
    std: list[float]
    kl_to_standard_normal: float  # KL(fitted Gaussian ‖ N(0, I)), nats
    centroids: dict[str, list[float]]
    spreads: dict[str, float | None]
    # per class (claims about named classes): the k-NN recall, from the same predictions as
    # knn_accuracy, and the mean silhouette, over the same subset as silhouette; in [0, 1] and
    # [-1, 1]; None for a class with no test point (or none in the subset)
    knn_recall: dict[str, float | None] = field(default_factory=dict)
    silhouette_by_class: dict[str, float | None] = field(default_factory=dict)


@dataclass
class ReconstructionMetrics(JsonMixin):
    mse: float  # per pixel, in [0, 1]
    bce: float  # nats per image
    classifier_accuracy: float | None  # the classifier on reconstructions; None: no classifier


@dataclass
class SampleMetrics(JsonMixin):
    """Fréchet distances between decoded samples and the test set, in the classifier's
    feature space (``feature_source``); the reference is the reconstructions' distance."""

    feature_source: str  # "features ('features')" or "logits"
    classifier_accuracy_test: float
    frechet_standard_normal: float
    frechet_fitted_gaussian: float | None = None  # needs the encoder's embeddings
    frechet_reconstructions: float | None = None  # needs the encoder
    # images decoded from each latent distribution (N(0, I), the fitted Gaussian): the two
    # distances above depend on it (docs/models.md); the reconstructions are the test set
    n_samples: int | None = None


@dataclass
class GradientSummary(JsonMixin):
    mean: float
    p95: float
    max: float
    stark_share: float
    threshold: float


@dataclass
class SeedTopRows(JsonMixin):
    """The seed study drew z₁ = −4 at the top: its "top rows (0–200 px)" are the lowest-y rows."""

    rows: int
    mean_abs_d_dz1: float
    stark_share_d_dz1: float
    max_row_brightness_range: float
    max_abs_d_dz1: float | None = None  # the largest |∂b/∂z₀| in those rows (key: its first name)


@dataclass
class BrightnessMetrics(JsonMixin):
    mean: float
    min: float
    max: float
    gradient: GradientSummary
    seed_top_rows: SeedTopRows


@dataclass
class SmoothnessMetrics(JsonMixin):
    mean: float
    std: float
    p95: float
    max: float


@dataclass
class ClassMetrics(JsonMixin):
    """Who the decoded cells look like. ``source`` says where the class of a cell came from:
    the classifier, or (no classifier) the nearest test-set embeddings in latent space."""

    source: str  # "classifier" | "nearest embeddings"
    shares: dict[str, float]
    classes_present: int
    ambiguous_share: float | None = None  # classifier only
    mean_confidence: float | None = None  # classifier only
    mean_entropy_nats: float | None = None  # classifier only
    knn_agreement: float | None = None  # classifier vs nearest embeddings; needs both
    # per class: the share of its cells in its largest 4-connected region of the class map, in
    # (0, 1]; None for a class absent from the map (claim 2's grid reading)
    contiguity: dict[str, float | None] = field(default_factory=dict)


@dataclass
class AsWrittenMetrics(JsonMixin):
    """The grid as the seed study's loop drew it (``analysis.seed_figure``): one cell per row,
    in column ``column`` (at z₀ = ``z1``: the key keeps its first name), z₁ growing downward,
    every other cell black. Classes are those of the drawn cells; ``top_rows`` is measured on
    the drawn figure's brightness (black cells 0.0), over the same latent rows as the grid's
    ``seed_top_rows``."""

    column: int
    z1: float
    drawn_cells: int
    shares: dict[str, float]
    classes_present: int
    ambiguous_share: float | None  # classifier only
    brightness_top_down: list[float]  # the drawn cells' mean brightness, top of the figure first
    top_rows: SeedTopRows


@dataclass
class GridMetrics(JsonMixin):
    spec: str
    plane: dict[str, Any]
    x_range: list[float]
    y_range: list[float]
    cells: int
    brightness: BrightnessMetrics
    smoothness: SmoothnessMetrics
    classes: ClassMetrics | None  # None: neither a classifier nor an encoder
    embeddings_inside_share: float | None = None  # share of test codes inside the grid
    # the seed's figure as its loop drew it; None for a grid with more rows than columns
    as_written: AsWrittenMetrics | None = None


@dataclass
class GeodesicMetrics(JsonMixin):
    """A geodesic between two test-set class centroids on the first grid's plane: lengths in
    image space (Σ‖f(z_{i+1}) − f(z_i)‖₂ over all pixel values), the straight segment's at
    the same number of points, and geodesic / straight (<= 1)."""

    length: float
    straight_length: float
    ratio: float


@dataclass
class SeparationMetrics(JsonMixin):
    """Geodesic separation of groups of classes (``analysis.geometry.geodesic_separation``):
    mean geodesic distance between their test-set centroids (``between``, image units) over
    the mean geodesic distance of their test codes from their centroid (``within``);
    ``ratio`` is dimensionless; ``points_used`` the share of codes inside the graph's range."""

    between: float
    within: float
    ratio: float
    points_used: float


@dataclass
class GeometryMetrics(JsonMixin):
    """The decoder's pullback metric G = JᵀJ over the first grid (``latent_atlas.geometry``):
    magnification √det G (image units² per plane unit², median and 95th percentile), the
    median condition number of G, and the share of the grid's total image-space length
    in the seed's top ``top_rows`` rows (even stretching: top_rows / ny). ``separation``:
    the geodesic separation of the class groups the seed study names (``named``: Shirt, Coat
    and Ankle boot, each its own group; ``footwear``: Sandal, Sneaker and Ankle boot against
    the rest), on a graph over where the test codes lie."""

    grid: str
    precision: str
    magnification_median: float
    magnification_p95: float
    condition_median: float
    top_rows: int
    top_rows_length_share: float
    geodesics: dict[str, GeodesicMetrics] = field(default_factory=dict)
    separation: dict[str, SeparationMetrics] = field(default_factory=dict)
    grid_rows: int = 0  # the grid's ny (0: not recorded)


@dataclass
class ModelMetrics(JsonMixin):
    """Everything measured about one model; ``not_available`` names what could not be
    measured and why (e.g. ``{"embedding": "no encoder"}``)."""

    embedding: EmbeddingMetrics | None
    reconstruction: ReconstructionMetrics | None
    samples: SampleMetrics | None
    grids: dict[str, GridMetrics]
    not_available: dict[str, str] = field(default_factory=dict)
    geometry: GeometryMetrics | None = None
    # per-dim diagnostics (analysis.dimensions) of a model of more than two dims with an
    # encoder; absent from the JSON otherwise
    dimensions: DimensionDiagnostics | None = None

    def to_json(self) -> dict[str, Any]:
        out = rounded(self)
        assert isinstance(out, dict)
        if out["dimensions"] is None:
            del out["dimensions"]
        return out


@dataclass
class Provenance(JsonMixin):
    source: str
    kind: str
    latent_dim: int
    image_shape: list[int]
    provider: str
    decoder_sha256: str
    encoder_sha256: str | None
    classifier_sha256: str | None


@dataclass(frozen=True)
class KeyMetric:
    """A headline measure: its label, how to read it from a model's metrics, and which way
    is better."""

    label: str
    key: str  # dotted path in ModelMetrics.to_json(), as in metrics.json
    higher_is_better: bool

    def value(self, m: ModelMetrics) -> float | None:
        node: Any = m
        for part in self.key.split("."):
            node = getattr(node, part, None) if node is not None else None
        return None if node is None else float(node)


KEY_METRICS = (
    KeyMetric("k-NN accuracy", "embedding.knn_accuracy", True),
    KeyMetric("silhouette", "embedding.silhouette", True),
    KeyMetric("trustworthiness", "embedding.trustworthiness", True),
    KeyMetric("reconstruction MSE", "reconstruction.mse", False),
    KeyMetric("Fréchet, N(0,I) samples", "samples.frechet_standard_normal", False),
    KeyMetric("Fréchet, fitted Gaussian", "samples.frechet_fitted_gaussian", False),
)


def best_index(values: list[float | None], higher_is_better: bool) -> int | None:
    """Index of the best value (None when fewer than two values are known or all tie)."""
    known = [(v, i) for i, v in enumerate(values) if v is not None]
    if len(known) < 2 or len({v for v, _ in known}) == 1:
        return None
    return (max if higher_is_better else min)(known)[1]


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested metrics (dicts or dataclasses) → ``{"a.b.c": leaf}``; list items get ``[i]``."""
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        tree = rounded(tree)
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flatten(value, name + ".")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict | list):
                    continue
                out[f"{name}[{i}]"] = item
        else:
            out[name] = value
    return out
