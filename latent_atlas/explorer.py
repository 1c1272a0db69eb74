"""The explorer page: ``explore.html`` beside a report, where each model's latent plane can be
walked with the pointer or the keyboard while onnxruntime-web decodes (and classifies) the image
under the cursor, live, from the model's own ONNX files.

What the page needs per model is gathered here as plain data (:class:`ExplorerModel`): the
decoder file and how to call it, the plane (``z = origin + u·basis[0] + v·basis[1]``) and its
range, the class map drawn as background (:func:`class_map`), a subsample of the test
embeddings in plane coordinates, the decoder's geometry on the plane (:func:`plane_geometry`:
the magnification layer and the graph the page's geodesics run on) and, for a latent space of
more than two dims, the other planes the reader may choose and the range of every dim
(:func:`latent_dims`, :func:`plane_options`). :func:`write_explorer` writes the page, holding
every model file once (base64, no ``fetch``: it opens from disk), and refers to a runtime
folder written by :func:`latent_atlas.ortweb.write_runtime` (inside the report folder, or
shared by a batch).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

import numpy as np

from latent_atlas import ortweb
from latent_atlas.analysis import geometry as geo
from latent_atlas.analysis.classes import nearest_embedding_classes
from latent_atlas.analysis.raster import TAB10
from latent_atlas.analysis.render import render
from latent_atlas.toolkit.atlas import Atlas, compute_atlas
from latent_atlas.toolkit.atomic import write_text
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec, Plane, dim_label
from latent_atlas.toolkit.jacobian import differentiable, iter_jacobians
from latent_atlas.toolkit.runtime import OnnxModel

PAGE = "explore.html"
LAYOUTS = ("NCHW", "NHWC", "NHW", "flat")
CHANNELS = (1, 3)
# The class map's points per axis: 128² cells are 4 px each on a 512-px plane; the atlas's
# own default (256²) costs four times as much in every report.
DEFAULT_STEPS = (128, 128)
MAX_POINTS = 5000  # test embeddings drawn as a layer, at most
MAX_CLASSES = 65_536  # class indices travel as uint8 or uint16
# The geometry grid's points per axis, as the report's geodesic graph (AnalysisConfig's
# geometry_graph): 48² nodes cost 5 decodes each (the Jacobian's stencil, ~0.6 CPU s for a
# shipped model) and ship 4 edge weights and a magnification each as float32: 45 KiB (61 KB
# of base64) per model.
GEOMETRY_STEPS = 48
# The 8-neighbour graph's edges, each stored once at its lower node: (drow, dcol) as
# analysis.geometry's grid_edges walks them; the page's Dijkstra uses the same order.
EDGE_OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))
# What a dim's slider spans: the test embeddings' 1st..99th percentile, or without
# embeddings the prior N(0, 1)'s ±3.
DIM_PERCENTILES = (1.0, 99.0)
PRIOR_RANGE = 3.0


@dataclass(frozen=True)
class OnnxFile:
    """One ONNX file as the page calls it: which input to feed, which output to read, the
    image layout of the file (``NCHW``, ``NHWC``, ``NHW`` or ``flat``) and our ``(C, H, W)``."""

    path: Path
    input_name: str
    output_name: str
    layout: str
    image_shape: tuple[int, int, int]
    sha256: str = ""  # when given, the file read must still have this hash
    probabilities: bool = False  # classifier whose output is already a distribution

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise AtlasError(f"model {self.path}: layout {self.layout!r}, expected {LAYOUTS}")
        c, h, w = self.image_shape
        if c not in CHANNELS or h < 1 or w < 1:
            raise AtlasError(
                f"model {self.path}: image shape {self.image_shape}, expected (C, H, W) with C "
                "1 (grayscale) or 3 (RGB)"
            )

    @classmethod
    def of(cls, model: OnnxModel) -> OnnxFile:
        """From a loaded decoder or classifier: its main output (image or logits), its layout
        and image shape, and the hash of the bytes it was loaded from."""
        return cls(
            Path(model.path), model.input_name, model.output_names[model.logits_index],
            model.layout, model.image_shape, model.sha256, model.probabilities,
        )  # fmt: skip

    def read(self) -> bytes:
        """The file's bytes, checked against ``sha256`` when one was recorded at load time."""
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise AtlasError(f"model {self.path}: unreadable ({exc.strerror})") from None
        if self.sha256 and hashlib.sha256(raw).hexdigest() != self.sha256:
            raise AtlasError(
                f"model {self.path}: changed since it was analysed (sha256 differs); "
                "run the report again"
            )
        return raw


