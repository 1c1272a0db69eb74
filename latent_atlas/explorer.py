"""The explorer page: ``explore.html`` beside a report, where each model's latent plane can be
walked with the pointer or the keyboard while onnxruntime-web decodes (and classifies) the image
under the cursor, live, from the model's own ONNX files.

What the page needs per model is gathered here as plain data (:class:`ExplorerModel`): the
decoder file and how to call it, the plane (``z = origin + u·basis[0] + v·basis[1]``) and its
range, the class map drawn as background (:func:`class_map`), and a subsample of the test
embeddings in plane coordinates. :func:`write_explorer` writes the page, holding every model
file once (base64, no ``fetch``: it opens from disk), and refers to a runtime folder written by
:func:`latent_atlas.ortweb.write_runtime` (inside the report folder, or shared by a batch).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import numpy as np

from latent_atlas import ortweb
from latent_atlas.analysis.plots import class_color
from latent_atlas.analysis.render import render
from latent_atlas.toolkit.atomic import write_text
from latent_atlas.toolkit.errors import AtlasError

PAGE = "explore.html"
LAYOUTS = ("NCHW", "NHWC", "NHW", "flat")
CHANNELS = (1, 3)
DEFAULT_STEPS = (128, 128)  # the coarse class map's cells per axis (see class_map)
MAX_POINTS = 5000  # test embeddings drawn as a layer, at most
MAX_CLASSES = 65_536  # class indices travel as uint8 or uint16


class PlaneLike(Protocol):
    """A plane through latent space, ``z = origin + u·basis[0] + v·basis[1]`` (the shape of
    ``toolkit.grid.Plane``)."""

    origin: np.ndarray  # [d]
    basis: np.ndarray  # [2, d]
    labels: tuple[str, str]


@dataclass(frozen=True)
class AxesPlane:
    """The plane of two latent dimensions, the others fixed: enough for the explorer's own
    tests and for callers without a ``toolkit.grid.Plane``."""

    origin: np.ndarray
    basis: np.ndarray
    labels: tuple[str, str]

    @classmethod
    def of(
        cls, latent_dim: int, axes: tuple[int, int] = (0, 1), fixed: Sequence[float] = ()
    ) -> AxesPlane:
        if latent_dim < 2 or axes[0] == axes[1] or not all(0 <= a < latent_dim for a in axes):
            raise AtlasError(
                f"plane axes {axes}: expected two different dims of a {latent_dim}-d space"
            )
        origin = np.array(list(fixed) or [0.0] * latent_dim, np.float64)
        if origin.shape != (latent_dim,):
            raise AtlasError(f"plane fixed values: {len(fixed)} given, expected {latent_dim}")
        origin[list(axes)] = 0.0
        basis = np.zeros((2, latent_dim))
        basis[0, axes[0]] = basis[1, axes[1]] = 1.0
        sub = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
        labels = (f"z{axes[0] + 1}".translate(sub), f"z{axes[1] + 1}".translate(sub))
        return cls(origin, basis, labels)


def plane_points(plane: PlaneLike, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Latent vectors ``[N, d]`` float32 at plane coordinates ``u``, ``v`` ``[N]``: float64
    arithmetic in the order the page uses, ``(origin + u·b₀) + v·b₁``, then rounded once."""
    origin = np.asarray(plane.origin, np.float64)
    basis = np.asarray(plane.basis, np.float64)
    u = np.asarray(u, np.float64)
    v = np.asarray(v, np.float64)
    z = origin[None, :] + np.outer(u, basis[0]) + np.outer(v, basis[1])
    return z.astype(np.float32)


