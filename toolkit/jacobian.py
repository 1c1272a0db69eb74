"""Jacobians of any decoder by central finite differences, batched and streamed.

A decoder here is anything that maps float32 codes ``[N, D]`` to images ``[N, ...]``: an
``OnnxModel`` run by onnxruntime, or a plain function in a test. No autograd is needed, so
every ONNX decoder a user brings gets the same geometry as one exported from torch.

For each point ``z`` and each direction ``b_k`` (the plane's basis vectors, or the unit vectors
of the latent space for the full Jacobian) one decoder call evaluates the stencil
``z, z + h_k·b_k, z − h_k·b_k`` (``2·k + 1`` rows per point), and

    J[:, k] = (f(z + h_k b_k) − f(z − h_k b_k)) / (2 h_k),

the derivative along ``b_k`` (per unit of the plane coordinate, not per latent unit, when
``b_k`` is not a unit vector).

The step rule (``fd_steps``)
-----------------------------
The decoder computes in float32 (unit round-off ``u = 2⁻²⁴``, machine epsilon ``ε = 2u``). The
central difference has a truncation error ``h²·|f'''|/6`` and a round-off error of about
``δ/h`` where ``δ`` is the absolute error of one decoded pixel (a few ``u`` for pixels in
[0, 1] after a float32 network). The sum is smallest at ``h* = (3δ / |f'''|)^(1/3)``: with
``δ ≈ ε`` and ``|f'''|`` of order one per latent unit³ (decoders trained against an N(0, 1)
prior bend on the scale of one latent unit) that is ``h ≈ ε^(1/3) ≈ 4.9e-3``. Both errors
are then ``≈ ε^(2/3) ≈ 2.4e-5`` relative. Codes far from the origin (an AE's codes reach tens
of units) are represented in float32 only to ``ε·|z|``, so the step grows with the code::

    h = ε^(1/3) · max(1, ‖z‖_∞) / ‖b‖_∞        (ε = float32 machine epsilon)

``/ ‖b‖_∞`` makes the largest change of any latent component ``ε^(1/3)·max(1, ‖z‖_∞)``
whatever the direction's length (a PCA plane's basis counts standard deviations). The step
actually taken is not ``2h``: ``z ± h b`` are rounded to float32 before the decoder sees them.
The difference quotient divides by the step the decoder really received,
``(fl(z + h b) − fl(z − h b))·b / (2 b·b)``, exact for an axis direction, so rounding the
input costs nothing (Press et al., *Numerical Recipes*, 3rd ed., § 5.7, on making ``h`` an
exactly representable difference).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import onnx
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.runtime import (
    Model,
    OnnxModel,
    _parse,
    _read_bytes,
    _session,
    from_layout,
)
from onnx import TensorProto, numpy_helper

EPS32 = float(np.finfo(np.float32).eps)  # 2⁻²³ ≈ 1.19e-7
EPS64 = float(np.finfo(np.float64).eps)  # 2⁻⁵² ≈ 2.2e-16
PRECISIONS = ("auto", "float64", "float32")
# values of one chunk's decoded stencil held at once (2·k+1 images per point): 1 M values,
# 4 MiB in float32 (8 in float64), whatever the number of points asked for. 8 M (the value
# before) gave the same numbers at the same speed and ~100 MB more peak memory to a
# two-model report, whose explorer and analyses run stencils at the same time.
CHUNK_VALUES = 2**20

Decoder = Model | Callable[..., Any]  # a Model, an OnnxModel, or codes -> images


def fd_steps(points: np.ndarray, directions: np.ndarray, eps: float = EPS32) -> np.ndarray:
    """The finite-difference step of each point along each direction (the rule above).

    Parameters
    ----------
    points : array [N, D]
        Latent codes.
    directions : array [k, D]
        Directions of differentiation (nonzero rows).
    eps : float
        Machine epsilon of the precision the decoder computes in.

    Returns
    -------
    array [N, k], float64
        ``√ε · max(1, ‖z‖_∞) / ‖b_k‖_∞``, in units of the direction's coordinate.
    """
    z = np.asarray(points, np.float64)
    b = np.asarray(directions, np.float64)
    scale = np.maximum(1.0, np.abs(z).max(axis=1))  # [N]
    return np.sqrt(eps) * scale[:, None] / np.abs(b).max(axis=1)[None, :]


def stencil(
    points: np.ndarray, directions: np.ndarray, dtype: type = np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """The rows to decode for the central differences, and the steps really taken.

    Returns
    -------
    feed : array [N·(2k+1), D] of ``dtype``
        Per point, in order: ``z``, then ``z + h_k b_k`` and ``z − h_k b_k`` for each k.
    steps : array [N, k], float64
        Half the step the decoder really received along each direction (after rounding the
        perturbed codes to ``dtype``), the ``h`` to divide by.
    """
    z = np.asarray(points, np.float64)
    b = np.asarray(directions, np.float64)
    n, d = z.shape
    k = len(b)
    h = fd_steps(z, b, float(np.finfo(dtype).eps))  # [N, k]
    plus: np.ndarray = (z[:, None, :] + h[:, :, None] * b[None, :, :]).astype(dtype)  # [N, k, D]
    minus: np.ndarray = (z[:, None, :] - h[:, :, None] * b[None, :, :]).astype(dtype)
    feed: np.ndarray = np.empty((n, 2 * k + 1, d), dtype)
    feed[:, 0] = z.astype(dtype)
    feed[:, 1::2] = plus
    feed[:, 2::2] = minus
    # the step as the decoder saw it: the rounded difference, projected on b (exact for axes)
    diff = plus.astype(np.float64) - minus.astype(np.float64)  # [N, k, D]
    taken = np.einsum("nkd,kd->nk", diff, b) / (2.0 * (b**2).sum(axis=1))[None, :]
    return feed.reshape(n * (2 * k + 1), d), taken


# ---------------------------------------------------------------------------- float64 graphs
def widen_to_float64(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` computing in float64: float initializers, inputs, outputs,
    value infos, ``Constant`` tensors and ``Cast(to=FLOAT)`` all widened; nothing else
    changes (same weights, same operators)."""
    wide = onnx.ModelProto()
    wide.CopyFrom(model)
    graphs = [wide.graph]
    while graphs:
        g = graphs.pop()
        for t in g.initializer:
            if t.data_type == TensorProto.FLOAT:
                t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64),
                                                   t.name))  # fmt: skip
        for v in [*g.input, *g.output, *g.value_info]:
            if v.type.tensor_type.elem_type == TensorProto.FLOAT:
                v.type.tensor_type.elem_type = TensorProto.DOUBLE
        for node in g.node:
            for a in node.attribute:
                if node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.DOUBLE
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                    arr = numpy_helper.to_array(a.t).astype(np.float64)
                    a.t.CopyFrom(numpy_helper.from_array(arr, a.t.name))
                if a.type == onnx.AttributeProto.GRAPH:
                    graphs.append(a.g)
    return wide


