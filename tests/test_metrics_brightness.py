"""Known-answer tests for analysis.brightness and the shared validation helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from latent_atlas.analysis.brightness import (
    brightness_gradient,
    brightness_map,
    gradient_magnitude,
    gradient_summary,
    pixel_sensitivity,
    smoothness_summary,
)
from latent_atlas.analysis.validation import check_array, check_coords, check_float, check_int
from latent_atlas.toolkit.errors import AtlasError

# A non-uniform grid (like a Gaussian-quantile one), with different spacing on each axis.
X = np.array([-2.0, -0.5, 0.0, 0.3, 1.7])
Y = np.array([-1.0, 0.2, 0.5, 2.0])


def grid_cells(fn, h=3, w=2):
    """cells[i, j] filled with fn(z1=X[j], z2=Y[i]) at every pixel: shape [ny, nx, h, w]."""
    z1, z2 = np.meshgrid(X, Y)
    return np.broadcast_to(fn(z1, z2)[:, :, None, None], (len(Y), len(X), h, w)).copy()


def test_brightness_map_by_hand():
    cells = np.array([[[[0.0, 1.0], [1.0, 0.0]], [[0.2, 0.2], [0.2, 0.6]]]])  # [1, 2, 2, 2]
    np.testing.assert_allclose(brightness_map(cells), [[0.5, 0.3]])


def test_gradient_of_linear_z1_on_non_uniform_grid():
    a, b = 0.1, 0.5
    bmap = brightness_map(grid_cells(lambda z1, z2: a * z1 + b))
    d1, d2 = brightness_gradient(bmap, X, Y)
    assert d1.shape == d2.shape == (len(Y), len(X))
    np.testing.assert_allclose(d1, a, atol=1e-12)
    np.testing.assert_allclose(d2, 0.0, atol=1e-12)


def test_gradient_of_linear_z2_and_magnitude():
    c = 0.2
    bmap = brightness_map(grid_cells(lambda z1, z2: c * z2 + 0.5))
    d1, d2 = brightness_gradient(bmap, X, Y)
    np.testing.assert_allclose(d1, 0.0, atol=1e-12)
    np.testing.assert_allclose(d2, c, atol=1e-12)
    bmap = brightness_map(grid_cells(lambda z1, z2: -0.1 * z1 + 0.05 * z2 + 0.5))
    mag = gradient_magnitude(*brightness_gradient(bmap, X, Y))
    np.testing.assert_allclose(mag, math.hypot(0.1, 0.05), atol=1e-12)


def test_constant_cells_have_zero_gradient_and_sensitivity():
    cells = np.full((len(Y), len(X), 4, 4), 0.37)
    d1, d2 = brightness_gradient(brightness_map(cells), X, Y)
    mag = gradient_magnitude(d1, d2)
    np.testing.assert_allclose(mag, 0.0, atol=1e-12)  # the per-cell means round alike
    assert gradient_summary(mag, 0.01)["stark_share"] == 0.0
    assert np.all(pixel_sensitivity(cells, X, Y) == 0.0)


def test_gradient_summary_by_hand():
    s = gradient_summary(np.array([[0.0, 1.0], [2.0, 3.0]]), 1.5)
    assert s == pytest.approx(
        {"mean": 1.5, "p95": 2.85, "max": 3.0, "stark_share": 0.5, "threshold": 1.5}
    )
    assert all(type(v) is float for v in s.values())
    assert gradient_summary(np.array([[0.0, 1.0], [2.0, 3.0]]), 3.0)["stark_share"] == 0.0


@pytest.mark.parametrize("a", [0.15, -0.15])
def test_pixel_sensitivity_of_linear_z1_is_abs_a(a):
    cells = grid_cells(lambda z1, z2: a * z1 + 0.5)
    np.testing.assert_allclose(pixel_sensitivity(cells, X, Y), abs(a), atol=1e-12)


def test_pixel_sensitivity_of_plane_matches_gradient_norm():
    cells = grid_cells(lambda z1, z2: 0.1 * z1 - 0.05 * z2 + 0.5)
    np.testing.assert_allclose(pixel_sensitivity(cells, X, Y), math.hypot(0.1, 0.05), atol=1e-12)


def test_pixel_sensitivity_by_hand():
    # 2 x 3 grid, x = [0, 1, 3], y = [0, 2]; images of 2 pixels, only the first one changes.
    first = np.array([[0.0, 0.5, 0.5], [0.0, 0.0, 0.0]])
    cells = np.zeros((2, 3, 1, 2))
    cells[:, :, 0, 0] = first
    # per-pixel-mean |diff| along z1, row 0: 0.25/1, 0/2; row 1: 0, 0.
    # along z2 (dy = 2): col 0: 0, col 1: 0.25/2, col 2: 0.25/2.
    r = 0.125
    expected = [[0.25, math.hypot(0.125, r), r], [0.0, r, r]]
    np.testing.assert_allclose(pixel_sensitivity(cells, [0.0, 1.0, 3.0], [0.0, 2.0]), expected)


def test_smoothness_summary_by_hand():
    s = smoothness_summary([[0.0, 1.0], [2.0, 3.0]])
    assert s == pytest.approx({"mean": 1.5, "std": math.sqrt(1.25), "p95": 2.85, "max": 3.0})


def test_cells_wrong_shape():
    with pytest.raises(
        AtlasError, match=r"cells: shape \(3, 28, 28\), expected \[ny, nx, C, H, W\]"
    ):
        brightness_map(np.zeros((3, 28, 28)))


def test_cells_out_of_range():
    with pytest.raises(
        AtlasError, match=r"cells: values in \[0, 255\], expected values in \[0, 1\]"
    ):
        brightness_map(np.arange(4.0).reshape(2, 2, 1, 1) * 85)


def test_nan_rejected():
    bmap = np.zeros((len(Y), len(X)))
    bmap[1, 2] = np.nan
    with pytest.raises(AtlasError, match="bmap: contains NaN or inf, expected finite values"):
        brightness_gradient(bmap, X, Y)


def test_coords_must_increase_and_match_grid():
    bmap = np.zeros((len(Y), len(X)))
    with pytest.raises(AtlasError, match="x: .*expected strictly increasing"):
        brightness_gradient(bmap, X[::-1], Y)
    with pytest.raises(AtlasError, match="y: .*expected strictly increasing"):
        pixel_sensitivity(np.zeros((len(Y), len(X), 1, 1)), X, [0.0, 1.0, 1.0, 2.0])
    with pytest.raises(AtlasError, match="y: length 5, expected 4"):
        brightness_gradient(bmap, X, np.arange(5.0))


def test_summary_argument_checks():
    with pytest.raises(AtlasError, match="magnitude: values in"):
        gradient_summary([-1.0, 1.0], 0.5)
    with pytest.raises(AtlasError, match="threshold: "):
        gradient_summary([1.0], float("nan"))


def test_validation_helpers():
    assert check_array([1, 2], "v").dtype == np.float64
    assert check_array([[1.0, 2.0]], "v", shape=(None, 2)).shape == (1, 2)
    with pytest.raises(AtlasError, match=r"v: shape \(2,\) \(1-D\), expected a 2-D array"):
        check_array([1, 2], "v", ndim=2)
    with pytest.raises(AtlasError, match="v: empty array"):
        check_array(np.zeros((0, 2)), "v")
    with pytest.raises(AtlasError, match="v: dtype <U1, expected real numbers"):
        check_array(["a"], "v")
    with pytest.raises(AtlasError, match="v: dtype float64, expected integers"):
        check_array([1.0], "v", dtype_kind="i")
    with pytest.raises(AtlasError, match="z: length 1, expected at least 2"):
        check_coords([0.0], "z", 1)
    assert check_int(3, "k", lo=1) == 3
    with pytest.raises(AtlasError, match="k: True, expected an integer"):
        check_int(True, "k")
    with pytest.raises(AtlasError, match=r"k: 0, expected an integer in \[1, inf\]"):
        check_int(0, "k", lo=1)
    with pytest.raises(AtlasError, match=r"t: 2, expected a number in \[0, 1\]"):
        check_float(2, "t", lo=0.0, hi=1.0)


def test_rgb_cells_average_over_pixels_and_channels():
    from latent_atlas.analysis.brightness import brightness_map, pixel_sensitivity

    rng = np.random.default_rng(0)
    rgb = rng.random((3, 4, 3, 5, 5))  # [ny, nx, C, H, W]
    np.testing.assert_allclose(brightness_map(rgb), rgb.mean(axis=(2, 3, 4)))
    x, y = np.arange(4.0), np.arange(3.0)
    # one channel of an RGB grid alone gives the gray grid's answer
    gray = rgb[:, :, :1]
    np.testing.assert_allclose(
        pixel_sensitivity(gray, x, y), pixel_sensitivity(gray[:, :, 0], x, y)
    )
    with pytest.raises(AtlasError, match="2 channels"):
        brightness_map(rng.random((3, 4, 2, 5, 5)))


def test_top_rows_summary_known_answer():
    from latent_atlas.analysis.brightness import brightness_gradient, top_rows_summary

    # rows 0 and 1 ramp 0 → 0.8 over z₀ in [0, 2] (slope 0.4); row 2 is flat
    x, y = np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.0])
    bmap = np.array([[0.0, 0.4, 0.8], [0.0, 0.2, 0.8], [0.5, 0.5, 0.5]])
    d1, _ = brightness_gradient(bmap, x, y)
    out = top_rows_summary(bmap, d1, 2, 0.5)
    # row 1: np.gradient gives 0.2, 0.4, 0.6 (one-sided at the ends, central inside)
    assert out["rows"] == 2
    assert out["max_abs_d_dz1"] == pytest.approx(0.6)
    assert out["mean_abs_d_dz1"] == pytest.approx((0.4 * 3 + 0.2 + 0.4 + 0.6) / 6)
    assert out["stark_share_d_dz1"] == pytest.approx(1 / 6)  # only 0.6 > 0.5
    assert out["max_row_brightness_range"] == pytest.approx(0.8)
    with pytest.raises(AtlasError, match="rows: 4"):
        top_rows_summary(bmap, d1, 4, 0.5)
