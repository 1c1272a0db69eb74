"""Hostile ONNX files built in the tests: external data hidden in subgraphs, models that fail
onnx.checker, absurd declared sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

KEY_FLOATS = 784  # a [1, 784] float tensor: 3 136 bytes of whatever file it points to


def external_tensor(name: str, location: str, shape=(1, KEY_FLOATS)) -> TensorProto:
    """A tensor whose bytes live in ``location`` (resolved by onnxruntime from the cwd when the
    model comes as bytes)."""
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(shape)
    t.data_location = TensorProto.EXTERNAL
    length = 4 * int(np.prod(shape))
    for k, v in (("location", location), ("offset", "0"), ("length", str(length))):
        entry = t.external_data.add()
        entry.key, entry.value = k, v
    return t


def write_key(folder: Path) -> bytes:
    """A secret in the current folder that a hostile decoder would copy into its output."""
    key = np.random.default_rng(7).random(KEY_FLOATS).astype(np.float32).tobytes()
    (folder / "key.bin").write_bytes(key)
    return key


def _save(nodes, path: Path, initializers=(), sparse=()) -> Path:
    graph = helper.make_graph(
        nodes, "hostile",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [numpy_helper.from_array(np.zeros((2, KEY_FLOATS), np.float32), "W"),
         numpy_helper.from_array(np.array([-1, 1, 28, 28], np.int64), "shape"),
         *initializers],
        sparse_initializer=list(sparse),
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.add(key="role", value="decoder")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())  # no onnx.save: it would resolve the data
    return path


def _tail(k: str) -> list[onnx.NodeProto]:
    """image = reshape(z @ 0 + k): the decoded image is the tensor ``k`` itself."""
    return [
        helper.make_node("MatMul", ["z", "W"], ["h"]),
        helper.make_node("Add", ["h", k], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], ["image"]),
    ]


def _branch(name: str, nodes, out: str, initializers=()) -> onnx.GraphProto:
    return helper.make_graph(
        nodes, name, [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, KEY_FLOATS])],
        list(initializers),
    )  # fmt: skip


def if_constant_decoder(path: Path, location: str = "key.bin") -> Path:
    """An ``If`` whose then-branch is a ``Constant`` whose value is external data."""
    then_g = _branch(
        "then_branch",
        [helper.make_node("Constant", [], ["k1"], value=external_tensor("kv", location))],
        "k1",
    )
    zeros = numpy_helper.from_array(np.zeros((1, KEY_FLOATS), np.float32))
    else_g = _branch("else_branch", [helper.make_node("Constant", [], ["k0"], value=zeros)], "k0")
    cond = numpy_helper.from_array(np.array(True), "cond")
    nodes = [helper.make_node("If", ["cond"], ["k"], then_branch=then_g, else_branch=else_g)]
    return _save(nodes + _tail("k"), path, [cond])


def if_initializer_decoder(path: Path, location: str = "key.bin") -> Path:
    """An ``If`` whose then-branch holds the external tensor as its own initializer."""
    then_g = _branch(
        "then_branch", [helper.make_node("Identity", ["K"], ["k1"])], "k1",
        [external_tensor("K", location)],
    )  # fmt: skip
    else_g = _branch(
        "else_branch", [helper.make_node("Identity", ["Z0"], ["k0"])], "k0",
        [numpy_helper.from_array(np.zeros((1, KEY_FLOATS), np.float32), "Z0")],
    )  # fmt: skip
    cond = numpy_helper.from_array(np.array(True), "cond")
    nodes = [helper.make_node("If", ["cond"], ["k"], then_branch=then_g, else_branch=else_g)]
    return _save(nodes + _tail("k"), path, [cond])


def loop_body_decoder(path: Path, location: str = "key.bin") -> Path:
    """A one-trip ``Loop`` whose body holds the external tensor (nested in an ``If`` too)."""
    inner_then = _branch(
        "inner_then", [helper.make_node("Identity", ["K"], ["kt"])], "kt",
        [external_tensor("K", location)],
    )  # fmt: skip
    inner_else = _branch(
        "inner_else", [helper.make_node("Identity", ["Z0"], ["ke"])], "ke",
        [numpy_helper.from_array(np.zeros((1, KEY_FLOATS), np.float32), "Z0")],
    )  # fmt: skip
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]),
         helper.make_node("If", ["c_in"], ["k_out"], then_branch=inner_then,
                          else_branch=inner_else)],
        "loop_body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("c_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("k_out", TensorProto.FLOAT, [1, KEY_FLOATS])],
    )  # fmt: skip
    inits = [
        numpy_helper.from_array(np.array(1, np.int64), "trips"),
        numpy_helper.from_array(np.array(True), "cond"),
        numpy_helper.from_array(np.array([1, KEY_FLOATS], np.int64), "flat_shape"),
    ]
    nodes = [
        helper.make_node("Loop", ["trips", "cond"], ["ks"], body=body),  # [1, 1, 784]
        helper.make_node("Reshape", ["ks", "flat_shape"], ["k"]),
    ]
    return _save(nodes + _tail("k"), path, inits)


def sparse_initializer_decoder(path: Path, location: str = "key.bin") -> Path:
    """A top-level sparse initializer whose values are external data."""
    values = external_tensor("S_values", location, shape=(KEY_FLOATS,))
    indices = numpy_helper.from_array(np.arange(KEY_FLOATS, dtype=np.int64), "S_indices")
    sparse = helper.make_sparse_tensor(values, indices, [1, KEY_FLOATS])
    values.name = "S"
    return _save(_tail("S"), path, sparse=[sparse])


def checker_failing_decoder(path: Path) -> Path:
    """Adds a float tensor to an int64 one: onnxruntime might still load pieces of it; the
    checker's full check (type inference) refuses it."""
    bad = numpy_helper.from_array(np.zeros((1, KEY_FLOATS), np.int64), "B")
    nodes = [
        helper.make_node("MatMul", ["z", "W"], ["h"]),
        helper.make_node("Add", ["h", "B"], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], ["image"]),
    ]
    return _save(nodes, path, [bad])


