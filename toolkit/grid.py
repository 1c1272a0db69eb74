"""Latent grids: which plane to sweep (``Plane``), where on it to decode (``GridSpec``) and the
streamed decode itself.

Convention everywhere: ``x`` holds the first plane coordinate (columns), ``y`` the second
(rows), both increasing; ``cells[i, j]`` is the image decoded at ``plane.point(x[j], y[i])``.
Pictures put ``y[0]`` at the bottom, so the second coordinate increases upward.

A plane through a latent space of any dimension ``d`` is ``z = origin + u·basis[0] + v·basis[1]``:
- ``axes I J``: ``basis`` = the unit vectors of dims I and J; the other dims sit at ``fixed``
  (the test embeddings' mean by default, 0 with ``prior``, or explicit values); ``u, v`` are
  latent units. For a 2-D model this is simply ``(z₀, z₁)``.
- ``pca``: through the embeddings' mean along their two principal directions, each basis vector
  scaled by its direction's standard deviation, so ``u, v`` count standard deviations and the
  default range [-4, 4] covers the data.
- ``active``: ``axes I J`` with I, J the two dims whose test embeddings vary most (largest
  variance of the posterior means, I the larger): the default, so a model of many dims is
  not shown along two dims it may not use. For a 2-D model (or without embeddings) it is
  ``axes 0 1``.
- ``images A B C``: the affine plane through the embeddings of test images A, B and C, origin
  at A, axes orthonormalised (Gram–Schmidt: ``u`` along B − A, ``v`` the part of C − A
  orthogonal to it), ``u, v`` in latent units; the three images' coordinates are its
  ``marks``, drawn on every map.

Latent dims are numbered from 0 everywhere: flags, labels (``z₀``), file names, JSON.
"""

from __future__ import annotations

import contextlib
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
PLANES = ("active", "axes", "pca", "images")
# Three embeddings closer to one line than this (the distance of C from the line through A and
# B, relative to the larger of |B − A| and |C − A|) span no plane: float32 codes carry ~7 digits.
COLLINEAR_TOLERANCE = 1e-5
# An axis along which the test embeddings' standard deviation is at most this (latent units)
# shows nearly one image per row or column: the variance 0.01 of Burda et al.'s inactive units.
SPREAD_WARNING = 0.1
FIXED = ("mean", "prior")
# Cells held in memory at once at full resolution (28×28 float32: about 400 MB).
DEFAULT_MEMORY_PIXELS = 131_072 * 784
SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def dim_label(i: int) -> str:
    """``z₀`` for dimension 0: latent dims are numbered from 0 in every label, as in the
    flags (``--plane axes 0 1``), file names and JSON."""
    return "z" + str(i).translate(SUBSCRIPTS)


def most_varied_dims(embeddings: np.ndarray) -> tuple[int, int]:
    """The two dims of largest variance of ``embeddings`` ``[N, d]``, larger first (ties: the
    lower index first)."""
    var = np.asarray(embeddings, np.float64).var(axis=0)
    order = np.lexsort((np.arange(len(var)), -var))
    return int(order[0]), int(order[1])


