"""Known-answer tests for analysis.samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from latent_atlas.analysis.samples import (
    feature_statistics,
    frechet_distance,
    frechet_from_features,
    reconstruction_errors,
)
from latent_atlas.toolkit.errors import AtlasError


def test_frechet_identical_stats_is_zero():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T + 0.1 * np.eye(4)
    mu = rng.normal(size=4)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-9)


def test_frechet_1d_gaussians():
    m1, s1, m2, s2 = 1.0, 2.0, -0.5, 0.5
    fd = frechet_distance([m1], [[s1**2]], [m2], [[s2**2]])
    assert fd == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2)  # 4.5


def test_frechet_diagonal_covariances():
    mu1, var1 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 4.0, 9.0])
    mu2, var2 = np.array([1.0, 1.0, 0.0]), np.array([4.0, 1.0, 1.0])
    # |d mu|^2 = 1 + 0 + 4; sum (s1 - s2)^2 = 1 + 1 + 4
    fd = frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert fd == pytest.approx(11.0)


def test_frechet_singular_covariances_use_eps():
    zero = np.zeros((2, 2))
    assert frechet_distance([0.0, 0.0], zero, [3.0, 4.0], zero) == pytest.approx(25.0, abs=1e-4)
    assert frechet_distance([1.0, 1.0], zero, [1.0, 1.0], zero) == 0.0  # clamped, not < 0
    rank1 = np.diag([4.0, 0.0])
    assert frechet_distance([0.0, 0.0], rank1, [0.0, 0.0], np.diag([1.0, 0.0])) == pytest.approx(
        1.0, abs=1e-4
    )


def test_frechet_checks():
    with pytest.raises(AtlasError, match=r"cov2: shape \(1, 1\), expected \[2, 2\]"):
        frechet_distance([0.0, 0.0], np.eye(2), [0.0, 0.0], [[1.0]])
    with pytest.raises(AtlasError, match="mu2: contains NaN or inf"):
        frechet_distance([0.0], [[1.0]], [np.nan], [[1.0]])


def test_feature_statistics_by_hand():
    mu, cov = feature_statistics([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    np.testing.assert_allclose(mu, [1.0, 1.0])
    np.testing.assert_allclose(cov, np.eye(2) * 4 / 3)
    with pytest.raises(AtlasError, match="features: 1 row, expected at least 2"):
        feature_statistics([[1.0, 2.0]])


def test_frechet_from_features_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 3))
    assert frechet_from_features(a, a) == pytest.approx(0.0, abs=1e-9)
    shift = np.array([1.0, -2.0, 0.5])
    assert frechet_from_features(a, a + shift) == pytest.approx(shift @ shift, abs=1e-8)
    with pytest.raises(AtlasError, match=r"b: shape \(50, 2\), expected \[M, 3\]"):
        frechet_from_features(a, a[:, :2])


def test_reconstruction_errors_half():
    x = np.ones((3, 28, 28))
    errs = reconstruction_errors(x, np.full_like(x, 0.5))
    assert errs["bce"] == pytest.approx(784 * math.log(2))
    assert errs["mse"] == pytest.approx(0.25)


def test_reconstruction_errors_by_hand():
    errs = reconstruction_errors([[0.0, 1.0], [1.0, 1.0]], [[0.25, 0.5], [1.0, 1.0]])
    # image 0: bce -ln 0.75 - ln 0.5, sq err 0.0625 + 0.25; image 1: exact (clipped to 1-1e-7)
    bce0 = -math.log(0.75) - math.log(0.5)
    bce1 = -2 * math.log(1 - 1e-7)
    assert errs["bce"] == pytest.approx((bce0 + bce1) / 2)
    assert errs["mse"] == pytest.approx(0.3125 / 4)


def test_reconstruction_errors_checks():
    x = np.zeros((2, 4, 4))
    with pytest.raises(AtlasError, match=r"x_hat: shape \(2, 16\), expected \[2, 4, 4\]"):
        reconstruction_errors(x, np.zeros((2, 16)))
    with pytest.raises(AtlasError, match=r"x: values in \[0, 255\], expected values in \[0, 1\]"):
        reconstruction_errors(np.where(np.eye(4) > 0, 255.0, 0.0)[None].repeat(2, 0), x)


def test_reconstruction_errors_in_chunks_equal_the_per_image_formula():
    # computed a chunk of images at a time (bounded memory): bit for bit the same numbers as
    # the formula on the whole array, for a count that is not a multiple of the chunk
    from latent_atlas.analysis import samples

    rng = np.random.default_rng(3)
    n = 2 * samples.CHUNK_IMAGES + 7
    x = rng.random((n, 1, 6, 5), dtype=np.float32)
    x_hat = rng.random((n, 1, 6, 5), dtype=np.float32)
    xx, xh = x.astype(np.float64), x_hat.astype(np.float64)
    p = np.clip(xh, samples.BCE_CLIP, 1.0 - samples.BCE_CLIP)
    bce = -(xx * np.log(p) + (1.0 - xx) * np.log1p(-p)).reshape(n, -1).sum(axis=1)
    errs = reconstruction_errors(x, x_hat)
    # the mean of the images' means: the whole array's mean up to the order of the sums
    assert errs["mse"] == float(((xx - xh) ** 2).reshape(n, -1).mean(axis=1).mean())
    assert errs["mse"] == pytest.approx(float(np.mean((xx - xh) ** 2)), rel=1e-13)
    assert errs["bce"] == float(bce.mean())
    # and a set reconstructed a slice at a time averages to the same numbers
    parts = [samples.per_image_errors(x[i : i + 100], x_hat[i : i + 100]) for i in range(0, n, 100)]
    assert float(np.concatenate([m for m, _ in parts]).mean()) == errs["mse"]
    assert float(np.concatenate([b for _, b in parts]).mean()) == errs["bce"]
