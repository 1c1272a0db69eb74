"""Known-answer tests for analysis.classes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from latent_atlas.analysis.classes import (
    agreement,
    ambiguous_share,
    class_maps,
    class_shares,
    classes_present,
    nearest_embedding_classes,
    softmax,
)
from latent_atlas.toolkit.errors import AtlasError


def test_equal_logits_give_uniform_probs_and_max_entropy():
    k = 4
    probs = softmax(np.full((2, 3, k), 7.5))
    np.testing.assert_allclose(probs, 1 / k)
    labels, conf, ent = class_maps(probs)
    assert labels.shape == conf.shape == ent.shape == (2, 3)
    assert labels.dtype == np.int64 and np.all(labels == 0)
    np.testing.assert_allclose(conf, 1 / k)
    np.testing.assert_allclose(ent, math.log(k))


def test_softmax_is_stable_and_sums_to_one():
    p = softmax([[1000.0, 1000.0, 0.0], [-1000.0, -1000.0, -1000.0]])
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-300)
    np.testing.assert_allclose(softmax([0.0, math.log(3.0)]), [0.25, 0.75])


def test_one_hot_ish_has_zero_entropy():
    labels, conf, ent = class_maps(softmax([[0.0, 60.0, 0.0]]))
    assert labels.tolist() == [1]
    assert conf[0] == pytest.approx(1.0)
    assert 0.0 <= ent[0] < 1e-20
    _, _, ent = class_maps([[0.0, 0.0, 1.0]])
    assert ent[0] == 0.0


def test_class_maps_by_hand():
    labels, conf, ent = class_maps([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]])
    assert labels.tolist() == [0, 2]  # a tie goes to the lowest index
    np.testing.assert_allclose(conf, [0.5, 0.7])
    expected = -(0.1 * math.log(0.1) + 0.2 * math.log(0.2) + 0.7 * math.log(0.7))
    np.testing.assert_allclose(ent, [math.log(2), expected])


def test_class_maps_rejects_logits():
    with pytest.raises(AtlasError, match="probs: values in"):
        class_maps([[2.0, -1.0]])
    with pytest.raises(AtlasError, match="probs: sums along the last axis"):
        class_maps([[0.2, 0.2]])


def test_class_shares_by_hand():
    labels = np.array([[0, 1, 1], [2, 2, 2], [0, 2, 9]])
    shares = class_shares(labels, 10)
    expected = np.zeros(10)
    expected[[0, 1, 2, 9]] = [2 / 9, 2 / 9, 4 / 9, 1 / 9]
    np.testing.assert_allclose(shares, expected)
    assert shares.sum() == pytest.approx(1.0)


def test_class_shares_rejects_bad_labels():
    with pytest.raises(AtlasError, match=r"labels: values in \[0, 10\], expected class indices"):
        class_shares([0, 10], 10)
    with pytest.raises(AtlasError, match="labels: dtype float64, expected integers"):
        class_shares([0.0, 1.0], 10)


def test_classes_present_thresholds():
    shares = [0.6, 0.3, 0.01, 0.005, 0.085]
    assert classes_present(shares) == 4  # 0.01 counts (inclusive)
    assert classes_present(shares, min_share=0.1) == 2
    assert classes_present(shares, min_share=0.0) == 5
    assert classes_present(shares, min_share=0.7) == 0


def test_ambiguous_share_by_hand():
    conf = [[0.2, 0.5], [0.49, 0.9]]
    assert ambiguous_share(conf) == 0.5
    assert ambiguous_share(conf, threshold=0.95) == 1.0
    assert ambiguous_share(conf, threshold=0.2) == 0.0


def test_nearest_embedding_classes_two_clusters():
    rng = np.random.default_rng(0)
    emb = np.vstack([rng.normal(-5, 0.3, (10, 2)), rng.normal(5, 0.3, (10, 2))])
    labels = np.array([3] * 10 + [7] * 10)
    points = [[-4.0, -6.0], [6.0, 4.0], [-5.0, -5.0]]
    assert nearest_embedding_classes(points, emb, labels).tolist() == [3, 7, 3]
    assert nearest_embedding_classes(points, emb, labels, k=5).tolist() == [3, 7, 3]


def test_nearest_embedding_classes_majority_vote():
    emb = [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]
    labels = [0, 1, 1]
    assert nearest_embedding_classes([[0.0, 0.0]], emb, labels, k=1).tolist() == [0]
    assert nearest_embedding_classes([[0.0, 0.0]], emb, labels, k=3).tolist() == [1]


def test_nearest_embedding_classes_checks():
    with pytest.raises(AtlasError, match=r"points: shape \(1, 3\), expected \[M, 2\]"):
        nearest_embedding_classes([[0.0, 0.0, 0.0]], [[0.0, 0.0]], [0])
    with pytest.raises(AtlasError, match=r"k: 2, expected an integer in \[1, 1\]"):
        nearest_embedding_classes([[0.0, 0.0]], [[0.0, 0.0]], [0], k=2)


def test_agreement_by_hand():
    assert agreement([[1, 2], [3, 4]], [[1, 0], [3, 0]]) == 0.5
    assert agreement([1, 2, 3], [1, 2, 3]) == 1.0
    with pytest.raises(AtlasError, match=r"b: shape \(3,\), expected \[2, 2\]"):
        agreement([[1, 2], [3, 4]], [1, 2, 3])
