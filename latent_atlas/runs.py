"""Comparison reports: one folder per comparison of one model or more, with report.html
(self-contained), report.md (figures beside it), metrics.json (every number, deterministic)
and timings.json (wall times, kept apart so metrics.json is byte-identical across runs).

``run_batch`` runs many comparisons, continues past a failing one, reuses sessions and
encodings, and writes an index.html ranking the models. With ``--jobs N`` or ``--engine ray``
the comparisons run as engine tasks (``latent_atlas.engine``): each report comes back as bytes
and the parent writes it.
"""

from __future__ import annotations

import base64
import dataclasses
import platform
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from latent_atlas import ortweb
from latent_atlas.analysis.render import figures_of, render
from latent_atlas.analysis.results import KEY_METRICS, ModelMetrics, rounded
from latent_atlas.analysis.studies import (
    Finding,
    StudyInput,
    get_study,
    run_group_study,
    run_study,
)
from latent_atlas.engine import (
    EngineConfig,
    Task,
    make_engine,
    pack_folder,
    scratch_folder,
    unpack_folder,
)
from latent_atlas.explorer import PAGE as EXPLORE_PAGE
from latent_atlas.explorer import (
    ExplorerModel,
    OnnxFile,
    explorer_model,
    relative_runtime,
    write_explorer,
)
from latent_atlas.groups import GroupAnalysis, analyze_groups, group_sections
from latent_atlas.pipeline import (
    Cache,
    ModelAnalysis,
    analyze_models,
    parallel_workers,
)
from latent_atlas.sections import build_sections
from latent_atlas.settings import ComparisonConfig
from latent_atlas.toolkit.atomic import (
    atomic_dir,
    check_dir_target,
    check_file_target,
    check_output_dir,
    check_outside_inputs,
    write_bytes,
    write_json,
    write_text,
)
from latent_atlas.toolkit.data import ImageDataset, load_dataset
from latent_atlas.toolkit.errors import AtlasError, describe

if TYPE_CHECKING:
    from latent_atlas.batchfile import CommandEntry


def _env_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import sklearn

    return {
        "latent-atlas": version("latent-atlas"), "python": platform.python_version(),
        "numpy": np.__version__,
        "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
        "scikit-learn": sklearn.__version__, "matplotlib": version("matplotlib"),
    }  # fmt: skip


# ---------------------------------------------------------------------------- one comparison
class StageTimer:
    """A stage callback that also times the stages: each call ends the previous stage of the
    calling thread (models analysed at once time their stages each on its own thread, so
    their seconds overlap and add up to more than the wall time)."""

    def __init__(self, forward: Callable[[str], None]) -> None:
        self.forward = forward
        self.seconds: dict[str, float] = {}
        self._open: dict[int, tuple[str, float]] = {}  # thread → (stage, start)
        self._lock = threading.Lock()

    def __call__(self, name: str) -> None:
        self.end()
        with self._lock:
            self._open[threading.get_ident()] = (name, time.perf_counter())
        self.forward(name)

    def end(self) -> None:
        with self._lock:
            name, start = self._open.pop(threading.get_ident(), ("", 0.0))
            if name:
                self.seconds[name] = round(time.perf_counter() - start, 3)


@dataclass
class Comparison:
    """The analysed models of one comparison, its findings and its metrics.json content."""

    name: str
    models: list[ModelAnalysis]
    findings: list[Finding]
    study_title: str
    data: ImageDataset
    metrics: dict[str, Any]
    groups: list[GroupAnalysis] = field(default_factory=list)
    group_findings: list[Finding] = field(default_factory=list)
    group_title: str = ""

    @property
    def notes(self) -> list[str]:
        skipped = [self.metrics.get("study_skipped"), self.metrics.get("group_study_skipped")]
        return [s for s in skipped if s]