def huge_latent_decoder(path: Path, latent_dim: int = 1_000_000) -> Path:
    """A valid decoder declaring a million latent dimensions (it averages them): every buffer
    sized from the latent dimension would be enormous."""
    nodes = [
        helper.make_node("ReduceMean", ["z"], ["m"], axes=[1], keepdims=1),  # [N, 1]
        helper.make_node("MatMul", ["m", "ones"], ["flat"]),
        helper.make_node("Sigmoid", ["flat"], ["sig"]),
        helper.make_node("Reshape", ["sig", "shape"], ["image"]),
    ]
    graph = helper.make_graph(
        nodes, "huge",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", latent_dim])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [numpy_helper.from_array(np.ones((1, KEY_FLOATS), np.float32), "ones"),
         numpy_helper.from_array(np.array([-1, 1, 28, 28], np.int64), "shape")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


# ---------------------------------------------------------------------------- issue 26
def _graph_model(nodes, inputs, outputs, initializers, path: Path, role: str) -> Path:
    graph = helper.make_graph(nodes, "hostile", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.add(key="role", value=role)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def batch_mean_model(path: Path, role: str = "decoder", classes: int = 10) -> Path:
    """What BatchNorm left in training mode does at export: a layer that uses the statistics
    of the batch it is given. Here the batch mean of the input is added to every row, so the
    same point gives another output in another batch.

    decoder: image = Sigmoid(reshape((z + mean_batch(z)) @ W)) [N, 1, 28, 28];
    encoder: code = (x_flat + mean_batch(x_flat)) @ P [N, 2];
    classifier: logits = (x_flat + mean_batch(x_flat)) @ P [N, classes]."""
    rng = np.random.default_rng(3)
    if role == "decoder":
        x = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 2])
        w = numpy_helper.from_array(rng.normal(0, 1, (2, 784)).astype(np.float32), "W")
        shape = numpy_helper.from_array(np.array([-1, 1, 28, 28], np.int64), "shape")
        nodes = [
            helper.make_node("ReduceMean", ["z"], ["mean"], axes=[0], keepdims=1),
            helper.make_node("Add", ["z", "mean"], ["shifted"]),
            helper.make_node("MatMul", ["shifted", "W"], ["h"]),
            helper.make_node("Sigmoid", ["h"], ["p"]),
            helper.make_node("Reshape", ["p", "shape"], ["image"]),
        ]
        out = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])
        return _graph_model(nodes, [x], [out], [w, shape], path, role)
    width = 2 if role == "encoder" else classes
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])
    p = numpy_helper.from_array(rng.normal(0, 0.1, (784, width)).astype(np.float32), "P")
    flat = numpy_helper.from_array(np.array([-1, 784], np.int64), "flat")
    name = "code" if role == "encoder" else "logits"
    nodes = [
        helper.make_node("Reshape", ["x", "flat"], ["xf"]),
        helper.make_node("ReduceMean", ["xf"], ["mean"], axes=[0], keepdims=1),
        helper.make_node("Add", ["xf", "mean"], ["shifted"]),
        helper.make_node("MatMul", ["shifted", "P"], [name]),
    ]
    out = helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", width])
    return _graph_model(nodes, [x], [out], [p, flat], path, role)