@dataclass(frozen=True)
class ClassMap:
    """The background of a plane: class per cell over an even grid.

    ``labels[i, j]`` is the class at ``u = x[j], v = y[i]`` with ``x = linspace(*x_range, nx)``
    and ``y = linspace(*y_range, ny)`` (row 0 is the lowest ``v``); ``confidence`` (optional)
    the classifier's probability of that class, in [0, 1].
    """

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    labels: np.ndarray
    confidence: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.labels.ndim != 2 or min(self.labels.shape) < 2:
            raise AtlasError(f"class map: labels of shape {self.labels.shape}, expected [ny, nx]")
        if self.confidence is not None and self.confidence.shape != self.labels.shape:
            raise AtlasError("class map: confidence and labels differ in shape")
        for lo, hi in (self.x_range, self.y_range):
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
                raise AtlasError(f"class map: range [{lo}, {hi}], expected finite low < high")


@dataclass(frozen=True)
class PlaneGeometry:
    """The decoder's geometry over an even ``n × n`` grid of a plane's range.

    ``magnification[i, j]`` is ``√det(JᵀJ)`` (image units² per plane unit²; ``J`` the
    decoder's Jacobian along the plane's basis) at ``u = x[j], v = y[i]`` with
    ``x = linspace(*x_range, n)``, ``y = linspace(*y_range, n)`` (row 0 the lowest ``v``).
    ``weights[k, i, j]`` is the length of the graph edge from node ``(i, j)`` to its
    neighbour at ``EDGE_OFFSETS[k]``: the Euclidean distance between the two decoded images
    (:func:`analysis.geometry.grid_graph`, 8 neighbours), float32; 0 where that neighbour lies
    outside the grid.
    """

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    magnification: np.ndarray
    weights: np.ndarray
    precision: str = "float32"

    def __post_init__(self) -> None:
        n = self.magnification.shape
        if len(n) != 2 or min(n) < 3 or self.weights.shape != (len(EDGE_OFFSETS), *n):
            raise AtlasError(
                f"plane geometry: magnification {self.magnification.shape}, weights "
                f"{self.weights.shape}; expected [ny, nx] (>= 3 each) and [4, ny, nx]"
            )
        if not (np.isfinite(self.magnification).all() and np.isfinite(self.weights).all()):
            raise AtlasError("plane geometry: holds NaN or inf")

    def graph(self) -> object:
        """The shipped weights as a symmetric ``scipy.sparse.csr_matrix`` (what the page's
        Dijkstra searches), for a reference shortest path with ``scipy.sparse.csgraph``."""
        from scipy.sparse import csr_matrix

        ny, nx = self.magnification.shape
        a, b = geo.grid_edges((ny, nx), 8)
        w = self.weights.reshape(len(EDGE_OFFSETS), -1)[_edge_direction(a, b, nx), a]
        w = np.maximum(w.astype(np.float64), np.finfo(np.float64).tiny)  # 0 is still an edge
        n = nx * ny
        return csr_matrix(
            (np.concatenate([w, w]), (np.concatenate([a, b]), np.concatenate([b, a]))), shape=(n, n)
        )


@dataclass(frozen=True)
class PlaneOption:
    """A plane the reader may switch to (a latent space of more than two dims): ``label``
    names it in the page's menu; ``x_range``, ``y_range`` the view it opens on."""

    label: str
    plane: Plane
    x_range: tuple[float, float]
    y_range: tuple[float, float]


