"""Brightness and smoothness of a decoded latent grid.

Grid convention: ``cells`` is ``[ny, nx, H, W]`` (or ``[ny, nx, C, H, W]``: brightness is the
mean over pixels and channels) with pixel values in [0, 1]; ``x`` holds
the ``nx`` z1 coordinates and ``y`` the ``ny`` z2 coordinates (both strictly increasing,
spacing may be non-uniform); ``cells[i, j]`` is the image decoded at ``(z1=x[j], z2=y[i])``.
Maps are ``[ny, nx]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from latent_atlas.analysis.validation import (
    check_array,
    check_cells,
    check_coords,
    check_float,
    check_int,
)
from numpy.typing import ArrayLike, NDArray

CELLS = ("ny", "nx", "H", "W")
MAP = ("ny", "nx")


def _check_cells(cells: ArrayLike) -> NDArray[np.float64]:
    """Cells with their channels stacked as rows (``[ny, nx, C·H, W]``): every measure here
    averages over all of a cell's values."""
    arr = check_cells(cells)
    return arr.reshape(arr.shape[0], arr.shape[1], -1, arr.shape[4])


def brightness_map(cells: ArrayLike) -> NDArray[np.float64]:
    """Mean pixel value of each decoded cell.

    Parameters
    ----------
    cells : array_like, shape [ny, nx, H, W] or [ny, nx, C, H, W]
        Decoded images, pixel values in [0, 1].

    Returns
    -------
    numpy.ndarray, shape [ny, nx], float64
        Mean brightness per cell (over pixels and channels), in [0, 1].
    """
    arr = _check_cells(cells)
    return arr.mean(axis=(2, 3))


