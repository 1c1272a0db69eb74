"""Latent grids: where to decode (``GridSpec``) and the streamed decode itself.

Convention everywhere: ``x`` holds the z₁ coordinates (columns), ``y`` the z₂ coordinates
(rows), both increasing; ``cells[i, j]`` is the image decoded at ``(z₁=x[j], z₂=y[i])``.
Pictures put ``y[0]`` at the bottom, so z₂ increases upward.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.runtime import OnnxModel
from tqdm.auto import tqdm

MODES = ("linear", "icdf", "auto")
# Cells held in memory at once, at full 28×28 float32 resolution: about 400 MB.
DEFAULT_MEMORY_CELLS = 131_072


@dataclass(frozen=True)
class GridSpec:
    """Where to decode.

    ``linear``: ``steps`` evenly spaced points per axis over ``x_range`` / ``y_range``
    (default: the seed study's 21×21 over [-4, 4]²). ``icdf``: points at the Gaussian quantiles
    ``linspace(q, 1-q, steps)`` (Kingma & Welling's figure; ``q`` keeps the ends finite).
    ``auto``: the range of each axis is the ``percentiles`` of the encoder's test embeddings.
    For latent_dim > 2, ``axes`` picks the two swept dimensions and ``fixed`` the value of the
    others (default 0).
    """

    steps: tuple[int, int] = (21, 21)
    x_range: tuple[float, float] = (-4.0, 4.0)
    y_range: tuple[float, float] = (-4.0, 4.0)
    mode: str = "linear"
    quantile: float = 0.05
    percentiles: tuple[float, float] = (1.0, 99.0)
    axes: tuple[int, int] = (0, 1)
    fixed: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise AtlasError(f"grid mode {self.mode!r}: expected one of {', '.join(MODES)}")
        for n in self.steps:
            if not isinstance(n, int) or n < 2:
                raise AtlasError(f"grid steps {n}: expected an integer >= 2 per axis")
        for name, (lo, hi) in (("x range", self.x_range), ("y range", self.y_range)):
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise AtlasError(f"grid {name} [{lo}, {hi}]: expected finite numbers")
            if lo >= hi:
                raise AtlasError(f"grid {name} [{lo}, {hi}]: expected low < high")
        if not 0 < self.quantile < 0.5:
            raise AtlasError(f"grid icdf quantile {self.quantile}: expected 0 < q < 0.5")
        lo_p, hi_p = self.percentiles
        if not 0 <= lo_p < hi_p <= 100:
            raise AtlasError(
                f"grid percentiles {self.percentiles}: expected 0 <= low < high <= 100"
            )
        if self.axes[0] == self.axes[1] or min(self.axes) < 0:
            raise AtlasError(f"grid axes {self.axes}: expected two different dimensions >= 0")
        if not all(math.isfinite(v) for v in self.fixed):
            raise AtlasError("grid fixed values: expected finite numbers")

    @property
    def n_cells(self) -> int:
        return self.steps[0] * self.steps[1]

    def describe(self) -> str:
        nx, ny = self.steps
        if self.mode == "icdf":
            return f"{nx}×{ny} at N(0,1) quantiles {self.quantile:g}..{1 - self.quantile:g}"
        if self.mode == "auto":
            lo, hi = self.percentiles
            return f"{nx}×{ny} over the {lo:g}th–{hi:g}th percentile of the test embeddings"
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        return f"{nx}×{ny} over [{x0:g},{x1:g}]×[{y0:g},{y1:g}]"

    def coordinates(self, embeddings: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The z₁ values ``x`` (length nx) and z₂ values ``y`` (length ny), increasing."""
        nx, ny = self.steps
        if self.mode == "linear":
            return (np.linspace(*self.x_range, nx), np.linspace(*self.y_range, ny))
        if self.mode == "icdf":
            dist = NormalDist()
            q = self.quantile

            def axis(n: int) -> np.ndarray:
                return np.array([dist.inv_cdf(p) for p in np.linspace(q, 1 - q, n)])

            return axis(nx), axis(ny)
        if embeddings is None:
            raise AtlasError("grid mode auto: needs the encoder's test embeddings")
        out = []
        for axis_dim, n in zip(self.axes, (nx, ny), strict=True):
            lo, hi = np.percentile(embeddings[:, axis_dim], self.percentiles)
            if not hi > lo:
                raise AtlasError(f"grid mode auto: embeddings have no spread along z{axis_dim + 1}")
            out.append(np.linspace(lo, hi, n))
        return out[0], out[1]

    def points(
        self, x: np.ndarray, y: np.ndarray, latent_dim: int, start: int, stop: int
    ) -> np.ndarray:
        """Latent vectors for flat cell indices ``start..stop`` (row-major: k = i·nx + j)."""
        if max(self.axes) >= latent_dim:
            raise AtlasError(f"grid axes {self.axes}: the model has only {latent_dim} latent dims")
        if self.fixed and len(self.fixed) != latent_dim:
            raise AtlasError(
                f"grid fixed values: {len(self.fixed)} given, expected {latent_dim} (one per dim)"
            )
        k = np.arange(start, stop)
        z = np.tile(np.asarray(self.fixed or [0.0] * latent_dim, np.float32), (len(k), 1))
        z[:, self.axes[0]] = x[k % len(x)]
        z[:, self.axes[1]] = y[k // len(x)]
        return z


def cell_pixels(n_cols: int, max_pixels: int = 2048) -> int:
    """Largest divisor of 28 so that a mosaic row of ``n_cols`` cells fits ``max_pixels``."""
    for px in (28, 14, 7, 4, 2, 1):
        if n_cols * px <= max_pixels:
            return px
    return 1


def downsample(images: np.ndarray, px: int) -> np.ndarray:
    """Area-average ``[N, 28, 28]`` images to ``[N, px, px]`` (``px`` divides 28)."""
    if px == 28:
        return images
    f = 28 // px
    return images.reshape(len(images), px, f, px, f).mean(axis=(2, 4))


@dataclass
class DecodedGrid:
    """A decoded grid: ``cells`` ``[ny, nx, px, px]`` (px = 28 unless downsampled for a large
    grid), ``brightness`` ``[ny, nx]`` (mean of the full-resolution image), coordinates."""

    x: np.ndarray
    y: np.ndarray
    cells: np.ndarray
    brightness: np.ndarray
    spec: GridSpec


def iter_decode(
    decoder: OnnxModel,
    spec: GridSpec,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int = 4096,
    progress: bool = False,
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream the grid: yield ``(first flat index, images [B, 28, 28])`` batch by batch."""
    if batch_size < 1:
        raise AtlasError(f"batch size {batch_size}: expected >= 1")
    n = len(x) * len(y)
    bar = tqdm(total=n, desc="decode", unit="cell", disable=not progress, leave=False)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        yield start, decoder(spec.points(x, y, decoder.latent_dim, start, stop), batch_size)
        bar.update(stop - start)
    bar.close()


def decode_grid(
    decoder: OnnxModel,
    spec: GridSpec,
    embeddings: np.ndarray | None = None,
    batch_size: int = 4096,
    cell_px: int | None = None,
    raw_path: Path | None = None,
    progress: bool = False,
    memory_cells: int = DEFAULT_MEMORY_CELLS,
) -> DecodedGrid:
    """Decode ``spec`` through ``decoder`` in batches, in bounded memory.

    Large grids keep cells downsampled to ``cell_px`` (default: what fits a 2048-px mosaic);
    the full-resolution cells go to ``raw_path`` (``.npy``, ``[ny, nx, 28, 28]`` float32,
    written through a memory map and moved into place at the end) when asked.
    """
    x, y = spec.coordinates(embeddings)
    nx, ny = len(x), len(y)
    px = cell_px or cell_pixels(nx)
    if px not in (28, 14, 7, 4, 2, 1):
        raise AtlasError(f"cell pixels {px}: expected a divisor of 28")
    if px == 28 and spec.n_cells > memory_cells:
        raise AtlasError(
            f"grid of {spec.n_cells} cells at full resolution needs "
            f"{spec.n_cells * 784 * 4 / 2**30:.1f} GiB; the limit is {memory_cells} cells: "
            "use a smaller cell size (downsampled mosaic) or write raw cells to disk"
        )
    cells = np.empty((ny * nx, px, px), np.float32)
    brightness = np.empty(ny * nx, np.float32)
    raw = tmp = None
    if raw_path is not None:
        from latent_atlas.toolkit.atomic import ensure_writable_dir

        raw_path = Path(raw_path)
        ensure_writable_dir(raw_path.parent)
        tmp = raw_path.with_name(f".{raw_path.name}.tmp.npy")
        raw = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(ny, nx, 28, 28))
        flat = raw.reshape(ny * nx, 28, 28)  # a view on the same mapped file
    try:
        for start, images in iter_decode(decoder, spec, x, y, batch_size, progress):
            stop = start + len(images)
            cells[start:stop] = downsample(images, px)
            brightness[start:stop] = images.mean(axis=(1, 2))
            if raw is not None:
                flat[start:stop] = images
        if raw is not None and raw_path is not None and tmp is not None:
            raw.flush()
            del raw, flat
            tmp.replace(raw_path)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    return DecodedGrid(x, y, cells.reshape(ny, nx, px, px), brightness.reshape(ny, nx), spec)
