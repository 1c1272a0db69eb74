from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from latent_atlas.toolkit.data import (
    DEFAULT_DATA_DIR,
    FASHION_MNIST_CLASSES,
    ImageDataset,
    Split,
)
from toy_onnx import linear_decoder, linear_encoder, prototype_classifier, region_decoder

from latent_atlas.shipped import shipped

REPO = Path(__file__).resolve().parent.parent
SHIPPED = shipped("fashion-mnist")


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
    from latent_atlas.toolkit.data import load_dataset

    folder = Path(os.environ.get("LATENT_ATLAS_DATA", DEFAULT_DATA_DIR))
    if not folder.is_dir():
        pytest.fail(f"real Fashion-MNIST missing in {folder}: run `make test` (it installs it)")
    return load_dataset(folder)


@pytest.fixture(scope="session")
def real_report(tmp_path_factory, real_data):
    """The shipped VAE vs AE report (with the seed study), written once for every browser test."""
    from latent_atlas.runs import ComparisonConfig, run_comparison

    out = tmp_path_factory.mktemp("report") / "vae-vs-ae"
    cfg = ComparisonConfig("vae-vs-ae", (SHIPPED / "vae", SHIPPED / "ae"), ("VAE", "AE"),
                           SHIPPED / "classifier" / "classifier.onnx", study="seed")  # fmt: skip
    run_comparison(cfg, out, data=real_data)
    return out


@pytest.fixture(scope="session")
def toy(tmp_path_factory):
    """Ten random prototypes (one per class), test images = prototypes + noise, a prototype
    classifier, and model folders whose decoders are known functions of z."""
    root = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(0)
    protos = rng.random((10, 28, 28)).astype(np.float32)
    labels = np.repeat(np.arange(10), 20).astype(np.uint8)
    noisy = np.clip(protos[labels] + rng.normal(0, 0.05, (200, 28, 28)), 0, 1)
    images = ((noisy * 255).round() / 255).astype(np.float32)[:, None]  # [200, 1, 28, 28]
    test = Split(images, labels.astype(np.int64))
    data = ImageDataset("toy", test, test, FASHION_MNIST_CLASSES, "0" * 64, str(root))
    prototype_classifier(root / "classifier.onnx", protos)
    projection = rng.normal(0, 0.1, (784, 2))
    folders = {}
    for name, make in {
        "linear": lambda p: linear_decoder(p, np.array([0.05, 0.0]), 0.5),
        "regions": lambda p: region_decoder(p, protos[0], protos[1], split=0.0),
        "constant": lambda p: linear_decoder(p, np.array([0.0, 0.0]), 0.3),
    }.items():
        folder = root / name
        linear_encoder(folder / "encoder.onnx", projection)
        make(folder / "decoder.onnx")
        folders[name] = folder
    return {"root": root, "data": data, "protos": protos, **folders}


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance with two CPUs, as a user's laptop "cluster" (the engine leaves a
    connection it did not open running)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=200 * 2**20)  # fmt: skip
    yield ray
    ray.shutdown()
