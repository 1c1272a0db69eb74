"""IDX datasets (LeCun's MNIST format; Fashion-MNIST ships in it), read with bounded memory.

A folder holds ``train-images``/``train-labels`` and ``t10k-images``/``t10k-labels`` files,
spelled ``-idx3-ubyte`` or ``.idx3-ubyte``, gzipped or not. Each file is opened, its header
checked (magic number, dimensions, size) before anything is allocated, and its body streamed
through a 1 MiB buffer: decompression stops one byte past the size the header declares, so a
small ``.gz`` that inflates to gigabytes costs one buffer, and an uncompressed file's size is
checked against its header before its body is read.

torchvision's ``read_sn3_pascalvincent_tensor`` reads the same format but loads the whole file
(``f.read()``) before looking at its size, reads no ``.gz``, and fails with ``assert``: this
reader does the same job within the bounds above.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import zlib
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from latent_atlas.toolkit.dataset import (
    ImageDataset,
    Split,
    check_image_shape,
    check_values,
    resolve_class_names,
    shown,
    unit_from_uint8,
)
from latent_atlas.toolkit.errors import AtlasError

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions: [N, H, W]
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension: [N]
CHUNK = 1 << 20
INT64_MAX = 2**63 - 1

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
# sha256 of the decompressed t10k-images and t10k-labels files, in that order: recognises
# Fashion-MNIST's test split (and so its class names and its 60 000 / 10 000 counts).
FASHION_MNIST_TEST_SHA256 = "30214f3fe91405cb8ea60b11ecf0914a65dd6a6ca8e13c13a62eb434f2d9fe56"
# ... and of all four files (train images, train labels, test images, test labels): the
# dataset sha256 that metrics.json and the model cards quote.
FASHION_MNIST_SHA256 = "14410854cf7a289477dcfc7df3f8ec24741e281cdcc425ede0d9a748ca630214"
FASHION_MNIST_COUNTS = {"train": 60_000, "test": 10_000}
SPLIT_PREFIX = {"train": "train", "test": "t10k"}
ROLES = {"images": ("idx3", IMAGES_MAGIC), "labels": ("idx1", LABELS_MAGIC)}

Consumer = Callable[[np.ndarray, int], None]  # (uint8 chunk, offset into the body)


class IdxReader:
    """One IDX file: the header read and checked on construction, the body streamed by
    :meth:`stream`. ``size`` is the file's length when known (uncompressed files), checked
    against the header before the body is read."""

    def __init__(
        self, fh: io.BufferedIOBase, magic: int, name: str, size: int | None = None
    ) -> None:
        self.fh, self.name = fh, name
        head = self._read(4)
        if len(head) < 4:
            raise AtlasError(f"{name}: {len(head)} bytes, too short for an IDX header")
        found = int.from_bytes(head, "big")
        if found != magic:
            raise AtlasError(
                f"{name}: magic number 0x{found:08x}, expected 0x{magic:08x} "
                f"(an IDX file of unsigned bytes, {magic & 0xFF}-d)"
            )
        ndim = magic & 0xFF
        raw_dims = self._read(4 * ndim)
        if len(raw_dims) < 4 * ndim:
            raise AtlasError(
                f"{name}: {4 + len(raw_dims)} bytes, too short for a {ndim}-d IDX header"
            )
        self.header = head + raw_dims
        self.dims = tuple(int.from_bytes(raw_dims[i : i + 4], "big") for i in range(0, 4 * ndim, 4))
        # Python integers do not wrap: a product past int64 is refused, never taken modulo 2**64
        self.n_values = math.prod(self.dims)
        if self.n_values > INT64_MAX:
            raise AtlasError(
                f"{name}: dimensions {list(self.dims)} hold {self.n_values} values, more than "
                "int64 can count; expected a real IDX header"
            )
        self.expected = len(self.header) + self.n_values
        if size is not None and size != self.expected:
            raise AtlasError(
                f"{name}: {size} bytes, expected {self.expected} for dimensions "
                f"{list(self.dims)}"
                + (" (truncated)" if size < self.expected else " (trailing bytes)")
            )

    def _read(self, n: int) -> bytes:
        try:
            return self.fh.read(n)
        except (OSError, EOFError, zlib.error) as exc:
            raise AtlasError(f"{self.name}: cannot be read ({exc}); expected an IDX file") from None

    def _readinto(self, view: memoryview) -> int:
        got = 0
        try:
            while got < len(view):
                n = self.fh.readinto(view[got:])
                if not n:
                    break
                got += n
        except (OSError, EOFError, zlib.error) as exc:
            raise AtlasError(f"{self.name}: cannot be read ({exc}); expected an IDX file") from None
        return got

    def stream(self, consume: Consumer | None, hashers: Sequence[Any] = ()) -> None:
        """Feed the body, chunk by chunk, to ``consume`` (and the whole file to ``hashers``);
        refuse a body that ends early or goes on past the header's size."""
        for h in hashers:
            h.update(self.header)
        buf = bytearray(min(CHUNK, max(self.n_values, 1)))
        view = memoryview(buf)
        done = 0
        while done < self.n_values:
            got = self._readinto(view[: min(len(buf), self.n_values - done)])
            if not got:
                raise AtlasError(
                    f"{self.name}: {len(self.header) + done} bytes, expected {self.expected} "
                    f"for dimensions {list(self.dims)} (truncated)"
                )
            for h in hashers:
                h.update(view[:got])
            if consume is not None:
                consume(np.frombuffer(buf, np.uint8, count=got), done)
            done += got
        if self._read(1):  # one byte past the declared size, never more
            raise AtlasError(
                f"{self.name}: more than {self.expected} bytes, expected {self.expected} for "
                f"dimensions {list(self.dims)} (trailing bytes)"
            )


