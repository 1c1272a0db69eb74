"""Runners for one model's dimensions: diagnostics (which dims it uses), traversals (what each
does) and interpolations (what lies between two test images). The toolkit encodes and decodes,
analysis measures; this floor joins them and names the classifier."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latent_atlas.analysis.dimensions import (
    ACTIVE_THRESHOLD,
    DimensionDiagnostics,
    dimension_diagnostics,
    top_dimensions,
)
from latent_atlas.analysis.traversals import TraversalMetrics, traversal_metrics
from latent_atlas.geometry import Geodesic, GeodesicConfig
from latent_atlas.geometry import geodesic as find_geodesic
from latent_atlas.toolkit.data import ImageDataset
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import Plane, dim_label
from latent_atlas.toolkit.runtime import DEFAULT_BATCH, Model, OnnxModel, load_classifier
from latent_atlas.toolkit.traversal import (
    Traversal,
    TraversalSpec,
    decode_traversal,
    interpolation_codes,
)


def open_classifier(
    path: Path | None, data: ImageDataset, provider: str = "auto", threads: int = 0
) -> OnnxModel | None:
    if path is None:
        return None
    return load_classifier(path, len(data.class_names), provider, threads, data.image_shape)


def check_encoder(model: Model, what: str) -> None:
    if model.encoder is None:
        raise AtlasError(
            f"model {model.source}: no encoder; {what} needs the test set's embeddings "
            "(a model folder with encoder.onnx)"
        )


@dataclass
class Dimensions:
    """A model's posterior over the test set and its per-dim diagnostics."""

    mu: np.ndarray  # [N, d]
    logvar: np.ndarray | None  # [N, d]
    diagnostics: DimensionDiagnostics


def diagnose(
    model: Model,
    data: ImageDataset,
    threshold: float = ACTIVE_THRESHOLD,
    batch_size: int = DEFAULT_BATCH,
) -> Dimensions:
    """Encode the test set (mean and, where the encoder gives it, log-variance) and measure
    each dimension: variance of the posterior means, active units, per-dim KL."""
    check_encoder(model, "the dimension diagnostics")
    mu, logvar = model.encode_posterior(data.test.images, batch_size)
    return Dimensions(mu, logvar, dimension_diagnostics(mu, logvar, threshold))


@dataclass
class TraversalResult:
    """Traversals of one model: the decoded rows (``traversal``), what they show
    (``metrics``) and the dims' diagnostics; ``logits`` ``[k, steps, K]`` with a classifier."""

    traversal: Traversal
    metrics: TraversalMetrics
    dimensions: Dimensions
    logits: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)

    def row_labels(self) -> list[str]:
        var = self.dimensions.diagnostics.variance
        return [f"{dim_label(int(d))}\nvar {var[int(d)]:.2g}" for d in self.traversal.dims]

    def arrays(self) -> dict[str, np.ndarray]:
        """What the ``.npz`` holds."""
        out = {
            "images": self.traversal.images, "values": self.traversal.values,
            "dims": self.traversal.dims, "base": self.traversal.base,
            "variance": np.asarray(self.dimensions.diagnostics.variance),
        }  # fmt: skip
        if self.logits is not None:
            out["logits"] = self.logits
        return out


def traverse(
    model: Model,
    data: ImageDataset,
    spec: TraversalSpec,
    classifier: OnnxModel | None = None,
    threshold: float = ACTIVE_THRESHOLD,
    batch_size: int = DEFAULT_BATCH,
    dimensions: Dimensions | None = None,
) -> TraversalResult:
    """Decode and measure the traversals ``spec`` asks for: ``spec.dims``, else the ``spec.k``
    dims of largest posterior-mean variance."""
    check_encoder(model, "a traversal")
    spec.check(model.latent_dim, len(data.test.images))
    dims_ = dimensions or diagnose(model, data, threshold, batch_size)
    var = dims_.diagnostics.variance
    dims = np.asarray(spec.dims, np.int64) if spec.dims else top_dimensions(var, spec.k)
    trav = decode_traversal(model.decoder, dims_.mu, dims, spec, batch_size)
    logits = None
    if classifier is not None:
        k, steps = trav.images.shape[:2]
        flat = trav.images.reshape(k * steps, *trav.images.shape[2:])
        logits = classifier.logits_and_features(flat, batch_size)[0].reshape(k, steps, -1)
    names = list(data.class_names)
    metrics = traversal_metrics(trav.images, trav.values, trav.dims.tolist(),
                                spec.describe_base(), logits, names)  # fmt: skip
    return TraversalResult(trav, metrics, dims_, logits, names)


