"""Side by side: the metrics of N models as table rows, the best marked where the direction
is known (the key metrics)."""

from __future__ import annotations

import re
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
        note = "higher is better" if km.higher_is_better else "lower is better"
        if km.key.startswith("samples.frechet_") and "reconstructions" not in km.key:
            counts = [m.samples.n_samples for m in metrics if m.samples is not None]
            known = sorted({n for n in counts if n is not None})
            if known and len(known) == len(set(counts)):  # each distance's sample count
                note += "; " + " / ".join(f"{n:,}" for n in known) + " decoded samples"
        rows.append(Row(km.label, list(values), best_index(list(values), km.higher_is_better),
                        note))  # fmt: skip
    return rows


# Rows the visible table leaves to metrics.json: each class's centroid coordinates (K × d
# numbers: 320 rows for a 32-D model of 10 classes) and the items of any vector longer than
# this (per-dim means and spreads, plane origins and bases).
MAX_VECTOR_ROWS = 2
SEED_STUDY_FIELDS = ("as_written", "seed_top_rows")
_ITEM = re.compile(r"^(.*)\[(\d+)\]$")


def _hidden(key: str, lengths: dict[str, int], study_fields: bool) -> bool:
    parts = key.split(".")
    if "centroids" in parts or key.startswith("not_available"):
        return True
    if not study_fields and any(p.split("[")[0] in SEED_STUDY_FIELDS for p in parts):
        return True
    item = _ITEM.match(key)
    return item is not None and lengths.get(item.group(1), 0) > MAX_VECTOR_ROWS


def all_rows(metrics: list[ModelMetrics], study_fields: bool = True) -> list[Row]:
    """Every number of every model a reader compares, one row per metric present in any
    model, in a stable order (first model's order, then keys only later models have).
    Class centroids and vectors longer than :data:`MAX_VECTOR_ROWS` are left to metrics.json,
    and so are the seed study's fields unless ``study_fields`` (the study ran)."""
    flats: list[dict[str, Any]] = [flatten(m.to_json()) for m in metrics]
    lengths: dict[str, int] = {}
    for f in flats:
        for k in f:
            if item := _ITEM.match(k):
                base = item.group(1)
                lengths[base] = max(lengths.get(base, 0), int(item.group(2)) + 1)
    keys: list[str] = []
    seen: set[str] = set()
    for f in flats:
        for k in f:
            if k not in seen and not _hidden(k, lengths, study_fields):
                seen.add(k)
                keys.append(k)
    return [Row(k, [f.get(k) for f in flats]) for k in keys]
