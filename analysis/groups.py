"""Groups of models (the K training seeds of one configuration): every metric as its mean
across the seeds with a 95 % interval (``analysis.uncertainty``: Student t over the seeds),
and the per-seed values behind it, as table rows and JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from latent_atlas.analysis.compare import Row
from latent_atlas.analysis.results import KEY_METRICS, ModelMetrics, flatten
from latent_atlas.analysis.uncertainty import Interval, mean_interval
from latent_atlas.toolkit.errors import AtlasError


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


@dataclass(frozen=True)
class GroupSummary:
    """One group: its members (display names, in seed order), each metric's per-seed values
    (``None`` where a member lacks it) and, where every member has a number, its interval."""

    label: str
    members: tuple[str, ...]
    per_seed: dict[str, list[float | None]]
    intervals: dict[str, Interval]

    def to_json(self) -> dict[str, Any]:
        return {
            "members": list(self.members),
            "metrics": {
                key: {"per_seed": values}
                | ({} if key not in self.intervals else self.intervals[key].to_json())
                for key, values in self.per_seed.items()
            },
        }


def summarise(label: str, members: Sequence[str], metrics: Sequence[ModelMetrics]) -> GroupSummary:
    """Per-seed values and intervals of every numeric metric of a group.

    Parameters
    ----------
    label : str
        The group's display name (e.g. ``"VAE"``).
    members : sequence of str
        One display name per trained model, in the same order as ``metrics``.
    metrics : sequence of ModelMetrics
        The members' metrics; at least 2 (an interval needs two seeds).

    Returns
    -------
    GroupSummary
        Keys are the flattened metric paths of ``metrics.json`` (``embedding.knn_accuracy``);
        a metric gets an interval when every member has a finite number for it.
    """
    if len(members) != len(metrics):
        raise AtlasError(f"group {label}: {len(members)} names for {len(metrics)} models")
    if len(metrics) < 2:
        raise AtlasError(f"group {label}: {len(metrics)} model(s), expected at least 2 seeds")
    flats = [flatten(m.to_json()) for m in metrics]
    keys: list[str] = []
    for f in flats:
        keys += [k for k, v in f.items() if k not in keys and _number(v) is not None
                 and not k.startswith("not_available")]  # fmt: skip
    per_seed = {k: [_number(f.get(k)) for f in flats] for k in keys}
    intervals = {
        k: mean_interval([float(v) for v in vs if v is not None])
        for k, vs in per_seed.items()
        if all(v is not None for v in vs)
    }
    return GroupSummary(label, tuple(members), per_seed, intervals)


def interval_text(iv: Interval | None) -> str | None:
    """How an interval appears in a table cell: ``mean [low, high]``, 4 significant digits."""
    if iv is None:
        return None
    return f"{iv.mean:.4g} [{iv.low:.4g}, {iv.high:.4g}]"


def interval_rows(groups: Sequence[GroupSummary], keys: Sequence[str] | None = None) -> list[Row]:
    """One row per metric, a column per group: ``mean [low, high]`` across its seeds (``None``
    where the group has no interval). ``keys`` default: every metric of any group."""
    if keys is None:
        keys = []
        for g in groups:
            keys += [k for k in g.per_seed if k not in keys]
    return [Row(k, [interval_text(g.intervals.get(k)) for g in groups]) for k in keys]


def key_interval_rows(groups: Sequence[GroupSummary]) -> list[Row]:
    """The headline measures (``KEY_METRICS``) across seeds, a column per group."""
    rows = []
    for km in KEY_METRICS:
        note = "higher is better" if km.higher_is_better else "lower is better"
        rows.append(Row(km.label, [interval_text(g.intervals.get(km.key)) for g in groups], None,
                        note))  # fmt: skip
    return rows


def per_seed_rows(
    groups: Sequence[GroupSummary], keys: Sequence[str]
) -> tuple[tuple[str, ...], list[Row]]:
    """The per-seed values behind the intervals: columns ``metric``, then every member of
    every group (``label: member``); one row per key."""
    columns = ("metric", *(f"{g.label}: {m}" for g in groups for m in g.members))
    rows = [Row(k, [v for g in groups for v in g.per_seed.get(k, [None] * len(g.members))])
            for k in keys]  # fmt: skip
    return columns, rows
