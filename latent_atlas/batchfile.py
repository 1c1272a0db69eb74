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

A ``[[comparison]]`` also takes the report's analysis flags (``gradient_threshold``,
``threshold``, ``k``, ``plane_images``, ``samples``, ``provider``, ``threads``, ``batch_size``)
and a grid table takes ``images = [A, B, C]`` with ``plane = "images"``:
:data:`REPORT_FLAG_KEYS` says where each flag of ``latent-atlas report`` goes.

    [[geometry]]                  # latent-atlas geometry, into out/<name>/
    name = "vae-geometry"
    model = ["artifacts/fashion-mnist/vae"]
    centroids = [["Shirt", "Coat"]]                    # a repeatable flag: a list of its values
    graph_steps = 48

    [[traverse]]                  # latent-atlas traverse, into out/<name>/
    name = "vae16-dims"
    model = "artifacts/fashion-mnist/vae16"
    k = 4
    between = [0, 1]

A ``[[geometry]]`` or ``[[traverse]]`` entry holds the command's flags, each under its name
without the dashes (``--graph-steps`` → ``graph_steps``; a switch is ``true``), except
``--out``: its files go to ``out/<name>``, the same files the command writes. Its mistakes,
found when it runs, are its own one line; the other entries go on.
"""

from __future__ import annotations

import argparse
import os
import stat
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

from latent_atlas.settings import (
    AnalysisConfig,
    ComparisonConfig,
    GroupConfig,
    check_samples,
    expand,
)
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec
from latent_atlas.toolkit.names import path_component

COMMAND_KINDS = ("geometry", "traverse")  # commands a batch file runs besides comparisons
BATCH_KEYS = {"out", "data", "class_names", "classifier", "comparison", *COMMAND_KINDS}
# the analysis flags of a comparison: batch key → AnalysisConfig field
ANALYSIS_KEYS = {
    "gradient_threshold": "gradient_threshold", "threshold": "active_threshold",
    "k": "traverse_k", "plane_images": "plane_images", "provider": "provider",
    "threads": "threads", "batch_size": "batch_size", "samples": "n_samples",
}  # fmt: skip
ENTRY_KEYS = {"name", "models", "labels", "model_a", "model_b", "label_a", "label_b",
              "classifier", "data", "class_names", "grid", "study", "group",
              *ANALYSIS_KEYS}  # fmt: skip
GROUP_KEYS = {"label", "models"}
GRID_KEYS = {"steps", "range", "mode", "quantile", "percentiles", "plane", "axes", "fixed",
             "images"}  # fmt: skip
# Where each flag of `latent-atlas report` (its argparse dest) goes in a batch file: a key of a
# [[comparison]] entry, of its [[comparison.grid]] table ("grid.KEY"), of the file ("file.KEY"),
# or None: a flag of the `report --batch` command line itself, for the whole batch.
REPORT_FLAG_KEYS: dict[str, str | None] = {
    "model": "models", "label": "labels", "group": "group", "classifier": "classifier",
    "study": "study", "name": "name", "data": "data", "class_names": "class_names",
    **{k: k for k in ANALYSIS_KEYS},
    **{k: f"grid.{k}" for k in ("steps", "range", "mode", "quantile", "plane", "axes", "fixed")},
    "out": "file.out",
    "batch": None, "jobs": None, "engine": None, "address": None, "overwrite": None,
    "no_progress": None,
}  # fmt: skip
# command-entry keys that hold paths (relative to the batch file), and values that are not
PATH_KEYS = {"model", "data", "class_names", "classifier"}
NOT_PATHS = {"auto", "none"}


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
    images: tuple[int, ...] = ()
    if "images" in table:
        images = tuple(int(v) for v in _numbers(table["images"], 3, where, "images"))
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
            plane=str(_typed(table.get("plane", "axes" if "axes" in table else "images"
                                       if "images" in table else "active"), str,
                             where, "active, axes, pca or images")),
            axes=(ax0, ax1), fixed=fixed, images=images,
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


def _analysis(entry: dict, where: str) -> dict[str, Any]:
    """The entry's analysis flags (:data:`ANALYSIS_KEYS`) as AnalysisConfig fields, typed;
    their values are checked by AnalysisConfig itself."""
    out: dict[str, Any] = {}
    for key, field_name in ANALYSIS_KEYS.items():
        if key not in entry:
            continue
        v = entry[key]
        if key == "plane_images":
            out[field_name] = tuple(int(x) for x in _numbers(v, 3, where, key))
        elif key == "provider":
            out[field_name] = _typed(v, str, where, "provider = auto, cuda or cpu")
        elif key in ("gradient_threshold", "threshold"):
            out[field_name] = float(_typed(v, (int, float), where, f"{key} = a number"))
        elif key == "samples":
            out[field_name] = check_samples(v, f"{where}: samples =")
        else:
            out[field_name] = _typed(v, int, where, f"{key} = an integer")
    return out


@dataclass(frozen=True)
class CommandEntry:
    """A ``[[geometry]]`` or ``[[traverse]]`` entry: the command's flags as a command line
    (``argv``, without ``--out``: its files go to ``out/<name>``), or the one line that says
    what is wrong with it (``error``): the entry fails alone, when the batch runs it."""

    kind: str
    name: str
    argv: tuple[str, ...] = ()
    error: str | None = None


class _EntryParser(argparse.ArgumentParser):
    """A command's own parser for a batch entry: a mistake is an AtlasError, not an exit."""

    def error(self, message: str) -> NoReturn:
        raise AtlasError(message)


