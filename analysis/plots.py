"""Figures of a 2-D latent space: decoded mosaics, per-cell maps, embeddings, class shares.

Every function here takes arrays and returns a :class:`matplotlib.figure.Figure`; none loads
a model or a file, and none touches pyplot's global state (figures are built with
``Figure()`` directly, so no backend or window is needed).

Grid convention
---------------
A decoded grid is ``cells``, a float array ``[ny, nx, H, W]`` with values in [0, 1]. ``x`` holds
the z0 coordinates (length ``nx``, strictly increasing, possibly non-uniform) and ``y`` the z1
coordinates (length ``ny``, strictly increasing); ``cells[i, j]`` is the image decoded at
``(z0=x[j], z1=y[i])``. Per-cell maps are ``[ny, nx]`` with the same indexing. In every picture
z1 increases upward: row ``i=0`` (the smallest z1) is drawn at the bottom.
"""

from __future__ import annotations

import io
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from latent_atlas.analysis.raster import cell_edges
from latent_atlas.analysis.validation import check_array, check_cells, check_coords, check_labels
from latent_atlas.toolkit.errors import AtlasError
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.text import Text
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "as_written_figure",
    "atlas_figure",
    "atlas_rgba",
    "class_color",
    "class_map_figure",
    "class_share_bars",
    "confidence_figure",
    "embedding_scatter",
    "figure_png_bytes",
    "heatmap_figure",
    "mark_points",
    "mosaic_figure",
    "mosaic_image",
]

Mark = tuple[str, float, float]  # (label, u, v): a point in plane coordinates

# the default plane's axis labels: latent dims are numbered from 0, as in the flags
Z1_LABEL = "z\u2080"
Z2_LABEL = "z\u2081"
MAX_TICKS = 7
OVERLAY_ALPHA = 0.4


# --------------------------------------------------------------------------- helpers


def class_color(k: int) -> tuple[float, float, float, float]:
    """RGBA colour of class ``k`` (tab10, cycling), shared by every class-coloured figure.

    Parameters
    ----------
    k : int
        Class index.

    Returns
    -------
    tuple of 4 float
        RGBA in [0, 1].
    """
    r, g, b, a = matplotlib.colormaps["tab10"](int(k) % 10)
    return (float(r), float(g), float(b), float(a))


def _check_cells(cells: ArrayLike) -> NDArray[np.float64]:
    """Cells as ``[ny, nx, H, W]`` (grayscale) or ``[ny, nx, H, W, 3]`` (RGB, channels last
    for matplotlib), from ``[ny, nx, H, W]`` or ``[ny, nx, C, H, W]`` with C in (1, 3)."""
    arr = check_cells(cells, bounded=False)
    return arr[:, :, 0] if arr.shape[2] == 1 else arr.transpose(0, 1, 3, 4, 2)


def _check_coords(coords: ArrayLike, n: int, name: str) -> NDArray[np.float64]:
    return check_coords(coords, name, n)


def _check_map(values: ArrayLike, ny: int, nx: int, name: str) -> NDArray[np.float64]:
    # NaN cells are allowed in maps (left blank)
    return check_array(values, name, shape=(ny, nx), finite=False)


def _check_labels(labels: ArrayLike, shape: tuple[int, ...], n_classes: int) -> NDArray[np.int64]:
    return check_labels(labels, "labels", n_classes=n_classes, shape=shape)


def _tick_indices(n: int, max_ticks: int = MAX_TICKS) -> NDArray[np.int_]:
    """A handful of evenly spread indices in ``[0, n)``, always including the first and last."""
    if n <= max_ticks:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_ticks)).astype(int))


def _draw_mosaic(
    ax: Axes,
    cells: NDArray[np.float64],
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    labels: tuple[str, str] = (Z1_LABEL, Z2_LABEL),
) -> None:
    """Draw the mosaic in pixel coordinates with latent-coordinate tick labels.

    The axes' data coordinates are pixels: ``[0, nx*W]`` across and ``[0, ny*H]`` upward, so
    cell ``(i, j)`` occupies ``[j*W, (j+1)*W] x [i*H, (i+1)*H]`` and z1 increases upward.
    """
    ny, nx, h, w = cells.shape[:4]
    ax.imshow(
        _assemble(cells),
        cmap="gray",
        vmin=0.0,
        vmax=1.0,
        origin="upper",
        extent=(0.0, float(nx * w), 0.0, float(ny * h)),
        interpolation="nearest",
    )
    jx = _tick_indices(nx)
    iy = _tick_indices(ny)
    ax.set_xticks(jx * w + w / 2.0, labels=[f"{v:.2g}" for v in x[jx]])
    ax.set_yticks(iy * h + h / 2.0, labels=[f"{v:.2g}" for v in y[iy]])
    _axis_labels(ax, labels)


