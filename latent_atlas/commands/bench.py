"""`latent-atlas bench`: decoding, the atlas and the report against the machine's GEMM."""

from __future__ import annotations

import argparse
from pathlib import Path

from latent_atlas.commands import flags


def add_parser(sub: argparse._SubParsersAction) -> None:
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
        default=str(flags.SHIPPED / "vae" / "decoder.onnx"),
        help="any decoder .onnx that meets the model contract (default: the shipped VAE's)",
    )
    p.add_argument(
        "--classifier",
        default=str(flags.SHIPPED / "classifier" / "classifier.onnx"),
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
    p.add_argument(
        "--geometry-size", type=int, default=201, metavar="N",
        help="decoder geometry: the metric map on N×N cells against its plain decodes "
        "(default: 201; 0: none)",
    )  # fmt: skip
    p.add_argument(
        "--graph-size", type=int, default=256, metavar="N",
        help="decoder geometry: Dijkstra queries on an N×N grid graph (default: 256; 0: none)",
    )  # fmt: skip
    p.add_argument(
        "--geometry-only", action="store_true",
        help="run only the decoder-geometry rows (no decode, atlas, memory or report rows)",
    )  # fmt: skip
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    flags.add_overwrite_flag(p, "an existing --json file")
    flags.add_runtime_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from latent_atlas.bench import BenchConfig, format_table, run_bench, write_result
    from latent_atlas.shipped import input_paths
    from latent_atlas.toolkit.atomic import check_file_target

    classifier = None if args.classifier.lower() == "none" else Path(args.classifier)
    cfg = BenchConfig(
        Path(args.decoder), classifier, tuple(args.sizes), args.atlas_size, args.provider,
        args.threads, args.batch_size, args.repeats, not args.no_memory, not args.no_report,
        args.gemm_size, args.geometry_size, args.graph_size, args.geometry_only,
    )  # fmt: skip
    if args.json:  # refused now, not after minutes of timing
        protect = tuple(input_paths([cfg.decoder], cfg.classifier))
        check_file_target(args.json, args.overwrite, protect)
    result = run_bench(cfg)
    print(format_table(result))
    if args.json:
        write_result(result, Path(args.json), args.overwrite, protect)
        print(f"figures written to {args.json}")
