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


# ---------------------------------------------------------------- linear-Gaussian models
def linear_gaussian(
    latent_dim: int = 8,
    ignored=(3, 4, 5, 6, 7),
    noise: float = 0.05,
    seed: int = 0,
    pixels: int = 784,
) -> dict[str, np.ndarray]:
    """A linear-Gaussian model ``x = W z + b + ε``, ``z ~ N(0, I)``, ``ε ~ N(0, noise² I)``,
    whose decoder ignores the dims in ``ignored`` (their rows of ``W`` are 0), and its exact
    posterior ``q(z|x) = N(A (x − b), Σ)`` with ``M = W Wᵀ + noise² I``, ``A = M⁻¹ W``,
    ``Σ = noise² M⁻¹`` (Tipping & Bishop 1999). For an ignored dim, ``A``'s row is 0 and
    ``Σ``'s diagonal 1: the posterior is the prior, so its mean never varies and its KL is 0."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.02, (latent_dim, pixels))  # [d, P]: z @ w is the image
    w[list(ignored)] = 0.0
    m = w @ w.T + noise**2 * np.eye(latent_dim)
    m_inv = np.linalg.inv(m)
    return {"W": w, "b": np.full(pixels, 0.5), "A": (m_inv @ w).T,  # A: [P, d]
            "logvar": np.log(np.diag(noise**2 * m_inv)), "noise": np.array(noise)}  # fmt: skip


def linear_gaussian_images(params: dict[str, np.ndarray], n: int, seed: int = 1) -> np.ndarray:
    """``n`` images ``[n, 1, 28, 28]`` drawn from the model, clipped to [0, 1] (rarely binding:
    pixels lie within ±0.3 of 0.5 at 3σ)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, params["W"].shape[0]))
    x = z @ params["W"] + params["b"] + rng.normal(0, float(params["noise"]), (n, 784))
    return np.clip(x, 0, 1).astype(np.float32).reshape(n, 1, 28, 28)


def linear_gaussian_folder(
    folder: Path, params: dict[str, np.ndarray], logvar: bool = True, logvar_name: str = "logvar"
) -> Path:
    """A model folder for :func:`linear_gaussian`: ``decoder.onnx`` (``clip(z W + b, 0, 1)``) and
    ``encoder.onnx`` (outputs ``mu`` and, when ``logvar``, ``logvar_name``: the constant
    posterior log-variance broadcast to ``[N, d]``)."""
    d = params["W"].shape[0]
    dec = helper.make_graph(
        [helper.make_node("MatMul", ["z", "W"], ["h"]),
         helper.make_node("Add", ["h", "b"], ["pre"]),
         helper.make_node("Clip", ["pre", "lo", "hi"], ["flat"]),
         helper.make_node("Reshape", ["flat", "shape"], ["image"])],
        "linear_gaussian_decoder",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", d])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [_init("W", params["W"]), _init("b", params["b"]),
         numpy_helper.from_array(np.array(0, np.float32), "lo"),
         numpy_helper.from_array(np.array(1, np.float32), "hi"),
         numpy_helper.from_array(np.array([-1, 1, 28, 28], np.int64), "shape")],
    )  # fmt: skip
    _save(dec, folder / "decoder.onnx", {"role": "decoder", "latent_dim": str(d)})
    nodes = [
        helper.make_node("Flatten", ["image"], ["flat"]),
        helper.make_node("Sub", ["flat", "b"], ["centred"]),
        helper.make_node("MatMul", ["centred", "A"], ["mu"]),
    ]
    outputs = [helper.make_tensor_value_info("mu", TensorProto.FLOAT, ["N", d])]
    inits = [_init("A", params["A"]), _init("b", params["b"])]
    if logvar:  # mu·0 + c: a [N, d] output whatever the batch
        nodes += [helper.make_node("Mul", ["mu", "zero"], ["z0"]),
                  helper.make_node("Add", ["z0", "c"], [logvar_name])]  # fmt: skip
        outputs.append(helper.make_tensor_value_info(logvar_name, TensorProto.FLOAT, ["N", d]))
        inits += [_init("zero", np.zeros(1)), _init("c", params["logvar"])]
    enc = helper.make_graph(
        nodes, "linear_gaussian_encoder",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])],
        outputs, inits,
    )  # fmt: skip
    _save(enc, folder / "encoder.onnx", {"role": "encoder", "latent_dim": str(d)})
    return folder