def _axis_labels(ax: Axes, labels: tuple[str, str]) -> None:
    ax.set_xlabel(plain(labels[0]))
    ax.set_ylabel(plain(labels[1]))


def plain(text: str) -> str:
    """User text shown as itself. Nothing to escape: :func:`plain_text` turns mathtext off
    for every text of a figure before it is drawn (an escaped ``\\$`` would then show its
    backslash)."""
    return str(text)


TITLE_CHARS = 60  # about what a 6-inch-wide figure's title holds on one line


def title_text(text: str, width: int = TITLE_CHARS) -> str:
    """A title as plain text, wrapped onto more lines where it is longer than the figure is
    wide (a long model or plane name was cut off at the figure's edges)."""
    return "\n".join(textwrap.wrap(str(text), width, break_on_hyphens=False)) or str(text)


def _mosaic_figsize(
    cells: NDArray[np.float64], width: float = 6.0, beside: float = 0.0
) -> tuple[float, float]:
    """Figure size (inches) for a mosaic ``width`` wide, ``beside`` of it taken by a legend at
    the side: the height follows the mosaic's own width, not the figure's (a square class map
    with its legend was drawn 7.5 × 8.1 in, tall and mostly empty above and below)."""
    ny, nx, h, w = cells.shape[:4]
    ratio = (ny * h) / (nx * w)
    return (width, float(np.clip((width - beside) * ratio, 2.5, 12.0)) + 0.6)


# --------------------------------------------------------------------------- mosaics


def mosaic_image(cells: ArrayLike) -> NDArray[np.float64]:
    """Assemble a decoded grid into one image with the smallest z1 at the bottom.

    Parameters
    ----------
    cells : array_like, shape (ny, nx, H, W) or (ny, nx, C, H, W), C in (1, 3)
        ``cells[i, j]`` is the image decoded at ``(z0=x[j], z1=y[i])``.

    Returns
    -------
    numpy.ndarray, shape (ny * H, nx * W), or (ny * H, nx * W, 3) for RGB cells
        Image rows are counted from the top as usual, so ``cells[ny - 1, j]`` fills the top
        block row and ``cells[0, j]`` the bottom one: the block at image rows
        ``[(ny - 1 - i) * H, (ny - i) * H)`` and columns ``[j * W, (j + 1) * W)`` is
        ``cells[i, j]``.
    """
    return _assemble(_check_cells(cells))


def _assemble(arr: NDArray[np.float64]) -> NDArray[np.float64]:
    ny, nx, h, w = arr.shape[:4]
    if arr.ndim == 5:  # RGB, channels last
        return arr[::-1].transpose(0, 2, 1, 3, 4).reshape(ny * h, nx * w, arr.shape[4])
    return arr[::-1].transpose(0, 2, 1, 3).reshape(ny * h, nx * w)


def mosaic_figure(
    cells: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    title: str = "",
    labels: tuple[str, str] = (Z1_LABEL, Z2_LABEL),
    marks: Sequence[Mark] = (),
) -> Figure:
    """Gray mosaic of a decoded grid, axes labelled in latent coordinates.

    Parameters
    ----------
    cells : array_like, shape (ny, nx, H, W) or (ny, nx, C, H, W), C in (1, 3)
        Decoded images in [0, 1].
    x : array_like, shape (nx,)
        Increasing z0 coordinates of the columns.
    y : array_like, shape (ny,)
        Increasing z1 coordinates of the rows; ``y[0]`` is drawn at the bottom.
    title : str, optional
        Axes title (plain text).
    labels : (str, str), optional
        Axis labels: what the plane's coordinates are (``z₀``, ``z₁``; ``PC1``, ``PC2``).
    marks : sequence of (str, float, float), optional
        Points ``(label, u, v)`` in plane coordinates to mark (see :func:`mark_points`).

    Returns
    -------
    matplotlib.figure.Figure
        One axes in pixel coordinates; ticks sit at cell centres and are labelled with the
        cells' latent coordinates (``"%.2g"``), a handful per axis, first and last included.
    """
    arr = _check_cells(cells)
    ny, nx = arr.shape[:2]
    xs = _check_coords(x, nx, "x")
    ys = _check_coords(y, ny, "y")
    fig = Figure(figsize=_mosaic_figsize(arr), layout="constrained")
    ax = fig.subplots()
    _draw_mosaic(ax, arr, xs, ys, labels)
    if title:
        ax.set_title(title_text(title))
    return mark_points(fig, marks, xs, ys, arr.shape[2:4]) if marks else fig


