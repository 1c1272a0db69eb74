"""Toy ONNX decoders whose geometry is known in closed form (built with onnx.helper, no torch).

Every decoder draws ``[N, 1, 28, 28]`` images with pixels in [0, 1] (the model contract), so
each is ``0.5 + c·g(z)`` for a map ``g`` of known Jacobian and a small scale ``c``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from toy_onnx import _init, _save

PIXELS = 784
I64 = np.int64


def _shape() -> object:
    return numpy_helper.from_array(np.array([-1, 1, 28, 28], I64), "shape")


def _io(d: int) -> tuple[object, object]:
    return (
        helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", d]),
        helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28]),
    )


def affine_decoder(path: Path, a: np.ndarray, bias: float | np.ndarray = 0.5) -> Path:
    """``image = A z + bias`` with ``A`` of shape ``[784, d]``: Jacobian ``A`` everywhere."""
    a = np.asarray(a, np.float64)
    d = a.shape[1]
    nodes = [
        helper.make_node("MatMul", ["z", "W"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], ["image"]),
    ]
    graph = helper.make_graph(
        nodes, "affine_decoder", *[[v] for v in _io(d)],
        [_init("W", a.T), _init("b", np.broadcast_to(bias, (PIXELS,))), _shape()],
    )  # fmt: skip
    return _save(graph, path, {"role": "decoder", "latent_dim": str(d)})


def sine_decoder(path: Path, amplitude: float, scale: float = 0.1) -> Path:
    """``image = 0.5 + c·(z₁, z₂, a·sin z₁, 0, …)``: the surface ``(z₁, z₂, a sin z₁)`` scaled
    by ``c``, so lengths are ``c`` times the surface's."""
    w = np.zeros((2, PIXELS))
    w[0, 0] = w[1, 1] = scale
    s = np.zeros((1, PIXELS))
    s[0, 2] = scale * amplitude
    nodes = [
        helper.make_node("MatMul", ["z", "W"], ["lin"]),
        helper.make_node("Slice", ["z", "s0", "s1", "ax"], ["z1"]),  # [N, 1]
        helper.make_node("Sin", ["z1"], ["sz"]),
        helper.make_node("MatMul", ["sz", "S"], ["bump"]),
        helper.make_node("Add", ["lin", "bump"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], ["image"]),
    ]
    graph = helper.make_graph(
        nodes, "sine_decoder", *[[v] for v in _io(2)],
        [_init("W", w), _init("S", s), _init("b", np.full(PIXELS, 0.5)), _shape(),
         numpy_helper.from_array(np.array([0], I64), "s0"),
         numpy_helper.from_array(np.array([1], I64), "s1"),
         numpy_helper.from_array(np.array([1], I64), "ax")],
    )  # fmt: skip
    return _save(graph, path, {"role": "decoder", "latent_dim": "2"})


def ridge_decoder(path: Path, k: float, scale: float = 0.1) -> Path:
    """Pixel 0 = 0.5 + c·z₁/8, pixels 1..100 = 0.5 + c·tanh(k·z₂): a step in z₂ whose
    magnification ``(c/8)·c·k·sech²(k z₂)·√100`` peaks on the line z₂ = 0."""
    w = np.zeros((2, PIXELS))
    w[0, 0] = scale / 8
    t = np.zeros((1, PIXELS))
    t[0, 1:101] = scale
    nodes = [
        helper.make_node("MatMul", ["z", "W"], ["lin"]),
        helper.make_node("Slice", ["z", "s1", "s2", "ax"], ["z2"]),  # [N, 1]
        helper.make_node("Mul", ["z2", "k"], ["kz"]),
        helper.make_node("Tanh", ["kz"], ["th"]),
        helper.make_node("MatMul", ["th", "T"], ["step"]),
        helper.make_node("Add", ["lin", "step"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], ["image"]),
    ]
    graph = helper.make_graph(
        nodes, "ridge_decoder", *[[v] for v in _io(2)],
        [_init("W", w), _init("T", t), _init("k", np.array([k])),
         _init("b", np.full(PIXELS, 0.5)), _shape(),
         numpy_helper.from_array(np.array([1], I64), "s1"),
         numpy_helper.from_array(np.array([2], I64), "s2"),
         numpy_helper.from_array(np.array([1], I64), "ax")],
    )  # fmt: skip
    return _save(graph, path, {"role": "decoder", "latent_dim": "2"})


def deconv_decoder(path: Path, seed: int = 0, d: int = 2) -> Path:
    """A user's own decoder, not from torch: ``Sigmoid(ConvTranspose(reshape(z)))``, one 28×28
    kernel per latent dim. onnxruntime has no float64 ConvTranspose on the CPU, so this graph
    is differentiated in float32."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Reshape", ["z", "zshape"], ["z4"]),  # [N, d, 1, 1]
        helper.make_node("ConvTranspose", ["z4", "K", "bias"], ["pre"], kernel_shape=[28, 28]),
        helper.make_node("Sigmoid", ["pre"], ["image"]),
    ]
    graph = helper.make_graph(
        nodes, "deconv_decoder", *[[v] for v in _io(d)],
        [_init("K", rng.normal(0, 0.3, (d, 1, 28, 28))), _init("bias", np.zeros(1)),
         numpy_helper.from_array(np.array([-1, d, 1, 1], I64), "zshape")],
    )  # fmt: skip
    return _save(graph, path, {"role": "decoder", "latent_dim": str(d)})
