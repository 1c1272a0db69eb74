"""Uncertainty across training seeds: a measure's mean over K models with its 95 % interval,
and the rule that judges a claim on that interval instead of on one trained model.

Which interval, and why
-----------------------
A **Student t-interval** over the per-seed values (Welch's for the difference between two
groups), not a bootstrap over runs. With K = 5 seeds a percentile bootstrap resamples five
numbers: its interval can never reach past the smallest or largest seed, it has only 126
distinct resamples, and it behaves like a normal interval with the plug-in (÷K) standard
deviation, so it is too narrow. Simulated with 4 000 draws of five values, the bootstrap
interval covered the true mean 84 % of the time for normal values and 79 % for exponential
ones; the t-interval covered it 95 % and 89 %. The t quantile with K − 1 = 4 degrees of freedom
(2.776 rather than 1.96) is the honest price of having five models. Each value here is an
average over thousands of test images or grid cells, so its seed-to-seed spread is close to
normal, which is what the t-interval assumes.

The verdict rule
----------------
A claim's measure has a threshold and a confirming side (``> t``, ``>= t``, ``< t`` or
``<= t``). The claim is **confirmed** only when the whole interval lies on the confirming side,
**refuted** only when the whole interval lies on the other side, and **inconclusive** when the
interval straddles the threshold. A single model or a single pairing (an interval of zero
width) is judged by the same comparison; the :class:`Tally` counts those single verdicts across
the K×K model pairings. A threshold may have a separate refuting edge (claim 1: confirmed at
≥ 1.25×, refuted only at ≤ 1×): between the two edges the claim is neither.

Bounded measures
----------------
A share lies in [0, 1], a ratio or a gradient magnitude is ≥ 0. A t-interval on such values can
reach past the bound, and for skewed values (a share near 0) it covers less than it says. With
:class:`Bounds` the interval is taken on the logit scale (two bounds) or the log scale (one
bound) and mapped back: it stays inside the bounds and is then an interval for the typical seed
(the back-transformed mean of the transformed values, :attr:`Interval.estimate`). A value at a
bound moves half a ``step`` (the measure's resolution, e.g. one grid cell) inside it.

No spread, and the exact test beside every interval
---------------------------------------------------
A measure equal on every seed has a zero-width interval, which would give a certain verdict from
five models. Such a measure is judged by its exact test instead (:func:`judge_one`,
:func:`judge_difference`), and when it is equal in both groups (a tie, e.g. both at a ceiling
such as all 10 classes present) it **cannot discriminate** and does not vote.

Beside every interval sits an exact, distribution-free test over the seeds
(:class:`ExactTest`): for two groups a permutation test over every split of the pooled seeds
into groups of the same sizes (5 + 5 seeds: C(10, 5) = 252 splits); for one group against a
threshold a sign-flip test over every sign pattern of the deviations (2^K). Its verdict uses the
same one-sided level as the interval's ends, (1 − level)/2 = 2.5 %. With K = 5 seeds the
sign-flip test's smallest p is 1/32 = 3.1 %, so it can never decide: the report says so where
the two disagree.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from latent_atlas.toolkit.errors import AtlasError
from numpy.typing import ArrayLike
from scipy.special import stdtrit  # the t quantile (scipy.stats.t.ppf calls it; 0.3 s less import)

LEVEL = 0.95
CONFIRMED, REFUTED, INCONCLUSIVE = "confirmed", "refuted", "inconclusive"
# a measure with no spread that is equal in both groups (a tie): it does not vote
CANNOT_DISCRIMINATE = "cannot discriminate"
# a measure some model lacks (e.g. a grid too small for the seed's top rows): never a number
NOT_AVAILABLE = "not available"
SIDES = (">", ">=", "<", "<=")
COMPLEMENT = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}
MAX_EXACT = 400_000  # arrangements enumerated exactly; above it a fixed-seed sample of them
SAMPLED = 100_000


def _values(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise AtlasError(f"{name}: shape {arr.shape}, expected one value per seed [K]")
    if len(arr) < 2:
        raise AtlasError(f"{name}: {len(arr)} value(s), expected at least 2 seeds for an interval")
    if not np.isfinite(arr).all():
        raise AtlasError(f"{name}: {int((~np.isfinite(arr)).sum())} non-finite value(s)")
    return arr


def _level(level: float) -> float:
    if not 0 < level < 1:
        raise AtlasError(f"interval level {level}: expected 0 < level < 1")
    return level


@dataclass(frozen=True)
class Interval:
    """A mean across seeds with its two-sided confidence interval ``[low, high]``.

    ``method`` is ``"t"`` (one group, K − 1 degrees of freedom), ``"welch"`` (the difference
    of two groups' means, Welch–Satterthwaite degrees of freedom ``df``), or ``"t, logit
    scale"`` / ``"t, log scale"`` (a bounded measure, :class:`Bounds`). ``mean`` is always the
    plain mean of the values; ``estimate`` is the point the interval is about (the mean, or on
    a transformed scale the back-transformed mean of the transformed values).
    """

    mean: float
    low: float
    high: float
    level: float
    method: str
    df: float
    estimate: float | None = None

    @property
    def centre(self) -> float:
        return self.mean if self.estimate is None else self.estimate

    def to_json(self) -> dict[str, float | str]:
        out: dict[str, float | str] = {"mean": self.mean, "low": self.low, "high": self.high}
        out |= {"level": self.level, "method": self.method, "df": self.df}
        if self.estimate is not None:
            out["estimate"] = self.estimate
        return out


@dataclass(frozen=True)
class Bounds:
    """A measure's natural range: ``low`` and/or ``high`` (None: unbounded on that side).

    ``step`` is the measure's resolution (one cell of a grid for a share of its cells): a value
    at a bound moves half a step inside it before the transform, as in the empirical logit
    ``(k + ½)/(n + 1)``. Two bounds: logit scale; one bound: log scale; none: the values as
    they are.
    """

    low: float | None = None
    high: float | None = None
    step: float = 1e-3

    def __post_init__(self) -> None:
        for v in (self.low, self.high):
            if v is not None and not math.isfinite(v):
                raise AtlasError(f"bound {v}: expected a finite number or None")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise AtlasError(f"bounds [{self.low}, {self.high}]: expected low < high")
        if not (math.isfinite(self.step) and self.step > 0):
            raise AtlasError(f"bounds step {self.step}: expected a positive number")

    @property
    def scale(self) -> str:
        if self.low is not None and self.high is not None:
            return "logit"
        return "identity" if self.low is None and self.high is None else "log"

    def _inside(self, x: np.ndarray) -> np.ndarray:
        lo = -np.inf if self.low is None else self.low
        hi = np.inf if self.high is None else self.high
        if ((x < lo) | (x > hi)).any():
            raise AtlasError(
                f"values {x.min():.6g}..{x.max():.6g} outside the measure's bounds "
                f"[{self.low}, {self.high}]"
            )
        half = self.step / 2
        if self.low is not None and self.high is not None:
            half = min(half, (self.high - self.low) / 4)
        return np.clip(x, lo + half, hi - half)

    def forward(self, values: ArrayLike) -> np.ndarray:
        """The values on this scale (logit of the position in [low, high], or log of the
        distance from the one bound)."""
        x = self._inside(np.asarray(values, dtype=np.float64))
        if self.scale == "logit":
            assert self.low is not None and self.high is not None
            p = (x - self.low) / (self.high - self.low)
            return np.log(p) - np.log1p(-p)
        if self.scale == "log":
            return np.log(x - self.low) if self.low is not None else np.log(self.high - x)  # type: ignore[operator,unused-ignore]
        return x

    def backward(self, y: ArrayLike) -> np.ndarray:
        """Inverse of :meth:`forward`."""
        yy = np.asarray(y, dtype=np.float64)
        if self.scale == "logit":
            assert self.low is not None and self.high is not None
            return self.low + (self.high - self.low) / (1 + np.exp(-yy))
        if self.scale == "log":
            return self.low + np.exp(yy) if self.low is not None else self.high - np.exp(yy)  # type: ignore[operator,unused-ignore]
        return yy


def mean_interval(
    values: ArrayLike, level: float = LEVEL, bounds: Bounds | None = None
) -> Interval:
    """Student t-interval for the mean of per-seed values, on a bounded measure's own scale.

    Parameters
    ----------
    values : array_like, shape (K,)
        One value of the measure per trained model (seed), K >= 2, finite (inside ``bounds``).
    level : float, default 0.95
        Two-sided confidence level.
    bounds : Bounds, optional
        The measure's natural range. With one, the t-interval is taken on the logit or log
        scale and mapped back, so both ends stay inside the bounds; it is then an interval for
        the back-transformed mean of the transformed values (``estimate``).

    Returns
    -------
    Interval
        ``mean ± t_{(1+level)/2, K-1} · s / √K`` with ``s`` the sample standard deviation
        (ddof 1), in the values' own units (on the transformed scale when bounded, ends mapped
        back). Identical values give a zero-width interval.
    """
    x = _values(values, "values")
    level = _level(level)
    n = len(x)
    mean = float(x.mean())
    scale = "identity" if bounds is None else bounds.scale
    y = x if bounds is None or scale == "identity" else bounds.forward(x)
    centre = float(y.mean())
    half = float(stdtrit(n - 1, (1 + level) / 2) * y.std(ddof=1) / math.sqrt(n))
    if bounds is None or scale == "identity":
        return Interval(mean, mean - half, mean + half, level, "t", float(n - 1))
    ends = np.sort(bounds.backward([centre - half, centre + half]))
    estimate = float(bounds.backward(centre))
    return Interval(mean, float(ends[0]), float(ends[1]), level, f"t, {scale} scale",
                    float(n - 1), estimate)  # fmt: skip


def difference_interval(a: ArrayLike, b: ArrayLike, level: float = LEVEL) -> Interval:
    """Welch t-interval for ``mean(b) − mean(a)`` of two independent groups of seeds.

    The groups are not paired: seed k of one configuration has nothing to do with seed k of
    the other, so the interval is Welch's (unequal variances), not a paired one.

    Parameters
    ----------
    a, b : array_like, shape (K_a,) and (K_b,)
        Per-seed values of the same measure for group A and group B (K >= 2 each).
    level : float, default 0.95
        Two-sided confidence level.

    Returns
    -------
    Interval
        ``(mean_b − mean_a) ± t_{(1+level)/2, ν} · √(s_a²/K_a + s_b²/K_b)`` with ν from the
        Welch–Satterthwaite formula. Zero spread in both groups gives a zero-width interval
        (``df`` is then K_a + K_b − 2).
    """
    xa, xb = _values(a, "group a"), _values(b, "group b")
    level = _level(level)
    va, vb = xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)
    diff = float(xb.mean() - xa.mean())
    se2 = va + vb
    if se2 == 0:
        return Interval(diff, diff, diff, level, "welch", float(len(xa) + len(xb) - 2))
    # Welch–Satterthwaite on the variances scaled by the larger one: the same ν, without the
    # squares underflowing to 0/0 for tiny spreads
    ra, rb = va / max(va, vb), vb / max(va, vb)
    df = (ra + rb) ** 2 / (ra**2 / (len(xa) - 1) + rb**2 / (len(xb) - 1))
    half = float(stdtrit(df, (1 + level) / 2) * math.sqrt(se2))
    return Interval(diff, diff - half, diff + half, level, "welch", float(df))


def scale_interval(interval: Interval, factor: float) -> Interval:
    """The interval of ``factor · X`` (a ratio to a fixed number, e.g. a share of the grid
    over the data's share); a negative factor swaps the ends."""
    if not math.isfinite(factor) or factor == 0:
        raise AtlasError(f"scale factor {factor}: expected a finite non-zero number")
    ends = sorted((interval.low * factor, interval.high * factor))
    return Interval(interval.mean * factor, ends[0], ends[1], interval.level, interval.method,
                    interval.df)  # fmt: skip


# ---------------------------------------------------------------------------- verdicts
@dataclass(frozen=True)
class Threshold:
    """A claim's threshold: a value is on the confirming side when ``value <side> threshold``
    holds (``side`` one of ``>``, ``>=``, ``<``, ``<=``).

    The refuting side is the rest of the line, unless ``refute`` names a second edge: then
    only values at or beyond it (``<= refute`` for a ``>``/``>=`` claim, mirrored) refute, and
    the values between the two edges neither confirm nor refute.
    """

    value: float
    side: str
    refute: float | None = None

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise AtlasError(f"threshold side {self.side!r}: expected one of {', '.join(SIDES)}")
        if not math.isfinite(self.value):
            raise AtlasError(f"threshold {self.value}: expected a finite number")
        if self.refute is not None:
            up = self.side in (">", ">=")
            if not math.isfinite(self.refute) or (self.refute >= self.value if up
                                                  else self.refute <= self.value):  # fmt: skip
                raise AtlasError(
                    f"refuting edge {self.refute} for a claim {self.describe_confirm()}: expected "
                    f"a finite number {'below' if up else 'above'} {self.value:g}"
                )

    @property
    def refute_side(self) -> str:
        """The refuting ray's comparison (at :attr:`refute_value`)."""
        if self.refute is None:
            return COMPLEMENT[self.side]
        return "<=" if self.side in (">", ">=") else ">="

    @property
    def refute_value(self) -> float:
        return self.value if self.refute is None else self.refute

    def holds(self, x: float) -> bool:
        """Whether ``x`` lies on the confirming side."""
        return _compare(x, self.side, self.value)

    def refutes(self, x: float) -> bool:
        """Whether ``x`` lies on the refuting side."""
        return _compare(x, self.refute_side, self.refute_value)

    def describe_confirm(self) -> str:
        return f"{self.side} {self.value:g}"

    def describe(self) -> str:
        if self.refute is None:
            return self.describe_confirm()
        return f"{self.describe_confirm()} (refuted at {self.refute_side} {self.refute:g})"


def _compare(x: float, side: str, t: float) -> bool:
    return {">": x > t, ">=": x >= t, "<": x < t, "<=": x <= t}[side]


def verdict(interval: Interval, threshold: Threshold) -> str:
    """``confirmed`` when every value of ``[low, high]`` lies on the confirming side,
    ``refuted`` when every value lies on the refuting side, else ``inconclusive``.

    An interval that touches the threshold from outside the confirming side (``high == t``
    for ``> t``) lies wholly on the other side; one that reaches it from inside for an
    inclusive side (``low == t`` for ``>= t``) lies wholly on the confirming side.
    """
    lo, hi = interval.low, interval.high
    if not lo <= hi:
        raise AtlasError(f"interval [{lo}, {hi}]: expected low <= high")
    # For ">"/">=" the low end decides "all confirm" and the high end "all refute"; mirrored
    # for "<"/"<=". One comparison per end covers the whole interval because each side is a ray.
    inner, outer = (lo, hi) if threshold.side in (">", ">=") else (hi, lo)
    if threshold.holds(inner):
        return CONFIRMED
    if threshold.refutes(outer):
        return REFUTED
    return INCONCLUSIVE


def point_verdict(value: float, threshold: Threshold) -> str:
    """One model's (or one pairing's) verdict: ``confirmed`` or ``refuted`` (``inconclusive``
    only between a threshold's two edges)."""
    if not math.isfinite(value):
        raise AtlasError(f"measure {value}: expected a finite number")
    if threshold.holds(value):
        return CONFIRMED
    return REFUTED if threshold.refutes(value) else INCONCLUSIVE


@dataclass(frozen=True)
class Tally:
    """How many single models or pairings came out confirmed, refuted, and neither (between a
    threshold's two edges)."""

    confirmed: int
    refuted: int
    neither: int = 0

    @property
    def total(self) -> int:
        return self.confirmed + self.refuted + self.neither

    def agreeing(self, group_verdict: str) -> int:
        """How many agree with the group's verdict (none can agree with ``inconclusive``)."""
        return {CONFIRMED: self.confirmed, REFUTED: self.refuted}.get(group_verdict, 0)

    def to_json(self) -> dict[str, int]:
        return {"confirmed": self.confirmed, "refuted": self.refuted, "neither": self.neither,
                "total": self.total}  # fmt: skip


def tally(values: Iterable[float], threshold: Threshold) -> Tally:
    """Judge each single value (one model, or one pairing's measure) by ``threshold``."""
    verdicts = [point_verdict(float(v), threshold) for v in values]
    return Tally(verdicts.count(CONFIRMED), verdicts.count(REFUTED), verdicts.count(INCONCLUSIVE))


# ---------------------------------------------------------------------------- exact tests
@dataclass(frozen=True)
class ExactTest:
    """An exact, distribution-free test over the seeds, beside an interval.

    ``method``: ``"permutation"`` (two groups; every split of the pooled seeds into groups of
    the original sizes) or ``"sign-flip"`` (one group against a threshold; every sign pattern
    of the deviations, symmetric about the edge under the null). ``arrangements``: how many
    splits or patterns (``sampled`` when there were more than :data:`MAX_EXACT`).
    ``p_confirm``: one-sided p of a statistic at least as far on the confirming side as the one
    observed, with the truth at the confirming edge; ``p_refute`` the same towards the refuting
    side at the refuting edge. ``verdict``: confirmed when ``p_confirm <= alpha``, refuted when
    ``p_refute <= alpha``, else inconclusive; ``alpha = (1 − level)/2``.
    """

    method: str
    arrangements: int
    p_confirm: float
    p_refute: float
    alpha: float
    verdict: str
    sampled: bool = False

    @property
    def smallest_p(self) -> float:
        """The smallest p the test can give (one arrangement of all): it can decide only when
        this is at most ``alpha``."""
        return 1.0 / self.arrangements

    def to_json(self) -> dict[str, float | int | str | bool]:
        return {"method": self.method, "arrangements": self.arrangements,
                "p_confirm": self.p_confirm, "p_refute": self.p_refute, "alpha": self.alpha,
                "verdict": self.verdict, "sampled": self.sampled}  # fmt: skip


def _tail(stats: np.ndarray, observed: float, upper: bool) -> float:
    """Share of the arrangements' statistics at least as extreme as the observed one (ties
    count: the test stays exact, a little conservative)."""
    tol = 1e-12 * max(1.0, abs(observed))
    hits = stats >= observed - tol if upper else stats <= observed + tol
    return float(np.mean(hits))


def _exact_verdict(p_confirm: float, p_refute: float, alpha: float) -> str:
    if p_confirm <= alpha:
        return CONFIRMED
    return REFUTED if p_refute <= alpha else INCONCLUSIVE


def _splits(n: int, k: int) -> tuple[np.ndarray, bool]:
    """Indicator rows [S, n] of the k-subsets of n items (all, or a fixed-seed sample)."""
    total = math.comb(n, k)
    if total <= MAX_EXACT:
        rows = np.zeros((total, n), dtype=np.float64)
        for i, idx in enumerate(itertools.combinations(range(n), k)):
            rows[i, list(idx)] = 1.0
        return rows, False
    rng = np.random.default_rng(0)
    order = np.argsort(rng.random((SAMPLED, n)), axis=1)[:, :k]
    rows = np.zeros((SAMPLED, n), dtype=np.float64)
    np.put_along_axis(rows, order, 1.0, axis=1)
    return rows, True


def permutation_test(
    a: ArrayLike, b: ArrayLike, threshold: Threshold, level: float = LEVEL
) -> ExactTest:
    """Exact permutation test of ``mean(b) − mean(a)`` against ``threshold``.

    Under the null at an edge ``t`` the values of ``b − t`` and of ``a`` are exchangeable; the
    statistic ``mean(b − t) − mean(a)`` is computed for every split of the pooled values into
    groups of sizes K_a and K_b (C(K_a + K_b, K_a) of them: 252 for 5 + 5).

    Parameters
    ----------
    a, b : array_like, shape (K_a,) and (K_b,)
        Per-seed values of groups A and B (K >= 2 each).
    threshold : Threshold
        The claim's threshold on the difference (confirming and refuting edges).
    level : float, default 0.95
        The interval's level; the test decides at one-sided ``alpha = (1 − level)/2``.

    Returns
    -------
    ExactTest
    """
    xa, xb = _values(a, "group a"), _values(b, "group b")
    alpha = round((1 - _level(level)) / 2, 12)
    rows, sampled = _splits(len(xa) + len(xb), len(xb))
    up = threshold.side in (">", ">=")

    def p(edge: float, upper: bool) -> float:
        pooled = np.concatenate([xa, xb - edge])
        total = pooled.sum()
        in_b = rows @ pooled
        stats = in_b / len(xb) - (total - in_b) / len(xa)
        observed = float((xb - edge).mean() - xa.mean())
        return _tail(stats, observed, upper)

    pc, pr = p(threshold.value, up), p(threshold.refute_value, not up)
    return ExactTest("permutation", len(rows), pc, pr, alpha, _exact_verdict(pc, pr, alpha),
                     sampled)  # fmt: skip


def sign_flip_test(
    values: ArrayLike, threshold: Threshold, bounds: Bounds | None = None, level: float = LEVEL
) -> ExactTest:
    """Exact sign-flip test of one group's values against ``threshold``.

    Under the null the deviations ``d = g(x) − g(t)`` from an edge ``t`` are symmetric about 0
    (``g``: the bounded measure's scale, :class:`Bounds`); the statistic ``mean(s · d)`` is
    computed for all 2^K sign patterns ``s``. With K seeds its smallest p is 2^−K (1/32 for 5).

    Parameters
    ----------
    values : array_like, shape (K,)
        One value per seed (K >= 2).
    threshold : Threshold
        The claim's threshold (confirming and refuting edges), in the values' units.
    bounds : Bounds, optional
        The measure's natural range; the test runs on its logit or log scale.
    level : float, default 0.95
        The interval's level; the test decides at one-sided ``alpha = (1 − level)/2``.

    Returns
    -------
    ExactTest
    """
    x = _values(values, "values")
    alpha = round((1 - _level(level)) / 2, 12)
    g = (lambda v: np.asarray(v, dtype=np.float64)) if bounds is None else bounds.forward
    y = g(x)
    n = len(x)
    sampled = 2**n > MAX_EXACT
    if sampled:
        signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(SAMPLED, n))
    else:
        signs = 1.0 - 2.0 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
    up = threshold.side in (">", ">=")

    def p(edge: float, upper: bool) -> float:
        d = y - float(g(np.array([edge]))[0])
        return _tail(signs @ d / n, float(d.mean()), upper)

    pc, pr = p(threshold.value, up), p(threshold.refute_value, not up)
    return ExactTest("sign-flip", len(signs), pc, pr, alpha, _exact_verdict(pc, pr, alpha),
                     sampled)  # fmt: skip


