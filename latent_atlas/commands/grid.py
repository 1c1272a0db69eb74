"""`latent-atlas grid`: decode a latent grid to a mosaic (PNG, SVG or PDF)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from latent_atlas.commands import flags


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "grid",
        help="decode a latent grid to a mosaic (PNG, SVG or PDF)",
        description="Decode a systematic latent grid through a model's decoder "
        "(onnxruntime, streamed in batches) and write a mosaic (PNG; SVG or PDF with "
        "--figure-format) with the second plane axis "
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
    flags.add_figure_format_flag(p)
    flags.add_overwrite_flag(p, "existing files of the same names in --out")
    p.add_argument("--no-progress", action="store_true", help=flags.PROGRESS_HELP)
    flags.add_data_flag(p)
    flags.add_grid_flags(p)
    flags.add_runtime_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from latent_atlas.analysis.plots import figure_bytes, mosaic_figure
    from latent_atlas.settings import check_fits, check_runtime
    from latent_atlas.shipped import input_paths
    from latent_atlas.toolkit import names
    from latent_atlas.toolkit.atomic import check_file_target, check_output_dir, write_bytes
    from latent_atlas.toolkit.grid import decode_grid
    from latent_atlas.toolkit.runtime import load

    spec = flags.grid_spec(args)
    check_runtime(args.provider, args.threads, args.batch_size)
    check_output_dir(args.out)
    out = Path(args.out)
    protect = (*input_paths(args.model), flags.data_source(args))
    # every model loads and every output name is settled before anything is written
    models = [load(m, args.provider, args.threads) for m in args.model]
    labels = [names.display_text(m.name) for m in models]
    # file names from slugs of the names (never the raw folder name), distinct even when two
    # model folders share a name
    stems = [f"{slug}_{spec.key()}" for slug in names.unique_slugs(labels)]
    fig_ext = f".{args.figure_format}"
    for stem in stems:
        for ext in (fig_ext, ".npy") if args.npy else (fig_ext,):
            check_file_target(out / f"{stem}{ext}", args.overwrite, protect)
    needs_data = (
        spec.mode == "auto"
        or spec.plane in ("pca", "images")
        or (spec.plane == "active" and any(m.latent_dim > 2 for m in models))
        or (spec.fixed == "mean" and any(m.latent_dim > 2 for m in models))
    )
    test_images = None
    if args.data and not needs_data:  # not read, but a wrong --data is still one line
        from latent_atlas.toolkit.data import check_source

        check_source(args.data)
    if needs_data and any(m.encoder is not None for m in models):
        from latent_atlas.toolkit.data import load_dataset

        data = load_dataset(
            flags.data_source(args), train=False, class_names=flags.class_names(args)
        )
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
        warning = grid.plane.warning(embeddings)
        if warning:
            print(f"latent-atlas grid: warning: {label}: {warning}", file=sys.stderr)
        plane = grid.plane.describe()
        title = f"{label} decoder, {spec.describe()}" + (f", {plane}" if plane else "")
        title += f" ({model.decoder.provider})"
        # dpi so that the mosaic (about 4.8 in wide on the figure) keeps one pixel per pixel
        mosaic_px = grid.cells.shape[1] * grid.cells.shape[4]
        dpi = int(min(1000, max(100, mosaic_px / 4.8)))
        fig = mosaic_figure(grid.cells, grid.x, grid.y, title, grid.labels, grid.plane.marks)
        image = figure_bytes(fig, args.figure_format, dpi=dpi)
        path = write_bytes(out / f"{stem}{fig_ext}", image, args.overwrite, protect)
        print(f"{label}: {path}" + (f", {out / stem}.npy" if args.npy else ""))
