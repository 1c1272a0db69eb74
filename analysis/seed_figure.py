"""The seed study's figure as its loop really drew it.

The seed (``shared/seeds/000_*.txt``) decodes a 21×21 grid over [-4, 4]² one cell at a time::

    xx, yy = np.meshgrid(x, y)
    latent_image = np.zeros((21*28, 21*28))
    for j in reversed(range(len(yy))):
        for i in range(len(xx)):
            z = [xx[j, i], yy[j, i]]  ...  image = dec(z)
            row_start, row_end, col_start, col_end = j*28, (j+1)*28, i*28, (i+1)*28
        latent_image[row_start:row_end, col_start:col_end] = image
    plt.imshow(latent_image, cmap='gray')

The assignment sits after the inner loop, so each row ``j`` writes only the cell of the inner
loop's last ``i`` — the last column, z₀ = x[-1] = 4 — and the other twenty columns stay 0.0
(black). ``imshow`` draws array row 0 at the top, so the top block row is j = 0, z₁ = y[0] = −4:
z₁ grows downward. Two more details of the code as written: ``len(xx)`` is the number of *rows*
of the meshgrid, so on a grid that is not square the inner loop runs ``ny`` times (the written
column is ``ny − 1``, and a grid with more rows than columns fails with an IndexError); and
every one of the ``ny · nx`` cells is decoded although only ``ny`` of them are drawn.

:func:`as_written_mosaic` builds that figure from correctly decoded cells; :func:`seed_loop`
reproduces the loop itself through a decode callable (kept apart, so a test can show that both
agree). The correct grid lives elsewhere (``plots.mosaic_image``: z₁ increasing upward, every
cell drawn).

Arrays follow the grid convention: ``cells[i, j]`` is the image decoded at
``(z₀ = x[j], z₁ = y[i])``, ``x`` and ``y`` increasing, images ``[C, H, W]`` in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from latent_atlas.analysis import brightness as br
from latent_atlas.analysis import classes as cl
from latent_atlas.analysis.results import AsWrittenMetrics, SeedTopRows
from latent_atlas.analysis.validation import check_array, check_labels
from latent_atlas.toolkit.errors import AtlasError
from numpy.typing import ArrayLike


def _cells(cells: ArrayLike) -> np.ndarray:
    arr = np.asarray(cells)
    if arr.ndim != 5:
        raise AtlasError(f"cells: shape {arr.shape}, expected [ny, nx, C, H, W]")
    if min(arr.shape) < 1:
        raise AtlasError(f"cells: shape {arr.shape}, expected no empty axis")
    return arr


def written_column(ny: int, nx: int) -> int:
    """The one column the seed's loop writes in every row: its inner loop's last index.

    ``range(len(xx))`` counts the meshgrid's rows, so the column is ``ny − 1`` (= ``nx − 1``
    on the seed's square grid). With more rows than columns the seed's code fails.
    """
    if ny > nx:
        raise AtlasError(
            f"grid of {ny} rows × {nx} columns: the seed's loop runs its column index over "
            "len(xx), the number of rows, and fails on a grid with more rows than columns"
        )
    return ny - 1


def drawn_cells(cells: ArrayLike) -> np.ndarray:
    """The cells the as-written figure shows, top block row first.

    Parameters
    ----------
    cells : array_like, shape (ny, nx, C, H, W)
        The correctly decoded grid.

    Returns
    -------
    numpy.ndarray, shape (ny, C, H, W)
        ``out[r]`` is the image in block row ``r`` counted from the top of the figure:
        ``cells[r, written_column(ny, nx)]``, i.e. z₁ = y[r] (the lowest z₁ at the top).
    """
    arr = _cells(cells)
    ny, nx = arr.shape[:2]
    return arr[:, written_column(ny, nx)].copy()


def written_mask(ny: int, nx: int) -> np.ndarray:
    """``bool [ny, nx]`` in figure order (row 0 at the top): True for the cells the seed's
    loop wrote, False for the ones left black."""
    mask = np.zeros((ny, nx), dtype=bool)
    mask[:, written_column(ny, nx)] = True
    return mask


def as_written_mosaic(cells: ArrayLike) -> np.ndarray:
    """The seed's figure (``latent_image``) as its code draws it, from correctly decoded cells.

    Parameters
    ----------
    cells : array_like, shape (ny, nx, C, H, W)
        The correctly decoded grid, values in [0, 1].

    Returns
    -------
    numpy.ndarray, shape (ny·H, nx·W, C), float32
        Image rows counted from the top as ``imshow`` draws them: block row ``r`` (pixel rows
        ``r·H … (r+1)·H − 1``) holds ``cells[r, c]`` in block column ``c = written_column``
        (``nx − 1`` for a square grid); every other pixel is 0.0. For the seed's 21×21 grid of
        28×28 images, pixel columns 0–559 are 0.0 in every row.
    """
    arr = _cells(cells)
    ny, nx, c, h, w = arr.shape
    col = written_column(ny, nx)
    image = np.zeros((ny * h, nx * w, c), dtype=np.float32)
    for r in range(ny):
        image[r * h : (r + 1) * h, col * w : (col + 1) * w] = arr[r, col].transpose(1, 2, 0)
    return image


def seed_loop(
    decode: Callable[[np.ndarray], ArrayLike],
    x: ArrayLike,
    y: ArrayLike,
    image_shape: tuple[int, int, int] = (1, 28, 28),
) -> np.ndarray:
    """The seed's loop, statement for statement (numpy in place of torch).

    Parameters
    ----------
    decode : callable
        ``decode(z)`` with ``z`` float32 ``[1, 2]`` returns the decoded image (anything that
        reshapes to ``image_shape``), like the seed's ``dec(z)``.
    x, y : array_like, shapes (nx,) and (ny,)
        The z₀ and z₁ values (the seed: ``np.linspace(-4, 4, 21)`` each).
    image_shape : (C, H, W), default (1, 28, 28)

    Returns
    -------
    numpy.ndarray, shape (ny·H, nx·W, C), float32
        ``latent_image`` as the seed's ``imshow`` receives it (one channel axis added).
    """
    c, h, w = image_shape
    xx, yy = np.meshgrid(np.asarray(x, np.float64), np.asarray(y, np.float64))
    latent_image = np.zeros((len(yy) * h, len(xx[0]) * w, c), dtype=np.float32)
    row_start = row_end = col_start = col_end = 0
    image = np.zeros((h, w, c), dtype=np.float32)
    for j in reversed(range(len(yy))):
        for i in range(len(xx)):
            z = np.array([xx[j, i], yy[j, i]], dtype=np.float32).reshape(1, 2)
            output = decode(z)
            image = np.asarray(output, dtype=np.float32).reshape(c, h, w).transpose(1, 2, 0)
            row_start = j * h
            row_end = (j + 1) * h
            col_start = i * w
            col_end = (i + 1) * w
        # the seed's indentation: after the inner loop, once per row
        latent_image[row_start:row_end, col_start:col_end] = image
    return latent_image


def as_written_map(values: ArrayLike, fill: float = 0.0) -> np.ndarray:
    """A per-cell map ``[ny, nx]`` (brightness, class, confidence…) of the figure as drawn:
    the written column's values, ``fill`` everywhere else.

    Row ``i`` is z₁ = y[i] in both the grid and the as-written figure (whose top row is
    y[0]), so the rows stay where they are; only the unwritten columns change.
    """
    arr = check_array(values, "values", shape=("ny", "nx"))
    out = np.full(arr.shape, fill, dtype=np.float64)
    col = written_column(*arr.shape)
    out[:, col] = arr[:, col]
    return out


def as_written_metrics(
    bmap: ArrayLike,
    labels: ArrayLike | None,
    confidence: ArrayLike | None,
    x: ArrayLike,
    y: ArrayLike,
    class_names: Sequence[str],
    top_rows: int,
    gradient_threshold: float,
    min_class_share: float = 0.01,
    ambiguity_threshold: float = 0.5,
) -> AsWrittenMetrics:
    """The seed study's measures on the figure its loop drew.

    Parameters
    ----------
    bmap : array_like, shape [ny, nx]
        Mean brightness of each correctly decoded cell, in [0, 1].
    labels : array_like of int, shape [ny, nx], or None
        Class of each cell (None: no classes).
    confidence : array_like, shape [ny, nx], or None
        The classifier's max probability per cell (None: no classifier).
    x, y : array_like, shapes [nx] and [ny]
        The z₀ and z₁ coordinates, increasing.
    class_names : sequence of str
        The K class names.
    top_rows : int
        How many of the lowest-z₁ rows the seed's "top rows" cover.
    gradient_threshold : float
        |∂b/∂z₀| above this is a stark transition (brightness per latent unit).
    min_class_share, ambiguity_threshold : float
        As for the correct grid.

    Returns
    -------
    AsWrittenMetrics
        Classes and brightness of the drawn cells only (the black cells show no garment), and
        the top rows measured on the drawn figure's brightness: drawn cell beside black cells,
        so its largest |∂b/∂z₀| is the drawn cell's brightness over one cell spacing.
    """
    b = check_array(bmap, "bmap", shape=("ny", "nx"))
    ny, nx = b.shape
    col = written_column(ny, nx)
    xs = np.asarray(x, dtype=np.float64)
    drawn = as_written_map(b)
    d1, _ = br.brightness_gradient(drawn, xs, y)
    top = SeedTopRows(**br.top_rows_summary(drawn, d1, top_rows, gradient_threshold))
    shares: dict[str, float] = {}
    present = 0
    ambiguous = None
    if labels is not None:
        lab = check_labels(labels, "labels", n_classes=len(class_names), shape=(ny, nx))
        s = cl.class_shares(lab[:, col], len(class_names))
        shares = dict(zip(class_names, s.tolist(), strict=True))
        present = cl.classes_present(s, min_class_share)
    if confidence is not None:
        conf = check_array(confidence, "confidence", shape=(ny, nx))
        ambiguous = cl.ambiguous_share(conf[:, col], ambiguity_threshold)
    return AsWrittenMetrics(
        column=col, z1=float(xs[col]), drawn_cells=ny, shares=shares, classes_present=present,
        ambiguous_share=ambiguous, brightness_top_down=[float(v) for v in b[:, col]],
        top_rows=top,
    )  # fmt: skip
