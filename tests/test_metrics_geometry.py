"""Known answers for decoder geometry (analysis.geometry, latent_atlas.geometry): the metric of
a linear decoder, straight geodesics in any direction, a sine surface against an independent
scipy reference, a tanh ridge, and affine invariances (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from geometry_onnx import affine_decoder, ridge_decoder, sine_decoder
from hypothesis import given, settings
from hypothesis import strategies as st
from latent_atlas.analysis import geometry as geo
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec
from latent_atlas.toolkit.jacobian import jacobian
from latent_atlas.toolkit.runtime import load

from latent_atlas.geometry import GeodesicConfig, geodesic, geometry_maps


def _affine(seed: int = 0, d: int = 2, sd: float = 0.01) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, sd, (784, d))


# ---------------------------------------------------------------------------- the metric
def test_linear_jacobian_gives_sqrt_det_and_condition_number():
    a = _affine()
    jac = np.broadcast_to(a, (5, 784, 2))
    g = geo.pullback_metric(jac)
    np.testing.assert_allclose(g[3], a.T @ a)
    np.testing.assert_allclose(geo.magnification(g), math.sqrt(np.linalg.det(a.T @ a)))
    eig = np.linalg.eigvalsh(a.T @ a)
    np.testing.assert_allclose(geo.condition_number(g), eig[1] / eig[0])


def test_rank_deficient_metric_has_zero_magnification_and_infinite_condition():
    jac = np.zeros((1, 784, 2))
    jac[0, :, 0] = 0.01
    jac[0, :, 1] = 0.02  # parallel columns
    g = geo.pullback_metric(jac)
    assert geo.magnification(g)[0] == pytest.approx(0.0, abs=1e-12)
    assert geo.condition_number(g)[0] == math.inf


def test_grid_step_lengths_of_a_linear_decoder():
    a = _affine()
    x, y = np.linspace(-1, 1, 4), np.linspace(0, 3, 5)
    u, v = np.meshgrid(x, y)
    cells = (np.stack([u, v], -1) @ a.T).reshape(5, 4, 1, 28, 28)
    sx, sy = geo.grid_step_lengths(cells)
    assert sx.shape == (5, 3) and sy.shape == (4, 4)
    np.testing.assert_allclose(sx, np.linalg.norm(a[:, 0]) * (x[1] - x[0]))
    np.testing.assert_allclose(sy, np.linalg.norm(a[:, 1]) * (y[1] - y[0]))


def test_polyline_length_and_energy():
    images = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 5.0]])  # steps of 5 and 1
    assert geo.polyline_length(images) == 6.0
    assert geo.polyline_energy(images) == 2 * (25 + 1)
    # Cauchy–Schwarz: energy >= length², equal for equal steps
    even = np.array([[0.0], [1.0], [2.0]])
    assert geo.polyline_energy(even) == geo.polyline_length(even) ** 2


def _bent(t: np.ndarray) -> np.ndarray:
    """A nonlinear map R² → R⁴ with a closed-form Jacobian."""
    return np.stack([t[:, 0], t[:, 1], np.sin(t[:, 0]), t[:, 0] * t[:, 1]], axis=1)


def _bent_jac(t: np.ndarray) -> np.ndarray:
    j = np.zeros((len(t), 4, 2))
    j[:, 0, 0] = j[:, 1, 1] = 1
    j[:, 2, 0] = np.cos(t[:, 0])
    j[:, 3, 0], j[:, 3, 1] = t[:, 1], t[:, 0]
    return j


def test_energy_gradient_matches_numerical_gradient():
    t = np.random.default_rng(3).normal(0, 1, (6, 2))
    grad = geo.energy_gradient(_bent(t), _bent_jac(t))
    num = np.zeros_like(t)
    for i in range(1, 5):
        for k in range(2):
            e = np.zeros_like(t)
            e[i, k] = 1e-6
            up, down = geo.polyline_energy(_bent(t + e)), geo.polyline_energy(_bent(t - e))
            num[i, k] = (up - down) / 2e-6
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)
    assert (grad[[0, -1]] == 0).all()


def test_one_gauss_newton_step_straightens_a_linear_decoder():
    a = _affine()
    rng = np.random.default_rng(4)
    t = np.linspace([-2.0, 1.0], [3.0, -1.0], 9) + np.r_[0, *rng.normal(0, 0.3, 7), 0][:, None]
    images = t @ a.T
    step = geo.gauss_newton_step(images, np.broadcast_to(a, (9, 784, 2)), 0.0)
    np.testing.assert_allclose(t + step, np.linspace([-2.0, 1.0], [3.0, -1.0], 9), atol=1e-9)


def test_grid_edges_count_and_graph_weights():
    a8, b8 = geo.grid_edges((3, 3), 8)
    assert len(a8) == 20 and (a8 < b8).all()  # 6 + 6 straight, 4 + 4 diagonal
    assert len(geo.grid_edges((3, 3), 16)[0]) == 28  # plus 8 knight's moves
    images = np.arange(9.0)[:, None] * np.array([[3.0, 4.0]])  # node k at 5k
    g = geo.grid_graph(images, (3, 3), 8)
    assert g[0, 1] == 5.0 and g[1, 0] == 5.0 and g[0, 4] == 20.0
    nodes, length = geo.graph_path(g, 0, 8)
    assert nodes[0] == 0 and nodes[-1] == 8 and length == 40.0


@pytest.mark.parametrize("neighbours, bias", [(8, 0.0824), (16, 0.0274)])
def test_graph_direction_bias_is_bounded(neighbours, bias):
    # isotropic linear decoder: graph length / true length at 22.5° (the worst for 8
    # neighbours: (1 + √2 − 1)·cos… ≈ 1.0824) and at the worst angle for 16
    n = 33
    axis = np.linspace(0, 1, n)
    u, v = np.meshgrid(axis, axis)
    images = np.stack([u.ravel(), v.ravel()], 1)
    graph = geo.grid_graph(images, (n, n), neighbours)
    worst = 0.0
    for j in range(n):
        _, length = geo.graph_path(graph, 0, (n - 1) * n + j)  # to the top row
        worst = max(worst, length / math.hypot(axis[j], 1.0) - 1)
    assert 0 < worst <= bias + 1e-3


def test_bad_inputs_are_one_message():
    with pytest.raises(AtlasError, match="expected \\[N, P, k\\]"):
        geo.pullback_metric(np.zeros((3, 4)))
    with pytest.raises(AtlasError, match="neighbours 6"):
        geo.grid_edges((3, 3), 6)
    with pytest.raises(AtlasError, match="expected ny·nx = 9"):
        geo.grid_graph(np.zeros((8, 2)), (3, 3))
    with pytest.raises(AtlasError, match="start node 99"):
        geo.graph_path(geo.grid_graph(np.random.rand(9, 2), (3, 3)), 99, 0)
    with pytest.raises(AtlasError, match="neighbours 7"):
        GeodesicConfig(neighbours=7)


# ---------------------------------------------------------------------------- ONNX decoders
@pytest.mark.parametrize("angle", [0.0, 22.5, 45.0, 63.0, 117.0, 200.0])
def test_linear_decoder_geodesic_is_straight_in_any_direction(tmp_path, angle):
    a = _affine(5, sd=0.008)
    model = load(affine_decoder(tmp_path / "d.onnx", a))
    r = 3.0
    z0 = np.array([0.2, -0.1])
    z1 = z0 + r * np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
    result = geodesic(model, z0, z1, GeodesicConfig(graph_steps=24))
    exact = np.linalg.norm(a.astype(np.float32) @ (z1 - z0))
    # the straight polyline's chords add up to the line exactly (float32 decodes: 1e-5)
    assert result.straight_length == pytest.approx(exact, rel=1e-5)
    # the graph alone is off by up to 8 %; the refined polyline within 1 %
    assert result.length == pytest.approx(exact, rel=0.01)
    assert result.length <= result.straight_length * (1 + 1e-6)
    np.testing.assert_allclose(result.points[[0, -1]], [z0, z1], atol=1e-12)
    assert result.images.shape == (32, 1, 28, 28)


def _reference_sine_length(amp: float, z0: np.ndarray, z1: np.ndarray) -> float:
    """The geodesic distance on the surface (x, y, a·sin x), computed without a decoder or a
    polyline: the surface is a sheet bent along x only (developable), isometric to the plane
    through (s(x), y) with s the arc length of the curve (x, a·sin x). Geodesics are straight
    lines there, so the distance is √(Δs² + Δy²), Δs = ∫ √(1 + a²cos²x) dx (scipy quad)."""
    from scipy.integrate import quad

    ds, _ = quad(lambda x: math.sqrt(1 + amp**2 * math.cos(x) ** 2), z0[0], z1[0],
                 epsabs=1e-12, epsrel=1e-12)  # fmt: skip
    return math.hypot(ds, z1[1] - z0[1])


def test_sine_surface_geodesic_matches_an_independent_reference(tmp_path):
    amp, c = 3.0, 0.1
    model = load(sine_decoder(tmp_path / "s.onnx", amp, c))
    z0, z1 = np.array([-2.0, -3.0]), np.array([2.0, 3.0])
    reference = c * _reference_sine_length(amp, z0, z1)
    result = geodesic(model, z0, z1, GeodesicConfig(graph_steps=48, points=48))
    # the straight line is 1.8 % longer than the reference: a tolerance of 0.5 % tells apart
    assert result.length == pytest.approx(reference, rel=0.005)
    assert result.length < result.straight_length * 0.985


def test_geodesics_sharing_a_graph_equal_those_that_build_their_own(tmp_path):
    """The report's three class pairs share one grid graph where their ends lie in the same
    range: decoded once, the same geodesics as each built alone."""
    model = load(sine_decoder(tmp_path / "s.onnx", 3.0, 0.1))
    decodes = []
    real_decode = model.decode
    model.decode = lambda z, *a: decodes.append(len(z)) or real_decode(z, *a)  # type: ignore[method-assign]
    cfg = GeodesicConfig(graph_steps=16, points=12)
    ends = [([-2.0, -3.0], [2.0, 3.0]), ([-1.0, 2.0], [3.0, -2.0]), ([-3.0, 3.0], [4.5, 0.0])]
    graphs: dict = {}
    shared = [geodesic(model, np.array(a), np.array(b), cfg, graphs=graphs) for a, b in ends]
    # the first two ends lie in [-4, 4]: one graph; the third reaches 4.5: a second one
    assert len(graphs) == 2 and decodes.count(16 * 16) == 2
    for (a, b), g in zip(ends, shared, strict=True):
        alone = geodesic(model, np.array(a), np.array(b), cfg)
        assert g.length == alone.length and g.graph_length == alone.graph_length
        np.testing.assert_array_equal(g.points, alone.points)


def test_tanh_ridge_magnification_peaks_within_one_cell_of_zero(tmp_path):
    model = load(ridge_decoder(tmp_path / "r.onnx", k=4.0))
    spec = GridSpec(steps=(9, 21), x_range=(-4, 4), y_range=(-3.7, 4.3))  # 0 between cells
    maps = geometry_maps(model, spec)
    dy = maps.y[1] - maps.y[0]
    ridge_rows = maps.y[np.argmax(maps.magnification, axis=0)]
    assert (np.abs(ridge_rows) <= dy).all()
    # and it is the closed form (c/8)·c·k·sech²(k y)·√100 with c = 0.1
    expected = 0.1 / 8 * 0.1 * 4.0 / np.cosh(4.0 * maps.y) ** 2 * 10
    np.testing.assert_allclose(maps.magnification, np.broadcast_to(expected[:, None], (21, 9)),
                               rtol=1e-5, atol=1e-9)  # fmt: skip  # float64 round-off
    assert maps.precision == "float64"


def test_geometry_maps_stream_the_same_in_any_block(tmp_path):
    model = load(affine_decoder(tmp_path / "d.onnx", _affine(6)))
    spec = GridSpec(steps=(5, 7))
    whole = geometry_maps(model, spec)
    rows = geometry_maps(model, spec, chunk_rows=1)
    three = geometry_maps(model, spec, chunk_rows=3)
    for other in (rows, three):
        for name in ("magnification", "condition", "step_x", "step_y", "brightness"):
            np.testing.assert_allclose(getattr(other, name), getattr(whole, name), rtol=1e-9)
    a = _affine(6).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(whole.step_y, np.linalg.norm(a[:, 1]) * 8 / 6, rtol=1e-5)


# ---------------------------------------------------------------------------- invariances
def _affine_decoder(a: np.ndarray, m: np.ndarray):
    """``z ↦ A·M·z + 0.5``, a numpy decoder (the invariances hold for any decoder)."""
    return lambda z: np.asarray(z, np.float64) @ (a @ m).T + 0.5


matrices = st.lists(st.floats(-1, 1, allow_nan=False), min_size=6, max_size=6).map(
    lambda v: np.array(v).reshape(3, 2)
)


@settings(max_examples=25, deadline=None)
@given(b=matrices, angle=st.floats(0, 2 * math.pi), s=st.floats(0.2, 5.0),
       z=st.tuples(st.floats(-4, 4), st.floats(-4, 4)))  # fmt: skip
def test_rotation_keeps_lengths_and_scale_divides_magnification(b, angle, s, z):
    if np.linalg.svd(b, compute_uv=False)[-1] < 0.05:
        return  # nearly singular: magnification ~0, relative comparisons meaningless
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    point = np.array([z])
    f = _affine_decoder(b, np.eye(2))
    g = _affine_decoder(b, rot)  # g(z) = f(Rz)
    h = _affine_decoder(b, np.eye(2) / s)  # h(z) = f(z/s)
    mags = {}
    for name, dec, at in (("f", f, rot @ point[0]), ("g", g, point[0]), ("h", h, s * point[0])):
        _, jac = jacobian(dec, at[None], precision="float64")
        mags[name] = geo.magnification(geo.pullback_metric(jac))[0]
    assert mags["g"] == pytest.approx(mags["f"], rel=1e-6)
    assert mags["h"] == pytest.approx(mags["f"] / s**2, rel=1e-6)
    # a curve and its rotated preimage have the same image-space length
    curve = np.stack([np.linspace(-1, 2, 7), np.sin(np.linspace(0, 3, 7))], axis=1)
    length_g = geo.DecoderMetric(g).curve_length(curve)
    length_f = geo.DecoderMetric(f).curve_length(curve @ rot.T)
    assert length_g == pytest.approx(length_f, rel=1e-9)


# ---------------------------------------------------------------------------- class separation
def _linear_graph(scale: float = 1.0):
    """f(t) = A t with A = [[2, 0], [0, 1], [0, 0]] on an 11×11 grid over [-5, 5]²·scale: a
    step along t₁ is 2/scale long in image space, along t₂ 1/scale; along the axes the
    graph's shortest paths are exact (‖A Δt‖ is the least any path can cost)."""
    axis = np.arange(-5.0, 6.0) * scale
    u, v = np.meshgrid(axis, axis)
    t = np.stack([u.ravel(), v.ravel()], axis=1) / scale
    a = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    return geo.grid_graph(t @ a.T, (11, 11), 8), axis


