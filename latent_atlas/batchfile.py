"""Batch files: a TOML of comparisons, mapped onto ``ComparisonConfig`` values (which check
themselves); paths are relative to the file.

    out = "reports"                 # optional
    data = "sklearn:digits"         # optional, default: Fashion-MNIST
    class_names = "names.txt"       # optional: one class name per line
    classifier = "path/c.onnx"      # optional: a file, "auto" (default) or "none"

    [[comparison]]
    name = "beta-sweep"
    models = ["ae", "vae-b0.5", "vae-b1", "vae-b4"]     # or model_a = …, model_b = …
    labels = ["AE", "β=0.5", "β=1", "β=4"]            # optional (or label_a, label_b)
    study = "seed"                                     # optional
      [[comparison.grid]]                              # optional, repeatable
      steps = 31
      mode = "icdf"                                    # linear | icdf | auto
      plane = "pca"                                    # active | axes (axes = [I, J]) | pca

    [[comparison]]                # groups: the training seeds of each configuration
    name = "seeds"
    study = "seed"
      [[comparison.group]]        # two or more; models may be globs
      label = "VAE"
      models = ["artifacts/fashion-mnist/vae", "artifacts/fashion-mnist/seeds/vae-seed*"]
      [[comparison.group]]
      label = "AE"
      models = ["artifacts/fashion-mnist/ae", "artifacts/fashion-mnist/seeds/ae-seed*"]
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from latent_atlas.groups import GroupConfig, expand
from latent_atlas.pipeline import AnalysisConfig
from latent_atlas.runs import ComparisonConfig
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec

BATCH_KEYS = {"out", "data", "class_names", "classifier", "comparison"}
ENTRY_KEYS = {"name", "models", "labels", "model_a", "model_b", "label_a", "label_b",
              "classifier", "data", "class_names", "grid", "study", "group"}  # fmt: skip
GROUP_KEYS = {"label", "models"}
GRID_KEYS = {"steps", "range", "mode", "quantile", "percentiles", "plane", "axes", "fixed"}


MAX_BATCH_BYTES = 1 << 20


def _read_regular(path: Path) -> str:
    """The text of a regular file. Opened non-blocking and checked before reading: a FIFO
    (or a device, a folder) would otherwise hang or fail deep inside the read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise AtlasError(f"batch file {path}: not found") from None
    except OSError as exc:
        raise AtlasError(f"batch file {path}: cannot open it ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AtlasError(f"batch file {path}: not a regular file; expected a TOML file")
        if st.st_size > MAX_BATCH_BYTES:
            raise AtlasError(
                f"batch file {path}: {st.st_size} bytes, expected at most {MAX_BATCH_BYTES}"
            )
        raw = os.read(fd, MAX_BATCH_BYTES + 1)
    finally:
        os.close(fd)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AtlasError(f"batch file {path}: not valid UTF-8 ({exc.reason})") from None


def _typed(value: Any, kind: type | tuple[type, ...], where: str, expected: str) -> Any:
    if (
        not isinstance(value, kind)
        or isinstance(value, bool)
        and bool not in (kind if isinstance(kind, tuple) else (kind,))
    ):
        raise AtlasError(f"{where}: {value!r} ({type(value).__name__}), expected {expected}")
    return value


def _numbers(value: Any, n: int, where: str, what: str) -> list[float]:
    ok = isinstance(value, list) and len(value) == n
    if not ok or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value):
        raise AtlasError(f"{where}: {what} = {value!r}, expected {n} numbers")
    return [float(v) for v in value]


def _grid_from_toml(table: Any, where: str) -> GridSpec:
    _typed(table, dict, where, "a [[comparison.grid]] table")
    unknown = set(table) - GRID_KEYS
    if unknown:
        raise AtlasError(f"{where}: unknown key(s) {sorted(unknown)}; expected {sorted(GRID_KEYS)}")
    steps = table.get("steps", 21)
    if isinstance(steps, int) and not isinstance(steps, bool):
        nx = ny = steps
    else:
        nx, ny = (int(v) for v in _numbers(steps, 2, where, "steps"))
    lo, hi = _numbers(table.get("range", [-4.0, 4.0]), 2, where, "range")
    p_lo, p_hi = _numbers(table.get("percentiles", [1.0, 99.0]), 2, where, "percentiles")
    ax0, ax1 = (int(v) for v in _numbers(table.get("axes", [0, 1]), 2, where, "axes"))
    fixed = table.get("fixed", "mean")
    if not isinstance(fixed, str):
        fixed = tuple(_numbers(fixed, len(fixed) if isinstance(fixed, list) else -1, where,
                               "fixed"))  # fmt: skip
    try:
        return GridSpec(
            steps=(nx, ny), x_range=(lo, hi), y_range=(lo, hi),
            mode=str(_typed(table.get("mode", "linear"), str, where, "a mode name")),
            quantile=float(_typed(table.get("quantile", 0.05), (int, float), where, "a number")),
            percentiles=(p_lo, p_hi),
            plane=str(_typed(table.get("plane", "axes" if "axes" in table else "active"), str,
                             where, "active, axes or pca")),
            axes=(ax0, ax1), fixed=fixed,
        )  # fmt: skip
    except AtlasError as exc:
        raise AtlasError(f"{where}: {exc}") from None


