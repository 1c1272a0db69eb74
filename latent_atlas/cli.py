"""The `latent-atlas` command: parse flags, build a frozen config, call one library function,
say where the results went. The only module that reads ``sys.argv`` or the environment."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from latent_atlas.shipped import shipped
from latent_atlas.toolkit.errors import AtlasError

if TYPE_CHECKING:
    from latent_atlas.engine import EngineConfig
    from latent_atlas.pipeline import AnalysisConfig
    from latent_atlas.runs import ComparisonConfig
    from latent_atlas.toolkit.grid import GridSpec

SHIPPED = shipped("fashion-mnist")


def _data_source(args: argparse.Namespace) -> str | None:
    """--data, else $LATENT_ATLAS_DATA, else None (the default dataset)."""
    if getattr(args, "data", None):
        return str(args.data)
    return os.environ.get("LATENT_ATLAS_DATA") or None


def _class_names(args: argparse.Namespace) -> Path | None:
    return Path(args.class_names) if getattr(args, "class_names", None) else None


def _add_data_flag(p: argparse.ArgumentParser) -> None:
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


# ---------------------------------------------------------------------------- train
def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a VAE, an AE and a classifier on a dataset",
        description="Train the VAE, the AE and the classifier on the train split of --data "
        "(sized for its image shape and class count), evaluate them on its test split, and "
        "save weights.pt + train.json for each under OUT/<model>/. Sizes left unset follow the "
        "dataset: --hidden is twice the pixel count rounded up to a power of two (64..512); "
        "the epochs are 50 (autoencoders) and 15 (classifier) times sqrt(60000 / train "
        "images); one torch thread for images smaller than 28x28. On Fashion-MNIST the "
        "defaults are the shipped models' settings.",
    )
    _add_data_flag(p)
    p.add_argument("--out", help="output folder (default: runs/<dataset name>)")
    p.add_argument(
        "--models",
        nargs="+",
        default=["vae", "ae", "classifier"],
        choices=["vae", "ae", "classifier"],
        help="which models to train (default: all three)",
    )
    p.add_argument(
        "--arch", default="mlp", choices=["mlp", "conv"], help="autoencoder architecture"
    )
    p.add_argument("--latent-dim", type=int, default=2, help="latent dimensions (default: 2)")
    p.add_argument("--hidden", type=int, help="width of the first hidden layer (default: sized)")
    p.add_argument("--beta", type=float, default=1.0, help="VAE KL weight β (default: 1)")
    p.add_argument("--epochs", type=int, help="autoencoder epochs (default: sized)")
    p.add_argument("--classifier-epochs", type=int, help="classifier epochs (default: sized)")
    p.add_argument("--batch-size", type=int, default=128, help="mini-batch size (default: 128)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument(
        "--train-limit", type=int, default=0, help="train on the first N images only (0: all)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_overwrite_flag(p, "existing weights.pt and train.json in --out")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> None:
    from latent_atlas.toolkit.data import load_dataset
    from latent_atlas.toolkit.train import TrainConfig, train_all

    cfg = TrainConfig(
        models=tuple(args.models), arch=args.arch, latent_dim=args.latent_dim,
        hidden=args.hidden, beta=args.beta, epochs=args.epochs,
        classifier_epochs=args.classifier_epochs, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, threads=args.threads, train_limit=args.train_limit,
        progress=not args.no_progress,
    )  # fmt: skip
    data = load_dataset(_data_source(args), train=True, class_names=_class_names(args))
    out = Path(args.out) if args.out else Path("runs") / data.name
    train_all(data, cfg, out, args.overwrite)
    print(f"trained models written to {out}/")


# ---------------------------------------------------------------------------- export
def _export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export trained models (ours, or your own torch module) to ONNX",
        description="Export models to single-file ONNX with a dynamic batch dimension, each "
        "checked (symbolic batch dimension, onnx.checker full check, onnxruntime-vs-torch "
        "parity at batch sizes 1, 7, 513 on the dataset's test images, or on seeded random "
        "inputs without --data), with a card.json per model and a manifest.json; the folder "
        "is built aside and replaces OUT only when every model passed. Without --module: the "
        "VAE, AE and classifier that `latent-atlas train` wrote to RUNS. With --module "
        "FILE.py:FUNCTION --weights FILE.pt: your own autoencoder, built by FUNCTION (no "
        "arguments; returns an nn.Module with decode()/.decoder and optionally "
        "encode()/.encoder), weights loaded with torch.load(weights_only=True).",
    )
    _add_data_flag(p)
    p.add_argument("--runs", help="trained models (default: runs/<dataset name>)")
    p.add_argument(
        "--out", help="output folder (default: artifacts/<dataset name>; required with --module)"
    )
    g = p.add_argument_group("your own model")
    g.add_argument("--module", metavar="FILE.py:FUNCTION", help="function that builds the model")
    g.add_argument("--weights", metavar="FILE.pt", help="its state dict (weights only)")
    g.add_argument(
        "--encoder-output",
        metavar="KEY",
        help="which output of an encoder that returns a tuple or dict is the code "
        "(an index such as 0 for (mu, logvar), or a key such as mu)",
    )
    g.add_argument(
        "--image-shape", type=int, nargs=3, metavar=("C", "H", "W"),
        help="image shape (default: --data's)",
    )  # fmt: skip
    g.add_argument("--latent-dim", type=int, help="latent dimensions (decoder-only models)")
    p.add_argument(
        "--atol", type=float, default=1e-5, help="parity tolerance, absolute (default: 1e-5)"
    )
    p.add_argument(
        "--rtol", type=float, default=1e-5, help="parity tolerance, relative (default: 1e-5)"
    )
    _add_overwrite_flag(p, "the entries of the same names in an existing --out folder")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> None:
    from latent_atlas.toolkit.data import load_dataset

    if args.module:
        from latent_atlas.export.factory import ModuleExportConfig, export_factory

        if args.runs:
            raise AtlasError("--runs: given with --module; expected one or the other")
        if not args.weights or not args.out:
            missing = "--weights" if not args.weights else "--out"
            raise AtlasError(f"{missing}: missing; --module needs --weights FILE.pt and --out DIR")
        module_cfg = ModuleExportConfig(
            module=args.module, weights=Path(args.weights), out=Path(args.out),
            image_shape=tuple(args.image_shape) if args.image_shape else None,
            encoder_output=args.encoder_output, latent_dim=args.latent_dim,
            atol=args.atol, rtol=args.rtol, overwrite=args.overwrite,
        )  # fmt: skip
        source = _data_source(args)
        data = None
        if source is not None:
            data = load_dataset(source, train=False, class_names=_class_names(args))
        done = export_factory(module_cfg, data)
        print(f"{', '.join(done.files)}, card.json, manifest.json -> {done.folder}")
        return
    from latent_atlas.export.trained import ExportConfig, export_trained

    for flag in ("weights", "encoder_output", "image_shape", "latent_dim"):
        if getattr(args, flag) is not None:
            raise AtlasError(f"--{flag.replace('_', '-')}: only with --module")
    cfg = ExportConfig(
        Path(args.runs) if args.runs else None, Path(args.out) if args.out else None,
        args.atol, args.rtol, args.overwrite,
    )  # fmt: skip
    data = load_dataset(_data_source(args), train=False, class_names=_class_names(args))
    export_trained(data, cfg)


# ---------------------------------------------------------------------------- grid
def _add_grid_flags(p: argparse.ArgumentParser, steps: int = 21) -> None:
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
        default=["axes", "0", "1"],
        metavar="KIND",
        help="the 2-D plane swept in a latent space of more than 2 dims: 'axes I J' (dims I and "
        "J, counted from 0) or 'pca' (the test embeddings' two principal directions through "
        "their mean, in standard deviations) (default: axes 0 1)",
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


def _grid_spec(args: argparse.Namespace) -> GridSpec:
    from latent_atlas.toolkit.grid import GridSpec

    steps = args.steps * 2 if len(args.steps) == 1 else args.steps
    if len(steps) != 2:
        raise AtlasError(f"--steps: {len(args.steps)} values, expected 1 or 2")
    plane, axes = args.plane[0], (0, 1)
    if args.axes is not None:
        plane, axes = "axes", tuple(args.axes)
    elif plane == "axes":
        if len(args.plane) != 3:
            raise AtlasError(f"--plane {' '.join(args.plane)}: expected 'axes I J' or 'pca'")
        try:
            axes = (int(args.plane[1]), int(args.plane[2]))
        except ValueError:
            raise AtlasError(f"--plane {' '.join(args.plane)}: expected integer dims I J") from None
    elif plane != "pca" or len(args.plane) != 1:
        raise AtlasError(f"--plane {' '.join(args.plane)}: expected 'axes I J' or 'pca'")
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
        fixed=fixed,
    )  # fmt: skip


def _add_engine_flags(p: argparse.ArgumentParser, what: str) -> None:
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


def _engine_config(args: argparse.Namespace) -> EngineConfig:
    from latent_atlas.engine import EngineConfig

    address = args.address
    if args.engine == "ray" and address is None:
        address = os.environ.get("RAY_ADDRESS") or None
    return EngineConfig(args.engine, args.jobs, address)


def _add_runtime_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("runtime")
    g.add_argument(
        "--provider",
        default="auto",
        choices=["auto", "cuda", "cpu"],
        help="onnxruntime provider; auto: CUDA when it really loads, else CPU",
    )
    g.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: default)")
    g.add_argument("--batch-size", type=int, default=4096, help="cells decoded per batch")


def _add_overwrite_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace {what} even if latent-atlas did not write it (never an input of the "
        "run; other files in a folder it replaces are kept)",
    )


def _grid_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "grid",
        help="decode a latent grid to a PNG mosaic",
        description="Decode a systematic latent grid through a model's decoder "
        "(onnxruntime, streamed in batches) and write a PNG mosaic with the second plane axis "
        "increasing upward and axes in latent coordinates; optionally the raw cells as .npy. "
        "A model is a folder (decoder.onnx, with encoder.onnx when there is one) or a single "
        "decoder .onnx file; see docs/models.md. "
        "Example (the seed's figure): latent-atlas grid --model artifacts/fashion-mnist/vae",
    )
    p.add_argument(
        "--model",
        required=True,
        action="append",
        metavar="PATH",
        help="model folder or decoder .onnx file (repeatable)",
    )
    p.add_argument(
        "--out", default="grids",
        help="folder that receives the files, beside what is already in it; never inside an "
        "input such as a model folder (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--npy", action="store_true", help="also write the raw cells [ny, nx, C, H, W]")
    p.add_argument(
        "--cell-px",
        type=int,
        help="mosaic pixels per cell (default: the image width, less for wide grids)",
    )
    _add_overwrite_flag(p, "existing files of the same names in --out")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_data_flag(p)
    _add_grid_flags(p)
    _add_runtime_flags(p)
    p.set_defaults(func=_grid)


def _grid(args: argparse.Namespace) -> None:
    from latent_atlas.analysis.plots import figure_png_bytes, mosaic_figure
    from latent_atlas.pipeline import check_fits, check_runtime
    from latent_atlas.shipped import input_paths
    from latent_atlas.toolkit import names
    from latent_atlas.toolkit.atomic import check_file_target, check_output_dir, write_bytes
    from latent_atlas.toolkit.grid import decode_grid
    from latent_atlas.toolkit.runtime import load

    spec = _grid_spec(args)
    check_runtime(args.provider, args.threads, args.batch_size)
    check_output_dir(args.out)
    out = Path(args.out)
    protect = (*input_paths(args.model), _data_source(args))
    # every model loads and every output name is settled before anything is written
    models = [load(m, args.provider, args.threads) for m in args.model]
    labels = [names.display_text(m.name) for m in models]
    # file names from slugs of the names (never the raw folder name), distinct even when two
    # model folders share a name
    stems = [f"{slug}_{spec.key()}" for slug in names.unique_slugs(labels)]
    for stem in stems:
        for ext in (".png", ".npy") if args.npy else (".png",):
            check_file_target(out / f"{stem}{ext}", args.overwrite, protect)
    needs_data = (
        spec.mode == "auto"
        or spec.plane == "pca"
        or (spec.fixed == "mean" and any(m.latent_dim > 2 for m in models))
    )
    test_images = None
    if needs_data and any(m.encoder is not None for m in models):
        from latent_atlas.toolkit.data import load_dataset

        data = load_dataset(_data_source(args), train=False, class_names=_class_names(args))
        test_images = data.test.images
    for model, label, stem in zip(models, labels, stems, strict=True):
        embeddings = None
        if test_images is not None and model.encoder is not None:
            check_fits(model, data)
            embeddings = model.encode(test_images, args.batch_size)
        grid = decode_grid(
            model.decoder, spec, embeddings, args.batch_size, cell_px=args.cell_px,
            raw_path=out / f"{stem}.npy" if args.npy else None, progress=not args.no_progress,
            overwrite=args.overwrite,
        )  # fmt: skip
        plane = grid.plane.describe()
        title = f"{label} decoder, {spec.describe()}" + (f", {plane}" if plane else "")
        title += f" ({model.decoder.provider})"
        # dpi so that the mosaic (about 4.8 in wide on the figure) keeps one pixel per pixel
        mosaic_px = grid.cells.shape[1] * grid.cells.shape[4]
        dpi = int(min(1000, max(100, mosaic_px / 4.8)))
        fig = mosaic_figure(grid.cells, grid.x, grid.y, title, grid.labels)
        png = write_bytes(out / f"{stem}.png", figure_png_bytes(fig, dpi=dpi), args.overwrite,
                          protect)  # fmt: skip
        print(f"{label}: {png}" + (f", {out / stem}.npy" if args.npy else ""))


# ---------------------------------------------------------------------------- bench
def _bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark grid decoding and the dense atlas against the machine's GEMM rate",
        description="Time the decode of 21×21, 201×201 and 1001×1001 grids on one decoder: "
        "the seed study's one-cell-at-a-time torch loop, batched torch eager (our own decoders "
        "only), and batched onnxruntime (session.run, and IO-bound into one buffer); the "
        "1001×1001 dense atlas (decode + classify every point) through the fused graph and "
        "through two runs, each in a child process with its peak RSS; the default two-model "
        "report's wall time and peak RSS. Every rate is a fraction of the best float32 GEMM "
        "(onnxruntime, torch, numpy) measured around it. Prints a table; --json writes it.",
    )
    p.add_argument(
        "--decoder",
        default=str(SHIPPED / "vae" / "decoder.onnx"),
        help="any decoder .onnx that meets the model contract (default: the shipped VAE's)",
    )
    p.add_argument(
        "--classifier",
        default=str(SHIPPED / "classifier" / "classifier.onnx"),
        help="classifier .onnx for the atlas row, or 'none' (default: the shipped one)",
    )
    p.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[21, 201, 1001],
        metavar="N",
        help="grid sizes N (N×N cells; default: 21 201 1001)",
    )
    p.add_argument(
        "--atlas-size",
        type=int,
        default=1001,
        metavar="N",
        help="atlas of N×N points (default: 1001; 0: no atlas row)",
    )
    p.add_argument("--repeats", type=int, default=3, help="best of R runs for small grids")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-RSS child process")
    p.add_argument("--no-report", action="store_true", help="skip timing `latent-atlas report`")
    p.add_argument(
        "--gemm-size",
        type=int,
        metavar="N",
        help="calibrate with N×N matrices (default: 2048 on a CPU, 4096 on a GPU)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    _add_overwrite_flag(p, "an existing --json file")
    _add_runtime_flags(p)
    p.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> None:
    from latent_atlas.bench import BenchConfig, format_table, run_bench, write_result
    from latent_atlas.shipped import input_paths
    from latent_atlas.toolkit.atomic import check_file_target

    classifier = None if args.classifier.lower() == "none" else Path(args.classifier)
    cfg = BenchConfig(
        Path(args.decoder), classifier, tuple(args.sizes), args.atlas_size, args.provider,
        args.threads, args.batch_size, args.repeats, not args.no_memory, not args.no_report,
        args.gemm_size,
    )  # fmt: skip
    if args.json:  # refused now, not after minutes of timing
        protect = tuple(input_paths([cfg.decoder], cfg.classifier))
        check_file_target(args.json, args.overwrite, protect)
    result = run_bench(cfg)
    print(format_table(result))
    if args.json:
        write_result(result, Path(args.json), args.overwrite, protect)
        print(f"figures written to {args.json}")


# ---------------------------------------------------------------------------- analyze / report
DEFAULT_MODELS = (SHIPPED / "vae", SHIPPED / "ae")
DEFAULT_LABELS = ("VAE", "AE")


def _add_models_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        action="append",
        metavar="PATH",
        help="a model: folder (decoder.onnx, optionally encoder.onnx) or decoder .onnx file; "
        "repeat for two or more (default: the shipped Fashion-MNIST VAE and AE)",
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
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_data_flag(p)
    _add_grid_flags(p)
    _add_runtime_flags(p)


def _analysis_config(args: argparse.Namespace) -> AnalysisConfig:
    from dataclasses import replace

    from latent_atlas.pipeline import AnalysisConfig

    spec = _grid_spec(args)
    # The grid the flags ask for, beside an auto-range grid of the same size and plane.
    grids = (spec,) if spec.mode == "auto" else (spec, replace(spec, mode="auto"))
    return AnalysisConfig(
        grids=grids, gradient_threshold=args.gradient_threshold, batch_size=args.batch_size,
        provider=args.provider, threads=args.threads,
    )  # fmt: skip


def _comparison(args: argparse.Namespace) -> ComparisonConfig:
    from latent_atlas.groups import parse_group, shipped_groups
    from latent_atlas.runs import ComparisonConfig
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
        classifier = Path(args.classifier)
    if args.name is not None:  # given, even empty: checked, never replaced by a default
        names.path_component(args.name, "--name")
    name = args.name or ("vae-vs-ae" if defaults and not args.label else "")
    cfg = ComparisonConfig(
        name=name or "report", models=models, labels=labels, classifier=classifier,
        data=_data_source(args), class_names=_class_names(args),
        study=None if study == "none" else study,
        study_required=bool(args.study), analysis=_analysis_config(args),
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
            stem = f"{_data_tag(str(cfg.data))}-{stem}"
        cfg = replace(cfg, name=slug(stem, "comparison"))
    return cfg


def _data_tag(source: str) -> str:
    """A short name for --data in default folder names: ``sklearn:digits`` → ``digits``,
    ``data/fm_small.npz`` → ``fm_small``, ``/usr/share/datasets/fashion-mnist/`` →
    ``fashion-mnist``."""
    if ":" in source and not Path(source).exists():
        return source.rsplit(":", 1)[1]
    path = Path(source.rstrip("/"))
    return path.stem if path.suffix == ".npz" else path.name


def _stage_bar(total: int, disable: bool) -> tuple[Any, Callable[[str], None]]:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="stages", disable=disable)

    def stage(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update()

    return bar, stage


def _analyze_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="measure latent spaces: metrics.json + figures",
        description="Analyse two or more models (default: the shipped VAE and AE) with a "
        "classifier: brightness and its gradients, class maps, embeddings, smoothness, "
        "reconstruction and sample quality, on the seed's 21×21 grid over [-4,4]² and on an "
        "auto-range grid. Writes metrics.json and the figures to OUT.",
    )
    p.add_argument("--out", default="analysis-out", help="output folder (default: %(default)s)")
    _add_overwrite_flag(p, "the entries of the same names in an existing --out folder")
    _add_models_flags(p)
    p.set_defaults(func=_analyze)


def _analyze(args: argparse.Namespace) -> None:
    from latent_atlas.analysis.render import figures_of
    from latent_atlas.runs import run_analyses
    from latent_atlas.sections import build_sections
    from latent_atlas.toolkit.atomic import atomic_dir, check_dir_target, write_bytes, write_json

    cfg = _comparison(args)
    check_dir_target(args.out, args.overwrite, cfg.inputs)  # before the work, not after
    n = len(cfg.models)
    # load data; per model: embed, reconstruct, samples, each grid, the atlas; then plot
    per_model = 3 + len(cfg.analysis.grids) + (1 if cfg.analysis.atlas_steps else 0)
    bar, stage = _stage_bar(1 + n * per_model + 1, args.no_progress)
    comp = run_analyses(cfg, stage=stage)
    stage("plot")
    sections = build_sections(
        comp.models,
        comp.data.class_names,
        comp.data.test.labels,
        comp.findings,
        ambiguity_threshold=cfg.analysis.ambiguity_threshold,
    )
    figures = figures_of(sections)
    with atomic_dir(Path(args.out), args.overwrite, cfg.inputs) as tmp:
        write_json(tmp / "metrics.json", comp.metrics)
        for f in figures:
            write_bytes(tmp / "figures" / f.file, f.png)
    bar.close()
    print(f"metrics and {len(figures)} figures written to {args.out}/")
    for finding in comp.findings:
        print(f"- {finding.verdict}: {finding.claim}")


def _report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="comparison reports (HTML, Markdown, JSON), one or a batch",
        description="Write a comparison report folder: report.html (self-contained, opens "
        "offline), report.md (figures beside it), metrics.json (every number, with versions, "
        "providers and artifact hashes) and timings.json. Default: the shipped VAE vs AE on "
        "Fashion-MNIST, with the seed study's claims judged. With --batch FILE, run every "
        "[[comparison]] of a TOML file and write an index.html ranking the models.",
    )
    p.add_argument("--out", help="parent folder of the report folders (default: reports, or "
                   "the batch file's `out`)")  # fmt: skip
    p.add_argument("--batch", metavar="TOML", help="batch file of comparisons (see README)")
    _add_engine_flags(p, "comparisons")
    _add_overwrite_flag(p, "existing report folders and index.html")
    _add_models_flags(p)
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from latent_atlas.batchfile import read_batch
    from latent_atlas.runs import run_batch

    engine = _engine_config(args)
    if args.batch:
        given = [f for f in ("model", "label", "group") if getattr(args, f, None)]
        if given:
            raise AtlasError(
                f"--{given[0]}: given with --batch; expected one or the other (the batch file "
                "names each comparison's models)"
            )
        base = _analysis_config(args)
        out, comps = read_batch(Path(args.batch), base)
        out = Path(args.out) if args.out else out
    else:
        comps = [_comparison(args)]
        out = Path(args.out or "reports")
    done, failed = run_batch(
        comps, out, progress=not args.no_progress, index=bool(args.batch), engine=engine,
        overwrite=args.overwrite, protect=(args.batch,),
    )  # fmt: skip
    for r in done:
        print(f"{r['name']}: {r['folder']}/report.html")
    if args.batch:
        print(f"index: {out / 'index.html'}")
    if failed:
        for name, error in failed:
            print(f"latent-atlas report: error: {name}: {error}", file=sys.stderr)
        return 2
    return 0


# ---------------------------------------------------------------------------- sweep
def _sweep_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="train and export K seeds of each configuration in a TOML file",
        description="Train and export every (configuration, seed) of a sweep file into its own "
        "artifact folder OUT/<config>-seed<k>/ (encoder.onnx, decoder.onnx, card.json, "
        "run.json, manifest.json). Finished runs are skipped, so an interrupted sweep resumes. "
        "Runs go through the engine: worker processes here (--jobs), or a Ray cluster "
        "(--engine ray). See README for the file format.",
    )
    p.add_argument("file", metavar="TOML", help="sweep file: [[config]] tables, seeds, threads")
    p.add_argument("--out", help="parent folder of the run folders (default: the file's `out`)")
    p.add_argument("--seeds", type=int, metavar="K", help="seeds 0..K-1 (default: the file's)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_data_flag(p)
    _add_engine_flags(p, "training runs")
    p.set_defaults(func=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from latent_atlas.sweep import read_sweep, run_sweep

    engine = _engine_config(args)
    # --data, else the file's `data`, else $LATENT_ATLAS_DATA, else the default dataset
    cfg = read_sweep(
        Path(args.file), out=Path(args.out) if args.out else None, seeds=args.seeds,
        data=args.data,
    )  # fmt: skip
    if cfg.data is None and os.environ.get("LATENT_ATLAS_DATA"):
        cfg = replace(cfg, data=os.environ["LATENT_ATLAS_DATA"])
    result = run_sweep(cfg, engine, progress=not args.no_progress)
    print(
        f"{len(result.trained)} trained, {len(result.skipped)} already finished, "
        f"{len(result.failed)} failed: {result.out}/"
    )
    for name, error in result.failed:
        print(f"latent-atlas sweep: error: {name}: {error}", file=sys.stderr)
    return 2 if result.failed else 0


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _train_parser,
    _export_parser,
    _sweep_parser,
    _grid_parser,
    _bench_parser,
    _analyze_parser,
    _report_parser,
]


# A negative number in any spelling float() reads is a value, not a flag: argparse's own pattern
# knows only "-4" and "-.5", so "--range -1e30 1e30" was refused as an unknown option.
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$|^-(inf|infinity|nan)$", re.I)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2), like every other error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # "--batch 3" must not be read as "--batch-size 3" (nor "--over" as "--overwrite")
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.commands: Mapping[str, argparse.ArgumentParser] = {}  # the top parser's, by name
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def parse(self, argv: Sequence[str] | None) -> argparse.Namespace:
        """``parse_args``, but a command's unknown flags are reported by the command's own
        parser ("latent-atlas grid: error: …", as every other error), not by the top one, and
        no flag takes an empty value."""
        parsed, extra = self.parse_known_args(argv)
        where = self.commands.get(getattr(parsed, "command", ""), self)
        if extra:
            where.error(f"unrecognized arguments: {' '.join(extra)}")
        # an empty value is never meant: `--out=` from an unset $OUT must not mean the default
        for action in where._actions:
            value = getattr(parsed, action.dest, None)
            if "" in (value if isinstance(value, list) else [value]):
                flag = action.option_strings[-1] if action.option_strings else action.metavar
                where.error(f"{flag or action.dest} '': empty; expected a value")
        return parsed


def build_parser() -> _Parser:
    parser = _Parser(
        prog="latent-atlas",
        description="See and measure what an autoencoder's latent space has learned.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    parser.commands = sub.choices
    return parser


def _quiet_libraries() -> None:
    """Keep stderr to our own line. With HOME pointing nowhere, matplotlib logs two warnings
    about its config folder and onnxruntime prints one about its telemetry id, at import."""
    import logging
    import warnings

    logging.getLogger("matplotlib").setLevel(logging.ERROR)
    # a label in a script the font lacks is drawn as boxes: said once here, not per glyph
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
    if "onnxruntime" in sys.modules:
        return
    try:
        saved = os.dup(2)
    except OSError:
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import onnxruntime  # noqa: F401
        except Exception:
            pass  # the command that needs it says so in its own words
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        # pass on anything but onnxruntime's own warnings
        for line in sink.read().decode("utf-8", "replace").splitlines():
            if line.strip() and "W:onnxruntime" not in line:
                print(line, file=sys.stderr)


def _one_line(command: str, message: str) -> None:
    print(f"latent-atlas {command}: error: {message}", file=sys.stderr)


def _interrupted(command: str, code: int) -> int:
    name = "SIGTERM" if code == 143 else "SIGINT"
    print(f"latent-atlas {command}: interrupted ({name}); no partial output left",
          file=sys.stderr)  # fmt: skip
    return code


def main(argv: Sequence[str] | None = None) -> int:
    from latent_atlas.toolkit import signals

    for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 print escaped
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.getsignal(s) for s in signals.SIGNALS} if main_thread else {}
    if main_thread:
        signals.install()  # SIGTERM like SIGINT: temporaries removed, previous output kept
    try:
        return _run(argv)
    finally:
        if main_thread:
            signals.uninstall()
            for s, handler in previous.items():
                signal.signal(s, handler)


def _run(argv: Sequence[str] | None) -> int:
    from latent_atlas.toolkit import atomic, signals
    from latent_atlas.toolkit.errors import describe
    from latent_atlas.toolkit.signals import Interrupted

    command = "?"
    try:
        try:
            args = build_parser().parse(argv)
        except SystemExit as exc:  # --help, or a usage error already printed
            return int(exc.code or 0)
        command = args.command
        _quiet_libraries()
        # no tqdm monitor thread: a report draws its figures on forked workers only while this
        # process has no other Python thread (see sections._workers)
        from tqdm import tqdm as _tqdm

        _tqdm.monitor_interval = 0
        atomic.set_command(command)  # markers record which command wrote each output
        try:
            code = int(args.func(args) or 0)
        finally:
            atomic.set_command(None)
        signals.checkpoint()  # a signal whose exception a library swallowed still counts
        return code
    except AtlasError as exc:
        _one_line(command, str(exc))
        return 2
    except KeyboardInterrupt as exc:
        return _interrupted(command, exc.exit_code if isinstance(exc, Interrupted) else 130)
    except Exception as exc:  # last resort: the causes are fixed where they arise
        if (signum := signals.raised()) is not None:  # the signal's exception, turned into this
            return _interrupted(command, 128 + signum)
        if os.environ.get("LATENT_ATLAS_TRACEBACK"):
            raise
        _one_line(command, f"{describe(exc)} (set LATENT_ATLAS_TRACEBACK=1 for details)")
        return 2


if __name__ == "__main__":
    sys.exit(main())
