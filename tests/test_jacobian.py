"""Finite-difference Jacobians of ONNX decoders (toolkit.jacobian): the step rule, the stencil,
streaming, float64 graphs, and known answers; against torch autograd on three decoders (slow)."""

from __future__ import annotations

import numpy as np
import pytest
from geometry_onnx import affine_decoder, deconv_decoder, sine_decoder
from latent_atlas.toolkit import jacobian as jm
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.runtime import load


def _magnification(jac: np.ndarray) -> np.ndarray:
    j = jac.astype(np.float64)
    return np.sqrt(np.linalg.det(np.einsum("npi,npj->nij", j, j)))


def test_step_rule_is_sqrt_eps_times_scale_over_direction_size():
    z = np.array([[0.5, -0.25], [3.0, -7.5]])
    b = np.array([[1.0, 0.0], [0.0, 4.0]])
    h = jm.fd_steps(z, b, jm.EPS32)
    root = np.sqrt(jm.EPS32)  # 3.45e-4
    # |z|∞ < 1: the scale is 1; |z|∞ = 7.5: the step grows with the code
    np.testing.assert_allclose(h, [[root, root / 4], [root * 7.5, root * 7.5 / 4]])
    assert jm.fd_steps(z, b, jm.EPS64)[0, 0] == pytest.approx(np.sqrt(jm.EPS64))


def test_stencil_divides_by_the_step_the_decoder_received():
    # 1e4 + h is not representable in float32: the nominal step would be off by ~2 %
    z = np.array([[1.0e4 + 0.3, 2.0]])
    feed, taken = jm.stencil(z, np.eye(2), np.float32)
    assert feed.dtype == np.float32 and feed.shape == (5, 2)
    np.testing.assert_array_equal(feed[0], z[0].astype(np.float32))
    assert feed[1, 0] > feed[0, 0] > feed[2, 0] and feed[3, 1] > feed[0, 1] > feed[4, 1]
    assert taken[0, 0] == (float(feed[1, 0]) - float(feed[2, 0])) / 2
    nominal = jm.fd_steps(z, np.eye(2))[0, 0]
    assert taken[0, 0] != nominal  # rounding changed the step, and the quotient knows it


def test_affine_decoder_jacobian_is_its_matrix(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.01, (784, 3))
    model = load(affine_decoder(tmp_path / "d.onnx", a))
    z = rng.uniform(-4, 4, (7, 3))
    images, jac = jm.jacobian(model, z)
    assert images.shape == (7, 1, 28, 28) and jac.shape == (7, 784, 3)
    np.testing.assert_allclose(images.reshape(7, -1), z @ a.T + 0.5, atol=1e-6)
    # the graph holds A in float32; its float64 copy differentiates that matrix, up to the
    # round-off ε·0.5/(2·√ε·4) ≈ 1e-9 of pixels near 0.5
    np.testing.assert_allclose(jac, np.broadcast_to(a.astype(np.float32), jac.shape), atol=1e-8)
    # float32 graph: per-entry round-off ~ulp(0.5)/2h ~ 1e-4, but the magnification is good
    _, j32 = jm.jacobian(model, z, directions=np.eye(3)[:2], precision="float32")
    mag = np.sqrt(np.linalg.det(a[:, :2].T @ a[:, :2]))
    np.testing.assert_allclose(_magnification(j32), mag, rtol=1e-3)


