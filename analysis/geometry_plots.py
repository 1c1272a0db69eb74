"""Figures of a decoder's geometry: metric maps over the latent plane, and image strips along a
straight segment and a geodesic. Arrays in, a :class:`matplotlib.figure.Figure` out (built with
``Figure()``, no pyplot); the grid convention is ``analysis.plots``': ``maps[i, j]`` at
``(x[j], y[i])``, the second coordinate increasing upward."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from latent_atlas.analysis.plots import mosaic_image, plain_text, title_text
from latent_atlas.analysis.validation import check_coords
from latent_atlas.toolkit.errors import AtlasError
from matplotlib.figure import Figure

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


def _extent(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """The outer edges of the cells centred on ``x``, ``y`` (half a step beyond the ends)."""
    hx = (x[1] - x[0]) / 2 if len(x) > 1 else 0.5
    hy = (y[1] - y[0]) / 2 if len(y) > 1 else 0.5
    return float(x[0] - hx), float(x[-1] + hx), float(y[0] - hy), float(y[-1] + hy)


def geometry_maps_figure(
    x: np.ndarray,
    y: np.ndarray,
    magnification: np.ndarray,
    condition: np.ndarray,
    step_x: np.ndarray,
    step_y: np.ndarray,
    labels: tuple[str, str] = ("z₀", "z₁"),
    title: str = "",
    paths: Sequence[tuple[np.ndarray, np.ndarray]] = (),
) -> Figure:
    """Four maps (log magnification, log condition number, step lengths along each axis),
    with each ``(straight, geodesic)`` pair of plane polylines ``[T, 2]`` drawn on the first.

    Parameters
    ----------
    x, y : arrays [nx], [ny]
        Plane coordinates, increasing.
    magnification, condition : arrays [ny, nx]
    step_x : array [ny, nx − 1]
    step_y : array [ny − 1, nx]
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
    fig = Figure(figsize=(10.0, 8.6))
    axes = fig.subplots(2, 2)
    mids_x, mids_y = (xs[1:] + xs[:-1]) / 2, (ys[1:] + ys[:-1]) / 2
    panels = [
        ("magnification", _log10(magnification), xs, ys, "magma"),
        ("condition", _log10(condition), xs, ys, "viridis"),
        ("step_x", np.asarray(step_x, np.float64), mids_x, ys, "cividis"),
        ("step_y", np.asarray(step_y, np.float64), xs, mids_y, "cividis"),
    ]
    for ax, (name, data, px, py, cmap) in zip(axes.ravel(), panels, strict=True):
        im = ax.imshow(data, origin="lower", extent=_extent(px, py), aspect="auto", cmap=cmap,
                       interpolation="nearest")  # fmt: skip
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(title_text(MEASURES[name], 48), fontsize=9)
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
    for k, (straight, path) in enumerate(paths):
        ax = axes[0, 0]
        s, p = np.asarray(straight), np.asarray(path)
        ax.plot(s[:, 0], s[:, 1], "--", color="white", lw=1)
        ax.plot(p[:, 0], p[:, 1], "-", color="cyan", lw=1.5)
        ax.annotate(str(k + 1), p[len(p) // 2], color="cyan", fontsize=9)
    if title:
        fig.suptitle(title_text(title), fontsize=11)
    plain_text(fig).tight_layout()  # before measuring: user text is never mathtext
    return fig


def geodesic_strips_figure(
    strips: Sequence[tuple[str, np.ndarray, np.ndarray, float, float]], title: str = ""
) -> Figure:
    """For each path, two rows of decoded images: along the straight segment and along the
    geodesic, with their image-space lengths.

    Parameters
    ----------
    strips : sequence of (name, straight [T, C, H, W], geodesic [T, C, H, W], straight
        length, geodesic length)
    """
    if not strips:
        raise AtlasError("strips: none given, expected at least one path")
    fig = Figure(figsize=(10.0, 1.5 * 2 * len(strips) + 0.6))
    axes = np.atleast_1d(fig.subplots(2 * len(strips), 1))
    for k, (name, straight, path, s_len, g_len) in enumerate(strips):
        for row, images, what, length in (
            (2 * k, straight, "straight", s_len),
            (2 * k + 1, path, "geodesic", g_len),
        ):
            ax = axes[row]
            cells = np.asarray(images)[None]  # one mosaic row: [1, T, C, H, W]
            picture = mosaic_image(cells)
            ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1,
                      interpolation="nearest")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{k + 1}. {name}: {what}, length {length:.3g}", fontsize=9, loc="left")
    if title:
        fig.suptitle(title_text(title), fontsize=11)
    plain_text(fig).tight_layout()  # before measuring: user text is never mathtext
    return fig
