"""Side by side: the metrics of N models as table rows, the best marked where the direction
is known (the key metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from latent_atlas.analysis.results import KEY_METRICS, ModelMetrics, best_index, flatten

Cell = float | int | str | None


@dataclass(frozen=True)
class Row:
    metric: str
    values: list[Cell]  # one per model, in report order
    best: int | None = None  # index of the best model, where "better" is defined
    note: str = ""  # e.g. "higher is better"


def key_rows(metrics: list[ModelMetrics]) -> list[Row]:
    """The headline measures, a column per model, the best marked."""
    rows = []
    for km in KEY_METRICS:
        values = [km.value(m) for m in metrics]
        rows.append(
            Row(
                km.label,
                list(values),
                best_index(list(values), km.higher_is_better),
                "higher is better" if km.higher_is_better else "lower is better",
            )
        )
    return rows


def all_rows(metrics: list[ModelMetrics]) -> list[Row]:
    """Every number of every model, one row per metric present in any model, in a stable
    order (first model's order, then keys only later models have)."""
    flats: list[dict[str, Any]] = [flatten(m.to_json()) for m in metrics]
    keys: list[str] = []
    seen: set[str] = set()
    for f in flats:
        for k in f:
            if k not in seen and not k.startswith("not_available"):
                seen.add(k)
                keys.append(k)
    return [Row(k, [f.get(k) for f in flats]) for k in keys]