def plane_coordinates(plane: PlaneLike, z: np.ndarray) -> np.ndarray:
    """Plane coordinates ``[N, 2]`` of codes ``[N, d]`` (orthogonal projection)."""
    basis = np.asarray(plane.basis, np.float64)
    centred = np.asarray(z, np.float64) - np.asarray(plane.origin, np.float64)[None, :]
    return (centred @ basis.T) / (basis**2).sum(axis=1)[None, :]


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
    def of(cls, model: Any) -> OnnxFile:
        """From a loaded ``toolkit.runtime.OnnxModel`` (decoder or classifier)."""
        index = getattr(model, "logits_index", 0)
        shape = tuple(getattr(model, "image_shape", (1, 28, 28)))
        layout = getattr(model, "layout", None) or _layout(model)
        return cls(
            Path(model.path), model.input_name, model.output_names[index], layout,
            (int(shape[0]), int(shape[1]), int(shape[2])), model.sha256,
            bool(getattr(model, "probabilities", False)),
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


def _layout(model: Any) -> str:
    """Layout of a model loaded by a runtime that does not record one: its image dims."""
    dims = getattr(model, "input_dims", [])
    if getattr(model, "role", "") == "decoder":
        return "NCHW"  # today's runtime: decoders give [N, 1, 28, 28], [N, 784] or [N, 28, 28]
    return "flat" if len(dims) == 2 else "NCHW"


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
class ExplorerModel:
    """Everything the page shows of one model."""

    name: str
    decoder: OnnxFile
    latent_dim: int
    plane: PlaneLike
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    atlas: ClassMap | None = None
    embeddings: np.ndarray | None = None  # [n, 2] plane coordinates
    embedding_labels: np.ndarray | None = None  # [n] true class
    embeddings_total: int = 0  # how many the subsample was drawn from

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


# ---------------------------------------------------------------------------- building
def _class_probabilities(classifier: Any, images: np.ndarray) -> np.ndarray:
    """``[N, K]`` class probabilities of images ``[N, C, H, W]``."""
    if hasattr(classifier, "logits_and_features"):
        logits = classifier.logits_and_features(images)[0]
    else:  # today's runtime: first output = logits, images as [N, 1, 28, 28]
        logits = classifier(images)
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def class_map(
    decoder: Any,
    classifier: Any,
    plane: PlaneLike,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    steps: tuple[int, int] = DEFAULT_STEPS,
    batch_size: int = 4096,
) -> ClassMap:
    """The classifier's class (and confidence) of the decoded image at every cell of an even
    ``steps`` grid over the plane, streamed in batches (memory: one batch of images).

    The one place the explorer's background comes from: decoding to images and classifying
    them, until the fused atlas (``toolkit.atlas.compute_atlas``) takes its place.
    """
    nx, ny = steps
    x = np.linspace(*x_range, nx)
    y = np.linspace(*y_range, ny)
    shape = tuple(getattr(decoder, "image_shape", (1, 28, 28)))
    labels = np.empty(nx * ny, np.int64)
    confidence = np.empty(nx * ny, np.float32)
    for start in range(0, nx * ny, batch_size):
        k = np.arange(start, min(nx * ny, start + batch_size))
        z = plane_points(plane, x[k % nx], y[k // nx])
        images = np.asarray(decoder(z, batch_size)).reshape(len(k), *shape)
        probs = _class_probabilities(classifier, images.astype(np.float32))
        labels[k] = probs.argmax(axis=1)
        confidence[k] = probs.max(axis=1)
    return ClassMap(
        (float(x_range[0]), float(x_range[1])), (float(y_range[0]), float(y_range[1])),
        labels.reshape(ny, nx), confidence.reshape(ny, nx),
        f"classifier on decoded images, {nx}×{ny} cells",
    )  # fmt: skip


def explorer_model(
    name: str,
    decoder: Any,
    classifier: Any | None,
    plane: PlaneLike,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    embeddings: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    steps: tuple[int, int] = DEFAULT_STEPS,
    max_points: int = MAX_POINTS,
    seed: int = 0,
    atlas: ClassMap | None = None,
) -> ExplorerModel:
    """An :class:`ExplorerModel` from a loaded decoder (and classifier): its class map (unless
    ``atlas`` is given; none without a classifier) and a seeded subsample of ``embeddings``
    (codes ``[N, d]``, true classes ``labels``) projected on the plane."""
    if atlas is None and classifier is not None:
        atlas = class_map(decoder, classifier, plane, x_range, y_range, steps)
    points = point_labels = None
    total = 0
    if embeddings is not None and labels is not None:
        total = len(embeddings)
        keep = np.arange(total)
        if total > max_points:
            keep = np.sort(np.random.default_rng(seed).choice(total, max_points, replace=False))
        points = plane_coordinates(plane, np.asarray(embeddings)[keep])
        point_labels = np.asarray(labels)[keep]
    return ExplorerModel(
        name, OnnxFile.of(decoder), int(decoder.latent_dim), plane,
        (float(x_range[0]), float(x_range[1])), (float(y_range[0]), float(y_range[1])),
        atlas, points, point_labels, total,
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
            "plane": {"origin": [float(v) for v in np.asarray(m.plane.origin)],
                      "basis": [[float(v) for v in row] for row in np.asarray(m.plane.basis)],
                      "labels": list(m.plane.labels)},
            "xRange": list(m.x_range), "yRange": list(m.y_range),
            "atlas": atlas, "embeddings": emb,
        })  # fmt: skip
    data = {
        "classes": [
            {"name": str(n), "color": "#{:02x}{:02x}{:02x}".format(
                *(round(c * 255) for c in class_color(i)[:3]))}
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
