"""Figures of arrays drawn straight into pixels: numpy → RGB image → PNG bytes (Pillow).

The report's grid figures are pictures of arrays: a mosaic of decoded cells, the same mosaic
tinted by class, per-cell heat maps, the dense atlas. matplotlib spent 0.2–0.5 CPU s on each
(layout engine, resampling, anti-aliased meshes; ~6 of a two-model report's ~28 CPU s);
assembled here with numpy and framed with Pillow (ticks, axis labels, title, colour bar,
legend) each takes a few milliseconds. The scatter of embeddings and the class shares' bars
are drawn here too (Pillow discs and rectangles: ~0.25 CPU s each less than matplotlib's, and
a PNG report never imports matplotlib's figures); :mod:`latent_atlas.analysis.plots` keeps
their matplotlib versions, which an SVG or PDF figure format draws as vectors.

Conventions are those of :mod:`~latent_atlas.analysis.plots`: ``cells[i, j]`` is the image
decoded at ``(x[j], y[i])``, maps are ``[ny, nx]``, ``x`` and ``y`` increase, and the second
coordinate increases upward (row 0 at the bottom). Ticks sit at cell centres, labelled with
the cells' latent coordinates (``%.2g``), a handful per axis, first and last included. Every
function returns the PNG file's bytes; none reads or writes a file.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from latent_atlas.analysis.validation import check_array, check_cells, check_coords, check_labels
from latent_atlas.toolkit.errors import AtlasError
from numpy.typing import ArrayLike, NDArray
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "TAB10",
    "as_written_png",
    "atlas_png",
    "class_map_png",
    "heatmap_png",
    "image_rows_png",
    "mosaic_png",
    "scatter_png",
    "share_bars_png",
]

# matplotlib's tab10 (the class colours of every figure, cycling), as 8-bit RGB
TAB10 = np.array(
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
     [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]],
    dtype=np.uint8,
)  # fmt: skip
OVERLAY_ALPHA = 0.4  # class tint over a mosaic, as plots.class_map_figure
MAX_TICKS = 7
MOSAIC_PX = (400, 900)  # a mosaic is scaled by a whole factor up to the first, down to the second
MAP_PX = 420  # the wider side of a heat map, in pixels
FONT_PX = 13
PAD = 6
TICK = 4
BAR_PX = 16  # colour bar width
COMPRESS = 3  # zlib level: as plots.figure_png_bytes
INK = (0, 0, 0)
WHITE = (255, 255, 255)
BLANK = (255, 255, 255)  # a NaN cell, left blank as in plots.heatmap_figure
TITLE_CHARS = 60


# ---------------------------------------------------------------------------- text
@functools.cache
def _font(size: int = FONT_PX) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans, the font of the matplotlib figures (found without importing matplotlib);
    Pillow's own font where it is not there."""
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


def _text_size(text: str, size: int = FONT_PX) -> tuple[int, int]:
    if not text:
        return 0, 0
    left, top, right, bottom = _font(size).getbbox(text)
    return int(right - min(left, 0)), int(_font(size).getbbox("Ag")[3] + 2)


def _text_image(text: str, size: int = FONT_PX, rotate: bool = False) -> Image.Image:
    """One line of text on white, rotated a quarter turn counter-clockwise if ``rotate``."""
    w, h = _text_size(text, size)
    img = Image.new("RGB", (max(w, 1), max(h, 1)), WHITE)
    ImageDraw.Draw(img).text((0, 0), text, fill=INK, font=_font(size))
    return img.rotate(90, expand=True) if rotate else img


def _wrap(text: str, width: int = TITLE_CHARS) -> list[str]:
    """A title as lines no longer than ``width`` characters (as plots.title_text)."""
    return textwrap.wrap(str(text), width, break_on_hyphens=False) or ([str(text)] if text else [])


def _tick_indices(n: int, max_ticks: int = MAX_TICKS) -> NDArray[np.int_]:
    """A handful of evenly spread indices in ``[0, n)``, first and last included."""
    if n <= max_ticks:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_ticks)).astype(int))


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round values in ``[lo, hi]`` for a colour bar (steps of 1, 2 or 5 × 10^k)."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return [float(lo)] if np.isfinite(lo) else []
    raw = (hi - lo) / n
    mag = 10 ** np.floor(np.log10(raw))
    step = mag * next(m for m in (1, 2, 5, 10) if m * mag >= raw)
    first = np.ceil(lo / step - 1e-9) * step
    return [float(v) + 0.0 for v in np.arange(first, hi + step * 1e-9, step)]  # no -0


# ---------------------------------------------------------------------------- panels
@dataclass(frozen=True)
class Axis:
    """An axis of a panel: its label and its ticks (pixel offset from the left or the bottom
    of the image, label)."""

    label: str
    ticks: tuple[tuple[float, str], ...]


@dataclass(frozen=True)
class ColourBar:
    """A vertical colour bar: ``lut`` ``[256, 3]`` uint8 from ``vmin`` (bottom) to ``vmax``."""

    lut: NDArray[np.uint8]
    vmin: float
    vmax: float
    label: str


def _centre_ticks(centres_px: NDArray[np.floating], values: NDArray[np.floating]) -> tuple:
    k = _tick_indices(len(values))
    return tuple((float(centres_px[i]), f"{values[i]:.2g}") for i in k)


