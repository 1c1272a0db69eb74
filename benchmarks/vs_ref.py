"""Time the working tree against a git ref of this repository, side by side (issue 25).

    .venv/bin/python benchmarks/vs_ref.py                 # vs 807a9a8, 5 runs per side
    .venv/bin/python benchmarks/vs_ref.py --ref main --runs 3 --suite

The ref is checked out (``git archive``, so the repository's worktrees are left alone) into
``build/vs-ref/<sha>/`` with a venv of its own: a new venv without pip whose dependencies come
from this repository's ``.venv`` (a ``.pth`` after its own site-packages, as the packaging tests
do), and the ref installed into it editable, ``--no-deps --no-index``: nothing is downloaded,
nothing in ``.venv`` changes, and it takes seconds. A later call with the same ref reuses it.

Then each command runs ``--runs`` times per side, in pairs whose order alternates (ref first,
then tree first, ...), after ``--warmup`` untimed runs per side (cold file caches, .pyc files).
Each run is measured from its own ``wait4``: wall seconds, CPU seconds (user + system of the
command and every process it waited for: older refs drew figures on forked workers) and
peak RSS (the largest resident set of any one of those processes; forked workers share most of
their pages, so they are not summed). The table gives the medians and their ratios, tree/ref:
below 1 is the tree being faster or smaller. Ratios measured in one run travel between
machines; absolute seconds do not.

The commands (in each side's own folder, the report folders in a temporary directory):

- ``two-model``: ``latent-atlas report --no-progress --out TMP --model
  artifacts/fashion-mnist/vae --model artifacts/fashion-mnist/ae``
- ``five-seed``: ``latent-atlas report --no-progress --out TMP`` (what ``make report`` runs)
- ``suite`` (only with ``--suite``): ``make test`` (lint, types, the whole test suite). The
  ref's checkout gets a stamp that says its venv is installed and wrappers for ruff, mypy and
  pytest, so its own Makefile runs as it is, offline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REF = "807a9a8"
REPORTS = ("two-model", "five-seed")
SIDES = ("ref", "tree")
# a venv installed by this script carries this file: the commit it holds, once installed
STAMP = ".vs-ref-commit"


@dataclass(frozen=True)
class Sample:
    """One run: wall seconds, CPU seconds (user + system, the command and its waited-for
    children), peak resident set in MiB (the largest single process)."""

    wall_s: float
    cpu_s: float
    peak_rss_mib: float


@dataclass(frozen=True)
class Side:
    """Where one side lives: its source folder and its venv's bin folder."""

    name: str
    root: Path
    bin: Path


# ------------------------------------------------------------------------------ arguments
def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: expected at least 1")
    return n


def _non_negative(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n}: expected 0 or more")
    return n


def _ref(text: str) -> str:
    # a ref that starts with '-' would reach git as an option
    if not text or text.startswith("-") or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a git ref (a commit, tag, branch)")
    return text


def _reports(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in REPORTS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a comma-separated subset of {', '.join(REPORTS)}"
        )
    return tuple(dict.fromkeys(names))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/vs_ref.py",
        description="Time the two-model and the five-seed report (and with --suite, make test) "
        "for a git ref and for the working tree, pairs alternated; print the medians and the "
        "ratios tree/ref.",
    )
    p.add_argument("--ref", type=_ref, default=DEFAULT_REF,
                   help=f"the git ref to compare against (default {DEFAULT_REF})")  # fmt: skip
    p.add_argument("--runs", type=_positive, default=5,
                   help="timed runs per side and command (default 5)")  # fmt: skip
    p.add_argument("--warmup", type=_non_negative, default=1,
                   help="untimed runs per side before the timed ones (default 1)")  # fmt: skip
    p.add_argument("--reports", type=_reports, default=REPORTS, metavar="NAMES",
                   help="which reports to time: two-model,five-seed (default both)")  # fmt: skip
    p.add_argument("--no-reports", action="store_true", help="time no report (with --suite)")
    p.add_argument("--suite", action="store_true",
                   help="also time `make test` on each side (minutes per run)")  # fmt: skip
    p.add_argument("--suite-runs", type=_positive, default=1,
                   help="timed `make test` runs per side (default 1; no warm-up)")  # fmt: skip
    p.add_argument("--ref-dir", type=Path, default=None,
                   help="the ref's checkout and venv (default build/vs-ref/<commit>)")  # fmt: skip
    p.add_argument("--json", type=Path, default=None, help="also write every sample here")
    args = p.parse_args(argv)
    if args.no_reports:
        if not args.suite:
            p.error("--no-reports: nothing left to time; expected --suite with it")
        args.reports = ()
    return args


