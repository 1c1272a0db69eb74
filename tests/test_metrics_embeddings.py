"""Known-answer tests for analysis.embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from latent_atlas.analysis.embeddings import (
    class_centroids,
    gaussian_fit,
    kl_to_standard_normal,
    knn_accuracy,
    share_inside,
    silhouette,
    trustworthiness_score,
)
from latent_atlas.toolkit.errors import AtlasError


def clusters(n_per=10, scale=0.1, seed=0):
    """Three tight clusters 10 latent units apart, labels 0, 1, 2."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    emb = np.vstack([rng.normal(c, scale, (n_per, 2)) for c in centres])
    return emb, np.repeat(np.arange(3), n_per)


def test_knn_accuracy_separable_is_one():
    emb, labels = clusters()
    assert knn_accuracy(emb, labels, k=3, folds=5, seed=0) == 1.0


def test_knn_accuracy_independent_labels_near_chance():
    rng = np.random.default_rng(1)
    emb = rng.uniform(-1, 1, (200, 2))
    labels = rng.integers(0, 2, 200)
    acc = knn_accuracy(emb, labels, k=5, folds=5, seed=0)
    assert 0.3 < acc < 0.7
    assert knn_accuracy(emb, labels, k=5, folds=5, seed=0) == acc  # deterministic


def test_knn_accuracy_checks():
    emb, labels = clusters()
    with pytest.raises(AtlasError, match=r"labels: shape \(29,\), expected \[30\]"):
        knn_accuracy(emb, labels[:-1])
    with pytest.raises(AtlasError, match=r"k: 25, expected an integer in \[1, 24\]"):
        knn_accuracy(emb, labels, k=25, folds=5)
    bad = emb.copy()
    bad[0, 0] = np.inf
    with pytest.raises(AtlasError, match="embeddings: contains NaN or inf"):
        knn_accuracy(bad, labels)


def test_silhouette_by_hand():
    # 1-D: class 0 at {0, 1}, class 1 at {10, 11}. Every a = 1; b = 10.5, 9.5, 9.5, 10.5.
    s = silhouette([[0.0], [1.0], [10.0], [11.0]], [0, 0, 1, 1])
    assert s == pytest.approx(1 - (1 / 10.5 + 1 / 9.5) / 2)


def test_silhouette_tight_far_clusters_near_one():
    emb, labels = clusters(scale=0.01)
    assert silhouette(emb, labels) > 0.99
    assert silhouette(emb, labels, sample_size=20, seed=0) > 0.99
    assert silhouette(emb, labels, sample_size=1000) == silhouette(emb, labels)


def test_silhouette_needs_two_classes():
    with pytest.raises(AtlasError, match="labels: 1 distinct classes among 3 points"):
        silhouette([[0.0], [1.0], [2.0]], [0, 0, 0])


def test_trustworthiness_of_identity_is_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    assert trustworthiness_score(x, x, n_neighbors=5) == pytest.approx(1.0)
    with pytest.raises(AtlasError, match="n_neighbors: 10, expected below N / 2 = 10"):
        trustworthiness_score(x, x, n_neighbors=10)
    with pytest.raises(AtlasError, match=r"embeddings: shape \(19, 3\), expected \[20, d\]"):
        trustworthiness_score(x, x[:-1])


def test_class_centroids_by_hand():
    emb = [[1.0, 0.0], [-1.0, 0.0], [2.0, 2.0], [2.0, 4.0], [4.0, 2.0], [4.0, 4.0]]
    labels = [0, 0, 1, 1, 1, 1]
    centroids, spreads = class_centroids(emb, labels, 3)
    np.testing.assert_allclose(centroids[:2], [[0.0, 0.0], [3.0, 3.0]])
    np.testing.assert_allclose(spreads[:2], [1.0, math.sqrt(2.0)])
    assert np.isnan(centroids[2]).all() and np.isnan(spreads[2])  # class 2 is empty
    with pytest.raises(AtlasError, match="labels: values in"):
        class_centroids(emb, labels, 1)


def test_share_inside_by_hand():
    emb = [[0.0, 0.0], [1.0, 1.0], [2.0, -1.0], [-3.0, 0.0]]
    assert share_inside(emb, -1.0, 1.0) == 0.5  # bounds are inclusive
    assert share_inside(emb, [-1.0, -2.0], [2.0, 1.0]) == 0.75
    assert share_inside(emb, -10, 10) == 1.0
    with pytest.raises(AtlasError, match="lo, hi: lo .* exceeds hi"):
        share_inside(emb, 1.0, -1.0)
    with pytest.raises(AtlasError, match=r"hi: shape \(3,\), expected a scalar or \[2\]"):
        share_inside(emb, 0.0, [1.0, 1.0, 1.0])


