"""Datasets in one ``.npz`` file, Keras's convention: ``x_train``, ``y_train``, ``x_test``,
``y_test`` (the train pair optional when only analysing), optional ``class_names``.

Images ``[N, H, W]``, ``[N, H, W, C]`` (Keras's channels-last; taken when both readings fit) or
``[N, C, H, W]``; uint8 in 0..255 or float in [0, 1]. Labels integers ``[N]`` or ``[N, 1]``.
Every array's ``.npy`` header is read from the zip and checked (dtype, shape, size against the
zip directory, the dataset size limit) before any array is loaded; arrays load with
``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from latent_atlas.toolkit.dataset import (
    CHANNELS,
    MAX_CLASSES,
    ImageDataset,
    Split,
    check_image_shape,
    check_values,
    resolve_class_names,
    shown,
    unit_from_uint8,
)
from latent_atlas.toolkit.errors import AtlasError

CONVENTION = (
    "expected the Keras convention: np.savez(path, x_train=…, y_train=…, x_test=…, y_test=…)"
)
BLOCK = 4096  # images converted to float32 at a time
# what zipfile and numpy raise on a damaged file: NotImplementedError for an unknown zip
# version or compression method, RuntimeError for an encrypted entry
ZIP_ERRORS = (
    ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile, NotImplementedError,
    RuntimeError,
)  # fmt: skip


@dataclass(frozen=True)
class Header:
    key: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool


def _header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> Header:
    key = info.filename.removesuffix(".npy")
    try:
        with zf.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read(fp)
            header_len = fp.tell()
    except ZIP_ERRORS as exc:
        raise AtlasError(f"{where}: {key} is not a NumPy array ({exc}); {CONVENTION}") from None
    if dtype.hasobject:
        raise AtlasError(
            f"{where}: {key} holds Python objects (dtype {dtype}), which are not loaded "
            "(allow_pickle=False); expected a numeric array (or str array for class_names)"
        )
    n = math.prod(shape)
    if n > 2**63 - 1 or header_len + n * dtype.itemsize != info.file_size:
        raise AtlasError(
            f"{where}: {key} declares {dtype} {list(shape)} ({n * dtype.itemsize} bytes) but "
            f"its entry holds {info.file_size - header_len}; expected a complete array "
            "(the file is truncated or altered)"
        )
    return Header(key, tuple(int(d) for d in shape), dtype, bool(fortran))


def _layout(h: Header, where: str) -> tuple[str, tuple[int, int, int]]:
    """("hw" | "hwc" | "chw", (C, H, W)) for an image array header."""
    if h.dtype != np.uint8 and h.dtype.kind != "f":
        raise AtlasError(
            f"{where}: {h.key} is {h.dtype}; expected uint8 (0..255) or float (0..1) images "
            "(convert with x.astype(np.uint8) if they hold 0..255)"
        )
    s = h.shape
    if len(s) == 3:
        return "hw", (1, s[1], s[2])
    if len(s) == 4 and s[3] in CHANNELS:
        return "hwc", (s[3], s[1], s[2])
    if len(s) == 4 and s[1] in CHANNELS:
        return "chw", (s[1], s[2], s[3])
    raise AtlasError(
        f"{where}: {h.key} has shape {list(s)}; expected [N, H, W], [N, H, W, C] or [N, C, H, W] "
        "with C = 1 (grayscale) or 3 (RGB)"
    )


def _check_labels(h: Header, n: int, where: str) -> None:
    if h.dtype.kind not in "iu":
        raise AtlasError(f"{where}: {h.key} is {h.dtype}; expected integer class labels")
    if not (len(h.shape) == 1 or (len(h.shape) == 2 and h.shape[1] == 1)):
        raise AtlasError(f"{where}: {h.key} has shape {list(h.shape)}; expected [N] or [N, 1]")
    if h.shape[0] != n:
        x = "x_" + h.key.removeprefix("y_")
        raise AtlasError(
            f"{where}: {n} images in {x} but {h.shape[0]} labels in {h.key}; expected one "
            "label per image"
        )


def _images(x: np.ndarray, layout: str, key: str, where: str) -> np.ndarray:
    """float32 ``[N, C, H, W]`` in [0, 1], converted a block of images at a time."""
    if layout == "hw":
        x = x[:, None]
    elif layout == "hwc":
        x = x.transpose(0, 3, 1, 2)
    out = np.empty(x.shape, np.float32)
    for i in range(0, len(x), BLOCK):
        block = x[i : i + BLOCK]
        if x.dtype == np.uint8:
            unit_from_uint8(block, out[i : i + BLOCK])
            continue
        finite = np.isfinite(block).reshape(len(block), -1).all(axis=1)
        if not finite.all():
            raise AtlasError(
                f"{where}: {key} image {i + int(np.argmin(finite))} holds NaN or infinite "
                "pixels; expected finite values in [0, 1]"
            )
        lo, hi = float(block.min()), float(block.max())
        if lo < 0 or hi > 1:
            raise AtlasError(
                f"{where}: {key} holds float pixels from {lo:g} to {hi:g}; expected [0, 1] "
                "(divide 0..255 images by 255, or store them as uint8)"
            )
        out[i : i + BLOCK] = block
    return out


def load_npz(path: Path, train: bool = True, class_names: Path | None = None) -> ImageDataset:
    """Load a Keras-convention ``.npz``: the test pair always, the train pair if ``train``."""
    where = shown(path)
    try:
        zf = zipfile.ZipFile(path)
    except ZIP_ERRORS as exc:
        raise AtlasError(f"{where}: not a readable .npz file ({exc}); {CONVENTION}") from None
    with zf:
        infos = {
            i.filename.removesuffix(".npy"): i for i in zf.infolist() if i.filename.endswith(".npy")
        }
        have_train = "x_train" in infos or "y_train" in infos
        needed = ["x_test", "y_test"] + (["x_train", "y_train"] if train or have_train else [])
        for key in needed:
            if key not in infos:
                raise AtlasError(
                    f"{where}: no {key} (found {sorted(infos) or 'no arrays'}); {CONVENTION}"
                )
        splits = ("train", "test") if "x_train" in needed else ("test",)
        keep = [s for s in splits if s == "test" or train]
        heads = {k: _header(zf, infos[k], where) for k in needed}
        layouts = {}
        for s in splits:
            x, y = heads[f"x_{s}"], heads[f"y_{s}"]
            layouts[s] = _layout(x, where)
            if x.shape[0] == 0:
                raise AtlasError(
                    f"{where}: x_{s} holds 0 images; expected at least one (empty split)"
                )
            _check_labels(y, x.shape[0], where)
            check_image_shape(layouts[s][1], f"{where}: x_{s}")
        if "train" in layouts and layouts["train"][1] != layouts["test"][1]:
            raise AtlasError(
                f"{where}: x_train images are {list(layouts['train'][1])} (C, H, W) but x_test "
                f"images {list(layouts['test'][1])}; expected one image shape in both splits"
            )
        check_values(sum(math.prod(heads[f"x_{s}"].shape) for s in keep), where)
        found_names = None
        if "class_names" in infos:
            h = _header(zf, infos["class_names"], where)
            if h.dtype.kind not in "US" or len(h.shape) != 1 or not 0 < h.shape[0] <= MAX_CLASSES:
                raise AtlasError(
                    f"{where}: class_names is {h.dtype} {list(h.shape)}; expected a 1-d str "
                    f"array of 1..{MAX_CLASSES} names"
                )

    try:
        npz = np.load(path, allow_pickle=False)
        with npz:
            labels = {s: npz[f"y_{s}"].reshape(-1) for s in splits}
            if "class_names" in infos:
                raw = npz["class_names"]
                found_names = tuple(
                    n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in raw.tolist()
                )
            images = {s: _images(npz[f"x_{s}"], layouts[s][0], f"x_{s}", where) for s in keep}
    except (*ZIP_ERRORS, UnicodeDecodeError) as exc:
        raise AtlasError(f"{where}: cannot be read ({exc}); {CONVENTION}") from None
    for s, y in labels.items():
        if y.min() < 0:
            raise AtlasError(f"{where}: y_{s} holds label {y.min()}; expected labels 0..K-1")
    top = max(labels, key=lambda s: int(labels[s].max()))
    names = resolve_class_names(
        int(labels[top].max()),
        found_names,
        class_names,
        f"{where}: y_{top}",
        "its class_names array",
    )
    with open(path, "rb") as fh:
        sha = hashlib.file_digest(fh, "sha256").hexdigest()
    return ImageDataset(
        name=shown(Path(path).stem),
        test=Split(images["test"], labels["test"].astype(np.int64)),
        train=Split(images["train"], labels["train"].astype(np.int64)) if train else None,
        class_names=names,
        sha256=sha,
        source=where,
    )
