"""The dataset type every stage shares, and the checks every loader applies.

An :class:`ImageDataset` holds float32 images ``[N, C, H, W]`` in [0, 1] and int64 labels in
``0..K-1`` per split, the K class names, a content sha256 and where it came from. The loaders
(``idx``, ``npz``, ``imagefolder``, ``digits``) build one; ``data.load_dataset`` picks the loader.

Memory is bounded by the data, never by what a header declares: every loader checks declared
sizes against :data:`MAX_VALUES` before it allocates, and allocates only what it then fills.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.names import plain_text

# float32 values in one dataset (all splits): 2**31 values = 8 GiB, e.g. 2.7 million 28×28
# grayscale images or 700 000 32×32 RGB ones. Above that, use a subset.
MAX_VALUES = 2**31
MAX_SIDE = 4096  # pixels per image side
MAX_IMAGES = 5_000_000  # files listed in an image folder
MAX_CLASSES = 10_000
MAX_CLASS_NAMES_BYTES = 1 << 20  # a --class-names file
CHANNELS = (1, 3)  # grayscale or RGB
_TO_UNIT = np.float32(255)


def shown(path: Path | str) -> str:
    """``path`` as printable text: bytes that are not UTF-8 appear as ``\\xNN`` escapes, so an
    error message about such a file can still be printed."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def bytes_text(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def check_values(n_values: int, where: str) -> None:
    """Refuse a dataset of more than :data:`MAX_VALUES` pixel values before allocating it."""
    if n_values > MAX_VALUES:
        raise AtlasError(
            f"{where}: {n_values:,} pixel values ({bytes_text(4 * n_values)} as float32); "
            f"expected at most {MAX_VALUES:,} ({bytes_text(4 * MAX_VALUES)}); use a subset"
        )


def check_image_shape(shape: tuple[int, ...], where: str) -> None:
    """``(C, H, W)``: 1 or 3 channels, sides 1..MAX_SIDE."""
    c, h, w = shape
    if c not in CHANNELS:
        raise AtlasError(f"{where}: {c} channels; expected 1 (grayscale) or 3 (RGB)")
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise AtlasError(f"{where}: images of {h}×{w} pixels; expected sides of 1..{MAX_SIDE}")


