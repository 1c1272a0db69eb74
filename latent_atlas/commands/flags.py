"""Flags shared by several commands: one builder each, and the config it maps onto. A command
module adds the groups it needs and reads them back through these functions."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latent_atlas.shipped import shipped
from latent_atlas.toolkit.errors import AtlasError

if TYPE_CHECKING:
    from latent_atlas.engine import EngineConfig
    from latent_atlas.settings import AnalysisConfig, ComparisonConfig
    from latent_atlas.toolkit.grid import GridSpec

SHIPPED = shipped("fashion-mnist")
# tqdm draws a bar only where stderr is a terminal (disable=None): a log or a pipe gets the
# command's own lines, not a frame per update before an error line
PROGRESS_HELP = "hide progress bars (drawn only when stderr is a terminal)"
# decoded samples per latent distribution for the Fréchet distances: AnalysisConfig.n_samples's
# default, here so that --help needs no import of the pipeline (a test checks they agree)
SAMPLES = 5_000


def data_source(args: argparse.Namespace) -> str | None:
    """--data, else $LATENT_ATLAS_DATA, else None (the default dataset)."""
    if getattr(args, "data", None):
        return str(args.data)
    return os.environ.get("LATENT_ATLAS_DATA") or None


def class_names(args: argparse.Namespace) -> Path | None:
    return Path(args.class_names) if getattr(args, "class_names", None) else None


def add_data_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        metavar="SOURCE",
        help="the dataset: a folder of IDX files (train-images-idx3-ubyte[.gz] … "
        "t10k-labels-idx1-ubyte[.gz]), an .npz (x_train, y_train, x_test, y_test), an image "
        "folder (train/<class>/*.png, test/<class>/*.png) or sklearn:digits "
        "(default: $LATENT_ATLAS_DATA, else /usr/share/datasets/fashion-mnist)",
    )
    p.add_argument(
        "--class-names",
        metavar="FILE",
        help="text file with one class name per line, line k naming label k "
        "(default: the names the data carries, else the label numbers)",
    )


def add_grid_flags(p: argparse.ArgumentParser, steps: int = 21) -> None:
    g = p.add_argument_group("latent grid")
    g.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=[steps],
        metavar="N",
        help="points per axis: one value for both, or NX NY (default: %(default)s)",
    )
    g.add_argument(
        "--range",
        type=float,
        nargs=2,
        default=[-4.0, 4.0],
        metavar=("LO", "HI"),
        help="linear mode: range of both plane axes (default: -4 4, the seed's)",
    )
    g.add_argument(
        "--mode",
        default="linear",
        choices=["linear", "icdf", "auto"],
        help="linear: evenly spaced over --range; icdf: Gaussian quantiles; "
        "auto: 1st-99th percentile of the test embeddings",
    )
    g.add_argument(
        "--quantile", type=float, default=0.05, help="icdf mode: outermost quantile (default: 0.05)"
    )
    g.add_argument(
        "--plane",
        nargs="+",
        default=["active"],
        metavar="KIND",
        help="the 2-D plane swept in a latent space of more than 2 dims: 'active' (the two dims "
        "whose test embeddings vary most; dims 0 and 1 of a 2-D model), 'axes I J' (dims I and "
        "J, counted from 0), 'pca' (the test embeddings' two principal directions through "
        "their mean, in standard deviations) or 'images A B C' (the plane through the "
        "embeddings of test images A, B and C, which every map marks; best with --mode auto) "
        "(default: active)",
    )
    g.add_argument(
        "--axes",
        type=int,
        nargs=2,
        metavar=("I", "J"),
        help="shorthand for --plane axes I J",
    )
    g.add_argument(
        "--fixed",
        nargs="+",
        default=["mean"],
        metavar="V",
        help="where the latent dims off the plane sit: 'mean' (the test embeddings' mean; 0 "
        "for a decoder-only model), 'prior' (0), or one value per latent dim (default: mean)",
    )


def grid_spec(args: argparse.Namespace) -> GridSpec:
    from latent_atlas.toolkit.grid import GridSpec

    steps = args.steps * 2 if len(args.steps) == 1 else args.steps
    if len(steps) != 2:
        raise AtlasError(f"--steps: {len(args.steps)} values, expected 1 or 2")
    plane, axes = args.plane[0], (0, 1)
    images: tuple[int, ...] = ()
    kinds = "'active', 'axes I J', 'pca' or 'images A B C'"
    if args.axes is not None:
        plane, axes = "axes", tuple(args.axes)
    elif plane in ("axes", "images"):
        want = 3 if plane == "axes" else 4
        if len(args.plane) != want:
            raise AtlasError(f"--plane {' '.join(args.plane)}: expected {kinds}")
        try:
            numbers = tuple(int(v) for v in args.plane[1:])
        except ValueError:
            what = "dims I J" if plane == "axes" else "test image indices A B C"
            raise AtlasError(f"--plane {' '.join(args.plane)}: expected integer {what}") from None
        if plane == "axes":
            axes = (numbers[0], numbers[1])
        else:
            images = numbers
    elif plane not in ("pca", "active") or len(args.plane) != 1:
        raise AtlasError(f"--plane {' '.join(args.plane)}: expected {kinds}")
    fixed: str | tuple[float, ...] = args.fixed[0]
    if args.fixed[0] not in ("mean", "prior"):
        try:
            fixed = tuple(float(v) for v in args.fixed)
        except ValueError:
            raise AtlasError(
                f"--fixed {' '.join(args.fixed)}: expected 'mean', 'prior' or numbers"
            ) from None
    elif len(args.fixed) != 1:
        raise AtlasError(f"--fixed {' '.join(args.fixed)}: expected 'mean', 'prior' or numbers")
    return GridSpec(
        steps=(steps[0], steps[1]), x_range=tuple(args.range), y_range=tuple(args.range),
        mode=args.mode, quantile=args.quantile, plane=plane, axes=axes,
        fixed=fixed, images=images,
    )  # fmt: skip


def add_engine_flags(p: argparse.ArgumentParser, what: str) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--jobs", type=int, default=1, help=f"{what} run at once (default: 1)")
    g.add_argument(
        "--engine",
        default="local",
        choices=["local", "ray"],
        help="local: worker processes on this machine; ray: a Ray cluster (default: local)",
    )
    g.add_argument(
        "--address",
        help="--engine ray: the cluster's address (default: $RAY_ADDRESS; neither: a local "
        "Ray instance with --jobs CPUs)",
    )


def engine_config(args: argparse.Namespace) -> EngineConfig:
    from latent_atlas.engine import EngineConfig

    address = args.address
    if args.engine == "ray" and address is None:
        address = os.environ.get("RAY_ADDRESS") or None
    return EngineConfig(args.engine, args.jobs, address)


def add_runtime_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("runtime")
    g.add_argument(
        "--provider",
        default="auto",
        choices=["auto", "cuda", "cpu"],
        help="onnxruntime provider; auto: CUDA when it really loads, else CPU",
    )
    g.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: default)")
    g.add_argument("--batch-size", type=int, default=4096, help="cells decoded per batch")


# analysis.plots.FIGURE_FORMATS, spelled here so that parsing flags does not import matplotlib
FIGURE_FORMATS = ("png", "svg", "pdf")


def add_figure_format_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--figure-format",
        choices=FIGURE_FORMATS,
        default="png",
        help="file format of the figures: png, or svg / pdf for a paper (vector axes and "
        "text, the images inside at full resolution) (default: %(default)s)",
    )


def add_overwrite_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace {what} even if latent-atlas did not write it (never an input of the "
        "run; other files in a folder it replaces are kept)",
    )


DEFAULT_MODELS = (SHIPPED / "vae", SHIPPED / "ae")
DEFAULT_LABELS = ("VAE", "AE")


def add_models_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        action="append",
        metavar="PATH",
        help="a model: folder (decoder.onnx, optionally encoder.onnx) or decoder .onnx file; "
        "one alone gets its own report, repeat to compare (default: the shipped Fashion-MNIST "
        "VAE and AE)",
    )
    p.add_argument(
        "--label",
        action="append",
        metavar="NAME",
        help="display name of each --model, in order (default: folder names; VAE and AE in the "
        "default report, without --model)",
    )
    p.add_argument(
        "--group",
        action="append",
        metavar="LABEL=PATHS",
        help="a group of models, one per training seed: LABEL=PATH[,PATH…], globs allowed "
        "(e.g. VAE=artifacts/fashion-mnist/seeds/vae-seed*); repeat for two or more. Every "
        "metric is shown as mean and 95%% interval across the seeds, and a study judges its "
        "claims on the groups; without --model each group's first model stands for it",
    )
    p.add_argument(
        "--classifier",
        default="auto",
        metavar="FILE",
        help="classifier.onnx (or a folder holding one) for the dataset; 'none': class maps "
        "from the nearest test embeddings; 'auto' (default): the shipped classifier when the "
        "dataset has one, else classifier/classifier.onnx beside the models when it was "
        "trained on this data",
    )
    p.add_argument(
        "--study",
        metavar="NAME",
        help="run a study of claims (available: seed); default: the seed study for the "
        "shipped VAE and AE, none otherwise ('none' to skip)",
    )
    p.add_argument("--name", help="comparison name (default: vae-vs-ae, or the labels)")
    p.add_argument(
        "--gradient-threshold",
        type=float,
        default=0.25,
        help="|∇ brightness| per latent unit counted as a stark transition",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=SAMPLES,
        metavar="N",
        help="images decoded from each latent distribution (N(0, I), the fitted Gaussian) for "
        f"the Fréchet distances, 1000 to 200000 (default: {SAMPLES}; on the shipped pair a "
        "draw of 5000 lies within 1.5 %% of the distance at 80000, see docs/models.md; 10000 "
        "gives earlier reports' numbers at about 1.2 CPU s more per model)",
    )
    p.add_argument("--no-progress", action="store_true", help=PROGRESS_HELP)
    g = p.add_argument_group("models of more than two latent dims")
    add_threshold_flag(g)
    g.add_argument("--k", type=int, default=8, help="traversals of the k most active dims "
                   "(default: 8)")  # fmt: skip
    g.add_argument(
        "--plane-images",
        type=int,
        nargs=3,
        metavar=("A", "B", "C"),
        help="the report's plane through three test images, by index (default: the first test "
        "image of each of the first three classes); A and B also give the interpolation",
    )
    add_data_flag(p)
    add_grid_flags(p)
    add_runtime_flags(p)


def add_threshold_flag(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--threshold",
        type=float,
        default=0.01,
        help="a dim is active when the variance of its posterior means over the test set is "
        "above this (default: 0.01, Burda et al. 2016)",
    )


def analysis_config(args: argparse.Namespace) -> AnalysisConfig:

    from latent_atlas.settings import AnalysisConfig, check_samples

    spec = grid_spec(args)
    # The grid the flags ask for, beside an auto-range grid of the same size and plane.
    grids = (spec,) if spec.mode == "auto" else (spec, replace(spec, mode="auto"))
    return AnalysisConfig(
        grids=grids, gradient_threshold=args.gradient_threshold, batch_size=args.batch_size,
        provider=args.provider, threads=args.threads, active_threshold=args.threshold,
        traverse_k=args.k, plane_images=tuple(args.plane_images or ()),
        n_samples=check_samples(args.samples, "--samples"),
    )  # fmt: skip


def comparison(args: argparse.Namespace) -> ComparisonConfig:
    from latent_atlas.settings import ComparisonConfig, parse_group, shipped_groups
    from latent_atlas.toolkit import names

    groups = tuple(parse_group(g) for g in getattr(args, "group", None) or ())
    defaults = not args.model and not groups
    models: tuple[Path, ...]
    if defaults:
        models = DEFAULT_MODELS
    elif args.model:
        models = tuple(Path(m) for m in args.model)
    else:  # each group's first model stands for it in the per-model sections
        models = tuple(g.members[0] for g in groups)
    if not defaults:  # a wrong model path answered now, before the data and the progress bar
        from latent_atlas.toolkit.runtime import model_paths

        for m in dict.fromkeys((*models, *(p for g in groups for p in g.members))):
            model_paths(m)
    labels = tuple(args.label or (DEFAULT_LABELS if defaults else ()))
    if not args.model and groups and not args.label:
        labels = tuple(g.label for g in groups)
    study = args.study or ("seed" if defaults else None)
    groups_full = True
    if defaults and study == "seed":  # the shipped seeds, measured for the study only
        groups, groups_full = shipped_groups(SHIPPED / "seeds"), False
    classifier: Path | str | None = args.classifier
    if args.classifier == "none":
        classifier = None
    elif args.classifier != "auto":
        from latent_atlas.toolkit.runtime import check_classifier_path

        classifier = Path(args.classifier)
        check_classifier_path(classifier)  # before the data and the progress bar
    if args.name is not None:  # given, even empty: checked, never replaced by a default
        names.path_component(args.name, "--name")
    name = args.name or ("vae-vs-ae" if defaults and not args.label else "")
    cfg = ComparisonConfig(
        name=name or "report", models=models, labels=labels, classifier=classifier,
        data=data_source(args), class_names=class_names(args),
        study=None if study == "none" else study,
        study_required=bool(args.study), analysis=analysis_config(args),
        groups=groups, groups_full=groups_full,
    )  # fmt: skip
    if not name:  # named after its labels: "VAE-vs-AE-vs-β4"
        from dataclasses import replace

        from latent_atlas.toolkit.names import slug

        # labels are display text ("β=4", "a/b"): the folder name is their slug, after the
        # data's name when it is not the default (so a digits report does not replace the
        # Fashion-MNIST one of the same models' folder names)
        stem = "-vs-".join(cfg.display_labels())
        if cfg.data:
            stem = f"{data_tag(str(cfg.data))}-{stem}"
        cfg = replace(cfg, name=slug(stem, "comparison"))
    from latent_atlas.toolkit.data import check_source

    check_source(cfg.data)  # a wrong --data answered now, not after the analysis imports
    return cfg


def data_tag(source: str) -> str:
    """A short name for --data in default folder names: ``sklearn:digits`` → ``digits``,
    ``data/fm_small.npz`` → ``fm_small``, ``/usr/share/datasets/fashion-mnist/`` →
    ``fashion-mnist``."""
    if ":" in source and not Path(source).exists():
        return source.rsplit(":", 1)[1]
    path = Path(source.rstrip("/"))
    return path.stem if path.suffix == ".npz" else path.name


def stage_bar(total: int, disable: bool) -> tuple[Any, Callable[[str], None]]:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="stages", disable=True if disable else None)

    def stage(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update()

    return bar, stage