def float64_decoder(model: OnnxModel) -> Callable[[np.ndarray], np.ndarray] | None:
    """``model``'s graph run in float64 (codes ``[N, D]`` → images ``[N, C, H, W]`` float64),
    or None where onnxruntime has no float64 kernel for one of its operators."""
    raw = _read_bytes(model.path)
    if model.sha256 and hashlib.sha256(raw).hexdigest() != model.sha256:
        raise AtlasError(
            f"model {model.path}: changed on disk since it was loaded; expected the file the "
            "session runs (load it again)"
        )
    try:
        wide = widen_to_float64(_parse(raw, model.path))
        session, _ = _session(wide.SerializeToString(), model.path, model.provider, 0)
        probe = session.run(None, {model.input_name: np.zeros((2, model.latent_dim))})
    except Exception:  # NOT_IMPLEMENTED for a kernel, or anything else: float32 it is
        return None
    if probe[model.logits_index].dtype != np.float64:
        return None

    def run(z: np.ndarray) -> np.ndarray:
        feed = np.ascontiguousarray(z, np.float64)
        out = np.empty((len(feed), *model.image_shape), np.float64)
        for start in range(0, len(feed), model.max_batch):
            part = feed[start : start + model.max_batch]
            raw = session.run(None, {model.input_name: part})[model.logits_index]
            out[start : start + len(part)] = from_layout(raw, model.layout, model.image_shape)
        return out

    return run


def differentiable(decoder: Decoder, precision: str = "auto") -> tuple[Callable[..., Any], Any]:
    """The function to difference and the float type of its inputs.

    ``decoder``: a ``Model``, an ``OnnxModel``, or any callable (codes → images, run as
    given in float32 unless ``precision="float64"``). ``precision``: ``auto`` (float64 where
    the ONNX graph allows, else float32), ``float64`` (refused where not possible for an ONNX
    model) or ``float32``."""
    if precision not in PRECISIONS:
        raise AtlasError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    onnx_model = decoder.decoder if isinstance(decoder, Model) else decoder
    if isinstance(onnx_model, OnnxModel):
        if precision != "float32":
            wide = float64_decoder(onnx_model)
            if wide is not None:
                return wide, np.float64
            if precision == "float64":
                raise AtlasError(
                    f"model {onnx_model.path}: onnxruntime has no float64 kernel for one of its "
                    "operators; expected precision 'auto' or 'float32' for this decoder"
                )
        return onnx_model, np.float32
    return onnx_model, (np.float64 if precision == "float64" else np.float32)


