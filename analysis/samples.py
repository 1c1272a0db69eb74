"""Sample quality: Frechet distance between feature distributions, reconstruction errors."""

from __future__ import annotations

import warnings

import numpy as np
from latent_atlas.analysis.validation import check_array, check_float, mean_and_covariance
from latent_atlas.toolkit.errors import AtlasError
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import LinAlgWarning, sqrtm

BCE_CLIP = 1e-7


def _sqrtm(a: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """Principal square root, or None when ``a`` is singular or the result is not finite."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", LinAlgWarning)
        try:
            out = np.asarray(sqrtm(a))
        except LinAlgWarning:
            return None
    return out if np.isfinite(out).all() else None


def frechet_distance(
    mu1: ArrayLike, cov1: ArrayLike, mu2: ArrayLike, cov2: ArrayLike, eps: float = 1e-6
) -> float:
    """Frechet distance between two Gaussians (the FID formula).

    ``||mu1 - mu2||^2 + tr(cov1 + cov2 - 2 sqrtm(cov1 @ cov2))``. As in the reference FID
    code, if ``cov1 @ cov2`` is singular ``eps * I`` is added to both covariances before the
    square root, and imaginary parts from rounding (below 1e-3 on the diagonal) are dropped.

    Parameters
    ----------
    mu1, mu2 : array_like, shape [F]
        Means, in feature units.
    cov1, cov2 : array_like, shape [F, F]
        Symmetric positive semi-definite covariances, feature units squared.
    eps : float, default 1e-6
        Diagonal offset used only for a singular product.

    Returns
    -------
    float
        Distance in feature units squared, >= 0 (tiny negative rounding results clamp to 0).
    """
    m1 = check_array(mu1, "mu1", ndim=1)
    f = m1.shape[0]
    m2 = check_array(mu2, "mu2", shape=(f,))
    c1 = check_array(cov1, "cov1", shape=(f, f))
    c2 = check_array(cov2, "cov2", shape=(f, f))
    offset = check_float(eps, "eps", lo=0.0) * np.eye(f)
    covmean = _sqrtm(c1 @ c2)
    if covmean is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LinAlgWarning)
            covmean = np.asarray(sqrtm((c1 + offset) @ (c2 + offset)))
    if np.iscomplexobj(covmean):
        imag = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if imag > 1e-3:
            raise AtlasError(
                f"cov1, cov2: sqrtm(cov1 @ cov2) has imaginary part {imag:g} on its diagonal, "
                "expected positive semi-definite covariances"
            )
        covmean = covmean.real
    diff = m1 - m2
    value = float(diff @ diff + np.trace(c1) + np.trace(c2) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


def feature_statistics(features: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and covariance of a set of feature vectors.

    Parameters
    ----------
    features : array_like, shape [N, F]
        One feature vector per image, N >= 2.

    Returns
    -------
    mu : numpy.ndarray, shape [F], float64
    cov : numpy.ndarray, shape [F, F], float64
        Sample covariance (ddof=1, as in the reference FID code).
    """
    return mean_and_covariance(features, "features")


def frechet_from_features(a: ArrayLike, b: ArrayLike) -> float:
    """Frechet distance between the Gaussian fits of two feature sets.

    Parameters
    ----------
    a : array_like, shape [N, F]
        Features of one image set (N >= 2).
    b : array_like, shape [M, F]
        Features of the other (M >= 2, same F).

    Returns
    -------
    float
        Distance in feature units squared, >= 0.
    """
    fa = check_array(a, "a", shape=("N", "F"))
    fb = check_array(b, "b", shape=("M", fa.shape[1]))
    mu1, cov1 = feature_statistics(fa)
    mu2, cov2 = feature_statistics(fb)
    return frechet_distance(mu1, cov1, mu2, cov2)


def reconstruction_errors(x: ArrayLike, x_hat: ArrayLike) -> dict[str, float]:
    """Reconstruction error of a batch of images.

    Parameters
    ----------
    x : array_like, shape [N, ...]
        Original images, pixel values in [0, 1].
    x_hat : array_like, same shape as x
        Reconstructions (decoder probabilities) in [0, 1]; clipped to
        ``[1e-7, 1 - 1e-7]`` for the cross-entropy.

    Returns
    -------
    dict of str to float
        ``mse``: mean squared error per pixel, averaged over images (in [0, 1]);
        ``bce``: binary cross-entropy summed over an image's pixels, averaged over images,
        in nats (>= 0).
    """
    xx = check_array(x, "x", min_ndim=2, bounds=(0.0, 1.0))
    xh = check_array(x_hat, "x_hat", shape=xx.shape, bounds=(0.0, 1.0))
    p = np.clip(xh, BCE_CLIP, 1.0 - BCE_CLIP)
    n = xx.shape[0]
    bce = -(xx * np.log(p) + (1.0 - xx) * np.log1p(-p)).reshape(n, -1).sum(axis=1)
    return {"mse": float(np.mean((xx - xh) ** 2)), "bce": float(bce.mean())}
