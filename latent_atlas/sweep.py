"""Seed sweeps: K training seeds of each configuration in a small TOML, each trained and
exported into its own artifact folder, through the engine (``latent_atlas.engine``).

A sweep file::

    seeds = 5            # seeds 0..4; or a list: seeds = [1, 2, 3, 4]
    threads = 1          # torch threads per run (fixed, so every engine gives the same bytes)
    # out = "sweeps"     # default: sweeps/ beside the file; --out overrides
    # data = "…"         # default: --data, $LATENT_ATLAS_DATA, else Debian's Fashion-MNIST

    [[config]]
    name = "vae"         # the run folders are <out>/<name>-seed<k>/
    kind = "vae"         # vae | ae
    arch = "mlp"         # mlp | conv
    latent_dim = 2
    hidden = 512
    beta = 1.0
    epochs = 50
    # batch_size = 128, lr = 1e-3, train_limit = 0 (all images)

Each run folder holds ``encoder.onnx``, ``decoder.onnx``, ``card.json`` (from the export
code), ``run.json`` (what was asked: the configuration, the seed, the torch threads and the
dataset's sha256) and ``manifest.json`` (the sha256 of each of those files, written last).

**Finished** means: the folder's ``run.json`` asks for exactly this run, and every file its
manifest lists is there with that sha256. Finished runs are skipped, so an interrupted sweep
resumes where it stopped. A folder that is not a finished run of the same settings is
replaced only when its ``run.json`` shows it is this run, left half-done; any other existing
folder is refused (one line), never overwritten.

Training runs in the engine's workers; a task returns the exported files as bytes and the
parent writes the folder atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from latent_atlas.engine import EngineConfig, Task, make_engine, scratch_folder, unpack_folder
from latent_atlas.toolkit.atomic import ensure_writable_dir, write_json
from latent_atlas.toolkit.errors import AtlasError

KINDS = ("vae", "ae")
ARCHS = ("mlp", "conv")
DEFAULT_SEEDS = 5
MODEL_FILES = ("encoder.onnx", "decoder.onnx", "card.json")  # what a training task returns
RUN_FILE, MANIFEST = "run.json", "manifest.json"
# A configuration name becomes part of a folder name: one safe path component.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SWEEP_KEYS = {"seeds", "threads", "out", "data", "config"}


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class RunConfig:
    """One configuration of a sweep: what to train, the same for each of its seeds."""

    name: str
    kind: str
    arch: str = "mlp"
    latent_dim: int = 2
    hidden: int = 512
    beta: float = 1.0
    epochs: int = 50
    batch_size: int = 128
    lr: float = 1e-3
    train_limit: int = 0  # 0: the whole train split; else its first N images

    def __post_init__(self) -> None:
        where = f"sweep config {self.name!r}"
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
            raise AtlasError(
                f"sweep config name {self.name!r}: expected 1-64 letters, digits, '.', '_' "
                "or '-', starting with a letter or digit (it names the run folders)"
            )
        if self.kind not in KINDS:
            raise AtlasError(f"{where}: kind {self.kind!r}, expected one of {', '.join(KINDS)}")
        if self.arch not in ARCHS:
            raise AtlasError(f"{where}: arch {self.arch!r}, expected one of {', '.join(ARCHS)}")
        for key, low in (("latent_dim", 1), ("hidden", 2), ("epochs", 1), ("batch_size", 1),
                         ("train_limit", 0)):  # fmt: skip
            value = getattr(self, key)
            if not _int(value) or value < low:
                raise AtlasError(f"{where}: {key} = {value!r}, expected an integer >= {low}")
        for key, ok, rule in (
            ("beta", lambda v: 0 <= v < math.inf, "a finite number >= 0"),
            ("lr", lambda v: 0 < v <= 1, "a learning rate in (0, 1]"),
        ):
            value = getattr(self, key)
            if not isinstance(value, int | float) or isinstance(value, bool) or not ok(value):
                raise AtlasError(f"{where}: {key} = {value!r}, expected {rule}")
            object.__setattr__(self, key, float(value))


@dataclass(frozen=True)
class SweepConfig:
    """Every configuration × every seed, trained with ``threads`` torch threads per run on the
    dataset at ``data`` (None: the default dataset), written under ``out``."""

    configs: tuple[RunConfig, ...]
    out: Path
    seeds: tuple[int, ...] = tuple(range(DEFAULT_SEEDS))
    threads: int = 1
    data: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "configs", tuple(self.configs))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "out", Path(self.out))
        if not self.configs:
            raise AtlasError("sweep: no [[config]] tables; expected at least one configuration")
        names = [c.name for c in self.configs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise AtlasError(f"sweep: duplicate config name(s) {dup}; names must be unique")
        if not self.seeds or not all(_int(s) and 0 <= s < 2**32 for s in self.seeds):
            raise AtlasError(f"sweep seeds {list(self.seeds)}: expected integers in 0..2**32-1")
        if len(set(self.seeds)) != len(self.seeds):
            raise AtlasError(f"sweep seeds {list(self.seeds)}: each seed once")
        if not _int(self.threads) or not 1 <= self.threads <= 256:
            raise AtlasError(
                f"sweep threads = {self.threads!r}: expected an integer in 1..256 (a fixed "
                "count: torch's results can depend on it)"
            )

    def runs(self) -> list[Run]:
        return [Run(c, s, self.threads) for c in self.configs for s in self.seeds]


@dataclass(frozen=True)
class Run:
    """One (configuration, seed): a task for the engine and a folder ``<name>-seed<k>``."""

    config: RunConfig
    seed: int
    threads: int

    @property
    def folder(self) -> str:
        return f"{self.config.name}-seed{self.seed}"

    def record(self, dataset_sha256: str) -> dict[str, Any]:
        """``run.json``: what this run asks for. A folder holding the same record is this run."""
        return {
            "config": dataclasses.asdict(self.config),
            "seed": self.seed,
            "threads": self.threads,
            "dataset_sha256": dataset_sha256,
        }


@dataclass
class SweepResult:
    out: Path
    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already finished
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run folder, error line)


# ---------------------------------------------------------------------------- the file
def read_sweep(
    path: Path, out: Path | None = None, seeds: int | None = None, data: str | None = None
) -> SweepConfig:
    """Parse a sweep TOML (paths relative to the file); ``out``, ``seeds`` (a count: seeds
    0..K-1) and ``data`` override the file's values."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise AtlasError(f"sweep file {path}: not found") from None
    except IsADirectoryError:
        raise AtlasError(f"sweep file {path}: a folder; expected a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AtlasError(f"sweep file {path}: not valid TOML ({exc})") from None
    except RecursionError:  # arrays or inline tables nested thousands deep
        raise AtlasError(
            f"sweep file {path}: nested deeper than the TOML reader can follow; expected "
            "[[config]] tables of settings (nothing nested more than a few levels)"
        ) from None
    unknown = set(doc) - SWEEP_KEYS
    if unknown:
        raise AtlasError(
            f"sweep file {path}: unknown key(s) {sorted(unknown)}; expected {sorted(SWEEP_KEYS)}"
        )
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    tables = doc.get("config", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise AtlasError(f"sweep file {path}: config must be [[config]] tables")
    configs = []
    for i, table in enumerate(tables, 1):
        where = f"sweep file {path}, config #{i}"
        unknown = set(table) - fields
        if unknown:
            raise AtlasError(
                f"{where}: unknown key(s) {sorted(unknown)}; expected {sorted(fields)}"
            )
        missing = {"name", "kind"} - set(table)
        if missing:
            raise AtlasError(f"{where}: missing {sorted(missing)}")
        try:
            configs.append(RunConfig(**table))
        except AtlasError as exc:
            raise AtlasError(f"{where}: {exc}") from None
    k = doc.get("seeds", DEFAULT_SEEDS) if seeds is None else seeds
    if _int(k):
        if not 1 <= k <= 1000:
            where = f"sweep file {path}: seeds = {k}" if seeds is None else f"--seeds {k}"
            raise AtlasError(f"{where}, expected a count in 1..1000")
        k = range(k)
    elif not isinstance(k, list):
        raise AtlasError(f"sweep file {path}: seeds = {k!r}, expected a count or a list")
    root = path.resolve().parent
    out_path = out if out is not None else root / str(doc.get("out", "sweeps"))
    source = data if data is not None else doc.get("data")
    if source is not None and not isinstance(source, str):
        raise AtlasError(f"sweep file {path}: data = {source!r}, expected a path")
    if source is not None and not source.startswith("sklearn:"):
        source = str(root / source) if data is None else source
    return SweepConfig(
        configs=tuple(configs), out=Path(out_path), seeds=tuple(k),
        threads=doc.get("threads", 1), data=source,
    )  # fmt: skip


# ---------------------------------------------------------------------------- finished runs
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_of(files: dict[str, bytes]) -> dict[str, Any]:
    """``manifest.json`` of a run folder: the sha256 of every other file, the format the
    runtime checks models against."""
    # "tool": the runtime reads back only a manifest written by latent-atlas
    return {"files": {name: _sha256(files[name]) for name in sorted(files)}, "tool": "latent-atlas"}


def run_state(folder: Path, record: dict[str, Any]) -> str:
    """``"finished"``, ``"absent"``, ``"unfinished"`` (our run.json for this run, but a file
    missing or changed) or ``"foreign"`` (anything else: not ours to replace)."""
    if not folder.exists():
        return "absent"
    try:
        found = json.loads((folder / RUN_FILE).read_text())
    except (OSError, ValueError):
        return "foreign"
    if found != record:
        return "foreign"
    try:
        listed = json.loads((folder / MANIFEST).read_text())["files"]
        if not set(MODEL_FILES) | {RUN_FILE} <= set(listed):
            return "unfinished"
        for name, digest in listed.items():
            if Path(name).name != name or _sha256((folder / name).read_bytes()) != digest:
                return "unfinished"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "unfinished"
    return "finished"


def _foreign(folder: Path, record: dict[str, Any]) -> str:
    try:
        found = json.loads((folder / RUN_FILE).read_text())
    except (OSError, ValueError):
        return f"run folder {folder}: exists and is not a sweep run (no readable {RUN_FILE})"
    diff = sorted(
        k
        for k in set(found) | set(record)
        if not isinstance(found, dict) or found.get(k) != record.get(k)
    )
    return (
        f"run folder {folder}: holds a run with other settings ({', '.join(diff)} differ); "
        "expected the same configuration, seed, threads and dataset: remove the folder or "
        "write the sweep to another --out"
    )


# ---------------------------------------------------------------------------- the task
def load_training_data(source: str | None) -> Any:
    """The dataset at ``source`` (None: the default), train split included."""
    from latent_atlas.toolkit.data import load_dataset

    return load_dataset(source, train=True)


def train_run(run: Run, source: str | None, dataset_sha256: str) -> dict[str, bytes]:
    """Engine task: train one (configuration, seed) and export it; returns the files
    (``encoder.onnx``, ``decoder.onnx``, ``card.json``) as bytes."""
    from latent_atlas.export.trained import export_trained_model
    from latent_atlas.toolkit.train import TrainConfig, train_model

    data = load_training_data(source)
    if data.sha256 != dataset_sha256:
        raise AtlasError(
            f"dataset {source or 'default'}: sha256 {data.sha256[:12]}… on this worker, "
            f"{dataset_sha256[:12]}… where the sweep started; expected the same data on every node"
        )
    c = run.config
    cfg = TrainConfig(
        models=(c.kind,), arch=c.arch, latent_dim=c.latent_dim, hidden=c.hidden, beta=c.beta,
        epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, seed=run.seed, threads=run.threads,
        train_limit=c.train_limit, progress=False,
    )  # fmt: skip
    model, record = train_model(c.kind, data, cfg)
    with scratch_folder() as tmp:
        export_trained_model(model, record, data, tmp)
        return {name: (tmp / name).read_bytes() for name in MODEL_FILES}


# ---------------------------------------------------------------------------- the sweep
def plan(cfg: SweepConfig, dataset_sha256: str) -> tuple[list[Run], list[Run]]:
    """(runs to train, runs already finished); refuses a folder that is not ours to replace."""
    todo: list[Run] = []
    finished: list[Run] = []
    for run in cfg.runs():
        folder = cfg.out / run.folder
        state = run_state(folder, run.record(dataset_sha256))
        if state == "foreign":
            raise AtlasError(_foreign(folder, run.record(dataset_sha256)))
        (finished if state == "finished" else todo).append(run)
    return todo, finished


def run_sweep(
    cfg: SweepConfig,
    engine: EngineConfig | None = None,
    progress: bool = True,
    dataset_sha256: str | None = None,
) -> SweepResult:
    """Train and export every run of ``cfg`` not yet finished, through the engine; each run's
    folder is written as soon as its task returns. A failing run is named, the others go on."""
    engine = engine or EngineConfig()
    if dataset_sha256 is None:
        dataset_sha256 = load_training_data(cfg.data).sha256
    ensure_writable_dir(cfg.out)
    todo, finished = plan(cfg, dataset_sha256)
    result = SweepResult(cfg.out, skipped=[r.folder for r in finished])
    by_name = {r.folder: r for r in todo}
    bar = tqdm(
        total=len(todo) + len(finished), initial=len(finished), desc="sweep", unit="run",
        disable=None if progress else True,  # None: on a terminal only
    )  # fmt: skip
    if finished:
        bar.set_postfix_str(f"{len(finished)} already finished")
    tasks = [Task(r.folder, train_run, (r, cfg.data, dataset_sha256), cpus=r.threads) for r in todo]
    try:
        with make_engine(engine) as runner:
            for outcome in runner.run(tasks):
                if outcome.ok:
                    _write_run(cfg.out / outcome.name, outcome.value,
                               by_name[outcome.name].record(dataset_sha256))  # fmt: skip
                    result.trained.append(outcome.name)
                else:
                    result.failed.append((outcome.name, outcome.error or "failed"))
                bar.set_postfix_str(f"{outcome.name} {'done' if outcome.ok else 'failed'}")
                bar.update()
    finally:
        bar.close()
    write_json(cfg.out / "sweep.json", _summary(cfg, dataset_sha256))
    return result


def _write_run(folder: Path, files: dict[str, bytes], record: dict[str, Any]) -> None:
    if set(files) != set(MODEL_FILES):
        raise AtlasError(f"run {folder.name}: the task returned {sorted(files)}")
    files = dict(files)
    files[RUN_FILE] = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
    files[MANIFEST] = (json.dumps(manifest_of(files), indent=2, sort_keys=True) + "\n").encode()
    unpack_folder(files, folder)


def _summary(cfg: SweepConfig, dataset_sha256: str) -> dict[str, Any]:
    """``sweep.json``: the sweep's settings and, per finished run, its folder's manifest hash."""
    runs = {}
    for run in cfg.runs():
        folder = cfg.out / run.folder
        if run_state(folder, run.record(dataset_sha256)) == "finished":
            runs[run.folder] = {
                "config": run.config.name, "seed": run.seed,
                "manifest_sha256": _sha256((folder / MANIFEST).read_bytes()),
            }  # fmt: skip
    return {
        "configs": [dataclasses.asdict(c) for c in cfg.configs],
        "seeds": list(cfg.seeds),
        "threads": cfg.threads,
        "dataset_sha256": dataset_sha256,
        "runs": runs,
        "latent-atlas": version("latent-atlas"),
    }