def mark_points(
    fig: Figure,
    marks: Sequence[Mark],
    x: ArrayLike,
    y: ArrayLike,
    cell_shape: tuple[int, int] | None = None,
) -> Figure:
    """Mark points of the plane (e.g. the three test images a plane passes through) on the
    figure's first axes: a white-edged black circle and the label beside it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        A figure of this module whose first axes shows the grid.
    marks : sequence of (str, float, float)
        ``(label, u, v)``: plane coordinates ``u`` (along ``x``) and ``v`` (along ``y``).
    x, y : array_like, shapes (nx,), (ny,)
        The grid's increasing coordinates.
    cell_shape : (int, int), optional
        ``(H, W)`` of a cell when the axes are in mosaic pixels (mosaics, class maps): the
        point is placed by interpolating between cell centres; None for axes in plane
        coordinates (heat maps, scatters).

    Returns
    -------
    matplotlib.figure.Figure
        The same figure. A mark outside the grid's range is drawn at its edge, hollow.
    """
    xs, ys = check_array(x, "x", ndim=1), check_array(y, "y", ndim=1)
    ax = fig.axes[0]
    for label, u, v in marks:
        inside = xs[0] <= u <= xs[-1] and ys[0] <= v <= ys[-1]
        if cell_shape is not None:
            h, w = cell_shape
            px = float(np.interp(u, xs, np.arange(len(xs)) * w + w / 2.0))
            py = float(np.interp(v, ys, np.arange(len(ys)) * h + h / 2.0))
        else:
            px, py = float(np.clip(u, xs[0], xs[-1])), float(np.clip(v, ys[0], ys[-1]))
        ax.plot([px], [py], marker="o", markersize=7, markeredgecolor="white",
                markerfacecolor="black" if inside else "none", markeredgewidth=1.5,
                linestyle="", gid=f"mark-{label}")  # fmt: skip
        box = {"boxstyle": "round,pad=0.15", "fc": "black", "alpha": 0.6, "lw": 0}
        ax.annotate(plain(label), (px, py), xytext=(5, 5), textcoords="offset points",
                    color="white", fontsize=9, fontweight="bold", bbox=box)  # fmt: skip
    return fig


def as_written_figure(
    cells: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    title: str = "",
    labels: tuple[str, str] = (Z1_LABEL, Z2_LABEL),
) -> Figure:
    """The seed study's figure as its loop drew it (``seed_figure.as_written_mosaic``).

    Parameters
    ----------
    cells : array_like, shape (ny, nx, H, W) or (ny, nx, C, H, W), C in (1, 3)
        The correctly decoded grid, values in [0, 1] (``cells[i, j]`` at ``(x[j], y[i])``).
    x, y : array_like, shapes (nx,) and (ny,)
        Increasing z0 and z1 coordinates.
    title : str, optional
        Axes title (plain text).
    labels : (str, str), optional
        Axis labels.

    Returns
    -------
    matplotlib.figure.Figure
        ``imshow`` of the seed's ``latent_image`` as the seed called it (array row 0 at the
        top): one drawn column, the rest black, ``y[0]`` at the top. Ticks are labelled with
        the latent coordinates of the cells as drawn, so the reversed z1 axis is visible.
    """
    from latent_atlas.analysis.seed_figure import as_written_mosaic

    arr = check_cells(cells)
    ny, nx, _, h, w = arr.shape
    xs = _check_coords(x, nx, "x")
    ys = _check_coords(y, ny, "y")
    image = as_written_mosaic(arr)
    fig = Figure(figsize=_mosaic_figsize(_check_cells(cells)), layout="constrained")
    ax = fig.subplots()
    shown = image[..., 0] if image.shape[2] == 1 else image
    ax.imshow(shown, cmap="gray", vmin=0.0, vmax=1.0, origin="upper", interpolation="nearest")
    jx, iy = _tick_indices(nx), _tick_indices(ny)
    ax.set_xticks(jx * w + w / 2.0 - 0.5, labels=[f"{v:.2g}" for v in xs[jx]])
    ax.set_yticks(iy * h + h / 2.0 - 0.5, labels=[f"{v:.2g}" for v in ys[iy]])
    _axis_labels(ax, labels)
    if title:
        ax.set_title(title_text(title))
    return fig


