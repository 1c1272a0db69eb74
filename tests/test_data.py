"""The dataset seam: ImageDataset, load_dataset and each loader, on tiny data made here."""

from __future__ import annotations

import gzip
import hashlib
import io

import numpy as np
import pytest
from conftest import idx_bytes, write_idx_folder
from hypothesis import given, settings
from hypothesis import strategies as st
from latent_atlas.toolkit.data import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_SHA256,
    ImageDataset,
    Split,
    load_dataset,
)
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx


def _split(n: int = 4, shape=(1, 3, 2), k: int = 2) -> Split:
    rng = np.random.default_rng(n)
    return Split(rng.random((n, *shape), dtype=np.float32), np.arange(n, dtype=np.int64) % k)


# ---------------------------------------------------------------------------- the types
def test_dataset_properties():
    d = ImageDataset("d", _split(4, (3, 5, 7)), None, ("a", "b"), "0" * 64, "here")
    assert d.image_shape == (3, 5, 7) and d.n_classes == 2 and len(d.test) == 4


@pytest.mark.parametrize(
    "images, labels, word",
    [
        (np.zeros((2, 1, 2, 2), np.float64), np.zeros(2, np.int64), "float64"),
        (
            np.zeros((2, 2, 2), np.float32),
            np.zeros(2, np.int64),
            "expected float32 \\[N, C, H, W\\]",
        ),
        (np.zeros((2, 1, 2, 2), np.float32), np.zeros(2, np.uint8), "uint8"),
        (np.zeros((2, 1, 2, 2), np.float32), np.zeros(3, np.int64), "2 images but 3 labels"),
        (np.zeros((0, 1, 2, 2), np.float32), np.zeros(0, np.int64), "no images"),
    ],
)
def test_split_checks_its_arrays(images, labels, word):
    with pytest.raises(AtlasError, match=word):
        Split(images, labels)


def test_dataset_checks_labels_against_class_names():
    with pytest.raises(AtlasError, match="test label 2 is outside the 2 classes"):
        ImageDataset("d", _split(4, k=3), None, ("a", "b"), "0" * 64, "x")
    with pytest.raises(AtlasError, match="repeat"):
        ImageDataset("d", _split(4), None, ("a", "a"), "0" * 64, "x")
    with pytest.raises(AtlasError, match="train images \\[1, 2, 2\\], test images \\[1, 3, 2\\]"):
        ImageDataset("d", _split(4), _split(4, (1, 2, 2)), ("a", "b"), "0" * 64, "x")


# ---------------------------------------------------------------------------- IDX
def test_parse_idx_round_trip():
    arr = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    out = parse_idx(idx_bytes(arr), IMAGES_MAGIC, "x")
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("gz", [True, False])
def test_tiny_idx_folder_loads(tmp_path, gz):
    data = load_dataset(write_idx_folder(tmp_path, gz=gz))
    assert data.train is not None and data.train.images.shape == (12, 1, 28, 28)
    assert data.test.labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert data.test.labels.dtype == np.int64
    # not Fashion-MNIST (its hash says so): the class names are the label numbers
    assert data.class_names == tuple(str(k) for k in range(10))
    assert data.name == tmp_path.name and data.source == str(tmp_path)
    x = data.test.images
    assert x.dtype == np.float32 and x.shape == (6, 1, 28, 28) and 0 <= x.min() and x.max() <= 1


def test_idx_pixels_are_bytes_over_255(tmp_path):
    folder = write_idx_folder(tmp_path)
    raw = gzip.decompress((folder / "t10k-images-idx3-ubyte.gz").read_bytes())
    expect = np.frombuffer(raw, np.uint8, offset=16).reshape(6, 1, 28, 28)
    np.testing.assert_array_equal(load_dataset(folder).test.images, expect.astype(np.float32) / 255)


def test_idx_sha_is_over_the_decompressed_files_in_order(tmp_path):
    a = load_dataset(write_idx_folder(tmp_path / "a", gz=True))
    b = load_dataset(write_idx_folder(tmp_path / "b", gz=False))
    order = ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1")
    h = hashlib.sha256()
    for stem in order:
        h.update((tmp_path / "b" / f"{stem}-ubyte").read_bytes())
    assert a.sha256 == b.sha256 == h.hexdigest()


def test_idx_train_false_skips_the_train_split_not_its_hash(tmp_path):
    folder = write_idx_folder(tmp_path)
    full, test_only = load_dataset(folder), load_dataset(folder, train=False)
    assert test_only.train is None and full.train is not None
    assert test_only.sha256 == full.sha256
    np.testing.assert_array_equal(test_only.test.images, full.test.images)


def test_idx_train_files_optional_for_analysis(tmp_path):
    folder = write_idx_folder(tmp_path)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (folder / name).unlink()
    assert len(load_dataset(folder, train=False).test) == 6
    with pytest.raises(AtlasError, match="train-images-idx3-ubyte.*not found"):
        load_dataset(folder)