def _check(points: np.ndarray, directions: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(points)
    if z.ndim != 2 or len(z) == 0:
        raise AtlasError(f"points: shape {z.shape}, expected [N, latent_dim] with N >= 1")
    if z.dtype.kind not in "fiu" or not np.isfinite(z).all():
        raise AtlasError("points: expected finite numbers")
    d = z.shape[1]
    b = np.eye(d) if directions is None else np.asarray(directions, np.float64)
    if b.ndim != 2 or b.shape[1] != d or len(b) == 0:
        raise AtlasError(f"directions: shape {b.shape}, expected [k, {d}] with k >= 1")
    if not np.isfinite(b).all() or not (np.abs(b).max(axis=1) > 0).all():
        raise AtlasError("directions: expected finite, nonzero rows")
    return z, b


def chunk_points(pixels: int, k: int, values: int = CHUNK_VALUES) -> int:
    """Points per decoder call so that the stencil's images hold at most ``values`` floats."""
    return max(1, values // max(1, pixels * (2 * k + 1)))


def _pixels(decoder: Callable[..., Any], probe: np.ndarray) -> int:
    """Values per decoded image: from the model's ``image_shape`` when it has one, else from
    one decoded probe row."""
    owner = getattr(decoder, "__self__", decoder)
    shape = getattr(owner, "image_shape", None)
    if shape is not None:
        return int(np.prod(shape))
    return int(np.asarray(decoder(probe))[0].size)


def iter_jacobians(
    decoder: Decoder,
    points: np.ndarray,
    directions: np.ndarray | None = None,
    chunk: int | None = None,
    precision: str = "auto",
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Stream the Jacobians of ``decoder`` at ``points``: one decoder call per chunk.

    Parameters
    ----------
    decoder : Model, OnnxModel or callable
        Codes ``[M, D]`` → images ``[M, ...]``.
    points : array [N, D]
        Latent codes.
    directions : array [k, D], optional
        Directions to differentiate along; default the ``D`` unit vectors (the full Jacobian).
    chunk : int, optional
        Points per call; default what keeps one call's stencil images within ``CHUNK_VALUES``
        values, so memory is bounded whatever ``N`` is.
    precision : {"auto", "float64", "float32"}
        See ``differentiable``.

    Yields
    ------
    start : int
        Index of the chunk's first point.
    images : array [M, ...], float32
        The decoded images at the points themselves.
    jacobian : array [M, P, k], float32
        ``∂f/∂t_k``, ``P`` the number of values per image (pixels × channels).
    """
    z, b = _check(points, directions)
    k = len(b)
    if chunk is not None and chunk < 1:
        raise AtlasError(f"chunk {chunk}: expected >= 1 points per decoder call")
    run, dtype = differentiable(decoder, precision)
    step = chunk or chunk_points(_pixels(run, z[:1].astype(dtype)), k)
    for start in range(0, len(z), step):
        part = z[start : start + step]
        feed, taken = stencil(part, b, dtype)
        out = np.asarray(run(feed))
        m = len(part)
        rows = out.reshape(m, 2 * k + 1, -1)
        # in the decoder's own precision: f(z+h) − f(z−h) of two close values is exact
        # (Sterbenz), and the division adds one rounding
        diff = rows[:, 1::2] - rows[:, 2::2]  # [M, k, P], a new array: divided in place
        diff /= (2.0 * taken).astype(out.dtype)[:, :, None]
        # views where the decoder ran in float32 (no copies on the map's hot path):
        # the Jacobian is [M, P, k] as a transposed view of the [M, k, P] differences
        images = rows[:, 0].reshape(m, *out.shape[1:])
        jac = diff.transpose(0, 2, 1)
        yield start, images.astype(np.float32, copy=False), jac.astype(np.float32, copy=False)


def jacobian(
    decoder: Decoder,
    points: np.ndarray,
    directions: np.ndarray | None = None,
    chunk: int | None = None,
    precision: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """The images and Jacobians at all ``points`` held at once (see ``iter_jacobians``).

    Returns
    -------
    images : array [N, ...], float32
    jacobian : array [N, P, k], float32
    """
    images: list[np.ndarray] = []
    jacs: list[np.ndarray] = []
    for _, im, jac in iter_jacobians(decoder, points, directions, chunk, precision):
        images.append(im)
        jacs.append(jac)
    return np.concatenate(images), np.concatenate(jacs)
