"""Per-dimension diagnostics of a latent space: which dimensions the model uses.

Pure functions on the encoder's posterior means ``mu`` ``[N, d]`` (and, where the encoder gives
it, the log-variance ``logvar`` ``[N, d]``) over a test set:

- the variance of the posterior means per dimension, ``Var_x(E_q[z_i | x])``: a dimension is
  *active* when it exceeds a threshold (0.01: Burda, Grosse & Salakhutdinov, "Importance
  Weighted Autoencoders", ICLR 2016, section 5.2);
- the same variances sorted, largest first (the spectrum);
- the mean KL divergence of each dimension's posterior to the prior N(0, 1), in nats
  (Kingma & Welling 2014, appendix B, one dimension at a time):
  ``KL_i = ½ · mean_x(μ_i² + σ_i² − 1 − log σ_i²)``.

Dimensions are numbered from 0 everywhere (the same numbers as ``--plane axes I J``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from latent_atlas.analysis.validation import check_array, check_float, check_int
from latent_atlas.toolkit.errors import AtlasError
from numpy.typing import ArrayLike

# Burda et al. (2016): a unit is active when Cov_x(E_q[u|x]) > 10⁻².
ACTIVE_THRESHOLD = 0.01
# why the KL column is empty for an encoder that gives only the mean
KL_NOT_AVAILABLE = (
    "the encoder gives only the posterior mean; a second output named 'logvar' [N, d] "
    "(docs/models.md) gives the per-dimension KL"
)


def posterior_mean_variance(mu: ArrayLike) -> np.ndarray:
    """Variance over the data of each dimension's posterior mean.

    Parameters
    ----------
    mu : array_like, shape [N, d]
        Posterior means (the encoder's codes) of N >= 2 inputs.

    Returns
    -------
    numpy.ndarray, shape [d], float64
        ``Var_x(mu[:, i])`` (population variance, ddof = 0, as in Burda et al.), in squared
        latent units, >= 0.
    """
    arr = check_array(mu, "mu", shape=("N", "d"))
    if arr.shape[0] < 2:
        raise AtlasError(f"mu: {arr.shape[0]} row, expected at least 2 to measure a variance")
    return arr.var(axis=0)


def active_mask(variance: ArrayLike, threshold: float = ACTIVE_THRESHOLD) -> np.ndarray:
    """Which dimensions are active: variance of the posterior means strictly above
    ``threshold``.

    Parameters
    ----------
    variance : array_like, shape [d]
        Per-dimension variances, from :func:`posterior_mean_variance`.
    threshold : float, default 0.01
        Burda et al.'s 10⁻²; >= 0.

    Returns
    -------
    numpy.ndarray, shape [d], bool
    """
    var = check_array(variance, "variance", ndim=1, bounds=(0.0, np.inf))
    t = check_float(threshold, "active threshold", lo=0.0)
    return var > t


def spectrum_order(variance: ArrayLike) -> np.ndarray:
    """Dimension indices sorted by variance, largest first (ties: the lower index first).

    Parameters
    ----------
    variance : array_like, shape [d]

    Returns
    -------
    numpy.ndarray, shape [d], int64
        ``variance[order]`` is the sorted spectrum.
    """
    var = check_array(variance, "variance", ndim=1)
    return np.lexsort((np.arange(len(var)), -var)).astype(np.int64)


def top_dimensions(variance: ArrayLike, k: int) -> np.ndarray:
    """The ``k`` dimensions of largest variance, largest first.

    Parameters
    ----------
    variance : array_like, shape [d]
    k : int
        1 <= k <= d.

    Returns
    -------
    numpy.ndarray, shape [k], int64
    """
    var = check_array(variance, "variance", ndim=1)
    check_int(k, "k (dimensions)", lo=1, hi=len(var))
    return spectrum_order(var)[:k]


def kl_per_dimension(mu: ArrayLike, logvar: ArrayLike) -> np.ndarray:
    """Mean KL divergence of each dimension's Gaussian posterior to the prior N(0, 1).

    Parameters
    ----------
    mu : array_like, shape [N, d]
        Posterior means.
    logvar : array_like, shape [N, d]
        Posterior log-variances ``log σ²`` (natural log), finite.

    Returns
    -------
    numpy.ndarray, shape [d], float64
        ``½ · mean_n(μ² + σ² − 1 − log σ²)`` per dimension, in nats, >= 0; summed over the
        dimensions it is the KL term of the ELBO averaged over the inputs.

    References
    ----------
    Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014, appendix B.
    """
    m = check_array(mu, "mu", shape=("N", "d"))
    lv = check_array(logvar, "logvar", shape=m.shape)
    if lv.max() > 700:  # exp overflows float64 beyond ~709
        raise AtlasError(f"logvar: maximum {lv.max():g}, expected log-variances below 700")
    kl = 0.5 * (m**2 + np.exp(lv) - 1.0 - lv)
    # x - 1 - log x >= 0 for every x > 0; rounding can leave -1e-17 where it is exactly 0
    return np.maximum(kl.mean(axis=0), 0.0)


@dataclass
class DimensionDiagnostics:
    """Per-dimension diagnostics of one model's latent space (dims numbered from 0).

    ``variance[i]``: variance of the posterior means of dim i over the test set; ``order``:
    dims by variance, largest first; ``active``: dims with variance > ``threshold``, in
    ``order``; ``kl[i]``: mean KL of dim i's posterior to N(0, 1) in nats, None with
    ``kl_not_available`` saying why when the encoder gives no log-variance.
    """

    latent_dim: int
    threshold: float
    n_active: int  # len(active): a number groups of seeds give an interval for
    variance: list[float]
    order: list[int]
    active: list[int]
    kl: list[float] | None = None
    kl_total: float | None = None  # sum of kl: the ELBO's KL term averaged over the test set
    kl_not_available: str = ""

    @property
    def spectrum(self) -> list[float]:
        return [self.variance[i] for i in self.order]

    def to_json(self) -> dict:
        from latent_atlas.analysis.results import rounded

        out = rounded(self)
        assert isinstance(out, dict)
        return out


def dimension_diagnostics(
    mu: ArrayLike, logvar: ArrayLike | None = None, threshold: float = ACTIVE_THRESHOLD
) -> DimensionDiagnostics:
    """Variance spectrum, active units and (with ``logvar``) per-dimension KL.

    Parameters
    ----------
    mu : array_like, shape [N, d]
        Posterior means over the test set, N >= 2.
    logvar : array_like, shape [N, d], optional
        Posterior log-variances; None when the encoder gives only the mean.
    threshold : float, default 0.01
        A dim is active when its posterior-mean variance is strictly above this.

    Returns
    -------
    DimensionDiagnostics
    """
    var = posterior_mean_variance(mu)
    order = spectrum_order(var)
    mask = active_mask(var, threshold)
    kl = None if logvar is None else kl_per_dimension(mu, logvar)
    active = [int(i) for i in order if mask[i]]
    return DimensionDiagnostics(
        latent_dim=len(var),
        threshold=float(threshold),
        n_active=len(active),
        variance=[float(v) for v in var],
        order=[int(i) for i in order],
        active=active,
        kl=None if kl is None else [float(v) for v in kl],
        kl_total=None if kl is None else float(kl.sum()),
        kl_not_available="" if kl is not None else KL_NOT_AVAILABLE,
    )
