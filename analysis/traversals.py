"""What a latent traversal (or an interpolation) shows, measured; and its figure.

A traversal is a row of decoded images per latent dimension, ``images[r, s]`` decoded with dim
``dims[r]`` at ``values[r, s]`` and every other dim at a base point (``toolkit.traversal``).
Measures here take those arrays (and, where there is one, the classifier's logits of each
image) and say how much each dimension changes the image and what the classifier reads.
Dimensions are numbered from 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from latent_atlas.analysis.classes import softmax
from latent_atlas.analysis.raster import image_rows_png
from latent_atlas.analysis.validation import check_array, check_cells
from latent_atlas.toolkit.errors import AtlasError
from numpy.typing import ArrayLike, NDArray


def row_brightness(images: ArrayLike) -> NDArray[np.float64]:
    """Mean pixel value of every image of the rows.

    Parameters
    ----------
    images : array_like, shape [k, steps, C, H, W]
        Decoded images in [0, 1].

    Returns
    -------
    numpy.ndarray, shape [k, steps], float64, in [0, 1]
    """
    arr = check_cells(images)
    return arr.mean(axis=(2, 3, 4))


def row_change(images: ArrayLike) -> NDArray[np.float64]:
    """How much each row's image changes along it: the summed mean absolute pixel difference
    between neighbouring images (the row's total variation per pixel).

    Parameters
    ----------
    images : array_like, shape [k, steps, C, H, W]
        Decoded images in [0, 1].

    Returns
    -------
    numpy.ndarray, shape [k], float64, >= 0
        0 exactly when every image of the row is identical (a dim the decoder ignores); at
        most ``steps − 1``.
    """
    arr = check_cells(images)
    return np.abs(np.diff(arr, axis=1)).mean(axis=(2, 3, 4)).sum(axis=1)


def class_readout(logits: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The classifier's label and confidence of every image.

    Parameters
    ----------
    logits : array_like, shape [..., K]
        Logits of each image (log-probabilities work too).

    Returns
    -------
    labels : numpy.ndarray, shape [...], int64
        Arg-max class.
    confidence : numpy.ndarray, shape [...], float64, in [1/K, 1]
        Softmax probability of that class.
    """
    lg = check_array(logits, "logits", min_ndim=1)
    p = softmax(lg)
    return p.argmax(axis=-1).astype(np.int64), p.max(axis=-1)


@dataclass
class TraversalMetrics:
    """Per traversed dim (``dims[r]``, numbered from 0): its values in latent units, how much
    its row changes the image (``change``: summed mean |Δ pixel| between neighbours, 0 for a
    dim the decoder ignores), the mean brightness of each image, and — with a classifier — the
    label name and confidence of each image and how many distinct classes the row crosses."""

    dims: list[int]
    base: str  # what the other dims hold, in words
    values: list[list[float]]
    change: list[float]
    brightness: list[list[float]]
    labels: list[list[str]] | None = None
    confidence: list[list[float]] | None = None
    classes_crossed: list[int] | None = None

    def to_json(self) -> dict:
        from latent_atlas.analysis.results import rounded

        return rounded(self)


def traversal_metrics(
    images: ArrayLike,
    values: ArrayLike,
    dims: Sequence[int],
    base: str,
    logits: ArrayLike | None = None,
    class_names: Sequence[str] = (),
) -> TraversalMetrics:
    """Measure decoded traversals.

    Parameters
    ----------
    images : array_like, shape [k, steps, C, H, W]
        Decoded images in [0, 1].
    values : array_like, shape [k, steps]
        The traversed dim's value (latent units) of each image.
    dims : sequence of int, length k
        Which dim each row moves.
    base : str
        What the other dims hold (e.g. "the mean test embedding").
    logits : array_like, shape [k, steps, K], optional
        The classifier's logits of each image.
    class_names : sequence of str, length K
        Needed with ``logits``.

    Returns
    -------
    TraversalMetrics
    """
    arr = check_cells(images)
    k, steps = arr.shape[:2]
    vals = check_array(values, "values", shape=(k, steps))
    if len(dims) != k:
        raise AtlasError(f"dims: {len(dims)} given, expected {k} (one per row)")
    labels = confidence = crossed = None
    if logits is not None:
        lg = check_array(logits, "logits", shape=(k, steps, len(class_names)))
        lab, conf = class_readout(lg)
        labels = [[str(class_names[c]) for c in row] for row in lab]
        confidence = conf.tolist()
        crossed = [len(set(row.tolist())) for row in lab]
    return TraversalMetrics(
        dims=[int(d) for d in dims], base=base, values=vals.tolist(),
        change=row_change(arr).tolist(), brightness=row_brightness(arr).tolist(),
        labels=labels, confidence=confidence, classes_crossed=crossed,
    )  # fmt: skip


def traversal_captions(metrics: TraversalMetrics) -> list[list[str]] | None:
    """``"Bag 0.93"`` under each image: the classifier's label and confidence."""
    if metrics.labels is None or metrics.confidence is None:
        return None
    return [
        [f"{lab[:10]} {c:.2f}" for lab, c in zip(row_l, row_c, strict=True)]
        for row_l, row_c in zip(metrics.labels, metrics.confidence, strict=True)
    ]


def interpolation_png(
    images: ArrayLike,
    ends: ArrayLike,
    t: ArrayLike,
    labels: tuple[str, str],
    logits: ArrayLike | None = None,
    class_names: Sequence[str] = (),
    title: str = "",
    geodesic: ArrayLike | None = None,
    lengths: tuple[float, float] | None = None,
    geodesic_logits: ArrayLike | None = None,
) -> bytes:
    """One row: the first test image, the images decoded along the line between the two
    codes, the second test image; ``t`` above each decoded image, the classifier's label and
    confidence under it when ``logits`` are given. With ``geodesic``, a second row: the
    images along the geodesic between the same codes, each row labelled with its length.

    Parameters
    ----------
    images : array_like, shape [steps, C, H, W]
        Decoded along the line, in [0, 1].
    ends : array_like, shape [2, C, H, W]
        The two test images themselves.
    t : array_like, shape [steps]
        Position on the line, 0 (first image's code) to 1 (second's).
    labels : (str, str)
        What the two ends are (e.g. "test image 3").
    logits : array_like, shape [steps, K], optional
    class_names : sequence of str, length K (with ``logits``)
    title : str, optional
    geodesic : array_like, shape [steps, C, H, W], optional
        Decoded along the geodesic between the same two codes (``t`` there: equal steps of
        the polyline of least energy, i.e. about equal image-space length).
    lengths : (float, float), optional
        The straight line's and the geodesic's image-space lengths (with ``geodesic``).
    geodesic_logits : array_like, shape [steps, K], optional

    Returns
    -------
    bytes
        The PNG file (:func:`~latent_atlas.analysis.raster.image_rows_png`).
    """
    imgs = check_array(images, "images", ndim=4)
    end = check_array(ends, "ends", shape=(2, *imgs.shape[1:]))
    steps = len(imgs)
    tt = check_array(t, "t", shape=(steps,))
    strips = [imgs]
    row_labels = ["line"]
    all_logits = [logits]
    if geodesic is not None:
        strips.append(check_array(geodesic, "geodesic", shape=imgs.shape))
        if lengths is None:
            raise AtlasError("lengths: not given; expected the two lengths with a geodesic")
        row_labels = [f"straight, length {lengths[0]:.3g}", f"geodesic, length {lengths[1]:.3g}"]
        all_logits.append(geodesic_logits)
    rows = np.stack([np.concatenate([end[:1], strip, end[1:]]) for strip in strips])
    values = np.repeat(np.concatenate([[0.0], tt, [1.0]])[None], len(strips), axis=0)
    captions: list[list[str]] | None = None
    classes = None
    known = [lg for lg in all_logits if lg is not None]
    if len(known) == len(all_logits):
        captions, class_rows = [], []
        for lg in known:
            lab, conf = class_readout(check_array(lg, "logits", shape=(steps, len(class_names))))
            middle = [f"{class_names[c][:10]} {p:.2f}" for c, p in zip(lab, conf, strict=True)]
            captions.append([labels[0], *middle, labels[1]])
            class_rows.append(np.concatenate([lab[:1], lab, lab[-1:]]))
        classes = np.stack(class_rows)
    return image_rows_png(rows, row_labels, values, captions, classes, title)
