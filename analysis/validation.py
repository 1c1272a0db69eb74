"""Boundary checks shared by every metric in :mod:`analysis`.

Each public metric validates its inputs once, here, and raises
:class:`toolkit.errors.AtlasError` with a message of the form
``"<argument>: <what was found>, expected <what was expected>"``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from latent_atlas.toolkit.errors import AtlasError
from numpy.typing import ArrayLike

_KINDS = {"f": ("biuf", "real numbers"), "i": ("iu", "integers")}


def _layout(shape: Sequence[int | str | None]) -> str:
    return "[" + ", ".join("?" if s is None else str(s) for s in shape) + "]"


def check_array(
    a: ArrayLike,
    name: str,
    *,
    ndim: int | None = None,
    min_ndim: int = 0,
    shape: Sequence[int | str | None] | None = None,
    finite: bool = True,
    dtype_kind: str | None = "f",
    bounds: tuple[float, float] | None = None,
) -> np.ndarray:
    """Convert ``a`` to an array and check it, or raise ``AtlasError`` naming ``name``.

    Parameters
    ----------
    a : array_like
        The value to check.
    name : str
        Argument name used in error messages.
    ndim : int, optional
        Exact number of dimensions required.
    min_ndim : int, default 0
        Minimum number of dimensions required.
    shape : sequence of int, str or None, optional
        Required shape. An int must match exactly; ``None`` or a str is a wildcard (a str
        names the axis in error messages, e.g. ``("ny", "nx", "H", "W")``). Implies ``ndim``.
    finite : bool, default True
        Reject NaN and inf.
    dtype_kind : {"f", "i", None}, default "f"
        ``"f"``: real numbers (bool, int or float), returned as float64. ``"i"``: integers,
        returned as int64. ``None``: no dtype check or conversion.
    bounds : (float, float), optional
        Inclusive range every value must lie in.

    Returns
    -------
    numpy.ndarray
        The checked array. Empty arrays are always rejected.
    """
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:
        raise AtlasError(f"{name}: cannot be read as an array ({exc}), expected an array") from exc
    if shape is not None:
        ok = arr.ndim == len(shape) and all(
            not isinstance(s, numbers.Integral) or s == n
            for s, n in zip(shape, arr.shape, strict=True)
        )
        if not ok:
            raise AtlasError(f"{name}: shape {arr.shape}, expected {_layout(shape)}")
    if ndim is not None and arr.ndim != ndim:
        raise AtlasError(f"{name}: shape {arr.shape} ({arr.ndim}-D), expected a {ndim}-D array")
    if arr.ndim < min_ndim:
        raise AtlasError(
            f"{name}: shape {arr.shape} ({arr.ndim}-D), expected at least {min_ndim}-D"
        )
    if arr.size == 0:
        raise AtlasError(f"{name}: empty array of shape {arr.shape}, expected at least one value")
    if dtype_kind is not None:
        kinds, words = _KINDS[dtype_kind]
        if arr.dtype.kind not in kinds:
            raise AtlasError(f"{name}: dtype {arr.dtype}, expected {words}")
        arr = arr.astype(np.float64 if dtype_kind == "f" else np.int64, copy=False)
    if finite and arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        raise AtlasError(f"{name}: contains NaN or inf, expected finite values")
    if bounds is not None:
        lo, hi = float(np.min(arr)), float(np.max(arr))
        if lo < bounds[0] or hi > bounds[1]:
            raise AtlasError(
                f"{name}: values in [{lo:g}, {hi:g}], "
                f"expected values in [{bounds[0]:g}, {bounds[1]:g}]"
            )
    return arr


def check_coords(x: ArrayLike, name: str, n: int) -> np.ndarray:
    """Check grid coordinates: 1-D, length ``n`` (at least 2), finite, strictly increasing.

    Parameters
    ----------
    x : array_like, shape [n]
        Latent coordinates (latent units); spacing may be non-uniform.
    name : str
        Argument name used in error messages.
    n : int
        Required length (the grid size along this axis).

    Returns
    -------
    numpy.ndarray, shape [n], float64
    """
    arr = check_array(x, name, ndim=1)
    if arr.shape[0] != n:
        raise AtlasError(f"{name}: length {arr.shape[0]}, expected {n} (the grid's size)")
    if n < 2:
        raise AtlasError(f"{name}: length {n}, expected at least 2 coordinates")
    steps = np.diff(arr)
    if not (steps > 0).all():
        i = int(np.argmax(steps <= 0))
        raise AtlasError(
            f"{name}: {arr[i + 1]:g} follows {arr[i]:g} at index {i + 1}, "
            "expected strictly increasing coordinates"
        )
    return arr


def _range(lo: float | None, hi: float | None) -> str:
    return f"[{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]"


def check_int(value: object, name: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """Check an integer parameter within inclusive ``[lo, hi]``; return it as ``int``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise AtlasError(f"{name}: {value!r}, expected an integer")
    out = int(value)
    if (lo is not None and out < lo) or (hi is not None and out > hi):
        raise AtlasError(f"{name}: {out}, expected an integer in {_range(lo, hi)}")
    return out