# class 0 at (-4, 0), (-2, 0): centroid (-3, 0), spread ‖A(1, 0)‖ = 2; class 1 at (3, ±3) and
# two points outside the range, (3, ±20): centroid (3, 0), spread ‖A(0, 3)‖ = 3 over the two
# inside; class 2 at (0, ±1): centroid (0, 0), spread 1
_POINTS = np.array([[-4, 0], [-2, 0], [3, -3], [3, 3], [3, -20], [3, 20], [0, -1], [0, 1.0]])
_LABELS = np.array([0, 0, 1, 1, 1, 1, 2, 2])


def test_geodesic_separation_of_a_linear_decoder_by_hand():
    graph, axis = _linear_graph()
    two = geo.geodesic_separation(graph, axis, axis, _POINTS[:6], _LABELS[:6], [[0], [1]])
    # between: ‖A(6, 0)‖ = 12; within: (2 + 3) / 2
    assert two.between == pytest.approx(12.0)
    assert two.within == pytest.approx(2.5)
    assert two.ratio == pytest.approx(4.8)
    assert two.points_used == pytest.approx(4 / 6)
    three = geo.geodesic_separation(graph, axis, axis, _POINTS, _LABELS, [[0], [1], [2]])
    # between: (12 + 6 + 6) / 3; within: (2 + 3 + 1) / 3
    assert (three.between, three.within, three.ratio) == pytest.approx((8.0, 2.0, 4.0))
    # a group of several classes: {1, 2} has centroid (2, 0), 10 from (-3, 0); off the axes
    # the graph's path is the distance: (3, ±3) and (0, ±1) each one diagonal step (√5) and
    # one more along an axis (1 along t₂, 2 along t₁) from (2, 0), i.e. √5 + 2
    merged = geo.geodesic_separation(graph, axis, axis, _POINTS, _LABELS, [[0], [1, 2]])
    assert merged.between == pytest.approx(10.0)
    assert merged.within == pytest.approx((2 + math.sqrt(5) + 2) / 2)


