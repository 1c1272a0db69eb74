"""Tests of analysis.plots: orientation, labels, legends, bars, PNG output."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from latent_atlas.analysis.plots import (
    class_map_figure,
    class_share_bars,
    confidence_figure,
    embedding_scatter,
    figure_png_bytes,
    heatmap_figure,
    mosaic_figure,
    mosaic_image,
)
from latent_atlas.toolkit.errors import AtlasError
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

CLASS_NAMES = [f"class{k}" for k in range(10)]


def coded_cells(ny: int, nx: int, h: int = 28, w: int = 28) -> np.ndarray:
    """Cell (i, j) is the constant (i * 10 + j) / 100."""
    codes = (np.arange(ny)[:, None] * 10 + np.arange(nx)[None, :]) / 100.0
    return np.broadcast_to(codes[:, :, None, None], (ny, nx, h, w)).astype(np.float64)


def rendered_rgb(fig: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].astype(int)


def test_mosaic_image_orientation_and_shape():
    cells = coded_cells(2, 3)
    img = mosaic_image(cells)
    assert img.shape == (2 * 28, 3 * 28)
    # bottom-left block is cell (0, 0); top-left is cell (ny - 1, 0)
    np.testing.assert_array_equal(img[-28:, :28], cells[0, 0])
    np.testing.assert_array_equal(img[:28, :28], cells[1, 0])
    np.testing.assert_array_equal(img[:28, -28:], cells[1, 2])
    np.testing.assert_array_equal(img[-28:, 28:56], cells[0, 1])


def test_mosaic_image_keeps_pixels_inside_a_cell():
    rng = np.random.default_rng(0)
    cells = rng.random((3, 4, 5, 6))
    img = mosaic_image(cells)
    for i in range(3):
        for j in range(4):
            r0 = (3 - 1 - i) * 5
            np.testing.assert_array_equal(img[r0 : r0 + 5, j * 6 : (j + 1) * 6], cells[i, j])


def test_mosaic_image_rejects_wrong_rank():
    with pytest.raises(AtlasError):
        mosaic_image(np.zeros((3, 28, 28)))


def test_mosaic_figure_labels_and_ticks():
    cells = coded_cells(3, 4)
    x = np.array([-2.5, -0.3, 0.4, 3.0])  # non-uniform
    y = np.array([-1.25, 0.0, 2.0])
    fig = mosaic_figure(cells, x, y, title="VAE")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert "z" in ax.get_xlabel() and "z" in ax.get_ylabel()
    assert ax.get_xlabel() != ax.get_ylabel()
    xt = [t.get_text() for t in ax.get_xticklabels()]
    yt = [t.get_text() for t in ax.get_yticklabels()]
    assert f"{x[0]:.2g}" in xt and f"{x[-1]:.2g}" in xt
    assert f"{y[0]:.2g}" in yt and f"{y[-1]:.2g}" in yt
    # the y tick for y[0] is lower on screen than the one for y[-1]: z2 increases upward
    ticks = dict(zip(yt, ax.get_yticks(), strict=True))
    assert ticks[f"{y[0]:.2g}"] < ticks[f"{y[-1]:.2g}"]
    assert ax.get_ylim()[0] < ax.get_ylim()[1]
    assert ax.get_title() == "VAE"


def test_mosaic_figure_draws_smallest_z2_at_bottom():
    ny, nx = 2, 2
    cells = np.zeros((ny, nx, 28, 28))
    cells[0, 0] = 1.0  # only the (smallest z1, smallest z2) cell is white
    fig = mosaic_figure(cells, [0.0, 1.0], [0.0, 1.0])
    ax = fig.axes[0]
    rgb = rendered_rgb(fig)
    height = rgb.shape[0]

    def pixel_at(xd: float, yd: float) -> np.ndarray:
        px, py = ax.transData.transform((xd, yd))
        return rgb[int(height - py), int(px)]

    assert pixel_at(14, 14).min() > 200  # bottom-left cell (data y small) is white
    assert pixel_at(14, 42).max() < 50  # top-left cell is black
    assert pixel_at(42, 14).max() < 50


def test_mosaic_figure_rejects_mismatched_coords():
    with pytest.raises(AtlasError):
        mosaic_figure(coded_cells(3, 4), np.arange(3.0), np.arange(3.0))
    with pytest.raises(AtlasError):
        mosaic_figure(coded_cells(3, 4), np.array([0.0, 2.0, 1.0, 3.0]), np.arange(3.0))


def test_heatmap_figure_colorbar_and_orientation():
    ny, nx = 3, 4
    values = np.repeat(np.arange(ny, dtype=float)[:, None], nx, axis=1)  # values[i, j] = i
    x = np.array([-2.0, -1.0, 0.5, 2.0])
    y = np.array([-1.0, 0.0, 3.0])
    fig = heatmap_figure(values, x, y, title="t", colorbar_label="my label")
    assert len(fig.axes) == 2
    ax, cax = fig.axes
    assert cax.get_ylabel() == "my label"
    assert "z" in ax.get_xlabel() and "z" in ax.get_ylabel()
    meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == 1
    mesh = meshes[0]
    data = np.asarray(mesh.get_array()).reshape(ny, nx)
    coords = mesh.get_coordinates()  # [ny + 1, nx + 1, 2]
    # row 0 of the data (value 0, z2 = y[0]) spans the lowest z2 band; axes are not inverted
    np.testing.assert_array_equal(data[0], 0.0)
    np.testing.assert_array_equal(data[-1], ny - 1)
    assert coords[0, 0, 1] < y[0] < coords[1, 0, 1]
    assert coords[-2, 0, 1] < y[-1] < coords[-1, 0, 1]
    assert coords[0, 0, 0] < x[0] < coords[0, 1, 0]
    assert ax.get_ylim()[0] < ax.get_ylim()[1]
    assert ax.get_xlim()[0] < ax.get_xlim()[1]


def test_confidence_figure_fixed_limits():
    conf = np.full((3, 4), 0.5)
    fig = confidence_figure(conf, np.arange(4.0), np.arange(3.0), title="c")
    assert len(fig.axes) == 2
    mesh = next(c for c in fig.axes[0].collections if isinstance(c, QuadMesh))
    assert mesh.get_clim() == (0.0, 1.0)


def test_class_map_legend_lists_present_classes():
    ny, nx = 3, 4
    labels = np.array([[0, 0, 3, 3], [7, 7, 3, 0], [7, 0, 0, 0]])
    fig = class_map_figure(coded_cells(ny, nx), labels, np.arange(4.0), np.arange(3.0), CLASS_NAMES)
    legend = fig.axes[0].get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["class0", "class3", "class7"]


def test_class_map_rejects_out_of_range_labels():
    labels = np.full((3, 4), 10)
    with pytest.raises(AtlasError):
        class_map_figure(coded_cells(3, 4), labels, np.arange(4.0), np.arange(3.0), CLASS_NAMES)


def test_embedding_scatter_legend_and_extent():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(50, 2))
    labels = rng.choice([1, 4, 8], size=50)
    fig = embedding_scatter(emb, labels, CLASS_NAMES, extent=(-3.0, 3.0, -2.0, 2.5), title="e")
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["class1", "class4", "class8"]
    rects = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() == "grid-extent"]
    assert len(rects) == 1
    r = rects[0]
    assert r.get_xy() == (-3.0, -2.0)
    assert r.get_width() == pytest.approx(6.0) and r.get_height() == pytest.approx(4.5)
    assert r.get_linestyle() == "--"
    assert "z" in ax.get_xlabel() and "z" in ax.get_ylabel()


def test_embedding_scatter_without_extent_has_no_rectangle():
    rng = np.random.default_rng(2)
    fig = embedding_scatter(rng.normal(size=(50, 2)), rng.integers(0, 10, 50), CLASS_NAMES)
    assert not [p for p in fig.axes[0].patches if p.get_gid() == "grid-extent"]


def test_class_share_bars_patch_count():
    k = 10
    rng = np.random.default_rng(3)
    shares = {"VAE": rng.dirichlet(np.ones(k)), "AE": rng.dirichlet(np.ones(k))}
    fig = class_share_bars(shares, CLASS_NAMES)
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * k
    assert sum(len(c) for c in ax.containers) == 2 * k
    assert ax.get_ylabel() == "share of grid cells"
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["VAE", "AE"]
    heights = sorted(p.get_height() for p in ax.patches)
    np.testing.assert_allclose(heights, sorted(np.concatenate(list(shares.values()))))


def test_class_share_bars_rejects_wrong_length():
    with pytest.raises(AtlasError):
        class_share_bars({"VAE": np.ones(3)}, CLASS_NAMES)


def test_figure_png_bytes():
    fig = mosaic_figure(coded_cells(3, 4), np.arange(4.0), np.arange(3.0))
    png = figure_png_bytes(fig, dpi=50)
    assert png.startswith(b"\x89PNG")
    assert len(png) > 100


def test_analysis_plots_does_not_import_torch():
    code = "import sys, analysis.plots; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_long_titles_wrap_inside_the_figure():
    """A long model or plane name is wrapped, not cut off at the figure's edges."""
    from latent_atlas.analysis.plots import mosaic_figure, title_text

    title = "my-very-long-model-folder-name-from-a-sweep: linear 21×21 over PC1 × PC2 (fixed: mean)"
    assert title_text("short") == "short"
    assert all(len(line) <= 60 for line in title_text(title).splitlines())
    assert title_text(title).replace("\n", " ") == title
    fig = mosaic_figure(coded_cells(3, 3), np.linspace(-4, 4, 3), np.linspace(-4, 4, 3), title)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    box = fig.axes[0].title.get_window_extent(canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width  # the whole title is on the figure


def test_a_square_class_map_is_not_taller_than_its_mosaic():
    """The legend sits beside the mosaic: the figure's height follows the mosaic's width, so a
    square grid fills the height (it was 7.5 × 8.1 in, mostly empty above and below)."""
    from latent_atlas.analysis.plots import class_map_figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    rng = np.random.default_rng(0)
    x = np.linspace(-4, 4, 21)
    fig = class_map_figure(rng.random((21, 21, 1, 8, 8)), rng.integers(0, 10, (21, 21)), x, x,
                           [f"c{k}" for k in range(10)], "classes")  # fmt: skip
    FigureCanvasAgg(fig).draw()
    width, height = fig.get_size_inches()
    box = fig.axes[0].get_window_extent()
    assert height < 0.9 * width
    assert box.height / (height * fig.dpi) > 0.8  # the mosaic, not white space, fills it
    assert abs(box.width - box.height) < 0.02 * box.width  # still square cells