def brightness_gradient(
    bmap: ArrayLike, x: ArrayLike, y: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gradient of a brightness map in latent units.

    Finite differences via ``np.gradient(bmap, y, x)``: second-order central differences
    inside (exact for linear maps, also on non-uniform grids), one-sided at the edges.
    Because the derivative is taken per latent unit, grids of different spacing compare.

    Parameters
    ----------
    bmap : array_like, shape [ny, nx]
        Brightness map, e.g. from :func:`brightness_map`.
    x : array_like, shape [nx]
        z1 coordinates, strictly increasing, ``nx >= 2``.
    y : array_like, shape [ny]
        z2 coordinates, strictly increasing, ``ny >= 2``.

    Returns
    -------
    d_dz1, d_dz2 : numpy.ndarray, shape [ny, nx], float64
        Partial derivatives of brightness along z1 and z2, in brightness per latent unit.
    """
    b = check_array(bmap, "bmap", shape=MAP)
    xs = check_coords(x, "x", b.shape[1])
    ys = check_coords(y, "y", b.shape[0])
    d_dz2, d_dz1 = np.gradient(b, ys, xs)
    return d_dz1, d_dz2


def gradient_magnitude(d_dz1: ArrayLike, d_dz2: ArrayLike) -> NDArray[np.float64]:
    """Euclidean norm of the gradient, element-wise.

    Parameters
    ----------
    d_dz1, d_dz2 : array_like, same shape (usually [ny, nx])
        Partial derivatives, e.g. from :func:`brightness_gradient`.

    Returns
    -------
    numpy.ndarray, same shape, float64
        ``sqrt(d_dz1**2 + d_dz2**2)``, >= 0, in the inputs' units (brightness per latent unit).
    """
    a = check_array(d_dz1, "d_dz1")
    b = check_array(d_dz2, "d_dz2", shape=a.shape)
    return np.hypot(a, b)


def gradient_summary(magnitude: ArrayLike, threshold: float) -> dict[str, float]:
    """Summary statistics of a gradient-magnitude map.

    Parameters
    ----------
    magnitude : array_like, any shape
        Non-negative gradient magnitudes (brightness per latent unit).
    threshold : float
        A cell is "stark" when its magnitude is strictly greater than this.

    Returns
    -------
    dict of str to float
        ``mean``, ``p95`` (95th percentile, linear interpolation), ``max`` (all in the input's
        units), ``stark_share`` (share of cells with magnitude > threshold, in [0, 1]) and
        ``threshold``.
    """
    m = check_array(magnitude, "magnitude", bounds=(0.0, np.inf))
    t = check_float(threshold, "threshold", lo=0.0)
    return {
        "mean": float(m.mean()),
        "p95": float(np.percentile(m, 95)),
        "max": float(m.max()),
        "stark_share": float(np.mean(m > t)),
        "threshold": t,
    }


def top_rows_summary(
    bmap: ArrayLike, d_dz1: ArrayLike, rows: int, threshold: float
) -> dict[str, Any]:
    """How the brightness changes along z₀ in a grid's first ``rows`` rows (the lowest z₁: the
    rows the seed study drew at the top of its figure, "the top rows (0–200)").

    Parameters
    ----------
    bmap : array_like, shape [ny, nx]
        Brightness map (values in [0, 1]).
    d_dz1 : array_like, shape [ny, nx]
        Its derivative along z₀ (:func:`brightness_gradient`), brightness per latent unit.
    rows : int
        How many of the first rows, ``1 <= rows <= ny``.
    threshold : float
        |∂b/∂z₀| above this counts as a stark transition, brightness per latent unit.

    Returns
    -------
    dict
        ``rows``; ``mean_abs_d_dz1`` and ``max_abs_d_dz1`` (brightness per latent unit, >= 0);
        ``stark_share_d_dz1``, the share of those cells above ``threshold`` (in [0, 1]);
        ``max_row_brightness_range``, the widest max − min brightness within one row ([0, 1]).
    """
    b = check_array(bmap, "bmap", shape=MAP)
    d = check_array(d_dz1, "d_dz1", shape=b.shape)
    top = check_int(rows, "rows", lo=1, hi=b.shape[0])
    t = check_float(threshold, "threshold", lo=0.0)
    part = np.abs(d[:top])
    return {
        "rows": top,
        "mean_abs_d_dz1": float(part.mean()),
        "stark_share_d_dz1": float((part > t).mean()),
        "max_row_brightness_range": float(np.ptp(b[:top], axis=1).max()),
        "max_abs_d_dz1": float(part.max()),
    }


def pixel_sensitivity(cells: ArrayLike, x: ArrayLike, y: ArrayLike) -> NDArray[np.float64]:
    """Discrete perceptual path length: how fast the decoded image changes at each cell.

    For each neighbour pair along z1, the rate is the mean absolute pixel difference divided
    by the latent distance ``x[j+1] - x[j]``; likewise along z2 with ``y``. At each cell the
    rates to the neighbours that exist are averaged *per axis* (left/right for z1, up/down for
    z2), and the two axis rates are combined as ``sqrt(r_z1**2 + r_z2**2)``. Averaging per axis
    keeps edge and corner cells (which lack some neighbours) unbiased, and the norm makes the
    result match :func:`gradient_magnitude` for uniformly changing images: if every pixel
    equals ``a*z1 + c*z2`` the sensitivity is ``sqrt(a**2 + c**2)`` everywhere.

    Parameters
    ----------
    cells : array_like, shape [ny, nx, H, W]
        Decoded images, pixel values in [0, 1].
    x : array_like, shape [nx]
        z1 coordinates, strictly increasing, ``nx >= 2``.
    y : array_like, shape [ny]
        z2 coordinates, strictly increasing, ``ny >= 2``.

    Returns
    -------
    numpy.ndarray, shape [ny, nx], float64
        Sensitivity, >= 0, in mean |delta pixel| per latent unit.
    """
    c = _check_cells(cells)
    xs = check_coords(x, "x", c.shape[1])
    ys = check_coords(y, "y", c.shape[0])
    along_z1 = np.abs(np.diff(c, axis=1)).mean(axis=(2, 3)) / np.diff(xs)[None, :]
    along_z2 = np.abs(np.diff(c, axis=0)).mean(axis=(2, 3)) / np.diff(ys)[:, None]
    return np.hypot(_neighbour_mean(along_z1, axis=1), _neighbour_mean(along_z2, axis=0))


def _neighbour_mean(rates: NDArray[np.float64], axis: int) -> NDArray[np.float64]:
    """Per cell, the mean of the pair rates on either side along ``axis`` (one at the edges)."""
    pad = [(0, 0), (0, 0)]
    pad[axis] = (1, 0)
    before = np.pad(rates, pad)  # rate to the previous cell (0 where none)
    pad[axis] = (0, 1)
    after = np.pad(rates, pad)  # rate to the next cell (0 where none)
    n = rates.shape[axis] + 1
    count = np.full(n, 2.0)
    count[[0, -1]] = 1.0
    shape = [1, 1]
    shape[axis] = n
    return (before + after) / count.reshape(shape)


def smoothness_summary(sensitivity: ArrayLike) -> dict[str, float]:
    """Summary statistics of a pixel-sensitivity map.

    Parameters
    ----------
    sensitivity : array_like, any shape
        Non-negative values from :func:`pixel_sensitivity` (mean |delta pixel| per latent unit).

    Returns
    -------
    dict of str to float
        ``mean``, ``std`` (population, ddof=0), ``p95`` (95th percentile, linear
        interpolation) and ``max``, in the input's units.
    """
    s = check_array(sensitivity, "sensitivity", bounds=(0.0, np.inf))
    return {
        "mean": float(s.mean()),
        "std": float(s.std()),
        "p95": float(np.percentile(s, 95)),
        "max": float(s.max()),
    }
