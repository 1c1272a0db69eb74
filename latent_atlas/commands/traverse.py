"""`latent-atlas traverse`: which latent dims a model uses, what each does, and what lies
between two test images."""

from __future__ import annotations

import argparse
import dataclasses
import io
from pathlib import Path

from latent_atlas.commands import flags
from latent_atlas.toolkit.errors import AtlasError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "traverse",
        help="per-dimension diagnostics and latent traversals of one model",
        description="Encode the test set and measure each latent dim (variance of the "
        "posterior means, active when above --threshold, Burda et al. 2016; the mean KL to "
        "N(0, 1) when the encoder also outputs 'logvar'); then decode a row of images per dim "
        "for the --k most active dims, each over the test embeddings' 1st-99th percentile of "
        "that dim with the others at --base, with the classifier's label and confidence under "
        "each image. Writes OUT/<model>_traverse.png, .npz (images, values, dims, base, "
        "variance, logits) and <model>_dimensions.json; with --between A B also the straight "
        "line between test images A and B (<model>_interpolate_A_B.png/.npz). Dims are "
        "numbered from 0 everywhere. Example: latent-atlas traverse --model my-vae --k 8",
    )
    p.add_argument("--model", required=True, metavar="PATH", help="model folder (with an encoder)")
    p.add_argument("--k", type=int, default=None,
                   help="how many of the most active dims (default: 8, or all of a model with "
                   "fewer)")  # fmt: skip
    p.add_argument(
        "--dims", type=int, nargs="+", metavar="I", help="traverse these dims instead (from 0)"
    )
    p.add_argument("--steps", type=int, default=11, help="images per row (default: 11)")
    p.add_argument(
        "--percentiles",
        type=float,
        nargs=2,
        default=[1.0, 99.0],
        metavar=("LO", "HI"),
        help="each row's range: these percentiles of the test embeddings' values of its dim "
        "(default: 1 99)",
    )
    p.add_argument(
        "--range",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="each row's range in latent units instead of --percentiles",
    )
    p.add_argument(
        "--base",
        default="mean",
        metavar="mean|INDEX",
        help="where the other dims sit: the mean test embedding, or the embedding of the test "
        "image of this index (default: mean)",
    )
    flags.add_threshold_flag(p)
    p.add_argument(
        "--between",
        type=int,
        nargs=2,
        metavar=("A", "B"),
        help="also decode the straight line between the embeddings of test images A and B",
    )
    p.add_argument(
        "--geodesic",
        action="store_true",
        help="with --between: also the geodesic between the two codes on the plane through "
        "them and the test codes' mean (the shortest path in image distance), drawn under "
        "the straight line, both with their image-space lengths",
    )
    p.add_argument(
        "--classifier",
        default="auto",
        metavar="FILE",
        help="classifier.onnx for the labels under each image; 'none' for none; 'auto' "
        "(default): the shipped one for the dataset, else classifier/ beside the model",
    )
    p.add_argument("--out", default="traversals", help="output folder (default: %(default)s)")
    flags.add_overwrite_flag(p, "existing files of the same names in --out")
    flags.add_data_flag(p)
    flags.add_runtime_flags(p)
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="accepted as by report and grid (this command draws no progress bar)",
    )
    p.set_defaults(func=run)


DEFAULT_K = 8  # traversals of this many most active dims, or of every dim of a smaller model


def base_value(text: str) -> str | int:
    if text == "mean":
        return text
    try:
        return int(text)
    except ValueError:
        raise AtlasError(f"--base {text}: expected 'mean' or a test image index") from None


