"""The report's sections, in order: figures drawn by ``analysis.plots`` from the analysis arrays
(rendered to PNG bytes), tables from the typed metrics. Both templates loop over this list, so
a new section is one entry here and a figure kind is named once (``GRID_FIGURES``).

Figure file names come from the model's index and the grid's key, never from user text (a
label is display text only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from latent_atlas.analysis import plots
from latent_atlas.analysis.compare import Row, all_rows, key_rows
from latent_atlas.analysis.render import (
    Block,
    FigureImage,
    FigureRow,
    Findings,
    Notes,
    Section,
    Table,
)
from latent_atlas.analysis.studies import Finding
from latent_atlas.pipeline import GridAnalysis, ModelAnalysis

DPI = 100


@dataclass(frozen=True)
class GridFigure:
    """One kind of per-grid figure: its file suffix, caption, alt text and how to draw it
    (``None`` when the model lacks what it needs, e.g. confidence without a classifier)."""

    kind: str
    caption: str
    alt: str
    draw: Callable[[ModelAnalysis, GridAnalysis, tuple[str, ...]], Figure | None]


def _mosaic(m: ModelAnalysis, g: GridAnalysis, names: tuple[str, ...]) -> Figure:
    desc = g.grid.spec.describe()
    return plots.mosaic_figure(g.grid.cells, g.grid.x, g.grid.y, f"{m.name}: {desc}", g.grid.labels)


def _classes(m: ModelAnalysis, g: GridAnalysis, names: tuple[str, ...]) -> Figure | None:
    if g.labels is None:
        return None
    return plots.class_map_figure(g.grid.cells, g.labels, g.grid.x, g.grid.y, names,
                                  f"{m.name}: classes", g.grid.labels)  # fmt: skip


def _confidence(m: ModelAnalysis, g: GridAnalysis, names: tuple[str, ...]) -> Figure | None:
    if g.confidence is None:
        return None
    return plots.confidence_figure(g.confidence, g.grid.x, g.grid.y, f"{m.name}: confidence",
                                   g.grid.labels)  # fmt: skip


def _brightness(m: ModelAnalysis, g: GridAnalysis, names: tuple[str, ...]) -> Figure:
    return plots.heatmap_figure(g.grid.brightness, g.grid.x, g.grid.y, f"{m.name}: brightness",
                                "mean brightness", "gray", 0.0, 1.0, g.grid.labels)  # fmt: skip


def _gradient(m: ModelAnalysis, g: GridAnalysis, names: tuple[str, ...]) -> Figure:
    return plots.heatmap_figure(
        g.gradient,
        g.grid.x,
        g.grid.y,
        f"{m.name}: |∇ brightness|",
        "brightness per latent unit",
        "magma",
        labels=g.grid.labels,
    )


def _class_source(g: GridAnalysis) -> str:
    c = g.metrics.classes
    return "the nearest test embeddings" if c and c.source != "classifier" else "the classifier"


GRID_FIGURES = (
    GridFigure("mosaic", "decoded grid", "Mosaic of the decoded images, second axis upward",
               _mosaic),
    GridFigure("classes", "class per cell", "The grid with each cell tinted by its class",
               _classes),
    GridFigure("confidence", "classifier confidence",
               "Heatmap of the classifier's max probability per cell", _confidence),
    GridFigure("brightness", "mean brightness per cell",
               "Heatmap of the mean brightness of each decoded cell", _brightness),
    GridFigure("gradient", "|∇ brightness|",
               "Heatmap of the brightness gradient magnitude per latent unit", _gradient),
)  # fmt: skip


def _png(fig: Figure) -> bytes:
    return plots.figure_png_bytes(fig, dpi=DPI)


def _embedding_row(models: list[ModelAnalysis], names: tuple[str, ...],
                   labels: np.ndarray) -> FigureRow | None:  # fmt: skip
    figs = []
    for i, m in enumerate(models):
        if m.embeddings is None or not m.grids:
            continue
        first = m.grids[0].grid
        coords = first.plane.project(m.embeddings)
        extent = (first.x[0], first.x[-1], first.y[0], first.y[-1])
        where = first.plane.describe() or "the latent plane"
        fig = plots.embedding_scatter(coords, labels, names, extent, f"{m.name} encoder: test set",
                                      first.labels)  # fmt: skip
        figs.append(FigureImage(
            f"m{i}_embeddings.png", f"{m.name}: test-set embeddings ({where})",
            f"Scatter of the {len(labels)} test embeddings of {m.name} on {where}, coloured by "
            "class, with the first grid's extent drawn as a dashed box", _png(fig),
        ))  # fmt: skip
    return FigureRow(tuple(figs)) if figs else None


def _grid_sections(models: list[ModelAnalysis], names: tuple[str, ...]) -> list[Section]:
    keys: list[str] = []
    for m in models:
        keys += [g.key for g in m.grids if g.key not in keys]
    sections = []
    for key in keys:
        present = [(i, m, g) for i, m in enumerate(models) for g in m.grids if g.key == key]
        spec = present[0][2].grid.spec
        blocks: list[Block] = []
        for gf in GRID_FIGURES:
            figs = []
            for i, m, g in present:
                fig = gf.draw(m, g, names)
                if fig is None:
                    continue
                caption = f"{m.name}: {gf.caption}"
                if gf.kind == "classes":
                    caption += f" (from {_class_source(g)})"
                figs.append(
                    FigureImage(
                        f"m{i}_{key}_{gf.kind}.png",
                        caption,
                        f"{m.name}: {gf.alt} ({spec.describe()})",
                        _png(fig),
                    )
                )
            if figs:
                blocks.append(FigureRow(tuple(figs)))
        shares = {m.name: np.array(list(g.metrics.classes.shares.values()))
                  for _, m, g in present if g.metrics.classes is not None}  # fmt: skip
        if shares:
            fig = plots.class_share_bars(shares, names)
            blocks.append(FigureRow((FigureImage(
                f"{key}_class_shares.png", f"Class shares of the grid ({spec.describe()})",
                "Bars of the share of grid cells per class, the models side by side", _png(fig),
            ),)))  # fmt: skip
        ranges = "; ".join(
            f"{m.name}: {g.grid.labels[0]} {g.grid.x[0]:.4g}…{g.grid.x[-1]:.4g}, "
            f"{g.grid.labels[1]} {g.grid.y[0]:.4g}…{g.grid.y[-1]:.4g}"
            + (f" ({g.grid.plane.describe()})" if g.grid.plane.describe() else "")
            for _, m, g in present
        )
        sections.append(Section(f"grid-{key}", f"Grid: {spec.describe()}", tuple(blocks), ranges))
    return sections


def _atlas_section(models: list[ModelAnalysis], names: tuple[str, ...],
                   threshold: float) -> Section | None:  # fmt: skip
    """The dense atlas of each model (class, brightness, |∇ brightness| at every point)."""
    figs = []
    for i, m in enumerate(models):
        if m.atlas is None:
            continue
        a, grid = m.atlas.atlas, m.grids[0].grid
        ny, nx = a.shape
        fig = plots.atlas_figure(a.labels, a.confidence, a.brightness, m.atlas.gradient, a.x, a.y,
                                 names, f"{m.name}: dense atlas, {nx}×{ny} points", grid.labels,
                                 threshold)  # fmt: skip
        how = "one composed ONNX graph" if a.method == "fused" else "decode, then classify"
        figs.append(FigureImage(
            f"m{i}_atlas.png", f"{m.name}: class, brightness and |∇ brightness| at {nx}×{ny} "
            f"points ({how})",
            f"{m.name}: three maps over the plane of the first grid at {nx}×{ny} points: the "
            "classifier's class of the decoded image (paler where its confidence is below "
            f"{threshold:g}), the image's mean brightness, and the brightness gradient magnitude",
            _png(fig),
        ))  # fmt: skip
    if not figs:
        return None
    first = next(m for m in models if m.atlas is not None)
    intro = (
        "The first grid's plane and range sampled densely: every point decoded and classified "
        "inside onnxruntime (decoder and classifier composed into one graph, so no image leaves "
        "it); the gradient is taken on the brightness map in latent units. The same class map "
        "is the explorer's background."
        + (f" ({first.atlas.atlas.note})" if first.atlas and first.atlas.atlas.note else "")
    )
    return Section("atlas", "Dense atlas", tuple(FigureRow((f,)) for f in figs), intro)


def build_sections(
    models: list[ModelAnalysis],
    class_names: tuple[str, ...],
    test_labels: np.ndarray,
    findings: list[Finding] | None = None,
    study_title: str = "",
    notes: list[str] | None = None,
    ambiguity_threshold: float = 0.5,
) -> list[Section]:
    """Every section of a report over ``models`` (in report order)."""
    labels = [m.name for m in models]
    metrics = [m.metrics for m in models]
    sections: list[Section] = []
    if findings:
        sections.append(
            Section("findings", study_title or "Findings", (Findings(tuple(findings)),))
        )
    sections.append(Section("key-metrics", "Key metrics", (
        Table(("metric", *labels), tuple(key_rows(metrics)), "key-metrics-table"),
    ), "The best model in each row is marked (★ in HTML, bold in Markdown)."))  # fmt: skip
    missing = list(notes or []) + [f"{m.name}: {what} — {why}" for m in models
                                   for what, why in m.metrics.not_available.items()]  # fmt: skip
    if missing:
        sections.append(Section("not-available", "Not available", (Notes(tuple(missing)),)))
    emb = _embedding_row(models, class_names, test_labels)
    if emb is not None:
        intro = "Measures of the embeddings (k-NN accuracy, silhouette, trustworthiness) are "
        intro += (
            "computed in each model's full latent space: "
            + ", ".join(f"{m.name} {m.provenance.latent_dim}-D" for m in models)
            + "."
        )
        sections.append(Section("embeddings", "Encoder embeddings", (emb,), intro))
    sections += _grid_sections(models, class_names)
    atlas = _atlas_section(models, class_names, ambiguity_threshold)
    if atlas is not None:
        sections.append(atlas)
    sections.append(Section("all-metrics", "All metrics", (
        Table(("metric", *labels), tuple(all_rows(metrics)), "metrics-table", code=True),
    ), "Click a column header to sort."))  # fmt: skip
    prov = []
    for m in models:
        p = m.provenance
        prov.append(Row(f"{m.name} decoder ({p.source})", [p.decoder_sha256]))
        if p.encoder_sha256:
            prov.append(Row(f"{m.name} encoder", [p.encoder_sha256]))
    clf = next((m.provenance.classifier_sha256 for m in models if m.provenance.classifier_sha256),
               None)  # fmt: skip
    if clf:
        prov.append(Row("classifier", [clf]))
    sections.append(Section("provenance", "Provenance", (
        Table(("file", "sha256"), tuple(prov), "provenance-table", sortable=False, code=False),
    )))  # fmt: skip
    return sections
