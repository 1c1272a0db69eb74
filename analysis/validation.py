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