def _groups(entry: dict, root: Path, where: str) -> tuple[GroupConfig, ...]:
    """The entry's ``[[comparison.group]]`` tables (paths and globs relative to the file)."""
    tables = _typed(entry.get("group", []), list, where, "[[comparison.group]] tables")
    groups = []
    for j, t in enumerate(tables, 1):
        at = f"{where}, group #{j}"
        _typed(t, dict, at, "a [[comparison.group]] table")
        unknown = set(t) - GROUP_KEYS
        missing = GROUP_KEYS - set(t)
        if unknown or missing:
            raise AtlasError(f"{at}: keys {sorted(t)}; expected exactly {sorted(GROUP_KEYS)}")
        label = _typed(t["label"], str, at, "label = a string")
        members = _typed(t["models"], list, at, "models = [paths or globs…]")
        for m in members:
            _typed(m, str, at, "models = [paths or globs…]")
        groups.append(GroupConfig(label, expand(members, root, at)))
    return tuple(groups)


def _paths(entry: dict, where: str) -> tuple[list[str], list[str]]:
    """The entry's models and labels, from ``models``/``labels`` or ``model_a``/``model_b``."""
    if "group" in entry and not ({"models", "model_a", "model_b"} & set(entry)):
        return [], []  # the groups' first members stand for them (see read_batch)
    if "models" in entry:
        models = _typed(entry["models"], list, where, "models = [paths…]")
        labels = _typed(entry.get("labels", []), list, where, "labels = [names…]")
    else:
        missing = {"model_a", "model_b"} - set(entry)
        if missing:
            raise AtlasError(f"{where}: missing {sorted(missing)} (or models = [...])")
        models = [entry["model_a"], entry["model_b"]]
        labels = [entry.get("label_a", "VAE"), entry.get("label_b", "AE")]
    for v in [*models, *labels]:
        _typed(v, str, where, "strings (paths and labels)")
    return models, labels


def read_batch(path: Path, base: AnalysisConfig) -> tuple[Path, list[ComparisonConfig]]:
    """Parse a batch TOML (see the module docstring)."""
    try:
        doc = tomllib.loads(_read_regular(Path(path)))
    except tomllib.TOMLDecodeError as exc:
        raise AtlasError(f"batch file {path}: not valid TOML ({exc})") from None
    except RecursionError:  # arrays or inline tables nested thousands deep
        raise AtlasError(
            f"batch file {path}: nested deeper than the TOML reader can follow; expected "
            "[[comparison]] tables of paths, labels and settings (nothing nested more than a "
            "few levels)"
        ) from None
    unknown = set(doc) - BATCH_KEYS
    if unknown:
        raise AtlasError(
            f"batch file {path}: unknown key(s) {sorted(unknown)}; expected {sorted(BATCH_KEYS)}"
        )
    entries = _typed(doc.get("comparison", []), list, f"batch file {path}: comparison",
                     "[[comparison]] tables")  # fmt: skip
    if not entries:
        raise AtlasError(f"batch file {path}: no [[comparison]] entries")
    root = Path(path).resolve().parent

    def resolve(p: Any, where: str) -> Path:
        return (root / _typed(p, str, where, "a path (string)")).resolve()

    def classifier(value: Any, where: str) -> Path | str | None:
        _typed(value, str, where, "a path, 'auto' or 'none'")
        return None if value == "none" else "auto" if value == "auto" else resolve(value, where)

    def data(value: Any, where: str) -> str | Path | None:
        if value is None:
            return None
        _typed(value, str, where, "a dataset path or sklearn:digits")
        return value if value.startswith("sklearn:") else resolve(value, where)

    out = resolve(doc.get("out", "reports"), f"batch file {path}: out")
    seen: set[str] = set()
    comps = []
    for i, e in enumerate(entries, 1):
        where = f"batch file {path}, comparison #{i}"
        _typed(e, dict, where, "a [[comparison]] table")
        unknown = set(e) - ENTRY_KEYS
        if unknown:
            raise AtlasError(
                f"{where}: unknown key(s) {sorted(unknown)}; expected {sorted(ENTRY_KEYS)}"
            )
        if "name" not in e:
            raise AtlasError(f"{where}: missing ['name']")
        name = _typed(e["name"], str, where, "name = a string")
        if name in seen:
            raise AtlasError(f"{where}: duplicate name {name!r}; names must be unique")
        seen.add(name)
        models, labels = _paths(e, where)
        if models and labels and len(labels) != len(models):
            raise AtlasError(
                f"{where}: {len(labels)} labels for {len(models)} models; expected "
                "labels = [...] with one label per entry of models = [...]"
            )
        try:
            groups = _groups(e, root, where)
        except AtlasError as exc:
            raise AtlasError(
                str(exc) if str(exc).startswith(where) else f"{where}: {exc}"
            ) from None
        paths = tuple(resolve(m, where) for m in models)
        if not models:  # a comparison of groups: each group's first member stands for it
            paths = tuple(g.members[0].resolve() for g in groups)
            labels = [g.label for g in groups]
        grids = e.get("grid", [])
        _typed(grids, list, where, "[[comparison.grid]] tables")
        specs = tuple(_grid_from_toml(g, f"{where}, grid") for g in grids) or base.grids
        study = e.get("study")
        study = None if study is None else _typed(study, str, where, "a study name")
        clf = classifier(e.get("classifier", doc.get("classifier", "auto")), where)
        source = data(e.get("data", doc.get("data")), where)
        class_file = e.get("class_names", doc.get("class_names"))
        names = None if class_file is None else resolve(class_file, where)
        try:  # the config's own checks, prefixed with where the entry is
            comps.append(ComparisonConfig(
                name=name, models=paths, labels=tuple(labels), groups=groups, classifier=clf,
                data=source, class_names=names, study=study, analysis=replace(base, grids=specs),
            ))  # fmt: skip
        except AtlasError as exc:
            raise AtlasError(f"{where}: {exc}") from None
    return out, comps