def command_parser(kind: str) -> argparse.ArgumentParser:
    """The parser of ``latent-atlas KIND`` (the command module's own ``add_parser``)."""
    from latent_atlas.commands import geometry, traverse

    module = {"geometry": geometry, "traverse": traverse}[kind]
    top = _EntryParser(prog="latent-atlas", add_help=False)
    sub = top.add_subparsers(dest="command")
    module.add_parser(sub)
    parser = sub.choices[kind]
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def command_keys(kind: str) -> dict[str, argparse.Action]:
    """The keys a ``[[KIND]]`` entry takes besides ``name``: every flag of the command by its
    dest (``--graph-steps`` → ``graph_steps``), except ``--out`` and ``--help``."""
    return {a.dest: a for a in command_parser(kind)._actions
            if a.option_strings and a.dest not in ("out", "help")}  # fmt: skip


def _tokens(value: Any, where: str, key: str) -> list[str]:
    """A TOML scalar or list of scalars as command-line tokens."""
    items = value if isinstance(value, list) else [value]
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise AtlasError(f"{where}: {key} = {value!r}, expected a string, a number or a list "
                             "of them")  # fmt: skip
        out.append(str(v))
    return out


def command_argv(kind: str, entry: dict, root: Path, defaults: dict, where: str) -> list[str]:
    """The command line of a ``[[KIND]]`` entry (see the module docstring); paths relative
    to the batch file ``root``; ``defaults``: the file's ``data``, ``class_names`` and
    ``classifier``, for a command that has the flag and an entry that does not set it."""
    actions = command_keys(kind)
    unknown = set(entry) - set(actions) - {"name"}
    if unknown:
        raise AtlasError(
            f"{where}: unknown key(s) {sorted(unknown)}; expected name and the flags of "
            f"latent-atlas {kind}: {sorted(actions)}"
        )
    values = {k: v for k, v in defaults.items() if k in actions} | {
        k: v for k, v in entry.items() if k != "name"
    }
    argv: list[str] = []
    for key, value in values.items():
        action = actions[key]
        flag = action.option_strings[-1]
        if action.nargs == 0:  # a switch
            if _typed(value, bool, where, f"{key} = true or false"):
                argv.append(flag)
            continue
        repeated = isinstance(action, argparse._AppendAction)
        takes_many = action.nargs not in (None, "?")
        if repeated and takes_many:  # --path U0 V0 U1 V1, repeatable: a list of lists
            groups = value if isinstance(value, list) and value and all(
                isinstance(v, list) for v in value) else [value]  # fmt: skip
        elif repeated:  # --model PATH, repeatable: a list of values
            groups = [[v] for v in (value if isinstance(value, list) else [value])]
        else:
            groups = [value]
        for g in groups:
            tokens = _tokens(g, where, key)
            if key in PATH_KEYS:
                tokens = [t if t in NOT_PATHS or t.startswith("sklearn:") else str(root / t)
                          for t in tokens]  # fmt: skip
            argv += [flag, *tokens]
    return argv


def parse_command(kind: str, argv: Sequence[str], out: Path) -> argparse.Namespace:
    """``argv`` parsed by the command's own parser, writing to ``out``; a mistake is one
    AtlasError line naming the flag."""
    parser = command_parser(kind)
    return parser.parse_args([*argv, "--out", str(out)])


@dataclass(frozen=True)
class Batch:
    """A batch file read: where its outputs go, its comparisons, its command entries."""

    out: Path
    comparisons: list[ComparisonConfig]
    commands: list[CommandEntry]


def read_batch(path: Path, base: AnalysisConfig) -> tuple[Path, list[ComparisonConfig]]:
    """Parse a batch TOML's comparisons (see the module docstring and :func:`read_batch_file`)."""
    batch = read_batch_file(path, base)
    return batch.out, batch.comparisons


def read_batch_file(path: Path, base: AnalysisConfig) -> Batch:
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
    command_tables = {kind: _typed(doc.get(kind, []), list, f"batch file {path}: {kind}",
                                   f"[[{kind}]] tables") for kind in COMMAND_KINDS}  # fmt: skip
    if not entries and not any(command_tables.values()):
        others = ", ".join(f"[[{k}]]" for k in COMMAND_KINDS)
        raise AtlasError(f"batch file {path}: no [[comparison]] entries (nor {others})")
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
        if isinstance(e.get("name"), str) and e["name"].isprintable():
            where += f" ({e['name'][:40]!r})"  # the entry as its author knows it
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
                data=source, class_names=names, study=study,
                analysis=replace(base, grids=specs, **_analysis(e, where)),
            ))  # fmt: skip
        except AtlasError as exc:
            raise AtlasError(
                str(exc) if str(exc).startswith(where) else f"{where}: {exc}"
            ) from None
    defaults = {k: doc[k] for k in ("data", "class_names", "classifier") if k in doc}
    commands = []
    for kind, tables in command_tables.items():
        for i, e in enumerate(tables, 1):
            where = f"batch file {path}, {kind} #{i}"
            _typed(e, dict, where, f"a [[{kind}]] table")
            if "name" not in e:
                raise AtlasError(f"{where}: no name; expected name = a string (the entry's "
                                 "output folder under --out)")  # fmt: skip
            name = _typed(e["name"], str, where, "name = a string (the output folder)")
            path_component(name, f"{where}: name")
            if name in seen:
                raise AtlasError(f"{where}: duplicate name {name!r}; names must be unique")
            seen.add(name)
            try:  # the entry's own mistake: it fails alone when the batch runs
                argv = command_argv(kind, e, root, defaults, where)
                commands.append(CommandEntry(kind, name, tuple(argv)))
            except AtlasError as exc:
                commands.append(CommandEntry(kind, name, error=str(exc)))
    return Batch(out, comps, commands)
