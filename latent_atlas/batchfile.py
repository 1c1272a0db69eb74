"""Batch files: a TOML of comparisons, mapped onto ``ComparisonConfig`` values (which check
themselves); paths are relative to the file."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

from latent_atlas.pipeline import AnalysisConfig
from latent_atlas.runs import ComparisonConfig
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec

BATCH_KEYS = {"out", "data", "classifier", "comparison"}
ENTRY_KEYS = {"name", "model_a", "model_b", "classifier", "data", "label_a", "label_b", "grid"}
GRID_KEYS = {"steps", "range", "mode", "quantile", "percentiles", "axes", "fixed"}


def _grid_from_toml(table: dict, where: str) -> GridSpec:
    unknown = set(table) - GRID_KEYS
    if unknown:
        raise AtlasError(f"{where}: unknown key(s) {sorted(unknown)}; expected {sorted(GRID_KEYS)}")
    try:
        steps = table.get("steps", 21)
        nx, ny = (steps, steps) if isinstance(steps, int) else steps
        lo, hi = (float(v) for v in table.get("range", (-4.0, 4.0)))
        p_lo, p_hi = (float(v) for v in table.get("percentiles", (1.0, 99.0)))
        ax0, ax1 = (int(v) for v in table.get("axes", (0, 1)))
        return GridSpec(
            steps=(nx, ny), x_range=(lo, hi), y_range=(lo, hi),
            mode=str(table.get("mode", "linear")), quantile=float(table.get("quantile", 0.05)),
            percentiles=(p_lo, p_hi), axes=(ax0, ax1),
            fixed=tuple(float(v) for v in table.get("fixed", ())),
        )  # fmt: skip
    except (TypeError, ValueError) as exc:
        raise AtlasError(
            f"{where}: {exc}; expected steps = N or [NX, NY], range = [LO, HI]"
        ) from None
    except AtlasError as exc:
        raise AtlasError(f"{where}: {exc}") from None


def read_batch(
    path: Path, base: AnalysisConfig, shipped_classifier: Path
) -> tuple[Path, list[ComparisonConfig]]:
    """Parse a batch TOML: top-level ``out``, ``data``, ``classifier`` and ``[[comparison]]``
    tables with ``name``, ``model_a``, ``model_b`` and optional ``[[comparison.grid]]``."""
    try:
        doc = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise AtlasError(f"batch file {path}: not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AtlasError(f"batch file {path}: not valid TOML ({exc})") from None
    unknown = set(doc) - BATCH_KEYS
    if unknown:
        raise AtlasError(
            f"batch file {path}: unknown key(s) {sorted(unknown)}; expected {sorted(BATCH_KEYS)}"
        )
    entries = doc.get("comparison", [])
    if not entries:
        raise AtlasError(f"batch file {path}: no [[comparison]] entries")
    root = Path(path).resolve().parent

    def resolve(p: str | None) -> Path | None:
        return None if p is None else (root / p).resolve()

    out = resolve(doc.get("out", "reports")) or Path("reports")
    seen: set[str] = set()
    comps = []
    for i, e in enumerate(entries, 1):
        where = f"batch file {path}, comparison #{i}"
        unknown = set(e) - ENTRY_KEYS
        if unknown:
            raise AtlasError(
                f"{where}: unknown key(s) {sorted(unknown)}; expected {sorted(ENTRY_KEYS)}"
            )
        missing = {"name", "model_a", "model_b"} - set(e)
        if missing:
            raise AtlasError(f"{where}: missing {sorted(missing)}")
        name = str(e["name"])
        if name in seen:
            raise AtlasError(f"{where}: duplicate name {name!r}; names must be unique")
        if not name or "/" in name or name.startswith("."):
            raise AtlasError(f"{where}: name {name!r} must be a plain folder name")
        seen.add(name)
        grids = tuple(_grid_from_toml(g, f"{where}, grid") for g in e.get("grid", [])) or base.grids
        classifier = resolve(e.get("classifier", doc.get("classifier"))) or shipped_classifier
        comps.append(ComparisonConfig(
            name=name, model_a=resolve(e["model_a"]), model_b=resolve(e["model_b"]),  # type: ignore[arg-type]
            classifier=classifier, data=resolve(e.get("data", doc.get("data"))),
            label_a=str(e.get("label_a", "VAE")), label_b=str(e.get("label_b", "AE")),
            analysis=replace(base, grids=grids),
        ))  # fmt: skip
    return out, comps
