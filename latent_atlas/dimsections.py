"""The report's sections about one model's own latent space (``latent_atlas.highdim``): test
images over their reconstructions, samples from the prior, and for a model of more than two
dims the per-dim diagnostics, traversals, the interpolation between two test images, the pair
grid of the top dims and the t-SNE map of the full codes. Figures are drawn later, like every
other figure of the report (``sections._Figures``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from latent_atlas.analysis.compare import Row
from latent_atlas.analysis.raster import image_rows_png
from latent_atlas.analysis.render import Block, FigureImage, FigureRow, Notes, Section, Table
from latent_atlas.analysis.traversals import (
    class_readout,
    interpolation_png,
    traversal_captions,
)
from latent_atlas.pipeline import ModelAnalysis
from latent_atlas.toolkit.grid import dim_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Image = Callable[[str, str, str, Callable[[], "Figure | bytes"]], FigureImage]
PAIR_DIMS = 5  # the pair grid's dims: the most active, at most this many


def _captions(logits: np.ndarray | None, names: tuple[str, ...]) -> tuple[Any, Any]:
    if logits is None:
        return None, None
    lab, conf = class_readout(logits)
    text = [[f"{names[c][:10]} {p:.2f}" for c, p in zip(r_l, r_c, strict=True)]
            for r_l, r_c in zip(lab, conf, strict=True)]  # fmt: skip
    return text, lab


def notebook_section(models: list[ModelAnalysis], image: Image) -> Section | None:
    """Test images over their reconstructions, and decoded samples from N(0, I)."""
    blocks: list[Block] = []
    for i, m in enumerate(models):
        ex = m.extras
        if ex is None:
            continue
        figs = []
        if ex.originals is not None and ex.reconstructions is not None:
            rows = np.stack([ex.originals, ex.reconstructions])
            idx: list[int] = [] if ex.recon_index is None else ex.recon_index.tolist()
            title = (f"{m.name}: test images {', '.join(map(str, idx))} (top) and their "
                     "reconstructions (bottom)")  # fmt: skip
            figs.append(image(
                f"m{i}_reconstructions.png", f"{m.name}: reconstructions",
                f"{m.name}: one test image per class over its reconstruction",
                functools.partial(image_rows_png, rows, ["test", "decoded"], title=title),
            ))  # fmt: skip
        n_rows = ex.samples.shape[0]
        figs.append(image(
            f"m{i}_prior_samples.png", f"{m.name}: samples from the prior N(0, I)",
            f"{m.name}: {ex.samples.shape[0] * ex.samples.shape[1]} images decoded from "
            "standard-normal codes",
            functools.partial(image_rows_png, ex.samples, [""] * n_rows,
                              title=f"{m.name}: decoded from z ~ N(0, I) (seeded)"),
        ))  # fmt: skip
        blocks.append(FigureRow(tuple(figs)))
    if not blocks:
        return None
    return Section("notebook", "Reconstructions and prior samples", tuple(blocks),
                   "What every VAE notebook shows: one test image per class above its "
                   "reconstruction (decoded from the encoder's mean), and images decoded from "
                   "codes drawn from the prior N(0, I).")  # fmt: skip


def _diagnostics_table(m: ModelAnalysis, i: int) -> Table:
    assert m.extras is not None and m.extras.dimensions is not None
    d = m.extras.dimensions.diagnostics
    kl = d.kl
    rows = []
    for rank, i in enumerate(d.order):
        rows.append(Row(
            f"{dim_label(i)} (dim {i})",
            [rank + 1, d.variance[i], "yes" if i in d.active else "no",
             None if kl is None else kl[i]],
        ))  # fmt: skip
    header = ("dim", "rank by variance", "variance of posterior means", "active",
              "mean KL to N(0,1), nats")  # fmt: skip
    # a long table (a 32-D model) is one click away, under a one-line summary
    folded = f"All {d.latent_dim} dims, by variance" if d.latent_dim > 16 else ""
    return Table(header, tuple(rows), f"dims-table-{i}", sortable=True, code=False,
                 collapsed=folded)  # fmt: skip


def dimension_sections(
    models: list[ModelAnalysis], names: tuple[str, ...], labels: np.ndarray, image: Image
) -> list[Section]:
    """For each model of more than two dims: diagnostics, traversals, interpolation, pair
    grid and t-SNE map."""
    out: list[Section] = []
    for i, m in enumerate(models):
        ex = m.extras
        if ex is None or ex.dimensions is None or ex.traversal is None:
            continue
        # matplotlib's figures (~0.3 s to import): only a report with such a model needs them
        from latent_atlas.analysis import dimplots, plots

        d = ex.dimensions.diagnostics
        kl_note = (
            f"Mean KL to the prior N(0, 1) per dim from the encoder's log-variance: "
            f"{d.kl_total:.4g} nats in all."
            if d.kl_total is not None
            else f"KL per dim: not available — {d.kl_not_available}."
        )
        intro = (
            f"{m.name} has {d.latent_dim} latent dims; {d.n_active} are active (variance of the "
            f"posterior means over the test set above {d.threshold:g}, Burda, Grosse & "
            "Salakhutdinov 2016): "
            + (", ".join(map(str, d.active[:32])) + (" …" if d.n_active > 32 else "")
               if d.active else "none")
            + f". Dims are numbered from 0, as in the flags. {kl_note}"
        )  # fmt: skip
        spectrum = image(
            f"m{i}_spectrum.png", f"{m.name}: variance per dim, largest first",
            f"Bar chart of the variance of the posterior means of each of the {d.latent_dim} "
            f"dims, active above {d.threshold:g}",
            functools.partial(dimplots.spectrum_figure, d.variance, d.threshold, d.kl,
                              f"{m.name}: variance of the posterior means per dim"),
        )  # fmt: skip
        out.append(Section(f"dims-{i}", f"{m.name}: which dims are used", (
            FigureRow((spectrum,)), _diagnostics_table(m, i)), intro))  # fmt: skip

        tr = ex.traversal
        captions, classes = _captions(tr.logits, names)
        if captions is None:
            captions = traversal_captions(tr.metrics)
        trav = image(
            f"m{i}_traversals.png", f"{m.name}: traversals of the {len(tr.traversal.dims)} most "
            "active dims",
            f"{m.name}: a row of decoded images per dim, that dim moving over the test "
            "embeddings' 1st–99th percentile, the others at the mean embedding",
            functools.partial(image_rows_png, tr.traversal.images, tr.row_labels(),
                              tr.traversal.values, captions, classes,
                              f"{m.name}: each row moves one dim (value above each image); the "
                              "others stay at the mean test embedding"),
        )  # fmt: skip
        change = ", ".join(
            f"{dim_label(dd)} {c:.2g}" for dd, c in zip(tr.metrics.dims, tr.metrics.change,
                                                        strict=True)
        )  # fmt: skip
        blocks: list[Block] = [FigureRow((trav,)), Notes((
            "How much each row changes the image (summed mean |Δ pixel| between neighbours): "
            + change + "." + (" Under each image: the classifier's label and confidence."
                              if tr.logits is not None else ""),
        ))]  # fmt: skip
        line = ex.interpolation
        if line is not None:
            g = line.geodesic
            also = "" if g is None else (
                f"; below, the geodesic between the same codes on the plane through them and "
                f"the test codes' mean (image-space length {g.length:.3g} against the straight "
                f"line's {g.straight_length:.3g})")  # fmt: skip
            blocks.append(FigureRow((image(
                f"m{i}_interpolation.png",
                f"{m.name}: the straight line from test image {line.a} to test image {line.b}"
                + ("" if g is None else ", and the geodesic"),
                f"{m.name}: test image {line.a}, eleven images decoded along the straight line "
                f"between its code and that of test image {line.b}, then test image {line.b}"
                + also,
                functools.partial(interpolation_png, line.images, line.ends, line.t,
                                  (f"test image {line.a}", f"test image {line.b}"), line.logits,
                                  names, f"{m.name}: between test images {line.a} and {line.b} "
                                  "(ends: the test images themselves; t from 0 to 1)",
                                  None if g is None else g.images,
                                  None if g is None else (g.straight_length, g.length),
                                  line.geodesic_logits),
            ),)))  # fmt: skip
        out.append(Section(f"traversals-{i}", f"{m.name}: what each dim does", tuple(blocks),
                           "Latent traversals (Higgins et al. 2017): one dim moves, the others "
                           "hold the mean test embedding. `latent-atlas traverse` draws them "
                           "for any dims and base image."))  # fmt: skip

        figs = []
        if m.embeddings is not None:
            top = d.order[: min(PAIR_DIMS, d.latent_dim)]
            figs.append(image(
                f"m{i}_pairs.png", f"{m.name}: test embeddings on the {len(top)} most active dims",
                f"{m.name}: pair grid of the test embeddings along dims "
                f"{', '.join(map(str, top))}, coloured by class",
                functools.partial(dimplots.pair_grid_figure, m.embeddings, labels, names, top,
                                  f"{m.name}: the most active dims, pairwise"),
            ))  # fmt: skip
        for kind, coords, index in (("t-SNE", ex.tsne, ex.tsne_index),
                                    ("UMAP", ex.umap, ex.umap_index)):  # fmt: skip
            if coords is None or index is None:
                continue
            figs.append(image(
                f"m{i}_{kind.lower().replace('-', '')}.png",
                f"{m.name}: {kind} map of the full {d.latent_dim}-D codes",
                f"{m.name}: {kind} of {len(coords)} test codes, coloured by class",
                functools.partial(plots.embedding_scatter, coords, labels[index], names, None,
                                  f"{m.name}: {kind} of {len(coords)} test codes "
                                  f"({d.latent_dim}-D)", (f"{kind} 1", f"{kind} 2")),
            ))  # fmt: skip
        if figs:
            out.append(Section(f"codes-{i}", f"{m.name}: the codes, pairwise and mapped",
                               tuple(FigureRow((f,)) for f in figs),
                               "Only neighbourhoods mean something in a t-SNE map (scikit-learn, "
                               "perplexity 30, seeded) or a UMAP map (umap-learn, 15 neighbours, "
                               "seeded; drawn where umap-learn is installed: `pip install "
                               "'latent-atlas[umap]'`); the PCA plane and the plane through three "
                               "test images are the grids above."))  # fmt: skip
    return out