def run_analyses(
    cfg: ComparisonConfig,
    cache: Cache | None = None,
    data: ImageDataset | None = None,
    stage: Callable[[str], None] = lambda s: None,
) -> Comparison:
    """Analyse every model of ``cfg``, run its study, and gather metrics.json.

    numpy's BLAS runs on one thread meanwhile: onnxruntime already uses every core, and the
    BLAS threads spinning beside it (covariances, distances, square roots between the model
    runs) cost the two-model report 2.3 CPU seconds and 0.7 s of wall time on 2 cores."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _run_analyses(cfg, cache, data, stage)


def _run_analyses(
    cfg: ComparisonConfig,
    cache: Cache | None,
    data: ImageDataset | None,
    stage: Callable[[str], None],
) -> Comparison:
    cache = cache or Cache()
    stage("load data")
    data = data or load_dataset(cfg.data, train=False, class_names=cfg.class_names)
    labels = cfg.display_labels()
    classifier = cfg.classifier_for(data)
    models = analyze_models(cfg.models, labels, classifier, data, cfg.analysis, cache, stage)
    findings: list[Finding] = []
    title = skipped = ""
    if cfg.study:
        inp = StudyInput(
            labels=labels, metrics=tuple(m.metrics for m in models),
            class_names=data.class_names, test_labels=data.test.labels,
            gradient_threshold=cfg.analysis.gradient_threshold,
        )  # fmt: skip
        study = get_study(cfg.study)
        why = study.unmet(inp)
        if why and not cfg.study_required:
            skipped = f"study {cfg.study} not run: {why}"
        else:
            findings = run_study(cfg.study, inp)
            title = study.title
    groups = analyze_groups(cfg.groups, models, classifier, data, cfg.analysis, cache,
                            cfg.groups_full, stage)  # fmt: skip
    group_findings: list[Finding] = []
    group_title = group_skipped = ""
    if groups and cfg.study:
        ginp = StudyInput(
            labels=labels, metrics=tuple(m.metrics for m in models),
            class_names=data.class_names, test_labels=data.test.labels,
            gradient_threshold=cfg.analysis.gradient_threshold,
            groups=tuple(g.as_study_group() for g in groups),
        )  # fmt: skip
        study = get_study(cfg.study)
        unmet = getattr(study, "unmet_groups", None)
        why = unmet(ginp) if unmet else f"study {cfg.study} judges single models only"
        if why and not cfg.study_required:
            group_skipped = f"study {cfg.study} not run on the groups: {why}"
        else:
            group_findings = run_group_study(cfg.study, ginp)
            group_title = getattr(study, "group_title", study.title)
    metrics = {
        "comparison": cfg.name,
        "order": list(labels),
        "models": {m.name: _model_json(m, study_ran=bool(cfg.study and not skipped))
                   for m in models},
        "study": cfg.study if not skipped else None,
        "study_skipped": skipped or None,
        "findings": [rounded(f.to_json()) for f in findings],
        "dataset": {"name": data.name, "source": data.source, "sha256": data.sha256,
                    "test_images": len(data.test), "image_shape": list(data.image_shape),
                    "class_names": list(data.class_names)},
        "classifier": str(classifier) if classifier else None,
        "settings": {k: (str(v) if not isinstance(v, int | float | str) else v)
                     for k, v in vars(cfg.analysis).items() if k != "grids"}
        | {"grids": [g.describe() for g in cfg.analysis.grids]},
        "versions": _env_versions(),
    }  # fmt: skip
    if groups:
        metrics["groups"] = {g.config.label: g.summary.to_json() for g in groups}
        metrics["group_findings"] = [rounded(f.to_json()) for f in group_findings]
        metrics["group_study_skipped"] = group_skipped or None
    return Comparison(cfg.name, models, findings, title, data, metrics, groups, group_findings,
                      group_title)  # fmt: skip


SEED_STUDY_FIELDS = ("as_written", "seed_top_rows")  # measured for the seed study's claims


def _without_seed_fields(tree: dict) -> dict:
    """``tree`` without the seed study's own fields (wherever they sit), for a report whose
    study does not run: they answer the study's questions, not the user's."""
    return {
        k: _without_seed_fields(v) if isinstance(v, dict) else v
        for k, v in tree.items()
        if k not in SEED_STUDY_FIELDS
    }


def _model_json(m: ModelAnalysis, study_ran: bool) -> dict:
    """One model in metrics.json: its metrics (the seed study's fields only where the study
    ran), provenance, and — for a model of more than two dims — its traversal readings (its
    per-dim diagnostics are among its metrics)."""
    metrics = m.metrics.to_json()
    out: dict = {
        "metrics": metrics if study_ran else _without_seed_fields(metrics),
        "provenance": m.provenance.to_json(),
    }
    ex = m.extras
    if ex is not None and ex.traversal is not None:
        out["traversal"] = ex.traversal.metrics.to_json()
    if ex is not None and ex.interpolation is not None:
        out["interpolation"] = {"images": [ex.interpolation.a, ex.interpolation.b]}
        g = ex.interpolation.geodesic
        if g is not None:  # image-space lengths of the straight line and of the geodesic
            out["interpolation"] |= {"straight_length": g.straight_length,
                                     "geodesic_length": g.length}  # fmt: skip
    return out


def explorer_models(
    cfg: ComparisonConfig, comp: Comparison, cache: Cache
) -> tuple[list[ExplorerModel], OnnxFile | None]:
    """What the explorer page shows of each model (the plane and range of the report's first
    grid, the class map over it — the model's dense atlas when the analysis made one — the
    test embeddings, the planes of its other grids to switch to), and the classifier it runs."""
    path = cfg.classifier_for(comp.data)
    classifier = cache.classifier(path, comp.data, cfg.analysis) if path else None
    # the page's geometry layer on the report's geodesic graph size (0: none; at least the
    # 3 points per axis a geometry grid needs)
    graph = cfg.analysis.geometry_graph
    geo_steps = max(3, graph) if graph else 0
    models = [
        explorer_model(m.name, m.model.decoder, classifier, m.grids[0].grid.spec, m.embeddings,
                       comp.data.test.labels, knn_k=cfg.analysis.knn_k, seed=cfg.analysis.seed,
                       atlas=m.atlas.atlas if m.atlas else None,
                       others=[g.grid.spec for g in m.grids[1:]], geometry_steps=geo_steps)
        for m in comp.models
    ]  # fmt: skip
    return models, OnnxFile.of(classifier) if classifier else None


def _report_sections(cfg: ComparisonConfig, comp: Comparison, timer: StageTimer) -> list:
    """The report's sections and their figures, drawn; with seed groups, their verdicts
    first."""
    timer(f"{cfg.name}: plot")
    sections = build_sections(comp.models, comp.data.class_names, comp.data.test.labels,
                              comp.findings, comp.study_title, comp.notes,
                              cfg.analysis.ambiguity_threshold)  # fmt: skip
    if comp.groups:
        # the verdicts across seeds come first; the pair's own (one seed each) follow, titled
        # as such, so that "refuted" on one seed is not read above "inconclusive" on five
        where = next((i for i, sec in enumerate(sections) if sec.id == "findings"), 0)
        if comp.group_findings and where < len(sections) and sections[where].id == "findings":
            pair = " and ".join(m.name for m in comp.models)
            sections[where] = dataclasses.replace(
                sections[where], title=f"{sections[where].title}: {pair} alone (one seed each)",
                intro="The same claims judged on this pair alone, one training seed each, with "
                "the single-pair rules (no interval): the verdicts across seeds above are the "
                "ones to quote.",
            )  # fmt: skip
        for i, sec in enumerate(sections):
            if sec.id == "key-metrics":  # the star compares one seed of each: say so
                sections[i] = dataclasses.replace(sec, intro=sec.intro + " The mark compares "
                    "this pair's own values, one training seed each; whether a difference holds "
                    "across seeds is in the intervals of the metrics across seeds.")  # fmt: skip
        sections[where:where] = group_sections(
            comp.groups, comp.group_findings, comp.group_title,
            [_analysed(comp.models, g.config.members[0]) for g in comp.groups], cfg.groups_full,
        )  # fmt: skip
    return sections


def run_comparison(
    cfg: ComparisonConfig,
    out: Path,
    cache: Cache | None = None,
    data: ImageDataset | None = None,
    stage: Callable[[str], None] = lambda s: None,
    runtime: Path | None = None,
    overwrite: bool = False,
    protect: tuple[Path | str | None, ...] = (),
) -> dict:
    """Analyse the models, compare, and write the report folder ``out`` atomically.

    ``runtime``: a folder holding the explorer's runtime (``ortweb.write_runtime``) that the
    report's explore.html refers to (a batch shares one); None puts one in the report folder.
    ``out`` may replace only a previous report (or, with ``overwrite``, any folder), never an
    input of the comparison nor one of ``protect``: checked before any work.
    """
    protect = (*cfg.inputs, *protect)
    check_dir_target(out, overwrite, protect)
    t0 = time.perf_counter()
    timer = StageTimer(stage)
    cache = cache or Cache()
    comp = run_analyses(cfg, cache, data, timer)
    # the explorer's geometry runs in onnxruntime (no GIL) while the figures are drawn, where
    # a second core is free (not inside a batch's worker process)
    spare = parallel_workers(2) > 1
    pool = ThreadPoolExecutor(1, thread_name_prefix="explorer") if spare else None

    def explorer_timed() -> tuple[list[ExplorerModel], OnnxFile | None]:
        timer(f"{cfg.name}: explorer")  # timed on its own thread, beside the plot
        try:
            return explorer_models(cfg, comp, cache)
        finally:
            timer.end()

    explorer_job = pool.submit(explorer_timed) if pool else None
    try:
        sections = _report_sections(cfg, comp, timer)
        figures = figures_of(sections)
        # on a thread, the explorer's own seconds are its stage; here only the wait for it
        timer(f"{cfg.name}: explorer" if pool is None else f"{cfg.name}: waiting for the explorer")
        if explorer_job is not None:
            explore, explore_classifier = explorer_job.result()
        else:
            explore, explore_classifier = explorer_models(cfg, comp, cache)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    timer(f"{cfg.name}: write")
    title = f"{cfg.name}: " + " vs ".join(m.name for m in comp.models)
    link = {"href": EXPLORE_PAGE, "title": "Explore the latent planes (live, in the browser)"}
    context = dict(
        title=title, sections=sections, models=comp.models, links=[link],
        dataset=comp.metrics["dataset"], versions=comp.metrics["versions"],
    )  # fmt: skip
    html_figs = {
        f.file: "data:image/png;base64," + base64.b64encode(f.png).decode() for f in figures
    }
    md_figs = {f.file: f"figures/{f.file}" for f in figures}
    with atomic_dir(out, overwrite, protect) as tmp:
        for f in figures:
            write_bytes(tmp / "figures" / f.file, f.png)
        write_json(tmp / "metrics.json", comp.metrics)
        write_text(tmp / "report.html", render("report.html.j2", src=html_figs, **context))
        write_text(tmp / "report.md", render("report.md.j2", src=md_figs, **context))
        rel = relative_runtime(out, runtime) if runtime else None
        names = " vs ".join(m.name for m in comp.models) + f" ({cfg.name})"
        write_explorer(tmp, explore, comp.data.class_names, explore_classifier, names, runtime=rel)
        timer.end()
        total = round(time.perf_counter() - t0, 3)
        finished = time.strftime("%Y-%m-%dT%H:%M:%S")
        timings = {"stages_seconds": timer.seconds, "total_seconds": total, "finished": finished}
        write_json(tmp / "timings.json", timings)
    return result_summary(cfg.name, out, comp)


def _analysed(models: list[ModelAnalysis], source: Path) -> ModelAnalysis | None:
    """The analysed model of ``source`` among ``models`` (None: not analysed in full)."""
    key = str(Path(source).resolve())
    return next((m for m in models if str(Path(m.provenance.source).resolve()) == key), None)


def result_summary(name: str, out: Path, comp: Comparison) -> dict:
    """What a batch keeps of a finished comparison (picklable: it crosses process borders)."""
    return {
        "name": name,
        "folder": str(out),
        "metrics": comp.metrics,
        "models": [(m.name, m.metrics, m.provenance.latent_dim) for m in comp.models],
        "findings": comp.findings,
        "explore": EXPLORE_PAGE,
    }


# ---------------------------------------------------------------------------- batch
def _run_one(cfg: ComparisonConfig, shared_runtime: bool) -> dict:
    """Engine task: one comparison in a fresh worker process (own cache), built in the
    worker's own scratch folder; the report's files come back as bytes with the summary.

    ``shared_runtime``: the report refers to the batch's explorer runtime, ``<out>/<FOLDER>``
    beside the report folders; the scratch folder has the same layout, so the link computed
    there is the final one (the runtime itself is written once, by the parent).
    """
    with scratch_folder() as tmp:
        runtime = tmp / ortweb.FOLDER if shared_runtime else None
        summary = run_comparison(cfg, tmp / "report", runtime=runtime)
        return summary | {"files": pack_folder(tmp / "report")}


def run_command_entry(kind: str, argv: tuple[str, ...]) -> dict:
    """Engine task: one ``[[geometry]]`` / ``[[traverse]]`` entry of a batch file, run by the
    command's own ``run`` in a scratch folder (what it prints is its own, not the batch's);
    its files come back as bytes, to be unpacked into ``out/<name>``."""
    import contextlib
    import importlib
    import io

    from latent_atlas.batchfile import COMMAND_KINDS, parse_command

    assert kind in COMMAND_KINDS
    module = importlib.import_module(f"latent_atlas.commands.{kind}")
    with scratch_folder() as tmp:
        args = parse_command(kind, argv, tmp / "out")
        with contextlib.redirect_stdout(io.StringIO()):
            module.run(args)
        folder = tmp / "out"
        return {"kind": kind, "files": pack_folder(folder) if folder.is_dir() else {}}


def command_inputs(kind: str, argv: tuple[str, ...]) -> tuple[str, ...]:
    """The paths an entry's command reads (models, data, class names, classifier): no output
    may replace them. None when its flags do not parse (the entry fails on its own)."""
    from latent_atlas.batchfile import parse_command

    try:
        args = parse_command(kind, argv, Path("-"))
    except AtlasError:
        return ()
    found: list[str] = []
    for key in ("model", "data", "class_names", "classifier"):
        v = getattr(args, key, None)
        for item in v if isinstance(v, list) else [v]:
            if isinstance(item, str) and item not in ("auto", "none") and ":" not in item:
                found.append(item)
    return tuple(found)


def _command_result(name: str, out: Path, value: dict, overwrite: bool,
                    protect: tuple[Path | str | None, ...]) -> dict:  # fmt: skip
    folder = unpack_folder(value["files"], out / name, overwrite, protect)
    return {"name": name, "kind": value["kind"], "folder": str(folder),
            "files": sorted(value["files"])}  # fmt: skip


def run_batch(
    comps: list[ComparisonConfig],
    out: Path,
    jobs: int = 1,
    progress: bool = True,
    index: bool = True,
    engine: EngineConfig | None = None,
    overwrite: bool = False,
    protect: tuple[Path | str | None, ...] = (),
    commands: Sequence[CommandEntry] = (),
) -> tuple[list[dict], list[tuple[str, str]]]:
    """Run every comparison, then every command entry (``[[geometry]]``, ``[[traverse]]``:
    each into ``out/<name>``, the files its command writes; its result has a ``kind``); a
    failing one, whatever the exception, is recorded and the rest go on (Ctrl-C and SIGTERM
    stop the batch).

    ``jobs`` > 1 (or an ``engine`` other than local with one job) runs the comparisons as
    engine tasks. Returns (successful results, [(name, error line)]); writes
    ``out/index.html`` (listing the failures too) and the explorer runtime if ``index`` and at
    least one comparison succeeded: when every one fails, nothing is written. ``out`` must not
    be, hold or lie inside an input of any comparison; no report folder replaces one of
    ``protect`` either.
    """
    engine = engine or EngineConfig("local", jobs)
    check_output_dir(out)  # created only when something is written into it
    inputs = tuple(p for c in comps for p in c.inputs)
    inputs += tuple(p for e in commands if e.error is None for p in command_inputs(e.kind, e.argv))
    # never beside the models: the reports, the index and the runtime would go into a folder
    # of inputs (and into the record of its marker, when `export` made it)
    check_outside_inputs(out, inputs, "output folder")
    protect = (*protect, *inputs)
    # a batch (with its index) holds one explorer runtime for all its reports; a lone report
    # holds its own, so that its folder stays whole. Its place is checked now; it is written
    # (with the index) only once a report exists: a batch whose every comparison fails leaves
    # the output folder as it was.
    runtime = out / ortweb.FOLDER if index else None
    if runtime is not None:
        ortweb.check_runtime_target(runtime)
        check_file_target(out / "index.html", overwrite, protect)
    done: list[dict] = []
    failed: list[tuple[str, str]] = []
    bar = tqdm(total=len(comps) + len(commands), desc="comparisons", unit="cmp",
               disable=None if progress else True)  # fmt: skip
    runnable = []
    for entry in commands:  # a mistake in an entry, or a refused target: its own line
        if entry.error is not None:
            failed.append((entry.name, entry.error))
            bar.update()
            continue
        try:
            check_dir_target(out / entry.name, overwrite, protect)
            runnable.append(entry)
        except AtlasError as exc:
            failed.append((entry.name, str(exc)))
            bar.update()
    if engine.kind == "local" and engine.jobs <= 1:
        cache = Cache()
        datasets: dict[tuple[str | None, Path | None], ImageDataset] = {}
        for cfg in comps:
            try:
                check_dir_target(out / cfg.name, overwrite, protect)  # before loading anything
                key = (str(cfg.data) if cfg.data else None, cfg.class_names)
                if key not in datasets:
                    datasets[key] = load_dataset(cfg.data, train=False, class_names=cfg.class_names)
                done.append(run_comparison(cfg, out / cfg.name, cache, datasets[key],
                                           stage=lambda s: bar.set_postfix_str(s),
                                           runtime=runtime, overwrite=overwrite,
                                           protect=protect))  # fmt: skip
            except Exception as exc:  # isolate the entry: any failure is its own, named below
                failed.append((cfg.name, describe(exc)))
            bar.update()
        for entry in runnable:
            try:
                bar.set_postfix_str(f"{entry.kind} {entry.name}")
                value = run_command_entry(entry.kind, entry.argv)
                done.append(_command_result(entry.name, out, value, overwrite, protect))
            except Exception as exc:  # the entry's own failure, named below
                failed.append((entry.name, describe(exc)))
            bar.update()
    else:
        # any failure, of any type, in one comparison is named and the others go on
        tasks = []
        for cfg in comps:  # a refused target fails its entry before any work is sent out
            try:
                check_dir_target(out / cfg.name, overwrite, protect)
            except AtlasError as exc:
                failed.append((cfg.name, str(exc)))
                bar.update()
                continue
            tasks.append(Task(cfg.name, _run_one, (cfg, runtime is not None)))
        tasks += [Task(e.name, run_command_entry, (e.kind, e.argv)) for e in runnable]
        with make_engine(engine) as runner:
            for outcome in runner.run(tasks):
                if outcome.ok and "kind" in outcome.value:  # a command entry
                    try:
                        done.append(_command_result(outcome.name, out, outcome.value,
                                                    overwrite, protect))  # fmt: skip
                    except AtlasError as exc:
                        failed.append((outcome.name, str(exc)))
                elif outcome.ok:
                    summary = dict(outcome.value)
                    try:
                        folder = unpack_folder(summary.pop("files"), out / outcome.name,
                                               overwrite, protect)  # fmt: skip
                        done.append(summary | {"folder": str(folder)})
                    except AtlasError as exc:
                        failed.append((outcome.name, str(exc)))
                else:
                    failed.append((outcome.name, outcome.error or "failed"))
                bar.update()
        order = [c.name for c in comps] + [e.name for e in runnable]
        done.sort(key=lambda r: order.index(r["name"]))
    bar.close()
    reports = [r for r in done if "kind" not in r]
    if index and reports:
        ortweb.write_runtime(out / ortweb.FOLDER)
        write_index(out, reports, failed, overwrite, protect)
    return done, failed


def ranking(results: list[dict]) -> list[dict]:
    """One row per (comparison, model) with its latent dim and the key metrics, best k-NN
    accuracy first."""
    rows = []
    for r in results:
        for name, m, latent_dim in r["models"]:
            assert isinstance(m, ModelMetrics)
            rows.append({"comparison": r["name"], "model": name, "latent_dim": latent_dim,
                         "explore": r.get("explore"),
                         "samples": m.samples.n_samples if m.samples is not None else None,
                         "values": [km.value(m) for km in KEY_METRICS]})  # fmt: skip
    rows.sort(key=lambda row: -(row["values"][0] or 0))
    return rows


def write_index(
    out: Path,
    results: list[dict],
    failed: list[tuple[str, str]],
    overwrite: bool = False,
    protect: tuple[Path | str | None, ...] = (),
) -> Path:
    html = render("index.html.j2", rows=ranking(results), key_metrics=KEY_METRICS, failed=failed)
    return write_text(out / "index.html", html, overwrite, protect)