def test_idx_dot_spelling_and_any_size(tmp_path):
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 5), ("t10k", 3)):
        images = rng.integers(0, 256, (n, 7, 9), dtype=np.uint8)
        (tmp_path / f"{prefix}-images.idx3-ubyte").write_bytes(idx_bytes(images))
        (tmp_path / f"{prefix}-labels.idx1-ubyte").write_bytes(idx_bytes(np.arange(n) % 3))
    data = load_dataset(tmp_path)
    assert data.image_shape == (1, 7, 9) and len(data.train) == 5 and data.n_classes == 3


def test_idx_class_names_file(tmp_path):
    folder = write_idx_folder(tmp_path / "d")
    names = [f"class {k}" for k in range(10)]
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    assert load_dataset(folder, class_names=tmp_path / "names.txt").class_names == tuple(names)
    (tmp_path / "short.txt").write_text("a\nb\n")
    with pytest.raises(AtlasError, match="label 9 is outside the class list \\(2 names in class"):
        load_dataset(folder, class_names=tmp_path / "short.txt")


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


@pytest.mark.parametrize("cut, word", [(-5, "truncated"), (3, "trailing bytes")])
def test_wrong_size_gzipped(tmp_path, cut, word):
    folder = write_idx_folder(tmp_path)
    raw = idx_bytes(np.zeros((6, 28, 28), np.uint8))
    raw = raw[:cut] if cut < 0 else raw + b"\0" * cut
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(AtlasError, match=f"t10k-images-idx3-ubyte.gz: .*{word}"):
        load_dataset(folder)


def test_header_too_short():
    with pytest.raises(AtlasError, match="too short"):
        parse_idx(b"\0\0\x08", LABELS_MAGIC, "f")


def test_dimension_product_past_int64_is_refused_not_wrapped():
    # 2**32-1 cubed is about 2**96: int64 arithmetic would wrap it (the old reader did)
    raw = IMAGES_MAGIC.to_bytes(4, "big") + (0xFFFFFFFF).to_bytes(4, "big") * 3
    with pytest.raises(AtlasError, match="more than int64 can count"):
        parse_idx(raw, IMAGES_MAGIC, "f")


def test_count_mismatch(tmp_path):
    folder = write_idx_folder(tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(5, np.uint8)))
    )
    with pytest.raises(AtlasError, match="6 images but t10k-labels-idx1-ubyte.gz has 5 labels"):
        load_dataset(folder)


def test_split_image_sizes_differ(tmp_path):
    folder = write_idx_folder(tmp_path)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros((6, 32, 32), np.uint8)))
    )
    with pytest.raises(AtlasError, match="28×28 pixels, but t10k-images-idx3-ubyte.gz holds 32×32"):
        load_dataset(folder)


def test_missing_default_folder_names_package_and_flag(tmp_path, monkeypatch):
    import latent_atlas.toolkit.data as data

    monkeypatch.setattr(data, "DEFAULT_DATA_DIR", tmp_path / "nope")
    with pytest.raises(AtlasError, match="dataset-fashion-mnist.*--data"):
        load_dataset()


def test_missing_user_path_says_what_is_accepted(tmp_path):
    with pytest.raises(AtlasError, match="nope: does not exist; expected a folder of IDX files"):
        load_dataset(tmp_path / "nope")


def test_missing_file(tmp_path):
    folder = write_idx_folder(tmp_path)
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(AtlasError, match="train-labels-idx1-ubyte.*not found"):
        load_dataset(folder)