@dataclass(frozen=True)
class LatentDims:
    """Each latent dim's slider: from ``low[k]`` to ``high[k]``, ``centre[k]`` the embeddings'
    mean (or 0); ``source`` says where the range comes from."""

    low: np.ndarray
    high: np.ndarray
    centre: np.ndarray
    source: str


@dataclass(frozen=True)
class ExplorerModel:
    """Everything the page shows of one model."""

    name: str
    decoder: OnnxFile
    latent_dim: int
    plane: Plane
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    atlas: ClassMap | None = None
    embeddings: np.ndarray | None = None  # [n, 2] plane coordinates
    embedding_labels: np.ndarray | None = None  # [n] true class
    embeddings_total: int = 0  # how many the subsample was drawn from
    geometry: PlaneGeometry | None = None  # on this plane and range
    planes: tuple[PlaneOption, ...] = ()  # other planes offered (latent_dim > 2)
    dims: LatentDims | None = None  # slider ranges (latent_dim > 2)

    def __post_init__(self) -> None:
        origin = np.asarray(self.plane.origin)
        basis = np.asarray(self.plane.basis)
        if origin.shape != (self.latent_dim,) or basis.shape != (2, self.latent_dim):
            raise AtlasError(
                f"model {self.name}: plane of shape origin {origin.shape}, basis {basis.shape}; "
                f"expected ({self.latent_dim},) and (2, {self.latent_dim})"
            )
        if not (np.isfinite(origin).all() and np.isfinite(basis).all()):
            raise AtlasError(f"model {self.name}: plane holds NaN or inf")
        for lo, hi in (self.x_range, self.y_range):
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
                raise AtlasError(f"model {self.name}: range [{lo}, {hi}], expected low < high")
        if self.embeddings is not None:
            if self.embeddings.ndim != 2 or self.embeddings.shape[1] != 2:
                raise AtlasError(f"model {self.name}: embeddings must be [n, 2] plane points")
            if self.embedding_labels is None or len(self.embedding_labels) != len(self.embeddings):
                raise AtlasError(f"model {self.name}: one label per embedding expected")
        if self.dims is not None:
            d = self.latent_dim
            for name in ("low", "high", "centre"):
                if np.shape(getattr(self.dims, name)) != (d,):
                    raise AtlasError(f"model {self.name}: dims.{name} must hold {d} values")
            if not (np.asarray(self.dims.low) < np.asarray(self.dims.high)).all():
                raise AtlasError(f"model {self.name}: dims: expected low < high for every dim")
        for option in self.planes:
            if option.plane.latent_dim != self.latent_dim:
                raise AtlasError(f"model {self.name}: plane {option.label!r} of another dim")


# ---------------------------------------------------------------------------- building
def class_map(
    decoder: OnnxModel,
    classifier: OnnxModel | None,
    spec: GridSpec,
    plane: Plane,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    embeddings: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    steps: tuple[int, int] = DEFAULT_STEPS,
    knn_k: int = 5,
    atlas: Atlas | None = None,
) -> ClassMap | None:
    """The background of a plane: the class at every point of an even ``steps`` grid over
    ``x_range`` × ``y_range`` on ``spec``'s plane — the classifier's, from the dense atlas
    (:func:`toolkit.atlas.compute_atlas`: one fused graph, streamed), or without a classifier
    the majority class of the ``knn_k`` nearest test embeddings in the full latent space (as
    the report's class maps). None when there is neither. ``atlas``: one computed already over
    this plane and range (the report's), used as it is."""
    if atlas is not None:  # computed already (the report's dense atlas, same plane and range)
        ny, nx = atlas.shape
        source = f"the classifier's class of the decoded image, {nx}×{ny} points"
        return ClassMap(x_range, y_range, atlas.labels, atlas.confidence, source)
    nx, ny = steps
    even = replace(spec, mode="linear", steps=(nx, ny), x_range=x_range, y_range=y_range)
    if classifier is not None:
        atlas = compute_atlas(decoder, classifier, even, embeddings=embeddings)
        source = f"the classifier's class of the decoded image, {nx}×{ny} points"
        return ClassMap(x_range, y_range, atlas.labels, atlas.confidence, source)
    if embeddings is None or labels is None:
        return None
    x, y = even.coordinates(embeddings, plane)
    points = even.points(x, y, plane, 0, nx * ny)
    knn = nearest_embedding_classes(points, embeddings, np.asarray(labels, np.int64), knn_k)
    source = f"the class of the {knn_k} nearest test embeddings, {nx}×{ny} points"
    return ClassMap(x_range, y_range, knn.reshape(ny, nx), None, source)


