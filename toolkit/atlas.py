"""A dense atlas of a latent plane: class, confidence and brightness at every grid point.

A class map needs, per latent point, three numbers — not the decoded image. So the decoder and
the classifier are composed into **one ONNX graph** (:func:`fuse_graphs`):

    z ─► decoder ─► image ─┬─► mean over pixels and channels ────► brightness [N]
                           ├─► min, max over the batch ──────────► pixel_min, pixel_max
                           └─► (layout glue) ─► classifier ─► logits ─┬─► argmax ─► labels [N]
                                                                      └─► max softmax ─► confidence

and onnxruntime streams the grid through it in batches, writing those outputs straight into
the result arrays (IO binding): images live only inside onnxruntime, one batch at a time.
Memory is bounded by the batch (sized from the graph's activations), not by the grid.

The composed graph is checked like any model file (``onnx.checker`` and the runtime's own
parse-time refusals) before onnxruntime sees it. Where the two files cannot be composed (an
operator the opset converter cannot lift, a checker failure), :func:`compute_atlas` decodes
and classifies separately and says so in :attr:`Atlas.method`.
"""

from __future__ import annotations

import atexit
import hashlib
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from latent_atlas.toolkit import batching, runtime
from latent_atlas.toolkit.binding import BoundRunner
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec, Plane
from latent_atlas.toolkit.memory import one_malloc_arena
from latent_atlas.toolkit.runtime import OnnxModel
from onnx import TensorProto, helper, numpy_helper
from tqdm.auto import tqdm

LAYOUTS = ("NCHW", "NHWC", "NHW", "flat")
INPUT = "z"  # the composed graph's one input: latent codes [N, d]
OUTPUTS = ("labels", "confidence", "brightness", "pixel_min", "pixel_max")
DEFAULT_STEPS = 256  # per axis: 65 536 points
MAX_STEPS = 1001  # per axis: 1 002 001 points, ~16 MB of results
FALLBACK_BATCH = batching.UNKNOWN_BATCH  # when shape inference cannot size the activations
DEFAULT_DOMAINS = ("", "ai.onnx")

Shape = tuple[int, int, int]


# ---------------------------------------------------------------------------- result
@dataclass
class Atlas:
    """One model's dense maps over a plane (``[ny, nx]``, row ``i`` at ``y[i]``, column ``j``
    at ``x[j]``, both increasing, like every grid of the toolkit).

    ``method`` is ``"fused"`` (one composed graph) or ``"separate"`` (decoded to images and
    classified in two runs); ``note`` says why a fused atlas was not possible.
    """

    x: np.ndarray  # [nx] first plane coordinate, increasing
    y: np.ndarray  # [ny] second plane coordinate, increasing
    labels: np.ndarray  # int64 [ny, nx]: the classifier's argmax
    confidence: np.ndarray  # float32 [ny, nx]: max softmax probability, in [1/K, 1]
    brightness: np.ndarray  # float32 [ny, nx]: mean over pixels and channels, in [0, 1]
    spec: GridSpec
    method: str = "fused"
    batch_size: int = 0
    note: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.y), len(self.x))


# ---------------------------------------------------------------------------- graph edit
def _default_opset(model: onnx.ModelProto) -> int:
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    if not versions:
        raise AtlasError(f"model {model.graph.name!r}: no default-domain opset import")
    return max(versions)


def _at_opset(model: onnx.ModelProto, target: int, what: str) -> onnx.ModelProto:
    if _default_opset(model) == target:
        return model
    try:
        from onnx import version_converter

        return version_converter.convert_version(model, target)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise AtlasError(
            f"{what}: cannot lift opset {_default_opset(model)} to {target} to compose it with "
            f"the other model ({first})"
        ) from None


