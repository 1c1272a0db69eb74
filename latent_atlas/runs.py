"""Comparison reports: one folder per model pair with report.html (self-contained),
report.md (figures beside it), metrics.json (every number, deterministic) and timings.json
(wall times, kept apart so metrics.json is byte-identical across runs).

``run_batch`` runs many comparisons, continues past a failing one, reuses sessions and
encodings, and writes an index.html ranking the models.
"""

from __future__ import annotations

import base64
import platform
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from latent_atlas.analysis.compare import (
    KEY_METRICS,
    Finding,
    Row,
    as_dicts,
    comparison_table,
    findings,
    flatten,
)
from latent_atlas.analysis.render import render
from latent_atlas.figures import make_figures
from latent_atlas.pipeline import FOOTWEAR, AnalysisConfig, Cache, ModelAnalysis, analyze_model
from latent_atlas.toolkit.atomic import (
    atomic_dir,
    ensure_writable_dir,
    write_bytes,
    write_json,
    write_text,
)
from latent_atlas.toolkit.data import FashionMNIST, load_fashion_mnist
from latent_atlas.toolkit.errors import AtlasError


@dataclass(frozen=True)
class ComparisonConfig:
    """One comparison: two model folders (encoder.onnx + decoder.onnx), the classifier, the
    dataset folder (None: the default) and the analysis settings."""

    name: str
    model_a: Path
    model_b: Path
    classifier: Path
    data: Path | None = None
    label_a: str = "VAE"
    label_b: str = "AE"
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)


def _env_versions() -> dict[str, str]:
    import matplotlib
    import onnx
    import onnxruntime
    import sklearn

    return {
        "latent-atlas": version("latent-atlas"), "python": platform.python_version(),
        "numpy": np.__version__,
        "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
        "scikit-learn": sklearn.__version__, "matplotlib": matplotlib.__version__,
    }  # fmt: skip


# ---------------------------------------------------------------------------- one comparison
class StageTimer:
    """A stage callback that also times the stages: each call ends the previous stage."""

    def __init__(self, forward: Callable[[str], None]) -> None:
        self.forward = forward
        self.seconds: dict[str, float] = {}
        self._name = ""
        self._start = time.perf_counter()

    def __call__(self, name: str) -> None:
        self.end()
        self._name, self._start = name, time.perf_counter()
        self.forward(name)

    def end(self) -> None:
        if self._name:
            self.seconds[self._name] = round(time.perf_counter() - self._start, 3)
            self._name = ""


def run_analyses(
    cfg: ComparisonConfig,
    cache: Cache | None = None,
    data: FashionMNIST | None = None,
    stage: Callable[[str], None] = lambda s: None,
) -> tuple[ModelAnalysis, ModelAnalysis, dict, FashionMNIST]:
    """Analyse both models and compare them: (a, b, metrics dict, dataset)."""
    cache = cache or Cache()
    stage("load data")
    data = data or load_fashion_mnist(cfg.data)
    a, b = (
        analyze_model(folder, cfg.classifier, data, cfg.analysis, cache, label, stage)
        for folder, label in ((cfg.model_a, cfg.label_a), (cfg.model_b, cfg.label_b))
    )
    names = data.class_names
    data_footwear = float(np.isin(data.test.labels, [names.index(c) for c in FOOTWEAR]).mean())
    found = findings(a.metrics, b.metrics, a.grids[0].key, data_footwear,
                     cfg.analysis.gradient_threshold, a.name, b.name)  # fmt: skip
    metrics = {
        "comparison": cfg.name,
        "models": {m.name: {"metrics": m.metrics, "provenance": m.provenance} for m in (a, b)},
        "table": as_dicts(comparison_table(a.metrics, b.metrics)),
        "findings": as_dicts(found),
        "dataset": {"folder": data.folder, "sha256": data.sha256, "test_images": len(data.test),
                    "footwear_share": data_footwear},
        "settings": {k: (str(v) if not isinstance(v, int | float | str) else v)
                     for k, v in vars(cfg.analysis).items() if k != "grids"}
        | {"grids": [g.describe() for g in cfg.analysis.grids]},
        "versions": _env_versions(),
    }  # fmt: skip
    return a, b, metrics, data


