"""What an analysis is asked to do, and the checks every command runs on its flags before
any model or data is loaded: :class:`AnalysisConfig` and the ``check_*`` rules.

Kept apart from :mod:`latent_atlas.pipeline` (which imports every metric, scikit-learn and
matplotlib's neighbours, ~2 s) so that a command refuses a bad flag, and ``grid``,
``geometry`` and ``traverse`` start, without paying for what they do not run.
``latent_atlas.pipeline`` re-exports these names.
"""

from __future__ import annotations

import glob
import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from latent_atlas.shipped import input_paths, resolve_classifier
from latent_atlas.toolkit import names as safe_names
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec
from latent_atlas.toolkit.names import plain_text

if TYPE_CHECKING:
    from latent_atlas.toolkit.data import ImageDataset
    from latent_atlas.toolkit.runtime import Model

# toolkit.atlas.MAX_STEPS (which imports onnx); tests/test_architecture.py holds them equal
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


# ---------------------------------------------------------------------------- comparisons
# what a report compares: built from the flags (or a batch file's entries) and checked before
# any data is loaded; latent_atlas.runs and latent_atlas.groups re-export these names
GROUPS_FILE = "groups.json"  # in a folder of shipped seeds: {label: [member folder, …]}


@dataclass(frozen=True)
class GroupConfig:
    """A group: its display label and its members (model folders or decoder files), one per
    training seed, at least two."""

    label: str
    members: tuple[Path, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(Path(m) for m in self.members))
        if not isinstance(self.label, str) or not self.label.strip():
            raise AtlasError(f"group label {self.label!r}: expected a non-empty name")
        plain_text(self.label, "group label")
        if len(self.members) < 2:
            raise AtlasError(
                f"group {self.label}: {len(self.members)} model(s), expected at least 2 "
                "(one per training seed) for an interval across seeds"
            )
        resolved = [m.resolve() for m in self.members]
        dup = sorted({str(m) for m in self.members if resolved.count(m.resolve()) > 1})
        if dup:
            raise AtlasError(f"group {self.label}: {dup} given twice; expected each model once")


def _natural(path: str) -> list[object]:
    """Sort key that puts vae-seed2 before vae-seed10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def expand(
    patterns: Sequence[str], base: Path | None = None, where: str = "--group"
) -> tuple[Path, ...]:
    """Folders or decoder files named by ``patterns`` (paths or globs, relative to ``base``),
    each glob's matches in natural order; a pattern that matches nothing is refused."""
    out: list[Path] = []
    for pattern in patterns:
        text = str(pattern).strip()
        if not text:
            raise AtlasError(f"{where}: an empty path; expected a model folder or a glob")
        full = text if base is None or Path(text).is_absolute() else str(base / text)
        if glob.has_magic(full):
            found = sorted(glob.glob(full), key=_natural)
            if not found:
                raise AtlasError(f"{where}: {text!r} matches no model folder")
            out += [Path(f) for f in found]
        else:
            out.append(Path(full))
    return tuple(out)


def parse_group(text: str) -> GroupConfig:
    """``LABEL=PATTERN[,PATTERN…]`` (the ``--group`` flag) as a group."""
    label, sep, rest = str(text).partition("=")
    if not sep or not label.strip() or not rest.strip():
        raise AtlasError(
            f"--group {text!r}: expected LABEL=PATTERN[,PATTERN…], e.g. "
            "VAE=artifacts/fashion-mnist/seeds/vae-seed*"
        )
    return GroupConfig(label.strip(), expand(rest.split(","), where=f"--group {label.strip()}"))


def shipped_groups(folder: Path) -> tuple[GroupConfig, ...]:
    """The groups listed in ``folder/groups.json`` (member paths relative to ``folder``);
    none when the file is absent."""
    path = Path(folder) / GROUPS_FILE
    if not path.is_file():
        return ()
    try:
        raw = json.loads(path.read_text())
        return tuple(GroupConfig(label, tuple(Path(folder) / m for m in members))
                     for label, members in raw.items())  # fmt: skip
    except (ValueError, AttributeError, TypeError, RecursionError) as exc:
        raise AtlasError(
            f"{path}: not a groups file ({exc}); expected {{label: [folders]}}"
        ) from None