def test_gaussian_fit_by_hand():
    mean, cov = gaussian_fit([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    np.testing.assert_allclose(mean, [1.0, 1.0])
    np.testing.assert_allclose(cov, [[4 / 3, 0.0], [0.0, 4 / 3]])  # ddof = 1
    _, cov1 = gaussian_fit([[1.0], [3.0]])
    assert cov1.shape == (1, 1) and cov1[0, 0] == pytest.approx(2.0)


def test_kl_to_standard_normal_known_answers():
    assert kl_to_standard_normal(np.zeros(2), np.eye(2)) == pytest.approx(0.0, abs=1e-15)
    assert kl_to_standard_normal([1.0], [[math.e]]) == pytest.approx(0.5 * (math.e + 1 - 1 - 1))
    # d = 2: 0.5 * (tr 2.5 + |mu|^2 1 - d 2 - ln det 1) = 0.75
    assert kl_to_standard_normal([1.0, 0.0], np.diag([2.0, 0.5])) == pytest.approx(0.75)


def test_kl_rejects_singular_cov():
    with pytest.raises(AtlasError, match="cov: not positive definite"):
        kl_to_standard_normal([0.0, 0.0], [[1.0, 1.0], [1.0, 1.0]])
    with pytest.raises(AtlasError, match=r"cov: shape \(2, 2\), expected \[3, 3\]"):
        kl_to_standard_normal([0.0, 0.0, 0.0], np.eye(2))


# ---------------------------------------------------------------- per class (claim 2's classes)
def test_per_class_recall_known_answer():
    from latent_atlas.analysis.embeddings import per_class_recall

    pred, lab = [0, 0, 1, 1, 2], [0, 1, 1, 1, 2]
    assert per_class_recall(pred, lab, 4) == [1.0, pytest.approx(2 / 3), 1.0, None]
    with pytest.raises(AtlasError, match="predictions"):
        per_class_recall([0, 5, 1, 1, 2], lab, 4)


def test_knn_predictions_agree_with_the_accuracy():
    from latent_atlas.analysis.embeddings import knn_predictions, per_class_recall

    rng = np.random.default_rng(3)
    lab = np.repeat(np.arange(3), 40)
    emb = rng.normal(0, 1, (120, 2)) + lab[:, None] * np.array([1.5, 0.0])
    pred = knn_predictions(emb, lab, k=5, folds=5, seed=1)
    assert np.mean(pred == lab) == knn_accuracy(emb, lab, k=5, folds=5, seed=1)
    recall = per_class_recall(pred, lab, 3)
    # pooled accuracy is the class-size-weighted mean of the recalls (equal sizes here)
    assert np.mean(recall) == pytest.approx(knn_accuracy(emb, lab, k=5, folds=5, seed=1))


def test_silhouette_by_class_known_answer():
    from latent_atlas.analysis.embeddings import silhouette_by_class

    # class 0 at 0 and 1, class 1 at 4 and 6 (one dimension): s = (b - a) / max(a, b)
    emb, lab = np.array([[0.0], [1.0], [4.0], [6.0]]), np.array([0, 0, 1, 1])
    s = [(5 - 1) / 5, (4 - 1) / 4, (3.5 - 2) / 3.5, (5.5 - 2) / 5.5]
    overall, per_class = silhouette_by_class(emb, lab, 3)
    assert overall == pytest.approx(np.mean(s))
    assert per_class[0] == pytest.approx((s[0] + s[1]) / 2)
    assert per_class[1] == pytest.approx((s[2] + s[3]) / 2) and per_class[2] is None


def test_silhouette_by_class_measures_the_same_subset_as_silhouette():
    from latent_atlas.analysis.embeddings import silhouette_by_class

    rng = np.random.default_rng(0)
    lab = rng.integers(0, 4, 600)
    emb = rng.normal(0, 1, (600, 2)) + lab[:, None]
    for size, seed in ((None, 0), (250, 0), (250, 7)):
        overall, per_class = silhouette_by_class(emb, lab, 4, size, seed)
        assert overall == silhouette(emb, lab, size, seed)
        assert all(v is not None and -1 <= v <= 1 for v in per_class)


@pytest.mark.parametrize("seed", range(12))
def test_trustworthiness_from_cached_ranks_is_scikit_learns_bit_for_bit(seed):
    """The input-space ranks are computed once per report and reused for every model: the
    number must stay scikit-learn's, ties (repeated inputs, repeated codes) included."""
    from latent_atlas.analysis.embeddings import input_ranks, trustworthiness_from_ranks
    from sklearn.manifold import trustworthiness

    rng = np.random.default_rng(seed)
    n, dims, d = int(rng.integers(12, 200)), int(rng.integers(1, 40)), int(rng.integers(1, 4))
    x = rng.integers(0, 3, (n, dims)).astype(np.float32) if seed % 3 == 0 else rng.random((n, dims))
    emb = rng.integers(0, 2, (n, d)).astype(np.float64) if seed % 4 == 0 else rng.random((n, d))
    k = int(rng.integers(1, (n - 1) // 2))
    ranks = input_ranks(x)
    expected = trustworthiness(x, emb, n_neighbors=k)
    assert trustworthiness_from_ranks(ranks, emb, k) == expected
    assert trustworthiness_score(x, emb, k) == expected
    # one set of ranks serves any embedding of the same inputs
    other = rng.random((n, 2))
    assert trustworthiness_from_ranks(ranks, other, k) == trustworthiness(x, other, n_neighbors=k)


def test_ranks_of_the_wrong_shape_are_one_message():
    from latent_atlas.analysis.embeddings import trustworthiness_from_ranks

    with pytest.raises(AtlasError, match="expected integer \\[N, N\\]"):
        trustworthiness_from_ranks(np.zeros((4, 5), np.int32), np.zeros((4, 2)))
    with pytest.raises(AtlasError, match="expected integer \\[N, N\\]"):
        trustworthiness_from_ranks(np.zeros((4, 4)), np.zeros((4, 2)))


def test_a_report_computes_the_input_ranks_once_for_all_its_models(monkeypatch):
    from latent_atlas.analysis import embeddings as em

    from latent_atlas import pipeline

    calls = []
    real = em.input_ranks
    monkeypatch.setattr(em, "input_ranks", lambda x: calls.append(len(x)) or real(x))
    cache = pipeline.Cache()
    x = np.random.default_rng(0).random((50, 6)).astype(np.float32)
    first = cache.ranks(x)
    assert cache.ranks(x.copy()) is first and calls == [50]
    cache.ranks(x[:40])  # other inputs: their own ranks
    assert calls == [50, 40]
