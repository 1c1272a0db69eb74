"""`latent-atlas sweep`: train and export K seeds of each configuration."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from latent_atlas.commands import flags


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--no-progress", action="store_true", help=flags.PROGRESS_HELP)
    flags.add_data_flag(p)
    flags.add_engine_flags(p, "training runs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from latent_atlas.sweep import read_sweep, run_sweep

    engine = flags.engine_config(args)
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