# ---------------------------------------------------------------------------- judging
@dataclass(frozen=True)
class Judgement:
    """A measure judged across seeds: its interval, the exact test beside it, and the verdict.

    ``verdict`` is the interval's verdict, except for a measure with no spread across the
    seeds (a zero-width interval would be certain): the exact test's verdict, or
    ``cannot discriminate`` when the values are equal in both groups (a tie). ``basis`` says
    which decided: ``"interval"``, ``"exact test (no spread)"`` or ``"tie"``.
    """

    interval: Interval
    test: ExactTest
    verdict: str
    basis: str

    @property
    def disagree(self) -> bool:
        """Whether the exact test's verdict differs from the one given (a tie agrees: neither
        can tell the groups apart)."""
        return self.verdict != CANNOT_DISCRIMINATE and self.test.verdict != self.verdict

    def to_json(self) -> dict[str, object]:
        return {"interval": self.interval.to_json(), "test": self.test.to_json(),
                "verdict": self.verdict, "basis": self.basis}  # fmt: skip


def judge_one(
    values: ArrayLike, threshold: Threshold, bounds: Bounds | None = None, level: float = LEVEL
) -> Judgement:
    """One group's values against ``threshold``: the t-interval (on ``bounds``' scale) and the
    sign-flip test; with no spread across the seeds the test decides."""
    x = _values(values, "values")
    iv = mean_interval(x, level, bounds)
    test = sign_flip_test(x, threshold, bounds, level)
    if np.ptp(x) == 0:
        return Judgement(iv, test, test.verdict, "exact test (no spread)")
    return Judgement(iv, test, verdict(iv, threshold), "interval")