def _edge_direction(a: np.ndarray, b: np.ndarray, nx: int) -> np.ndarray:
    """Index into ``EDGE_OFFSETS`` of each edge ``a → b`` (flat nodes of an ``nx``-wide grid,
    ``nx >= 3`` so that the four flat offsets differ)."""
    flat = [dr * nx + dc for dr, dc in EDGE_OFFSETS]
    direction = np.searchsorted(np.sort(flat), b - a)
    return np.argsort(flat)[direction]


def plane_geometry(
    decoder: OnnxModel,
    plane: Plane,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    steps: int = GEOMETRY_STEPS,
    precision: str = "auto",
) -> PlaneGeometry:
    """The decoder's magnification and geodesic graph on ``plane`` over an even
    ``steps × steps`` grid of ``x_range`` × ``y_range``.

    One pass of finite-difference Jacobians (``toolkit.jacobian.iter_jacobians``, 5 decodes a
    point, streamed) gives both: the magnification from each Jacobian
    (``analysis.geometry.magnification``) and the graph's edges from the images at the
    points themselves (``analysis.geometry.grid_graph``, 8 neighbours). ``precision`` as for
    the report's maps (float64 where the ONNX graph allows).
    """
    if steps < 3:
        raise AtlasError(f"geometry steps {steps}: expected >= 3 points per axis")
    x, y = np.linspace(*x_range, steps), np.linspace(*y_range, steps)
    u, v = np.meshgrid(x, y)  # row i: v = y[i], row-major as the page's nodes
    points = plane.points(u.ravel(), v.ravel())
    mag = np.empty(steps * steps)
    images = np.empty((steps * steps, int(np.prod(decoder.image_shape))), np.float32)
    run, dtype = differentiable(decoder, precision)
    kind = "float64" if dtype is np.float64 else "float32"
    for start, im, jac in iter_jacobians(run, points, plane.basis, precision=kind):
        mag[start : start + len(im)] = geo.magnification(geo.pullback_metric(jac))
        images[start : start + len(im)] = im.reshape(len(im), -1)
    graph = geo.grid_graph(images, (steps, steps), 8)
    a, b = geo.grid_edges((steps, steps), 8)
    weights = np.zeros((len(EDGE_OFFSETS), steps * steps), np.float32)
    weights[_edge_direction(a, b, steps), a] = np.asarray(graph[a, b]).ravel()
    return PlaneGeometry(x_range, y_range, mag.reshape(steps, steps),
                         weights.reshape(len(EDGE_OFFSETS), steps, steps), kind)  # fmt: skip


def latent_dims(latent_dim: int, embeddings: np.ndarray | None = None) -> LatentDims:
    """Each dim's slider range: the ``DIM_PERCENTILES`` of the test ``embeddings`` ``[N, d]``
    along it (widened where the embeddings do not vary), or ±``PRIOR_RANGE`` without them."""
    if embeddings is None:
        zero = np.zeros(latent_dim)
        return LatentDims(zero - PRIOR_RANGE, zero + PRIOR_RANGE, zero,
                          f"±{PRIOR_RANGE:g} (the prior N(0, 1); no test embeddings)")  # fmt: skip
    emb = np.asarray(embeddings, np.float64)
    low, high = np.percentile(emb, DIM_PERCENTILES, axis=0)
    flat = ~(high > low)  # a dim the encoder never moves: a slider of width 1 around it
    low, high = np.where(flat, low - 0.5, low), np.where(flat, high + 0.5, high)
    lo_p, hi_p = DIM_PERCENTILES
    return LatentDims(low, high, emb.mean(axis=0),
                      f"{lo_p:g}st–{hi_p:g}th percentile of the test embeddings")  # fmt: skip