def test_corrupt_gzip(tmp_path):
    folder = write_idx_folder(tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(AtlasError, match="cannot be read"):
        load_dataset(folder)


@pytest.mark.real_data
def test_real_dataset(real_data):
    assert real_data.name == "fashion-mnist" and real_data.class_names == FASHION_MNIST_CLASSES
    assert real_data.sha256 == FASHION_MNIST_SHA256  # metrics.json and the cards quote it
    assert real_data.train.images.shape == (60000, 1, 28, 28)
    assert real_data.test.images.shape == (10000, 1, 28, 28)
    # Fashion-MNIST is balanced: 1000 test images per class
    assert np.bincount(real_data.test.labels).tolist() == [1000] * 10


# ---------------------------------------------------------------------------- .npz
def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "layout, shape",
    [("hw", (5, 4, 6)), ("hwc1", (5, 4, 6, 1)), ("hwc3", (5, 4, 6, 3)), ("chw3", (5, 3, 4, 6))],
)
def test_npz_layouts(tmp_path, layout, shape):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    y = np.arange(5) % 2
    data = load_dataset(_npz(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:3], y_test=y[:3]))
    nchw = x[:, None] if layout == "hw" else x if layout == "chw3" else x.transpose(0, 3, 1, 2)
    assert data.image_shape == nchw.shape[1:]
    np.testing.assert_array_equal(data.train.images, nchw.astype(np.float32) / 255)
    assert data.test.labels.tolist() == [0, 1, 0] and data.class_names == ("0", "1")
    assert (
        data.name == "d"
        and data.sha256 == hashlib.sha256((tmp_path / "d.npz").read_bytes()).hexdigest()
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_npz_float_images_in_unit_range(tmp_path, dtype):
    x = np.linspace(0, 1, 2 * 3 * 3).reshape(2, 3, 3).astype(dtype)
    y = np.array([[1], [0]], np.uint8)  # Keras's CIFAR labels are [N, 1]
    data = load_dataset(_npz(tmp_path / "f.npz", x_test=x, y_test=y), train=False)
    np.testing.assert_array_equal(data.test.images[:, 0], x.astype(np.float32))
    assert data.test.labels.tolist() == [1, 0] and data.train is None


def test_npz_class_names_and_flag_override(tmp_path):
    x, y = np.zeros((3, 2, 2), np.uint8), np.array([0, 2, 1])
    path = _npz(tmp_path / "n.npz", x_test=x, y_test=y, class_names=np.array(["cat", "dog", "eel"]))
    assert load_dataset(path, train=False).class_names == ("cat", "dog", "eel")
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    assert load_dataset(path, train=False, class_names=tmp_path / "names.txt").class_names == (
        "a", "b", "c",
    )  # fmt: skip


def test_npz_compressed_and_train_false_same_sha(tmp_path):
    x, y = np.ones((4, 3, 3), np.uint8), np.arange(4)
    np.savez_compressed(tmp_path / "c.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    a, b = load_dataset(tmp_path / "c.npz"), load_dataset(tmp_path / "c.npz", train=False)
    assert a.sha256 == b.sha256 and b.train is None and len(a.train) == 4


def _bad_npz(tmp_path, **arrays):
    base = {"x_test": np.zeros((3, 4, 4), np.uint8), "y_test": np.array([0, 1, 1])}
    return load_dataset(_npz(tmp_path / "b.npz", **(base | arrays)), train=False)


@pytest.mark.parametrize(
    "arrays, word",
    [
        ({"x_test": np.full((3, 4, 4), np.nan, np.float32)}, "image 0 holds NaN"),
        ({"x_test": np.full((3, 4, 4), 255.0, np.float32)}, "from 255 to 255; expected \\[0, 1\\]"),
        ({"x_test": np.zeros((3, 4, 4), np.int64)}, "int64; expected uint8"),
        ({"x_test": np.zeros((3, 5, 5, 5), np.uint8)}, "shape \\[3, 5, 5, 5\\]"),
        ({"x_test": np.zeros((0, 4, 4), np.uint8), "y_test": np.zeros(0, int)}, "empty split"),
        ({"y_test": np.array([0, 1])}, "3 images in x_test but 2 labels in y_test"),
        ({"y_test": np.array([0.0, 1.0, 1.0])}, "float64; expected integer"),
        ({"y_test": np.array([0, -1, 1])}, "label -1"),
        ({"class_names": np.array(["a"])}, "label 1 is outside the class list \\(1 names"),
        ({"class_names": np.array(["a", "a"])}, "blank or repeated"),
    ],
)
def test_npz_refusals(tmp_path, arrays, word):
    with pytest.raises(AtlasError, match=word):
        _bad_npz(tmp_path, **arrays)


def test_npz_missing_key(tmp_path):
    path = _npz(tmp_path / "m.npz", x_test=np.zeros((2, 2, 2), np.uint8), y_test=np.zeros(2, int))
    with pytest.raises(AtlasError, match="no x_train \\(found \\['x_test', 'y_test'\\]\\)"):
        load_dataset(path)
    path = _npz(tmp_path / "k.npz", images=np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(AtlasError, match="no x_test .*Keras convention"):
        load_dataset(path, train=False)


def test_npz_object_arrays_are_not_unpickled(tmp_path):
    path = tmp_path / "o.npz"
    np.savez(path, x_test=np.array([object()] * 2, dtype=object), y_test=np.zeros(2, int))
    with pytest.raises(AtlasError, match="holds Python objects"):
        load_dataset(path, train=False)


def test_npz_header_larger_than_its_entry_is_refused_before_loading(tmp_path):
    import zipfile

    # a header that declares 10**12 bytes over a body of 16: refused from the zip directory
    header = {"descr": "|u1", "fortran_order": False, "shape": (10**6, 1000, 1000)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    raw = buf.getvalue() + bytes(16)
    with zipfile.ZipFile(tmp_path / "h.npz", "w") as zf:
        zf.writestr("x_test.npy", raw)
        zf.writestr("y_test.npy", _npy(np.zeros(3, np.int64)))
    with pytest.raises(AtlasError, match="declares uint8 \\[1000000, 1000, 1000\\]"):
        load_dataset(tmp_path / "h.npz", train=False)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_npz_not_a_zip(tmp_path):
    (tmp_path / "z.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(AtlasError, match="not a readable .npz file"):
        load_dataset(tmp_path / "z.npz")


# ---------------------------------------------------------------------------- image folder
def _png(path, array, mode=None):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


def _image_folder(root, n_train=4, n_test=3, shape=(5, 6), classes=("cat", "dog")):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            a = rng.integers(0, 256, shape, dtype=np.uint8)
            arrays[split, i] = a
            _png(root / split / classes[i % len(classes)] / f"img{i}.png", a)
    return arrays


def test_image_folder_grayscale_in_file_name_order(tmp_path):
    arrays = _image_folder(tmp_path, n_train=12)
    data = load_dataset(tmp_path)
    assert data.image_shape == (1, 5, 6) and data.class_names == ("cat", "dog")
    # img2 before img10 (numbers compare as numbers), classes interleaved as the names say
    assert data.train.labels.tolist() == [0, 1] * 6
    expect = np.stack([arrays["train", i] for i in range(12)])[:, None]
    np.testing.assert_array_equal(data.train.images, expect.astype(np.float32) / 255)


def test_image_folder_rgb_three_channels(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    for i in range(3):
        _png(tmp_path / "test" / "x" / f"{i}.png", a[i])
    data = load_dataset(tmp_path, train=False)
    assert data.image_shape == (3, 4, 5)
    np.testing.assert_array_equal(data.test.images, a.transpose(0, 3, 1, 2) / np.float32(255))


def test_image_folder_same_pairs_as_torchvision(tmp_path):
    from torchvision.datasets import ImageFolder

    _image_folder(tmp_path, n_train=9, classes=("b", "a", "c"))
    ours = load_dataset(tmp_path)
    theirs = ImageFolder(str(tmp_path / "train"))
    assert list(ours.class_names) == theirs.classes  # same class indices as torchvision
    pairs = sorted((np.asarray(img)[:, :, 0].tobytes(), y) for img, y in theirs)  # RGB there
    mine = sorted(
        ((x[0] * 255).round().astype(np.uint8).tobytes(), int(y))
        for x, y in zip(ours.train.images, ours.train.labels, strict=True)
    )
    assert mine == pairs


def test_image_folder_skips_hidden_and_other_files(tmp_path):
    _image_folder(tmp_path)
    (tmp_path / "test" / "cat" / "._img0.png").write_bytes(b"AppleDouble")
    (tmp_path / "test" / "cat" / "notes.txt").write_text("hi")
    (tmp_path / "test" / ".ipynb_checkpoints").mkdir()
    data = load_dataset(tmp_path)
    assert len(data.test) == 3 and data.class_names == ("cat", "dog")


def test_image_folder_class_names_file(tmp_path):
    _image_folder(tmp_path)
    (tmp_path / "names.txt").write_text("Cat\nDog\n")
    assert load_dataset(tmp_path, class_names=tmp_path / "names.txt").class_names == ("Cat", "Dog")
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    with pytest.raises(AtlasError, match="3 names, but image folder .* has 2 class folders"):
        load_dataset(tmp_path, class_names=tmp_path / "three.txt")


def test_image_folder_train_false_same_sha(tmp_path):
    _image_folder(tmp_path)
    a, b = load_dataset(tmp_path), load_dataset(tmp_path, train=False)
    assert a.sha256 == b.sha256 and b.train is None


def test_image_folder_opaque_alpha_is_dropped_transparent_refused(tmp_path):
    rgba = np.full((2, 2, 4), 200, np.uint8)
    rgba[..., 3] = 255
    _png(tmp_path / "test" / "a" / "0.png", rgba)
    assert load_dataset(tmp_path, train=False).image_shape == (3, 2, 2)
    rgba[0, 0, 3] = 0
    _png(tmp_path / "test" / "a" / "1.png", rgba)
    with pytest.raises(AtlasError, match="1.png: transparent pixels"):
        load_dataset(tmp_path, train=False)


@pytest.mark.parametrize(
    "make, word",
    [
        (lambda t: _png(t / "test" / "dog" / "img9.png", np.zeros((7, 6), np.uint8)),
         "img9.png: 6×7 pixels, L; but .*img0.png is 6×5, L; expected one image size"),
        (lambda t: _png(t / "test" / "dog" / "img9.png", np.zeros((5, 6, 3), np.uint8)),
         "img9.png: 6×5 pixels, RGB.*expected one image size and channel count"),
        (lambda t: (t / "test" / "dog" / "img9.png").write_bytes(b"not a png"),
         "img9.png: not a readable image"),
        (lambda t: _png(t / "test" / "dog" / "img9.png", np.zeros((5, 6), np.uint16)), "mode I;16"),
    ],
)  # fmt: skip
def test_image_folder_refusals(tmp_path, make, word):
    _image_folder(tmp_path)
    make(tmp_path)
    with pytest.raises(AtlasError, match=word):
        load_dataset(tmp_path)


def test_image_folder_empty_split_and_missing_train(tmp_path):
    (tmp_path / "test" / "a").mkdir(parents=True)
    with pytest.raises(AtlasError, match="no images .*empty split"):
        load_dataset(tmp_path, train=False)
    with pytest.raises(AtlasError, match="no train/ folder"):
        load_dataset(tmp_path)


def test_image_folder_non_utf8_class_name(tmp_path):
    import os

    _image_folder(tmp_path)
    os.mkdir(os.path.join(os.fsencode(tmp_path / "test"), b"caf\xe9"))
    with pytest.raises(AtlasError, match="caf\\\\xe9: its name is not valid UTF-8"):
        load_dataset(tmp_path)


# ---------------------------------------------------------------------------- sklearn:digits
def test_digits_split_is_every_fifth_of_each_class():
    from sklearn.datasets import load_digits

    data = load_dataset("sklearn:digits")
    assert data.name == "digits" and data.image_shape == (1, 8, 8)
    assert (len(data.train), len(data.test)) == (1442, 355)
    assert data.class_names == tuple("0123456789") and data.test.images.max() == 1.0
    bunch = load_digits()
    # the first test image: the earliest of the ten classes' 5th images
    first = min(np.flatnonzero(bunch.target == k)[4] for k in range(10))
    np.testing.assert_array_equal(data.test.images[0, 0], bunch.images[first] / 16)
    # every class in both splits, about one in five in test
    assert (np.bincount(data.test.labels) == np.bincount(bunch.target) // 5).all()
    again = load_dataset("sklearn:digits", train=False)
    assert again.sha256 == data.sha256 and again.train is None
    np.testing.assert_array_equal(again.test.images, data.test.images)


# ---------------------------------------------------------------------------- load_dataset
def test_unknown_sources(tmp_path):
    with pytest.raises(AtlasError, match="sklearn:iris: unknown; expected sklearn:digits"):
        load_dataset("sklearn:iris")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(AtlasError, match="x.csv: a file that is not an .npz"):
        load_dataset(tmp_path / "x.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AtlasError, match="holds neither IDX files nor train/ and test/"):
        load_dataset(tmp_path / "empty")


@pytest.mark.parametrize(
    "text, word",
    [("", "is empty"), ("a\n\nb\n", "line 2 is blank"), ("a\nb\na\n", "line 3 repeats 'a'")],
)
def test_class_names_file_refusals(tmp_path, text, word):
    folder = write_idx_folder(tmp_path / "d")
    (tmp_path / "n.txt").write_text(text)
    with pytest.raises(AtlasError, match=word):
        load_dataset(folder, class_names=tmp_path / "n.txt")


def test_class_names_file_not_utf8(tmp_path):
    folder = write_idx_folder(tmp_path / "d")
    (tmp_path / "n.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(AtlasError, match="not UTF-8 text"):
        load_dataset(folder, class_names=tmp_path / "n.txt")


# ---------------------------------------------------------------------------- memory bounds
def _gz_zeros(n_mib: int) -> bytes:
    """A gzip stream of ``n_mib`` MiB of zeros, built from one compressed MiB repeated
    (gzip allows concatenated members): a bomb made in milliseconds, about 1 kB per MiB."""
    return gzip.compress(bytes(1 << 20), compresslevel=9) * n_mib


def test_gzip_bomb_stops_one_byte_past_the_header_size(tmp_path, monkeypatch):
    from latent_atlas.toolkit import idx

    folder = write_idx_folder(tmp_path)
    body = idx_bytes(np.zeros((6, 28, 28), np.uint8))
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(body) + _gz_zeros(256))
    counted = {"bytes": 0}
    real_stream = idx.IdxReader.stream

    def counting(self, consume, hashers=()):
        def count(chunk, at):
            if "t10k-images" in self.name:
                counted["bytes"] = max(counted["bytes"], at + len(chunk))
            if consume is not None:
                consume(chunk, at)

        return real_stream(self, count, hashers)

    monkeypatch.setattr(idx.IdxReader, "stream", counting)
    with pytest.raises(AtlasError, match="more than 4720 bytes, expected 4720 .*trailing bytes"):
        load_dataset(folder)
    assert counted["bytes"] <= 6 * 28 * 28  # the 256 MiB behind it were never inflated


def test_sparse_100_gib_file_is_refused_from_its_size(tmp_path):
    folder = write_idx_folder(tmp_path, gz=False)
    path = folder / "train-images-idx3-ubyte"
    with open(path, "r+b") as fh:
        fh.truncate(100 << 30)  # sparse: no disk used, no byte read
    with pytest.raises(AtlasError, match="107374182400 bytes, expected 9424 .*trailing bytes"):
        load_dataset(folder, train=False)


def test_declared_size_above_the_limit_is_refused_before_allocating(tmp_path):
    from latent_atlas.toolkit.dataset import MAX_VALUES

    folder = write_idx_folder(tmp_path)
    n = MAX_VALUES // (28 * 28) + 1
    header = IMAGES_MAGIC.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28))
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(header))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(LABELS_MAGIC.to_bytes(4, "big") + n.to_bytes(4, "big"))
    )
    with pytest.raises(AtlasError, match="pixel values .* expected at most 2,147,483,648"):
        load_dataset(folder, train=False)


def test_image_folder_refuses_huge_images_from_their_header(tmp_path):
    from PIL import Image

    (tmp_path / "test" / "a").mkdir(parents=True)
    Image.new("1", (5000, 300)).save(tmp_path / "test" / "a" / "wide.png")  # a few hundred bytes
    with pytest.raises(AtlasError, match="images of 300×5000 pixels; expected sides of 1..4096"):
        load_dataset(tmp_path, train=False)
    Image.new("1", (30000, 30000)).save(tmp_path / "test" / "a" / "wide.png")  # 900 Mpixel
    with pytest.raises(AtlasError, match="wide.png: not a readable image .*decompression bomb"):
        load_dataset(tmp_path, train=False)


_PEAK = """
import sys
from latent_atlas.toolkit.data import load_dataset
from latent_atlas.toolkit.errors import AtlasError
try:
    load_dataset(sys.argv[1], train=sys.argv[2] == "train")
    outcome = "loaded"
except AtlasError as exc:
    outcome = str(exc)
status = open("/proc/self/status").read()
peak = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))
print(peak, outcome)
"""


def _peak_kib(source, train: bool) -> tuple[int, str]:
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-c", _PEAK, str(source), "train" if train else "test"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    peak, outcome = r.stdout.strip().split(" ", 1)
    return int(peak), outcome


@pytest.mark.real_data
@pytest.mark.slow
@pytest.mark.parametrize("train", [True, False], ids=["train", "test-only"])
def test_gzip_bomb_peak_rss_within_1_2x_of_the_real_data(tmp_path, train):
    """Issue 9: a 4.6 MB .gz inflating to 1 GiB (Fashion-MNIST's real t10k images followed by
    1 GiB of zeros) peaks within 1.2× of loading the real data, in a fresh process each."""
    from conftest import DEFAULT_DATA_DIR

    real = DEFAULT_DATA_DIR
    bomb = tmp_path / "bomb"
    bomb.mkdir()
    for f in real.iterdir():
        (bomb / f.name).symlink_to(f)
    (bomb / "t10k-images-idx3-ubyte.gz").unlink()
    bomb_gz = (real / "t10k-images-idx3-ubyte.gz").read_bytes() + _gz_zeros(1024)
    (bomb / "t10k-images-idx3-ubyte.gz").write_bytes(bomb_gz)
    assert len(bomb_gz) < 6_000_000  # 4.4 MB of real images, 1.1 MB of zeros
    real_peak, ok = _peak_kib(real, train)
    bomb_peak, refusal = _peak_kib(bomb, train)
    print(f"\npeak RSS (VmHWM), train={train}: real {real_peak} KiB, bomb {bomb_peak} KiB")
    assert ok == "loaded" and "trailing bytes" in refusal
    assert bomb_peak <= 1.2 * real_peak


# ---------------------------------------------------------------------------- property tests
# Random bytes and random headers into the IDX and npz readers: each either loads a dataset
# that keeps every promise of the type, or refuses with AtlasError — never another exception.
def _load_or_refuse(source, **kw):
    try:
        data = load_dataset(source, **kw)
    except AtlasError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None
    for split in (data.test, data.train):
        if split is None:
            continue
        assert split.images.dtype == np.float32 and split.images.ndim == 4
        assert np.isfinite(split.images).all()
        assert split.images.min() >= 0 and split.images.max() <= 1
        assert split.labels.dtype == np.int64 and 0 <= split.labels.min()
        assert split.labels.max() < data.n_classes
    return data


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(0, 4), h=st.integers(0, 3), w=st.integers(0, 3), n_labels=st.integers(0, 5),
    cut=st.integers(-3, 3), gz=st.booleans(), seed=st.integers(0, 2**16),
    which=st.sampled_from(["t10k-images", "t10k-labels", "train-images", "train-labels"]),
)  # fmt: skip
def test_idx_folder_with_random_headers(n, h, w, n_labels, cut, gz, seed, which):
    import tempfile
    from pathlib import Path

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_idx_folder(Path(tmp), n_train=3, n_test=3, gz=gz)
        if which.endswith("images"):
            raw = idx_bytes(rng.integers(0, 256, (n, h, w), dtype=np.uint8))
        else:
            raw = idx_bytes(rng.integers(0, 256, n_labels, dtype=np.uint8))
        raw = raw[:cut] if cut < 0 else raw + bytes(cut)
        stem = which + ("-idx3" if which.endswith("images") else "-idx1")
        name = f"{stem}-ubyte" + (".gz" if gz else "")
        (folder / name).write_bytes(gzip.compress(raw) if gz else raw)
        data = _load_or_refuse(folder)
        if data is not None:  # only a consistent replacement loads
            assert cut == 0 and (n if which.endswith("images") else n_labels) == 3


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=200),
    st.sampled_from(["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
    st.booleans(),
)
def test_idx_folder_with_random_bytes(raw, name, gz):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_idx_folder(Path(tmp), gz=gz)
        (folder / (name + (".gz" if gz else ""))).write_bytes(raw)
        assert _load_or_refuse(folder) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_npz_with_random_bytes(raw):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "r.npz").write_bytes(raw)
        assert _load_or_refuse(Path(tmp) / "r.npz", train=False) is None


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255), st.booleans())
def test_npz_with_a_damaged_byte_or_cut(at, value, cut):
    import tempfile
    from pathlib import Path

    x = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.npz"
        np.savez(path, x_train=x, y_train=np.arange(4) % 2, x_test=x, y_test=np.arange(4) % 2)
        raw = bytearray(path.read_bytes())
        at %= len(raw)
        if cut:
            raw = raw[:at]
        else:
            raw[at] = value
        path.write_bytes(bytes(raw))
        _load_or_refuse(path)


