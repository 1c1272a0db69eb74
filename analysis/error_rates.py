"""How often each verdict rule errs, by simulation: the rate of confirming a false claim and of
refuting a true one, for 5 + 5 seeds.

Each rule is simulated with the truth at its edge, the least favourable point: for "confirmed
when the interval lies wholly above t", a claim whose true value is exactly t is (just) false,
and the share of simulated studies that confirm it is the rule's false-confirmation rate; the
same at the refuting edge gives the false-refutation rate. A rule built on a 95 % interval has
2.5 % at each edge by construction when its assumptions hold; the simulation checks that, and
shows what the count rules (3 of 4, 4 of 6 measures) and the exact tests make of it.

:data:`ERROR_RATES` holds the table the report prints, derived by :func:`simulate` with
``REPS`` repetitions and seed ``SEED`` (``python -m latent_atlas.analysis.error_rates`` prints
it again); a test re-derives it at a small scale. Computing it at report time would cost about
a second of CPU for numbers that never change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, stdtrit

K = 5  # seeds per group, as shipped
REPS, SEED = 40_000, 20261205
LEVEL = 0.95


@dataclass(frozen=True)
class RuleRate:
    """One verdict rule's simulated error rates (shares in [0, 1])."""

    rule: str
    data: str  # how the per-seed values were simulated
    false_confirm: float
    false_refute: float

    def row(self) -> tuple[str, str, float, float]:
        return (self.rule, self.data, self.false_confirm, self.false_refute)


