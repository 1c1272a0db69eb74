"""Sample quality: Frechet distance between feature distributions, reconstruction errors."""

from __future__ import annotations

import threading
import warnings

import numpy as np
from latent_atlas.analysis.validation import check_array, check_float, mean_and_covariance
from latent_atlas.toolkit.errors import AtlasError
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import LinAlgWarning, sqrtm

CHUNK_IMAGES = 256  # images per chunk of reconstruction_errors (1.6 MB float64 per copy)
BCE_CLIP = 1e-7


try:  # scipy >= 1.15: the square root with its flags, no warning raised
    from scipy.linalg._matfuncs_schur_sqrtm import recursive_schur_sqrtm
except ImportError:  # pragma: no cover - older scipy
    recursive_schur_sqrtm = None
_WARNINGS = threading.Lock()


def _flagged_sqrtm(a: NDArray[np.float64]) -> tuple[NDArray[np.float64], bool]:
    """``scipy.linalg.sqrtm(a)`` (the same array) and whether scipy finds ``a`` singular or
    ill-conditioned (where sqrtm warns).

    Read from the flags themselves, not by turning the warning into an error: warning filters
    are one global list in Python, and another thread's ``catch_warnings`` (scikit-learn's
    check_array has one) restores it at any moment, so with models analysed on several threads
    a warning-as-error came and went, and a Fréchet distance changed in its 7th digit."""
    if recursive_schur_sqrtm is not None and a.dtype == np.float64 and a.ndim == 2 and len(a) > 1:
        res, ill, singular, info = recursive_schur_sqrtm(a)
        if info >= 0:
            return np.asarray(res), bool(ill or singular)
    with _WARNINGS, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LinAlgWarning)
        out = np.asarray(sqrtm(a))
    return out, any(issubclass(w.category, LinAlgWarning) for w in caught)


def _sqrtm(a: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """Principal square root, or None when ``a`` is singular or the result is not finite."""
    out, flagged = _flagged_sqrtm(a)
    if flagged:
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
        covmean = _flagged_sqrtm((c1 + offset) @ (c2 + offset))[0]
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
    mse, bce = per_image_errors(x, x_hat)
    return {"mse": float(mse.mean()), "bce": float(bce.mean())}


def per_image_errors(x: ArrayLike, x_hat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Each image's reconstruction errors, so a large set can be reconstructed a slice at a
    time and the errors averaged at the end (:func:`reconstruction_errors` is their means).

    Parameters
    ----------
    x, x_hat : array_like, shape [N, ...]
        As for :func:`reconstruction_errors`.

    Returns
    -------
    mse : numpy.ndarray, shape [N], float64
        Mean squared error over each image's pixels.
    bce : numpy.ndarray, shape [N], float64
        Binary cross-entropy summed over each image's pixels, in nats.
    """
    xa, xha = _real(x, "x"), _real(x_hat, "x_hat")
    # checked as given (no float64 copy of the whole set), then computed in float64 a chunk of
    # images at a time: every element's arithmetic and every per-image sum is the same as on
    # the whole array (memory: one chunk's temporaries, not ~8 float64 copies of the set)
    xa = check_array(xa, "x", min_ndim=2, bounds=(0.0, 1.0), dtype_kind=None)
    xha = check_array(xha, "x_hat", shape=xa.shape, bounds=(0.0, 1.0), dtype_kind=None)
    n = xa.shape[0]
    mse = np.empty(n, np.float64)
    bce = np.empty(n, np.float64)
    for start in range(0, n, CHUNK_IMAGES):
        part = slice(start, min(n, start + CHUNK_IMAGES))
        xx = xa[part].astype(np.float64).reshape(part.stop - start, -1)
        xh = xha[part].astype(np.float64).reshape(part.stop - start, -1)
        p = np.clip(xh, BCE_CLIP, 1.0 - BCE_CLIP)
        bce[part] = (-(xx * np.log(p) + (1.0 - xx) * np.log1p(-p))).sum(axis=1)
        mse[part] = ((xx - xh) ** 2).mean(axis=1)
    return mse, bce


def _real(a: ArrayLike, name: str) -> np.ndarray:
    """``a`` as an array of real numbers, without converting it (see ``check_array``)."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        check_array(arr, name)  # raises with the shared message
    return arr
