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
width) is judged by the same comparison, so it is always confirmed or refuted; the
:class:`Tally` counts those single verdicts across the K×K model pairings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from latent_atlas.toolkit.errors import AtlasError
from numpy.typing import ArrayLike
from scipy.special import stdtrit  # the t quantile (scipy.stats.t.ppf calls it; 0.3 s less import)

LEVEL = 0.95
CONFIRMED, REFUTED, INCONCLUSIVE = "confirmed", "refuted", "inconclusive"
SIDES = (">", ">=", "<", "<=")


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

    ``method`` is ``"t"`` (one group, K − 1 degrees of freedom) or ``"welch"`` (the difference
    of two groups' means, Welch–Satterthwaite degrees of freedom ``df``).
    """

    mean: float
    low: float
    high: float
    level: float
    method: str
    df: float

    def to_json(self) -> dict[str, float | str]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "level": self.level,
                "method": self.method, "df": self.df}  # fmt: skip


def mean_interval(values: ArrayLike, level: float = LEVEL) -> Interval:
    """Student t-interval for the mean of per-seed values.

    Parameters
    ----------
    values : array_like, shape (K,)
        One value of the measure per trained model (seed), K >= 2, finite.
    level : float, default 0.95
        Two-sided confidence level.

    Returns
    -------
    Interval
        ``mean ± t_{(1+level)/2, K-1} · s / √K`` with ``s`` the sample standard deviation
        (ddof 1), in the values' own units. Identical values give a zero-width interval.
    """
    x = _values(values, "values")
    level = _level(level)
    n = len(x)
    mean = float(x.mean())
    half = float(stdtrit(n - 1, (1 + level) / 2) * x.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, level, "t", float(n - 1))


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
    holds (``side`` one of ``>``, ``>=``, ``<``, ``<=``)."""

    value: float
    side: str

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise AtlasError(f"threshold side {self.side!r}: expected one of {', '.join(SIDES)}")
        if not math.isfinite(self.value):
            raise AtlasError(f"threshold {self.value}: expected a finite number")

    def holds(self, x: float) -> bool:
        """Whether ``x`` lies on the confirming side."""
        t = self.value
        return {">": x > t, ">=": x >= t, "<": x < t, "<=": x <= t}[self.side]

    def describe(self) -> str:
        return f"{self.side} {self.value:g}"


def verdict(interval: Interval, threshold: Threshold) -> str:
    """``confirmed`` when every value of ``[low, high]`` lies on the confirming side,
    ``refuted`` when none does, else ``inconclusive``.

    An interval that touches the threshold from outside the confirming side (``high == t``
    for ``> t``) lies wholly on the other side; one that reaches it from inside for an
    inclusive side (``low == t`` for ``>= t``) lies wholly on the confirming side.
    """
    lo, hi = interval.low, interval.high
    if not lo <= hi:
        raise AtlasError(f"interval [{lo}, {hi}]: expected low <= high")
    # For ">"/">=" the low end decides "all hold" and the high end "none holds"; mirrored for
    # "<"/"<=". One comparison per end covers the whole interval because the side is a ray.
    inner, outer = (lo, hi) if threshold.side in (">", ">=") else (hi, lo)
    if threshold.holds(inner):
        return CONFIRMED
    if not threshold.holds(outer):
        return REFUTED
    return INCONCLUSIVE


def point_verdict(value: float, threshold: Threshold) -> str:
    """One model's (or one pairing's) verdict: ``confirmed`` or ``refuted``."""
    if not math.isfinite(value):
        raise AtlasError(f"measure {value}: expected a finite number")
    return CONFIRMED if threshold.holds(value) else REFUTED


@dataclass(frozen=True)
class Tally:
    """How many single models or pairings came out confirmed and refuted."""

    confirmed: int
    refuted: int

    @property
    def total(self) -> int:
        return self.confirmed + self.refuted

    def agreeing(self, group_verdict: str) -> int:
        """How many agree with the group's verdict (none can agree with ``inconclusive``)."""
        return {CONFIRMED: self.confirmed, REFUTED: self.refuted}.get(group_verdict, 0)

    def to_json(self) -> dict[str, int]:
        return {"confirmed": self.confirmed, "refuted": self.refuted, "total": self.total}


def tally(values: Iterable[float], threshold: Threshold) -> Tally:
    """Judge each single value (one model, or one pairing's measure) by ``threshold``."""
    verdicts = [point_verdict(float(v), threshold) for v in values]
    return Tally(verdicts.count(CONFIRMED), verdicts.count(REFUTED))


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