def run_comparison(
    cfg: ComparisonConfig,
    out: Path,
    cache: Cache | None = None,
    data: FashionMNIST | None = None,
    stage: Callable[[str], None] = lambda s: None,
) -> dict:
    """Analyse both models, compare, and write the report folder ``out`` atomically."""
    if cfg.label_a == cfg.label_b:
        raise AtlasError(f"comparison {cfg.name}: both models are labelled {cfg.label_a!r}")
    ensure_writable_dir(out.parent)
    t0 = time.perf_counter()
    timer = StageTimer(stage)
    a, b, metrics, data = run_analyses(cfg, cache, data, timer)
    names = data.class_names
    table = [Row(**r) for r in metrics["table"]]
    found = [Finding(**f) for f in metrics["findings"]]
    timer(f"{cfg.name}: plot")
    figures = make_figures(a, b, names, data.test.labels)

    timer(f"{cfg.name}: write")
    context = dict(
        name=cfg.name, a=a, b=b, table=table, findings=found, metrics=metrics,
        figures=figures, grids=list(zip(a.grids, b.grids, strict=True)), key_metrics=KEY_METRICS,
        flat={a.name: flatten(a.metrics), b.name: flatten(b.metrics)},
    )  # fmt: skip
    html_figs = {
        f.file: "data:image/png;base64," + base64.b64encode(f.png).decode() for f in figures
    }
    md_figs = {f.file: f"figures/{f.file}" for f in figures}
    with atomic_dir(out) as tmp:
        for f in figures:
            write_bytes(tmp / "figures" / f.file, f.png)
        write_json(tmp / "metrics.json", metrics)
        write_text(tmp / "report.html", render("report.html.j2", src=html_figs, **context))
        write_text(tmp / "report.md", render("report.md.j2", src=md_figs, **context))
        timer.end()
        total = round(time.perf_counter() - t0, 3)
        finished = time.strftime("%Y-%m-%dT%H:%M:%S")
        timings = {"stages_seconds": timer.seconds, "total_seconds": total, "finished": finished}
        write_json(tmp / "timings.json", timings)
    return {"name": cfg.name, "folder": str(out), "metrics": metrics, "seconds": timer.seconds}


# ---------------------------------------------------------------------------- batch
def _run_one(cfg: ComparisonConfig, out: Path) -> dict:
    """Worker for --jobs > 1: one comparison in a fresh process (own cache)."""
    result = run_comparison(cfg, out / cfg.name)
    return {"name": cfg.name, "folder": result["folder"], "metrics": result["metrics"]}


def run_batch(
    comps: list[ComparisonConfig],
    out: Path,
    jobs: int = 1,
    progress: bool = True,
    index: bool = True,
) -> tuple[list[dict], list[tuple[str, str]]]:
    """Run every comparison; a failing one is recorded and the rest go on.

    Returns (successful results, [(name, error line)]); writes ``out/index.html`` if ``index``.
    """
    ensure_writable_dir(out)
    done: list[dict] = []
    failed: list[tuple[str, str]] = []
    bar = tqdm(total=len(comps), desc="comparisons", unit="cmp", disable=not progress)
    if jobs <= 1:
        cache = Cache()
        datasets: dict[str | None, FashionMNIST] = {}
        for cfg in comps:
            try:
                key = str(cfg.data) if cfg.data else None
                if key not in datasets:
                    datasets[key] = load_fashion_mnist(cfg.data)
                done.append(run_comparison(cfg, out / cfg.name, cache, datasets[key],
                                           stage=lambda s: bar.set_postfix_str(s)))  # fmt: skip
            except AtlasError as exc:
                failed.append((cfg.name, str(exc)))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_run_one, cfg, out): cfg for cfg in comps}
            for fut in as_completed(futures):
                try:
                    done.append(fut.result())
                except AtlasError as exc:
                    failed.append((futures[fut].name, str(exc)))
                bar.update()
        order = [c.name for c in comps]
        done.sort(key=lambda r: order.index(r["name"]))
    bar.close()
    if index:
        write_index(out, done, failed)
    return done, failed


def ranking(results: list[dict]) -> list[dict]:
    """One row per (comparison, model) with the key metrics, best k-NN accuracy first."""
    rows = []
    for r in results:
        for model, m in r["metrics"]["models"].items():
            flat = flatten(m["metrics"])
            rows.append({"comparison": r["name"], "model": model,
                         "values": [flat.get(key) for _, key, _ in KEY_METRICS]})  # fmt: skip
    rows.sort(key=lambda row: -(row["values"][0] or 0))
    return rows


def write_index(out: Path, results: list[dict], failed: list[tuple[str, str]]) -> Path:
    html = render("index.html.j2", rows=ranking(results), key_metrics=KEY_METRICS, failed=failed)
    return write_text(out / "index.html", html)