def test_geodesic_separation_does_not_change_with_the_latent_scale():
    graph, axis = _linear_graph()
    graph5, axis5 = _linear_graph(5.0)
    a = geo.geodesic_separation(graph, axis, axis, _POINTS, _LABELS, [[0], [1], [2]])
    b = geo.geodesic_separation(graph5, axis5, axis5, _POINTS * 5, _LABELS, [[0], [1], [2]])
    assert b.ratio == pytest.approx(a.ratio)
    assert b.between == pytest.approx(a.between)


def test_geodesic_separation_of_a_constant_decoder_has_no_ratio():
    """Every edge of length 0 (stored as the smallest float): no spread, no distance."""
    axis = np.arange(-5.0, 6.0)
    graph = geo.grid_graph(np.zeros((121, 3)), (11, 11))
    flat = geo.geodesic_separation(graph, axis, axis, _POINTS, _LABELS, [[0], [1]])
    assert flat.between == 0.0 and flat.within == 0.0 and math.isnan(flat.ratio)


def test_geodesic_separation_bad_inputs_are_one_message():
    graph, axis = _linear_graph()
    for groups, match in (([[0]], "two or more"), ([[0], [0, 1]], "disjoint"),
                          ([[0], [7]], "no point")):  # fmt: skip
        with pytest.raises(AtlasError, match=match):
            geo.geodesic_separation(graph, axis, axis, _POINTS, _LABELS, groups)
    with pytest.raises(AtlasError, match="expected finite"):
        geo.geodesic_separation(graph, axis, axis, _POINTS[:, :1], _LABELS, [[0], [1]])
    with pytest.raises(AtlasError, match="inside the graph"):
        geo.geodesic_separation(graph, axis, axis, _POINTS[[0, 1, 4, 5]], _LABELS[[0, 1, 4, 5]],
                                [[0], [1]])  # fmt: skip