def _reshape_dims(layout: str, shape: Shape) -> list[int]:
    c, h, w = shape
    return {
        "NCHW": [-1, c, h, w],
        "NHWC": [-1, h, w, c],
        "NHW": [-1, h, w],
        "flat": [-1, c * h * w],
    }[layout]


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value.type.tensor_type.shape.dim]  # fmt: skip


def _memory_order(layout: str, channels: int) -> str:
    # NCHW, [N, H, W] and flat (read as C·H·W, the runtime's convention) share one order of
    # values in memory; NHWC differs only when there is more than one channel.
    return "HWC" if layout == "NHWC" and channels > 1 else "CHW"


class _Builder:
    """Nodes and constants of the glue between and after the two models (names under
    ``atlas/``, which neither prefixed model can use)."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def name(self, stem: str) -> str:
        return f"atlas/{stem}"

    def const(self, stem: str, values: list[int]) -> str:
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
        return name

    def node(self, op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def reshape(self, x: str, dims: list[int], stem: str) -> str:
        return self.node("Reshape", [x, self.const(f"{stem}_dims", dims)], self.name(stem))

    def reduce(self, op: str, x: str, out: str, axes: list[int] | None) -> str:
        """``op`` over ``axes`` (all axes when None), dims dropped; axes became an input in
        opset 18 (ReduceMean/Max/Min)."""
        if axes is None:
            return self.node(op, [x], out, keepdims=0)
        if self.opset >= 18:
            return self.node(op, [x, self.const(f"{out}_axes", axes)], out, keepdims=0)
        return self.node(op, [x], out, axes=axes, keepdims=0)

    def convert_layout(self, x: str, src: str, dst: str, shape: Shape) -> str:
        """The decoder's image tensor ``x`` (layout ``src``) as the classifier's input."""
        if src == dst:
            return x
        channels = shape[0]
        if _memory_order(src, channels) == _memory_order(dst, channels):
            return self.reshape(x, _reshape_dims(dst, shape), "classifier_input")
        # HWC ↔ CHW: a transpose of the 4-D image, then whatever shape the classifier wants
        if src == "NHWC":
            x4 = x
            perm = [0, 3, 1, 2]
            out_layout = "NCHW"
        else:
            x4 = x if src == "NCHW" else self.reshape(x, _reshape_dims("NCHW", shape), "nchw")
            perm = [0, 2, 3, 1]
            out_layout = "NHWC"
        moved = self.node("Transpose", [x4], self.name("transposed"), perm=perm)
        if out_layout == dst:
            return moved
        return self.reshape(moved, _reshape_dims(dst, shape), "classifier_input")


def _prune(graph: onnx.GraphProto, keep_outputs: list[str]) -> list[onnx.NodeProto]:
    """The nodes the outputs ``keep_outputs`` depend on (the graph is topologically sorted;
    names a subgraph reads from the outer scope count as inputs of its node)."""
    needed = set(keep_outputs)
    kept = []
    for node in reversed(graph.node):
        if not any(o in needed for o in node.output):
            continue
        kept.append(node)
        needed.update(node.input)
        needed.update(_subgraph_reads(node))
    return kept[::-1]


def _subgraph_reads(node: onnx.NodeProto) -> set[str]:
    names: set[str] = set()
    for attr in node.attribute:
        for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
            for n in g.node:
                names.update(n.input)
                names.update(_subgraph_reads(n))
    return names


def fuse_graphs(
    decoder: onnx.ModelProto,
    classifier: onnx.ModelProto,
    *,
    image_shape: Shape,
    decoder_output: str,
    decoder_layout: str,
    classifier_input: str,
    classifier_layout: str,
    logits_output: str,
    probabilities: bool = False,
) -> onnx.ModelProto:
    """Compose ``decoder`` → ``classifier`` into one graph with one input, ``z`` (the codes
    ``[N, d]``), whose outputs are, per latent row,
    ``labels`` (int64 [N], argmax of the logits), ``confidence`` (float32 [N], the largest
    softmax probability; the output itself when ``probabilities``) and ``brightness``
    (float32 [N], mean over pixels and channels), plus ``pixel_min`` and ``pixel_max``
    (float32 scalars over the batch: a decoder must stay in [0, 1]).

    Names are prefixed (``decoder/``, ``classifier/``) so the two files cannot clash; the file
    with the lower default opset is lifted to the other's (``onnx.version_converter``) and the
    IR version is the higher one; the image goes from the decoder's layout to the classifier's
    (``NCHW``, ``NHWC``, ``NHW`` or ``flat``, flat read as C·H·W) with a reshape, and a
    transpose only where the order of values differs. Everything the outputs do not need (a
    feature output, a decoder's extra outputs) is dropped.
    """
    for layout in (decoder_layout, classifier_layout):
        if layout not in LAYOUTS:
            raise AtlasError(f"image layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    for what, m, name in (("decoder", decoder, None), ("classifier", classifier, classifier_input)):
        inits = {t.name for t in m.graph.initializer}
        real = [i.name for i in m.graph.input if i.name not in inits]
        if len(real) != 1 or (name is not None and real[0] != name):
            raise AtlasError(f"{what}: inputs {real}; expected exactly one ({name or 'codes'})")
    opset = max(_default_opset(decoder), _default_opset(classifier))
    dec = _at_opset(decoder, opset, "decoder")
    clf = _at_opset(classifier, opset, "classifier")
    dec = onnx.compose.add_prefix(dec, "decoder/")
    clf = onnx.compose.add_prefix(clf, "classifier/")
    image = f"decoder/{decoder_output}"
    clf_in = f"classifier/{classifier_input}"
    logits = f"classifier/{logits_output}"

    b = _Builder(opset)
    dec_inits = {t.name for t in dec.graph.initializer}
    (dec_in,) = [i for i in dec.graph.input if i.name not in dec_inits]
    codes = helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", _dims(dec_in)[1]])
    b.node("Identity", [INPUT], dec_in.name)
    fed = b.convert_layout(image, decoder_layout, classifier_layout, image_shape)
    flat = b.reshape(image, [-1, int(np.prod(image_shape))], "flat_image")
    b.reduce("ReduceMean", flat, "brightness", [1])
    b.reduce("ReduceMin", flat, "pixel_min", None)
    b.reduce("ReduceMax", flat, "pixel_max", None)
    # the classifier reads the glue's tensor under its own input name (subgraphs included)
    b.node("Identity", [fed], clf_in)
    before = len(b.nodes)
    b.node("ArgMax", [logits], "labels", axis=1, keepdims=0)
    probs = logits if probabilities else b.node("Softmax", [logits], b.name("probs"), axis=1)
    b.reduce("ReduceMax", probs, "confidence", [1])

    graph = helper.make_graph(
        b.nodes[:1]
        + list(dec.graph.node)
        + b.nodes[1:before]
        + list(clf.graph.node)
        + b.nodes[before:],
        "atlas",
        [codes],
        [
            helper.make_tensor_value_info("labels", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("confidence", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("brightness", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("pixel_min", TensorProto.FLOAT, []),
            helper.make_tensor_value_info("pixel_max", TensorProto.FLOAT, []),
        ],
        list(dec.graph.initializer) + list(clf.graph.initializer) + b.inits,
        sparse_initializer=list(dec.graph.sparse_initializer) + list(clf.graph.sparse_initializer),
    )
    kept = _prune(graph, list(OUTPUTS))
    del graph.node[:]
    graph.node.extend(kept)
    used = {i for n in kept for i in n.input} | {i for n in kept for i in _subgraph_reads(n)}
    kept_inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    others: dict[str, int] = {}
    for m in (dec, clf):
        for o in m.opset_import:
            if o.domain not in DEFAULT_DOMAINS:
                if others.get(o.domain, o.version) != o.version:
                    raise AtlasError(
                        f"opset domain {o.domain!r}: versions {others[o.domain]} and {o.version}"
                    )
                others[o.domain] = o.version
    opsets = [helper.make_opsetid("", opset)]
    opsets += [helper.make_opsetid(d, v) for d, v in sorted(others.items())]
    fused = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="latent-atlas",
    )
    fused.ir_version = max(
        decoder.ir_version, classifier.ir_version, helper.find_min_ir_version_for([opsets[0]])
    )
    fused.functions.extend(list(dec.functions) + list(clf.functions))
    fused.metadata_props.add(key="role", value="atlas")
    return fused


# ---------------------------------------------------------------------------- models → graph
def _file_model(model: OnnxModel) -> onnx.ModelProto:
    """The model's file again, refused like any model file, and only if unchanged since it
    was loaded (same sha256)."""
    raw = Path(model.path).read_bytes()
    if model.sha256 and hashlib.sha256(raw).hexdigest() != model.sha256:
        raise AtlasError(f"model {model.path}: changed on disk since it was loaded; reload it")
    return runtime._parse(raw, Path(model.path))


def _output_name(model: OnnxModel) -> str:
    return model.output_names[model.logits_index]


def fused_model(decoder: OnnxModel, classifier: OnnxModel) -> onnx.ModelProto:
    """The atlas graph of two loaded models (their files, checked again), validated by
    ``onnx.checker`` (full check) and by the runtime's parse-time refusals."""
    shape = decoder.image_shape
    if classifier.image_shape != shape:
        raise AtlasError(
            f"models {decoder.path} and {classifier.path}: the decoder makes images of {shape}, "
            f"the classifier takes {classifier.image_shape}"
        )
    fused = fuse_graphs(
        _file_model(decoder),
        _file_model(classifier),
        image_shape=shape,
        decoder_output=_output_name(decoder),
        decoder_layout=decoder.layout,
        classifier_input=classifier.input_name,
        classifier_layout=classifier.layout,
        logits_output=_output_name(classifier),
        probabilities=classifier.probabilities,
    )
    try:
        onnx.checker.check_model(fused, full_check=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise AtlasError(f"composed atlas graph: onnx.checker refused it ({first})") from None
    return fused


def fused_session(
    fused: onnx.ModelProto, provider: str = "auto", threads: int = 0
) -> tuple[ort.InferenceSession, str]:
    """An onnxruntime session on the composed graph, after the same refusals as any model
    file; returns it with the provider it really runs on (``cpu`` or ``cuda``)."""
    raw = fused.SerializeToString()
    where = Path("<atlas graph>")
    runtime._parse(raw, where)  # the refusals every model file gets
    return runtime._session(raw, where, provider, threads)


def auto_batch(model: onnx.ModelProto, provider: str = "cpu", budget: int | None = None) -> int:
    """Rows per onnxruntime call so that the composed graph's activations fit ``budget``
    bytes (default: the budget of ``provider``; see :mod:`latent_atlas.toolkit.batching`)."""
    graph = batching.inferred(model)
    if graph is None:
        return FALLBACK_BATCH
    default, largest = batching.budget_for(provider)
    return batching.activation_batch(graph, budget or default, largest=largest)


# ---------------------------------------------------------------------------- the atlas
def _check_spec(spec: GridSpec) -> None:
    if max(spec.steps) > MAX_STEPS:
        raise AtlasError(
            f"atlas of {spec.steps[0]}×{spec.steps[1]} points: at most {MAX_STEPS} per axis"
        )


# A Sigmoid computed in float32 can round to 1 + 2⁻²³ (onnxruntime does, at one pixel of the
# shipped VAE's 256×256 grid): rounding, not a decoder outside [0, 1].
PIXEL_SLACK = 1e-6


def _check_range(lo: float, hi: float, where: str) -> None:
    if not (lo >= -PIXEL_SLACK and hi <= 1.0 + PIXEL_SLACK):
        raise AtlasError(
            f"decoder {where}: outputs pixel values in [{lo:.4g}, {hi:.4g}], expected [0, 1]; "
            "end the decoder with a Sigmoid"
        )


def compute_atlas(
    decoder: OnnxModel,
    classifier: OnnxModel,
    spec: GridSpec,
    batch_size: int | None = None,
    embeddings: np.ndarray | None = None,
    progress: bool = False,
    fused: bool | None = None,
) -> Atlas:
    """Class, confidence and brightness at every point of ``spec``'s grid, streamed.

    ``fused``: True composes the two models into one graph (an error if they cannot be
    composed), False decodes to images and classifies them in two runs, None (default) fuses
    where possible and falls back to two runs, saying why in ``Atlas.note``. ``batch_size``
    None sizes batches from the graph's activations (:func:`auto_batch`). Memory: the three
    ``[ny, nx]`` result maps plus one batch of activations.
    """
    _check_spec(spec)
    if batch_size is not None and batch_size < 1:
        raise AtlasError(f"batch size {batch_size}: expected >= 1")
    plane = spec.resolve_plane(decoder.latent_dim, embeddings)
    x, y = spec.coordinates(embeddings, plane)
    _probe_classifier(decoder, classifier, plane, x, y)
    if embeddings is None or _needs_no_embeddings(decoder, spec):
        early = _take_early(_early_key(decoder, classifier, spec, batch_size, fused))
        if early is not None:
            return early
    return _compute(decoder, classifier, spec, plane, x, y, batch_size, progress, fused)


def _compute(
    decoder: OnnxModel,
    classifier: OnnxModel,
    spec: GridSpec,
    plane: Plane,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int | None,
    progress: bool,
    fused: bool | None,
    stop: threading.Event | None = None,
) -> Atlas:
    note = ""
    graph = None
    try:  # composed even for two runs: it sizes the batch the same way for both paths
        graph = fused_model(decoder, classifier)
    except AtlasError as exc:
        if fused:
            raise
        note = f"not fused: {exc}"
    batch = batch_size or (
        auto_batch(graph, decoder.provider) if graph is not None else FALLBACK_BATCH
    )
    if graph is not None and fused is not False:
        return _fused_atlas(decoder, graph, spec, plane, x, y, batch, progress, stop)
    atlas = _separate_atlas(decoder, classifier, spec, plane, x, y, batch, progress, stop)
    atlas.note = note
    return atlas


def _probe_classifier(
    decoder: OnnxModel, classifier: OnnxModel, plane: Plane, x: np.ndarray, y: np.ndarray
) -> None:
    """Classify a few decoded points of the grid first, so a classifier whose output is
    already a distribution (a Softmax hidden behind other nodes) is known as one before the
    graph is composed — the composed graph must not apply a second softmax."""
    n = len(x) * len(y)
    k = np.unique(np.linspace(0, n - 1, min(n, 64)).astype(np.int64))
    images = decoder(plane.points(x[k % len(x)], y[k // len(x)]))
    _check_range(float(images.min()), float(images.max()), str(decoder.path))
    classifier.detect_probabilities(classifier.run(images.astype(np.float32)))


def _bar(n: int, progress: bool) -> tqdm:
    return tqdm(total=n, desc="atlas", unit="pt", disable=None if progress else True, leave=False)


def _fused_atlas(
    decoder: OnnxModel,
    graph: onnx.ModelProto,
    spec: GridSpec,
    plane: Plane,
    x: np.ndarray,
    y: np.ndarray,
    batch: int,
    progress: bool,
    stop: threading.Event | None = None,
) -> Atlas:
    session, device = fused_session(graph, decoder.provider, _threads(decoder))
    runner = BoundRunner(session, session.get_inputs()[0].name, device, "atlas graph")
    n = len(x) * len(y)
    labels = np.empty(n, np.int64)
    confidence = np.empty(n, np.float32)
    brightness = np.empty(n, np.float32)
    lo, hi = np.empty((), np.float32), np.empty((), np.float32)
    bar = _bar(n, progress)
    for start in range(0, n, batch):
        _check_stop(stop)
        end = min(n, start + batch)
        z = spec.points(x, y, plane, start, end)
        runner.run_into(
            z,
            {
                "labels": labels[start:end],
                "confidence": confidence[start:end],
                "brightness": brightness[start:end],
                "pixel_min": lo,
                "pixel_max": hi,
            },
        )
        _check_range(float(lo), float(hi), str(decoder.path))
        bar.update(end - start)
    bar.close()
    shape = (len(y), len(x))
    return Atlas(
        x, y, labels.reshape(shape), confidence.reshape(shape), brightness.reshape(shape),
        spec, "fused", batch,
    )  # fmt: skip


def _threads(model: OnnxModel) -> int:
    opts = model.session.get_session_options()
    return int(opts.intra_op_num_threads)


def _separate_atlas(
    decoder: OnnxModel,
    classifier: OnnxModel,
    spec: GridSpec,
    plane: Plane,
    x: np.ndarray,
    y: np.ndarray,
    batch: int,
    progress: bool,
    stop: threading.Event | None = None,
) -> Atlas:
    """The same maps the unfused way: decode a batch to images, classify them, reduce."""
    n = len(x) * len(y)
    labels = np.empty(n, np.int64)
    confidence = np.empty(n, np.float32)
    brightness = np.empty(n, np.float32)
    bar = _bar(n, progress)
    for start in range(0, n, batch):
        _check_stop(stop)
        end = min(n, start + batch)
        images = decoder(spec.points(x, y, plane, start, end), batch)
        images = images.reshape(len(images), *decoder.image_shape)
        flat = images.reshape(len(images), -1)
        _check_range(float(flat.min()), float(flat.max()), str(decoder.path))
        brightness[start:end] = flat.mean(axis=1)
        # the runtime hands back logits (log p for a classifier that outputs probabilities)
        logits = classifier(images, batch).astype(np.float32)
        labels[start:end] = logits.argmax(axis=1)
        # max softmax = 1 / Σ exp(l - max l)
        shifted = logits - logits.max(axis=1, keepdims=True)
        confidence[start:end] = 1.0 / np.exp(shifted).sum(axis=1)
        bar.update(end - start)
    bar.close()
    shape = (len(y), len(x))
    return Atlas(
        x, y, labels.reshape(shape), confidence.reshape(shape), brightness.reshape(shape),
        spec, "separate", batch,
    )  # fmt: skip


# ---------------------------------------------------------------------------- early start
# A report spends its first seconds importing its analysis modules on one core, while an atlas
# is onnxruntime work (the GIL released) that needs only the model files and the grid. So
# `report` starts its models' atlases on a thread before it imports (start_early), and
# compute_atlas takes an early result whose inputs are the same as its own (the files'
# sha256, layouts, provider, session threads, the classifier's output kind, the grid, the
# batch) instead of computing it again: the same numbers, computed sooner. Anything else (an
# early start that failed, or one for other inputs) is computed as before.
_EARLY: dict[tuple, Future[Atlas]] = {}
_EARLY_LOCK = threading.Lock()
_EARLY_STOP = threading.Event()


class _Stopped(Exception):
    """An early atlas given up: the process is ending."""


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise _Stopped


def _range_in_latent_units(spec: GridSpec) -> bool:
    """Whether ``spec``'s range and plane are given, not taken from the test embeddings."""
    return spec.mode != "auto" and spec.plane not in ("pca", "images")


def _needs_no_embeddings(decoder: OnnxModel, spec: GridSpec) -> bool:
    """Whether ``spec``'s points for ``decoder`` are the same with any embeddings or none (a
    2-D model over a range given in latent units)."""
    return decoder.latent_dim == 2 and _range_in_latent_units(spec)


def _early_key(
    decoder: OnnxModel, classifier: OnnxModel, spec: GridSpec, batch_size: int | None,
    fused: bool | None,
) -> tuple:  # fmt: skip
    return (
        decoder.sha256, decoder.layout, decoder.image_shape, decoder.provider, _threads(decoder),
        classifier.sha256, classifier.layout, classifier.image_shape, classifier.probabilities,
        classifier.logits_index, spec, batch_size, fused,
    )  # fmt: skip


def _take_early(key: tuple) -> Atlas | None:
    with _EARLY_LOCK:
        future = _EARLY.pop(key, None)
    if future is None:
        return None
    try:
        return future.result()
    except Exception:  # the early start's own failure: computed again, failing as it fails
        return None


def atlas_spec_over(spec: GridSpec, x: np.ndarray, y: np.ndarray, steps: int) -> GridSpec:
    """An even ``steps`` × ``steps`` grid over the range of ``spec``'s coordinates ``x``,
    ``y`` (its plane; the explorer's background is drawn on the same points)."""
    x_range, y_range = (float(x[0]), float(x[-1])), (float(y[0]), float(y[-1]))
    return replace(spec, mode="linear", steps=(steps, steps), x_range=x_range, y_range=y_range)


def start_early(
    models: Sequence[Path], classifier: Path, grid: GridSpec, steps: int, provider: str,
    threads: int,
) -> threading.Thread | None:  # fmt: skip
    """Start the atlases of ``models`` (folders or decoder files) with ``classifier`` over
    ``grid``'s range at ``steps`` points per axis, one model after the other on a daemon
    thread, for :func:`compute_atlas` to take. Only 2-D decoders over a range in latent
    units are started (the others need the test embeddings); a failure is left to the
    report's own run to meet. The thread (returned; None when nothing starts) stops between
    batches when the process exits."""
    with _EARLY_LOCK:  # one command's at a time: what an earlier one left is not taken now
        _EARLY.clear()
    if not _range_in_latent_units(grid) or steps < 2:
        return None
    one_malloc_arena()  # before this thread, not only before the analyses' (toolkit.memory)
    thread = threading.Thread(target=_early, args=(tuple(models), classifier, grid, steps,
                              provider, threads), name="early-atlas", daemon=True)  # fmt: skip
    atexit.register(_stop_early, thread)
    thread.start()
    return thread


def _early(
    models: tuple[Path, ...], classifier_path: Path, grid: GridSpec, steps: int, provider: str,
    threads: int,
) -> None:  # fmt: skip
    try:
        classifier = runtime.load_model(classifier_path, "classifier", provider, threads)
    except Exception:  # the report meets it (or does not use this classifier)
        return
    for source in models:
        if _EARLY_STOP.is_set():
            return
        future: Future[Atlas] = Future()
        future.set_running_or_notify_cancel()
        try:
            decoder = runtime.load(source, provider, threads).decoder
            if not _needs_no_embeddings(decoder, grid):
                continue
            plane = grid.resolve_plane(decoder.latent_dim)
            spec = atlas_spec_over(grid, *grid.coordinates(None, plane), steps)
            plane = spec.resolve_plane(decoder.latent_dim)
            x, y = spec.coordinates(None, plane)
            _probe_classifier(decoder, classifier, plane, x, y)
            with _EARLY_LOCK:
                _EARLY[_early_key(decoder, classifier, spec, None, None)] = future
            future.set_result(_compute(decoder, classifier, spec, plane, x, y, None, False, None,
                                       _EARLY_STOP))  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - whoever takes it computes it again
            if not future.done():
                future.set_exception(exc)


def _stop_early(thread: threading.Thread) -> None:
    """At exit: the early thread stops at its next batch, before onnxruntime is torn down."""
    _EARLY_STOP.set()
    thread.join(timeout=10)
