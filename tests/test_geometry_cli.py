"""`latent-atlas geometry` and the geometry API (la.jacobian, la.magnification, la.geodesic) on
toy ONNX decoders built in the tests, one of them not from torch and without float64 kernels."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from geometry_onnx import affine_decoder, deconv_decoder
from toy_onnx import linear_encoder

import latent_atlas as la
from latent_atlas.cli import main


def _affine_model(folder, seed=0, encoder=False):
    a = np.random.default_rng(seed).normal(0, 0.01, (784, 2))
    affine_decoder(folder / "decoder.onnx", a)
    if encoder:
        linear_encoder(folder / "encoder.onnx", np.random.default_rng(1).normal(0, 0.05, (784, 2)))
    return folder, a.astype(np.float32).astype(np.float64)


def test_api_jacobian_magnification_geodesic(tmp_path):
    folder, a = _affine_model(tmp_path / "m")
    assert {"jacobian", "magnification", "geodesic"} <= set(la.__all__)
    z = [[0.0, 0.0], [1.0, -2.0], [3.5, 3.5]]
    jac = la.jacobian(folder, z)
    assert jac.shape == (3, 784, 2)
    np.testing.assert_allclose(jac[1], a, atol=1e-8)
    np.testing.assert_allclose(la.magnification(folder, z), math.sqrt(np.linalg.det(a.T @ a)),
                               rtol=1e-6)  # fmt: skip
    path = la.geodesic(la.load(folder), [-3, -1], [2, 3], graph_steps=16, points=20)
    exact = np.linalg.norm(a @ np.array([5.0, 4.0]))
    assert path.points.shape == (20, 2) and path.images.shape == (20, 1, 28, 28)
    assert path.straight_length == pytest.approx(exact, rel=1e-5)
    assert path.length == pytest.approx(exact, rel=0.01)
    with pytest.raises(la.AtlasError, match="z0: shape \\(3,\\), expected 2 finite numbers"):
        la.geodesic(folder, [0, 0, 0], [1, 1])


def test_a_users_own_onnx_decoder_gets_maps_and_geodesics_in_one_command(tmp_path, capsys):
    # not from torch, no encoder, and ConvTranspose: differentiated in float32
    decoder = deconv_decoder(tmp_path / "mine.onnx")
    out = tmp_path / "out"
    rc = main(["geometry", "--model", str(decoder), "--steps", "9", "--graph-steps", "12",
               "--path", "-3", "-3", "3", "2", "--out", str(out)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    stem = "mine_linear_9x9_geometry"
    names = {p.name for p in out.iterdir()}
    assert {f"{stem}.png", f"{stem}.npz", f"{stem}.json", f"{stem}_paths.png"} <= names
    with np.load(out / f"{stem}.npz") as npz:
        assert npz["magnification"].shape == (9, 9) and (npz["magnification"] > 0).all()
        assert npz["condition"].shape == (9, 9) and (npz["condition"] >= 1 - 1e-9).all()
        assert npz["step_x"].shape == (9, 8) and npz["step_y"].shape == (8, 9)
        assert npz["path1_points"].shape == (32, 2)
        np.testing.assert_allclose(npz["path1_points"][[0, -1]], [[-3, -3], [3, 2]], atol=1e-9)
    doc = json.loads((out / f"{stem}.json").read_text())
    assert doc["precision"] == "float32"
    [g] = doc["geodesics"]
    assert 0 < g["length"] <= g["straight_length"] * (1 + 1e-6)
    assert g["graph_length"] is not None


def test_centroid_geodesics_name_the_classes(tmp_path, capsys):
    folder, a = _affine_model(tmp_path / "m", encoder=True)
    data = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (40, 28, 28)).astype(np.float32)
    y = np.arange(40) % 4
    np.savez(data, x_train=x, y_train=y, x_test=x, y_test=y)
    out = tmp_path / "out"
    rc = main(["geometry", "--model", str(folder), "--data", str(data), "--steps", "5",
               "--graph-steps", "8", "--centroids", "0", "3", "--out", str(out)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((out / "m_linear_5x5_geometry.json").read_text())
    [g] = doc["geodesics"]
    assert g["name"].endswith("to 3") and g["ratio"] == pytest.approx(1.0, abs=0.01)


def test_help_explains_each_measure(capsys):
    assert main(["geometry", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for measure in ("magnification = √det(JᵀJ)", "condition number =", "step length along",
                    "geodesic = shortest path"):  # fmt: skip
        assert measure in text


def test_geometry_figures_take_arrays_and_refuse_wrong_shapes():
    import io

    from latent_atlas.analysis.geometry_plots import geodesic_strips_png, geometry_maps_png
    from PIL import Image

    x, y = np.linspace(-1, 1, 4), np.linspace(0, 2, 3)
    mag, cond = np.full((3, 4), 2.0), np.array([[1.0, np.inf, 3.0, 4.0]] * 3)
    path = np.linspace([-1, 0], [1, 2], 5)
    png = geometry_maps_png(x, y, mag, cond, np.ones((3, 3)), np.ones((2, 4)),
                            paths=[(np.zeros((5, 2)), path)])  # fmt: skip
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert np.all(pixels == (0, 255, 255), axis=2).any()  # the geodesic drawn in cyan
    with pytest.raises(la.AtlasError, match="step_y: shape \\(3, 4\\), expected \\[2, 4\\]"):
        geometry_maps_png(x, y, mag, cond, np.ones((3, 3)), np.ones((3, 4)))
    strips = [("a to b", np.zeros((6, 1, 8, 8)), np.full((6, 1, 8, 8), 0.5), 2.0, 1.5)]
    pixels = np.asarray(Image.open(io.BytesIO(geodesic_strips_png(strips))).convert("L"))
    dark = np.flatnonzero((pixels == 0).sum(axis=1) >= 6 * 56)  # straight: six black images
    grey = np.flatnonzero((pixels == 128).sum(axis=1) >= 6 * 56)  # geodesic: six grey ones
    assert len(dark) == len(grey) == 56 and dark.max() < grey.min()  # straight row on top
    with pytest.raises(la.AtlasError, match="strips: none given"):
        geodesic_strips_png([])


@pytest.mark.parametrize("tail, message", [
    ("nan", r"the decoder gives NaN or inf pixels for \d+ of \d+ codes"),
    ("logits", r"decoded pixel values in \[-?[\d.]+, [\d.]+\], expected \[0, 1\]; end the "
               r"decoder with a Sigmoid"),
])  # fmt: skip
def test_geometry_refuses_a_bad_decoder_as_grid_does(tmp_path, capsys, tail, message):
    """Cold try: geometry said only "jacobian: expected finite numbers" for a NaN decoder and
    drew maps for a decoder without a Sigmoid, both of which grid and report refuse."""
    import re

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(0, 0.3, (2, 784))
                                .astype(np.float32), "W")  # fmt: skip
    nodes = [helper.make_node("MatMul", ["z", "W"], ["h"])]
    if tail == "nan":  # log of negative pre-activations
        nodes += [helper.make_node("Log", ["h"], ["l"]), helper.make_node("Sigmoid", ["l"], ["x"])]
    else:
        nodes += [helper.make_node("Identity", ["h"], ["x"])]
    graph = helper.make_graph(
        nodes, "d", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 784])], [w])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "d.onnx")
    capsys.readouterr()
    rc = main(["geometry", "--model", str(tmp_path / "d.onnx"), "--out", str(tmp_path / "o"),
               "--no-progress"])  # fmt: skip
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and re.search(message, err[0]), err
    assert not (tmp_path / "o").exists()
