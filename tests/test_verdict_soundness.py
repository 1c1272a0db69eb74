"""The defects an audit of the verdict statistics found, each with a test at its edge: measures
without spread, bounded measures' intervals, the exact tests beside every interval, claim 3's
missing values, claim 2's class-map reading, and the simulated error-rate table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from latent_atlas.analysis import error_rates
from latent_atlas.analysis.classes import class_contiguity
from latent_atlas.analysis.studies import NOT_AVAILABLE
from latent_atlas.analysis.studies.seed import (
    MAP_SCOPE,
    MEANT,
    group_claim_separation,
    group_claim_stark,
)
from latent_atlas.analysis.uncertainty import (
    CANNOT_DISCRIMINATE,
    CONFIRMED,
    INCONCLUSIVE,
    REFUTED,
    Bounds,
    Threshold,
    judge_difference,
    judge_one,
    mean_interval,
    permutation_test,
    sign_flip_test,
)
from latent_atlas.toolkit.errors import AtlasError
from scipy import stats
from test_seed_groups import JITTER, _group, _same

T4 = 2.7764451051977987
ABOVE0 = Threshold(0.0, ">")


# ---------------------------------------------------------------------------- no spread
def test_a_tie_at_the_ceiling_cannot_discriminate():
    # every seed of both groups shows all 10 classes: the measure cannot tell them apart (today
    # it gave a zero-width interval at 0, a certain "refuted")
    j = judge_difference([10] * 5, [10] * 5, ABOVE0)
    assert j.verdict == CANNOT_DISCRIMINATE and j.basis == "tie"
    assert (j.test.p_confirm, j.test.p_refute) == (1.0, 1.0)


@pytest.mark.parametrize(
    "a, b, verdict, p",
    [
        ([9] * 5, [10] * 5, CONFIRMED, 1 / 252),  # no overlap: the most extreme of 252 splits
        ([10] * 5, [9] * 5, REFUTED, 1 / 252),
        ([9] * 2, [10] * 2, INCONCLUSIVE, 1 / 6),  # 2 + 2 seeds: C(4, 2) = 6 splits only
    ],
)
def test_no_spread_but_different_is_decided_by_the_permutation_test(a, b, verdict, p):
    j = judge_difference(a, b, ABOVE0)
    assert j.verdict == verdict and j.basis == "exact test (no spread)"
    assert min(j.test.p_confirm, j.test.p_refute) == pytest.approx(p)


def test_a_tie_does_not_vote_in_the_count():
    # three measures clearly clearer, the fourth tied at the ceiling: 3 confirmed, none refuted
    rows = [dict(present=10, ambiguous=0.05 + j, knn=0.8 + j, sil=0.2 + j) for j in JITTER]
    f = group_claim_separation(_same("VAE", present=10), _group("AE", rows), MEANT, named=False)
    present = f.measures[0]
    assert present.verdict == CANNOT_DISCRIMINATE and not present.votes
    assert (f.figures["confirmed_measures"], f.figures["refuted_measures"]) == (3, 0)
    assert f.figures["silent_measures"] == 1 and "cannot discriminate" in f.evidence
    assert f.verdict == CONFIRMED


def test_a_tie_prone_measure_under_the_null_rarely_refutes():
    # classes present: 10 on most seeds, 9 on some, the same chance in both groups (no true
    # difference). Today's rule refuted about a third of such studies (every tie refuted).
    rng = np.random.default_rng(3)
    verdicts = [judge_difference(10 - (rng.random(5) < 0.1), 10 - (rng.random(5) < 0.1),
                                 ABOVE0).verdict for _ in range(300)]  # fmt: skip
    assert verdicts.count(REFUTED) / 300 < 0.02 and verdicts.count(CONFIRMED) / 300 < 0.02
    assert verdicts.count(CANNOT_DISCRIMINATE) > 60  # 0.9^10 = 35 % tie at 10 classes


def test_one_group_without_spread_is_not_certain():
    j = judge_one([1.3] * 5, Threshold(1.25, ">="))
    # 5 seeds: the sign-flip test's smallest p is 1/32 > 2.5 %, it cannot confirm
    assert j.verdict == INCONCLUSIVE and j.test.p_confirm == pytest.approx(1 / 32)
    assert judge_one([1.3] * 6, Threshold(1.25, ">=")).verdict == CONFIRMED  # 1/64


# ---------------------------------------------------------------------------- bounded measures
def test_logit_interval_known_answer_and_in_bounds():
    x = [0.001, 0.004, 0.002, 0.03, 0.008]
    raw = mean_interval(x)
    assert raw.low < 0  # the plain t-interval of a share runs below 0
    iv = mean_interval(x, bounds=Bounds(0.0, 1.0))
    y = np.log(np.array(x) / (1 - np.array(x)))
    half = T4 * y.std(ddof=1) / math.sqrt(5)
    expit = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    assert iv.low == pytest.approx(expit(y.mean() - half))
    assert iv.high == pytest.approx(expit(y.mean() + half))
    assert iv.estimate == pytest.approx(expit(y.mean())) and iv.mean == pytest.approx(np.mean(x))
    assert 0 < iv.low < iv.estimate < iv.high < 1 and iv.method == "t, logit scale"


def test_log_interval_known_answer():
    iv = mean_interval([1.0, 2.0, 4.0], bounds=Bounds(0.0, None))
    # log values 0, ln 2, 2 ln 2: mean ln 2, s = ln 2, t(0.975, 2) = 4.302653
    half = 4.302652729749464 * math.log(2) / math.sqrt(3)
    assert iv.estimate == pytest.approx(2.0)
    assert (iv.low, iv.high) == pytest.approx((2 * math.exp(-half), 2 * math.exp(half)))
    assert iv.method == "t, log scale"


def test_a_value_at_its_bound_moves_half_a_step_inside():
    b = Bounds(0.0, 1.0, step=0.01)
    assert b.forward([0.0, 1.0]) == pytest.approx([math.log(0.005 / 0.995),
                                                   math.log(0.995 / 0.005)])  # fmt: skip
    iv = mean_interval([0.0, 0.0, 0.01, 0.0, 0.02], bounds=b)
    assert 0 < iv.low <= iv.high < 1
    with pytest.raises(AtlasError, match="outside the measure's bounds"):
        b.forward([1.2])
    with pytest.raises(AtlasError, match="expected low < high"):
        Bounds(1.0, 0.0)


@pytest.mark.slow
def test_simulated_coverage_on_the_logit_scale():
    # logit-normal per-seed shares: the interval covers the back-transformed centre 95 % of
    # the time, and for Beta(2, 8) shares (the audit's skewed case) it refutes a true claim
    # at its edge far less often than the raw t-interval did (5.8 % for 2.5 % nominal)
    rng = np.random.default_rng(7)
    centre = 0.2
    hits = 0
    for _ in range(2000):
        y = math.log(centre / (1 - centre)) + 0.8 * rng.standard_normal(5)
        iv = mean_interval(1 / (1 + np.exp(-y)), bounds=Bounds(0.0, 1.0))
        hits += iv.low <= centre <= iv.high
    assert abs(hits / 2000 - 0.95) < 0.015
    raw_refute = logit_refute = 0
    from scipy.special import digamma, expit

    typical = float(expit(digamma(2) - digamma(8)))
    for _ in range(2000):
        x = rng.beta(2, 8, 5)
        raw_refute += mean_interval(x).high < 0.2
        logit_refute += mean_interval(x, bounds=Bounds(0.0, 1.0)).high < typical
    assert raw_refute / 2000 > 0.04  # the defect, reproduced
    assert logit_refute / 2000 < 0.03


# ---------------------------------------------------------------------------- exact tests
def test_permutation_test_matches_scipy():
    a, b = [0.31, 0.35, 0.29, 0.40, 0.33], [0.36, 0.41, 0.38, 0.30, 0.45]
    t = permutation_test(a, b, ABOVE0)
    ref = stats.permutation_test((b, a), lambda x, y: np.mean(x) - np.mean(y),
                                 permutation_type="independent", alternative="greater",
                                 n_resamples=np.inf)  # fmt: skip
    assert t.arrangements == 252 and not t.sampled
    assert t.p_confirm == pytest.approx(ref.pvalue)


def test_sign_flip_test_matches_scipy():
    x = np.array([1.31, 1.22, 1.40, 1.35, 1.29, 1.33])
    t = sign_flip_test(x, Threshold(1.25, ">"))
    ref = stats.permutation_test((x - 1.25,), np.mean, permutation_type="samples",
                                 alternative="greater", n_resamples=np.inf)  # fmt: skip
    assert t.arrangements == 64 and t.p_confirm == pytest.approx(ref.pvalue)


@pytest.mark.slow
def test_permutation_test_under_a_known_null_keeps_its_level():
    # exchangeable seeds: P(p <= 2.5 %) is exactly 6/252 = 2.38 % for continuous values
    rng = np.random.default_rng(11)
    rejected = sum(permutation_test(rng.standard_normal(5), rng.standard_normal(5),
                                    ABOVE0).p_confirm <= 0.025 for _ in range(1500))  # fmt: skip
    assert abs(rejected / 1500 - 6 / 252) < 0.012


def test_where_the_interval_and_the_test_disagree_the_report_says_so():
    vae = _same("VAE", top_max=0.05)
    ae = _group("AE", [{"top_max": v} for v in (0.30, 0.31, 0.32, 0.30, 0.29)])
    f = group_claim_stark(vae, ae, 0.25, MEANT)
    (m,) = f.measures
    assert f.verdict == CONFIRMED and m.test.verdict == INCONCLUSIVE and m.disagree
    assert "The exact test disagrees on" in f.evidence and "it cannot decide" in f.evidence


# ---------------------------------------------------------------------------- claim 3, claim 2
def test_claim_3_missing_value_is_not_available_never_zero():
    vae = _same("VAE", top_max=0.05)
    rows = [{"top_max": v} for v in (0.30, 0.31, None, 0.30, 0.29)]
    f = group_claim_stark(vae, _group("AE", rows), 0.25, MEANT)
    assert f.verdict == NOT_AVAILABLE and "ae-seed2" in f.evidence
    assert f.measures[0].interval is None and not f.measures[0].votes


def test_contiguity_known_answer():
    m = np.array([[0, 0, 1, 1], [2, 0, 1, 2], [2, 2, 0, 0]])
    # class 0: {(0,0),(0,1),(1,1)} and {(2,2),(2,3)} -> 3 of 5; class 1: one piece of 3;
    # class 2: {(1,0),(2,0),(2,1)} and {(1,3)} -> 3 of 4; class 3 absent
    assert class_contiguity(m, 4) == [0.6, 1.0, 0.75, None]


@pytest.mark.parametrize(
    "ae_contiguity, verdict",
    # AE contiguity higher, equal, lower than the VAE's 0.6; areas: 1 clearer, 2 less clear
    [(1.0, CONFIRMED), (0.6, INCONCLUSIVE), (0.5, REFUTED)],
)
def test_claim_2_on_the_class_map(ae_contiguity, verdict):
    from latent_atlas.toolkit.data import FASHION_MNIST_CLASSES as names

    vae = _group("VAE", [dict(contiguity={n: 0.6 + j for n in names}) for j in JITTER])
    ae_rows = [dict(footwear=0.45 + j, contiguity={n: ae_contiguity + j for n in names})
               for j in JITTER]  # fmt: skip
    f = group_claim_separation(vae, _group("AE", ae_rows), MEANT, named=MAP_SCOPE)
    assert f.verdict == verdict and len(f.measures) == 6
    assert "class map" in f.claim and "contiguity" in f.basis
    # Ankle boot's area grows with the footwear share; Shirt's and Coat's shrink
    areas = {m.label.split(" in ")[0]: m.verdict for m in f.measures if "area" in m.label}
    assert areas == {"area of Shirt": REFUTED, "area of Ankle boot": CONFIRMED,
                     "area of Coat": REFUTED}  # fmt: skip


def test_claim_2_class_map_with_an_absent_class_does_not_vote():
    from latent_atlas.toolkit.data import FASHION_MNIST_CLASSES as names

    cont = {n: (None if n == "Coat" else 1.0) for n in names}
    vae = _group("VAE", [dict(contiguity=cont)] * 5)
    f = group_claim_separation(vae, _same("AE"), MEANT, named=MAP_SCOPE)
    coat = next(m for m in f.measures if m.label.startswith("contiguity of Coat"))
    assert coat.verdict == NOT_AVAILABLE and "not available" in f.evidence


# ---------------------------------------------------------------------------- error rates
def test_the_error_rate_table_re_derives_at_a_small_scale():
    reps = 3000
    small = error_rates.simulate(reps, seed=5)
    assert [r.row()[:2] for r in small] == [row[:2] for row in error_rates.ERROR_RATES]
    for r, (_, _, fc, fr) in zip(small, error_rates.ERROR_RATES, strict=True):
        for got, table in ((r.false_confirm, fc), (r.false_refute, fr)):
            se = math.sqrt(max(table, 0.005) * (1 - table) / reps)
            assert abs(got - table) < 4.5 * se + 1e-3, (r.rule, r.data, got, table)


def test_error_rates_near_nominal_where_the_assumptions_hold():
    rates = {(r[0], r[1]): r[2:] for r in error_rates.ERROR_RATES}
    nominal = (
        ("one group: t-interval on the logit/log scale", "normal on that scale"),
        ("difference: Welch interval", "normal, spreads 1 and 2"),
        ("difference: exact permutation test (252 splits)", "normal, equal spreads"),
    )
    for key in nominal:
        assert all(abs(v - 0.025) < 0.003 for v in rates[key]), key
    tie = "difference, tie-prone integer measure"
    assert rates[(f"{tie} (before)", "9 or 10 classes, P(9) = 0.1")][1] > 0.3
    assert rates[(f"{tie} (a tie does not vote)", "9 or 10 classes, P(9) = 0.1")][1] < 0.005
