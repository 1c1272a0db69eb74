"""Rows per onnxruntime call: enough to keep the matrix products efficient, few enough that
one call's activations stay within a budget.

onnxruntime's CPU arena keeps its high-water mark for the life of a session (or of the
process, with the shared arena of ``runtime``), so one call at a large batch costs that memory
until the end: the shipped classifier at 4096 images holds ~1.2 GB (its first convolution's
output alone is 4096 × 32 × 28 × 28 × 4 B = 411 MB), at 64 images ~20 MB, and runs faster per
CPU second (see ``ACTIVATION_BUDGET``). The batch is sized from
the graph itself: the bytes per row of every intermediate tensor after shape inference (an
upper bound — the memory planner reuses buffers), divided into the budget.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

# bytes of intermediate tensors per onnxruntime call: a few L2 caches. The decoder at 960 rows
# (12 MiB) decodes 1001×1001 faster than at 320 (4 MiB), by wall clock and per CPU second
# (measured in one process, interleaved, 3 rounds, sessions without spinning workers as the
# runtime makes them: 1024 rows 2.58–2.65 s wall / 4.87–4.93 CPU s, 320 rows 2.73–2.83 s /
# 5.02–5.18 CPU s, 1344 rows 2.64–2.72 s). The CNN classifier stays at its floor of 64 images
# (358 kB of activations each), where it is fastest per CPU second (25 k images at ≤ 64 vs 21 k
# at 512); a 2048³ MatMul does ~230 GFLOP per CPU second.
ACTIVATION_BUDGET = 12 * 2**20
MIN_BATCH, MAX_BATCH = 64, 4096
UNKNOWN_BATCH = 512  # where shape inference cannot size the activations
# A GPU has no cache to fit and wants many rows per kernel launch: a budget of device memory
# instead. Measured on an H100 (onnxruntime-gpu 1.31.1): the shipped decoder at 43 200 rows per
# call decodes 1001×1001 in 0.093 s; the fused atlas takes 1.20 s at 1 408 rows and 1.0 s at
# 16 384, and at 65 536 rows cuDNN's MaxPool fails (CUDNN_STATUS_NOT_SUPPORTED): hence the cap.
GPU_ACTIVATION_BUDGET = 512 * 2**20
GPU_MAX_BATCH = 32768


def budget_for(provider: str) -> tuple[int, int]:
    """(activation budget in bytes, largest batch) for a session on ``provider`` (cpu/cuda)."""
    if provider == "cuda":
        return GPU_ACTIVATION_BUDGET, GPU_MAX_BATCH
    return ACTIVATION_BUDGET, MAX_BATCH


def row_bytes(inferred: onnx.ModelProto) -> int | None:
    """Bytes of every intermediate tensor per batch row of a shape-inferred model; None where
    a size is not known (a symbol other than the batch, an unknown rank)."""
    total = 0
    for v in inferred.graph.value_info:
        t = v.type.tensor_type
        if not t.HasField("shape"):
            return None
        dims = t.shape.dim
        if not dims or dims[0].HasField("dim_value"):
            continue  # scalars and fixed-size tensors (shapes, constants): not per row
        rest = [d.dim_value if d.HasField("dim_value") else 0 for d in dims[1:]]
        if 0 in rest:
            return None
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).itemsize
        total += int(np.prod(rest)) * itemsize
    return total or None


def activation_batch(
    inferred: onnx.ModelProto,
    budget: int = ACTIVATION_BUDGET,
    largest: int = MAX_BATCH,
    unknown: int = UNKNOWN_BATCH,
) -> int:
    """Rows per call so that the activations fit ``budget`` bytes: in [MIN_BATCH, largest],
    a multiple of 64; ``unknown`` where the sizes are not known."""
    per_row = row_bytes(inferred)
    if per_row is None:
        return unknown
    return int(min(largest, max(MIN_BATCH, budget // per_row // 64 * 64)))


def inferred(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """``model`` after shape inference, or None where inference fails."""
    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception:  # a help, not a requirement
        return None
