"""Known-answer tests of the figures drawn straight into pixels (analysis.raster)."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from latent_atlas.analysis import raster
from latent_atlas.toolkit.errors import AtlasError
from PIL import Image

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def _decoded(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _box(img: np.ndarray, rgb: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the pixels of exactly ``rgb`` (bottom/right exclusive)."""
    rows, cols = np.nonzero((img == rgb).all(axis=2))
    assert rows.size, f"no pixel of {rgb}"
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


def test_mosaic_first_row_at_the_bottom_and_whole_pixels():
    # 2×2 grid of 7×7 RGB cells, one pure colour each: cells[i, j] at (x[j], y[i])
    colours = {(0, 0): RED, (0, 1): GREEN, (1, 0): BLUE, (1, 1): YELLOW}
    cells = np.zeros((2, 2, 3, 7, 7))
    for (i, j), rgb in colours.items():
        cells[i, j] = np.array(rgb)[:, None, None] / 255.0
    img = _decoded(raster.mosaic_png(cells, [0.0, 1.0], [0.0, 1.0], "t"))
    scale = -(-raster.MOSAIC_PX[0] // 14)  # 14 px enlarged by a whole factor to >= 400 px
    red, green, blue, yellow = (_box(img, c) for c in (RED, GREEN, BLUE, YELLOW))
    for top, bottom, left, right in (red, green, blue, yellow):
        assert (bottom - top, right - left) == (7 * scale, 7 * scale)
    assert red[0] == blue[1] and red[2] == blue[2]  # row 0 under row 1 (z₁ upward)
    assert green[2] == red[3] and green[0] == red[0]  # column 1 right of column 0
    assert yellow[0] == blue[0] and yellow[2] == green[2]


def test_large_mosaic_is_shrunk_below_the_cap():
    cells = np.random.default_rng(0).random((40, 40, 28, 28))
    img = _decoded(raster.mosaic_png(cells, np.arange(40.0), np.arange(40.0)))
    assert img.shape[1] < raster.MOSAIC_PX[1] + 200  # 1120 px of cells shown at 900


def test_class_tint_is_the_alpha_blend_of_the_class_colour():
    cells = np.zeros((1, 2, 1, 3, 3))  # black cells
    mixed = raster._tinted_mosaic(cells, np.array([[2, 11]]))  # class 11 cycles to colour 1
    want = np.rint(raster.OVERLAY_ALPHA * raster.TAB10[[2, 1]].astype(float))
    assert (mixed[0, 0] == want[0]).all() and (mixed[0, 5] == want[1]).all()


def test_tab10_is_matplotlibs_class_palette():
    want = np.rint(np.array(matplotlib.colormaps["tab10"].colors) * 255)
    assert (raster.TAB10 == want).all()


def test_map_cells_keep_their_latent_widths_on_a_non_uniform_grid():
    # centres 0, 1, 3: edges -0.5, 0.5, 2, 4 → widths 1, 1.5, 2 (of 4.5)
    rgb = np.array([[RED, GREEN, BLUE]], np.uint8)
    image, x_axis, y_axis = raster.map_image(rgb, np.array([0.0, 1.0, 3.0]), np.array([0.0]),
                                             ("a", "b"), size=450)  # fmt: skip
    row = image[0]
    widths = [int((row == c).all(axis=1).sum()) for c in (RED, GREEN, BLUE)]
    assert widths == [100, 150, 200]
    # a tick at latent 2 sits on the edge between the green and the blue cell
    assert dict((s, p) for p, s in x_axis.ticks)["2"] == pytest.approx(250)
    assert x_axis.label == "a" and y_axis.label == "b"


def test_heatmap_nan_cells_are_blank_and_limits_fixed():
    vals = np.array([[0.0, np.nan], [1.0, 0.5]])
    rgb = raster._coloured(vals, "viridis", 0.0, 1.0)
    lut = raster._lut("viridis")
    assert tuple(rgb[0, 1]) == raster.BLANK
    assert (rgb[0, 0] == lut[0]).all() and (rgb[1, 0] == lut[255]).all()
    assert (rgb[1, 1] == lut[128]).all()  # 0.5 · 255 = 127.5 rounds to even 128
    png = raster.heatmap_png(vals, [0.0, 1.0], [0.0, 1.0], "t", "label", "viridis", 0.0, 1.0)
    assert _decoded(png).shape[0] > 100


def test_nice_ticks():
    assert raster._nice_ticks(0.0, 1.0) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert raster._nice_ticks(0.013, 2.4) == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert str(raster._nice_ticks(-0.1, 0.1)[2]) == "0.0"  # not -0.0
    assert raster._nice_ticks(3.0, 3.0) == [3.0]  # a flat map: one tick


def test_atlas_pale_where_unsure_and_checked():
    labels = np.array([[0, 1], [0, 0]])
    conf = np.array([[0.9, 0.2], [0.9, 0.9]])
    ok = np.zeros((2, 2))
    png = raster.atlas_png(labels, conf, ok, ok, [0.0, 1.0], [0.0, 1.0], ["a", "b"], "t")
    img = _decoded(png)
    pale = tuple(int(v) for v in np.rint(0.5 * raster.TAB10[1] + 127.5))
    assert (img == pale).all(axis=2).any() and (img == tuple(raster.TAB10[0])).all(axis=2).any()
    with pytest.raises(AtlasError, match="brightness"):
        raster.atlas_png(labels, conf, np.full((2, 2), 1.5), ok, [0.0, 1.0], [0.0, 1.0],
                         ["a", "b"])  # fmt: skip


def test_as_written_draws_the_last_column_only_with_z2_down():
    cells = np.zeros((3, 3, 3, 4, 4))
    cells[:, :] = np.array(YELLOW)[:, None, None] / 255.0  # never drawn
    for i, rgb in enumerate((RED, GREEN, BLUE)):
        cells[i, 2] = np.array(rgb)[:, None, None] / 255.0
    img = _decoded(raster.as_written_png(cells, [0.0, 1.0, 2.0], [-4.0, 0.0, 4.0], "t"))
    red, green, blue = (_box(img, c) for c in (RED, GREEN, BLUE))
    assert red[1] == green[0] and green[1] == blue[0]  # row 0 (z₁ = −4) at the top
    assert red[2] == green[2] == blue[2] and red[3] - red[2] == red[1] - red[0]
    assert not (img == YELLOW).all(axis=2).any()


def _near(img: np.ndarray, rgb: np.ndarray, tol: int = 1) -> np.ndarray:
    """Pixels within ``tol`` of ``rgb`` in every channel: a boolean ``[h, w]``."""
    return (np.abs(img.astype(int) - np.asarray(rgb, int)) <= tol).all(axis=2)


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(mask)
    assert rows.size, "no such pixel"
    return float(rows.mean()), float(cols.mean())


def _over_white(k: int) -> np.ndarray:
    """Class k's colour at POINT_ALPHA over white: a lone point's pixels."""
    a = raster.POINT_ALPHA
    return np.rint(a * raster.TAB10[k] + (1 - a) * 255.0)


def test_scatter_points_sit_at_their_coordinates_in_equal_units():
    # classes 1, 2, 3 at (0, 0), (1, 0) and (0, 1): one latent unit is the same number of
    # pixels across as up, z₂ grows upward, and each lone point is its colour half over white
    emb = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    img = _decoded(raster.scatter_png(emb, [1, 2, 3], list("abcd"), extent=(-1.0, 3.0, -1.0, 1.5)))
    (r0, c0), (r1, c1), (r2, c2) = (_centroid(_near(img, _over_white(k))) for k in (1, 2, 3))
    assert abs(r1 - r0) < 0.6 and abs(c2 - c0) < 0.6  # same row / same column
    assert c1 - c0 > 60 and r0 - r2 > 60  # right of it, above it
    assert abs((c1 - c0) - (r0 - r2)) <= 1.0  # equal units
    assert not _near(img, _over_white(0)).any()  # class 0 is absent: no point of its colour


def test_scatter_draws_in_data_order_the_extent_dashed_and_the_classes_present():
    # two points at one place: the second is blended over the first (no class drawn last)
    img = _decoded(raster.scatter_png([[0.0, 0.0], [0.0, 0.0]], [0, 1], ["a", "b", "c"],
                                      extent=(-2.0, 2.0, -2.0, 2.0)))  # fmt: skip
    a = raster.POINT_ALPHA
    both = np.rint(a * raster.TAB10[1] + (1 - a) * (a * raster.TAB10[0] + (1 - a) * 255.0))
    assert _near(img, both, tol=2).sum() >= 4
    # the legend: a swatch of each class present (a, b), none for c
    for k, present in ((0, True), (1, True), (2, False)):
        assert (img == raster.TAB10[k]).all(axis=2).any() == present
    # the dashed box: a row of black runs with gaps, around the points
    rows = [r for r in range(img.shape[0]) if (img[r] == 0).all(axis=1).sum() > 100]
    assert rows, "no long black row: the frame or the box is missing"
    box_top = [r for r in rows if np.diff(np.flatnonzero((img[r] == 0).all(axis=1))).max() > 2]
    assert box_top, "the extent's edge is not dashed"
    with pytest.raises(AtlasError, match="extent"):
        raster.scatter_png([[0.0, 0.0]], [0], ["a"], extent=(1.0, 1.0, 0.0, 1.0))
    with pytest.raises(AtlasError, match="labels"):
        raster.scatter_png([[0.0, 0.0]], [3], ["a", "b"])


def _run(row: np.ndarray) -> int:
    """The longest run of True in a 1-D boolean array."""
    best = cur = 0
    for v in row.tolist():
        cur = cur + 1 if v else 0
        best = max(best, cur)
    return best


def test_share_bars_lengths_are_the_shares_and_models_keep_their_colours():
    img = _decoded(raster.share_bars_png({"A": [0.5, 0.25], "B": [0.0, 0.5]}, ["x", "y"]))
    c0, c1 = (tuple(int(v) for v in raster.TAB10[m]) for m in (0, 1))
    is0, is1 = (img == c0).all(axis=2), (img == c1).all(axis=2)
    a_rows = np.flatnonzero(is0.sum(axis=1) > 20)  # rows of bars, not of the legend's swatch
    b_rows = np.flatnonzero(is1.sum(axis=1) > 20)
    # model A: class x's bar first (at the top), twice as long as class y's
    split = np.flatnonzero(np.diff(a_rows) > 1)
    assert len(split) == 1
    top_a, low_a = a_rows[: split[0] + 1], a_rows[split[0] + 1 :]
    long, short = _run(is0[top_a[0]]), _run(is0[low_a[0]])
    assert len(top_a) == len(low_a) == raster.BAR_ROW_PX
    assert abs(long - 2 * short) <= 1
    assert abs(long - raster.BARS_PX / (1 + raster.MARGIN)) <= 1  # the longest: near the end
    # model B: a share of 0 draws nothing; its one bar (class y, below A's) as long as A's x
    assert np.diff(b_rows).max() == 1 and b_rows.min() > top_a.max()
    assert abs(_run(is1[b_rows[0]]) - long) <= 1
    for bad, match in (({"A": [0.5]}, "shape"), ({"A": [-0.1, 0.2]}, ">= 0"),
                       ({"A": [np.nan, 0.2]}, ">= 0"), ({}, "empty")):  # fmt: skip
        with pytest.raises(AtlasError, match=match):
            raster.share_bars_png(bad, ["x", "y"])


def test_scatters_of_different_spreads_are_drawn_the_same_size():
    # two models side by side in a report: a wide and a tall cloud give pictures of one size
    # (captions in a row line up), each still in equal units
    rng = np.random.default_rng(0)
    wide = rng.normal(size=(300, 2)) * [4.0, 0.5]
    tall = rng.normal(size=(300, 2)) * [0.5, 4.0]
    labels = np.arange(300) % 3
    sizes = {Image.open(io.BytesIO(raster.scatter_png(e, labels, list("abc")))).size
             for e in (wide, tall)}  # fmt: skip
    assert len(sizes) == 1


def test_share_bars_of_zero_shares_get_an_axis_to_one(monkeypatch):
    spans = []
    real = raster._data_axis

    def axis(label, edges, px):
        spans.append(float(edges[-1]))
        return real(label, edges, px)

    monkeypatch.setattr(raster, "_data_axis", axis)
    img = _decoded(raster.share_bars_png({"A": [0.0, 0.0]}, ["x", "y"]))
    assert spans == [pytest.approx(1.0 + raster.MARGIN)]  # not 1e-12: ticks 0 … 1
    bars = (img == tuple(int(v) for v in raster.TAB10[0])).all(axis=2).sum(axis=1)
    assert bars.max() < 20  # no bar drawn, only the legend's swatch
