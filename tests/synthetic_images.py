"""Small labelled image datasets made by the tests: coloured shapes (RGB) and blobs (gray)."""

from __future__ import annotations

import numpy as np
from latent_atlas.toolkit.data import ImageDataset, Split

SHAPE_CLASSES = ("square", "disc", "bar", "ring")


def _shape_mask(kind: int, size: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    d = np.hypot(yy - cy, xx - cx)
    if kind == 0:  # square
        return (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
    if kind == 1:  # disc
        return d <= r
    if kind == 2:  # horizontal bar
        return (np.abs(yy - cy) <= r / 3) & (np.abs(xx - cx) <= r * 1.4)
    return (d <= r) & (d >= r * 0.55)  # ring


def coloured_shapes(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` RGB images ``[n, 3, size, size]`` in [0, 1]: one shape of a random colour on a
    dark background, at a random place and scale; labels 0..3 (``SHAPE_CLASSES``)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % 4
    rng.shuffle(labels)
    images = np.zeros((n, 3, size, size), np.float32)
    for i, kind in enumerate(labels):
        r = rng.uniform(size * 0.18, size * 0.3)
        cy, cx = rng.uniform(r + 1, size - r - 1, 2)
        colour = rng.uniform(0.35, 1.0, 3).astype(np.float32)
        mask = _shape_mask(int(kind), size, cy, cx, r)
        images[i] = rng.uniform(0, 0.1, (3, size, size)).astype(np.float32)
        images[i][:, mask] = colour[:, None]
    return images, labels


def shapes_dataset(n_train: int = 160, n_test: int = 48, size: int = 32) -> ImageDataset:
    """The coloured-shapes dataset: 4 classes, 3×size×size."""
    x, y = coloured_shapes(n_train + n_test, size)
    return ImageDataset(
        name="shapes",
        test=Split(x[n_train:], y[n_train:]),
        train=Split(x[:n_train], y[:n_train]),
        class_names=SHAPE_CLASSES,
        sha256="5" * 64,
        source="tests/synthetic_images.py",
    )


def gray_dataset(shape: tuple[int, int, int] = (1, 8, 8), n: int = 120) -> ImageDataset:
    """Two classes of gray images (a bright left or right half, plus noise)."""
    rng = np.random.default_rng(1)
    labels = np.arange(n, dtype=np.int64) % 2
    x = rng.uniform(0, 0.2, (n, *shape)).astype(np.float32)
    half = shape[2] // 2
    x[labels == 0, :, :, :half] += 0.7
    x[labels == 1, :, :, half:] += 0.7
    split = n * 3 // 4
    return ImageDataset(
        name="halves",
        test=Split(x[split:], labels[split:]),
        train=Split(x[:split], labels[:split]),
        class_names=("left", "right"),
        sha256="7" * 64,
        source="tests/synthetic_images.py",
    )
