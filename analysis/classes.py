"""What class a classifier sees where: class maps, shares, confidence and nearest embeddings."""

from __future__ import annotations

import numpy as np
from latent_atlas.analysis.validation import check_array, check_float, check_int, check_labels
from latent_atlas.toolkit.errors import AtlasError
from numpy.typing import ArrayLike, NDArray
from scipy.special import entr


def softmax(logits: ArrayLike) -> NDArray[np.float64]:
    """Numerically stable softmax over the last axis.

    Parameters
    ----------
    logits : array_like, shape [..., K]
        Finite class scores (any real values).

    Returns
    -------
    numpy.ndarray, shape [..., K], float64
        Probabilities in [0, 1] summing to 1 along the last axis.
    """
    z = check_array(logits, "logits", min_ndim=1)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def class_maps(
    probs: ArrayLike,
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Predicted class, confidence and entropy per cell.

    Parameters
    ----------
    probs : array_like, shape [..., K]
        Class probabilities in [0, 1] summing to 1 (within 1e-3) along the last axis.

    Returns
    -------
    labels : numpy.ndarray, shape [...], int64
        Argmax class in [0, K) (the lowest index on ties).
    confidence : numpy.ndarray, shape [...], float64
        Largest probability, in [1/K, 1].
    entropy : numpy.ndarray, shape [...], float64
        Shannon entropy in nats, in [0, ln K] (``0 ln 0`` counts as 0).
    """
    p = check_array(probs, "probs", min_ndim=1, bounds=(0.0, 1.0))
    sums = p.sum(axis=-1)
    if not np.allclose(sums, 1.0, atol=1e-3, rtol=0.0):
        raise AtlasError(
            f"probs: sums along the last axis in [{sums.min():g}, {sums.max():g}], "
            "expected 1 (probabilities, e.g. softmax of logits)"
        )
    return p.argmax(axis=-1).astype(np.int64), p.max(axis=-1), entr(p).sum(axis=-1)


def class_shares(labels: ArrayLike, n_classes: int) -> NDArray[np.float64]:
    """Share of cells assigned to each class.

    Parameters
    ----------
    labels : array_like of int, any shape
        Class indices in [0, n_classes).
    n_classes : int
        Number of classes K (>= 1).

    Returns
    -------
    numpy.ndarray, shape [K], float64
        Shares in [0, 1] summing to 1.
    """
    k = check_int(n_classes, "n_classes", lo=1)
    lab = check_labels(labels, "labels", n_classes=k)
    return np.bincount(lab.ravel(), minlength=k) / lab.size


def classes_present(shares: ArrayLike, min_share: float = 0.01) -> int:
    """Number of classes whose share is at least ``min_share``.

    Parameters
    ----------
    shares : array_like, shape [K]
        Class shares in [0, 1], e.g. from :func:`class_shares`.
    min_share : float, default 0.01
        Inclusive threshold in [0, 1].

    Returns
    -------
    int
        Count in [0, K].
    """
    s = check_array(shares, "shares", ndim=1, bounds=(0.0, 1.0))
    t = check_float(min_share, "min_share", lo=0.0, hi=1.0)
    return int(np.count_nonzero(s >= t))


def class_contiguity(labels: ArrayLike, n_classes: int) -> list[float | None]:
    """How much of each class's region in a class map is one piece.

    Parameters
    ----------
    labels : array_like, shape [H, W], int
        Class index of each grid cell, in [0, n_classes).
    n_classes : int
        Number of classes K.

    Returns
    -------
    list of float or None, length K
        For each class, the share of its cells in its largest 4-connected region, in (0, 1]
        (1: one contiguous region; 1/n: n isolated cells); None for a class with no cell.
    """
    from scipy.ndimage import label as connected  # local: 0.1 s of import only when measured

    lab = check_labels(labels, "labels", n_classes=n_classes, shape=("H", "W"))
    out: list[float | None] = []
    for k in range(n_classes):
        mask = lab == k
        total = int(mask.sum())
        if total == 0:
            out.append(None)
            continue
        parts, count = connected(mask)  # 4-connectivity: scipy's default structure
        largest = int(np.bincount(parts.ravel())[1:].max()) if count else 0
        out.append(largest / total)
    return out


def ambiguous_share(confidence: ArrayLike, threshold: float = 0.5) -> float:
    """Share of cells whose confidence is strictly below ``threshold``.

    Parameters
    ----------
    confidence : array_like, any shape
        Max class probabilities in [0, 1], e.g. from :func:`class_maps`.
    threshold : float, default 0.5
        Threshold in [0, 1].

    Returns
    -------
    float
        Share in [0, 1].
    """
    c = check_array(confidence, "confidence", bounds=(0.0, 1.0))
    t = check_float(threshold, "threshold", lo=0.0, hi=1.0)
    return float(np.mean(c < t))


def nearest_embedding_classes(
    points: ArrayLike, embeddings: ArrayLike, labels: ArrayLike, k: int = 1
) -> NDArray[np.int64]:
    """Class of the nearest test-set embedding(s) for each latent point.

    Uses ``sklearn.neighbors.KNeighborsClassifier`` (Euclidean distance, uniform weights):
    majority vote of the ``k`` nearest embeddings; ties go to the smallest class index.

    Parameters
    ----------
    points : array_like, shape [M, d]
        Query points in latent space (e.g. the grid's (z0, z1) pairs).
    embeddings : array_like, shape [N, d]
        Encoded test images (latent means).
    labels : array_like of int, shape [N]
        True class of each embedding (non-negative).
    k : int, default 1
        Number of neighbours, in [1, N].

    Returns
    -------
    numpy.ndarray, shape [M], int64
        Predicted class per point.
    """
    emb = check_array(embeddings, "embeddings", shape=("N", "d"))
    n, d = emb.shape
    pts = check_array(points, "points", shape=("M", d))
    lab = check_array(labels, "labels", shape=(n,), dtype_kind="i", bounds=(0, np.inf))
    kk = check_int(k, "k", lo=1, hi=n)
    # imported here: scikit-learn costs ~1 s to import, and `traverse` only needs softmax
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=kk).fit(emb, lab)
    return np.asarray(clf.predict(pts), dtype=np.int64)


def agreement(a: ArrayLike, b: ArrayLike) -> float:
    """Share of positions where two label arrays are equal.

    Parameters
    ----------
    a, b : array_like, same shape
        Labels (e.g. two class maps).

    Returns
    -------
    float
        Share in [0, 1].
    """
    aa = check_array(a, "a", dtype_kind=None)
    bb = check_array(b, "b", shape=aa.shape, dtype_kind=None)
    return float(np.mean(aa == bb))
