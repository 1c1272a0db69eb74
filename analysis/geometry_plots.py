"""Figures of a decoder's geometry: metric maps over the latent plane, and image strips along a
straight segment and a geodesic. Arrays in, PNG bytes out (drawn as pictures of arrays by
:mod:`~latent_atlas.analysis.raster`: ~20 ms, where the matplotlib version took ~0.9 CPU s);
the grid convention is ``analysis.plots``': ``maps[i, j]`` at ``(x[j], y[i])``, the second
coordinate increasing upward."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from latent_atlas.analysis import raster
from latent_atlas.analysis.validation import check_cells, check_coords
from latent_atlas.toolkit.errors import AtlasError

# one line per measure: the figure's panel titles and the CLI's --help say the same
MEASURES = {
    "magnification": "log10 magnification √det(JᵀJ): image change per unit latent area",
    "condition": "log10 condition number of JᵀJ: 0 = isotropic, large = stretched one way",
    "step_x": "image distance of one grid step along the first axis",
    "step_y": "image distance of one grid step along the second axis",
}


def _log10(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(v)
    finite = np.isfinite(out)
    if not finite.any():
        return np.zeros_like(out)
    # zeros and infinities (a flat or singular cell) drawn at the finite extremes
    return np.clip(np.nan_to_num(out, nan=0.0), out[finite].min(), out[finite].max())


def geometry_maps_png(
    x: np.ndarray,
    y: np.ndarray,
    magnification: np.ndarray,
    condition: np.ndarray,
    step_x: np.ndarray,
    step_y: np.ndarray,
    labels: tuple[str, str] = ("z₀", "z₁"),
    title: str = "",
    paths: Sequence[tuple[np.ndarray, np.ndarray]] = (),
) -> bytes:
    """Four maps in a 2 × 2 layout (log magnification, log condition number, step lengths
    along each axis), with each ``(straight, geodesic)`` pair of plane polylines ``[T, 2]``
    drawn on the first: the straight segment white, the geodesic cyan.

    Parameters
    ----------
    x, y : arrays [nx], [ny]
        Plane coordinates, increasing.
    magnification, condition : arrays [ny, nx]
    step_x : array [ny, nx − 1]
    step_y : array [ny − 1, nx]

    Returns
    -------
    bytes
        The PNG file.
    """
    xs = check_coords(x, "x", len(np.asarray(x)))
    ys = check_coords(y, "y", len(np.asarray(y)))
    ny, nx = len(ys), len(xs)
    shapes = {"magnification": (ny, nx), "condition": (ny, nx), "step_x": (ny, nx - 1),
              "step_y": (ny - 1, nx)}  # fmt: skip
    values = {"magnification": magnification, "condition": condition, "step_x": step_x,
              "step_y": step_y}  # fmt: skip
    for name, shape in shapes.items():
        if np.shape(values[name]) != shape:
            raise AtlasError(f"{name}: shape {np.shape(values[name])}, expected {list(shape)}")
    mids_x, mids_y = (xs[1:] + xs[:-1]) / 2, (ys[1:] + ys[:-1]) / 2
    lines: list[raster.Line] = []
    for straight, path in paths:
        lines.append((np.asarray(straight), (255, 255, 255), 1))
        lines.append((np.asarray(path), (0, 255, 255), 2))
    panels = [
        raster.heatmap_panel(_log10(magnification), xs, ys, MEASURES["magnification"],
                             "log10", "magma", labels=labels, lines=lines, size=320,
                             marks=[(str(k + 1), *np.asarray(p)[len(p) // 2])
                                    for k, (_, p) in enumerate(paths)]),
        raster.heatmap_panel(_log10(condition), xs, ys, MEASURES["condition"], "log10",
                             "viridis", labels=labels, size=320),
        raster.heatmap_panel(np.asarray(step_x, np.float64), mids_x, ys, MEASURES["step_x"],
                             "image distance", "cividis", labels=labels, size=320),
        raster.heatmap_panel(np.asarray(step_y, np.float64), xs, mids_y, MEASURES["step_y"],
                             "image distance", "cividis", labels=labels, size=320),
    ]  # fmt: skip
    return raster.panels_png([panels[:2], panels[2:]], title)


def geodesic_strips_png(
    strips: Sequence[tuple[str, np.ndarray, np.ndarray, float, float]], title: str = ""
) -> bytes:
    """For each path, two rows of decoded images: along the straight segment and along the
    geodesic, with their image-space lengths.

    Parameters
    ----------
    strips : sequence of (name, straight [T, C, H, W], geodesic [T, C, H, W], straight
        length, geodesic length)

    Returns
    -------
    bytes
        The PNG file (:func:`~latent_atlas.analysis.raster.image_rows_png`).
    """
    if not strips:
        raise AtlasError("strips: none given, expected at least one path")
    rows, labels = [], []
    for k, (name, straight, path, s_len, g_len) in enumerate(strips):
        a, b = check_cells(np.asarray(straight)[None]), check_cells(np.asarray(path)[None])
        if a.shape != b.shape:
            raise AtlasError(
                f"strip {k + 1}: straight {list(a.shape[1:])} and geodesic "
                f"{list(b.shape[1:])} images differ; expected the same count"
            )
        rows += [a[0], b[0]]
        labels += [f"{k + 1}. {name}\nstraight, {s_len:.3g}", f"geodesic, {g_len:.3g}"]
    return raster.image_rows_png(np.stack(rows), labels, title=title)
