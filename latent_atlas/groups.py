"""Groups of models in a report: the K training seeds of one configuration, each measured,
every metric shown as its mean with a 95 % interval across the seeds, the per-seed values one
click away, and a study's claims judged on the groups.

A group comes from ``--group LABEL=PATTERN[,PATTERN…]`` (folders or globs, e.g.
``--group VAE=artifacts/fashion-mnist/vae,artifacts/fashion-mnist/seeds/vae-seed*``), from a
``[[comparison.group]]`` table of a batch file, or — for the default report — from the shipped
seeds (``artifacts/<dataset>/seeds/groups.json``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from latent_atlas.analysis import error_rates, raster
from latent_atlas.analysis.compare import Row
from latent_atlas.analysis.forest import forest_svg
from latent_atlas.analysis.groups import (
    GroupSummary,
    interval_rows,
    interval_text,
    key_interval_rows,
    per_seed_rows,
    summarise,
)
from latent_atlas.analysis.render import FigureImage, FigureRow, Findings, Notes, Section, Table
from latent_atlas.analysis.results import KEY_METRICS, ModelMetrics
from latent_atlas.analysis.studies import Finding, Group
from latent_atlas.analysis.studies.seed import SEED_GRID
from latent_atlas.analysis.studies.seed import rules_text as seed_rules_text
from latent_atlas.pipeline import (
    AnalysisConfig,
    Cache,
    ModelAnalysis,
    analyze_geometry,
    analyze_grid,
    analyze_model,
    embedding_metrics,
    geometry_metrics,
    in_parallel,
    parallel_workers,
    real_features,
    session_threads,
)

# re-exported (their home is settings, light to import for the flags and batch files)
from latent_atlas.settings import GroupConfig, expand, parse_group, shipped_groups  # noqa: F401
from latent_atlas.toolkit.data import ImageDataset
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec, decode_grid


# ---------------------------------------------------------------------------- measuring
def study_metrics(
    source: Path,
    classifier: Path | None,
    data: ImageDataset,
    cfg: AnalysisConfig,
    cache: Cache,
) -> ModelMetrics:
    """What a study of the seed's grid needs of one group member, and no more: the embedding
    measures, the seed's 21×21 grid and the decoder geometry on the first grid without the
    centroid geodesics (the study's supplementary geometry readings), computed by the same
    functions (and seeds) as the full analysis, so the numbers are the ones
    :func:`analyze_model` would give."""
    model = cache.model(source, cfg, data.image_shape)
    if model.encoder is None:
        raise AtlasError(f"model {source}: no encoder; a group's claims need its embeddings")
    clf = cache.classifier(classifier, data, cfg) if classifier else None
    labels = data.test.labels.astype(np.int64)
    emb = model.encode(data.test.images, cfg.batch_size)
    embedding, _, _ = embedding_metrics(emb, data.test.images, labels, data.class_names, cfg,
                                        np.random.default_rng(cfg.seed), cache)  # fmt: skip
    spec = next((g for g in cfg.grids if g.key() == SEED_GRID), GridSpec())
    grid = decode_grid(model.decoder, spec, emb, cfg.batch_size, cell_px=model.image_shape[2])
    g = analyze_grid(grid, clf, emb, labels, data.class_names, cfg)
    why = "not measured for a group member of this report (only what the study needs)"
    geometry = None
    if cfg.geometry_graph:  # on the first grid, as the full analysis measures it, less the
        # centroid geodesics (no reading needs them; 0.6 of its 0.8 CPU s per model)
        first = cfg.grids[0]
        geometry = geometry_metrics(
            analyze_geometry(model, first, emb, labels, data.class_names, cfg.geometry_graph,
                             geodesics=False),
            first.key(),
        )  # fmt: skip
    return ModelMetrics(embedding, None, None, {g.key: g.metrics},
                        {"reconstruction": why, "samples": why}, geometry)  # fmt: skip


@dataclass
class GroupAnalysis:
    """The members of one group as measured, and the group's summary across seeds."""

    config: GroupConfig
    names: tuple[str, ...]
    metrics: tuple[ModelMetrics, ...]
    summary: GroupSummary

    def as_study_group(self) -> Group:
        return Group(self.config.label, self.names, self.metrics)


def member_names(members: Sequence[Path]) -> tuple[str, ...]:
    """Display names of a group's members: folder names, made unique with their parents."""
    names = [m.name if m.suffix != ".onnx" else m.parent.name for m in members]
    if len(set(names)) < len(names):
        names = [f"{m.parent.name}/{n}" for m, n in zip(members, names, strict=True)]
    return tuple(names)


def analyze_groups(
    groups: Sequence[GroupConfig],
    analysed: Sequence[ModelAnalysis],
    classifier: Path | None,
    data: ImageDataset,
    cfg: AnalysisConfig,
    cache: Cache,
    full: bool,
    stage: Callable[[str], None] = lambda s: None,
) -> list[GroupAnalysis]:
    """Measure every member of every group: all metrics (``full``), or only what the seed
    study needs (:func:`study_metrics`). A member the report already analysed (the same model
    file) is not measured twice."""
    done = {str(Path(m.provenance.source).resolve()): m.metrics for m in analysed}
    todo: dict[str, tuple[str, Path]] = {}  # every member not measured yet, once
    for g in groups:
        for member in g.members:
            key = str(member.resolve())
            if key not in done and key not in todo:
                todo[key] = (g.label, member)
    workers = parallel_workers(len(todo))
    # the dense atlas and the extras (traversals, t-SNE, sample grids) are figures, not
    # metrics; the diagnostics and the extra planes' grids are metrics, measured for each
    member_cfg = session_threads(replace(cfg, atlas_steps=0, extras=False), workers)
    if workers > 1 and classifier is not None:  # shared state built before the threads start
        clf = cache.classifier(classifier, data, member_cfg)
        if full:
            real_features(clf, data, member_cfg, cache)

    def measure(job: tuple[str, Path], stage: Callable[[str], None]) -> ModelMetrics:
        label, member = job
        stage(f"Metrics across seeds: {label} {member.name}")
        if full:
            return analyze_model(member, classifier, data, member_cfg, cache, member.name).metrics
        return study_metrics(member, classifier, data, member_cfg, cache)

    done |= dict(zip(todo, in_parallel(list(todo.values()), measure, workers, stage),
                     strict=True))  # fmt: skip
    out = []
    for g in groups:
        metrics = [done[str(member.resolve())] for member in g.members]
        names = member_names(g.members)
        out.append(GroupAnalysis(g, names, tuple(metrics), summarise(g.label, names, metrics)))
    return out


# ---------------------------------------------------------------------------- report sections
def _own_value_label(label: str, groups: tuple[str, ...]) -> str:
    """A difference measure's label ("classes present, AE − VAE", "VAE − AE footwear share")
    for a row that holds each model's own value: the difference named once, in the verdict."""
    for a, b in itertools.permutations(groups, 2):
        label = label.replace(f", {a} − {b}", "").replace(f"{a} − {b} ", "")
    return label


def _measure_rows(
    findings: Sequence[Finding], names: dict[str, tuple[str, ...]]
) -> tuple[tuple[str, ...], list[Row]]:
    """Every measure behind the group findings, one row per measure, a column per seed, headed
    ``label: member`` as in the per-seed metrics table (``names``: each group's members)."""

    def head(label: str, i: int) -> str:
        members = names.get(label, ())
        return f"{label}: {members[i]}" if i < len(members) else f"{label} #{i + 1}"

    members: list[tuple[str, int]] = []
    for f in findings:
        for m in f.measures:
            for label in m.groups:
                members += [(label, i) for i in range(len(m.per_seed[label]))
                            if (label, i) not in members]  # fmt: skip
    columns = ("measure", *(head(label, i) for label, i in members))
    rows, seen = [], set()
    for f in findings:
        for m in f.measures:
            where = {"meant": "grid as meant", "drawn": "figure as drawn"}.get(m.scope, m.scope)
            label = _own_value_label(m.label, tuple(m.groups))
            name = f"{label} ({where})" if where else label
            if name in seen:
                continue
            seen.add(name)
            values: list[float | int | str | None] = []
            for label, i in members:
                vs = m.per_seed.get(label)
                values.append(vs[i] if vs is not None and i < len(vs) else None)
            rows.append(Row(name, values))
    return columns, rows


FOREST_FILE = "claims_forest.svg"


def forest_section(findings: Sequence[Finding]) -> Section:
    """The verdicts at a glance: the forest plot of the claims (``analysis.forest``), inline SVG
    in report.html and ``figures/claims_forest.svg`` beside report.md."""
    svg = forest_svg(findings)
    fig = FigureImage(
        FOREST_FILE, "The claims across seeds: interval, seeds, threshold and verdict per row",
        "Forest plot: one row per claim and reading, the 95 % interval as a bar coloured by "
        "its verdict, the seeds or pairings as dots, the threshold as a line, the confirming "
        "side shaded", svg.encode("utf-8"),
    )  # fmt: skip
    return Section("verdicts", "Verdicts at a glance", (FigureRow((fig,)),),
                   "Green: confirmed, red: refuted, amber: inconclusive, grey: cannot "
                   "discriminate or not available. The sentences and the full reasoning "
                   "follow.")  # fmt: skip


def method_section(findings: Sequence[Finding]) -> Section:
    """How the verdicts are reached: the rules (stated once, in the study's module), the
    intervals, the exact tests, and each rule's simulated error rates
    (``analysis.error_rates``)."""
    threshold = next((f.figures["threshold"] for f in findings if "top rows" in f.claim
                      and "threshold" in f.figures), 0.25)  # fmt: skip
    disagree = sum(getattr(m, "disagree", False) for f in findings for m in f.measures)
    silent = sum(not getattr(m, "votes", True) for f in findings for m in f.measures)
    lines = (
        *seed_rules_text(float(threshold)),
        "Intervals: 95 %, Student t over the seeds for one group — on the logit scale for a "
        "share (it stays inside [0, 1]) and on the log scale for a non-negative measure (it "
        "stays ≥ 0), then about the typical seed (the back-transformed mean); Welch for the "
        "difference of two groups' means. Confirmed only when the interval lies wholly on the "
        "confirming side, refuted only when wholly on the refuting side, else inconclusive.",
        "No spread: a measure equal on every seed would get a zero-width interval and a "
        "certain verdict from a few models; it is judged by the exact test instead, and when "
        "it is equal in both groups (a tie, e.g. every model at all 10 classes) it cannot "
        f"discriminate and does not vote ({silent} measure(s) of this report did not vote).",
        "Exact tests, beside every interval: a permutation test over every split of the two "
        "groups' seeds (5 + 5 seeds: 252 splits) or, for one group against its threshold, a "
        "sign-flip test (2^K sign patterns; with 5 seeds its smallest p is 1/32, so it cannot "
        "reach 2.5 % and never decides). Each decides at one-sided 2.5 %, like the interval's "
        f"ends; the verdicts' evidence names every measure where the two disagree ({disagree} "
        "in this report).",
        f"Error rates, simulated ({error_rates.REPS:,} studies per row, 5 + 5 seeds, the truth "
        "at the rule's edge): the share of studies that confirm a claim that is (just) false "
        "and that refute one that is (just) true. Nominal: 2.5 % for a single interval.",
    )
    rows = tuple(Row(f"{rule} ({data})", [f"{fc:.2%}", f"{fr:.2%}"])
                 for rule, data, fc, fr in error_rates.ERROR_RATES)  # fmt: skip
    return Section("verdict-method", "How the verdicts are reached", (
        Notes(lines),
        Table(("rule (simulated values)", "false confirmation", "false refutation"), rows,
              "error-rates-table", sortable=False, code=False),
    ))  # fmt: skip


# the decoder geometry across seeds (metrics.json keys, label, how to read it): the seed
# study's geometry readings, shown beside its verdicts and as a table of their own
GEOMETRY_ROWS = (
    ("geometry.magnification_median", "magnification √det G, median over the grid",
     "image units² per latent unit²"),
    ("geometry.magnification_p95", "magnification √det G, 95th percentile", ""),
    ("geometry.top_rows_length_share", "share of the grid's image-space length in the seed's "
     "top rows", "claim 3"),
    ("geometry.separation.named.ratio", "geodesic separation of Shirt, Coat, Ankle boot",
     "claim 2; higher is more separated"),
    ("geometry.separation.footwear.ratio", "geodesic separation of footwear from the rest",
     "claim 1; higher is more separated"),
)  # fmt: skip


def geometry_interval_rows(summaries: Sequence[GroupSummary]) -> list[Row]:
    """The decoder-geometry measures across seeds, ``mean [95 % t-interval]`` per group; none
    when no group has them (geometry not measured)."""
    if not any(key in s.intervals for s in summaries for key, _, _ in GEOMETRY_ROWS):
        return []
    return [Row(label, [interval_text(s.intervals.get(key)) for s in summaries], None, note)
            for key, label, note in GEOMETRY_ROWS]  # fmt: skip


def group_sections(
    groups: Sequence[GroupAnalysis],
    findings: Sequence[Finding],
    title: str,
    representatives: Sequence[ModelAnalysis | None],
    full: bool,
) -> list[Section]:
    """The report's sections about groups: the study's findings across seeds (with every
    measure's per-seed values one click away), the seed's figure as its loop drew it next to
    the correct mosaic (each group's first member), and the metrics across seeds."""
    labels = [g.config.label for g in groups]
    sizes = ", ".join(f"{g.config.label} {len(g.metrics)} seeds" for g in groups)
    sections: list[Section] = []
    if findings:
        sections.append(forest_section(findings))
        columns, rows = _measure_rows(findings, {g.config.label: g.names for g in groups})
        intro = (
            f"Each claim judged on the groups ({sizes}) by the rules in the next section: a 95 % "
            "interval across the seeds, an exact test over the seeds beside it. Each claim is "
            "judged on the grid the seed meant and on the figure its loop drew; the column "
            "'judged on' says on which evidence."
        )
        sections.append(Section("group-findings", title or "Findings across seeds", (
            Findings(tuple(findings)),
            Table(columns, tuple(rows), "group-measures-table", code=False,
                  collapsed="Per-seed values of every measure behind these verdicts (each "
                            "model's own value; a difference is taken between the groups' means)"),
        ), intro))  # fmt: skip
        sections.append(method_section(findings))
    figs = []
    for g, rep in zip(groups, representatives, strict=True):
        if rep is None or not findings:  # the seed's figure belongs to the study's findings
            continue
        grid = next((ga for ga in rep.grids if ga.key == SEED_GRID), None)
        if grid is None:
            continue
        cells, x, y = grid.grid.cells, grid.grid.x, grid.grid.y
        i = labels.index(g.config.label)
        figs.append(FigureImage(
            f"g{i}_{SEED_GRID}_mosaic.png", f"{g.config.label} ({g.names[0]}): the grid the "
            "seed meant, z₁ upward",
            f"{g.config.label}: every cell of the seed's 21×21 grid decoded and drawn, z₁ "
            "increasing upward", raster.mosaic_png(cells, x, y, f"{rep.name}: as meant"),
        ))  # fmt: skip
        if grid.metrics.as_written is not None:
            figs.append(FigureImage(
                f"g{i}_{SEED_GRID}_as_written.png", f"{g.config.label} ({g.names[0]}): the "
                "figure the seed's loop drew",
                f"{g.config.label}: the seed's figure as its code draws it: only the last "
                "column (z₀ = 4) of each row written, the rest black, z₁ = −4 at the top",
                raster.as_written_png(cells, x, y, f"{rep.name}: as the loop drew it"),
            ))  # fmt: skip
    if figs:
        sections.append(Section("seed-figure", "The seed's figure: as meant and as drawn", (
            FigureRow(tuple(figs)),
        ), "The seed's loop assigns latent_image[...] = image after its inner loop, so each "
           "row writes only the cell of the last column (z₀ = 4) and the rest stays black; "
           "imshow then puts z₁ = −4 at the top. Left of each pair: the grid it meant; right: "
           "the figure it drew (from the same decoded cells)."))  # fmt: skip
    summaries = [g.summary for g in groups]
    keys = [k for k in summaries[0].per_seed if all(k in s.per_seed for s in summaries)]
    blocks = [Table(("metric", *labels), tuple(key_interval_rows(summaries)),
                    "group-key-metrics-table", sortable=False)]  # fmt: skip
    constant = []
    if full:  # measures equal on every seed of every group say nothing about seeds
        constant = [k for k in keys if len({v for s in summaries for v in s.per_seed[k]}) == 1]
        varying = [k for k in keys if k not in constant]
        blocks.append(Table(("metric", *labels), tuple(interval_rows(summaries, varying)),
                            "group-metrics-table", code=True))  # fmt: skip
    geometry = geometry_interval_rows(summaries)
    if geometry:
        blocks.append(Table(("decoder geometry (supplementary)", *labels), tuple(geometry),
                            "group-geometry-table", sortable=False))  # fmt: skip
    shown = [km.key for km in KEY_METRICS] + [key for key, _, _ in GEOMETRY_ROWS]
    columns, rows = per_seed_rows(summaries, keys if full else [k for k in shown if k in keys])
    blocks.append(Table(columns, tuple(rows), "group-per-seed-table", code=True,
                        collapsed="Per-seed values of every metric"))  # fmt: skip
    intro = (
        f"Mean [95 % t-interval] across the seeds of each group ({sizes}); the per-seed "
        "values are in the folded table and in metrics.json (groups). With a few seeds a "
        "t-interval can run past a measure's natural bounds (a share below 0): read it as "
        "wide, not as a possible value."
        + (
            " The decoder geometry (supplementary: no verdict reads it) is measured on each "
            "seed's first grid: magnification from finite-difference Jacobians, geodesic "
            "separations on a graph of decoded images over where the test codes lie."
            if geometry
            else ""
        )
        + (
            f" Not listed in the table of intervals: {len(constant)} measures equal on every "
            "seed of every group (such as a grid's cell count)."
            if full and constant
            else ""
        )
        + (
            ""
            if full
            else " Group members beyond the first are measured only for the "
            "study (embeddings and the seed's grid)."
        )
    )
    sections.append(Section("group-metrics", "Metrics across seeds", tuple(blocks), intro))
    return sections
