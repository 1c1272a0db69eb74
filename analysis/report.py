"""Comparison reports: one folder per model pair with report.html (self-contained),
report.md (figures beside it), metrics.json (every number, deterministic) and timings.json
(wall times, kept apart so metrics.json is byte-identical across runs).

``run_batch`` runs many comparisons from a TOML file, continues past a failing one, reuses
sessions and encodings, and writes an index.html ranking the models.
"""

from __future__ import annotations

import base64
import platform
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from tqdm.auto import tqdm

from analysis import plots
from analysis.compare import Finding, Row, as_dicts, comparison_table, findings, flatten
from analysis.pipeline import FOOTWEAR, AnalysisConfig, Cache, ModelAnalysis, analyze_model
from toolkit.atomic import atomic_dir, ensure_writable_dir, write_bytes, write_json, write_text
from toolkit.data import FashionMNIST, load_fashion_mnist
from toolkit.errors import AtlasError
from toolkit.grid import GridSpec

KEY_METRICS = (  # (label, flattened metric, higher is better)
    ("k-NN accuracy", "embedding.knn_accuracy", True),
    ("silhouette", "embedding.silhouette", True),
    ("trustworthiness", "embedding.trustworthiness", True),
    ("reconstruction MSE", "reconstruction.mse", False),
    ("Fréchet, N(0,I) samples", "samples.frechet_standard_normal", False),
    ("Fréchet, fitted Gaussian", "samples.frechet_fitted_gaussian", False),
)


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


# ---------------------------------------------------------------------------- figures
@dataclass(frozen=True)
class FigureFile:
    file: str
    title: str
    alt: str
    png: bytes


def make_figures(
    a: ModelAnalysis, b: ModelAnalysis, names: tuple[str, ...], labels: np.ndarray
) -> list[FigureFile]:
    """Every figure of a report, rendered to PNG."""
    out: list[FigureFile] = []

    def add(file: str, title: str, alt: str, fig: Any) -> None:
        out.append(FigureFile(file, title, alt, plots.figure_png_bytes(fig, dpi=100)))

    for m in (a, b):
        first = m.grids[0].grid
        extent = (first.x[0], first.x[-1], first.y[0], first.y[-1])
        add(f"{m.name}_embeddings.png", f"{m.name}: test-set embeddings",
            f"Scatter of the 10 000 test embeddings of {m.name} coloured by class, with the "
            "seed grid's extent drawn as a dashed box",
            plots.embedding_scatter(m.embeddings[:, :2], labels, names, extent,
                                    f"{m.name} encoder: test set"))  # fmt: skip
    for ga, gb in zip(a.grids, b.grids, strict=True):
        key = ga.key
        for m, g in ((a, ga), (b, gb)):
            x, y = g.grid.x, g.grid.y
            desc = g.grid.spec.describe()
            add(
                f"{m.name}_{key}_mosaic.png",
                f"{m.name}: decoded grid, {desc}",
                f"Mosaic of {m.name}'s decoded images over {desc}, z2 increasing upward",
                plots.mosaic_figure(g.grid.cells, x, y, f"{m.name}: {desc}"),
            )
            add(
                f"{m.name}_{key}_classes.png",
                f"{m.name}: classifier's class per cell",
                f"{m.name}'s grid with each cell tinted by the class the classifier assigns",
                plots.class_map_figure(g.grid.cells, g.labels, x, y, names, f"{m.name}: classes"),
            )
            add(
                f"{m.name}_{key}_confidence.png",
                f"{m.name}: classifier confidence",
                f"Heatmap of the classifier's max probability per cell of {m.name}'s grid",
                plots.confidence_figure(g.confidence, x, y, f"{m.name}: confidence"),
            )
            add(
                f"{m.name}_{key}_brightness.png",
                f"{m.name}: mean brightness per cell",
                f"Heatmap of the mean brightness of each decoded cell of {m.name}",
                plots.heatmap_figure(
                    g.grid.brightness,
                    x,
                    y,
                    f"{m.name}: brightness",
                    "mean brightness",
                    "gray",
                    0.0,
                    1.0,
                ),
            )
            add(f"{m.name}_{key}_gradient.png", f"{m.name}: |∇ brightness|",
                f"Heatmap of the brightness gradient magnitude (per latent unit) of {m.name}",
                plots.heatmap_figure(g.gradient, x, y, f"{m.name}: |∇ brightness|",
                                     "brightness per latent unit", "magma"))  # fmt: skip
        shares = {
            a.name: np.array(list(ga.metrics["classes"]["shares"].values())),
            b.name: np.array(list(gb.metrics["classes"]["shares"].values())),
        }
        add(f"{key}_class_shares.png", f"Class shares of the grid ({ga.grid.spec.describe()})",
            "Bars of the share of grid cells per class, both models side by side",
            plots.class_share_bars(shares, names))  # fmt: skip
    return out


