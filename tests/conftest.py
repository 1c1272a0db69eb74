from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from toolkit.data import DEFAULT_DATA_DIR

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "artifacts" / "fashion-mnist"


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file (magic 0x0000080<ndim>, big-endian dims)."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_folder(folder: Path, n_train: int = 12, n_test: int = 6, gz: bool = True) -> Path:
    """Four tiny IDX files of Fashion-MNIST's layout, with a deterministic pattern."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            raw = idx_bytes(arr)
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
    return folder


@pytest.fixture(scope="session")
def real_data():
    from toolkit.data import load_fashion_mnist

    if not (DEFAULT_DATA_DIR / "t10k-labels-idx1-ubyte.gz").exists():
        pytest.fail(
            "real Fashion-MNIST missing: run `make test` (it installs dataset-fashion-mnist)"
        )
    return load_fashion_mnist()