@dataclass(frozen=True)
class Plane:
    """A 2-D plane through the latent space: ``z = origin + u·basis[0] + v·basis[1]``."""

    kind: str  # "axes" | "active" | "pca" | "images"
    origin: np.ndarray  # [d]
    basis: np.ndarray  # [2, d]
    labels: tuple[str, str]  # axis labels: ("z₀", "z₁"), ("z₃", "z₆") or ("PC1", "PC2")
    fixed: str = ""  # where the other dims sit: "mean", "prior", "values" or "" (none)
    # points to mark on every map: (label, u, v), e.g. the three images of an images plane
    marks: tuple[tuple[str, float, float], ...] = ()

    @property
    def latent_dim(self) -> int:
        return int(self.origin.shape[0])

    def points(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Latent vectors ``[N, d]`` (float32) at plane coordinates ``u``, ``v`` ``[N]``."""
        z = self.origin[None, :] + np.outer(u, self.basis[0]) + np.outer(v, self.basis[1])
        return z.astype(np.float32)

    def project(self, z: np.ndarray) -> np.ndarray:
        """Plane coordinates ``[N, 2]`` of codes ``[N, d]`` (orthogonal projection)."""
        centred = np.asarray(z, np.float64) - self.origin[None, :]
        norms = (self.basis**2).sum(axis=1)
        return (centred @ self.basis.T) / norms[None, :]

    def to_json(self) -> dict:
        out = {
            "kind": self.kind,
            "labels": list(self.labels),
            "origin": [float(f"{v:.12g}") for v in self.origin],
            "basis": [[float(f"{v:.12g}") for v in row] for row in self.basis],
            "fixed": self.fixed,
        }
        if self.marks:
            out["marks"] = [{"label": t, "u": float(f"{u:.12g}"), "v": float(f"{v:.12g}")}
                            for t, u, v in self.marks]  # fmt: skip
        return out

    def spread(self, embeddings: np.ndarray) -> tuple[float, float]:
        """Standard deviation of the embeddings ``[N, d]`` along each plane axis, in latent
        units (a PCA axis counts standard deviations: its basis vector's length converts)."""
        coords = self.project(embeddings)
        norms = np.sqrt((self.basis**2).sum(axis=1))
        s = coords.std(axis=0) * norms
        return float(s[0]), float(s[1])

    def warning(self, embeddings: np.ndarray | None, limit: float = SPREAD_WARNING) -> str:
        """One line when the test embeddings barely vary along an axis of this plane (its
        grid then shows nearly the same image along that axis); "" otherwise."""
        if embeddings is None:
            return ""
        s = self.spread(embeddings)
        thin = [f"{lab} (std {v:.2g})" for lab, v in zip(self.labels, s, strict=True) if v <= limit]
        if not thin:
            return ""
        return (
            f"the test embeddings barely vary along {' and '.join(thin)}: the grid shows "
            "nearly the same image along it; try --plane active (the two most varied dims), "
            "--plane pca or --mode auto"
        )

    def describe(self) -> str:
        if self.latent_dim == 2 and self.kind in ("axes", "active"):
            return ""
        if self.kind == "pca":
            return "principal plane (PC1, PC2 in standard deviations) through the mean"
        if self.kind == "images":
            names = ", ".join(t for t, _, _ in self.marks)
            return f"plane through test images {names} (orthonormal axes, latent units)"
        rest = {"mean": "the embedding mean", "prior": "0", "values": "the given values"}
        how = " (the two most varied dims)" if self.kind == "active" else ""
        return f"plane {self.labels[0]}, {self.labels[1]}{how}; other dims at {rest[self.fixed]}"


@dataclass(frozen=True)
class GridSpec:
    """Where to decode.

    ``linear``: ``steps`` evenly spaced points per axis over ``x_range`` / ``y_range``
    (default: the seed study's 21×21 over [-4, 4]²). ``icdf``: points at the Gaussian quantiles
    ``linspace(q, 1-q, steps)`` (Kingma & Welling's figure; ``q`` keeps the ends finite).
    ``auto``: the range of each axis is the ``percentiles`` of the test embeddings' plane
    coordinates (widened to hold the plane's marks). ``plane``: ``active`` (the default: the
    two most varied dims), ``axes`` (dims ``axes``, the others at ``fixed``: "mean" — the
    embeddings' mean, "prior" — 0, or one value per latent dim), ``pca``, or ``images``
    (through the embeddings of test images ``images`` = (A, B, C)).
    """

    steps: tuple[int, int] = (21, 21)
    x_range: tuple[float, float] = (-4.0, 4.0)
    y_range: tuple[float, float] = (-4.0, 4.0)
    mode: str = "linear"
    quantile: float = 0.05
    percentiles: tuple[float, float] = (1.0, 99.0)
    plane: str = "active"
    axes: tuple[int, int] = (0, 1)
    fixed: str | tuple[float, ...] = "mean"
    images: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.plane == "active" and tuple(self.axes) != (0, 1):
            # axes given without a plane (GridSpec(axes=(2, 0))) mean that plane
            object.__setattr__(self, "plane", "axes")
        if self.mode not in MODES:
            raise AtlasError(f"grid mode {self.mode!r}: expected one of {', '.join(MODES)}")
        if self.plane not in PLANES:
            raise AtlasError(f"grid plane {self.plane!r}: expected one of {', '.join(PLANES)}")
        for n in self.steps:
            if not isinstance(n, int) or isinstance(n, bool) or n < 2:
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
        if self.plane == "images":
            if len(self.images) != 3 or len(set(self.images)) != 3 or min(self.images) < 0:
                raise AtlasError(
                    f"--plane images {' '.join(map(str, self.images))}: expected three "
                    "different test image indices A B C >= 0"
                )
        elif self.images:
            raise AtlasError(f"grid images {self.images}: only for plane 'images'")
        if isinstance(self.fixed, str):
            if self.fixed not in FIXED:
                raise AtlasError(
                    f"grid fixed {self.fixed!r}: expected 'mean', 'prior' or one value per dim"
                )
        elif not all(math.isfinite(v) for v in self.fixed):
            raise AtlasError("grid fixed values: expected finite numbers")

    @property
    def n_cells(self) -> int:
        return self.steps[0] * self.steps[1]

    @property
    def default_plane(self) -> bool:
        """The default plane, or dims 0 and 1 (the same plane for a 2-D model)."""
        return self.plane == "active" or (self.plane == "axes" and self.axes == (0, 1))

    def key(self) -> str:
        """A short name for file names and metrics.json keys: ``linear_21x21`` for the default
        plane (the two most varied dims; dims 0 and 1 of a 2-D model), with the plane appended
        otherwise (``linear_21x21_z2z5`` for ``axes 2 5``: dims numbered from 0 as in the
        flags, ``auto_21x21_pca``, ``auto_21x21_img3-10-7``)."""
        base = f"{self.mode}_{self.steps[0]}x{self.steps[1]}"
        if self.plane == "pca":
            return base + "_pca"
        if self.plane == "images":
            return base + "_img" + "-".join(map(str, self.images))
        if not self.default_plane:
            return base + f"_z{self.axes[0]}z{self.axes[1]}"
        return base

    def describe_plane(self) -> str:
        """The plane in words, "" for the default (the two most varied dims)."""
        if self.plane == "pca":
            return "principal plane (PCA)"
        if self.plane == "images":
            return "plane through test images " + ", ".join(map(str, self.images))
        if not self.default_plane:
            return f"plane of dims {self.axes[0]} and {self.axes[1]}"
        return ""

    def describe(self) -> str:
        nx, ny = self.steps
        if self.mode == "icdf":
            return f"{nx}×{ny} at N(0,1) quantiles {self.quantile:g}..{1 - self.quantile:g}"
        if self.mode == "auto":
            lo, hi = self.percentiles
            return (
                f"{nx}×{ny} over the {_ordinal(lo)}–{_ordinal(hi)} percentile of the test "
                "embeddings"
            )
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        return f"{nx}×{ny} over [{x0:g},{x1:g}]×[{y0:g},{y1:g}]"

    def resolve_plane(self, latent_dim: int, embeddings: np.ndarray | None = None) -> Plane:
        """The plane this spec sweeps in a ``latent_dim``-dimensional space."""
        if latent_dim < 2:
            raise AtlasError(f"latent dim {latent_dim}: a grid needs at least 2 latent dims")
        if self.plane == "pca":
            if embeddings is None:
                raise AtlasError("grid plane pca: needs the encoder's test embeddings (no encoder)")
            emb = np.asarray(embeddings, np.float64)
            mean = emb.mean(axis=0)
            # principal directions of the centred codes; signs fixed so each direction's largest
            # component is positive (stable across runs and platforms)
            _, s, vt = np.linalg.svd(emb - mean, full_matrices=False)
            std = s[:2] / math.sqrt(max(len(emb) - 1, 1))
            if not (std > 0).all():
                raise AtlasError("grid plane pca: the embeddings have no spread in two directions")
            v = vt[:2] * np.sign(vt[:2][np.arange(2), np.abs(vt[:2]).argmax(axis=1)])[:, None]
            return Plane("pca", mean, v * std[:, None], ("PC1", "PC2"))
        if self.plane == "images":
            return self._images_plane(latent_dim, embeddings)
        i, j = self.axes
        kind = "axes"
        if self.plane == "active" and latent_dim > 2:  # a 2-D model: simply (z₀, z₁)
            kind = "active"
            if embeddings is not None:
                i, j = most_varied_dims(embeddings)
        if max(i, j) >= latent_dim:
            raise AtlasError(
                f"grid axes {self.axes}: the model has only {latent_dim} latent dims "
                f"(0..{latent_dim - 1})"
            )
        if isinstance(self.fixed, tuple) and self.fixed:
            if len(self.fixed) != latent_dim:
                raise AtlasError(
                    f"grid fixed values: {len(self.fixed)} given, expected {latent_dim} "
                    "(one per latent dim)"
                )
            origin, how = np.asarray(self.fixed, np.float64), "values"
        elif self.fixed == "mean" and embeddings is not None and latent_dim > 2:
            origin, how = np.asarray(embeddings, np.float64).mean(axis=0), "mean"
        else:  # "prior", or no embeddings (a decoder-only model): the prior's mean, 0
            origin, how = np.zeros(latent_dim), "prior"
        origin = origin.copy()
        origin[[i, j]] = 0.0
        basis = np.zeros((2, latent_dim))
        basis[0, i] = basis[1, j] = 1.0
        return Plane(kind, origin, basis, (dim_label(i), dim_label(j)),
                     how if latent_dim > 2 else "")  # fmt: skip

    def _images_plane(self, latent_dim: int, embeddings: np.ndarray | None) -> Plane:
        """The plane through the embeddings of test images A, B, C (see the module doc)."""
        flag = "--plane images " + " ".join(map(str, self.images))
        if embeddings is None:
            raise AtlasError(f"{flag}: needs the encoder's test embeddings (no encoder)")
        emb = np.asarray(embeddings, np.float64)
        n = len(emb)
        if max(self.images) >= n:
            raise AtlasError(f"{flag}: the test set has {n} images; expected indices in 0..{n - 1}")
        a, b, c = (emb[i] for i in self.images)
        ab, ac = b - a, c - a
        scale = max(np.linalg.norm(ab), np.linalg.norm(ac))
        e1 = ab / np.linalg.norm(ab) if np.linalg.norm(ab) > 0 else ab
        resid = ac - (ac @ e1) * e1
        if (
            scale == 0
            or np.linalg.norm(ab) <= COLLINEAR_TOLERANCE * scale
            or (np.linalg.norm(resid) <= COLLINEAR_TOLERANCE * scale)
        ):
            raise AtlasError(
                f"{flag}: the three images' embeddings lie on one line (or coincide), so they "
                "span no plane; expected three images whose codes are not collinear (pick "
                "another third image)"
            )
        e2 = resid / np.linalg.norm(resid)
        basis = np.stack([e1, e2])
        marks = tuple(
            (f"#{i}", float((z - a) @ e1), float((z - a) @ e2))
            for i, z in zip(self.images, (a, b, c), strict=True)
        )
        labels = (f"u (#{self.images[0]}→#{self.images[1]})", f"v (towards #{self.images[2]})")
        return Plane("images", a.copy(), basis, labels, "", marks)

    def coordinates(
        self, embeddings: np.ndarray | None = None, plane: Plane | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The plane coordinates ``x`` (length nx) and ``y`` (length ny), increasing."""
        nx, ny = self.steps
        if self.mode == "linear":
            x, y = np.linspace(*self.x_range, nx), np.linspace(*self.y_range, ny)
        elif self.mode == "icdf":
            dist = NormalDist()
            q = self.quantile

            def axis(n: int) -> np.ndarray:
                return np.array([dist.inv_cdf(p) for p in np.linspace(q, 1 - q, n)])

            x, y = axis(nx), axis(ny)
        else:
            if embeddings is None:
                raise AtlasError("grid mode auto: needs the encoder's test embeddings (no encoder)")
            plane = plane or self.resolve_plane(embeddings.shape[1], embeddings)
            coords = plane.project(embeddings)
            out = []
            for k, n in enumerate((nx, ny)):
                lo, hi = np.percentile(coords[:, k], self.percentiles)
                if plane.marks:  # the marked images inside the grid, with a margin
                    at = [m[1 + k] for m in plane.marks]
                    pad = 0.05 * (max(hi, *at) - min(lo, *at))
                    lo, hi = min(lo, min(at) - pad), max(hi, max(at) + pad)
                if not hi > lo:
                    raise AtlasError(
                        f"grid mode auto: embeddings have no spread along {plane.labels[k]}"
                    )
                out.append(np.linspace(lo, hi, n))
            x, y = out[0], out[1]
        _check_distinct(x, "x")
        _check_distinct(y, "y")
        return x, y

    def points(
        self, x: np.ndarray, y: np.ndarray, plane: Plane, start: int, stop: int
    ) -> np.ndarray:
        """Latent vectors for flat cell indices ``start..stop`` (row-major: k = i·nx + j)."""
        k = np.arange(start, stop)
        return plane.points(x[k % len(x)], y[k // len(x)])


def _check_distinct(coords: np.ndarray, name: str) -> None:
    """Grid points that collapse in float32 would decode to one image under distinct labels."""
    c32 = coords.astype(np.float32)
    if not (np.diff(c32) > 0).all():
        raise AtlasError(
            f"grid {name} coordinates {coords[0]:g}..{coords[-1]:g}: neighbouring points are "
            "equal in float32 (the model's precision); expected a wider range or fewer steps"
        )


def _factors(h: int, w: int) -> list[int]:
    return [f for f in range(1, min(h, w) + 1) if h % f == 0 and w % f == 0]


def cell_pixels(n_cols: int, image_shape: tuple[int, int, int] = (1, 28, 28),
                max_pixels: int = 2048) -> int:  # fmt: skip
    """Widest cell (``W / f`` for a whole factor ``f`` of both H and W) so that a mosaic row of
    ``n_cols`` cells fits ``max_pixels``."""
    _, h, w = image_shape
    for f in _factors(h, w):
        if n_cols * (w // f) <= max_pixels:
            return w // f
    return w // _factors(h, w)[-1]


def downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """Area-average ``[N, C, H, W]`` images by ``factor`` (which divides H and W)."""
    if factor == 1:
        return images
    n, c, h, w = images.shape
    return images.reshape(n, c, h // factor, factor, w // factor, factor).mean(axis=(3, 5))


@dataclass
class DecodedGrid:
    """A decoded grid: ``cells`` ``[ny, nx, C, h, w]`` (the full image size unless downsampled
    for a large grid), ``brightness`` ``[ny, nx]`` (mean over pixels and channels of the
    full-resolution image), plane coordinates ``x``/``y`` and the ``plane`` they live on."""

    x: np.ndarray
    y: np.ndarray
    cells: np.ndarray
    brightness: np.ndarray
    spec: GridSpec
    plane: Plane

    @property
    def labels(self) -> tuple[str, str]:
        return self.plane.labels


def iter_decode(
    decoder: OnnxModel,
    spec: GridSpec,
    x: np.ndarray,
    y: np.ndarray,
    plane: Plane,
    batch_size: int = 4096,
    progress: bool = False,
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream the grid: yield ``(first flat index, images [B, C, H, W])`` batch by batch."""
    if batch_size < 1:
        raise AtlasError(f"batch size {batch_size}: expected >= 1")
    n = len(x) * len(y)
    bar = tqdm(total=n, desc="decode", unit="cell", disable=None if progress else True, leave=False)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        yield start, decoder(spec.points(x, y, plane, start, stop), batch_size)
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
    memory_pixels: int = DEFAULT_MEMORY_PIXELS,
    overwrite: bool = False,
) -> DecodedGrid:
    """Decode ``spec`` through ``decoder`` in batches, in bounded memory.

    Large grids keep cells downsampled to ``cell_px`` pixels wide (default: what fits a
    2048-px mosaic); the full-resolution cells go to ``raw_path`` (``.npy``,
    ``[ny, nx, C, H, W]`` float32, written through a memory map and moved into place at the
    end) when asked; ``overwrite``: replace a file there that latent-atlas did not write.
    """
    plane = spec.resolve_plane(decoder.latent_dim, embeddings)
    x, y = spec.coordinates(embeddings, plane)
    nx, ny = len(x), len(y)
    c, h, w = decoder.image_shape
    px = cell_px or cell_pixels(nx, decoder.image_shape)
    widths = {w // f: f for f in _factors(h, w)}
    if px not in widths:
        raise AtlasError(
            f"cell pixels {px}: expected one of {sorted(widths)} (the image width {w} divided "
            "by a whole factor of both height and width)"
        )
    factor = widths[px]
    if factor == 1 and spec.n_cells * c * h * w > memory_pixels:
        raise AtlasError(
            f"grid of {spec.n_cells} cells at full resolution needs "
            f"{spec.n_cells * c * h * w * 4 / 2**30:.1f} GiB; the limit is "
            f"{memory_pixels // (c * h * w)} cells: use a smaller cell size (downsampled mosaic) "
            "or write raw cells to disk"
        )
    cells = np.empty((ny * nx, c, h // factor, w // factor), np.float32)
    brightness = np.empty(ny * nx, np.float32)
    with contextlib.ExitStack() as stack:
        flat = None
        if raw_path is not None:  # unique temp name, preallocated, moved into place at the end
            from latent_atlas.toolkit.atomic import open_npy

            raw = stack.enter_context(open_npy(raw_path, (ny, nx, c, h, w), np.float32, overwrite))
            flat = raw.reshape(ny * nx, c, h, w)  # a view on the same mapped file
        for start, images in iter_decode(decoder, spec, x, y, plane, batch_size, progress):
            stop = start + len(images)
            cells[start:stop] = downsample(images, factor)
            brightness[start:stop] = images.mean(axis=(1, 2, 3))
            if flat is not None:
                flat[start:stop] = images
        del flat
    cells = cells.reshape(ny, nx, c, h // factor, w // factor)
    return DecodedGrid(x, y, cells, brightness.reshape(ny, nx), spec, plane)


def _ordinal(p: float) -> str:
    """1 → "1st", 2 → "2nd", 11 → "11th", 99 → "99th", 2.5 → "2.5th"."""
    text = f"{p:g}"
    if p != int(p):
        return f"{text}th"
    n = int(p)
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{text}{suffix}"
