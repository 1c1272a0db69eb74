"""The geodesic on the plane through two test images' codes, beside the straight line:
straight for an affine decoder (known answer), shorter through a bent one, drawn as a second
strip with both lengths, in the API and in `latent-atlas traverse --between A B --geodesic`."""

from __future__ import annotations

import numpy as np
import pytest
from geometry_onnx import affine_decoder, sine_decoder
from latent_atlas.analysis.traversals import interpolation_png
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.runtime import load
from toy_onnx import linear_encoder

from latent_atlas.cli import main
from latent_atlas.traversals import interpolate, line_plane


def _model(tmp_path, toy, decoder, d: int = 2):
    folder = tmp_path / "m"
    projection = np.random.default_rng(1).normal(0, 0.1, (784, d))
    linear_encoder(folder / "encoder.onnx", projection)
    decoder(folder / "decoder.onnx")
    return folder


def test_line_plane_is_orthonormal_through_both_codes():
    za, zb = np.array([1.0, 0, 0, 2]), np.array([3.0, 0, 0, 2])
    plane = line_plane(za, zb, centre=np.array([1.0, 5, 0, 2]))
    np.testing.assert_allclose(plane.basis @ plane.basis.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(plane.project(np.stack([za, zb])), [[0, 0], [2, 0]], atol=1e-12)
    np.testing.assert_allclose(plane.basis[1], [0, 1, 0, 0], atol=1e-12)  # towards the centre
    # the centre on the line: the latent's next axis, made orthogonal
    flat = line_plane(za, zb, centre=np.array([7.0, 0, 0, 2]))
    assert abs(flat.basis[0] @ flat.basis[1]) < 1e-12
    with pytest.raises(AtlasError, match="same code"):
        line_plane(za, za, za)


def test_an_affine_decoders_geodesic_is_the_straight_line(tmp_path, toy):
    a = np.random.default_rng(2).normal(0, 0.01, (784, 2))
    folder = _model(tmp_path, toy, lambda p: affine_decoder(p, a))
    line = interpolate(load(folder), toy["data"], 3, 150, steps=9, geodesic=True, graph_steps=16)
    g = line.geodesic
    assert g is not None
    za, zb = line.codes[0], line.codes[-1]
    # known answer: ‖A(zb − za)‖ for both, the geodesic within 1 % of it
    exact = float(np.linalg.norm(a @ (zb.astype(np.float64) - za)))
    assert g.straight_length == pytest.approx(exact, rel=1e-4)
    assert g.length == pytest.approx(exact, rel=0.01)
    np.testing.assert_allclose(g.points[[0, -1]], line.codes[[0, -1]], atol=1e-5)
    arrays = line.arrays()
    assert arrays["geodesic_images"].shape == line.images.shape
    np.testing.assert_allclose(arrays["lengths"], [g.straight_length, g.length])


def test_a_bent_decoders_geodesic_is_shorter_and_drawn_under_the_line(tmp_path, toy):
    folder = _model(tmp_path, toy, lambda p: sine_decoder(p, amplitude=3.0))
    line = interpolate(load(folder), toy["data"], 0, 199, steps=9, geodesic=True, graph_steps=24)
    g = line.geodesic
    assert g is not None and g.length < g.straight_length
    lengths = (g.straight_length, g.length)
    import io

    from PIL import Image

    def height(png: bytes) -> int:
        return Image.open(io.BytesIO(png)).height

    one = interpolation_png(line.images, line.ends, line.t, ("a", "b"))
    two = interpolation_png(line.images, line.ends, line.t, ("a", "b"), geodesic=g.images,
                            lengths=lengths)  # fmt: skip
    assert height(two) - height(one) >= 56  # a second row of 28-px images drawn at 56 px
    with pytest.raises(AtlasError, match="lengths"):
        interpolation_png(line.images, line.ends, line.t, ("a", "b"), geodesic=g.images)


def test_traverse_between_with_geodesic_writes_both_strips(tmp_path, toy, capsys):
    a = np.random.default_rng(2).normal(0, 0.01, (784, 2))
    folder = _model(tmp_path, toy, lambda p: affine_decoder(p, a))
    x = (toy["data"].test.images[:, 0] * 255).round().astype(np.uint8)
    y = toy["data"].test.labels
    np.savez(tmp_path / "toy.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    out = tmp_path / "out"
    assert main(["traverse", "--model", str(folder), "--data", str(tmp_path / "toy.npz"),
                 "--k", "2", "--steps", "5", "--between", "0", "5", "--geodesic",
                 "--classifier", "none", "--out", str(out)]) == 0  # fmt: skip
    with np.load(out / "m_interpolate_0_5.npz") as npz:
        assert npz["geodesic_images"].shape == npz["images"].shape == (5, 1, 28, 28)
        straight, geodesic = npz["lengths"]
        assert geodesic == pytest.approx(straight, rel=0.01)