def _t_ends(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95 % Student t-interval ends of each row's mean, y [R, K]."""
    n = y.shape[1]
    half = stdtrit(n - 1, (1 + LEVEL) / 2) * y.std(axis=1, ddof=1) / math.sqrt(n)
    m = y.mean(axis=1)
    return m - half, m + half


def _welch_ends(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95 % Welch interval ends of mean(b) − mean(a), rows [R, K] each."""
    va, vb = a.var(axis=1, ddof=1) / a.shape[1], b.var(axis=1, ddof=1) / b.shape[1]
    se2 = va + vb
    with np.errstate(invalid="ignore", divide="ignore"):  # no spread: a zero-width interval
        df = se2**2 / (va**2 / (a.shape[1] - 1) + vb**2 / (b.shape[1] - 1))
    df = np.where(se2 > 0, df, a.shape[1] + b.shape[1] - 2)
    half = stdtrit(df, (1 + LEVEL) / 2) * np.sqrt(se2)
    d = b.mean(axis=1) - a.mean(axis=1)
    return d - half, d + half


def _splits(n: int, k: int) -> np.ndarray:
    import itertools

    rows = np.zeros((math.comb(n, k), n))
    for i, idx in enumerate(itertools.combinations(range(n), k)):
        rows[i, list(idx)] = 1.0
    return rows


def _permutation_p(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-sided exact permutation p-values (upper, lower) of mean(b) − mean(a), per row."""
    pooled = np.concatenate([a, b], axis=1)
    rows = _splits(pooled.shape[1], b.shape[1])
    in_b = pooled @ rows.T
    total = pooled.sum(axis=1, keepdims=True)
    stats = in_b / b.shape[1] - (total - in_b) / a.shape[1]
    obs = (b.mean(axis=1) - a.mean(axis=1))[:, None]
    tol = 1e-12 * np.maximum(1.0, np.abs(obs))
    return (stats >= obs - tol).mean(axis=1), (stats <= obs + tol).mean(axis=1)


def _count(confirmed: np.ndarray, refuted: np.ndarray, needed: int) -> tuple[float, float]:
    """Rates of a count rule: ``confirmed``/``refuted`` [R, M] booleans per measure."""
    c, r = confirmed.sum(axis=1), refuted.sum(axis=1)
    return float(np.mean(c >= needed)), float(np.mean((r >= needed) & (c < needed)))


def _correlated(rng: np.random.Generator, reps: int, measures: int, rho: float) -> np.ndarray:
    """[R, K, M] standard normals, equicorrelated ``rho`` across the M measures of a seed."""
    shared = rng.standard_normal((reps, K, 1))
    own = rng.standard_normal((reps, K, measures))
    return math.sqrt(rho) * shared + math.sqrt(1 - rho) * own


def simulate(reps: int = REPS, seed: int = SEED) -> list[RuleRate]:
    """Every verdict rule of the seed study, simulated at its edges (see the module docstring).

    Parameters
    ----------
    reps : int
        Simulated studies per row (each: K = 5 seeds per group).
    seed : int
        Seed of the random generator.

    Returns
    -------
    list of RuleRate
        The rates in [0, 1]; their binomial standard error is about √(0.025 · 0.975 / reps)
        (0.0008 at 40 000 repetitions).
    """
    rng = np.random.default_rng(seed)
    a_q = 0.025
    out = []
    # one group against a threshold, values normal on the scale of the interval (logit of a
    # share): the truth at the edge, so confirming and refuting are each the error
    y = rng.standard_normal((reps, K))
    lo, hi = _t_ends(y)
    out.append(RuleRate("one group: t-interval on the logit/log scale", "normal on that scale",
                        float(np.mean(lo > 0)), float(np.mean(hi < 0))))  # fmt: skip
    # the same for skewed values, Beta(2, 8) shares (the audit's case): on the raw scale the
    # truth is the mean 0.2; on the logit scale it is the back-transformed mean of the logits
    x = rng.beta(2, 8, (reps, K))
    lo, hi = _t_ends(x)
    raw = RuleRate("one group: t-interval on the raw scale (before)", "Beta(2, 8) shares",
                   float(np.mean(lo > 0.2)), float(np.mean(hi < 0.2)))  # fmt: skip
    centre = digamma(2) - digamma(8)  # E[logit X] for X ~ Beta(2, 8)
    lo, hi = _t_ends(np.log(x) - np.log1p(-x))
    out.append(RuleRate("one group: t-interval on the logit scale", "Beta(2, 8) shares",
                        float(np.mean(lo > centre)), float(np.mean(hi < centre))))  # fmt: skip
    out.append(raw)
    # the sign-flip test's smallest p with K seeds is 2^-K: above 2.5 % it never decides
    never = 1 / 2**K > a_q
    rate = 0.0 if never else a_q
    out.append(RuleRate("one group: exact sign-flip test (second opinion)", "any symmetric",
                        rate, rate))  # fmt: skip
    # two groups, the difference of means at 0 (equal truths), unequal spreads
    a = rng.standard_normal((reps, K))
    b = 2.0 * rng.standard_normal((reps, K))
    lo, hi = _welch_ends(a, b)
    out.append(RuleRate("difference: Welch interval", "normal, spreads 1 and 2",
                        float(np.mean(lo > 0)), float(np.mean(hi < 0))))  # fmt: skip
    pu, pl = _permutation_p(a, b)
    out.append(RuleRate("difference: exact permutation test (252 splits)",
                        "normal, spreads 1 and 2", float(np.mean(pu <= a_q)),
                        float(np.mean(pl <= a_q))))  # fmt: skip
    # exchangeable seeds (equal spreads): the permutation test is exact, at most 6/252
    pu, pl = _permutation_p(rng.standard_normal((reps, K)), rng.standard_normal((reps, K)))
    out.append(RuleRate("difference: exact permutation test (252 splits)", "normal, equal spreads",
                        float(np.mean(pu <= a_q)), float(np.mean(pl <= a_q))))  # fmt: skip
    # a tie-prone integer measure (classes present: 10 on most seeds, 9 on some), equal truths
    a = np.where(rng.random((reps, K)) < 0.1, 9.0, 10.0)
    b = np.where(rng.random((reps, K)) < 0.1, 9.0, 10.0)
    lo, hi = _welch_ends(a, b)
    flat = (np.ptp(a, axis=1) == 0) & (np.ptp(b, axis=1) == 0)
    tie = flat & (a[:, 0] == b[:, 0])
    pu, pl = _permutation_p(a, b)
    before_c = np.where(flat, b[:, 0] - a[:, 0] > 0, lo > 0)
    before_r = np.where(flat, b[:, 0] - a[:, 0] <= 0, hi <= 0)
    now_c = np.where(flat, ~tie & (pu <= a_q), lo > 0)
    now_r = np.where(flat, ~tie & (pl <= a_q), hi <= 0)
    out.append(RuleRate("difference, tie-prone integer measure (before)",
                        "9 or 10 classes, P(9) = 0.1", float(np.mean(before_c)),
                        float(np.mean(before_r))))  # fmt: skip
    out.append(RuleRate("difference, tie-prone integer measure (a tie does not vote)",
                        "9 or 10 classes, P(9) = 0.1", float(np.mean(now_c)),
                        float(np.mean(now_r))))  # fmt: skip
    # the count rules: every measure's difference at 0, measures correlated across a seed
    for measures, needed in ((4, 3), (6, 4)):
        for rho in (0.0, 0.8):
            za = _correlated(rng, reps, measures, rho)
            zb = _correlated(rng, reps, measures, rho)
            conf = np.zeros((reps, measures), dtype=bool)
            refu = np.zeros((reps, measures), dtype=bool)
            for j in range(measures):
                lo, hi = _welch_ends(za[:, :, j], zb[:, :, j])
                conf[:, j], refu[:, j] = lo > 0, hi < 0
            fc, fr = _count(conf, refu, needed)
            out.append(RuleRate(f"{needed} of {measures} measures", f"normal, correlation {rho:g}",
                                fc, fr))  # fmt: skip
    return out


# Derived by simulate(REPS, SEED) (python -m latent_atlas.analysis.error_rates); checked at a
# small scale by tests/test_verdict_soundness.py.
ERROR_RATES: tuple[tuple[str, str, float, float], ...] = (
    ("one group: t-interval on the logit/log scale", "normal on that scale", 0.0245, 0.025275),
    ("one group: t-interval on the logit scale", "Beta(2, 8) shares", 0.03895, 0.0155),
    ("one group: t-interval on the raw scale (before)", "Beta(2, 8) shares", 0.0113, 0.058175),
    ("one group: exact sign-flip test (second opinion)", "any symmetric", 0.0, 0.0),
    ("difference: Welch interval", "normal, spreads 1 and 2", 0.024125, 0.0252),
    (
        "difference: exact permutation test (252 splits)",
        "normal, spreads 1 and 2",
        0.028875,
        0.029625,
    ),
    ("difference: exact permutation test (252 splits)", "normal, equal spreads", 0.0249, 0.024),
    (
        "difference, tie-prone integer measure (before)",
        "9 or 10 classes, P(9) = 0.1",
        0.0003,
        0.351325,
    ),
    (
        "difference, tie-prone integer measure (a tie does not vote)",
        "9 or 10 classes, P(9) = 0.1",
        0.0003,
        0.000325,
    ),
    ("3 of 4 measures", "normal, correlation 0", 2.5e-05, 0.0),
    ("3 of 4 measures", "normal, correlation 0.8", 0.009325, 0.0085),
    ("4 of 6 measures", "normal, correlation 0", 0.0, 2.5e-05),
    ("4 of 6 measures", "normal, correlation 0.8", 0.009275, 0.0087),
)


def main() -> None:
    for r in simulate():
        print(f"    {r.row()!r},")


if __name__ == "__main__":
    main()