def judge_difference(
    a: ArrayLike, b: ArrayLike, threshold: Threshold, level: float = LEVEL
) -> Judgement:
    """``mean(b) − mean(a)`` against ``threshold``: Welch's interval and the permutation test.

    Neither group varies: equal values in both (a tie, such as both at a ceiling) cannot
    discriminate and do not vote; different values are judged by the permutation test (which
    confirms 5 + 5 seeds that do not overlap at p = 1/252)."""
    xa, xb = _values(a, "group a"), _values(b, "group b")
    iv = difference_interval(xa, xb, level)
    test = permutation_test(xa, xb, threshold, level)
    if np.ptp(xa) == 0 and np.ptp(xb) == 0:
        if xa[0] == xb[0]:
            return Judgement(iv, test, CANNOT_DISCRIMINATE, "tie")
        return Judgement(iv, test, test.verdict, "exact test (no spread)")
    return Judgement(iv, test, verdict(iv, threshold), "interval")


def pairing_values(
    a: ArrayLike, b: ArrayLike, measure: Callable[[float, float], float]
) -> np.ndarray:
    """The measure of every (a_i, b_j) pairing of two groups' per-seed values.

    Parameters
    ----------
    a, b : array_like, shape (K_a,) and (K_b,)
        Per-seed values of groups A and B.
    measure : callable
        ``measure(a_i, b_j)``, e.g. ``lambda x, y: y - x``.

    Returns
    -------
    numpy.ndarray, shape (K_a, K_b)
        ``out[i, j] = measure(a[i], b[j])``.
    """
    xa = np.asarray(a, dtype=np.float64).ravel()
    xb = np.asarray(b, dtype=np.float64).ravel()
    return np.array([[measure(float(x), float(y)) for y in xb] for x in xa], dtype=np.float64)