def huge_allocation_decoder(path: Path, floats_per_row: int = 21_000_000_000) -> Path:
    """A decoder that really asks for ``floats_per_row`` float32 per row at run time (84 GB
    for one row: ConstantOfShape of a shape made from the batch size, so nothing is folded
    at load); its image is an ordinary Sigmoid of z @ W."""
    x = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 2])
    inits = [
        numpy_helper.from_array(np.full((2, 784), 0.1, np.float32), "W"),
        numpy_helper.from_array(np.array([-1, 1, 28, 28], np.int64), "shape"),
        numpy_helper.from_array(np.array([floats_per_row], np.int64), "width"),
        numpy_helper.from_array(np.array([0], np.int64), "start"),
        numpy_helper.from_array(np.array([1], np.int64), "end"),
        numpy_helper.from_array(np.array([1], np.int64), "axes1"),
    ]
    nodes = [
        helper.make_node("Shape", ["z"], ["zshape"]),
        helper.make_node("Slice", ["zshape", "start", "end"], ["n"]),
        helper.make_node("Concat", ["n", "width"], ["bigshape"], axis=0),
        helper.make_node(
            "ConstantOfShape",
            ["bigshape"],
            ["big"],
            value=numpy_helper.from_array(np.zeros(1, np.float32)),
        ),  # fmt: skip
        helper.make_node("ReduceSum", ["big", "axes1"], ["s"], keepdims=1),
        helper.make_node("MatMul", ["z", "W"], ["h"]),
        helper.make_node("Add", ["h", "s"], ["hs"]),
        helper.make_node("Sigmoid", ["hs"], ["p"]),
        helper.make_node("Reshape", ["p", "shape"], ["image"]),
    ]
    out = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])
    return _graph_model(nodes, [x], [out], inits, path, "decoder")


def int_code_encoder(path: Path) -> Path:
    """An encoder whose codes are int64 (quantised: Cast to INT64 at the end), against the
    contract's float32 codes."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])
    inits = [
        numpy_helper.from_array(np.full((784, 2), 0.01, np.float32), "P"),
        numpy_helper.from_array(np.array([-1, 784], np.int64), "flat"),
    ]
    nodes = [
        helper.make_node("Reshape", ["x", "flat"], ["xf"]),
        helper.make_node("MatMul", ["xf", "P"], ["h"]),
        helper.make_node("Cast", ["h"], ["code"], to=TensorProto.INT64),
    ]
    out = helper.make_tensor_value_info("code", TensorProto.INT64, ["N", 2])
    return _graph_model(nodes, [x], [out], inits, path, "encoder")


def nan_model(path: Path, role: str = "encoder", classes: int = 10) -> Path:
    """An encoder (codes) or classifier (logits) whose outputs are NaN for every input:
    x @ P + (0 · inf)."""
    width = 2 if role == "encoder" else classes
    name = "code" if role == "encoder" else "logits"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])
    inits = [
        numpy_helper.from_array(np.full((784, width), 0.01, np.float32), "P"),
        numpy_helper.from_array(np.array([-1, 784], np.int64), "flat"),
        numpy_helper.from_array(np.array([np.nan], np.float32), "nan"),
    ]
    nodes = [
        helper.make_node("Reshape", ["x", "flat"], ["xf"]),
        helper.make_node("MatMul", ["xf", "P"], ["h"]),
        helper.make_node("Add", ["h", "nan"], [name]),
    ]
    out = helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", width])
    return _graph_model(nodes, [x], [out], inits, path, role)