def class_map_figure(
    cells: ArrayLike,
    labels: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    class_names: Sequence[str],
    title: str = "",
    labels_xy: tuple[str, str] = (Z1_LABEL, Z2_LABEL),
) -> Figure:
    """Gray (or RGB) mosaic with a semi-transparent class colour over every cell.

    Parameters
    ----------
    cells : array_like, shape (ny, nx, H, W)
        Decoded images in [0, 1].
    labels : array_like of int, shape (ny, nx)
        Class index of each cell, in ``[0, len(class_names))``.
    x : array_like, shape (nx,)
        Increasing z0 coordinates.
    y : array_like, shape (ny,)
        Increasing z1 coordinates; ``y[0]`` is drawn at the bottom.
    class_names : sequence of str, length K
        Name of each class index.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        One axes; the legend lists the names of the classes present in ``labels``, in class
        index order, with their tab10 colours.
    """
    arr = _check_cells(cells)
    ny, nx, h, w = arr.shape[:4]
    xs = _check_coords(x, nx, "x")
    ys = _check_coords(y, ny, "y")
    n_classes = len(class_names)
    lab = _check_labels(labels, (ny, nx), n_classes)

    # the legend (class names) takes about 1.9 in at the right
    fig = Figure(figsize=_mosaic_figsize(arr, width=7.5, beside=1.9), layout="constrained")
    ax = fig.subplots()
    _draw_mosaic(ax, arr, xs, ys, labels_xy)

    palette = np.array([class_color(k) for k in range(n_classes)], dtype=np.float64)
    overlay = palette[lab]  # [ny, nx, 4]
    overlay[..., 3] = OVERLAY_ALPHA
    ax.imshow(
        overlay[::-1],
        origin="upper",
        extent=(0.0, float(nx * w), 0.0, float(ny * h)),
        interpolation="nearest",
    )
    present = np.unique(lab)
    handles = [
        Patch(facecolor=class_color(int(k)), alpha=0.8, label=plain(class_names[int(k)]))
        for k in present
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    if title:
        ax.set_title(title_text(title))
    return fig


# --------------------------------------------------------------------------- per-cell maps


def heatmap_figure(
    values: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    title: str = "",
    colorbar_label: str = "",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    labels: tuple[str, str] = (Z1_LABEL, Z2_LABEL),
) -> Figure:
    """Heat map of a per-cell quantity over the latent grid, in latent coordinates.

    Drawn with ``pcolormesh`` on cell boundaries halfway between neighbouring centres, so a
    non-uniform grid keeps its true geometry; row ``values[0]`` (``z1 = y[0]``) is at the bottom.

    Parameters
    ----------
    values : array_like, shape (ny, nx)
        ``values[i, j]`` belongs to ``(z0=x[j], z1=y[i])``; NaN cells are left blank.
    x : array_like, shape (nx,)
        Increasing z0 coordinates.
    y : array_like, shape (ny,)
        Increasing z1 coordinates.
    title : str, optional
        Axes title.
    colorbar_label : str, optional
        Label of the colour bar.
    cmap : str, optional
        Matplotlib colormap name.
    vmin, vmax : float, optional
        Colour limits; by default the data range.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: the map (``fig.axes[0]``, holding one ``QuadMesh``) and its colour bar.
    """
    vals = check_array(values, "values", ndim=2, finite=False)
    xs = _check_coords(x, vals.shape[1], "x")
    ys = _check_coords(y, vals.shape[0], "y")

    fig = Figure(figsize=(6.4, 5.0), layout="constrained")
    ax = fig.subplots()
    mesh = ax.pcolormesh(
        cell_edges(xs),
        cell_edges(ys),
        np.ma.masked_invalid(vals),
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        shading="flat",
    )
    fig.colorbar(mesh, ax=ax, label=plain(colorbar_label))
    _axis_labels(ax, labels)
    ax.set_aspect("equal", adjustable="box")
    if title:
        ax.set_title(title_text(title))
    return fig


def confidence_figure(
    confidence: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    title: str = "",
    labels: tuple[str, str] = (Z1_LABEL, Z2_LABEL),
) -> Figure:
    """Heat map of per-cell classifier confidence on a fixed [0, 1] colour scale.

    Parameters
    ----------
    confidence : array_like, shape (ny, nx)
        Confidence in [0, 1] of the cell at ``(z0=x[j], z1=y[i])``.
    x : array_like, shape (nx,)
        Increasing z0 coordinates.
    y : array_like, shape (ny,)
        Increasing z1 coordinates.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        As :func:`heatmap_figure`, with colour limits 0 and 1.
    """
    return heatmap_figure(
        confidence,
        x,
        y,
        title=title,
        colorbar_label="classifier confidence",
        cmap="viridis",
        vmin=0.0,
        vmax=1.0,
        labels=labels,
    )


def atlas_rgba(
    labels: ArrayLike, confidence: ArrayLike, n_classes: int, threshold: float = 0.5
) -> NDArray[np.float64]:
    """Class colours of a dense class map, paler where the classifier is unsure.

    Parameters
    ----------
    labels : array_like of int, shape (ny, nx)
        Class index per point, in ``[0, n_classes)``.
    confidence : array_like, shape (ny, nx)
        Max softmax probability per point, in [0, 1].
    n_classes : int
        Number of classes K.
    threshold : float, optional
        Points with confidence below this are mixed half-way with white (ambiguous).

    Returns
    -------
    numpy.ndarray, shape (ny, nx, 4), float64
        RGBA in [0, 1]; the class's tab10 colour, or its half-white tint where ambiguous.
    """
    lab = check_array(labels, "labels", ndim=2, dtype_kind="i", bounds=(0, n_classes - 1))
    conf = check_array(confidence, "confidence", shape=lab.shape, bounds=(0.0, 1.0))
    palette = np.array([class_color(k) for k in range(n_classes)], dtype=np.float64)
    rgba = palette[lab]
    unsure = conf < threshold
    rgba[unsure, :3] = 0.5 * rgba[unsure, :3] + 0.5
    return rgba


def atlas_figure(
    labels: ArrayLike,
    confidence: ArrayLike,
    brightness: ArrayLike,
    gradient: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    class_names: Sequence[str],
    title: str = "",
    labels_xy: tuple[str, str] = (Z1_LABEL, Z2_LABEL),
    threshold: float = 0.5,
) -> Figure:
    """A dense atlas in three panels: class, brightness and brightness gradient per point.

    Parameters
    ----------
    labels : array_like of int, shape (ny, nx)
        Class per point (the classifier's argmax), in ``[0, len(class_names))``.
    confidence : array_like, shape (ny, nx)
        Max softmax probability per point, in [0, 1]; points below ``threshold`` are drawn in
        a paler tint of their class (ambiguous).
    brightness : array_like, shape (ny, nx)
        Mean pixel value of the decoded image per point, in [0, 1].
    gradient : array_like, shape (ny, nx)
        ``|∇ brightness|`` per point, >= 0, in brightness per latent unit.
    x : array_like, shape (nx,)
        Increasing first plane coordinates.
    y : array_like, shape (ny,)
        Increasing second plane coordinates; ``y[0]`` is drawn at the bottom.
    class_names : sequence of str, length K
        Name of each class index.
    title : str, optional
        Figure title (plain text).
    labels_xy : (str, str), optional
        Axis labels.
    threshold : float, optional
        Ambiguity threshold on the confidence.

    Returns
    -------
    matplotlib.figure.Figure
        Three map axes (class, brightness, gradient) drawn with ``pcolormesh`` on cell edges
        halfway between points, then two colour bars; the class legend lists the classes
        present, in index order.
    """
    rgba = atlas_rgba(labels, confidence, len(class_names), threshold)
    ny, nx = rgba.shape[:2]
    xs = _check_coords(x, nx, "x")
    ys = _check_coords(y, ny, "y")
    bright = check_array(brightness, "brightness", shape=(ny, nx), bounds=(0.0, 1.0))
    grad = check_array(gradient, "gradient", shape=(ny, nx), bounds=(0.0, np.inf))
    ex, ey = cell_edges(xs), cell_edges(ys)
    fig = Figure(figsize=(16.0, 5.0), layout="constrained")
    axes = fig.subplots(1, 3)
    axes[0].pcolormesh(ex, ey, rgba, shading="flat")
    present = np.unique(np.asarray(labels))
    handles = [Patch(facecolor=class_color(int(k)), label=plain(class_names[int(k)]))
               for k in present]  # fmt: skip
    axes[0].legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.12), ncols=3,
                   frameon=False, fontsize="small")  # fmt: skip
    axes[0].set_title(f"class (paler: confidence < {threshold:g})")
    mesh = axes[1].pcolormesh(ex, ey, bright, cmap="gray", vmin=0.0, vmax=1.0, shading="flat")
    fig.colorbar(mesh, ax=axes[1], label="mean brightness", shrink=0.8)
    axes[1].set_title("brightness")
    mesh = axes[2].pcolormesh(ex, ey, grad, cmap="magma", shading="flat")
    fig.colorbar(mesh, ax=axes[2], label="brightness per latent unit", shrink=0.8)
    axes[2].set_title("|∇ brightness|")
    for ax in axes:
        _axis_labels(ax, labels_xy)
        ax.set_aspect("equal", adjustable="box")
    if title:
        fig.suptitle(plain(title))
    return fig