# the kinds of the report's other grids offered as planes (two axes are the page's own lists)
OFFERED_KINDS = ("pca", "images")


def plane_options(
    plane: Plane, embeddings: np.ndarray | None, others: Sequence[GridSpec] = ()
) -> tuple[PlaneOption, ...]:
    """The planes offered besides the report's (two chosen axes are built in the page from
    unit vectors), for a latent space of more than two dims with test ``embeddings``:

    - the planes of the report's ``others`` grids that are a PCA plane or a plane through
      three test images (the images are its marks), each over its grid's range, so the page
      shows the planes of the report's figures;
    - without a PCA plane among them (nor as the report's own), the principal plane of the
      embeddings through their mean with orthonormal axes (``u, v`` in latent units), viewed
      over the ``DIM_PERCENTILES`` of the embeddings along it (widened by 5 %).
    """
    if embeddings is None or plane.latent_dim <= 2:
        return ()
    options: list[PlaneOption] = []
    for spec in others:
        other = spec.resolve_plane(plane.latent_dim, embeddings)
        same = [np.array_equal(other.basis, o.basis) and np.array_equal(other.origin, o.origin)
                for o in (plane, *(opt.plane for opt in options))]  # fmt: skip
        if other.kind not in OFFERED_KINDS or any(same):
            continue
        x, y = spec.coordinates(embeddings, other)
        label = other.describe()
        options.append(PlaneOption(label, other, (float(x[0]), float(x[-1])),
                                   (float(y[0]), float(y[-1]))))  # fmt: skip
    if plane.kind == "pca" or any(o.plane.kind == "pca" for o in options):
        return tuple(options)
    pca = GridSpec(plane="pca").resolve_plane(plane.latent_dim, embeddings)
    unit = pca.basis / np.linalg.norm(pca.basis, axis=1, keepdims=True)
    pca = replace(pca, basis=unit)
    coords = pca.project(embeddings)
    lo, hi = np.percentile(coords, DIM_PERCENTILES, axis=0)
    pad = 0.05 * (hi - lo)
    return (*options, PlaneOption(
        "principal plane (PCA) through the embeddings' mean, latent units", pca,
        (float(lo[0] - pad[0]), float(hi[0] + pad[0])),
        (float(lo[1] - pad[1]), float(hi[1] + pad[1]))))  # fmt: skip


def explorer_model(
    name: str,
    decoder: OnnxModel,
    classifier: OnnxModel | None,
    spec: GridSpec,
    embeddings: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    steps: tuple[int, int] = DEFAULT_STEPS,
    max_points: int = MAX_POINTS,
    seed: int = 0,
    knn_k: int = 5,
    atlas: Atlas | None = None,
    geometry_steps: int | None = None,
    others: Sequence[GridSpec] = (),
) -> ExplorerModel:
    """What the page shows of one model, on ``spec``'s plane and over its range (a report's
    first grid): the class map (:func:`class_map`), a seeded subsample of the test
    ``embeddings`` (codes ``[N, d]``, true classes ``labels``) in plane coordinates, the
    decoder's geometry on a ``geometry_steps²`` grid (:func:`plane_geometry`; 0: none; None:
    ``GEOMETRY_STEPS``, read at call time so that a test session may lower it) and,
    for more than two latent dims, the other planes (:func:`plane_options`, with the report's
    ``others`` grids) and the dims' ranges."""
    plane = spec.resolve_plane(decoder.latent_dim, embeddings)
    x, y = spec.coordinates(embeddings, plane)
    x_range, y_range = (float(x[0]), float(x[-1])), (float(y[0]), float(y[-1]))
    background = class_map(decoder, classifier, spec, plane, x_range, y_range, embeddings,
                           labels, steps, knn_k, atlas)  # fmt: skip
    points = point_labels = None
    total = 0
    if embeddings is not None and labels is not None:
        total = len(embeddings)
        keep = np.arange(total)
        if total > max_points:
            keep = np.sort(np.random.default_rng(seed).choice(total, max_points, replace=False))
        points = plane.project(np.asarray(embeddings)[keep])
        point_labels = np.asarray(labels)[keep]
    geometry = None
    steps_geo = GEOMETRY_STEPS if geometry_steps is None else geometry_steps
    if steps_geo:
        geometry = plane_geometry(decoder, plane, x_range, y_range, steps_geo)
    d = decoder.latent_dim
    return ExplorerModel(
        name, OnnxFile.of(decoder), d, plane, x_range, y_range,
        background, points, point_labels, total, geometry,
        plane_options(plane, embeddings, others), latent_dims(d, embeddings) if d > 2 else None,
    )  # fmt: skip


