"""Datasets as image files in torchvision's ``ImageFolder`` layout, one folder per split:
``root/train/<class>/*.png`` and ``root/test/<class>/*.png`` (the train folder optional when
only analysing).

- Classes are the sorted names of the class folders of both splits together (torchvision's
  order, so a classifier trained with ``ImageFolder`` keeps its class indices); hidden folders
  and files (``.ipynb_checkpoints``, ``._x.png``) are skipped.
- Images are ordered by file name across classes (numbers in names compare as numbers, ties go
  to the class order): a folder written with numbered files keeps its original order.
  torchvision orders by class first; its own ``ImageFolder`` also converts every image to RGB,
  which is why it is not used here: grayscale stays one channel, RGB three.
- Every image must have the size and channel count of the first one. Sizes are read from each
  file's header before it is decoded; the dataset size limit is checked before allocating.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from latent_atlas.toolkit.dataset import (
    MAX_IMAGES,
    ImageDataset,
    Split,
    check_image_shape,
    check_values,
    read_class_names,
    shown,
    unit_from_uint8,
)
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.names import plain_text

if TYPE_CHECKING:
    from PIL import Image

# torchvision's IMG_EXTENSIONS, minus .pgm's cousins Pillow reads the same way
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
MAX_FILE_BYTES = 64 << 20
SPLITS = ("train", "test")
LAYOUT = "expected root/train/<class>/*.png and root/test/<class>/*.png"


def is_image_folder(root: Path) -> bool:
    return any((root / s).is_dir() for s in SPLITS)


def _natural(name: str) -> tuple:
    # "img2" before "img10": digit runs compare as numbers (re.split keeps text at even
    # positions and digit runs at odd ones, so two keys never compare a str with an int)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(re.split(r"(\d+)", name)))


def _visible_dirs(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as it:
            return [e.name for e in it if e.is_dir() and not e.name.startswith(".")]
    except OSError as exc:
        raise AtlasError(f"{shown(folder)}: cannot be listed ({exc}); {LAYOUT}") from None


def _classes(root: Path, splits: list[str]) -> list[str]:
    names = sorted({n for s in splits for n in _visible_dirs(root / s)})
    for i, n in enumerate(names):
        try:
            n.encode("utf-8")
        except UnicodeEncodeError:
            raise AtlasError(
                f"class folder {shown(root / n)}: its name is not valid UTF-8; expected a UTF-8 "
                "name (it becomes the class name): rename the folder"
            ) from None
        # the folder's name becomes class name i (sorted order): the one rule for names
        plain_text(n, f"image folder {shown(root)}: class folder {i}")
    if not names:
        raise AtlasError(f"image folder {shown(root)}: no class folders; {LAYOUT}")
    return names


def _files(root: Path, split: str, classes: list[str]) -> list[tuple[Path, int]]:
    found: list[tuple[tuple, str, int, Path]] = []
    for label, name in enumerate(classes):
        top = root / split / name
        if not top.is_dir():
            continue
        for folder, dirs, files in os.walk(top, onerror=None, followlinks=False):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for f in files:
                if f.startswith(".") or not f.lower().endswith(EXTENSIONS):
                    continue
                rel = os.path.relpath(os.path.join(folder, f), top)
                found.append((_natural(rel), rel, label, Path(folder) / f))
                if len(found) > MAX_IMAGES:
                    raise AtlasError(
                        f"image folder {shown(root / split)}: more than {MAX_IMAGES:,} images; "
                        "expected at most that many: use a subset"
                    )
    found.sort(key=lambda t: t[:3])
    return [(path, label) for _, _, label, path in found]


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise AtlasError(
                f"{shown(path)}: {size} bytes; expected an image file of at most "
                f"{MAX_FILE_BYTES >> 20} MiB"
            )
        return path.read_bytes()
    except OSError as exc:
        raise AtlasError(f"{shown(path)}: cannot be read ({exc})") from None


def _open(raw: bytes, path: Path) -> Image.Image:
    """The image, header read but pixels not yet decoded, in mode L or RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw))
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError,
            OSError, ValueError, SyntaxError) as exc:  # fmt: skip
        raise AtlasError(f"{shown(path)}: not a readable image ({exc})") from None
    return img