# ------------------------------------------------------------------------------ arithmetic
def pair_order(i: int) -> tuple[str, str]:
    """Which side runs first in pair ``i``: alternating, so that neither side always runs
    on the caches (or the load) the other one left."""
    return SIDES if i % 2 == 0 else SIDES[::-1]


def ratio(tree: float, ref: float) -> float:
    """tree / ref; ``inf`` when the ref measured 0 and the tree did not (0 / 0 is 1)."""
    if ref == 0:
        return 1.0 if tree == 0 else float("inf")
    return tree / ref


def summarise(samples: dict[str, list[Sample]]) -> dict[str, dict[str, float]]:
    """The median of each measure per side, and the ratio of the medians, tree/ref.

    Parameters
    ----------
    samples : {"ref": [Sample, ...], "tree": [Sample, ...]}
        Each side's runs of one command (any number ≥ 1 each).

    Returns
    -------
    {"ref": {measure: median}, "tree": {measure: median}, "ratio": {measure: tree/ref}}
    with measure one of wall_s, cpu_s, peak_rss_mib.
    """
    out: dict[str, dict[str, float]] = {}
    for side in SIDES:
        runs = samples[side]
        if not runs:
            raise ValueError(f"no runs for {side}")
        out[side] = {
            k: float(statistics.median(getattr(s, k) for s in runs))
            for k in ("wall_s", "cpu_s", "peak_rss_mib")
        }
    out["ratio"] = {k: ratio(out["tree"][k], out["ref"][k]) for k in out["tree"]}
    return out