def test_plane_directions_give_the_jacobian_along_the_plane(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.normal(0, 0.01, (784, 4))
    model = load(affine_decoder(tmp_path / "d.onnx", a))
    basis = np.array([[0.0, 2.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.5]])  # a PCA-like plane
    _, jac = jm.jacobian(model, rng.normal(0, 1, (5, 4)), directions=basis)
    np.testing.assert_allclose(jac[0], a.astype(np.float32) @ basis.T, atol=1e-8)


def test_sine_decoder_derivative_within_the_stated_error(tmp_path):
    c, amp = 0.1, 1.5
    model = load(sine_decoder(tmp_path / "s.onnx", amp, c))
    z = np.stack([np.linspace(-4, 4, 41), np.linspace(3, -3, 41)], axis=1)
    # float64: the graph holds c·a in float32 (relative 3e-8 off) and stores Sin's input z₁
    # in float32 (|Δz| ≤ 2.4e-7, |Δcos| likewise)
    for precision, tol in (("float64", 2e-6), ("float32", 2e-3)):
        # float32: round-off ulp(0.5)/(2h) ≈ 6e-8/(2·3.5e-4·max(1,|z|)) ≈ 1e-4 absolute on a
        # derivative of size c·a = 0.15
        _, jac = jm.jacobian(model, z, precision=precision)
        np.testing.assert_allclose(jac[:, 2, 0], c * amp * np.cos(z[:, 0]), atol=tol * c * amp)
        np.testing.assert_allclose(jac[:, 0, 0], c, atol=tol * c)


def test_streaming_bounds_each_call_and_matches_one_call(tmp_path):
    rng = np.random.default_rng(2)
    a = rng.normal(0, 0.01, (784, 2))
    model = load(affine_decoder(tmp_path / "d.onnx", a)).decoder
    rows: list[int] = []

    def counted(x):
        rows.append(len(x))
        return model(x)

    z = rng.uniform(-4, 4, (10, 2))
    im1, j1 = jm.jacobian(counted, z, chunk=3)
    assert rows == [15, 15, 15, 5]  # one call per chunk of 3 points × (2·2 + 1) rows
    im2, j2 = jm.jacobian(model, z, precision="float32")
    np.testing.assert_array_equal(im1, im2)
    np.testing.assert_array_equal(j1, j2)
    # the default chunk keeps one call's images within CHUNK_VALUES
    assert jm.chunk_points(784, 2) * 5 * 784 <= jm.CHUNK_VALUES


def test_float64_graph_where_kernels_exist_float32_where_not(tmp_path):
    lin = load(affine_decoder(tmp_path / "a.onnx", np.full((784, 2), 0.01))).decoder
    conv = load(deconv_decoder(tmp_path / "c.onnx")).decoder
    assert jm.differentiable(lin)[1] is np.float64
    assert jm.differentiable(lin, "float32")[1] is np.float32
    assert jm.differentiable(conv)[1] is np.float32  # no float64 ConvTranspose on the CPU
    with pytest.raises(AtlasError, match="no float64 kernel"):
        jm.differentiable(conv, "float64")
    # the float64 copy is of the file the session runs, never of one changed since
    affine_decoder(tmp_path / "a.onnx", np.full((784, 2), 0.02))
    with pytest.raises(AtlasError, match="changed on disk since it was loaded"):
        jm.differentiable(lin)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(points=np.zeros((0, 2))), "expected \\[N, latent_dim\\]"),
        (dict(points=np.array([[np.nan, 0.0]])), "finite"),
        (dict(directions=np.zeros((1, 2))), "nonzero"),
        (dict(directions=np.ones((1, 3))), "expected \\[k, 2\\]"),
        (dict(chunk=0), "chunk 0"),
        (dict(precision="half"), "precision 'half'"),
    ],
)
def test_bad_arguments_are_one_message(tmp_path, kwargs, match):
    model = load(affine_decoder(tmp_path / "d.onnx", np.full((784, 2), 0.01)))
    args = dict(points=np.zeros((2, 2))) | kwargs
    with pytest.raises(AtlasError, match=match):
        jm.jacobian(model, **args)


# ---------------------------------------------------------------------------- torch autograd
def _grid_21() -> np.ndarray:
    g = np.linspace(-4, 4, 21)
    u, v = np.meshgrid(g, g)
    return np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float32)


def _torch_magnification(module, z: np.ndarray) -> np.ndarray:
    import torch

    net = module.double().eval()
    f = lambda x: net(x[None]).reshape(-1)  # noqa: E731
    jac = torch.vmap(torch.func.jacfwd(f))(torch.from_numpy(z.astype(np.float64)))
    return _magnification(jac.detach().numpy())


def _shipped_torch_decoder(folder):
    """The shipped decoder as a torch module: its ONNX initializers are the Sequential's
    state dict (export kept the names), so no .pt file is needed."""
    import onnx
    import torch
    from latent_atlas.toolkit.models import AutoencoderConfig, _mlp_decoder
    from onnx import numpy_helper

    card_kind = folder.name
    net = _mlp_decoder(AutoencoderConfig(kind=card_kind))
    graph = onnx.load(folder / "decoder.onnx").graph
    state = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
             for t in graph.initializer if t.name.endswith((".weight", ".bias"))}  # fmt: skip
    net.load_state_dict(state)
    return net


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.parametrize("kind", ["vae", "ae"])
def test_shipped_decoders_match_torch_autograd(kind):
    from conftest import SHIPPED

    model = load(SHIPPED / kind, provider="cpu")
    z = _grid_21()
    reference = _torch_magnification(_shipped_torch_decoder(SHIPPED / kind), z)
    _, jac = jm.jacobian(model, z)  # float64 graph: ReLU kinks far outside the stencil
    err = np.abs(_magnification(jac) / reference - 1)
    assert np.median(err) <= 1e-4 and err.max() <= 1e-3, (np.median(err), err.max())


@pytest.mark.slow
def test_conv_decoder_from_torch_matches_autograd(tmp_path):
    import torch
    from torch import nn

    torch.manual_seed(0)
    act = nn.Softplus  # smooth: differentiated in float32 (ConvTranspose), √ε steps
    net = nn.Sequential(
        nn.Linear(2, 64), act(), nn.Linear(64, 32 * 7 * 7), act(), nn.Unflatten(1, (32, 7, 7)),
        nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), act(),
        nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1), nn.Sigmoid(),
    )  # fmt: skip
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(2.0)  # a decoder that bends: magnification 1.2..3 over [-4, 4]²
    path = tmp_path / "decoder.onnx"
    torch.onnx.export(
        net, (torch.zeros(2, 2),), path, input_names=["z"], output_names=["image"],
        dynamic_axes={"z": {0: "n"}, "image": {0: "n"}}, dynamo=False,
    )  # fmt: skip
    model = load(path, provider="cpu")
    z = _grid_21()
    assert jm.differentiable(model)[1] is np.float32
    _, jac = jm.jacobian(model, z)
    err = np.abs(_magnification(jac) / _torch_magnification(net, z) - 1)
    assert np.median(err) <= 1e-4 and err.max() <= 1e-3, (np.median(err), err.max())