# --------------------------------------------------------------------------- embeddings, shares


def embedding_scatter(
    embeddings: ArrayLike,
    labels: ArrayLike,
    class_names: Sequence[str],
    extent: tuple[float, float, float, float] | None = None,
    title: str = "",
    axis_labels: tuple[str, str] = (Z1_LABEL, Z2_LABEL),
) -> Figure:
    """Scatter of 2-D latent embeddings coloured by class, with the grid's extent outlined.

    Parameters
    ----------
    embeddings : array_like, shape (N, 2)
        Latent codes ``(z0, z1)``.
    labels : array_like of int, shape (N,)
        Class index of each point, in ``[0, len(class_names))``.
    class_names : sequence of str, length K
        Name of each class index.
    extent : tuple of 4 float, optional
        ``(xlo, xhi, ylo, yhi)`` of the decoded grid, drawn as a dashed rectangle.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        One axes; its legend lists the names of the classes present, in class index order,
        coloured as in :func:`class_map_figure`.
    """
    emb = check_array(embeddings, "embeddings", shape=("N", 2))
    n_classes = len(class_names)
    lab = _check_labels(labels, (emb.shape[0],), n_classes)

    colors = np.array([to_rgba(class_color(k)) for k in range(n_classes)])
    fig = Figure(figsize=(7.5, 6.0), layout="constrained")
    ax = fig.subplots()
    # one scatter in data order (no class drawn over all the others), coloured by class
    ax.scatter(emb[:, 0], emb[:, 1], c=colors[lab], s=6, alpha=0.5, linewidths=0)
    present = np.unique(lab)
    if len(present):
        handles = [
            Line2D([], [], linestyle="", marker="o", markersize=6, alpha=0.5,
                   markerfacecolor=colors[k], markeredgewidth=0)
            for k in present
        ]  # fmt: skip
        ax.legend(handles, [plain(class_names[int(k)]) for k in present], title="class",
                  loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)  # fmt: skip
    if extent is not None:
        xlo, xhi, ylo, yhi = (float(v) for v in extent)
        if not (xhi > xlo and yhi > ylo):
            raise AtlasError(f"extent must be (xlo, xhi, ylo, yhi) with lo < hi, got {extent}")
        ax.add_patch(
            Rectangle(
                (xlo, ylo),
                xhi - xlo,
                yhi - ylo,
                fill=False,
                edgecolor="black",
                linestyle="--",
                linewidth=1.2,
                gid="grid-extent",
            )
        )
    _axis_labels(ax, axis_labels)
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title_text(title))
    return fig


