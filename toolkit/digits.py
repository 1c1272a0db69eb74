"""``sklearn:digits``: the 1 797 real 8×8 handwritten digits scikit-learn ships (no download;
UCI's optical recognition of handwritten digits test set, 43 writers), classes "0".."9".

Split without randomness: within each class, in the file's order, every fifth image (the 5th,
10th, …) is a test image, the rest train — 355 test and 1 442 train images, every class in both
in the proportions of the whole set. Pixel values 0..16 are divided by 16 into [0, 1].
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from latent_atlas.toolkit.dataset import ImageDataset, Split, resolve_class_names

SOURCE = "sklearn:digits"
CLASS_NAMES = tuple(str(k) for k in range(10))
TEST_EVERY = 5
MAX_VALUE = 16


def test_mask(labels: np.ndarray) -> np.ndarray:
    """True for every ``TEST_EVERY``-th image of each class, counted in file order."""
    mask = np.zeros(len(labels), bool)
    for k in np.unique(labels):
        mask[np.flatnonzero(labels == k)[TEST_EVERY - 1 :: TEST_EVERY]] = True
    return mask


def load_digits_dataset(train: bool = True, class_names: Path | None = None) -> ImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = bunch.images.astype(np.uint8)  # integers 0..16 stored as float64
    labels = bunch.target.astype(np.int64)
    digest = hashlib.sha256(SOURCE.encode() + pixels.tobytes() + labels.astype(np.uint8).tobytes())
    images = (pixels.astype(np.float32) / np.float32(MAX_VALUE))[:, None]
    test = test_mask(labels)
    names = resolve_class_names(int(labels.max()), CLASS_NAMES, class_names, SOURCE)
    return ImageDataset(
        name="digits",
        test=Split(images[test], labels[test]),
        train=Split(images[~test], labels[~test]) if train else None,
        class_names=names,
        sha256=digest.hexdigest(),
        source=SOURCE,
    )
