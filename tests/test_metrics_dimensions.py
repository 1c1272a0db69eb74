"""Per-dimension diagnostics (analysis/dimensions.py): known answers, the active-unit rule at
its edge, and the linear-Gaussian model whose decoder ignores dims 3–7, through onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from latent_atlas.analysis.dimensions import (
    ACTIVE_THRESHOLD,
    KL_NOT_AVAILABLE,
    active_mask,
    dimension_diagnostics,
    kl_per_dimension,
    posterior_mean_variance,
    spectrum_order,
    top_dimensions,
)
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.runtime import load
from toy_onnx import linear_gaussian, linear_gaussian_folder, linear_gaussian_images


def test_variance_known_answer():
    mu = np.array([[1.0, 0.0, 5.0], [-1.0, 0.0, 5.0], [1.0, 0.0, 5.0], [-1.0, 0.0, 5.0]])
    np.testing.assert_allclose(posterior_mean_variance(mu), [1.0, 0.0, 0.0])


def test_active_rule_is_strictly_above_the_threshold():
    assert ACTIVE_THRESHOLD == 0.01
    var = np.array([0.01, np.nextafter(0.01, 1), 0.0, 2.0])
    assert active_mask(var).tolist() == [False, True, False, True]
    assert active_mask(var, threshold=0.0).tolist() == [True, True, False, True]
    with pytest.raises(AtlasError, match="active threshold"):
        active_mask(var, threshold=-0.1)


def test_spectrum_order_largest_first_ties_by_index():
    assert spectrum_order([0.5, 2.0, 0.5, 3.0]).tolist() == [3, 1, 0, 2]
    assert top_dimensions([0.5, 2.0, 0.5, 3.0], 2).tolist() == [3, 1]
    with pytest.raises(AtlasError, match="k \\(dimensions\\): 5"):
        top_dimensions([0.5, 2.0, 0.5, 3.0], 5)


def test_kl_known_answers():
    # the prior itself: 0; mu = ±1, σ = 1: ½·1; mu = 0, σ² = e: ½(e − 1 − 1)
    mu = np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    logvar = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(kl_per_dimension(mu, logvar), [0.0, 0.5, 0.5 * (np.e - 2)])


def test_kl_refuses_mismatched_or_non_finite_logvar():
    with pytest.raises(AtlasError, match="logvar: shape"):
        kl_per_dimension(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(AtlasError, match="logvar: contains NaN"):
        kl_per_dimension(np.zeros((2, 2)), np.array([[0.0, np.nan], [0.0, 0.0]]))


def test_diagnostics_without_logvar_say_why():
    diag = dimension_diagnostics(np.random.default_rng(0).normal(size=(50, 3)))
    assert diag.kl is None and diag.kl_not_available == KL_NOT_AVAILABLE
    assert "logvar" in diag.to_json()["kl_not_available"]
    assert diag.to_json()["kl_total"] is None


def test_linear_gaussian_decoder_ignoring_dims_3_to_7(tmp_path):
    """The known answer of the issue: the exact posterior of a linear-Gaussian model whose
    decoder ignores dims 3–7, exported as ONNX and run by onnxruntime, has exactly those dims
    inactive (and, with its log-variance, their KL is 0)."""
    params = linear_gaussian(latent_dim=8, ignored=(3, 4, 5, 6, 7))
    model = load(linear_gaussian_folder(tmp_path / "lg", params))
    images = linear_gaussian_images(params, 400)
    mu, logvar = model.encode_posterior(images)
    assert logvar is not None
    diag = dimension_diagnostics(mu, logvar)
    assert sorted(diag.active) == [0, 1, 2]
    assert set(diag.order[3:]) == {3, 4, 5, 6, 7}
    assert diag.kl is not None
    np.testing.assert_allclose(np.array(diag.kl)[3:], 0.0, atol=1e-6)
    assert min(diag.kl[:3]) > 0.1  # the used dims carry information
    # the same, through the mean alone
    mean_only = load(linear_gaussian_folder(tmp_path / "mo", params, logvar=False))
    alone, none = mean_only.encode_posterior(images)
    assert none is None
    assert sorted(dimension_diagnostics(alone).active) == [0, 1, 2]