def check_float(
    value: object, name: str, *, lo: float | None = None, hi: float | None = None
) -> float:
    """Check a finite real parameter within inclusive ``[lo, hi]``; return it as ``float``."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise AtlasError(f"{name}: {value!r}, expected a finite number")
    out = float(value)
    if not np.isfinite(out):
        raise AtlasError(f"{name}: {out}, expected a finite number")
    if (lo is not None and out < lo) or (hi is not None and out > hi):
        raise AtlasError(f"{name}: {out:g}, expected a number in {_range(lo, hi)}")
    return out


def check_labels(
    labels: ArrayLike,
    name: str = "labels",
    *,
    n_classes: int | None = None,
    shape: Sequence[int | str | None] | None = None,
) -> np.ndarray:
    """Class labels: integers in ``[0, n_classes)`` (just ``>= 0`` when ``n_classes`` is None),
    of the given ``shape`` when one is given; returned as int64.

    Every metric and plot that takes class labels checks them here, so they fail alike.
    """
    lab = check_array(labels, name, shape=shape, dtype_kind="i")
    lo, hi = int(lab.min()), int(lab.max())
    if lo < 0 or (n_classes is not None and hi >= n_classes):
        expected = f"[0, {n_classes - 1}]" if n_classes is not None else "[0, ∞)"
        raise AtlasError(f"{name}: values in [{lo}, {hi}], expected class indices in {expected}")
    return lab


def check_cells(cells: ArrayLike, name: str = "cells", *, bounded: bool = True) -> np.ndarray:
    """A decoded grid as ``[ny, nx, C, H, W]`` float64 with ``C`` in (1, 3), from
    ``[ny, nx, H, W]`` (grayscale) or ``[ny, nx, C, H, W]``; values in [0, 1] when ``bounded``.
    """
    arr = np.asarray(cells)
    if arr.ndim == 4:
        arr = arr[:, :, None]
    bounds = (0.0, 1.0) if bounded else None
    out = check_array(arr, name, shape=("ny", "nx", "C", "H", "W"), bounds=bounds)
    if out.shape[2] not in (1, 3):
        raise AtlasError(
            f"{name}: {out.shape[2]} channels (shape {np.asarray(cells).shape}), expected 1 "
            "(grayscale) or 3 (RGB)"
        )
    return out


def mean_and_covariance(x: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[d]`` and sample covariance ``[d, d]`` (ddof=1) of the rows of ``x`` ``[N, d]``,
    N >= 2: the Gaussian fit behind KL-to-prior (embeddings) and Fréchet distances (features)."""
    arr = check_array(x, name, shape=("N", "d"))
    if arr.shape[0] < 2:
        raise AtlasError(f"{name}: {arr.shape[0]} row, expected at least 2")
    return arr.mean(axis=0), np.atleast_2d(np.cov(arr, rowvar=False))