def _mode(img: Image.Image, path: Path) -> str:
    """ "L" or "RGB": the mode the image's pixels are read in."""
    mode = img.mode
    if mode in ("1", "L"):
        return "L"
    if mode in ("RGB", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBA", "LA", "PA", "RGBX"):
        return "L" if mode == "LA" else "RGB"
    raise AtlasError(
        f"{shown(path)}: pixels of mode {mode} (16-bit or float); expected 8-bit grayscale or RGB"
    )


def _pixels(img: Image.Image, mode: str, path: Path) -> np.ndarray:
    try:
        if img.mode in ("RGBA", "LA", "PA", "P"):
            rgba = img.convert("RGBA")
            alpha = np.asarray(rgba)[..., 3]
            if alpha.min() < 255:
                raise AtlasError(
                    f"{shown(path)}: transparent pixels (mode {img.mode}); expected opaque "
                    "grayscale or RGB images"
                )
            img = rgba
        arr = np.asarray(img.convert(mode))
    except (OSError, ValueError, SyntaxError) as exc:
        raise AtlasError(f"{shown(path)}: not a readable image ({exc})") from None
    return arr if arr.ndim == 3 else arr[:, :, None]


def load_image_folder(
    root: Path, train: bool = True, class_names: Path | None = None
) -> ImageDataset:
    """Load ``root/test`` (and ``root/train`` if ``train``) as an ImageFolder dataset.

    The train images' bytes enter the sha256 even when ``train`` is False (they are read, not
    decoded), so the hash does not depend on what was loaded.
    """
    for s in ("test", "train") if train else ("test",):
        if not (root / s).is_dir():
            raise AtlasError(f"image folder {shown(root)}: no {s}/ folder; {LAYOUT}")
    splits = [s for s in SPLITS if (root / s).is_dir()]
    classes = _classes(root, splits)
    if class_names is not None:
        names = read_class_names(class_names)
        if len(names) != len(classes):
            raise AtlasError(
                f"class names file {shown(class_names)}: {len(names)} names, but image folder "
                f"{shown(root)} has {len(classes)} class folders; expected one name per class "
                "folder, in sorted folder order"
            )
    else:
        names = tuple(classes)
    files = {s: _files(root, s, classes) for s in splits}
    keep = [s for s in splits if s == "test" or train]
    for s in splits:
        if not files[s]:
            raise AtlasError(
                f"image folder {shown(root / s)}: no images ({', '.join(EXTENSIONS)}); "
                f"expected at least one (empty split); {LAYOUT}"
            )
    if train:  # training: a class without train images is an output nothing teaches
        seen = {label for _, label in files["train"]}
        missing = [classes[k] for k in range(len(classes)) if k not in seen]
        if missing:
            raise AtlasError(
                f"image folder {shown(root / 'train')}: no images of class {missing[0]!r}"
                f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; expected "
                "every class (the folder names of train/ and test/) to have train images: add "
                "some or remove the class folder"
            )

    first_path = files[keep[0]][0][0]
    first = _open(_read(first_path), first_path)
    mode = _mode(first, first_path)
    shape = (1 if mode == "L" else 3, first.size[1], first.size[0])
    check_image_shape(shape, shown(first_path))
    check_values(sum(len(files[s]) for s in keep) * int(np.prod(shape)), shown(root))

    digest = hashlib.sha256()
    images: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for s in splits:
        labels[s] = np.array([label for _, label in files[s]], np.int64)
        if s in keep:
            images[s] = np.empty((len(files[s]), *shape), np.float32)
        for i, (path, _) in enumerate(files[s]):
            raw = _read(path)
            rel = os.fsencode(os.path.relpath(path, root))
            digest.update(len(rel).to_bytes(8, "little") + rel + len(raw).to_bytes(8, "little"))
            digest.update(raw)
            if s not in keep:
                continue
            img = _open(raw, path)
            if _mode(img, path) != mode or img.size != first.size:
                raise AtlasError(
                    f"{shown(path)}: {img.size[0]}×{img.size[1]} pixels, {img.mode}; but "
                    f"{shown(first_path)} is {first.size[0]}×{first.size[1]}, {first.mode}; "
                    "expected one image size and channel count in the whole folder: resize "
                    "or convert the images first"
                )
            # HWC uint8 -> CHW float32 in [0, 1]
            unit_from_uint8(_pixels(img, mode, path).transpose(2, 0, 1), images[s][i])
    return ImageDataset(
        name=shown(root.resolve().name) or "images",
        test=Split(images["test"], labels["test"]),
        train=Split(images["train"], labels["train"]) if train else None,
        class_names=names,
        sha256=digest.hexdigest(),
        source=shown(root),
    )