# ---------------------------------------------------------------------------- rendering
def md_escape(value: Any) -> str:
    """Markdown output: text from files (names, paths) can neither become HTML, which many
    Markdown renderers pass through, nor break a table row."""
    text = str(value)
    for raw, safe in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|")):
        text = text.replace(raw, safe)
    return text


def _env(markdown: bool) -> jinja2.Environment:
    """HTML templates autoescape; Markdown templates pass every value through md_escape."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("analysis", "templates"),
        autoescape=not markdown,
        finalize=md_escape if markdown else None,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def fmt(v: Any) -> str:
    """How every number appears in the HTML/Markdown: 4 significant digits."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.4g}"


def render(template: str, **context: Any) -> str:
    env = _env(markdown=template.endswith(".md.j2"))
    env.filters["fmt"] = fmt
    return env.get_template(template).render(**context)


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
BATCH_KEYS = {"out", "data", "classifier", "comparison"}
ENTRY_KEYS = {"name", "model_a", "model_b", "classifier", "data", "label_a", "label_b", "grid"}
GRID_KEYS = {"steps", "range", "mode", "quantile", "percentiles", "axes", "fixed"}


def _grid_from_toml(table: dict, where: str) -> GridSpec:
    unknown = set(table) - GRID_KEYS
    if unknown:
        raise AtlasError(f"{where}: unknown key(s) {sorted(unknown)}; expected {sorted(GRID_KEYS)}")
    try:
        steps = table.get("steps", 21)
        nx, ny = (steps, steps) if isinstance(steps, int) else steps
        lo, hi = (float(v) for v in table.get("range", (-4.0, 4.0)))
        p_lo, p_hi = (float(v) for v in table.get("percentiles", (1.0, 99.0)))
        ax0, ax1 = (int(v) for v in table.get("axes", (0, 1)))
        return GridSpec(
            steps=(nx, ny), x_range=(lo, hi), y_range=(lo, hi),
            mode=str(table.get("mode", "linear")), quantile=float(table.get("quantile", 0.05)),
            percentiles=(p_lo, p_hi), axes=(ax0, ax1),
            fixed=tuple(float(v) for v in table.get("fixed", ())),
        )  # fmt: skip
    except (TypeError, ValueError) as exc:
        raise AtlasError(
            f"{where}: {exc}; expected steps = N or [NX, NY], range = [LO, HI]"
        ) from None
    except AtlasError as exc:
        raise AtlasError(f"{where}: {exc}") from None


def read_batch(
    path: Path, base: AnalysisConfig, shipped_classifier: Path
) -> tuple[Path, list[ComparisonConfig]]:
    """Parse a batch TOML: top-level ``out``, ``data``, ``classifier`` and ``[[comparison]]``
    tables with ``name``, ``model_a``, ``model_b`` and optional ``[[comparison.grid]]``."""
    try:
        doc = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise AtlasError(f"batch file {path}: not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AtlasError(f"batch file {path}: not valid TOML ({exc})") from None
    unknown = set(doc) - BATCH_KEYS
    if unknown:
        raise AtlasError(
            f"batch file {path}: unknown key(s) {sorted(unknown)}; expected {sorted(BATCH_KEYS)}"
        )
    entries = doc.get("comparison", [])
    if not entries:
        raise AtlasError(f"batch file {path}: no [[comparison]] entries")
    root = Path(path).resolve().parent

    def resolve(p: str | None) -> Path | None:
        return None if p is None else (root / p).resolve()

    out = resolve(doc.get("out", "reports")) or Path("reports")
    seen: set[str] = set()
    comps = []
    for i, e in enumerate(entries, 1):
        where = f"batch file {path}, comparison #{i}"
        unknown = set(e) - ENTRY_KEYS
        if unknown:
            raise AtlasError(
                f"{where}: unknown key(s) {sorted(unknown)}; expected {sorted(ENTRY_KEYS)}"
            )
        missing = {"name", "model_a", "model_b"} - set(e)
        if missing:
            raise AtlasError(f"{where}: missing {sorted(missing)}")
        name = str(e["name"])
        if name in seen:
            raise AtlasError(f"{where}: duplicate name {name!r}; names must be unique")
        if not name or "/" in name or name.startswith("."):
            raise AtlasError(f"{where}: name {name!r} must be a plain folder name")
        seen.add(name)
        grids = tuple(_grid_from_toml(g, f"{where}, grid") for g in e.get("grid", [])) or base.grids
        classifier = resolve(e.get("classifier", doc.get("classifier"))) or shipped_classifier
        comps.append(ComparisonConfig(
            name=name, model_a=resolve(e["model_a"]), model_b=resolve(e["model_b"]),  # type: ignore[arg-type]
            classifier=classifier, data=resolve(e.get("data", doc.get("data"))),
            label_a=str(e.get("label_a", "VAE")), label_b=str(e.get("label_b", "AE")),
            analysis=replace(base, grids=grids),
        ))  # fmt: skip
    return out, comps


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