# ---------------------------------------------------------------------------- writing
def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _index_dtype(n_classes: int) -> type[np.unsignedinteger]:
    if n_classes > MAX_CLASSES:
        raise AtlasError(f"explorer: {n_classes} classes, at most {MAX_CLASSES} supported")
    return np.uint8 if n_classes <= 256 else np.uint16


def _file_json(f: OnnxFile, blob: int) -> dict:
    return {"blob": blob, "input": f.input_name, "output": f.output_name, "layout": f.layout,
            "probabilities": f.probabilities}  # fmt: skip


def _check_labels(values: np.ndarray, n_classes: int, what: str) -> np.ndarray:
    values = np.asarray(values)
    if values.size and (values.min() < 0 or values.max() >= n_classes):
        raise AtlasError(
            f"explorer: {what} holds classes {values.min()}..{values.max()}, expected 0.."
            f"{n_classes - 1} ({n_classes} class names)"
        )
    return values.astype(_index_dtype(n_classes))


def _plane_json(plane: Plane) -> dict:
    return {"origin": [float(v) for v in np.asarray(plane.origin)],
            "basis": [[float(v) for v in row] for row in np.asarray(plane.basis)],
            "labels": list(plane.labels), "kind": plane.kind,
            "marks": [{"label": t, "u": float(u), "v": float(v)}
                      for t, u, v in plane.marks]}  # fmt: skip


def _geometry_json(g: PlaneGeometry) -> dict:
    """log₁₀ of the magnification (NaN where it is 0: a rank-deficient Jacobian) and the edge
    weights, both float32 little-endian; ``weights`` holds ``[4, ny, nx]`` in that order."""
    ny, nx = g.magnification.shape
    with np.errstate(divide="ignore"):
        log_mag = np.where(g.magnification > 0, np.log10(g.magnification), np.nan)
    return {
        "nx": nx, "ny": ny, "xRange": list(g.x_range), "yRange": list(g.y_range),
        "log10Magnification": _b64(log_mag.astype("<f4")),
        "weights": _b64(g.weights.astype("<f4")), "offsets": [list(o) for o in EDGE_OFFSETS],
        "precision": g.precision,
    }  # fmt: skip