def unit_from_uint8(values: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = values / 255`` in float32, bit for bit ``values.astype(float32) / 255``."""
    np.divide(values, _TO_UNIT, out=out, dtype=np.float32)


@dataclass(frozen=True)
class Split:
    """One split: ``images`` float32 ``[N, C, H, W]`` in [0, 1], ``labels`` int64 ``[N]``.

    The loaders check the pixel values (finite, in [0, 1]); the constructor checks what is
    cheap to check: types, shapes, lengths.
    """

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        x, y = self.images, self.labels
        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 4:
            raise AtlasError(
                f"split images: {getattr(x, 'dtype', type(x).__name__)} "
                f"{list(getattr(x, 'shape', []))}; expected float32 [N, C, H, W]"
            )
        if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.ndim != 1:
            raise AtlasError(
                f"split labels: {getattr(y, 'dtype', type(y).__name__)} "
                f"{list(getattr(y, 'shape', []))}; expected int64 [N]"
            )
        if len(x) != len(y):
            raise AtlasError(f"split: {len(x)} images but {len(y)} labels; expected one each")
        if len(y) == 0:
            raise AtlasError("split: no images; expected at least one")

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image dataset: a test split, a train split when asked for, K class names.

    ``sha256`` identifies the content (for an IDX folder: the decompressed bytes of its files,
    train then test, images then labels); it does not depend on whether the train split was
    loaded. ``source`` is the path or ``sklearn:digits``.
    """

    name: str
    test: Split
    train: Split | None
    class_names: tuple[str, ...]
    sha256: str
    source: str

    def __post_init__(self) -> None:
        names = self.class_names
        if (
            not isinstance(names, tuple)
            or not names
            or not all(isinstance(n, str) and n for n in names)
        ):
            raise AtlasError(f"dataset {self.name}: class names {names!r}; expected non-empty text")
        if len(set(names)) != len(names):
            raise AtlasError(f"dataset {self.name}: class names repeat; expected distinct names")
        for i, n in enumerate(names):  # the loaders say which file; this holds for the API too
            plain_text(n, f"dataset {self.name}: class name {i}")
        for split_name, split in (("test", self.test), ("train", self.train)):
            if split is None:
                continue
            lo, hi = int(split.labels.min()), int(split.labels.max())
            if lo < 0 or hi >= len(names):
                raise AtlasError(
                    f"dataset {self.name}: {split_name} label {hi if hi >= len(names) else lo} "
                    f"is outside the {len(names)} classes; expected 0..{len(names) - 1}"
                )
        if self.train is not None and self.train.images.shape[1:] != self.test.images.shape[1:]:
            raise AtlasError(
                f"dataset {self.name}: train images {list(self.train.images.shape[1:])}, test "
                f"images {list(self.test.images.shape[1:])}; expected one shape [C, H, W]"
            )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        c, h, w = self.test.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


# ---------------------------------------------------------------------------- class names
def read_class_names(path: Path) -> tuple[str, ...]:
    """One class name per line of a UTF-8 text file (line k names label k)."""
    path = Path(path)
    try:
        if not path.is_file():
            raise AtlasError(
                f"class names file {shown(path)}: not found; expected a text file with one "
                "class name per line"
            )
        if path.stat().st_size > MAX_CLASS_NAMES_BYTES:
            raise AtlasError(
                f"class names file {shown(path)}: {bytes_text(path.stat().st_size)}; expected "
                f"at most {bytes_text(MAX_CLASS_NAMES_BYTES)} (one class name per line)"
            )
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AtlasError(
            f"class names file {shown(path)}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "expected one class name per line, UTF-8"
        ) from None
    except OSError as exc:
        raise AtlasError(f"class names file {shown(path)}: cannot be read ({exc})") from None
    # split at newlines only: a U+2028 or a form feed inside a name is refused below, not
    # taken as the start of another class
    lines = [line.removesuffix("\r") for line in text.removeprefix("\ufeff").split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    names = tuple(line.strip() for line in lines)
    if not names or not all(names):
        where = "is empty" if not names else f"line {names.index('') + 1} is blank"
        raise AtlasError(f"class names file {shown(path)}: {where}; expected one name per line")
    if len(names) > MAX_CLASSES:
        raise AtlasError(
            f"class names file {shown(path)}: {len(names)} names; expected at most {MAX_CLASSES}"
        )
    seen: set[str] = set()
    for i, n in enumerate(names, 1):
        plain_text(n, f"class names file {shown(path)}: line {i}")
        if n in seen:
            raise AtlasError(
                f"class names file {shown(path)}: line {i} repeats {n!r}; expected distinct names"
            )
        seen.add(n)
    return names


def resolve_class_names(
    max_label: int,
    found: tuple[str, ...] | None,
    given: Path | None,
    where: str,
    found_in: str = "the data's class names",
) -> tuple[str, ...]:
    """The class names: ``given`` (a ``--class-names`` file) over ``found`` (carried by the
    data) over the label numbers ``"0".."max_label"``. Every label must name a class."""
    if given is not None:
        names, origin = read_class_names(given), f"class names file {shown(given)}"
    elif found is not None:
        names, origin = found, found_in
        source = where.rsplit(": ", 1)[0]  # the file, without the labels' array ("y_test")
        for i, n in enumerate(names):
            plain_text(n, f"{source}: class name {i} of {found_in}")
        if not all(n.strip() for n in names) or len(set(names)) != len(names):
            raise AtlasError(
                f"{where}: {found_in} {list(names)[:12]} hold blank or repeated names; "
                "expected distinct names (or pass --class-names FILE)"
            )
    else:
        if max_label >= MAX_CLASSES:
            raise AtlasError(f"{where}: label {max_label}; expected labels 0..{MAX_CLASSES - 1}")
        return tuple(str(k) for k in range(max_label + 1))
    if max_label >= len(names):
        raise AtlasError(
            f"{where}: label {max_label} is outside the class list ({len(names)} names in "
            f"{origin}); expected labels 0..{len(names) - 1}, or a class names file that "
            "names every label"
        )
    return names