@dataclass(frozen=True)
class ComparisonConfig:
    """One report: one model or more (folders or decoder files), their display labels,
    the classifier (None: class maps from the nearest test embeddings), the dataset (a path or
    ``sklearn:digits``; None: the default) and its class names file (None: the data's own), a
    study to run (None: none) and the analysis settings."""

    name: str
    models: tuple[Path, ...]
    labels: tuple[str, ...] = ()  # default: each model's folder (or file) name
    # a classifier.onnx; None: none (class maps from the nearest test embeddings); "auto": the
    # shipped classifier for the dataset when there is one, else none
    classifier: Path | str | None = "auto"
    data: str | Path | None = None
    class_names: Path | None = None
    study: str | None = None
    # False when the study was not asked for but defaulted (the shipped pair): then a study
    # whose needs are not met is skipped with a note instead of failing the report
    study_required: bool = True
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    # groups of models (the training seeds of one configuration each), measured in full
    # (``groups_full``) or only for the study (the default report's shipped seeds)
    groups: tuple[GroupConfig, ...] = ()
    groups_full: bool = True

    def __post_init__(self) -> None:
        # The name becomes a folder: one safe path component. Labels stay display text.
        safe_names.path_component(self.name, "comparison name")
        if len(self.models) < 1:  # one model alone is a report of its own
            raise AtlasError(
                f"comparison {self.name}: no model; expected one or more (--model A [--model B …])"
            )
        if self.labels and len(self.labels) != len(self.models):
            raise AtlasError(
                f"comparison {self.name}: {len(self.labels)} labels for {len(self.models)} "
                "models; expected one --label per --model"
            )
        resolved = [Path(m).resolve() for m in self.models]
        for i, p in enumerate(resolved):
            if p in resolved[:i]:
                raise AtlasError(
                    f"comparison {self.name}: model {self.models[i]} is given twice; expected "
                    "different models"
                )
        labels = self.display_labels()
        for i, label in enumerate(labels):
            if not label.strip():
                raise AtlasError(f"comparison {self.name}: label {i + 1} is empty")
            if self.labels:  # given as text (folder names are made displayable instead)
                safe_names.label(label, f"comparison {self.name}: label")
            else:  # a folder's name stands for the label: the same rule for names
                safe_names.plain_text(
                    label, f"comparison {self.name}: model {i + 1}'s folder name (its label; "
                    "or pass --label)"
                )  # fmt: skip
            if label in labels[:i]:
                raise AtlasError(
                    f"comparison {self.name}: two models are labelled {label!r}; expected "
                    "different names (--label)"
                )
        if self.study is not None:
            from latent_atlas.analysis.studies import get_study  # ~0.3 s: only here

            get_study(self.study)
        group_labels = [g.label for g in self.groups]
        if len(set(group_labels)) < len(group_labels):
            raise AtlasError(
                f"comparison {self.name}: two groups are labelled alike ({group_labels}); "
                "expected different names"
            )
        if len(self.groups) == 1:
            raise AtlasError(f"comparison {self.name}: one group; expected two or more to compare")
        if isinstance(self.classifier, str) and self.classifier != "auto":
            raise AtlasError(
                f"comparison {self.name}: classifier {self.classifier!r}; expected a path, "
                "'auto' or none"
            )

    @property
    def inputs(self) -> tuple[Path | str | None, ...]:
        """What this comparison reads: never to be replaced by what it writes."""
        data = self.data if isinstance(self.data, Path) or (
            isinstance(self.data, str) and ":" not in self.data) else None  # fmt: skip
        return (*input_paths(self.models, self.classifier), data, self.class_names)

    def classifier_for(self, data: ImageDataset) -> Path | None:
        """The classifier file to use on ``data``. "auto": the shipped one for a shipped
        dataset, else a ``classifier/classifier.onnx`` beside the models (the layout
        `latent-atlas export` writes) that was trained on this very data (its metadata's
        dataset_sha256). A folder holding ``classifier.onnx`` stands for that file."""
        return resolve_classifier(self.classifier, data.name, data.sha256, self.models)

    def display_labels(self) -> tuple[str, ...]:
        if self.labels:
            return tuple(self.labels)
        # folder names may hold bytes that are not UTF-8: shown as U+FFFD (a font cannot draw
        # the lone surrogates Python keeps them as)
        return tuple(safe_names.display_text(
            Path(m).stem if Path(m).suffix == ".onnx" and Path(m).stem != "decoder"
            else (Path(m).parent.name if Path(m).suffix == ".onnx" else Path(m).name))
            for m in self.models)  # fmt: skip