def npz_bytes(arrays: dict) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def run(args: argparse.Namespace) -> None:
    from latent_atlas.analysis.raster import image_rows_png
    from latent_atlas.analysis.traversals import (
        class_readout,
        interpolation_png,
        traversal_captions,
    )
    from latent_atlas.settings import check_fits, check_runtime
    from latent_atlas.shipped import input_paths, resolve_classifier
    from latent_atlas.toolkit import names
    from latent_atlas.toolkit.atomic import (
        check_file_target,
        check_output_dir,
        write_bytes,
        write_json,
    )
    from latent_atlas.toolkit.data import load_dataset
    from latent_atlas.toolkit.runtime import load
    from latent_atlas.toolkit.traversal import TraversalSpec
    from latent_atlas.traversals import (
        check_encoder,
        diagnose,
        interpolate,
        open_classifier,
        traverse,
    )

    if args.geodesic and args.between is None:
        raise AtlasError("--geodesic: needs --between A B (the geodesic between test images A "
                         "and B); add --between or drop --geodesic")  # fmt: skip
    spec = TraversalSpec(
        k=DEFAULT_K if args.k is None else args.k, steps=args.steps,
        percentiles=tuple(args.percentiles),
        value_range=tuple(args.range) if args.range else None, base=base_value(args.base),
        dims=tuple(args.dims or ()),
    )  # fmt: skip
    if not args.threshold >= 0:
        raise AtlasError(f"--threshold {args.threshold}: expected a number >= 0")
    check_runtime(args.provider, args.threads, args.batch_size)
    check_output_dir(args.out)
    out = Path(args.out)
    protect = (*input_paths([args.model], args.classifier), flags.data_source(args))
    model = load(args.model, args.provider, args.threads)
    check_encoder(model, "a traversal")
    data = load_dataset(flags.data_source(args), train=False, class_names=flags.class_names(args))
    check_fits(model, data)
    if args.k is None and not spec.dims:  # the default: 8, or every dim of a smaller model
        spec = dataclasses.replace(spec, k=min(DEFAULT_K, model.latent_dim))
    spec.check(model.latent_dim, len(data.test.images))
    if args.between is not None:
        n = len(data.test.images)
        if args.between[0] == args.between[1]:  # before any file is written
            raise AtlasError(f"--between {args.between[0]} {args.between[1]}: the same image "
                             "twice; expected two images")  # fmt: skip
        for i in args.between:
            if not 0 <= i < n:
                raise AtlasError(
                    f"--between {args.between[0]} {args.between[1]}: the test set has {n} "
                    f"images; expected indices in 0..{n - 1}"
                )
    classifier_path = resolve_classifier(
        args.classifier, data.name, data.sha256, [Path(args.model)]
    )
    clf = open_classifier(classifier_path, data, args.provider, args.threads)
    stem = names.slug(names.display_text(model.name), "model")
    files = [f"{stem}_traverse.png", f"{stem}_traverse.npz", f"{stem}_dimensions.json"]
    if args.between is not None:
        a, b = args.between
        files += [f"{stem}_interpolate_{a}_{b}.png", f"{stem}_interpolate_{a}_{b}.npz"]
    for f in files:  # every name settled before anything is written
        check_file_target(out / f, args.overwrite, protect)

    dims = diagnose(model, data, args.threshold, args.batch_size)
    result = traverse(model, data, spec, clf, args.threshold, args.batch_size, dims)
    diag = dims.diagnostics
    title = (
        f"{names.display_text(model.name)}: traversals of "
        + (f"dims {', '.join(map(str, spec.dims))}" if spec.dims else
           f"the {len(result.traversal.dims)} most active dims")
        + f" ({diag.n_active} of {diag.latent_dim} active), others at {spec.describe_base()}"
    )  # fmt: skip
    classes = None
    if result.logits is not None:
        classes = class_readout(result.logits)[0]
    png = image_rows_png(result.traversal.images, result.row_labels(), result.traversal.values,
                         traversal_captions(result.metrics), classes, title)  # fmt: skip
    written = [
        write_bytes(out / files[0], png, args.overwrite, protect),
        write_bytes(out / files[1], npz_bytes(result.arrays()), args.overwrite, protect),
    ]
    doc = {"model": str(model.source), "dimensions": diag.to_json(),
           "traversal": result.metrics.to_json(),
           "classifier": str(classifier_path) if classifier_path else None}  # fmt: skip
    if args.between is not None:
        a, b = args.between
        line = interpolate(model, data, a, b, args.steps, clf, args.batch_size,
                           geodesic=args.geodesic)  # fmt: skip
        g = line.geodesic
        png = interpolation_png(
            line.images, line.ends, line.t, (f"test image {a}", f"test image {b}"),
            line.logits, data.class_names,
            f"{names.display_text(model.name)}: the straight line "
            + ("and the geodesic " if g is not None else "")
            + f"from test image {a} to {b} (ends: the test images themselves; t from 0 to 1)",
            None if g is None else g.images,
            None if g is None else (g.straight_length, g.length), line.geodesic_logits,
        )  # fmt: skip
        written.append(write_bytes(out / files[3], png, args.overwrite, protect))
        written.append(write_bytes(out / files[4], npz_bytes(line.arrays()), args.overwrite,
                                   protect))  # fmt: skip
    written.append(write_json(out / files[2], doc, args.overwrite, protect))
    active = ", ".join(map(str, diag.active[:16])) + (" …" if diag.n_active > 16 else "")
    kl = (
        f"; KL to N(0,1) {diag.kl_total:.3g} nats in all"
        if diag.kl_total is not None
        else "; KL not available (no 'logvar' output)"
    )
    print(
        f"{names.display_text(model.name)}: {diag.n_active} of {diag.latent_dim} dims active "
        f"(variance > {diag.threshold:g}): {active or 'none'}{kl}"
    )
    for path in written:
        print(path)