def class_share_bars(
    shares: Mapping[str, ArrayLike], class_names: Sequence[str], title: str = ""
) -> Figure:
    """Grouped bars of the share of grid cells given to each class, one bar per model.

    Parameters
    ----------
    shares : mapping of str to array_like, each shape (K,)
        Model name (e.g. ``"VAE"``, ``"AE"``) to the share of grid cells of each class.
    class_names : sequence of str, length K
        Name of each class index; one bar group per class.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        One axes with ``len(shares) * K`` bar patches and a legend of model names.
    """
    n_classes = len(class_names)
    if not shares:
        raise AtlasError("shares is empty")
    rows = {}
    for model, s in shares.items():
        arr = np.asarray(s, dtype=np.float64)
        if arr.shape != (n_classes,):
            raise AtlasError(f"shares[{model!r}] must have shape ({n_classes},), got {arr.shape}")
        rows[model] = arr

    n_models = len(rows)
    width = 0.8 / n_models
    centres = np.arange(n_classes, dtype=np.float64)
    fig = Figure(figsize=(max(6.0, 0.7 * n_classes + 2.0), 4.2), layout="constrained")
    ax = fig.subplots()
    for m, (model, arr) in enumerate(rows.items()):
        offset = (m - (n_models - 1) / 2.0) * width
        ax.bar(centres + offset, arr, width=width, label=plain(model))
    ax.set_xticks(centres, labels=[plain(n) for n in class_names], rotation=35, ha="right")
    ax.set_ylabel("share of grid cells")
    ax.set_ylim(bottom=0.0)
    ax.legend(frameon=False)
    if title:
        ax.set_title(title_text(title))
    return fig


