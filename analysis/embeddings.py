"""How well the encoder's embeddings separate classes and match the prior."""

from __future__ import annotations

import numpy as np
import sklearn
from latent_atlas.analysis.validation import (
    check_array,
    check_int,
    check_labels,
    mean_and_covariance,
)
from latent_atlas.toolkit.errors import AtlasError
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import pairwise_distances, silhouette_samples, silhouette_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

EMB = ("N", "d")
WORKING_MEMORY_MIB = 32  # sklearn's chunk of pairwise distances (see silhouette)


def _check_labelled(
    embeddings: ArrayLike, labels: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    emb = check_array(embeddings, "embeddings", shape=EMB)
    return emb, check_labels(labels, "labels", shape=(emb.shape[0],))


def knn_predictions(
    embeddings: ArrayLike, labels: ArrayLike, k: int = 5, folds: int = 5, seed: int = 0
) -> NDArray[np.int64]:
    """Cross-validated k-nearest-neighbour predictions in the embedding.

    ``StratifiedKFold(folds, shuffle=True, random_state=seed)``; every point is predicted
    once by a ``KNeighborsClassifier(k)`` fitted on the other folds.

    Parameters
    ----------
    embeddings : array_like, shape [N, d]
        Latent codes.
    labels : array_like of int, shape [N]
        True classes.
    k : int, default 5
        Neighbours, at least 1 and at most the smallest training-fold size.
    folds : int, default 5
        Number of folds, in [2, N].
    seed : int, default 0
        Shuffling seed.

    Returns
    -------
    numpy.ndarray of int, shape [N]
        The predicted class of every point.
    """
    emb, lab = _check_labelled(embeddings, labels)
    n = emb.shape[0]
    nf = check_int(folds, "folds", lo=2, hi=n)
    # k may be at most the smallest training set: n minus the largest fold, ceil(n / nf)
    largest_fold = -(-n // nf)
    kk = check_int(k, "k", lo=1, hi=n - largest_fold)
    if np.unique(lab, return_counts=True)[1].max() < nf:
        raise AtlasError(f"labels: no class has {nf} members, expected at least one (folds={nf})")
    cv = StratifiedKFold(n_splits=nf, shuffle=True, random_state=check_int(seed, "seed", lo=0))
    pred = cross_val_predict(KNeighborsClassifier(n_neighbors=kk), emb, lab, cv=cv)
    return np.asarray(pred, dtype=np.int64)


def knn_accuracy(
    embeddings: ArrayLike, labels: ArrayLike, k: int = 5, folds: int = 5, seed: int = 0
) -> float:
    """Cross-validated k-nearest-neighbour classification accuracy in the embedding: the
    share of points whose :func:`knn_predictions` class is their own, pooled over all points.

    Parameters and checks as :func:`knn_predictions`.

    Returns
    -------
    float
        Accuracy in [0, 1].
    """
    pred = knn_predictions(embeddings, labels, k, folds, seed)
    return float(np.mean(pred == np.asarray(labels)))


def per_class_recall(
    predictions: ArrayLike, labels: ArrayLike, n_classes: int
) -> list[float | None]:
    """Recall of each class: the share of its points predicted as that class.

    Parameters
    ----------
    predictions, labels : array_like of int, shape [N]
        Predicted and true classes (e.g. from :func:`knn_predictions`).
    n_classes : int
        Number of classes K; classes are ``0 … K-1``.

    Returns
    -------
    list of float or None, length K
        Recall in [0, 1] per class; None for a class with no points.
    """
    k = check_int(n_classes, "n_classes", lo=1)
    lab = check_labels(labels, "labels", n_classes=k)
    pred = check_labels(predictions, "predictions", shape=lab.shape, n_classes=k)
    return [float(np.mean(pred[lab == c] == c)) if np.any(lab == c) else None for c in range(k)]


def silhouette(
    embeddings: ArrayLike, labels: ArrayLike, sample_size: int | None = None, seed: int = 0
) -> float:
    """Mean silhouette coefficient of the classes in the embedding (Euclidean).

    Parameters
    ----------
    embeddings : array_like, shape [N, d]
        Latent codes.
    labels : array_like of int, shape [N]
        Classes; between 2 and N - 1 distinct values.
    sample_size : int, optional
        Compute on a random subset of this many points (all points if None or >= N).
    seed : int, default 0
        Subsampling seed.

    Returns
    -------
    float
        Silhouette in [-1, 1]; near 1 for tight, well separated classes.
    """
    emb, lab = _check_labelled(embeddings, labels)
    n = emb.shape[0]
    n_labels = np.unique(lab).size
    if not 2 <= n_labels <= n - 1:
        raise AtlasError(
            f"labels: {n_labels} distinct classes among {n} points, expected 2 to {n - 1}"
        )
    size = None if sample_size is None else check_int(sample_size, "sample_size", lo=2)
    if size is not None and size >= n:
        size = None
    rs = check_int(seed, "seed", lo=0)
    try:
        # sklearn computes the distance matrix in row chunks of `working_memory` MiB (default
        # 1024: all 5000 × 5000 float64 distances, 200 MB, at once); per-row sums do not
        # depend on the chunking, so the value is the same
        with sklearn.config_context(working_memory=WORKING_MEMORY_MIB):
            return float(silhouette_score(emb, lab, sample_size=size, random_state=rs))
    except ValueError as exc:  # e.g. the random subset holds one class only
        raise AtlasError(f"sample_size: {size} gave an unusable subset ({exc})") from exc


def silhouette_by_class(
    embeddings: ArrayLike,
    labels: ArrayLike,
    n_classes: int,
    sample_size: int | None = None,
    seed: int = 0,
) -> tuple[float, list[float | None]]:
    """The mean silhouette coefficient and its mean within each class (Euclidean).

    The subset is the one :func:`silhouette` measures (scikit-learn's: the first
    ``sample_size`` of ``RandomState(seed).permutation(N)``), so the overall value equals
    :func:`silhouette` with the same arguments.

    Parameters
    ----------
    embeddings : array_like, shape [N, d]
        Latent codes.
    labels : array_like of int, shape [N]
        Classes ``0 … n_classes-1``; between 2 and N - 1 distinct values.
    n_classes : int
        Number of classes K.
    sample_size : int, optional
        Compute on a random subset of this many points (all points if None or >= N).
    seed : int, default 0
        Subsampling seed.

    Returns
    -------
    (float, list of float or None)
        The overall silhouette in [-1, 1], and per class (length K) the mean silhouette of its
        points in the subset, in [-1, 1]; None for a class with no point in the subset.
    """
    emb, lab = _check_labelled(embeddings, labels)
    k = check_int(n_classes, "n_classes", lo=1)
    lab = check_labels(lab, "labels", n_classes=k)
    n = emb.shape[0]
    n_labels = np.unique(lab).size
    if not 2 <= n_labels <= n - 1:
        raise AtlasError(
            f"labels: {n_labels} distinct classes among {n} points, expected 2 to {n - 1}"
        )
    size = None if sample_size is None else check_int(sample_size, "sample_size", lo=2)
    if size is not None and size < n:
        idx = np.random.RandomState(check_int(seed, "seed", lo=0)).permutation(n)[:size]
        emb, lab = emb[idx], lab[idx]
    try:
        with sklearn.config_context(working_memory=WORKING_MEMORY_MIB):
            values = silhouette_samples(emb, lab)
    except ValueError as exc:  # e.g. the random subset holds one class only
        raise AtlasError(f"sample_size: {size} gave an unusable subset ({exc})") from exc
    per_class = [float(values[lab == c].mean()) if np.any(lab == c) else None for c in range(k)]
    return float(values.mean()), per_class


def trustworthiness_score(
    inputs_flat: ArrayLike, embeddings: ArrayLike, n_neighbors: int = 5
) -> float:
    """How well the embedding preserves input-space neighbourhoods.

    ``sklearn.manifold.trustworthiness`` (Euclidean): penalises points that are embedding
    neighbours without being input neighbours. Quadratic in N: subsample before calling.
    Computed as :func:`trustworthiness_from_ranks` of :func:`input_ranks`, the same numbers.

    Parameters
    ----------
    inputs_flat : array_like, shape [N, D]
        Inputs, flattened (e.g. pixels in [0, 1]).
    embeddings : array_like, shape [N, d]
        Latent codes of the same N inputs.
    n_neighbors : int, default 5
        Neighbourhood size, at least 1 and below N / 2.

    Returns
    -------
    float
        Trustworthiness in [0, 1]; 1 means every embedding neighbourhood is an input one.
    """
    return trustworthiness_from_ranks(input_ranks(inputs_flat), embeddings, n_neighbors)


def input_ranks(inputs_flat: ArrayLike) -> NDArray[np.int32]:
    """Each input's neighbours in input space, by rank: the part of trustworthiness that
    does not depend on the embedding, so that it is computed once for many models embedding
    the same inputs (as in ``sklearn.manifold.trustworthiness``, Euclidean).

    Parameters
    ----------
    inputs_flat : array_like, shape [N, D]
        Inputs, flattened.

    Returns
    -------
    numpy.ndarray, shape [N, N], int32
        Entry ``[i, j]``: the rank of ``j`` among ``i``'s neighbours (1 = nearest); ``i``
        itself ranks last. 4·N² bytes (16 MB for N = 2000).
    """
    x = check_array(inputs_flat, "inputs_flat", shape=("N", "D"))
    n = x.shape[0]
    dist = pairwise_distances(x)
    np.fill_diagonal(dist, np.inf)  # a point is not its own neighbour
    order = np.argsort(dist, axis=1)
    del dist
    ranks = np.zeros((n, n), dtype=np.int32)
    rows = np.arange(n + 1)
    ranks[rows[:-1, np.newaxis], order] = rows[1:]
    return ranks


def trustworthiness_from_ranks(
    ranks: ArrayLike, embeddings: ArrayLike, n_neighbors: int = 5
) -> float:
    """Trustworthiness of ``embeddings`` against the inputs' :func:`input_ranks`.

    Parameters
    ----------
    ranks : array_like of int, shape [N, N]
        :func:`input_ranks` of the inputs.
    embeddings, n_neighbors
        As for :func:`trustworthiness_score`, and so is the value returned.
    """
    r = np.asarray(ranks)
    n = r.shape[0] if r.ndim == 2 else 0
    if r.ndim != 2 or r.shape != (n, n) or r.dtype.kind not in "iu":
        raise AtlasError(f"ranks: shape {r.shape} {r.dtype}, expected integer [N, N]")
    emb = check_array(embeddings, "embeddings", shape=(n, "d"))
    kk = check_int(n_neighbors, "n_neighbors", lo=1)
    if not kk < n / 2:
        raise AtlasError(f"n_neighbors: {kk}, expected below N / 2 = {n / 2:g}")
    neighbours = NearestNeighbors(n_neighbors=kk).fit(emb).kneighbors(return_distance=False)
    excess = r[np.arange(n)[:, np.newaxis], neighbours].astype(np.int64) - kk
    t = np.sum(excess[excess > 0])
    return float(1.0 - t * (2.0 / (n * kk * (2.0 * n - 3.0 * kk - 1.0))))


def class_centroids(
    embeddings: ArrayLike, labels: ArrayLike, n_classes: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Centroid and spread of each class in the embedding.

    Parameters
    ----------
    embeddings : array_like, shape [N, d]
        Latent codes.
    labels : array_like of int, shape [N]
        Classes in [0, n_classes).
    n_classes : int
        Number of classes K (>= 1).

    Returns
    -------
    centroids : numpy.ndarray, shape [K, d], float64
        Mean embedding per class, in latent units. NaN rows for classes with no points.
    spreads : numpy.ndarray, shape [K], float64
        RMS Euclidean distance of a class's points to its centroid (latent units, >= 0).
        NaN for classes with no points.
    """
    emb, lab = _check_labelled(embeddings, labels)
    kk = check_int(n_classes, "n_classes", lo=1)
    if lab.min() < 0 or lab.max() >= kk:
        raise AtlasError(
            f"labels: values in [{lab.min()}, {lab.max()}], expected class indices in [0, {kk - 1}]"
        )
    centroids = np.full((kk, emb.shape[1]), np.nan)
    spreads = np.full(kk, np.nan)
    for c in np.unique(lab):
        pts = emb[lab == c]
        centroids[c] = pts.mean(axis=0)
        spreads[c] = np.sqrt(np.mean(np.sum((pts - centroids[c]) ** 2, axis=1)))
    return centroids, spreads


def share_inside(embeddings: ArrayLike, lo: ArrayLike, hi: ArrayLike) -> float:
    """Share of points inside an axis-aligned box (bounds inclusive).

    Parameters
    ----------
    embeddings : array_like, shape [N, d]
        Latent codes.
    lo, hi : float or array_like of shape [d]
        Lower and upper bound per coordinate (a scalar applies to every coordinate);
        ``lo <= hi``.

    Returns
    -------
    float
        Share of rows with ``lo_k <= z_k <= hi_k`` for every k, in [0, 1].
    """
    emb = check_array(embeddings, "embeddings", shape=EMB)
    d = emb.shape[1]
    lo_a = np.broadcast_to(_check_bound(lo, "lo", d), (d,))
    hi_a = np.broadcast_to(_check_bound(hi, "hi", d), (d,))
    if (lo_a > hi_a).any():
        raise AtlasError(
            f"lo, hi: lo {lo_a.tolist()} exceeds hi {hi_a.tolist()}, expected lo <= hi"
        )
    return float(np.mean(np.all((emb >= lo_a) & (emb <= hi_a), axis=1)))


def _check_bound(v: ArrayLike, name: str, d: int) -> NDArray[np.float64]:
    arr = check_array(v, name)
    if arr.shape not in ((), (d,)):
        raise AtlasError(f"{name}: shape {arr.shape}, expected a scalar or [{d}]")
    return arr


def gaussian_fit(embeddings: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and covariance of the embeddings (a Gaussian fit to the aggregate posterior).

    Parameters
    ----------
    embeddings : array_like, shape [N, d]
        Latent codes, N >= 2.

    Returns
    -------
    mean : numpy.ndarray, shape [d], float64
        Latent units.
    cov : numpy.ndarray, shape [d, d], float64
        Sample covariance (ddof=1), latent units squared.
    """
    return mean_and_covariance(embeddings, "embeddings")


def kl_to_standard_normal(mean: ArrayLike, cov: ArrayLike) -> float:
    """KL divergence KL(N(mean, cov) || N(0, I)).

    ``0.5 * (tr(cov) + mean . mean - d - ln det cov)``.

    Parameters
    ----------
    mean : array_like, shape [d]
        Mean, latent units.
    cov : array_like, shape [d, d]
        Symmetric positive-definite covariance.

    Returns
    -------
    float
        KL in nats, >= 0; 0 only for mean 0 and cov I.
    """
    mu = check_array(mean, "mean", ndim=1)
    d = mu.shape[0]
    c = check_array(cov, "cov", shape=(d, d))
    try:
        chol = np.linalg.cholesky(c)
    except np.linalg.LinAlgError as exc:
        raise AtlasError(
            f"cov: not positive definite (eigenvalues {np.linalg.eigvalsh(c).tolist()}), "
            "expected a positive-definite covariance"
        ) from exc
    logdet = 2.0 * np.sum(np.log(np.diag(chol)))
    return float(0.5 * (np.trace(c) + mu @ mu - d - logdet))
