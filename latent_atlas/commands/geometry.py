"""`latent-atlas geometry`: how a decoder stretches its latent plane (maps and geodesics)."""

from __future__ import annotations

import argparse
from pathlib import Path

from latent_atlas.commands import flags

MEASURES_HELP = (
    "Measures, from the decoder's Jacobian J (central finite differences through onnxruntime; "
    "the graph widened to float64 where onnxruntime allows): "
    "magnification = √det(JᵀJ), how much image changes per unit latent area (log scale); "
    "condition number = largest/smallest eigenvalue of JᵀJ, 1 where the decoder stretches "
    "every direction alike; step length along z₀ / z₁ = Euclidean distance between the "
    "images of neighbouring grid cells; geodesic = shortest path in image distance (Dijkstra "
    "on a grid graph, then a polyline of least energy), its length and the straight line's "
    "are sums of image distances over all pixels, unnormalised."
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "geometry",
        help="maps of the decoder's pullback metric and geodesics between points",
        description="Measure how a decoder lays its latent plane onto image space: maps over a "
        "latent grid (.npz, PNG, JSON summary) and geodesics between given plane points or "
        "class centroids (strips of images along the straight line and the geodesic). "
        "A model is a folder or any decoder .onnx file (docs/models.md); no torch is needed. "
        + MEASURES_HELP
        + " Example: latent-atlas geometry --model artifacts/fashion-mnist/vae "
        "--centroids Shirt Coat",
    )
    p.add_argument(
        "--model", required=True, action="append", metavar="PATH",
        help="model folder or decoder .onnx file (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--out", default="geometry",
        help="folder that receives the files, beside what is already in it (default: "
        "%(default)s)",
    )  # fmt: skip
    g = p.add_argument_group("geodesics")
    g.add_argument(
        "--path", action="append", nargs=4, type=float, metavar=("U0", "V0", "U1", "V1"),
        help="a geodesic between two points of the plane (its coordinates; repeatable)",
    )  # fmt: skip
    g.add_argument(
        "--centroids", action="append", nargs=2, metavar=("A", "B"),
        help="a geodesic between the test-set centroids of two classes (names or label "
        "numbers; needs an encoder and the data; repeatable)",
    )  # fmt: skip
    g.add_argument(
        "--graph-steps", type=int, default=64,
        help="points per axis of the graph that starts each geodesic (0: start from the "
        "straight line) (default: %(default)s)",
    )  # fmt: skip
    g.add_argument(
        "--neighbours", type=int, default=8, choices=[8, 16],
        help="graph neighbours: 8, or 16 with the knight's moves (default: %(default)s)",
    )  # fmt: skip
    g.add_argument(
        "--points", type=int, default=32, help="points on each geodesic (default: %(default)s)"
    )
    g.add_argument(
        "--precision", default="auto", choices=["auto", "float64", "float32"],
        help="of the finite differences: auto = float64 where the graph's operators have "
        "float64 kernels, else float32 (default: auto)",
    )  # fmt: skip
    flags.add_overwrite_flag(p, "existing files of the same names in --out")
    flags.add_data_flag(p)
    flags.add_grid_flags(p)
    flags.add_runtime_flags(p)
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="accepted as by report and grid (this command draws no progress bar)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from latent_atlas.geometry import GeodesicConfig, GeometryRunConfig, run_geometry

    cfg = GeometryRunConfig(
        models=tuple(Path(m) for m in args.model),
        spec=flags.grid_spec(args),
        paths=tuple(tuple(p) for p in args.path or ()),
        centroids=tuple((a, b) for a, b in args.centroids or ()),
        geodesic=GeodesicConfig(
            graph_steps=args.graph_steps,
            neighbours=args.neighbours,
            points=args.points,
            precision=args.precision,
        ),  # fmt: skip
        data=flags.data_source(args),
        class_names=flags.class_names(args),
        provider=args.provider,
        threads=args.threads,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
    )
    for path in run_geometry(cfg, Path(args.out)):
        print(path)
