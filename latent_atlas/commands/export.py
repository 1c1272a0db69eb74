"""`latent-atlas export`: trained models, or a user's torch module, to ONNX."""

from __future__ import annotations

import argparse
from pathlib import Path

from latent_atlas.commands import flags
from latent_atlas.toolkit.errors import AtlasError


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    flags.add_data_flag(p)
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
        "--encoder-logvar",
        metavar="KEY",
        help="which output of such an encoder is the log-variance (1 for (mu, logvar), or a key "
        "such as logvar): kept as encoder.onnx's second output 'logvar', for per-dimension KL",
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
    flags.add_overwrite_flag(p, "the entries of the same names in an existing --out folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
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
            encoder_output=args.encoder_output, encoder_logvar=args.encoder_logvar,
            latent_dim=args.latent_dim,
            atol=args.atol, rtol=args.rtol, overwrite=args.overwrite,
        )  # fmt: skip
        source = flags.data_source(args)
        data = None
        if source is not None:
            data = load_dataset(source, train=False, class_names=flags.class_names(args))
        done = export_factory(module_cfg, data)
        print(f"{', '.join(done.files)}, card.json, manifest.json -> {done.folder}")
        return
    from latent_atlas.export.trained import ExportConfig, export_trained

    for flag in ("weights", "encoder_output", "encoder_logvar", "image_shape", "latent_dim"):
        if getattr(args, flag) is not None:
            raise AtlasError(f"--{flag.replace('_', '-')}: only with --module")
    cfg = ExportConfig(
        Path(args.runs) if args.runs else None, Path(args.out) if args.out else None,
        args.atol, args.rtol, args.overwrite,
    )  # fmt: skip
    data = load_dataset(flags.data_source(args), train=False, class_names=flags.class_names(args))
    export_trained(data, cfg)
