"""The report's sections, in order: figures drawn by ``analysis.plots`` from the analysis arrays
(rendered to PNG bytes), tables from the typed metrics. Both templates loop over this list, so
a new section is one entry here and a figure kind is named once (``GRID_FIGURES``).

Figure file names come from the model's index and the grid's key, never from user text (a
label is display text only).
"""

from __future__ import annotations

import dataclasses
import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
from PIL import Image

from latent_atlas.analysis import raster
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
from latent_atlas.pipeline import (
    ATLAS_TITLE,
    GridAnalysis,
    ModelAnalysis,
    grid_title,
)
from latent_atlas.toolkit.errors import AtlasError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100


# a matplotlib figure, or PNG bytes drawn already (analysis.raster). A PNG report draws every
# figure of a 2-D model in pixels and never imports matplotlib's figures (~0.3 s); an SVG or
# PDF (`analyze --figure-format`) keeps the scatter and the bars as vectors.
Picture: TypeAlias = "Figure | bytes"


@dataclass(frozen=True)
class GridFigure:
    """One kind of per-grid figure: its file suffix, caption, alt text, how to draw it, and
    whether a grid has what it needs (e.g. confidence needs a classifier)."""

    kind: str
    caption: str
    alt: str
    draw: Callable[[ModelAnalysis, GridAnalysis, tuple[str, ...]], Picture]
    available: Callable[[GridAnalysis], bool] = lambda g: True


# The grid figures are pictures of arrays, drawn straight into pixels (analysis.raster): a few
# ms each where a matplotlib figure took 0.2-0.5 CPU s (~5 s of a two-model report).
def _mosaic(m: ModelAnalysis, g: GridAnalysis, names: tuple[str, ...]) -> bytes:
    desc = g.grid.spec.describe()
    return raster.mosaic_png(g.grid.cells, g.grid.x, g.grid.y, f"{m.name}: {desc}", g.grid.labels,
                             marks=g.grid.plane.marks)  # fmt: skip


def _classes(m: ModelAnalysis, g: GridAnalysis, names: tuple[str, ...]) -> bytes:
    assert g.labels is not None
    return raster.class_map_png(g.grid.cells, g.labels, g.grid.x, g.grid.y, names,
                                f"{m.name}: classes", g.grid.labels,
                                g.grid.plane.marks)  # fmt: skip


def _confidence(m: ModelAnalysis, g: GridAnalysis, names: tuple[str, ...]) -> bytes:
    assert g.confidence is not None
    return raster.heatmap_png(g.confidence, g.grid.x, g.grid.y, f"{m.name}: confidence",
                              "classifier confidence", "viridis", 0.0, 1.0,
                              g.grid.labels, g.grid.plane.marks)  # fmt: skip


def _brightness(m: ModelAnalysis, g: GridAnalysis, names: tuple[str, ...]) -> bytes:
    return raster.heatmap_png(g.grid.brightness, g.grid.x, g.grid.y, f"{m.name}: brightness",
                              "mean brightness", "gray", 0.0, 1.0, g.grid.labels,
                              g.grid.plane.marks)  # fmt: skip


def _gradient(m: ModelAnalysis, g: GridAnalysis, names: tuple[str, ...]) -> bytes:
    return raster.heatmap_png(g.gradient, g.grid.x, g.grid.y, f"{m.name}: |∇ brightness|",
                              "brightness per latent unit", "magma",
                              labels=g.grid.labels, marks=g.grid.plane.marks)  # fmt: skip


def _class_source(g: GridAnalysis) -> str:
    c = g.metrics.classes
    return "the nearest test embeddings" if c and c.source != "classifier" else "the classifier"


GRID_FIGURES = (
    GridFigure("mosaic", "decoded grid", "Mosaic of the decoded images, second axis upward",
               _mosaic),
    GridFigure("classes", "class per cell", "The grid with each cell tinted by its class",
               _classes, lambda g: g.labels is not None),
    GridFigure("confidence", "classifier confidence",
               "Heatmap of the classifier's max probability per cell", _confidence,
               lambda g: g.confidence is not None),
    GridFigure("brightness", "mean brightness per cell",
               "Heatmap of the mean brightness of each decoded cell", _brightness),
    GridFigure("gradient", "|∇ brightness|",
               "Heatmap of the brightness gradient magnitude per latent unit", _gradient),
)  # fmt: skip


# ---------------------------------------------------------------------------- drawing
# The sections are built first with empty PNGs and a list of what to draw; ``_draw_all`` then
# draws them. A draw gives a matplotlib figure (encoded here) or PNG bytes drawn already
# (analysis.raster).
Draw = Callable[[], Picture]


