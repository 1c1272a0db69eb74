"""Property tests: invariants that must hold for any valid input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from latent_atlas.analysis.brightness import brightness_gradient, gradient_magnitude
from latent_atlas.analysis.classes import class_shares, softmax
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec
from latent_atlas.toolkit.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx
from latent_atlas.toolkit.runtime import load_model
from toy_onnx import linear_decoder

finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)


@st.composite
def specs(draw):
    lo_x, lo_y = draw(finite), draw(finite)
    return GridSpec(
        steps=(draw(st.integers(2, 60)), draw(st.integers(2, 60))),
        x_range=(lo_x, lo_x + draw(st.floats(1e-3, 50))),
        y_range=(lo_y, lo_y + draw(st.floats(1e-3, 50))),
        mode=draw(st.sampled_from(["linear", "icdf"])),
        quantile=draw(st.floats(1e-6, 0.49)),
    )


@settings(max_examples=300, deadline=None)
@given(specs())
def test_gridspec_points(spec):
    x, y = spec.coordinates()
    assert (len(x), len(y)) == spec.steps
    assert np.isfinite(x).all() and np.isfinite(y).all()
    assert (np.diff(x) > 0).all() and (np.diff(y) > 0).all()
    z = spec.points(x, y, spec.resolve_plane(2), 0, spec.n_cells)
    assert z.shape == (spec.n_cells, 2) and np.isfinite(z).all()


@pytest.fixture(scope="module")
def sigmoid_decoder(tmp_path_factory):
    path = tmp_path_factory.mktemp("dec") / "d.onnx"
    return load_model(linear_decoder(path, np.array([0.7, -1.3]), 0.2, sigmoid=True))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.tuples(finite, finite), min_size=1, max_size=40),
    st.lists(st.tuples(finite, finite), min_size=1, max_size=40),
    st.integers(1, 50),
)
def test_decoding_is_batch_invariant_and_in_range(sigmoid_decoder, a, b, batch):
    za, zb = np.array(a, np.float32), np.array(b, np.float32)
    joint = sigmoid_decoder(np.concatenate([za, zb]), batch_size=batch)
    apart = np.concatenate([sigmoid_decoder(za), sigmoid_decoder(zb)])
    np.testing.assert_allclose(joint, apart, rtol=0, atol=1e-6)
    assert joint.min() >= 0 and joint.max() <= 1


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64), st.sampled_from([IMAGES_MAGIC, LABELS_MAGIC]))
def test_idx_reader_never_crashes_with_anything_else(raw, magic):
    try:
        out = parse_idx(raw, magic, "fuzz")
    except AtlasError:
        return
    assert out.dtype == np.uint8


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 5), st.binary(min_size=36, max_size=36))
def test_idx_header_with_random_dims(n, m, cut, body):
    import struct

    raw = struct.pack(">I", IMAGES_MAGIC) + struct.pack(">3I", n, m, 2) + body
    try:
        out = parse_idx(raw[: len(raw) - cut], IMAGES_MAGIC, "fuzz")
    except AtlasError:
        return
    assert out.shape == (n, m, 2) and n * m * 2 == 36 - cut


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.integers(2, 12), st.integers(0, 2**31))
def test_class_shares_sum_to_one(ny, nx, k, seed):
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(size=(ny, nx, k)))
    shares = class_shares(probs.argmax(-1), k)
    assert shares.sum() == pytest.approx(1.0) and (shares >= 0).all()


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 12), st.integers(2, 12), st.floats(0, 1), st.integers(0, 2**31))
def test_gradient_of_constant_map_is_zero(ny, nx, value, seed):
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.uniform(0.01, 2, nx))  # any increasing spacing
    y = np.cumsum(rng.uniform(0.01, 2, ny))
    d1, d2 = brightness_gradient(np.full((ny, nx), value), x, y)
    assert np.abs(gradient_magnitude(d1, d2)).max() <= 1e-9
