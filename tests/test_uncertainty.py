"""Known answers for the intervals across seeds and the verdict rule, at its edges."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from latent_atlas.analysis.uncertainty import (
    CONFIRMED,
    INCONCLUSIVE,
    REFUTED,
    Interval,
    Tally,
    Threshold,
    difference_interval,
    mean_interval,
    pairing_values,
    point_verdict,
    scale_interval,
    tally,
    verdict,
)
from latent_atlas.toolkit.errors import AtlasError
from scipy import stats

T_975_4 = 2.7764451051977987  # Student t, 97.5th percentile, 4 degrees of freedom (tables: 2.776)


def test_t_interval_known_answer():
    # 1..5: mean 3, s = √2.5, s/√5 = √0.5
    iv = mean_interval([1, 2, 3, 4, 5])
    half = T_975_4 * math.sqrt(0.5)
    assert iv.mean == 3 and iv.df == 4 and iv.method == "t" and iv.level == 0.95
    assert iv.low == pytest.approx(3 - half, abs=1e-12) and iv.high == pytest.approx(3 + half)
    assert iv.low == pytest.approx(1.0367568, abs=1e-7)


def test_t_interval_two_seeds_and_no_spread():
    iv = mean_interval([0.0, 1.0])  # t(0.975, 1) = 12.706: two seeds tell little
    assert (iv.low, iv.high) == pytest.approx((0.5 - 12.7062047 * 0.5, 0.5 + 12.7062047 * 0.5))
    flat = mean_interval([0.25] * 5)
    assert (flat.low, flat.mean, flat.high) == (0.25, 0.25, 0.25)


def test_welch_interval_known_answer():
    a, b = [1, 2, 3, 4, 5], [2, 4, 6, 8, 10]
    iv = difference_interval(a, b)
    # se² = 2.5/5 + 10/5 = 2.5; ν = 2.5² / (0.5²/4 + 2²/4) = 6.25 / 1.0625
    nu = 6.25 / 1.0625
    half = stats.t.ppf(0.975, nu) * math.sqrt(2.5)
    assert iv.mean == 3 and iv.df == pytest.approx(nu) and iv.method == "welch"
    assert (iv.low, iv.high) == pytest.approx((3 - half, 3 + half))
    # independent implementation: scipy's Welch test (its interval is for mean(x) − mean(y))
    ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert (iv.low, iv.high) == pytest.approx((ci.low, ci.high))


def test_welch_interval_without_spread():
    iv = difference_interval([1.0, 1.0, 1.0], [3.0, 3.0])
    assert (iv.low, iv.mean, iv.high) == (2.0, 2.0, 2.0)


@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=12),
       st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=12))  # fmt: skip
def test_intervals_contain_their_mean_and_match_scipy(a, b):
    one = mean_interval(a)
    assert one.low <= one.mean <= one.high
    if np.std(a) > 1e-6:
        lo, hi = stats.t.interval(0.95, len(a) - 1, np.mean(a), stats.sem(a))
        assert (one.low, one.high) == pytest.approx((lo, hi), rel=1e-9, abs=1e-9)
    two = difference_interval(a, b)
    assert two.low <= two.mean <= two.high


def test_scale_interval():
    iv = scale_interval(Interval(0.3, 0.2, 0.4, 0.95, "t", 4.0), 2.0)
    assert (iv.low, iv.mean, iv.high) == pytest.approx((0.4, 0.6, 0.8))
    neg = scale_interval(Interval(0.3, 0.2, 0.4, 0.95, "t", 4.0), -1.0)
    assert (neg.low, neg.high) == pytest.approx((-0.4, -0.2))
    with pytest.raises(AtlasError, match="scale factor 0"):
        scale_interval(iv, 0.0)


@pytest.mark.parametrize(
    "values, message",
    [
        ([1.0], "1 value\\(s\\), expected at least 2 seeds"),
        ([], "0 value\\(s\\)"),
        ([1.0, float("nan")], "1 non-finite value"),
        ([[1.0, 2.0]], "expected one value per seed"),
    ],
)
def test_interval_inputs_are_checked(values, message):
    with pytest.raises(AtlasError, match=message):
        mean_interval(values)


def test_level_is_checked():
    with pytest.raises(AtlasError, match="interval level 1"):
        mean_interval([1, 2], level=1)


# ---------------------------------------------------------------------------- verdicts
def _iv(lo: float, hi: float) -> Interval:
    return Interval((lo + hi) / 2, lo, hi, 0.95, "t", 4.0)


UP, DOWN = math.nextafter(1.25, 2), math.nextafter(1.25, 0)


@pytest.mark.parametrize(
    "side, lo, hi, expected",
    [
        # confirming side "> 1.25": the interval must lie strictly above
        (">", UP, 2.0, CONFIRMED),
        (">", 1.25, 2.0, INCONCLUSIVE),  # touches the threshold, which is not "> 1.25"
        (">", DOWN, 2.0, INCONCLUSIVE),
        (">", 0.5, 1.25, REFUTED),  # wholly at or below
        (">", 0.5, UP, INCONCLUSIVE),
        (">", 0.5, DOWN, REFUTED),
        # ">= 1.25": the threshold itself is on the confirming side
        (">=", 1.25, 2.0, CONFIRMED),
        (">=", DOWN, 2.0, INCONCLUSIVE),
        (">=", 0.5, 1.25, INCONCLUSIVE),
        (">=", 0.5, DOWN, REFUTED),
        # "< 1.25" and "<= 1.25": mirrored
        ("<", 0.5, DOWN, CONFIRMED),
        ("<", 0.5, 1.25, INCONCLUSIVE),
        ("<", 1.25, 2.0, REFUTED),
        ("<", DOWN, 2.0, INCONCLUSIVE),
        ("<=", 0.5, 1.25, CONFIRMED),
        ("<=", 0.5, UP, INCONCLUSIVE),
        ("<=", 1.25, 2.0, INCONCLUSIVE),
        ("<=", UP, 2.0, REFUTED),
    ],
)
def test_verdict_at_the_threshold_edges(side, lo, hi, expected):
    assert verdict(_iv(lo, hi), Threshold(1.25, side)) == expected


@pytest.mark.parametrize(
    "side, value, expected",
    [(">", UP, CONFIRMED), (">", 1.25, REFUTED), (">", DOWN, REFUTED),
     (">=", 1.25, CONFIRMED), (">=", DOWN, REFUTED),
     ("<", DOWN, CONFIRMED), ("<", 1.25, REFUTED), ("<=", 1.25, CONFIRMED), ("<=", UP, REFUTED)],
)  # fmt: skip
def test_a_single_value_is_confirmed_or_refuted(side, value, expected):
    threshold = Threshold(1.25, side)
    assert point_verdict(value, threshold) == expected
    assert verdict(_iv(value, value), threshold) == expected  # a zero-width interval agrees


# Synthetic groups: five per-seed values each, known means and spreads.
VAE_CONFIRMS = [1.30, 1.32, 1.35, 1.31, 1.33]  # mean 1.322, s 0.0192: wholly above 1.25
VAE_REFUTES = [0.95, 0.97, 1.00, 0.96, 0.98]  # wholly below 1.25
VAE_STRADDLES = [1.08, 1.26, 1.07, 1.17, 1.32]  # like the retrained VAEs


@pytest.mark.parametrize(
    "values, expected, tally_expected",
    [(VAE_CONFIRMS, CONFIRMED, (5, 0)), (VAE_REFUTES, REFUTED, (0, 5)),
     (VAE_STRADDLES, INCONCLUSIVE, (2, 3))],
)  # fmt: skip
def test_synthetic_groups_give_each_outcome(values, expected, tally_expected):
    threshold = Threshold(1.25, ">=")
    iv = mean_interval(values)
    assert iv.mean == pytest.approx(sum(values) / 5)
    assert verdict(iv, threshold) == expected
    t = tally(values, threshold)
    assert (t.confirmed, t.refuted) == tally_expected and t.total == 5


def test_straddling_group_interval_by_hand():
    iv = mean_interval(VAE_STRADDLES)
    s = np.std(VAE_STRADDLES, ddof=1)
    assert iv.high - iv.mean == pytest.approx(T_975_4 * s / math.sqrt(5))
    assert iv.low < 1.25 < iv.high


def test_pairings_between_two_groups():
    ae = [0.46, 0.45, 0.47, 0.46, 0.45]
    vae = [0.34, 0.36, 0.35, 0.34, 0.35]
    diff = pairing_values(vae, ae, lambda a, b: b - a)  # AE share − VAE share
    assert diff.shape == (5, 5) and diff[0, 1] == pytest.approx(0.45 - 0.34)
    threshold = Threshold(0.0, ">")
    group = verdict(difference_interval(vae, ae), threshold)
    t = tally(diff.ravel(), threshold)
    assert group == CONFIRMED and t == Tally(25, 0) and t.agreeing(group) == 25
    # a group difference that straddles 0: some pairings each way, none agree with it
    mixed = pairing_values([0.1, 0.3], [0.2, 0.25], lambda a, b: b - a)
    t2 = tally(mixed.ravel(), threshold)
    assert (t2.confirmed, t2.refuted) == (2, 2)
    assert verdict(difference_interval([0.1, 0.3], [0.2, 0.25]), threshold) == INCONCLUSIVE
    assert t2.agreeing(INCONCLUSIVE) == 0 and t2.to_json()["total"] == 4


def test_threshold_is_checked():
    with pytest.raises(AtlasError, match="threshold side '=>'"):
        Threshold(1.0, "=>")
    with pytest.raises(AtlasError, match="threshold nan"):
        Threshold(float("nan"), ">")
    assert Threshold(1.25, ">=").describe() == ">= 1.25"


def test_welch_with_tiny_spread_has_finite_ends():
    # found by hypothesis: the squared variances underflowed to 0/0
    iv = difference_interval([0.0, 0.0], [0.0, 9.277695109320977e-135])
    assert iv.df == pytest.approx(1.0)  # all the spread in one group of two: ν = 1
    assert iv.low <= iv.mean <= iv.high and np.isfinite([iv.low, iv.high]).all()