def png_as(png: bytes, fmt: str) -> bytes:
    """A picture drawn here (PNG bytes) as a file of ``fmt``: the PNG itself, a one-page PDF
    (Pillow), or an SVG that holds the PNG as its image (a raster picture stays raster)."""
    if fmt == "png":
        return png
    if fmt == "pdf":
        buf = io.BytesIO()
        Image.open(io.BytesIO(png)).convert("RGB").save(buf, format="PDF", resolution=100.0)
        return buf.getvalue()
    if fmt == "svg":
        import base64

        w, h = Image.open(io.BytesIO(png)).size
        data = base64.b64encode(png).decode("ascii")
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
                f'viewBox="0 0 {w} {h}"><image width="{w}" height="{h}" '
                f'href="data:image/png;base64,{data}"/></svg>\n').encode()  # fmt: skip
    raise AtlasError(f"figure format {fmt!r}: expected png, svg or pdf")


def _encode(picture: Picture, fmt: str) -> bytes:
    """A figure's file in ``fmt``: a matplotlib figure rendered, a raster picture converted."""
    if isinstance(picture, bytes):
        return png_as(picture, fmt)
    from latent_atlas.analysis import plots

    return plots.figure_bytes(picture, fmt, dpi=DPI)


def _draw_all(draws: list[Draw], fmt: str = "png") -> list[bytes]:
    """The bytes of every figure (PNG, or ``fmt``), in order, drawn here. (They were drawn on
    forked workers while most were matplotlib figures; as raster pictures a two-model report's
    34 figures take ~1.5 CPU s, less than forking the workers cost.)"""
    return [_encode(d(), fmt) for d in draws]


class _Figures:
    """Collects the figures of a report while its sections are built: ``image`` gives a
    FigureImage with empty bytes and remembers how to draw it; ``fill`` draws them all."""

    def __init__(self, fmt: str = "png") -> None:
        self.draws: dict[str, Draw] = {}
        self.fmt = fmt

    def image(self, file: str, title: str, alt: str, draw: Draw) -> FigureImage:
        self.draws[file] = draw
        return FigureImage(file, title, alt, b"")

    def fill(self, sections: list[Section]) -> list[Section]:
        files = list(self.draws)
        pngs = dict(zip(files, _draw_all([self.draws[f] for f in files], self.fmt), strict=True))

        def filled(block: Block) -> Block:
            if isinstance(block, FigureRow):
                figs = tuple(dataclasses.replace(f, png=pngs.get(f.file, f.png))
                             for f in block.figures)  # fmt: skip
                return dataclasses.replace(block, figures=figs)
            return block

        return [dataclasses.replace(s, blocks=tuple(filled(b) for b in s.blocks))
                for s in sections]  # fmt: skip


def _embedding_row(models: list[ModelAnalysis], names: tuple[str, ...], labels: np.ndarray,
                   out: _Figures) -> FigureRow | None:  # fmt: skip
    figs = []
    for i, m in enumerate(models):
        if m.embeddings is None or not m.grids:
            continue
        first = m.grids[0].grid
        coords = first.plane.project(m.embeddings)
        extent = (first.x[0], first.x[-1], first.y[0], first.y[-1])
        where = first.plane.describe() or "the latent plane"
        title = f"{m.name} encoder: test set"

        def draw(c=coords, e=extent, t=title, axes=first.labels, g=first) -> Picture:
            if out.fmt == "png":
                return raster.scatter_png(c, labels, names, e, t, axes, g.plane.marks)
            from latent_atlas.analysis import plots

            fig = plots.embedding_scatter(c, labels, names, e, t, axes)
            return plots.mark_points(fig, g.plane.marks, g.x, g.y) if g.plane.marks else fig

        figs.append(out.image(
            f"m{i}_embeddings.png", f"{m.name}: test-set embeddings ({where})",
            f"Scatter of the {len(labels)} test embeddings of {m.name} on {where}, coloured by "
            "class, with the first grid's extent drawn as a dashed box", draw,
        ))  # fmt: skip
    return FigureRow(tuple(figs)) if figs else None


def _share_bars(shares: dict[str, np.ndarray], names: tuple[str, ...], fmt: str) -> Picture:
    """The class shares' bars: in pixels for a PNG, as a matplotlib figure (vectors) else."""
    if fmt == "png":
        return raster.share_bars_png(shares, names)
    from latent_atlas.analysis import plots

    return plots.class_share_bars(shares, names)


