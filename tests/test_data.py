from __future__ import annotations

import gzip

import numpy as np
import pytest
from conftest import idx_bytes, write_idx_folder
from latent_atlas.toolkit.data import (
    CLASS_NAMES,
    IMAGES_MAGIC,
    LABELS_MAGIC,
    load_fashion_mnist,
    parse_idx,
)
from latent_atlas.toolkit.errors import AtlasError


def test_parse_idx_round_trip():
    arr = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    out = parse_idx(idx_bytes(arr), IMAGES_MAGIC, "x")
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("gz", [True, False])
def test_tiny_folder_loads(tmp_path, gz):
    data = load_fashion_mnist(write_idx_folder(tmp_path, gz=gz), expect_counts=False)
    assert data.train.images.shape == (12, 28, 28)
    assert data.test.labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert data.class_names == CLASS_NAMES and data.class_names[9] == "Ankle boot"
    x = data.test.float_images()
    assert x.dtype == np.float32 and x.shape == (6, 1, 28, 28) and 0 <= x.min() and x.max() <= 1


def test_gz_and_plain_have_same_sha(tmp_path):
    a = load_fashion_mnist(write_idx_folder(tmp_path / "a", gz=True), expect_counts=False)
    b = load_fashion_mnist(write_idx_folder(tmp_path / "b", gz=False), expect_counts=False)
    assert a.sha256 == b.sha256 and len(a.sha256) == 64


def test_wrong_magic():
    raw = idx_bytes(np.zeros((3,), np.uint8))
    with pytest.raises(AtlasError, match="magic number 0x00000801, expected 0x00000803"):
        parse_idx(raw, IMAGES_MAGIC, "f")


@pytest.mark.parametrize("cut, word", [(-5, "truncated"), (3, "trailing")])
def test_wrong_size(cut, word):
    raw = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    raw = raw[:cut] if cut < 0 else raw + b"\0" * cut
    with pytest.raises(AtlasError, match=word):
        parse_idx(raw, IMAGES_MAGIC, "f")


def test_header_too_short():
    with pytest.raises(AtlasError, match="too short"):
        parse_idx(b"\0\0\x08", LABELS_MAGIC, "f")


def test_count_mismatch(tmp_path):
    folder = write_idx_folder(tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(5, np.uint8)))
    )
    with pytest.raises(AtlasError, match="6 images but t10k-labels-idx1-ubyte.gz has 5 labels"):
        load_fashion_mnist(folder, expect_counts=False)


def test_wrong_image_size(tmp_path):
    folder = write_idx_folder(tmp_path)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros((6, 32, 32), np.uint8)))
    )
    with pytest.raises(AtlasError, match=r"images of \(32, 32\), expected \(28, 28\)"):
        load_fashion_mnist(folder, expect_counts=False)


def test_expected_counts_enforced(tmp_path):
    with pytest.raises(AtlasError, match="12 images, expected 60000"):
        load_fashion_mnist(write_idx_folder(tmp_path))


def test_missing_folder_names_package_and_flag(tmp_path):
    with pytest.raises(AtlasError, match="dataset-fashion-mnist.*--data"):
        load_fashion_mnist(tmp_path / "nope")


def test_missing_file(tmp_path):
    folder = write_idx_folder(tmp_path)
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(AtlasError, match="train-labels-idx1-ubyte.*not found"):
        load_fashion_mnist(folder, expect_counts=False)


def test_corrupt_gzip(tmp_path):
    folder = write_idx_folder(tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(AtlasError, match="cannot be read"):
        load_fashion_mnist(folder, expect_counts=False)


@pytest.mark.real_data
def test_real_dataset(real_data):
    assert real_data.train.images.shape == (60000, 1, 28, 28)
    assert real_data.test.images.shape == (10000, 1, 28, 28)
    # Fashion-MNIST is balanced: 1000 test images per class
    assert np.bincount(real_data.test.labels).tolist() == [1000] * 10
