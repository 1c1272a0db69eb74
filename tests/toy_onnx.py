"""Tiny ONNX models built in the tests, whose outputs are known functions of their inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph: onnx.GraphProto, path: Path, meta: dict[str, str] | None = None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (meta or {}).items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, path)
    return path


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


def linear_decoder(
    path: Path, weights: np.ndarray, bias: float, latent_dim: int = 2, sigmoid: bool = False
) -> Path:
    """Every pixel = weights · z + bias (through a sigmoid if asked), so brightness is that
    same function of z. Output ``[N, 1, 28, 28]``."""
    w = np.repeat(np.asarray(weights, np.float32).reshape(latent_dim, 1), 784, axis=1)
    nodes = [
        helper.make_node("MatMul", ["z", "W"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["pre"]),
        helper.make_node("Sigmoid" if sigmoid else "Identity", ["pre"], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], ["image"]),
    ]
    graph = helper.make_graph(
        nodes, "linear_decoder",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", latent_dim])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [_init("W", w), _init("b", np.full(784, bias)),
         numpy_helper.from_array(np.array([-1, 1, 28, 28], np.int64), "shape")],
    )  # fmt: skip
    return _save(graph, path, {"role": "decoder", "latent_dim": str(latent_dim)})


def region_decoder(
    path: Path, proto_a: np.ndarray, proto_b: np.ndarray, split: float = 0.0
) -> Path:
    """Draws ``proto_a`` where z₁ < split and ``proto_b`` where z₁ >= split."""
    nodes = [
        helper.make_node("Slice", ["z", "s0", "s1", "ax"], ["z1"]),  # [N, 1]
        helper.make_node("GreaterOrEqual", ["z1", "split"], ["ge"]),
        helper.make_node("Cast", ["ge"], ["t"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["B", "A"], ["d"]),
        helper.make_node("MatMul", ["t", "d"], ["td"]),  # [N, 784]
        helper.make_node("Add", ["td", "A"], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], ["image"]),
    ]
    i64 = np.int64
    graph = helper.make_graph(
        nodes, "region_decoder",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [_init("A", proto_a.reshape(1, 784)), _init("B", proto_b.reshape(1, 784)),
         _init("split", np.array([split])),
         numpy_helper.from_array(np.array([0], i64), "s0"),
         numpy_helper.from_array(np.array([1], i64), "s1"),
         numpy_helper.from_array(np.array([1], i64), "ax"),
         numpy_helper.from_array(np.array([-1, 1, 28, 28], i64), "shape")],
    )  # fmt: skip
    return _save(graph, path, {"role": "decoder", "latent_dim": "2"})


def linear_encoder(path: Path, projection: np.ndarray) -> Path:
    """z = flatten(x) @ projection, ``projection`` of shape [784, d]."""
    d = projection.shape[1]
    nodes = [
        helper.make_node("Flatten", ["image"], ["flat"]),
        helper.make_node("MatMul", ["flat", "P"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes, "linear_encoder",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", d])],
        [_init("P", projection)],
    )  # fmt: skip
    return _save(graph, path, {"role": "encoder", "latent_dim": str(d)})


def prototype_classifier(path: Path, prototypes: np.ndarray, scale: float = 50.0) -> Path:
    """logits_k = -scale · mean((x - p_k)²); features = a fixed random 16-d projection."""
    k = len(prototypes)
    p = prototypes.reshape(k, 784).astype(np.float32)
    # -scale/784 · (|x|² - 2 x·p + |p|²): the |x|² term is the same for every class, dropped.
    w = (2 * scale / 784) * p.T
    c = -(scale / 784) * (p**2).sum(axis=1)
    nodes = [
        helper.make_node("Flatten", ["image"], ["flat"]),
        helper.make_node("Gemm", ["flat", "W", "c"], ["logits"]),
        helper.make_node("MatMul", ["flat", "R"], ["features"]),
    ]
    graph = helper.make_graph(
        nodes, "prototype_classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", k]),
         helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 16])],
        [_init("W", w), _init("c", c),
         _init("R", np.random.default_rng(1).normal(0, 0.1, (784, 16)))],
    )  # fmt: skip
    return _save(graph, path, {"role": "classifier"})


def toy_pair(folder: Path, weights=(0.1, 0.0), bias: float = 0.5) -> Path:
    """A model folder (encoder.onnx + decoder.onnx) with a linear decoder."""
    rng = np.random.default_rng(0)
    linear_encoder(folder / "encoder.onnx", rng.normal(0, 0.05, (784, 2)))
    linear_decoder(folder / "decoder.onnx", np.asarray(weights), bias)
    return folder


# ---------------------------------------------------------------- other exporters' layouts
LAYOUT_DIMS = {  # image dims after the batch, for a (C, H, W) image
    "NCHW": lambda c, h, w: [c, h, w],
    "NHWC": lambda c, h, w: [h, w, c],
    "NHW": lambda c, h, w: [h, w],
    "flat": lambda c, h, w: [c * h * w],
}


def layout_decoder(
    path: Path,
    layout: str,
    weights=(0.05, 0.0),
    bias: float = 0.5,
    shape=(1, 28, 28),
    batch: str | int = "N",
    out_batch: str | int | None = None,
    meta: dict[str, str] | None = None,
) -> Path:
    """Every value = weights · z + bias, written in ``layout`` (so brightness is that
    function of z whatever the layout); ``batch`` may be fixed to an int."""
    c, h, w = shape
    d = len(weights)
    pixels = c * h * w
    wmat = np.repeat(np.asarray(weights, np.float32).reshape(d, 1), pixels, axis=1)
    dims = LAYOUT_DIMS[layout](c, h, w)
    nodes = [
        helper.make_node("MatMul", ["z", "W"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], ["image"]),
    ]
    graph = helper.make_graph(
        nodes, f"{layout}_decoder",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [batch, d])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                       [out_batch if out_batch is not None else batch, *dims])],
        [_init("W", wmat), _init("b", np.full(pixels, bias)),
         numpy_helper.from_array(np.array([-1, *dims], np.int64), "shape")],
    )  # fmt: skip
    return _save(graph, path, meta)


def layout_encoder(
    path: Path, layout: str, projection: np.ndarray, shape=(1, 28, 28), batch: str | int = "N"
) -> Path:
    """z = flatten(x) @ projection, reading images laid out as ``layout``."""
    c, h, w = shape
    dims = LAYOUT_DIMS[layout](c, h, w)
    nodes = [helper.make_node("Flatten", ["image"], ["flat"]),
             helper.make_node("MatMul", ["flat", "P"], ["z"])]  # fmt: skip
    graph = helper.make_graph(
        nodes, f"{layout}_encoder",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, *dims])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [batch, projection.shape[1]])],
        [_init("P", projection)],
    )  # fmt: skip
    return _save(graph, path)


def plain_classifier(path: Path, prototypes: np.ndarray, softmax: bool = False,
                     hidden_softmax: bool = False, scale: float = 50.0) -> Path:  # fmt: skip
    """The prototype classifier with a single output: logits, or probabilities (a Softmax at
    the end; ``hidden_softmax`` puts an Identity after it so the graph does not show it)."""
    k = len(prototypes)
    p = prototypes.reshape(k, -1).astype(np.float32)
    n = p.shape[1]
    w = (2 * scale / n) * p.T
    c = -(scale / n) * (p**2).sum(axis=1)
    nodes = [helper.make_node("Flatten", ["image"], ["flat"]),
             helper.make_node("Gemm", ["flat", "W", "c"], ["scores"])]  # fmt: skip
    if softmax:
        nodes.append(helper.make_node("Softmax", ["scores"], ["output"], axis=1))
    elif hidden_softmax:
        nodes.append(helper.make_node("Softmax", ["scores"], ["probs"], axis=1))
        nodes.append(helper.make_node("Identity", ["probs"], ["output"]))
    else:
        nodes.append(helper.make_node("Identity", ["scores"], ["output"]))
    graph = helper.make_graph(
        nodes, "plain_classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", k])],
        [_init("W", w), _init("c", c)],
    )  # fmt: skip
    return _save(graph, path)
