"""What an analysis is asked to do, and the checks every command runs on its flags before
any model or data is loaded: :class:`AnalysisConfig` and the ``check_*`` rules.

Kept apart from :mod:`latent_atlas.pipeline` (which imports every metric, scikit-learn and
matplotlib's neighbours, ~2 s) so that a command refuses a bad flag, and ``grid``,
``geometry`` and ``traverse`` start, without paying for what they do not run.
``latent_atlas.pipeline`` re-exports these names.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec

if TYPE_CHECKING:
    from latent_atlas.toolkit.data import ImageDataset
    from latent_atlas.toolkit.runtime import Model

# toolkit.atlas.MAX_STEPS (which imports onnx); tests/test_settings.py holds them equal
ATLAS_MAX_STEPS = 1001


def check_runtime(provider: object, threads: object, batch_size: object) -> None:
    """The onnxruntime knobs of the commands without an AnalysisConfig (grid, bench), with
    the same rules and messages as AnalysisConfig's."""
    for name, v, lo in (("--batch-size", batch_size, 1), ("--threads", threads, 0)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise AtlasError(f"{name}: {v!r}, expected an integer >= {lo}")
    if provider not in ("auto", "cuda", "cpu"):
        raise AtlasError(f"--provider: {provider!r}, expected auto, cuda or cpu")


# what --samples (and a batch entry's samples) may be: the Fréchet distance's covariance of the
# classifier's features (128 of them for the shipped one) needs many more samples than
# features, and 200 000 keeps the features of one distribution at ~100 MB. AnalysisConfig
# itself takes any count >= 2 (tests use a few hundred on toy classifiers).
SAMPLES_RANGE = (1_000, 200_000)
DEFAULT_SAMPLES = 5_000  # AnalysisConfig.n_samples (commands.flags.SAMPLES: the same, tested)


def check_samples(n: object, where: str) -> int:
    """``n`` if it is a sample count a user may ask for (:data:`SAMPLES_RANGE`), else one line
    naming ``where`` it came from."""
    lo, hi = SAMPLES_RANGE
    if not isinstance(n, int) or isinstance(n, bool) or not lo <= n <= hi:
        raise AtlasError(
            f"{where} {n!r}: expected an integer from {lo} to {hi} (images decoded per latent "
            f"distribution for the Fréchet distances; default {DEFAULT_SAMPLES})"
        )
    return n


@dataclass(frozen=True)
class AnalysisConfig:
    """Knobs of the analysis. Thresholds are in the units of the metric they apply to."""

    grids: tuple[GridSpec, ...] = (GridSpec(), GridSpec(mode="auto"))
    # |∇ brightness| above this (brightness per latent unit) is a "stark transition": at the
    # seed's spacing (0.4 latent units) it is a brightness swing of 0.1 between neighbours.
    gradient_threshold: float = 0.25
    ambiguity_threshold: float = 0.5  # classifier confidence below this: ambiguous cell
    min_class_share: float = 0.01  # a class "holds" the grid above this share of cells
    knn_k: int = 5
    folds: int = 5
    silhouette_sample: int = 5000
    trust_sample: int = 2000
    # decoded samples per latent distribution for the Fréchet distances: at 5 000 the shipped
    # pair's four distances lie within 1.5 % of their 80 000-sample values (10 000: 0.7 %);
    # 10 000, the default before, costs ~1.2 CPU s more per model (docs/models.md)
    n_samples: int = DEFAULT_SAMPLES
    seed: int = 0
    batch_size: int = 4096
    provider: str = "auto"
    threads: int = 0
    # the dense atlas (toolkit.atlas): points per axis over the first grid's plane and range,
    # decoded and classified in one composed graph; 0: none. 128² ≈ 16 000 points: the
    # explorer's background and a report figure for a few seconds of classifier time
    atlas_steps: int = 128
    # decoder geometry (latent_atlas.geometry) on the first grid, and geodesics between the
    # test-set centroids of the classes the seed study names, started on a geometry_graph²
    # graph, and the explorer's geometry layer on a grid of the same size; 0: none. 48² keeps
    # it to about a second per model
    geometry_graph: int = 48
    # what a report adds per model (latent_atlas.highdim): reconstructions, prior samples and,
    # above 2 dims, diagnostics, traversals, interpolation, PCA and three-image planes, t-SNE
    extras: bool = True
    # above 2 dims: the PCA plane and the plane through three test images as extra grids
    dimension_planes: bool = True
    active_threshold: float = 0.01  # a dim is active above this posterior-mean variance
    traverse_k: int = 8  # traversals of this many most active dims
    plane_images: tuple[int, ...] = ()  # the images plane's test images (): the first of 3 classes
    tsne_points: int = 2000  # codes in the t-SNE map (0: none)

    def __post_init__(self) -> None:
        if not self.grids:
            raise AtlasError("analysis grids: none given; expected at least one grid")
        checks = {
            "gradient threshold": (self.gradient_threshold, 0.0, math.inf, False),
            "ambiguity threshold": (self.ambiguity_threshold, 0.0, 1.0, True),
            "min class share": (self.min_class_share, 0.0, 1.0, True),
        }
        for name, (v, lo, hi, closed) in checks.items():
            if not (isinstance(v, int | float) and math.isfinite(v) and lo <= v <= hi) or (
                not closed and v <= lo
            ):
                raise AtlasError(f"{name}: {v}, expected a number in ({lo:g}, {hi:g}]")
        ints = {
            "--batch-size": (self.batch_size, 1), "k-NN k": (self.knn_k, 1),
            "folds": (self.folds, 2), "silhouette sample": (self.silhouette_sample, 2),
            "trustworthiness sample": (self.trust_sample, 2 * self.knn_k + 2),
            "samples": (self.n_samples, 2), "seed": (self.seed, 0), "--threads": (self.threads, 0),
        }  # fmt: skip
        for name, (v, lo) in ints.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise AtlasError(f"{name}: {v!r}, expected an integer >= {lo}")
        if self.atlas_steps != 0 and not (
            isinstance(self.atlas_steps, int) and 2 <= self.atlas_steps <= ATLAS_MAX_STEPS
        ):
            raise AtlasError(
                f"atlas steps: {self.atlas_steps!r}, expected 0 (none) or 2..{ATLAS_MAX_STEPS}"
            )
        if self.provider not in ("auto", "cuda", "cpu"):
            raise AtlasError(f"--provider: {self.provider!r}, expected auto, cuda or cpu")
        if self.geometry_graph != 0 and not (
            isinstance(self.geometry_graph, int) and 2 <= self.geometry_graph <= 1024
        ):
            raise AtlasError(
                f"geometry graph: {self.geometry_graph!r}, expected 0 (none) or 2..1024"
            )
        if not (isinstance(self.active_threshold, int | float) and self.active_threshold >= 0):
            raise AtlasError(f"--threshold: {self.active_threshold!r}, expected a number >= 0")
        for name, v, lo in (("--k", self.traverse_k, 1), ("t-SNE points", self.tsne_points, 0)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise AtlasError(f"{name}: {v!r}, expected an integer >= {lo}")
        if self.plane_images and (
            len(self.plane_images) != 3 or len(set(self.plane_images)) != 3
            or min(self.plane_images) < 0
        ):  # fmt: skip
            raise AtlasError(
                f"--plane-images {' '.join(map(str, self.plane_images))}: expected three "
                "different test image indices A B C >= 0"
            )


def check_fits(model: Model, data: ImageDataset) -> None:
    """One line when ``model`` makes images of another shape than ``data`` holds."""
    if model.image_shape != data.image_shape:
        raise AtlasError(
            f"model {model.source}: makes images of {model.image_shape} (C, H, W), the dataset "
            f"{data.name} has {data.image_shape}; expected a model trained on this dataset "
            "(pass --data with the data the model was trained on; its card.json names it)"
        )


def parallel_workers(n: int) -> int:
    """Threads that analyse ``n`` models at once: one per usable core (at most ``n``), or one
    inside a worker process of a batch (``--jobs``, Ray), whose siblings have the other cores."""
    import multiprocessing

    from latent_atlas.engine import usable_cores

    if multiprocessing.parent_process() is not None or "ray" in sys.modules:
        return 1
    return max(1, min(n, usable_cores()))


def session_threads(cfg: AnalysisConfig, workers: int) -> AnalysisConfig:
    """``cfg`` with onnxruntime's threads shared out among ``workers`` analyses running at
    once (where the user left them to onnxruntime): one session thread per model on two
    cores runs the classifier ~10 % cheaper per image than two threads synchronising per
    batch, with the same numbers (each output row is computed alike on any thread count)."""
    if workers <= 1 or cfg.threads:
        return cfg
    from latent_atlas.engine import usable_cores

    return replace(cfg, threads=max(1, usable_cores() // workers))