# --------------------------------------------------------------------------- output


def plain_text(fig: Figure) -> Figure:
    """Draw every text of ``fig`` as it is written: labels, titles and class names come from
    users, and a ``$`` in them must not start matplotlib's mathtext (``$\\foo$`` is a parse
    error at draw time). Our own figures use no mathtext."""
    for text in fig.findobj(Text):
        text.set_parse_math(False)
    return fig


FIGURE_FORMATS = ("png", "svg", "pdf")


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 100) -> bytes:
    """Render a figure to ``fmt`` in memory (PNG, or SVG/PDF for a paper: vector text and
    lines, the image parts at ``dpi``), then release it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure; it is closed (if pyplot manages it) or cleared afterwards.
    fmt : {"png", "svg", "pdf"}
        File format.
    dpi : int, optional
        Resolution of the raster parts.

    Returns
    -------
    bytes
        The file's bytes; the same figure gives the same bytes (no date, fixed SVG ids).
    """
    if fmt not in FIGURE_FORMATS:
        raise AtlasError(f"figure format {fmt!r}: expected one of {', '.join(FIGURE_FORMATS)}")
    if fmt == "png":
        return figure_png_bytes(fig, dpi)
    meta = {"Date": None} if fmt == "svg" else {"CreationDate": None}
    with matplotlib.rc_context({"svg.hashsalt": "latent-atlas", "svg.fonttype": "none"}):
        return _saved(fig, format=fmt, dpi=dpi, metadata=meta)


def figure_png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """Render a figure to PNG in memory, then release it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure; it is closed (if pyplot manages it) or cleared afterwards.
    dpi : int, optional
        Resolution.

    Returns
    -------
    bytes
        The PNG file's bytes.
    """
    # zlib level 3, not PIL's 6: half the encoding time (0.28 s of a report's 3.7 s of
    # drawing), and smaller files for these flat-coloured figures
    return _saved(fig, format="png", dpi=dpi, pil_kwargs={"compress_level": 3})


def _saved(fig: Figure, **savefig: Any) -> bytes:
    """``fig.savefig(**savefig)`` into memory with every text plain, then the figure released:
    closed if pyplot manages it, else cleared."""
    buf = io.BytesIO()
    try:
        plain_text(fig)
        fig.savefig(buf, **savefig)
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None and getattr(fig.canvas, "manager", None) is not None:
            pyplot.close(fig)
        else:
            fig.clear()
    return buf.getvalue()