def _colour_bar(bar: ColourBar, height: int) -> Image.Image:
    """The bar with its ticks and label, ``height`` pixels of gradient."""
    ramp = np.linspace(1.0, 0.0, height)  # top row: vmax
    strip = bar.lut[np.round(ramp * 255).astype(np.int64)]
    strip = np.repeat(strip[:, None, :], BAR_PX, axis=1)
    ticks = _nice_ticks(bar.vmin, bar.vmax)
    labels = [f"{t:.3g}" for t in ticks]
    label_w = max((_text_size(s)[0] for s in labels), default=0)
    _, th = _text_size("0")
    side = _text_image(bar.label, rotate=True) if bar.label else None
    width = BAR_PX + TICK + 2 + label_w + (PAD + side.width if side else 0) + PAD
    img = Image.new("RGB", (width, height + th), WHITE)
    img.paste(Image.fromarray(strip), (0, th // 2))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, th // 2, BAR_PX - 1, th // 2 + height - 1), outline=INK)
    span = bar.vmax - bar.vmin
    for t, s in zip(ticks, labels, strict=True):
        y = th // 2 + (height - 1) * (1 - ((t - bar.vmin) / span if span > 0 else 0.5))
        draw.line((BAR_PX, y, BAR_PX + TICK, y), fill=INK)
        draw.text((BAR_PX + TICK + 2, y - th / 2), s, fill=INK, font=_font())
    if side is not None:
        img.paste(side, (BAR_PX + TICK + 2 + label_w + PAD, th // 2 + (height - side.height) // 2))
    return img


def _legend(entries: Sequence[tuple[Sequence[int], str]]) -> Image.Image:
    """One row per (colour, name): a swatch and the name."""
    _, th = _text_size("Ag")
    width = max((_text_size(name)[0] for _, name in entries), default=0) + th + PAD
    img = Image.new("RGB", (width + PAD, th * len(entries) + 1), WHITE)
    draw = ImageDraw.Draw(img)
    for r, (rgb, name) in enumerate(entries):
        y = r * th
        draw.rectangle((0, y + 2, th - 4, y + th - 2), fill=tuple(int(c) for c in rgb))
        draw.text((th, y), name, fill=INK, font=_font())
    return img


def panel(
    image: NDArray[np.uint8],
    x_axis: Axis,
    y_axis: Axis,
    title: str = "",
    colour_bar: ColourBar | None = None,
    legend: Sequence[tuple[Sequence[int], str]] = (),
) -> Image.Image:
    """``image`` ``[h, w, 3]`` uint8 framed: ticks and axis labels left and below, the title
    above (wrapped), a colour bar and then a legend on the right."""
    h, w = image.shape[:2]
    _, th = _text_size("Ag")
    ytick_w = max((_text_size(s)[0] for _, s in y_axis.ticks), default=0)
    ylabel = _text_image(y_axis.label, rotate=True) if y_axis.label else None
    left = PAD + (ylabel.width + PAD if ylabel else 0) + ytick_w + TICK + 2
    lines = _wrap(title)
    top = PAD + len(lines) * th + (PAD if lines else 0)
    bottom = TICK + 2 + th + (th + PAD if x_axis.label else 0) + PAD
    extras = []
    if colour_bar is not None:
        extras.append(_colour_bar(colour_bar, h))
    if legend:
        extras.append(_legend(legend))
    right = PAD + sum(e.width + PAD for e in extras)
    width = max(left + w + right, max((_text_size(s)[0] for s in lines), default=0) + 2 * PAD)
    out = Image.new("RGB", (width, top + max([h, *(e.height for e in extras)]) + bottom), WHITE)
    out.paste(Image.fromarray(np.ascontiguousarray(image)), (left, top))
    draw = ImageDraw.Draw(out)
    draw.rectangle((left - 1, top - 1, left + w, top + h), outline=INK)
    for pos, s in x_axis.ticks:
        x = left + pos
        draw.line((x, top + h, x, top + h + TICK), fill=INK)
        draw.text((x - _text_size(s)[0] / 2, top + h + TICK + 2), s, fill=INK, font=_font())
    for pos, s in y_axis.ticks:
        y = top + h - pos
        draw.line((left - 1 - TICK, y, left - 1, y), fill=INK)
        draw.text((left - TICK - 3 - _text_size(s)[0], y - th / 2), s, fill=INK, font=_font())
    if x_axis.label:
        lw = _text_size(x_axis.label)[0]
        draw.text((left + (w - lw) / 2, top + h + TICK + 2 + th + PAD // 2), x_axis.label,
                  fill=INK, font=_font())  # fmt: skip
    if ylabel is not None:
        out.paste(ylabel, (PAD, top + (h - ylabel.height) // 2))
    for r, line in enumerate(lines):
        lw = _text_size(line)[0]
        draw.text((max(PAD, left + (w - lw) / 2), PAD + r * th), line, fill=INK, font=_font())
    x = left + w + PAD
    for e in extras:
        out.paste(e, (x + PAD, top))
        x += e.width + PAD
    return out


def _side_by_side(panels: Sequence[Image.Image], title: str = "") -> Image.Image:
    """Panels in a row, tops aligned, under one title."""
    lines = _wrap(title, 3 * TITLE_CHARS)
    _, th = _text_size("Ag")
    top = PAD + len(lines) * th if lines else 0
    width = sum(p.width for p in panels)
    out = Image.new("RGB", (width, top + max(p.height for p in panels)), WHITE)
    draw = ImageDraw.Draw(out)
    for r, line in enumerate(lines):
        draw.text(((width - _text_size(line)[0]) / 2, PAD + r * th), line, fill=INK, font=_font())
    x = 0
    for p in panels:
        out.paste(p, (x, top))
        x += p.width
    return out


def png_bytes(img: Image.Image) -> bytes:
    """The PNG file of ``img`` (zlib level 3: flat figures compress well and fast)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=COMPRESS)
    return buf.getvalue()


Mark = tuple[str, float, float]  # (label, u, v): a point in plane coordinates, as plots.Mark
MARK_PX = 5  # radius of a mark's circle


def _draw_marks(
    image: NDArray[np.uint8], marks: Sequence[Mark], at_x: ArrayLike, at_y: ArrayLike,
    xs: NDArray[np.float64], ys: NDArray[np.float64],
) -> NDArray[np.uint8]:  # fmt: skip
    """``image`` with each mark drawn as a white-edged black circle and its label, as
    plots.mark_points draws them. ``at_x``/``at_y`` are the pixel positions (from the left,
    and from the bottom) of the coordinates ``xs``/``ys``; a mark outside them sits at the
    edge, hollow."""
    if not marks:
        return image
    img = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(img)
    h = image.shape[0]
    for label, u, v in marks:
        inside = xs[0] <= u <= xs[-1] and ys[0] <= v <= ys[-1]
        px = float(np.interp(u, xs, np.asarray(at_x, np.float64)))
        py = h - float(np.interp(v, ys, np.asarray(at_y, np.float64)))
        box = (px - MARK_PX, py - MARK_PX, px + MARK_PX, py + MARK_PX)
        draw.ellipse(box, fill=INK if inside else None, outline=WHITE, width=2)
        draw.text((px + MARK_PX + 2, py - FONT_PX / 2), label, fill=INK, font=_font(),
                  stroke_width=2, stroke_fill=WHITE)  # fmt: skip
    return np.asarray(img)


# ---------------------------------------------------------------------------- pictures
def _to_rgb8(values: NDArray[np.floating]) -> NDArray[np.uint8]:
    """Values in [0, 1] (``[..., C]`` with C in (1, 3)) as 8-bit RGB."""
    v = np.clip(np.rint(np.asarray(values, np.float64) * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(v, 3, axis=-1) if v.shape[-1] == 1 else v


def _assemble(cells: NDArray[np.float64]) -> NDArray[np.float64]:
    """``[ny, nx, C, H, W]`` as one ``[ny·H, nx·W, C]`` image with row 0 of the grid at the
    bottom (as plots.mosaic_image)."""
    ny, nx, c, h, w = cells.shape
    return cells[::-1].transpose(0, 3, 1, 4, 2).reshape(ny * h, nx * w, c)


def _mosaic_scale(width: int, height: int) -> float:
    """Whole-factor enlargement of a small mosaic, shrinking of a large one."""
    side = max(width, height)
    if side < MOSAIC_PX[0]:
        return float(-(-MOSAIC_PX[0] // side))
    return min(1.0, MOSAIC_PX[1] / side)


def _scaled(image: NDArray[np.uint8], scale: float) -> NDArray[np.uint8]:
    if scale == 1.0:
        return image
    h, w = image.shape[:2]
    if scale > 1:
        k = int(scale)
        return np.repeat(np.repeat(image, k, axis=0), k, axis=1)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


def _mosaic_axes(
    shape: tuple[int, int], cell: tuple[int, int], scale: float, xs: NDArray[np.float64],
    ys: NDArray[np.float64], labels: tuple[str, str],
) -> tuple[Axis, Axis]:  # fmt: skip
    (ny, nx), (h, w) = shape, cell
    cx = (np.arange(nx, dtype=np.float64) + 0.5) * w * scale
    cy = (np.arange(ny, dtype=np.float64) + 0.5) * h * scale
    return Axis(labels[0], _centre_ticks(cx, xs)), Axis(labels[1], _centre_ticks(cy, ys))


def _cells_and_coords(cells: ArrayLike, x: ArrayLike, y: ArrayLike) -> tuple:
    arr = check_cells(cells, bounded=False)
    xs = check_coords(x, "x", arr.shape[1])
    ys = check_coords(y, "y", arr.shape[0])
    return arr, xs, ys


def _tinted_mosaic(
    arr: NDArray[np.float64], lab: NDArray[np.int64] | None
) -> NDArray[np.uint8]:  # fmt: skip
    rgb = _to_rgb8(_assemble(arr))
    if lab is None:
        return rgb
    ny, nx, _, h, w = arr.shape
    tint = TAB10[lab[::-1] % len(TAB10)].astype(np.float64)  # [ny, nx, 3], top row first
    tint = np.repeat(np.repeat(tint, h, axis=0), w, axis=1)
    mixed = (1 - OVERLAY_ALPHA) * rgb + OVERLAY_ALPHA * tint
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def mosaic_png(
    cells: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    title: str = "",
    labels: tuple[str, str] = ("z\u2081", "z\u2082"),
    class_labels: ArrayLike | None = None,
    class_names: Sequence[str] = (),
    marks: Sequence[Mark] = (),
) -> bytes:
    """A decoded grid as one picture, second coordinate upward, optionally tinted by class.

    Parameters
    ----------
    cells : array_like, shape (ny, nx, H, W) or (ny, nx, C, H, W), C in (1, 3)
        Decoded images in [0, 1]; ``cells[i, j]`` at ``(x[j], y[i])``.
    x, y : array_like, shapes (nx,) and (ny,)
        Increasing latent coordinates of the columns and rows.
    title : str, optional
        Title above the picture (plain text, wrapped).
    labels : (str, str), optional
        Axis labels.
    class_labels : array_like of int, shape (ny, nx), optional
        Class of each cell: the cell is tinted with its class colour (tab10, alpha 0.4) and a
        legend lists the classes present, in index order. Needs ``class_names``.
    class_names : sequence of str, optional
        Name of each class index.
    marks : sequence of (str, float, float), optional
        ``(label, u, v)``: points of the plane (e.g. the three images an images plane passes
        through), drawn at their plane coordinates between cell centres.

    Returns
    -------
    bytes
        PNG. The mosaic keeps whole pixels: enlarged by a whole factor below 400 px, shrunk
        (box filter) above 900 px.
    """
    arr, xs, ys = _cells_and_coords(cells, x, y)
    ny, nx, _, h, w = arr.shape
    lab = None
    legend: list[tuple[Sequence[int], str]] = []
    if class_labels is not None:
        lab = check_labels(class_labels, "labels", n_classes=len(class_names), shape=(ny, nx))
        legend = [(TAB10[k % len(TAB10)], str(class_names[k])) for k in np.unique(lab)]
    scale = _mosaic_scale(nx * w, ny * h)
    image = _scaled(_tinted_mosaic(arr, lab), scale)
    xa, ya = _mosaic_axes((ny, nx), (h, w), scale, xs, ys, labels)
    centres_x = (np.arange(nx) + 0.5) * w * scale
    centres_y = (np.arange(ny) + 0.5) * h * scale
    image = _draw_marks(image, marks, centres_x, centres_y, xs, ys)
    return png_bytes(panel(image, xa, ya, title, legend=legend))


def class_map_png(
    cells: ArrayLike,
    labels: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    class_names: Sequence[str],
    title: str = "",
    labels_xy: tuple[str, str] = ("z\u2081", "z\u2082"),
    marks: Sequence[Mark] = (),
) -> bytes:
    """The mosaic with every cell tinted by its class (:func:`mosaic_png` with classes)."""
    return mosaic_png(cells, x, y, title, labels_xy, labels, class_names, marks)


def as_written_png(
    cells: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    title: str = "",
    labels: tuple[str, str] = ("z\u2081", "z\u2082"),
) -> bytes:
    """The seed study's figure as its loop drew it (``seed_figure.as_written_mosaic``): one
    drawn column, the rest black, ``y[0]`` at the top; the ticks name the latent coordinates
    of the cells as drawn, so the reversed second axis shows."""
    from latent_atlas.analysis.seed_figure import as_written_mosaic

    arr, xs, ys = _cells_and_coords(cells, x, y)
    ny, nx, _, h, w = arr.shape
    image = _to_rgb8(as_written_mosaic(arr))
    scale = _mosaic_scale(nx * w, ny * h)
    xa, ya = _mosaic_axes((ny, nx), (h, w), scale, xs, ys[::-1], labels)
    return png_bytes(panel(_scaled(image, scale), xa, ya, title))


def _lut(cmap: str) -> NDArray[np.uint8]:
    """256 RGB entries of a matplotlib colour map (imported only here)."""
    import matplotlib

    return _to_rgb8(matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3])


def cell_edges(centres: NDArray[np.float64]) -> NDArray[np.float64]:
    """Cell boundaries ``[n + 1]`` halfway between increasing centres ``[n]``, mirrored at the
    ends (one centre: a cell of width 1); the raster maps and plots' maps share them."""
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mids = (centres[1:] + centres[:-1]) / 2.0
    return np.concatenate([[2 * centres[0] - mids[0]], mids, [2 * centres[-1] - mids[-1]]])


def _pixel_spans(edges: NDArray[np.float64], px: int) -> NDArray[np.int64]:
    """Pixels of each cell between ``edges`` over ``px`` pixels (at least one each), so a
    non-uniform grid keeps its geometry."""
    at = np.rint((edges - edges[0]) / (edges[-1] - edges[0]) * px).astype(np.int64)
    return np.maximum(np.diff(at), 1)


def map_image(
    rgb: NDArray[np.uint8], xs: NDArray[np.float64], ys: NDArray[np.float64],
    labels: tuple[str, str], size: int = MAP_PX,
) -> tuple[NDArray[np.uint8], Axis, Axis]:  # fmt: skip
    """A ``[ny, nx, 3]`` colour map drawn on cell boundaries halfway between centres, in
    equal latent units on both axes (the wider side ``size`` px), with its axes (round
    values, as matplotlib would tick them)."""
    ex, ey = cell_edges(xs), cell_edges(ys)
    wx, wy = ex[-1] - ex[0], ey[-1] - ey[0]
    ratio = float(np.clip(wy / wx, 0.25, 4.0))
    px, py = (size, max(1, round(size * ratio))) if ratio <= 1 else (round(size / ratio), size)
    sx, sy = _pixel_spans(ex, max(px, len(xs))), _pixel_spans(ey, max(py, len(ys)))
    image = np.repeat(np.repeat(rgb[::-1], sy[::-1], axis=0), sx, axis=1)
    return image, _data_axis(labels[0], ex, sx), _data_axis(labels[1], ey, sy)


def _data_axis(label: str, edges: NDArray[np.float64], spans: NDArray[np.int64]) -> Axis:
    """Round values along a map's axis, placed through its cell edges (so a non-uniform grid's
    ticks sit where those values are drawn)."""
    at = np.concatenate([[0], np.cumsum(spans)]).astype(np.float64)
    ticks = [v for v in _nice_ticks(edges[0], edges[-1], 6) if edges[0] <= v <= edges[-1]]
    return Axis(label, tuple((float(np.interp(v, edges, at)), f"{v:.3g}") for v in ticks))


def _coloured(vals: NDArray[np.float64], cmap: str, lo: float, hi: float) -> NDArray[np.uint8]:
    lut = _lut(cmap)
    span = hi - lo if hi > lo else 1.0
    idx = np.clip(np.rint((np.nan_to_num(vals, nan=lo) - lo) / span * 255), 0, 255)
    rgb = lut[idx.astype(np.int64)]
    rgb[~np.isfinite(vals)] = BLANK
    return rgb


def _limits(vals: NDArray[np.float64], vmin: float | None, vmax: float | None) -> tuple:
    """Colour limits: those given, else the finite data range (0 and 1 where none is)."""
    finite = vals[np.isfinite(vals)]
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    return float(lo), float(hi)


def heatmap_png(
    values: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    title: str = "",
    colorbar_label: str = "",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    labels: tuple[str, str] = ("z\u2081", "z\u2082"),
    marks: Sequence[Mark] = (),
) -> bytes:
    """Heat map of a per-cell quantity over the grid, with a colour bar.

    Parameters
    ----------
    values : array_like, shape (ny, nx)
        ``values[i, j]`` belongs to ``(x[j], y[i])``; NaN cells are left blank (white).
    x, y : array_like, shapes (nx,) and (ny,)
        Increasing coordinates; cells span halfway to their neighbours, so a non-uniform grid
        keeps its true geometry, in equal units on both axes.
    title, colorbar_label : str, optional
        Title above the map, label of the colour bar.
    cmap : str, optional
        matplotlib colour map name.
    vmin, vmax : float, optional
        Colour limits; by default the finite data range.
    marks : sequence of (str, float, float), optional
        ``(label, u, v)``: points of the plane drawn at their coordinates.

    Returns
    -------
    bytes
        PNG.
    """
    return png_bytes(heatmap_panel(values, x, y, title, colorbar_label, cmap, vmin, vmax, labels,
                                   marks))  # fmt: skip


Line = tuple[NDArray[np.floating], tuple[int, int, int], int]  # ([T, 2] plane points, RGB, width)


def heatmap_panel(
    values: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    title: str = "",
    colorbar_label: str = "",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    labels: tuple[str, str] = ("z\u2081", "z\u2082"),
    marks: Sequence[Mark] = (),
    lines: Sequence[Line] = (),
    size: int = MAP_PX,
) -> Image.Image:
    """:func:`heatmap_png`'s picture before it is encoded, ``lines`` (polylines in plane
    coordinates, a colour and a width each) drawn over the map; ``size`` px on its wider side."""
    vals = check_array(values, "values", ndim=2, finite=False)
    xs = check_coords(x, "x", vals.shape[1])
    ys = check_coords(y, "y", vals.shape[0])
    lo, hi = _limits(vals, vmin, vmax)
    image, xa, ya = map_image(_coloured(vals, cmap, lo, hi), xs, ys, labels, size)
    h, w = image.shape[:2]
    ex, ey = cell_edges(xs), cell_edges(ys)  # map_image spreads the cell edges over the pixels
    if lines:
        img = Image.fromarray(np.ascontiguousarray(image))
        draw = ImageDraw.Draw(img)
        for points, rgb, width in lines:
            pts = np.asarray(points, np.float64).reshape(-1, 2)
            px = (pts[:, 0] - ex[0]) / (ex[-1] - ex[0]) * w
            py = h - (pts[:, 1] - ey[0]) / (ey[-1] - ey[0]) * h
            draw.line(list(zip(px.tolist(), py.tolist(), strict=True)), fill=rgb, width=width)
        image = np.asarray(img)
    image = _draw_marks(image, marks, (ex - ex[0]) / (ex[-1] - ex[0]) * w,
                        (ey - ey[0]) / (ey[-1] - ey[0]) * h, ex, ey)  # fmt: skip
    bar = ColourBar(_lut(cmap), lo, hi, colorbar_label)
    return panel(image, xa, ya, title, colour_bar=bar)


def panels_png(rows: Sequence[Sequence[Image.Image]], title: str = "") -> bytes:
    """Rows of panels (each row side by side, tops aligned) stacked under one title."""
    strips = [_side_by_side(row) for row in rows]
    lines = _wrap(title, 3 * TITLE_CHARS)
    _, th = _text_size("Ag")
    top = PAD + len(lines) * th + PAD if lines else 0
    width = max(s.width for s in strips)
    out = Image.new("RGB", (width, top + sum(s.height for s in strips)), WHITE)
    draw = ImageDraw.Draw(out)
    for r, line in enumerate(lines):
        draw.text(((width - _text_size(line)[0]) / 2, PAD + r * th), line, fill=INK, font=_font())
    y = top
    for strip in strips:
        out.paste(strip, (0, y))
        y += strip.height
    return png_bytes(out)


def atlas_png(
    labels: ArrayLike,
    confidence: ArrayLike,
    brightness: ArrayLike,
    gradient: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    class_names: Sequence[str],
    title: str = "",
    labels_xy: tuple[str, str] = ("z\u2081", "z\u2082"),
    threshold: float = 0.5,
) -> bytes:
    """A dense atlas in three panels side by side: class (paler where the confidence is below
    ``threshold``) with its legend, brightness and ``|∇ brightness|`` with colour bars.
    Arguments as :func:`latent_atlas.analysis.plots.atlas_figure`; returns PNG bytes."""
    n = len(class_names)
    lab = check_array(labels, "labels", ndim=2, dtype_kind="i", bounds=(0, n - 1))
    conf = check_array(confidence, "confidence", shape=lab.shape, bounds=(0.0, 1.0))
    ny, nx = lab.shape
    xs = check_coords(x, "x", nx)
    ys = check_coords(y, "y", ny)
    bright = check_array(brightness, "brightness", shape=(ny, nx), bounds=(0.0, 1.0))
    grad = check_array(gradient, "gradient", shape=(ny, nx), bounds=(0.0, np.inf))
    if ny < 1 or nx < 1:
        raise AtlasError(f"atlas: shape {lab.shape}, expected at least one point")
    colours = TAB10[lab % len(TAB10)].astype(np.float64)
    unsure = conf < threshold
    colours[unsure] = 0.5 * colours[unsure] + 127.5  # half-way to white (plots.atlas_rgba)
    size = 330
    classes, xa, ya = map_image(np.rint(colours).astype(np.uint8), xs, ys, labels_xy, size)
    legend = [(TAB10[k % len(TAB10)], str(class_names[k])) for k in np.unique(lab)]
    panels = [panel(classes, xa, ya, f"class (paler: confidence < {threshold:g})",
                    legend=legend)]  # fmt: skip
    for vals, cmap, name, bar in (
        (bright, "gray", "brightness", "mean brightness"),
        (grad, "magma", "|∇ brightness|", "brightness per latent unit"),
    ):
        lo, hi = (0.0, 1.0) if cmap == "gray" else _limits(grad, None, None)
        image, xa, ya = map_image(_coloured(vals, cmap, lo, hi), xs, ys, labels_xy, size)
        panels.append(panel(image, xa, ya, name, colour_bar=ColourBar(_lut(cmap), lo, hi, bar)))
    return png_bytes(_side_by_side(panels, title))


# ---------------------------------------------------------------------------- scatter, bars
SCATTER_PX = 420  # the side of the scatter's (square) data box
POINT_PX = 1.5  # a point's radius (a disc 4 px across), drawn at POINT_ALPHA in data order
POINT_ALPHA = 0.5
MARGIN = 0.05  # of the data span, each side (matplotlib's default margins)
DASH = (6, 4)  # the grid extent's dashes: on, off (px)


def _span(lo: float, hi: float) -> tuple[float, float]:
    """``[lo, hi]`` widened by MARGIN each side (a unit span around a single value)."""
    if hi <= lo:
        return lo - 0.5, hi + 0.5
    pad = (hi - lo) * MARGIN
    return lo - pad, hi + pad


def _dashed_box(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float]) -> None:
    """The outline of ``box`` (left, top, right, bottom) in DASH dashes, 1 px, black."""
    left, top, right, bottom = box
    on, off = DASH
    for (x0, y0), (x1, y1) in (
        ((left, top), (right, top)),
        ((right, top), (right, bottom)),
        ((right, bottom), (left, bottom)),
        ((left, bottom), (left, top)),
    ):
        length = float(np.hypot(x1 - x0, y1 - y0))
        for a in np.arange(0.0, length, on + off):
            b = min(a + on, length)
            t0, t1 = a / length if length else 0.0, b / length if length else 0.0
            draw.line((x0 + (x1 - x0) * t0, y0 + (y1 - y0) * t0,
                       x0 + (x1 - x0) * t1, y0 + (y1 - y0) * t1), fill=INK, width=1)  # fmt: skip


def scatter_png(
    embeddings: ArrayLike,
    labels: ArrayLike,
    class_names: Sequence[str],
    extent: tuple[float, float, float, float] | None = None,
    title: str = "",
    axis_labels: tuple[str, str] = ("z\u2081", "z\u2082"),
    marks: Sequence[Mark] = (),
) -> bytes:
    """Scatter of 2-D embeddings coloured by class (tab10, half transparent, drawn in data
    order so that no class hides the others), the grid's ``extent`` ``(xlo, xhi, ylo, yhi)``
    as a dashed box, ``marks`` as in :func:`heatmap_png`, and a legend of the classes present.
    Both axes in equal units, 5 % margins; as :func:`latent_atlas.analysis.plots.embedding_scatter`
    draws it, in pixels. Returns PNG bytes."""
    emb = check_array(embeddings, "embeddings", shape=("N", 2))
    n_classes = len(class_names)
    lab = check_labels(labels, n_classes=n_classes, shape=(emb.shape[0],))
    xs, ys = emb[:, 0], emb[:, 1]
    bounds = (
        [float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())]
        if len(emb)
        else [0.0, 0.0, 0.0, 0.0]
    )
    if extent is not None:
        xlo, xhi, ylo, yhi = (float(v) for v in extent)
        if not (xhi > xlo and yhi > ylo) or not np.isfinite([xlo, xhi, ylo, yhi]).all():
            raise AtlasError(f"extent must be (xlo, xhi, ylo, yhi) with lo < hi, got {extent}")
        if len(emb):
            bounds = [min(bounds[0], xlo), max(bounds[1], xhi),
                      min(bounds[2], ylo), max(bounds[3], yhi)]  # fmt: skip
        else:
            bounds = [xlo, xhi, ylo, yhi]
    (x0, x1), (y0, y1) = _span(bounds[0], bounds[1]), _span(bounds[2], bounds[3])
    # a square box of SCATTER_PX whatever the data (the models' scatters side by side line up,
    # as matplotlib's fixed figure did), in equal units: the shorter span widened about its
    # centre
    w = h = SCATTER_PX
    unit = max((x1 - x0) / w, (y1 - y0) / h)  # latent units per pixel
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    x0, x1, y0, y1 = cx - unit * w / 2, cx + unit * w / 2, cy - unit * h / 2, cy + unit * h / 2

    def px(u: NDArray[np.float64]) -> NDArray[np.float64]:  # latent units → pixels, rightward
        return (u - x0) / unit

    def py(v: NDArray[np.float64]) -> NDArray[np.float64]:  # latent units → pixels, downward
        return h - (v - y0) / unit

    img = Image.new("RGB", (w, h), WHITE)
    draw = ImageDraw.Draw(img, "RGBA")
    alpha = round(POINT_ALPHA * 255)
    colours = [(*(int(c) for c in TAB10[k % len(TAB10)]), alpha) for k in range(n_classes)]
    r = POINT_PX
    for u, v, k in zip(px(xs).tolist(), py(ys).tolist(), lab.tolist(), strict=True):
        draw.ellipse((u - r, v - r, u + r, v + r), fill=colours[k])
    if extent is not None:
        (left, right), (bottom, top) = px(np.array(extent[:2])), py(np.array(extent[2:]))
        _dashed_box(draw, (float(left), float(top), float(right), float(bottom)))
    image = _draw_marks(np.asarray(img), marks, [0.0, float(w)], [0.0, float(h)],
                        np.array([x0, x1]), np.array([y0, y1]))  # fmt: skip
    xa = _data_axis(axis_labels[0], np.array([x0, x1]), np.array([w]))
    ya = _data_axis(axis_labels[1], np.array([y0, y1]), np.array([h]))
    legend = [(TAB10[k % len(TAB10)], str(class_names[k])) for k in np.unique(lab)]
    return png_bytes(panel(image, xa, ya, title, legend=legend))


BAR_ROW_PX = 14  # a bar's thickness; a class's group is one bar per model and a gap
BARS_PX = 360  # the longest possible bar (a share of 1 reaches the end only when one does)


def share_bars_png(
    shares: Mapping[str, ArrayLike], class_names: Sequence[str], title: str = ""
) -> bytes:
    """Grouped horizontal bars of the share of grid cells given to each class, one bar per
    model (tab10 in model order, with a legend), one group per class from the top in class
    order, the share on the horizontal axis from 0. As
    :func:`latent_atlas.analysis.plots.class_share_bars` gives it, in pixels (the class names
    read across, not turned). Returns PNG bytes."""
    n_classes = len(class_names)
    if not shares:
        raise AtlasError("shares is empty")
    rows: dict[str, NDArray[np.float64]] = {}
    for model, s in shares.items():
        arr = np.asarray(s, dtype=np.float64)
        if arr.shape != (n_classes,):
            raise AtlasError(f"shares[{model!r}] must have shape ({n_classes},), got {arr.shape}")
        if not (np.isfinite(arr).all() and (arr >= 0).all()):
            raise AtlasError(f"shares[{model!r}]: expected finite shares >= 0")
        rows[str(model)] = arr
    top = float(max(a.max() for a in rows.values())) or 1.0  # all zero: an axis to 1
    top *= 1 + MARGIN
    n_models = len(rows)
    group = n_models * BAR_ROW_PX + BAR_ROW_PX // 2
    h = n_classes * group
    img = Image.new("RGB", (BARS_PX, h), WHITE)
    draw = ImageDraw.Draw(img)
    for m, arr in enumerate(rows.values()):
        rgb = tuple(int(c) for c in TAB10[m % len(TAB10)])
        for k, share in enumerate(arr.tolist()):
            y = k * group + BAR_ROW_PX // 4 + m * BAR_ROW_PX
            length = round(share / top * BARS_PX)
            if length:
                draw.rectangle((0, y, length - 1, y + BAR_ROW_PX - 1), fill=rgb)
    xa = _data_axis("share of grid cells", np.array([0.0, top]), np.array([BARS_PX]))
    ya = Axis("", tuple((float(h - (k + 0.5) * group), str(name))
                        for k, name in enumerate(class_names)))  # fmt: skip
    legend = [(TAB10[m % len(TAB10)], model) for m, model in enumerate(rows)]
    return png_bytes(panel(np.asarray(img), xa, ya, title, legend=legend))


# ---------------------------------------------------------------------------- rows of images
ROW_CELL_PX = 56  # an image of a row figure is enlarged by a whole factor to about this side
SMALL_FONT_PX = 10  # the value above and the caption under each image


def image_rows_png(
    images: ArrayLike,
    row_labels: Sequence[str],
    values: ArrayLike | None = None,
    captions: Sequence[Sequence[str]] | None = None,
    caption_classes: ArrayLike | None = None,
    title: str = "",
) -> bytes:
    """Rows of images with a label left of each row, an optional value above and caption
    under each image: a traversal (a row per dim), an interpolation (one row), a
    reconstruction grid or prior samples.

    Parameters
    ----------
    images : array_like, shape [k, steps, C, H, W], C in (1, 3)
        Images in [0, 1].
    row_labels : sequence of str, length k
        Shown left of each row (e.g. "z₃ (var 1.2)"); empty strings take no room.
    values : array_like, shape [k, steps], optional
        The latent value of each image, shown above it (``"%.2g"``).
    captions : sequence of sequences of str, shape [k][steps], optional
        Text under each image (e.g. the classifier's label and confidence).
    caption_classes : array_like of int, shape [k, steps], optional
        Class index of each caption: drawn in that class's colour (tab10, as every
        class-coloured figure).
    title : str, optional
        Figure title (plain text), wrapped.

    Returns
    -------
    bytes
        The PNG file.
    """
    arr = check_cells(images)
    k, steps, _, h, w = arr.shape
    if len(row_labels) != k:
        raise AtlasError(f"row_labels: {len(row_labels)} given, expected {k} (one per row)")
    vals = None if values is None else check_array(values, "values", shape=(k, steps))
    if captions is not None and (len(captions) != k or any(len(r) != steps for r in captions)):
        raise AtlasError(f"captions: expected {k} rows of {steps} strings")
    classes = (
        None if caption_classes is None
        else check_array(caption_classes, "caption_classes", shape=(k, steps), dtype_kind="i")
    )  # fmt: skip
    scale = max(1, round(ROW_CELL_PX / max(h, w)))
    cw, ch = w * scale, h * scale
    small = SMALL_FONT_PX
    _, sh = _text_size("Ag", small)
    cap_texts = ([[" ".join(str(c).split())[:14] for c in row] for row in captions]
                 if captions else None)  # fmt: skip
    col_w = max([cw, *(_text_size(c, small)[0] for r in cap_texts or [] for c in r)]) + PAD
    label_lines = [str(s).split("\n") for s in row_labels]  # e.g. "z₂\nvar 0.01"
    label_w = max((_text_size(t)[0] for lines in label_lines for t in lines), default=0)
    left = PAD + (label_w + PAD if label_w else 0)
    row_h = (sh if vals is not None else 0) + ch + (sh if cap_texts else 0) + PAD
    lines = _wrap(title, max(TITLE_CHARS, (left + steps * col_w) // 8))
    _, th = _text_size("Ag")
    top = PAD + len(lines) * th + (PAD if lines else 0)
    width = max(
        left + steps * col_w + PAD, max((_text_size(s)[0] for s in lines), default=0) + 2 * PAD
    )
    out = Image.new("RGB", (width, top + k * row_h + PAD), WHITE)
    draw = ImageDraw.Draw(out)
    for r, line in enumerate(lines):
        draw.text(((width - _text_size(line)[0]) / 2, PAD + r * th), line, fill=INK, font=_font())
    pixels = _to_rgb8(arr.transpose(0, 1, 3, 4, 2))  # [k, steps, H, W, 3]
    for r in range(k):
        y0 = top + r * row_h
        iy = y0 + (sh if vals is not None else 0)
        ly = iy + (ch - th * len(label_lines[r])) / 2
        for n, text in enumerate(label_lines[r]):
            draw.text((PAD, ly + n * th), text, fill=INK, font=_font())
        for s in range(steps):
            x0 = left + s * col_w
            ix = x0 + (col_w - PAD - cw) // 2
            out.paste(Image.fromarray(_scaled(pixels[r, s], float(scale))), (ix, iy))
            if vals is not None:
                text = f"{vals[r, s]:.2g}"
                draw.text((x0 + (col_w - PAD - _text_size(text, small)[0]) / 2, y0), text,
                          fill=INK, font=_font(small))  # fmt: skip
            if cap_texts is not None:
                text = cap_texts[r][s]
                ink = INK if classes is None else tuple(int(c) for c in TAB10[classes[r, s] % 10])
                draw.text((x0 + (col_w - PAD - _text_size(text, small)[0]) / 2, iy + ch), text,
                          fill=ink, font=_font(small))  # fmt: skip
    return png_bytes(out)