def _grid_sections(models: list[ModelAnalysis], names: tuple[str, ...],
                   out: _Figures) -> list[Section]:  # fmt: skip
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
                if not gf.available(g):
                    continue
                caption = f"{m.name}: {gf.caption}"
                if gf.kind == "classes":
                    caption += f" (from {_class_source(g)})"

                def draw(gf=gf, m=m, g=g) -> Picture:
                    return gf.draw(m, g, names)

                figs.append(out.image(f"m{i}_{key}_{gf.kind}.png", caption,
                                      f"{m.name}: {gf.alt} ({spec.describe()})", draw))  # fmt: skip
            if figs:
                blocks.append(FigureRow(tuple(figs)))
        shares = {m.name: np.array(list(g.metrics.classes.shares.values()))
                  for _, m, g in present if g.metrics.classes is not None}  # fmt: skip
        if shares:
            blocks.append(FigureRow((out.image(
                f"{key}_class_shares.png", f"Class shares of the grid ({spec.describe()})",
                "Bars of the share of grid cells per class, the models side by side",
                functools.partial(_share_bars, shares, names, out.fmt),
            ),)))  # fmt: skip
        ranges = "; ".join(
            f"{m.name}: {g.grid.labels[0]} {g.grid.x[0]:.4g}…{g.grid.x[-1]:.4g}, "
            f"{g.grid.labels[1]} {g.grid.y[0]:.4g}…{g.grid.y[-1]:.4g}"
            + (f" ({g.grid.plane.describe()})" if g.grid.plane.describe() else "")
            for _, m, g in present
        )
        warnings = [f"{m.name}: {w}" for _, m, g in present
                    if (w := g.grid.plane.warning(m.embeddings))]  # fmt: skip
        if warnings:
            ranges += ". Warning — " + "; ".join(warnings)
        sections.append(Section(f"grid-{key}", grid_title(spec), tuple(blocks), ranges))
    return sections