def open_idx(path: Path, magic: int, stack: ExitStack) -> IdxReader:
    """Open ``path`` (``.gz`` decompressed on the fly) and check its header."""
    name = shown(path)
    try:
        raw = stack.enter_context(open(path, "rb"))
        size = os.fstat(raw.fileno()).st_size
    except OSError as exc:
        raise AtlasError(f"{name}: cannot be read ({exc}); expected an IDX file") from None
    if path.name.endswith(".gz"):
        return IdxReader(stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")), magic, name)
    return IdxReader(raw, magic, name, size)


def is_fashion_mnist_test(split: Split) -> bool:
    """Whether ``split`` holds Fashion-MNIST's test split, in its order, whatever file it came
    from: the sha256 of the two IDX files that would store it, against Fashion-MNIST's."""
    n = FASHION_MNIST_COUNTS["test"]
    if split.images.shape != (n, 1, 28, 28) or split.labels.max() > 255:
        return False
    pixels = np.rint(split.images[:, 0] * np.float32(255)).astype(np.uint8)  # exact: k/255 -> k
    digest = hashlib.sha256()
    for magic, array in ((IMAGES_MAGIC, pixels), (LABELS_MAGIC, split.labels.astype(np.uint8))):
        digest.update(magic.to_bytes(4, "big"))
        digest.update(b"".join(d.to_bytes(4, "big") for d in array.shape))
        digest.update(array.tobytes())
    return digest.hexdigest() == FASHION_MNIST_TEST_SHA256


def parse_idx(raw: bytes, magic: int, name: str) -> np.ndarray:
    """Parse one in-memory IDX file with the given magic; header and exact size checked."""
    reader = IdxReader(io.BytesIO(raw), magic, name, len(raw))
    out = np.empty(reader.n_values, np.uint8)

    def keep(chunk: np.ndarray, at: int) -> None:
        out[at : at + len(chunk)] = chunk

    reader.stream(keep)
    return out.reshape(reader.dims)


# ---------------------------------------------------------------------------- the folder
def _spellings(split: str, role: str) -> list[str]:
    idx = ROLES[role][0]
    prefix = SPLIT_PREFIX[split]
    stems = (f"{prefix}-{role}-{idx}-ubyte", f"{prefix}-{role}.{idx}-ubyte")
    # uncompressed first: torchvision's raw/ folders keep both the .gz and its extract
    return [*stems, *(s + ".gz" for s in stems)]


def find_idx(folder: Path, split: str, role: str) -> Path | None:
    for name in _spellings(split, role):
        if (folder / name).is_file():
            return folder / name
    return None


def is_idx_folder(folder: Path) -> bool:
    """Whether ``folder`` holds any of the four IDX files (any spelling)."""
    return any(find_idx(folder, s, r) for s in SPLIT_PREFIX for r in ROLES)


def _missing(folder: Path, split: str, role: str, hint: str) -> AtlasError:
    names = _spellings(split, role)
    return AtlasError(
        f"dataset file {shown(folder / names[0])}[.gz]: not found (nor {names[1]}[.gz]); {hint}"
    )


def load_idx_folder(
    folder: Path, train: bool = True, class_names: Path | None = None, hint: str = ""
) -> ImageDataset:
    """Load the test split (and the train split if ``train``) from an IDX folder.

    The train files are read even when ``train`` is False, if present, but only streamed
    through the hash and checked: the dataset sha256 covers all files either way.
    """
    hint = hint or "expected IDX files named like train-images-idx3-ubyte[.gz]"
    paths = {(s, r): find_idx(folder, s, r) for s in SPLIT_PREFIX for r in ROLES}
    for split in ("test", "train") if train else ("test",):
        for role in ROLES:
            if paths[split, role] is None:
                raise _missing(folder, split, role, hint)
    have_train = paths["train", "images"] is not None or paths["train", "labels"] is not None
    if have_train:
        for role in ROLES:
            if paths["train", role] is None:
                raise _missing(folder, "train", role, "expected train images and labels together")
    splits = ("train", "test") if have_train else ("test",)

    with ExitStack() as stack:
        readers = {
            (s, r): open_idx(paths[s, r], ROLES[r][1], stack)  # type: ignore[arg-type]
            for s in splits
            for r in ROLES
        }
        # every header is checked before any body is read or any array allocated
        for s in splits:
            img, lbl = readers[s, "images"], readers[s, "labels"]
            n, h, w = img.dims
            if lbl.dims[0] != n:
                raise AtlasError(
                    f"{img.name}: {n} images but {Path(lbl.name).name} has {lbl.dims[0]} "
                    "labels; expected one label per image"
                )
            if n == 0:
                raise AtlasError(f"{img.name}: 0 images; expected at least one (empty split)")
            check_image_shape((1, h, w), img.name)
        if have_train and readers["train", "images"].dims[1:] != readers["test", "images"].dims[1:]:
            tr, te = readers["train", "images"], readers["test", "images"]
            raise AtlasError(
                f"{tr.name}: images of {tr.dims[1]}×{tr.dims[2]} pixels, but "
                f"{Path(te.name).name} holds {te.dims[1]}×{te.dims[2]}; expected one image size "
                "in both splits"
            )
        keep = [s for s in splits if s == "test" or train]
        check_values(sum(readers[s, "images"].n_values for s in keep), shown(folder))

        everything, test_only = hashlib.sha256(), hashlib.sha256()
        images: dict[str, np.ndarray] = {}
        labels: dict[str, np.ndarray] = {}
        for s in splits:
            hashers = (everything, test_only) if s == "test" else (everything,)
            img = readers[s, "images"]
            consume: Consumer | None = None
            if s in keep:
                n, h, w = img.dims
                images[s] = np.empty((n, 1, h, w), np.float32)
                flat = images[s].reshape(-1)

                def consume(chunk: np.ndarray, at: int, flat: np.ndarray = flat) -> None:
                    unit_from_uint8(chunk, flat[at : at + len(chunk)])

            img.stream(consume, hashers)
            # labels are read for both splits: the class count must not depend on `train`
            lbl = readers[s, "labels"]
            labels[s] = out = np.empty(lbl.n_values, np.int64)

            def keep_labels(chunk: np.ndarray, at: int, out: np.ndarray = out) -> None:
                out[at : at + len(chunk)] = chunk

            lbl.stream(keep_labels, hashers)

    fashion = test_only.hexdigest() == FASHION_MNIST_TEST_SHA256
    if fashion and "train" in labels and len(labels["train"]) != FASHION_MNIST_COUNTS["train"]:
        raise AtlasError(
            f"{readers['train', 'images'].name}: {len(labels['train'])} images, expected "
            f"{FASHION_MNIST_COUNTS['train']} for the train split (the test split is "
            "Fashion-MNIST's, recognised by its sha256); use the complete train files"
        )
    top = max(labels, key=lambda s: int(labels[s].max()))
    names = resolve_class_names(
        int(labels[top].max()),
        FASHION_MNIST_CLASSES if fashion else None,
        class_names,
        readers[top, "labels"].name,
    )
    return ImageDataset(
        name="fashion-mnist" if fashion else folder.resolve().name or "idx",
        test=Split(images["test"], labels["test"]),
        train=Split(images["train"], labels["train"]) if train else None,
        class_names=names,
        sha256=everything.hexdigest(),
        source=str(folder),
    )