def page_data(
    models: Sequence[ExplorerModel],
    classifier: OnnxFile | None,
    class_names: Sequence[str],
) -> tuple[dict, list[tuple[str, bytes]]]:
    """The page's JSON and its model files ``[(sha256, bytes)]``, each file once."""
    blobs: list[tuple[str, bytes]] = []

    def blob(f: OnnxFile) -> int:
        raw = f.read()
        digest = hashlib.sha256(raw).hexdigest()
        for i, (known, _) in enumerate(blobs):
            if known == digest:
                return i
        blobs.append((digest, raw))
        return len(blobs) - 1

    k = len(class_names)
    label_bytes = np.dtype(_index_dtype(k)).itemsize
    entries = []
    for m in models:
        if classifier is not None and classifier.image_shape != m.decoder.image_shape:
            raise AtlasError(
                f"explorer: model {m.name} draws images of shape {m.decoder.image_shape}, the "
                f"classifier takes {classifier.image_shape}"
            )
        atlas = None
        if m.atlas is not None:
            a = m.atlas
            atlas = {
                "nx": int(a.labels.shape[1]), "ny": int(a.labels.shape[0]),
                "xRange": list(a.x_range), "yRange": list(a.y_range),
                "labels": _b64(_check_labels(a.labels, k, f"{m.name}'s class map")),
                "confidence": None if a.confidence is None else _b64(
                    np.round(np.clip(a.confidence, 0, 1) * 255).astype(np.uint8)),
                "source": a.source,
            }  # fmt: skip
        emb = None
        if m.embeddings is not None and m.embedding_labels is not None:
            emb = {
                "n": len(m.embeddings), "of": m.embeddings_total or len(m.embeddings),
                "xy": _b64(m.embeddings.astype("<f4")),
                "labels": _b64(_check_labels(m.embedding_labels, k, f"{m.name}'s embeddings")),
            }  # fmt: skip
        entries.append({
            "name": m.name, "latentDim": m.latent_dim, "imageShape": list(m.decoder.image_shape),
            "decoder": _file_json(m.decoder, blob(m.decoder)),
            "plane": _plane_json(m.plane),
            "xRange": list(m.x_range), "yRange": list(m.y_range),
            "atlas": atlas, "embeddings": emb,
            "geometry": None if m.geometry is None else _geometry_json(m.geometry),
            "planes": [{"label": o.label, "plane": _plane_json(o.plane),
                        "xRange": list(o.x_range), "yRange": list(o.y_range)} for o in m.planes],
            "dims": None if m.dims is None else {
                "low": [float(v) for v in m.dims.low], "high": [float(v) for v in m.dims.high],
                "centre": [float(v) for v in m.dims.centre], "source": m.dims.source,
                "labels": [dim_label(k) for k in range(m.latent_dim)]},
        })  # fmt: skip
    data = {
        "classes": [
            {"name": str(n), "color": "#{:02x}{:02x}{:02x}".format(*TAB10[i % len(TAB10)])}
            for i, n in enumerate(class_names)
        ],
        "labelBytes": label_bytes,
        "classifier": None if classifier is None else _file_json(classifier, blob(classifier)),
        "models": entries,
    }  # fmt: skip
    return data, blobs


def write_explorer(
    folder: Path,
    models: Sequence[ExplorerModel],
    class_names: Sequence[str],
    classifier: OnnxFile | None = None,
    title: str = "",
    report: str | None = "report.html",
    runtime: str | None = None,
) -> Path:
    """Write ``folder/explore.html`` for ``models`` (side by side, one shared cursor).

    ``runtime``: the URL, relative to the page, of a runtime folder written by
    :func:`latent_atlas.ortweb.write_runtime` (a batch shares one); None writes one into
    ``folder/explorer-runtime``. ``report``: the page the explorer links back to (None: none).
    Returns the page's path.
    """
    if not models:
        raise AtlasError("explorer: no models given, expected at least one")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise AtlasError(f"explorer: model names {names} repeat; expected distinct names")
    data, blobs = page_data(models, classifier, class_names)
    folder = Path(folder)
    if runtime is None:
        ortweb.write_runtime(folder / ortweb.FOLDER)
        runtime = ortweb.FOLDER
    else:
        ortweb.runtime_files()  # the vendored files are checked even when not written here
    base = runtime.rstrip("/") + "/"
    html = render(
        "explore.html.j2",
        title=title or " vs ".join(names),
        data=data,
        models=data["models"],
        classes=data["classes"],
        blobs=[(digest, base64.b64encode(raw).decode("ascii")) for digest, raw in blobs],
        scripts=[base + name for name in ortweb.SCRIPTS],
        report=report,
    )
    return write_text(folder / PAGE, html)


def relative_runtime(page_folder: Path, runtime_folder: Path) -> str:
    """The URL of ``runtime_folder`` relative to a page in ``page_folder`` (POSIX separators)."""
    rel = os.path.relpath(Path(runtime_folder).resolve(), Path(page_folder).resolve())
    return quote(Path(rel).as_posix())
