"""Every figure of a comparison report, drawn from the analysis results by ``analysis.plots``
and rendered to PNG bytes (the runner decides where they go)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from latent_atlas.analysis import plots
from latent_atlas.pipeline import ModelAnalysis


@dataclass(frozen=True)
class FigureFile:
    file: str
    title: str
    alt: str
    png: bytes


def make_figures(
    a: ModelAnalysis, b: ModelAnalysis, names: tuple[str, ...], labels: np.ndarray
) -> list[FigureFile]:
    """Every figure of a report, rendered to PNG."""
    out: list[FigureFile] = []

    def add(file: str, title: str, alt: str, fig: Any) -> None:
        out.append(FigureFile(file, title, alt, plots.figure_png_bytes(fig, dpi=100)))

    for m in (a, b):
        first = m.grids[0].grid
        extent = (first.x[0], first.x[-1], first.y[0], first.y[-1])
        add(f"{m.name}_embeddings.png", f"{m.name}: test-set embeddings",
            f"Scatter of the 10 000 test embeddings of {m.name} coloured by class, with the "
            "seed grid's extent drawn as a dashed box",
            plots.embedding_scatter(m.embeddings[:, :2], labels, names, extent,
                                    f"{m.name} encoder: test set"))  # fmt: skip
    for ga, gb in zip(a.grids, b.grids, strict=True):
        key = ga.key
        for m, g in ((a, ga), (b, gb)):
            x, y = g.grid.x, g.grid.y
            desc = g.grid.spec.describe()
            add(
                f"{m.name}_{key}_mosaic.png",
                f"{m.name}: decoded grid, {desc}",
                f"Mosaic of {m.name}'s decoded images over {desc}, z2 increasing upward",
                plots.mosaic_figure(g.grid.cells, x, y, f"{m.name}: {desc}"),
            )
            add(
                f"{m.name}_{key}_classes.png",
                f"{m.name}: classifier's class per cell",
                f"{m.name}'s grid with each cell tinted by the class the classifier assigns",
                plots.class_map_figure(g.grid.cells, g.labels, x, y, names, f"{m.name}: classes"),
            )
            add(
                f"{m.name}_{key}_confidence.png",
                f"{m.name}: classifier confidence",
                f"Heatmap of the classifier's max probability per cell of {m.name}'s grid",
                plots.confidence_figure(g.confidence, x, y, f"{m.name}: confidence"),
            )
            add(
                f"{m.name}_{key}_brightness.png",
                f"{m.name}: mean brightness per cell",
                f"Heatmap of the mean brightness of each decoded cell of {m.name}",
                plots.heatmap_figure(
                    g.grid.brightness,
                    x,
                    y,
                    f"{m.name}: brightness",
                    "mean brightness",
                    "gray",
                    0.0,
                    1.0,
                ),
            )
            add(f"{m.name}_{key}_gradient.png", f"{m.name}: |∇ brightness|",
                f"Heatmap of the brightness gradient magnitude (per latent unit) of {m.name}",
                plots.heatmap_figure(g.gradient, x, y, f"{m.name}: |∇ brightness|",
                                     "brightness per latent unit", "magma"))  # fmt: skip
        shares = {
            a.name: np.array(list(ga.metrics["classes"]["shares"].values())),
            b.name: np.array(list(gb.metrics["classes"]["shares"].values())),
        }
        add(f"{key}_class_shares.png", f"Class shares of the grid ({ga.grid.spec.describe()})",
            "Bars of the share of grid cells per class, both models side by side",
            plots.class_share_bars(shares, names))  # fmt: skip
    return out
