"""The seed's figure as its loop drew it: one column per row, z₁ = −4 at the top."""

from __future__ import annotations

import numpy as np
import pytest
from latent_atlas.analysis.seed_figure import (
    as_written_mosaic,
    drawn_cells,
    seed_loop,
    written_column,
    written_mask,
)
from latent_atlas.toolkit.errors import AtlasError


class Decoder:
    """A decoder whose every pixel tells where it was decoded and where in the image it is:
    channel k, pixel (r, c) of the image at (z₀, z₁) is
    0.5 + 0.05·z₀ + 0.01·z₁ + 0.001·r + 0.0001·c + 0.00001·k."""

    def __init__(self, shape=(1, 28, 28)):
        self.shape = shape
        self.calls = 0

    def __call__(self, z: np.ndarray) -> np.ndarray:
        self.calls += 1
        z1, z2 = (float(v) for v in z.reshape(-1))
        c, h, w = self.shape
        k, r, col = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
        return (0.5 + 0.05 * z1 + 0.01 * z2 + 1e-3 * r + 1e-4 * col + 1e-5 * k)[None].astype(
            np.float32
        )

    def grid(self, x, y) -> np.ndarray:
        """The correct grid: cells[i, j] decoded at (x[j], y[i])."""
        return np.stack(
            [np.stack([self(np.array([[xj, yi]], np.float32))[0] for xj in x]) for yi in y]
        ).astype(np.float32)


SEED = np.linspace(-4, 4, 21)


def test_the_seed_grid_as_written():
    dec = Decoder()
    cells = dec.grid(SEED, SEED)
    assert cells.shape == (21, 21, 1, 28, 28)
    image = as_written_mosaic(cells)
    assert image.shape == (588, 588, 1)
    # twenty black columns of cells: pixel columns 0–559 are 0.0 in every row
    assert not image[:, :560].any()
    assert (image[:, 560:] > 0).all()
    # the top block row is z₁ = −4 (imshow draws array row 0 at the top), z₀ = 4
    np.testing.assert_array_equal(image[:28, 560:, 0], cells[0, 20, 0])
    assert image[0, 560, 0] == pytest.approx(0.5 + 0.05 * 4 + 0.01 * -4)
    assert image[587, 560, 0] == pytest.approx(0.5 + 0.05 * 4 + 0.01 * 4 + 1e-3 * 27)
    # the figure's z₁ grows downward: the brightness rises row by row along the drawn column
    rows = image[:, 560:, 0].reshape(21, 28, 28).mean(axis=(1, 2))
    assert (np.diff(rows) > 0).all()


def test_the_literal_loop_agrees_and_decodes_every_cell():
    dec = Decoder()
    cells = dec.grid(SEED, SEED)
    loop_dec = Decoder()
    looped = seed_loop(loop_dec, SEED, SEED)
    np.testing.assert_array_equal(looped, as_written_mosaic(cells))
    assert loop_dec.calls == 441  # all 21 × 21 decoded, 21 drawn


def test_drawn_cells_and_mask():
    cells = Decoder().grid(SEED, SEED)
    drawn = drawn_cells(cells)
    assert drawn.shape == (21, 1, 28, 28)
    np.testing.assert_array_equal(drawn[0], cells[0, 20])  # top of the figure: z₁ = −4
    mask = written_mask(21, 21)
    assert mask.sum() == 21 and mask[:, 20].all() and not mask[:, :20].any()


def test_rgb_and_a_wide_grid():
    # 3 rows × 5 columns of 3×4×6 images: len(xx) is 3 (the rows), so column 2 is written
    dec = Decoder((3, 4, 6))
    x, y = np.linspace(-1, 1, 5), np.linspace(-2, 2, 3)
    cells = dec.grid(x, y)
    assert written_column(3, 5) == 2
    image = as_written_mosaic(cells)
    assert image.shape == (12, 30, 3)
    np.testing.assert_array_equal(image, seed_loop(Decoder((3, 4, 6)), x, y, (3, 4, 6)))
    np.testing.assert_array_equal(image[4:8, 12:18], cells[1, 2].transpose(1, 2, 0))
    assert not image[:, :12].any() and not image[:, 18:].any()


def test_a_tall_grid_fails_like_the_seed():
    x, y = np.linspace(-1, 1, 3), np.linspace(-1, 1, 4)
    with pytest.raises(IndexError):
        seed_loop(Decoder((1, 2, 2)), x, y, (1, 2, 2))
    with pytest.raises(AtlasError, match="more rows than columns"):
        as_written_mosaic(Decoder((1, 2, 2)).grid(x, y))


def test_cells_shape_is_checked():
    with pytest.raises(AtlasError, match=r"expected \[ny, nx, C, H, W\]"):
        as_written_mosaic(np.zeros((21, 21, 28, 28)))


def test_as_written_measures_known_answer():
    from latent_atlas.analysis.seed_figure import as_written_map, as_written_metrics

    # 3 rows × 4 columns; the loop draws column 2 (= ny − 1), z₀ = x[2] = 0.4
    x, y = np.array([-0.4, 0.0, 0.4, 0.8]), np.array([-1.0, 0.0, 1.0])
    bmap = np.array([[0.1, 0.2, 0.6, 0.9], [0.3, 0.3, 0.2, 0.3], [0.9, 0.9, 0.04, 0.9]])
    labels = np.array([[1, 1, 2, 1], [0, 0, 2, 0], [0, 0, 1, 0]])
    conf = np.array([[0.9, 0.9, 0.4, 0.9], [0.9, 0.9, 0.8, 0.9], [0.9, 0.9, 0.7, 0.9]])
    drawn = as_written_map(bmap)
    assert drawn.tolist() == [[0, 0, 0.6, 0], [0, 0, 0.2, 0], [0, 0, 0.04, 0]]
    m = as_written_metrics(bmap, labels, conf, x, y, ("a", "b", "c"), top_rows=2,
                           gradient_threshold=0.25)  # fmt: skip
    assert (m.column, m.z1, m.drawn_cells) == (2, 0.4, 3)
    assert m.shares == {"a": 0.0, "b": pytest.approx(1 / 3), "c": pytest.approx(2 / 3)}
    assert m.classes_present == 2 and m.ambiguous_share == pytest.approx(1 / 3)
    assert m.brightness_top_down == [0.6, 0.2, 0.04]
    # top two rows of the drawn figure: black, black, 0.6 | 0.2, black; spacing 0.4. np.gradient
    # along z₀ in row 0: 0, 0.6/0.8, 0, −0.6/0.4 (central inside, one-sided at the ends)
    assert m.top_rows.max_abs_d_dz1 == pytest.approx(1.5)
    assert m.top_rows.max_row_brightness_range == pytest.approx(0.6)
    assert m.top_rows.stark_share_d_dz1 == pytest.approx(3 / 8)  # 0.75, 1.5 and 0.5 of 8


def test_as_written_figure_draws_the_loop_s_image():
    from latent_atlas.analysis.plots import as_written_figure, figure_png_bytes

    cells = Decoder().grid(SEED, SEED)
    fig = as_written_figure(cells, SEED, SEED, "AE as drawn")
    (ax,) = fig.axes
    (img,) = ax.get_images()
    np.testing.assert_array_equal(img.get_array(), as_written_mosaic(cells)[..., 0])
    assert img.origin == "upper"  # array row 0 (z₁ = −4) at the top, as the seed's imshow
    assert [t.get_text() for t in ax.get_yticklabels()][0] == "-4"
    assert figure_png_bytes(fig).startswith(b"\x89PNG")