def table(title: str, summary: dict[str, dict[str, float]], runs: int) -> str:
    """The medians and ratios of one command as a small text table."""
    lines = [f"{title} (median of {runs} run{'s' * (runs != 1)} per side, pairs alternated)",
             f"{'':10} {'wall s':>9} {'CPU s':>9} {'peak RSS MiB':>13}"]  # fmt: skip
    for side in SIDES:
        m = summary[side]
        lines.append(f"{side:10} {m['wall_s']:9.2f} {m['cpu_s']:9.2f} {m['peak_rss_mib']:13.0f}")
    r = summary["ratio"]
    lines.append(f"{'tree/ref':10} {r['wall_s']:9.2f} {r['cpu_s']:9.2f} {r['peak_rss_mib']:13.2f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ measuring
def measure(argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> Sample:
    """Run ``argv`` to its end and measure it from its own ``wait4`` (Linux, macOS): unlike
    RUSAGE_CHILDREN, whose maxrss is the largest of every child so far, this is this run's.
    Linux carries the launching process's peak RSS over fork and exec into the child's, so
    call this from a small process (this script: ~15 MiB), not from a large one."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stderr is not None
    try:
        err = proc.stderr.read()  # drained while it runs: a full pipe would stall the command
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:  # Ctrl-C or SIGTERM (see main): stop the command too, then go
        proc.terminate()
        proc.wait()
        raise
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait again
    proc.stderr.close()
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(map(str, argv))} in {cwd}: exit {proc.returncode}\n"
                           + "\n".join(tail))  # fmt: skip
    # ru_maxrss is in KiB on Linux, in bytes on macOS
    kib = usage.ru_maxrss / (1024 if sys.platform == "darwin" else 1)
    return Sample(wall, usage.ru_utime + usage.ru_stime, kib / 1024)


def report_argv(side: Side, name: str, out: Path) -> list[str]:
    """The command line of report ``name`` for ``side`` (run in ``side.root``)."""
    cli = [str(side.bin / "latent-atlas"), "report", "--no-progress", "--out", str(out)]
    if name == "two-model":
        return [*cli, "--model", "artifacts/fashion-mnist/vae",
                "--model", "artifacts/fashion-mnist/ae"]  # fmt: skip
    if name == "five-seed":
        return cli
    raise ValueError(f"unknown report {name!r}; expected one of {REPORTS}")


def clean_env(side: Side) -> dict[str, str]:
    """The caller's environment, without what would make one side import the other's code."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{side.bin}{os.pathsep}{env.get('PATH', '')}"
    return env


def time_pairs(sides: dict[str, Side], argv_for, runs: int, warmup: int,
               label: str) -> dict[str, list[Sample]]:  # fmt: skip
    """``warmup`` untimed runs per side, then ``runs`` pairs, alternated (see pair_order)."""
    samples: dict[str, list[Sample]] = {s: [] for s in SIDES}
    for i in range(warmup + runs):
        for s in pair_order(i):
            side = sides[s]
            with tempfile.TemporaryDirectory(prefix="vs-ref-") as tmp:
                sample = measure(argv_for(side, Path(tmp)), side.root, clean_env(side))
            timed = i >= warmup
            if timed:
                samples[s].append(sample)
            which = f"run {i - warmup + 1}" if timed else f"warm-up {i + 1}"
            print(f"  {label} {s:4} {which}: "
                  f"{sample.wall_s:.2f} s wall, {sample.cpu_s:.2f} CPU s, "
                  f"{sample.peak_rss_mib:.0f} MiB", flush=True)  # fmt: skip
    return samples


# ------------------------------------------------------------------------------ the ref
def _git(*args: str) -> str:
    r = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout.strip()


def _site_packages(python: Path) -> list[str]:
    probe = "import sys; print('\\n'.join(p for p in sys.path if p.endswith('site-packages')))"
    r = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True)
    return r.stdout.split()


def prepare_ref(ref: str, ref_dir: Path | None) -> Side:
    """Check ``ref`` out beside the tree with its own venv (see the module docstring), or
    reuse the one a previous call made."""
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    root = (ref_dir or REPO / "build" / "vs-ref" / commit[:12]).resolve()
    bin_ = root / ".venv" / "bin"
    if (root / STAMP).is_file() and (root / STAMP).read_text().strip() == commit:
        return Side("ref", root, bin_)
    tree_python = REPO / ".venv" / "bin" / "python"
    if not tree_python.exists():
        raise SystemExit(f"{tree_python}: missing; expected this repository's venv (make install)")
    print(f"checking out {ref} ({commit[:12]}) into {root}", flush=True)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", "--format=tar", commit],
                               stdout=subprocess.PIPE)  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(root)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise SystemExit(f"git archive {commit}: failed")
    # the same interpreter as .venv's, a venv of its own, the tree venv's packages behind it
    base = subprocess.run([str(tree_python), "-c", "import sys; print(sys._base_executable)"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    subprocess.run([base, "-m", "venv", "--without-pip", str(root / ".venv")], check=True)
    python = bin_ / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # zz_: after the ref's own .pth files, so its editable finder is the one imported
    (Path(purelib) / "zz_tree_venv.pth").write_text("\n".join(_site_packages(tree_python)) + "\n")
    subprocess.run(
        [str(tree_python), "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-index", "--no-build-isolation", "-e", str(root)],
        check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    # `make test` in the ref runs as it is: its venv counts as installed, and the tools it
    # calls from .venv/bin run under the ref's python (ruff is a binary: the tree's)
    extras = "cpu-dev"
    (bin_ / f".installed-{extras}").touch()
    for tool, line in {
        "pytest": f'exec "{python}" -m pytest "$@"',
        "mypy": f'exec "{python}" -m mypy "$@"',
        "ruff": f'exec "{REPO / ".venv" / "bin" / "ruff"}" "$@"',
    }.items():
        (bin_ / tool).write_text(f"#!/bin/sh\n{line}\n")
        (bin_ / tool).chmod(0o755)
    check = subprocess.run([str(python), "-c", "import latent_atlas; print(latent_atlas.__file__)"],
                           capture_output=True, text=True, cwd=tempfile.gettempdir())  # fmt: skip
    if not check.stdout.strip().startswith(str(root)):
        raise SystemExit(f"the ref's venv imports {check.stdout.strip()!r}: expected {root}")
    (root / STAMP).write_text(commit + "\n")
    return Side("ref", root, bin_)


# ------------------------------------------------------------------------------ main
def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # a stopped benchmark leaves no command running
    tree = Side("tree", REPO, REPO / ".venv" / "bin")
    ref = prepare_ref(args.ref, args.ref_dir)
    sides = {"ref": ref, "tree": tree}
    head = _git("rev-parse", "--short=12", "HEAD")
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain", "-uno") else ""
    print(f"ref {args.ref} = {ref.root.name}; tree = {REPO} at {head}{dirty}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    results: dict[str, dict] = {}
    tables = []
    for name in args.reports:
        samples = time_pairs(sides, lambda side, out, n=name: report_argv(side, n, out),
                             args.runs, args.warmup, name)  # fmt: skip
        summary = summarise(samples)
        results[name] = {"samples": {s: [asdict(x) for x in samples[s]] for s in SIDES},
                         "summary": summary}  # fmt: skip
        tables.append(table(f"{name} report", summary, args.runs))
    if args.suite:
        samples = time_pairs(sides, lambda side, out: ["make", "-s", "test"],
                             args.suite_runs, 0, "make test")  # fmt: skip
        summary = summarise(samples)
        results["suite"] = {"samples": {s: [asdict(x) for x in samples[s]] for s in SIDES},
                            "summary": summary}  # fmt: skip
        tables.append(table("make test", summary, args.suite_runs))
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print("\n\n".join(tables))
    if args.json:
        args.json.write_text(json.dumps({"ref": args.ref, "commit": ref.root.name,
                                         "results": results}, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