@dataclass
class Interpolation:
    """The straight line between the embeddings of test images ``a`` and ``b``:
    ``images[s]`` decoded at ``codes[s]``, ``t`` from 0 (image a) to 1 (image b)."""

    a: int
    b: int
    t: np.ndarray  # [steps]
    codes: np.ndarray  # [steps, d]
    images: np.ndarray  # [steps, C, H, W]
    ends: np.ndarray  # [2, C, H, W]: the two test images themselves
    logits: np.ndarray | None = None  # [steps, K]
    # the geodesic on the plane through the two codes (``geodesic=True``), its images'
    # logits, and the straight line's image-space length at the geodesic's points
    geodesic: Geodesic | None = None
    geodesic_logits: np.ndarray | None = None  # [steps, K]

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"t": self.t, "codes": self.codes, "images": self.images, "ends": self.ends,
               "indices": np.array([self.a, self.b])}  # fmt: skip
        if self.logits is not None:
            out["logits"] = self.logits
        if self.geodesic is not None:
            g = self.geodesic
            out |= {"geodesic_codes": g.points, "geodesic_images": g.images,
                    "lengths": np.array([g.straight_length, g.length])}  # fmt: skip
            if self.geodesic_logits is not None:
                out["geodesic_logits"] = self.geodesic_logits
        return out


def line_plane(za: np.ndarray, zb: np.ndarray, centre: np.ndarray) -> Plane:
    """The plane through codes ``za`` and ``zb`` in which a geodesic between them is sought:
    origin ``za``, first axis towards ``zb``, second towards ``centre`` (the test codes' mean,
    where the data lies) made orthogonal to the first; where ``centre`` lies on the line
    (or for a 2-D latent), the latent's own next axis instead. Coordinates in latent units."""
    za, zb = np.asarray(za, np.float64), np.asarray(zb, np.float64)
    u = zb - za
    length = float(np.linalg.norm(u))
    if length == 0:
        raise AtlasError("--between: the two images have the same code; expected two codes")
    u /= length
    candidates = [np.asarray(centre, np.float64) - za, *np.eye(len(za))]
    for c in candidates:
        v = c - (c @ u) * u
        if np.linalg.norm(v) > 1e-6 * max(1.0, float(np.linalg.norm(c))):
            v /= np.linalg.norm(v)
            break
    return Plane("line", za, np.stack([u, v]), ("along the line", "towards the data"))


def interpolate(
    model: Model,
    data: ImageDataset,
    a: int,
    b: int,
    steps: int = 11,
    classifier: OnnxModel | None = None,
    batch_size: int = DEFAULT_BATCH,
    geodesic: bool = False,
    graph_steps: int = 48,
) -> Interpolation:
    """Encode test images ``a`` and ``b`` and decode the straight line between their codes;
    with ``geodesic``, also the geodesic between them on the plane through them and the test
    codes' mean (:func:`line_plane`; ``latent_atlas.geometry.geodesic`` restricted to that
    plane, started on a ``graph_steps``² graph over it), at as many points as the line."""
    check_encoder(model, "an interpolation")
    n = len(data.test.images)
    for name, i in (("a", a), ("b", b)):
        if not isinstance(i, int | np.integer) or isinstance(i, bool) or not 0 <= i < n:
            raise AtlasError(
                f"--between: image {name} = {i!r}; the test set has {n} images, expected an "
                f"index in 0..{n - 1}"
            )
    if a == b:
        raise AtlasError(f"--between {a} {b}: the same image twice; expected two images")
    ends = data.test.images[[a, b]]
    za, zb = model.encode(ends, batch_size)
    codes = interpolation_codes(za, zb, steps)
    images = model.decode(codes, batch_size)
    logits = None if classifier is None else classifier.logits_and_features(images)[0]
    line = Interpolation(a, b, np.linspace(0, 1, steps), codes, images, ends, logits)
    if geodesic:
        if steps < 3:
            raise AtlasError(f"--steps {steps}: a geodesic needs at least 3 points")
        centre = model.encode(data.test.images, batch_size).mean(axis=0)
        plane = line_plane(za, zb, centre)
        length = float(np.linalg.norm(zb.astype(np.float64) - za))
        cfg = GeodesicConfig(graph_steps=graph_steps, points=steps)
        # the graph spans the segment and half its length on every side
        g = find_geodesic(model, za, zb, cfg, plane=plane,
                          value_range=(-0.5 * length, 1.5 * length))  # fmt: skip
        line.geodesic = g
        if classifier is not None:
            line.geodesic_logits = classifier.logits_and_features(g.images)[0]
    return line