DTYPES = ["|u1", "<f4", ">f8", "<f2", "<i8", "|b1", "<c8", "|O", "<U3", "|S2", "<M8[s]", "|V4",
          "<u2", "[('a', '<i4')]"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(["x_test", "y_test", "class_names"]),
    descr=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(0, 2**40), max_size=5).map(tuple),
    fortran=st.booleans(),
    body=st.integers(0, 600),
)
def test_npz_with_random_npy_headers(key, descr, shape, fortran, body):
    import tempfile
    import zipfile
    from pathlib import Path

    shown_descr = descr if descr.startswith("[") else repr(descr)
    text = f"{{'descr': {shown_descr}, 'fortran_order': {fortran!r}, 'shape': {shape!r}, }}"
    text += " " * (-(len(text) + 11) % 64) + "\n"
    header = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")
    arrays = {"x_test": np.zeros((3, 2, 2), np.uint8), "y_test": np.arange(3)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h.npz"
        with zipfile.ZipFile(path, "w") as zf:
            for k, v in arrays.items():
                if k != key:
                    buf = io.BytesIO()
                    np.save(buf, v)
                    zf.writestr(k + ".npy", buf.getvalue())
            zf.writestr(key + ".npy", header + bytes(body))
        _load_or_refuse(path, train=False)


# ------------------------------------------------------------------ same data, three sources
def _gray_png(pixels: np.ndarray) -> bytes:
    """A plain 8-bit grayscale PNG (signature, IHDR, one zlib IDAT of filter-0 rows, IEND):
    Pillow's save costs 4× more per file and the fixture below writes 70 000 of them. The
    loader still decodes each through Pillow."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    h, w = pixels.shape
    rows = b"".join(b"\0" + pixels[r].tobytes() for r in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit grayscale, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))  # fmt: skip


# the train split's first images (its whole 60 000 cost ~30 CPU s to write and read back as
# PNGs, for no path the first 6 000 do not take); the test split is whole: a dataset is
# recognised as Fashion-MNIST by its test split
THREE_WAYS_TRAIN = 6_000


def _three_ways_split(real_data, split: str) -> Split:
    whole = getattr(real_data, split)
    n = THREE_WAYS_TRAIN if split == "train" else len(whole.labels)
    return Split(whole.images[:n], whole.labels[:n])


@pytest.fixture(scope="module")
def fashion_three_ways(tmp_path_factory, real_data):
    """Fashion-MNIST as the test wrote it: an .npz (with class_names) and an image folder
    (class folders 0..9, files numbered in the IDX order, a --class-names file); the train
    split's first THREE_WAYS_TRAIN images."""
    root = tmp_path_factory.mktemp("fashion")
    splits = {s: _three_ways_split(real_data, s) for s in ("train", "test")}
    pixels = {s: (split.images[:, 0] * 255).round().astype(np.uint8) for s, split in splits.items()}
    np.savez(
        root / "fashion.npz",
        x_train=pixels["train"], y_train=splits["train"].labels.astype(np.uint8),
        x_test=pixels["test"], y_test=splits["test"].labels.astype(np.uint8),
        class_names=np.array(real_data.class_names),
    )  # fmt: skip
    for s, folder in (("train", "train"), ("test", "test")):
        labels = splits[s].labels
        for k in range(10):
            (root / "images" / folder / str(k)).mkdir(parents=True)
        for i, (image, label) in enumerate(zip(pixels[s], labels, strict=True)):
            (root / "images" / folder / str(label) / f"{i:05d}.png").write_bytes(_gray_png(image))
    (root / "names.txt").write_text("\n".join(real_data.class_names) + "\n")
    return root


@pytest.mark.real_data
@pytest.mark.slow
def test_fashion_mnist_as_npz_and_image_folder_loads_identically(real_data, fashion_three_ways):
    root = fashion_three_ways
    npz = load_dataset(root / "fashion.npz")
    folder = load_dataset(root / "images", class_names=root / "names.txt")
    for other in (npz, folder):
        assert other.class_names == real_data.class_names == FASHION_MNIST_CLASSES
        for s in ("train", "test"):
            ours, theirs = getattr(other, s), _three_ways_split(real_data, s)
            np.testing.assert_array_equal(ours.images, theirs.images)  # same images, same order
            np.testing.assert_array_equal(ours.labels, theirs.labels)


@pytest.mark.real_data
@pytest.mark.slow
def test_fashion_mnist_three_sources_give_the_same_metrics(real_data, fashion_three_ways):
    """Issue 12: the analysis of the shipped pair on the IDX folder, the .npz and the image
    folder writes the same metrics.json, except where the data came from (its path and its
    sha256, which is over the files as stored). Each is recognised as Fashion-MNIST (by its
    test split), so each gets the shipped classifier."""
    import json

    from conftest import SHIPPED

    from latent_atlas.pipeline import AnalysisConfig
    from latent_atlas.runs import ComparisonConfig, run_analyses

    root = fashion_three_ways
    sources = {
        "idx": load_dataset(real_data.source, train=False),
        "npz": load_dataset(root / "fashion.npz", train=False),
        "images": load_dataset(root / "images", train=False),  # folders 0..9: Fashion's names
    }
    # every measure of the report, on the whole test split, at smaller sizes where a size
    # does not touch the data (atlas, geodesic graph, decoded samples, t-SNE codes): every
    # measure still runs and is compared, at half the default's cost
    lean = AnalysisConfig(atlas_steps=32, geometry_graph=16, n_samples=2000, tsne_points=500)
    cfg = ComparisonConfig(name="three", models=(SHIPPED / "vae", SHIPPED / "ae"), analysis=lean)
    metrics = {}
    for key, data in sources.items():
        m = run_analyses(cfg, data=data).metrics
        assert m["dataset"]["name"] == "fashion-mnist"
        assert m["classifier"] == str(SHIPPED / "classifier" / "classifier.onnx")
        assert m["dataset"].pop("source") == data.source
        assert m["dataset"].pop("sha256") == data.sha256
        metrics[key] = json.dumps(m, sort_keys=True)
    assert metrics["npz"] == metrics["idx"]
    assert metrics["images"] == metrics["idx"]


def test_a_file_name_never_claims_a_recognised_dataset(tmp_path):
    # "auto" picks the shipped classifier by the dataset's name: a name is earned by content
    x, y = np.zeros((3, 28, 28), np.uint8), np.arange(3)
    np.savez(tmp_path / "fashion-mnist.npz", x_test=x, y_test=y)
    assert load_dataset(tmp_path / "fashion-mnist.npz", train=False).name == "fashion-mnist-user"
    digits = write_idx_folder(tmp_path / "digits")
    assert load_dataset(digits).name == "digits-user"


def test_sparse_100_gib_npz_is_refused_without_reading_it(tmp_path):
    with open(tmp_path / "s.npz", "wb") as fh:
        fh.truncate(100 << 30)
    with pytest.raises(AtlasError, match="s.npz: not a readable .npz file"):
        load_dataset(tmp_path / "s.npz")


def test_image_folder_class_without_train_images(tmp_path):
    """A class folder with no train images (empty, or only in test/) is refused for training
    (one line naming it) and allowed for analysis (train=False)."""
    _image_folder(tmp_path)
    (tmp_path / "train" / "bird").mkdir()  # empty in train/
    _png(tmp_path / "test" / "fish" / "img0.png", np.zeros((5, 6), np.uint8))  # test/ only
    with pytest.raises(AtlasError, match=r"no images of class 'bird' \(and 1 more\)"):
        load_dataset(tmp_path)
    data = load_dataset(tmp_path, train=False)
    assert data.class_names == ("bird", "cat", "dog", "fish")
