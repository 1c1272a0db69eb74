"""Fashion-MNIST from its four IDX files (gzipped or not), validated byte for byte.

The default folder is where Debian's ``dataset-fashion-mnist`` puts them. A user elsewhere
passes ``--data DIR`` or sets ``LATENT_ATLAS_DATA`` (read by the CLI only).
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from latent_atlas.toolkit.errors import AtlasError

DEFAULT_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
DATA_ENV_VAR = "LATENT_ATLAS_DATA"
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
IMAGE_SHAPE = (28, 28)
SPLITS = {"train": ("train", 60_000), "test": ("t10k", 10_000)}
IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
MISSING_HINT = (
    "install it with `apt-get install -y dataset-fashion-mnist` or pass --data DIR "
    f"(or set {DATA_ENV_VAR}) to a folder holding the four IDX files"
)


@dataclass(frozen=True)
class IdxSplit:
    """One split: ``images`` uint8 ``[N, 28, 28]`` in 0..255, ``labels`` uint8 ``[N]`` in 0..9."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def float_images(self) -> np.ndarray:
        """Images as float32 ``[N, 1, 28, 28]`` in [0, 1]: the ONNX models' input contract."""
        return (self.images.astype(np.float32) / 255.0)[:, None, :, :]


@dataclass(frozen=True)
class FashionMNIST:
    train: IdxSplit
    test: IdxSplit
    class_names: tuple[str, ...]
    sha256: str  # over the decompressed bytes of the four files, in a fixed order
    folder: str


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise AtlasError(f"dataset file {folder / stem}[.gz]: not found; {MISSING_HINT}")


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise AtlasError(
            f"dataset file {path}: cannot be read ({exc}); expected an IDX file"
        ) from None


def parse_idx(raw: bytes, magic: int, name: str) -> np.ndarray:
    """Parse one IDX byte string with the given magic; check header and exact size."""
    if len(raw) < 4:
        raise AtlasError(f"{name}: {len(raw)} bytes, too short for an IDX header")
    (found,) = struct.unpack(">I", raw[:4])
    if found != magic:
        raise AtlasError(f"{name}: magic number 0x{found:08x}, expected 0x{magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise AtlasError(f"{name}: {len(raw)} bytes, too short for a {ndim}-d IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise AtlasError(
            f"{name}: {len(raw)} bytes, expected {expected} for dimensions {list(dims)}"
            + (" (truncated)" if len(raw) < expected else " (trailing bytes)")
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_split(
    folder: Path, split: str, hasher: hashlib._Hash | None = None, expect_count: bool = True
) -> IdxSplit:
    prefix, count = SPLITS[split]
    img_path = _find(folder, f"{prefix}-images-idx3-ubyte")
    lbl_path = _find(folder, f"{prefix}-labels-idx1-ubyte")
    img_raw, lbl_raw = _read_bytes(img_path), _read_bytes(lbl_path)
    if hasher is not None:
        hasher.update(img_raw)
        hasher.update(lbl_raw)
    images = parse_idx(img_raw, IMAGES_MAGIC, str(img_path))
    labels = parse_idx(lbl_raw, LABELS_MAGIC, str(lbl_path))
    if images.shape[1:] != IMAGE_SHAPE:
        raise AtlasError(f"{img_path}: images of {images.shape[1:]}, expected {IMAGE_SHAPE}")
    if len(images) != len(labels):
        raise AtlasError(
            f"{img_path}: {len(images)} images but {lbl_path.name} has {len(labels)} labels"
        )
    if expect_count and len(images) != count:
        raise AtlasError(
            f"{img_path}: {len(images)} images, expected {count} for the {split} split"
        )
    if labels.max(initial=0) >= len(CLASS_NAMES):
        raise AtlasError(
            f"{lbl_path}: label {labels.max()} found, expected 0..{len(CLASS_NAMES) - 1}"
        )
    return IdxSplit(images=images, labels=labels)


def load_fashion_mnist(
    folder: Path | str | None = None, expect_counts: bool = True
) -> FashionMNIST:
    """Load and validate both splits from ``folder`` (default: Debian's install location).

    ``expect_counts=False`` accepts splits of any size (tests write tiny IDX files).
    """
    folder = Path(folder) if folder is not None else DEFAULT_DATA_DIR
    if not folder.is_dir():
        raise AtlasError(f"dataset folder {folder}: does not exist; {MISSING_HINT}")
    hasher = hashlib.sha256()
    train = load_split(folder, "train", hasher, expect_counts)
    test = load_split(folder, "test", hasher, expect_counts)
    return FashionMNIST(train, test, CLASS_NAMES, hasher.hexdigest(), str(folder))


# Interim adapter to the agreed ImageDataset interface (engineer "data" replaces this module).
@dataclass(frozen=True)
class Split:
    images: np.ndarray  # float32 [N, C, H, W] in [0, 1]
    labels: np.ndarray  # int64 [N]

    def __len__(self) -> int:
        return len(self.labels)

    def float_images(self) -> np.ndarray:  # interim: train/export still call it
        return self.images


@dataclass(frozen=True)
class ImageDataset:
    name: str
    test: Split
    train: Split | None
    class_names: tuple[str, ...]
    sha256: str
    source: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.test.images.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def load_dataset(source: str | Path | None = None, *, train: bool = True) -> ImageDataset:
    fm = load_fashion_mnist(source)
    test = Split(fm.test.float_images(), fm.test.labels.astype(np.int64))
    tr = Split(fm.train.float_images(), fm.train.labels.astype(np.int64)) if train else None
    return ImageDataset("fashion-mnist", test, tr, fm.class_names, fm.sha256, fm.folder)
