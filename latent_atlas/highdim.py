"""What a report adds for one model beyond the grids: what every VAE notebook shows (test
images over their reconstructions, samples from the prior) and, for a latent space of more
than two dims, which dims it uses (diagnostics), what each does (traversals), what lies between
two test images (interpolation), the PCA plane and the plane through three test images (extra
grids), and 2-D maps of the full codes (t-SNE; UMAP where umap-learn is installed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latent_atlas.toolkit.data import ImageDataset
from latent_atlas.toolkit.grid import GridSpec
from latent_atlas.toolkit.runtime import Model, OnnxModel
from latent_atlas.toolkit.traversal import TraversalSpec
from latent_atlas.traversals import (
    Dimensions,
    Interpolation,
    TraversalResult,
    diagnose,
    interpolate,
    traverse,
)

SAMPLE_ROWS, SAMPLE_COLS = 4, 10  # the prior-sample grid


@dataclass
class ModelExtras:
    """``originals``/``reconstructions`` ``[n, C, H, W]`` (one test image per class, needs an
    encoder); ``samples`` ``[rows, cols, C, H, W]`` decoded from N(0, I); for a model of more
    than two dims with an encoder, the rest."""

    samples: np.ndarray
    originals: np.ndarray | None = None
    reconstructions: np.ndarray | None = None
    recon_index: np.ndarray | None = None  # which test images
    dimensions: Dimensions | None = None
    traversal: TraversalResult | None = None
    interpolation: Interpolation | None = None
    tsne: np.ndarray | None = None  # [n, 2]
    tsne_index: np.ndarray | None = None  # [n] rows of the test set
    umap: np.ndarray | None = None  # [n, 2], where umap-learn is installed
    umap_index: np.ndarray | None = None


def first_of_each_class(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Index of the first test image of each class present, in class order."""
    lab = np.asarray(labels)
    return np.array([int(np.argmax(lab == c)) for c in range(n_classes) if (lab == c).any()],
                    np.int64)  # fmt: skip


def plane_images(data: ImageDataset, given: tuple[int, ...] = ()) -> tuple[int, int, int]:
    """The three test images of the report's images plane: ``given``, else the first test
    image of each of the first three classes present (else the first three images)."""
    if given:
        return (int(given[0]), int(given[1]), int(given[2]))
    first = first_of_each_class(data.test.labels, len(data.class_names))
    pick = first[:3] if len(first) >= 3 else np.arange(3)
    return (int(pick[0]), int(pick[1]), int(pick[2]))


def extra_grids(
    first: GridSpec, data: ImageDataset, images: tuple[int, ...] = ()
) -> list[GridSpec]:
    """The grids a model of more than two dims adds: the PCA plane and the plane through three
    test images, both over the range the test embeddings cover (``auto``), as many steps as the
    report's first grid."""
    return [
        GridSpec(steps=first.steps, mode="auto", plane="pca"),
        GridSpec(steps=first.steps, mode="auto", plane="images", images=plane_images(data, images)),
    ]


def analyze_extras(
    model: Model,
    data: ImageDataset,
    classifier: OnnxModel | None,
    embeddings: np.ndarray | None,
    *,
    threshold: float,
    k: int,
    images: tuple[int, ...] = (),
    tsne_points: int = 2000,
    seed: int = 0,
    batch_size: int = 4096,
    dimensions: Dimensions | None = None,
    geodesic_steps: int = 0,
) -> ModelExtras:
    """Decode and measure everything :class:`ModelExtras` holds for ``model``; with
    ``geodesic_steps``, the interpolation's geodesic too, started on a graph of that many
    points per axis."""
    rng = np.random.default_rng(seed + 1)  # not the Fréchet samples' stream
    z = rng.standard_normal((SAMPLE_ROWS * SAMPLE_COLS, model.latent_dim)).astype(np.float32)
    samples = model.decode(z, batch_size)
    extras = ModelExtras(samples.reshape(SAMPLE_ROWS, SAMPLE_COLS, *samples.shape[1:]))
    if embeddings is None:
        return extras
    index = first_of_each_class(data.test.labels, len(data.class_names))[:12]
    extras.recon_index = index
    extras.originals = data.test.images[index]
    extras.reconstructions = model.decode(embeddings[index], batch_size)
    if model.latent_dim <= 2:
        return extras
    dims = dimensions or diagnose(model, data, threshold, batch_size)
    spec = TraversalSpec(k=min(k, model.latent_dim))
    extras.dimensions = dims
    extras.traversal = traverse(model, data, spec, classifier, threshold, batch_size, dims)
    a, b, _ = plane_images(data, images)
    extras.interpolation = interpolate(model, data, a, b, 11, classifier, batch_size,
                                       geodesic=geodesic_steps > 0,
                                       graph_steps=geodesic_steps)  # fmt: skip
    if tsne_points:
        # here, not above: dimplots imports matplotlib's figures (~0.3 s), which a report of
        # 2-D models no longer draws
        from latent_atlas.analysis.dimplots import tsne_map, umap_installed, umap_map

        extras.tsne, extras.tsne_index = tsne_map(embeddings, tsne_points, seed)
        if umap_installed():  # optional: `pip install 'latent-atlas[umap]'`
            extras.umap, extras.umap_index = umap_map(embeddings, tsne_points, seed)
    return extras
