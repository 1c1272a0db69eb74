"""`latent-atlas report`: one comparison report, or a batch with an index."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from latent_atlas.commands import flags
from latent_atlas.toolkit.errors import AtlasError

if TYPE_CHECKING:
    from latent_atlas.settings import ComparisonConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="comparison reports (HTML, Markdown, JSON), one or a batch",
        description="Write a comparison report folder: report.html (self-contained, opens "
        "offline), report.md (figures beside it), metrics.json (every number, with versions, "
        "providers and artifact hashes) and timings.json. Default: the shipped VAE vs AE on "
        "Fashion-MNIST, with the seed study's claims judged. With --batch FILE, run every "
        "[[comparison]] of a TOML file and write an index.html ranking the models; "
        "[[geometry]] and [[traverse]] entries run those commands with their own flags.",
    )
    p.add_argument("--out", help="parent folder of the report folders (default: reports, or "
                   "the batch file's `out`)")  # fmt: skip
    p.add_argument("--batch", metavar="TOML", help="batch file of comparisons (see README)")
    flags.add_engine_flags(p, "comparisons")
    flags.add_overwrite_flag(p, "existing report folders and index.html")
    flags.add_models_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from latent_atlas.batchfile import read_batch_file

    engine = flags.engine_config(args)
    commands: list = []
    if args.batch:
        given = [f for f in ("model", "label", "group") if getattr(args, f, None)]
        if given:
            raise AtlasError(
                f"--{given[0]}: given with --batch; expected one or the other (the batch file "
                "names each comparison's models)"
            )
        base = flags.analysis_config(args)
        batch = read_batch_file(Path(args.batch), base)
        comps, commands = batch.comparisons, batch.commands
        out = Path(args.out) if args.out else batch.out
    else:
        comps = [flags.comparison(args)]
        out = Path(args.out or "reports")
        if engine.kind == "local" and engine.jobs <= 1:
            start_atlases(comps[0])
    # the flags and the batch file are checked (settings, batchfile: light imports); the
    # analysis modules now (~2.5 s), while the atlases run
    from latent_atlas.runs import run_batch

    done, failed = run_batch(
        comps, out, progress=not args.no_progress, index=bool(args.batch), engine=engine,
        overwrite=args.overwrite, protect=(args.batch,), commands=commands,
    )  # fmt: skip
    for r in done:
        if "kind" in r:  # a [[geometry]] or [[traverse]] entry: its folder
            print(f"{r['name']}: {r['folder']}/ ({r['kind']}, {len(r['files'])} files)")
        else:
            print(f"{r['name']}: {r['folder']}/report.html")
    if args.batch and any("kind" not in r for r in done):
        print(f"index: {out / 'index.html'}")
    if failed:
        for name, error in failed:
            print(f"latent-atlas report: error: {name}: {error}", file=sys.stderr)
        return 2
    return 0


def start_atlases(cfg: ComparisonConfig) -> None:
    """One comparison on this process: its models' dense atlases start now, on a thread, while
    the analysis modules import (~2.5 s on one core); the analysis takes them where it would
    have computed them (``toolkit.atlas.start_early``: the same inputs, the same numbers).
    Only where the atlas's inputs are known before the data is loaded: a classifier given (or
    the shipped one, on the default data) and a first grid over a range in latent units."""
    from latent_atlas.settings import parallel_workers, session_threads
    from latent_atlas.shipped import classifier_file, shipped_classifier
    from latent_atlas.toolkit.atlas import start_early

    a = cfg.analysis
    if cfg.classifier is None or not a.atlas_steps:
        return
    if cfg.classifier == "auto":
        if cfg.data is not None:
            return  # a user's dataset: its classifier is known once it is loaded
        classifier = shipped_classifier("fashion-mnist")
    else:
        classifier = classifier_file(cfg.classifier)
    if classifier is None:
        return
    threads = session_threads(a, parallel_workers(len(cfg.models))).threads
    start_early(cfg.models, classifier, a.grids[0], a.atlas_steps, a.provider, threads)