def _atlas_section(models: list[ModelAnalysis], names: tuple[str, ...],
                   threshold: float, out: _Figures) -> Section | None:  # fmt: skip
    """The dense atlas of each model (class, brightness, |∇ brightness| at every point)."""
    figs = []
    for i, m in enumerate(models):
        if m.atlas is None:
            continue
        a, grid = m.atlas.atlas, m.grids[0].grid
        ny, nx = a.shape
        title = f"{m.name}: dense atlas, {nx}×{ny} points"

        def draw(a=a, gradient=m.atlas.gradient, title=title, axes=grid.labels) -> bytes:
            return raster.atlas_png(a.labels, a.confidence, a.brightness, gradient, a.x, a.y,
                                    names, title, axes, threshold)  # fmt: skip

        how = "one composed ONNX graph" if a.method == "fused" else "decode, then classify"
        figs.append(out.image(
            f"m{i}_atlas.png", f"{m.name}: class, brightness and |∇ brightness| at {nx}×{ny} "
            f"points ({how})",
            f"{m.name}: three maps over the plane of the first grid at {nx}×{ny} points: the "
            "classifier's class of the decoded image (paler where its confidence is below "
            f"{threshold:g}), the image's mean brightness, and the brightness gradient magnitude",
            draw,
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
    return Section("atlas", ATLAS_TITLE, tuple(FigureRow((f,)) for f in figs), intro)


def _geometry_section(models: list[ModelAnalysis], out: _Figures) -> Section | None:
    """Each model's decoder geometry on its first grid (maps, centroid geodesics drawn on the
    magnification map) and the image strips along the straight lines and the geodesics."""
    from latent_atlas.analysis import geometry_plots as gp

    blocks: list[Block] = []
    for i, m in enumerate(models):
        if m.geometry is None:
            continue
        maps, paths = m.geometry.maps, m.geometry.paths
        planar = [(s, maps.plane.project(g.points)) for _, s, g in paths]
        title = f"{m.name}: decoder geometry ({maps.precision} finite differences)"

        def draw(mp=maps, pl=planar, t=title) -> Picture:
            return gp.geometry_maps_png(
                mp.x, mp.y, mp.magnification, mp.condition, mp.step_x, mp.step_y,
                mp.plane.labels, t, pl,
            )  # fmt: skip

        figs = [out.image(
            f"m{i}_geometry.png", f"{m.name}: magnification, anisotropy and step lengths",
            f"{m.name}: four maps over the first grid: log10 of the magnification factor, log10 "
            "of the metric's condition number, and the image distance of one grid step along "
            "each axis; geodesics between class centroids drawn on the first (numbered), "
            "straight lines dashed", draw,
        )]  # fmt: skip
        if paths:
            # images only: a drawing worker is a fork, where an onnxruntime session must not run
            rows = [(label, g.straight_images, g.images, g.straight_length, g.length)
                    for label, _, g in paths]  # fmt: skip

            def strips(r=rows, name=m.name) -> Picture:
                return gp.geodesic_strips_png(r, f"{name}: straight line vs geodesic")

            figs.append(out.image(
                f"m{i}_geodesics.png", f"{m.name}: straight line vs geodesic between class "
                "centroids", f"{m.name}: rows of decoded images along the straight segment and "
                "along the geodesic between test-set class centroids, with their lengths", strips,
            ))  # fmt: skip
        blocks.append(FigureRow(tuple(figs)))
    if not blocks:
        return None
    intro = (
        "How each decoder stretches the first grid's plane onto image space, from its "
        "Jacobian J by central finite differences (the graph in float64 where onnxruntime "
        "allows): magnification √det(JᵀJ), the condition number of JᵀJ (1: every direction "
        "stretched alike), and the image distance of one grid step. Geodesics are shortest "
        "paths in image distance (Dijkstra on a grid graph, then a polyline of least energy); "
        "lengths are sums of Euclidean image distances over all pixels. Supplementary: no "
        "verdict uses them."
    )
    return Section("geometry", "Decoder geometry", tuple(blocks), intro)


def build_sections(
    models: list[ModelAnalysis],
    class_names: tuple[str, ...],
    test_labels: np.ndarray,
    findings: list[Finding] | None = None,
    study_title: str = "",
    notes: list[str] | None = None,
    ambiguity_threshold: float = 0.5,
    figure_format: str = "png",
    study_ran: bool | None = None,
) -> list[Section]:
    """Every section of a report over ``models`` (in report order); the figures drawn as
    ``figure_format`` (PNG for a report; SVG or PDF for `analyze --figure-format`, whose
    files then take that suffix). ``study_ran`` (default: whether there are findings): the
    seed study's own fields appear in the metrics table."""
    from latent_atlas.dimsections import dimension_sections, notebook_section

    study_ran = bool(findings) if study_ran is None else study_ran
    labels = [m.name for m in models]
    metrics = [m.metrics for m in models]
    sections: list[Section] = []
    if findings:
        sections.append(
            Section("findings", study_title or "Findings", (Findings(tuple(findings)),))
        )
    best = "The best model in each row is marked (★ in HTML, bold in Markdown)."
    if len(models) == 1:  # one model alone is a report too
        best = (f"One model: nothing to mark as best; add a second --model to compare "
                f"{models[0].name} side by side.")  # fmt: skip
    sections.append(Section("key-metrics", "Key metrics", (
        Table(("metric", *labels), tuple(key_rows(metrics)), "key-metrics-table"),
    ), best))  # fmt: skip
    missing = list(notes or []) + [f"{m.name}: {what} — {why}" for m in models
                                   for what, why in m.metrics.not_available.items()]  # fmt: skip
    if missing:
        sections.append(Section("not-available", "Not available", (Notes(tuple(missing)),)))
    out = _Figures(figure_format)
    emb = _embedding_row(models, class_names, test_labels, out)
    if emb is not None:
        intro = "Measures of the embeddings (k-NN accuracy, silhouette, trustworthiness) are "
        intro += (
            "computed in each model's full latent space: "
            + ", ".join(f"{m.name} {m.provenance.latent_dim}-D" for m in models)
            + "."
        )
        sections.append(Section("embeddings", "Encoder embeddings", (emb,), intro))
    notebook = notebook_section(models, out.image)
    if notebook is not None:
        sections.append(notebook)
    sections += dimension_sections(models, class_names, test_labels, out.image)
    sections += _grid_sections(models, class_names, out)
    atlas = _atlas_section(models, class_names, ambiguity_threshold, out)
    if atlas is not None:
        sections.append(atlas)
    geometry = _geometry_section(models, out)
    if geometry is not None:
        sections.append(geometry)
    sections.append(Section("all-metrics", "All metrics", (
        Table(("metric", *labels), tuple(all_rows(metrics, study_ran)), "metrics-table",
              code=True),
    ), "Click a column header to sort. Class centroids and vectors of more than two values "
       "(per-dim means and spreads, plane origins) are in metrics.json only"
       + ("." if study_ran else ", and so are the seed study's own fields (it did not run).")
    ))  # fmt: skip
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
    return out.fill(sections)
