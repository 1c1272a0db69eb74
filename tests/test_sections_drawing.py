"""The report's figures are drawn after its sections are built: every figure, in order, in
the file format asked for; a figure that cannot be drawn stops the drawing."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from latent_atlas.analysis import plots, raster

from latent_atlas import sections


def _draws(n: int) -> list:
    x = np.linspace(-4, 4, 9)
    maps = np.random.default_rng(0).random((n, 9, 9))
    return [
        functools.partial(plots.heatmap_figure, maps[i], x, x, f"map {i}", "value", "magma")
        if i % 2 else functools.partial(raster.heatmap_png, maps[i], x, x, f"map {i}")
        for i in range(n)
    ]  # fmt: skip


def test_drawing_gives_every_figure_in_order():
    draws = _draws(5)
    pngs = sections._draw_all(draws)
    assert len(set(pngs)) == 5 and all(png.startswith(b"\x89PNG") for png in pngs)
    assert pngs[0] == draws[0]()  # a raster picture is its PNG, unchanged
    assert pngs == sections._draw_all(draws)  # the same bytes each time
    svgs = sections._draw_all(draws, "svg")
    assert all(b"<svg" in s[:400] for s in svgs)


def test_a_failing_figure_stops_the_drawing():
    drawn = []

    def counted(i):
        drawn.append(i)
        return raster.heatmap_png(np.zeros((2, 2)), [0, 1], [0, 1])

    def broken():
        raise ValueError("a figure that cannot be drawn")

    draws = [functools.partial(counted, 0), broken, functools.partial(counted, 2)]
    with pytest.raises(ValueError, match="cannot be drawn"):
        sections._draw_all(draws)
    assert drawn == [0]


def test_a_png_report_draws_the_bars_in_pixels_and_svg_keeps_vectors():
    shares = {"a": np.array([0.25, 0.75]), "b": np.array([0.5, 0.5])}
    png = sections._share_bars(shares, ("x", "y"), "png")
    assert png == raster.share_bars_png(shares, ("x", "y"))
    fig = sections._share_bars(shares, ("x", "y"), "svg")
    assert not isinstance(fig, bytes) and len(fig.axes[0].patches) == 4  # a matplotlib figure
    assert b"<path" in sections._draw_all([lambda: fig], "svg")[0]  # drawn as vectors
