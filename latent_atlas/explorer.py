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
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

import numpy as np

from latent_atlas import ortweb
from latent_atlas.analysis.classes import nearest_embedding_classes
from latent_atlas.analysis.plots import class_color
from latent_atlas.analysis.render import render
from latent_atlas.toolkit.atlas import Atlas, compute_atlas
from latent_atlas.toolkit.atomic import write_text
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec, Plane
from latent_atlas.toolkit.runtime import OnnxModel

PAGE = "explore.html"
LAYOUTS = ("NCHW", "NHWC", "NHW", "flat")
CHANNELS = (1, 3)
# The class map's points per axis: 128² cells are 4 px each on a 512-px plane; the atlas's
# own default (256²) costs four times as much in every report.
DEFAULT_STEPS = (128, 128)
MAX_POINTS = 5000  # test embeddings drawn as a layer, at most
MAX_CLASSES = 65_536  # class indices travel as uint8 or uint16


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
) -> ExplorerModel:
    """What the page shows of one model, on ``spec``'s plane and over its range (a report's
    first grid): the class map (:func:`class_map`) and a seeded subsample of the test
    ``embeddings`` (codes ``[N, d]``, true classes ``labels``) in plane coordinates."""
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
    return ExplorerModel(
        name, OnnxFile.of(decoder), decoder.latent_dim, plane, x_range, y_range,
        background, points, point_labels, total,
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
