"""`latent-atlas analyze`: metrics.json and figures for one model or more."""

from __future__ import annotations

import argparse
from pathlib import Path

from latent_atlas.commands import flags


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="measure latent spaces: metrics.json + figures",
        description="Analyse one model or more (default: the shipped VAE and AE) with a "
        "classifier: brightness and its gradients, class maps, embeddings, smoothness, "
        "reconstruction and sample quality, on the seed's 21×21 grid over [-4,4]² and on an "
        "auto-range grid. Writes metrics.json and the figures to OUT.",
    )
    p.add_argument("--out", default="analysis-out", help="output folder (default: %(default)s)")
    flags.add_figure_format_flag(p)
    flags.add_overwrite_flag(p, "the entries of the same names in an existing --out folder")
    flags.add_models_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from latent_atlas.analysis.render import figures_of
    from latent_atlas.runs import run_analyses
    from latent_atlas.sections import build_sections
    from latent_atlas.toolkit.atomic import atomic_dir, check_dir_target, write_bytes, write_json

    cfg = flags.comparison(args)
    check_dir_target(args.out, args.overwrite, cfg.inputs)  # before the work, not after
    n = len(cfg.models)
    # load data; per model: embed, reconstruct, samples, each grid, the atlas; then plot
    per_model = 3 + len(cfg.analysis.grids) + (1 if cfg.analysis.atlas_steps else 0)
    bar, stage = flags.stage_bar(1 + n * per_model + 1, args.no_progress)
    comp = run_analyses(cfg, stage=stage)
    stage("plot")
    sections = build_sections(
        comp.models,
        comp.data.class_names,
        comp.data.test.labels,
        comp.findings,
        ambiguity_threshold=cfg.analysis.ambiguity_threshold,
        figure_format=args.figure_format,
    )
    figures = figures_of(sections)
    with atomic_dir(Path(args.out), args.overwrite, cfg.inputs) as tmp:
        write_json(tmp / "metrics.json", comp.metrics)
        for f in figures:  # the sections name every figure *.png; drawn as --figure-format
            name = Path(f.file).with_suffix(f".{args.figure_format}")
            write_bytes(tmp / "figures" / name, f.png)
    bar.close()
    print(f"metrics and {len(figures)} figures written to {args.out}/")
    for finding in comp.findings:
        print(f"- {finding.verdict}: {finding.claim}")
