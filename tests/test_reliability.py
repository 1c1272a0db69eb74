"""Nothing half-written, and the same inputs give the same numbers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import LEAN_MAIN, LEAN_PRELUDE
from latent_atlas.toolkit.atomic import atomic_open, write_text
from latent_atlas.toolkit.grid import GridSpec

import latent_atlas.runs as rep
from latent_atlas.pipeline import AnalysisConfig
from latent_atlas.runs import ComparisonConfig, run_comparison

FAST = AnalysisConfig(grids=(GridSpec(steps=(5, 5)),), n_samples=300, trust_sample=100,
                      silhouette_sample=200)  # fmt: skip


def _cfg(toy, name="cmp"):
    return ComparisonConfig(name, (toy["linear"], toy["regions"]),
                            classifier=toy["root"] / "classifier.onnx", analysis=FAST)  # fmt: skip


def _tree(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_inputs_byte_identical_metrics(toy, tmp_path):
    run_comparison(_cfg(toy), tmp_path / "one", data=toy["data"])
    run_comparison(_cfg(toy), tmp_path / "two", data=toy["data"])
    one = (tmp_path / "one" / "metrics.json").read_bytes()
    assert one == (tmp_path / "two" / "metrics.json").read_bytes()
    assert b"seconds" not in one and b"finished" not in one  # timings live in timings.json
    assert b"seconds" in (tmp_path / "one" / "timings.json").read_bytes()


@pytest.mark.parametrize("fail_at", ["plot", "write"])
def test_injected_failure_keeps_previous_report(toy, tmp_path, monkeypatch, fail_at):
    out = tmp_path / "cmp"
    run_comparison(_cfg(toy), out, data=toy["data"])
    before = _tree(out)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt  # what Ctrl-C looks like mid-way

    monkeypatch.setattr(rep, "build_sections" if fail_at == "plot" else "render", boom)
    with pytest.raises(KeyboardInterrupt):
        run_comparison(_cfg(toy), out, data=toy["data"])
    assert _tree(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["cmp"]  # no temp folders left behind


def test_injected_failure_without_previous_leaves_nothing(toy, tmp_path, monkeypatch):
    monkeypatch.setattr(rep, "render", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(RuntimeError):
        run_comparison(_cfg(toy), tmp_path / "cmp", data=toy["data"])
    assert list(tmp_path.iterdir()) == []


def test_atomic_file_write(tmp_path):
    path = write_text(tmp_path / "a.txt", "complete")
    # overwrite: tmp_path is not a folder latent-atlas made (see test_output_safety.py)
    with pytest.raises(OSError), atomic_open(path, "wb", overwrite=True) as fh:
        fh.write(b"half")
        raise OSError("disk full")
    assert path.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


SIGINT_SCRIPT = """
import sys, time
import latent_atlas.runs as rep
real = rep.build_sections
def slow(*a, **k):
    figs = real(*a, **k)
    print("plotted", flush=True)
    time.sleep(60)
    return figs
rep.build_sections = slow
from latent_atlas.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.real_data
def test_sigint_mid_report_leaves_no_partial_output(toy, tmp_path, real_data):
    """A real Ctrl-C (SIGINT) to a real `latent-atlas report` process (on the real test set,
    toy models), after its figures are drawn and before anything is written."""
    env = dict(os.environ)
    args = [sys.executable, "-c", SIGINT_SCRIPT, "report", "--model", str(toy["linear"]),
            "--model", str(toy["regions"]), "--classifier", str(toy["root"] / "classifier.onnx"),
            "--out", str(tmp_path / "out"), "--steps", "5", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert line.strip() == "plotted", err
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    out = tmp_path / "out"
    assert not out.exists() or [p for p in out.rglob("*") if p.is_file()] == []


def test_the_analysis_runs_blas_on_one_thread_and_gives_the_setting_back(toy):
    # onnxruntime takes every core; BLAS threads spinning beside it cost the two-model report
    # 2.3 CPU seconds on 2 cores (see runs.run_analyses)
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    seen: list[set[int]] = []
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        rep.run_analyses(_cfg(toy), data=toy["data"], stage=lambda s: seen.append(blas_threads()))
        after = blas_threads()
    assert before == after == {2}
    assert len(seen) > 3 and all(s == {1} for s in seen)


# A report run that holds at the swap (where the previous report starts to be replaced) so
# that a signal lands exactly there; SWAP_MODE: "before" holds just before the exchange,
# "after" just after it, "renames" holds before a swap made of two renames (no renameat2).
SWAP_SCRIPT = (
    """
import os, sys, time
import latent_atlas.toolkit.atomic as atomic
mode = os.environ["SWAP_MODE"]
real = atomic._swap
if mode == "renames":
    atomic._exchange = lambda a, b: False
def held(new, target):
    if mode != "after":
        print("swapping", flush=True)
        time.sleep(1.5)  # the signal arrives here, inside the critical section
    out = real(new, target)
    if mode == "after":
        print("swapping", flush=True)
        time.sleep(1.5)
    return out
atomic._swap = held
from latent_atlas.cli import main
"""
    + LEAN_PRELUDE
    + """
sys.exit(main(sys.argv[1:]))
"""
)


def _npz_data(path):
    import numpy as np

    rng = np.random.default_rng(0)
    x = (rng.random((60, 28, 28)) * 255).astype(np.uint8)
    y = (np.arange(60) % 10).astype(np.uint8)
    np.savez(path, x_test=x, y_test=y)
    return path


def _report(toy, data, out, steps, script=None, **env):
    args = ["report", "--model", str(toy["linear"]), "--model", str(toy["regions"]),
            "--classifier", str(toy["root"] / "classifier.onnx"), "--data", str(data),
            "--out", str(out), "--steps", str(steps), "--name", "cmp", "--no-progress"]  # fmt: skip
    code = script or LEAN_MAIN
    return subprocess.Popen([sys.executable, "-c", code, *args], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _finished(proc):
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


@pytest.mark.slow
def test_sigint_at_the_swap_leaves_the_old_or_the_new_report_whole_and_says_which(toy, tmp_path):
    """Issue 26.2: SIGINT sent the moment the previous report starts to be replaced (held
    there by a hook, not at a random time): the folder is the new report, whole (file for
    file the report of an uninterrupted run), and the message says so instead of "no partial
    output left" alone; with the swap made of two renames too."""
    import shutil

    data = _npz_data(tmp_path / "d.npz")
    _finished(_report(toy, data, tmp_path / "old", 3))
    _finished(_report(toy, data, tmp_path / "ref", 4))
    old = _tree(tmp_path / "old" / "cmp")
    new = _tree(tmp_path / "ref" / "cmp")
    assert old != new

    def same(tree, ref):  # timings.json holds wall times and the hour it finished
        return {k: v for k, v in tree.items() if k.name != "timings.json"} == {
            k: v for k, v in ref.items() if k.name != "timings.json"}  # fmt: skip

    for mode in ("before", "after", "renames"):
        out = tmp_path / mode
        shutil.copytree(tmp_path / "old", out)
        proc = _report(toy, data, out, 4, SWAP_SCRIPT, SWAP_MODE=mode)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "swapping", proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        lines = err.strip().splitlines()
        assert proc.returncode == 130 and len(lines) == 1, err
        after = _tree(out / "cmp")
        assert same(after, new), mode  # the new report, whole: never a mix of the two runs
        assert f"the new {out.resolve() / 'cmp'} is already in place, whole" in lines[0], err
        assert sorted(p.name for p in out.iterdir()) == [".latent-atlas", "cmp"], mode


def test_an_interrupt_before_the_swap_says_nothing_was_written(toy, tmp_path, capsys,
                                                               monkeypatch):  # fmt: skip
    """The other side of the swap: SIGINT while the report is drawn leaves the old report and
    says so."""
    from latent_atlas.cli import main

    data = _npz_data(tmp_path / "d.npz")
    args = ["report", "--model", str(toy["linear"]), "--model", str(toy["regions"]),
            "--classifier", str(toy["root"] / "classifier.onnx"), "--data", str(data),
            "--out", str(tmp_path / "out"), "--steps", "3", "--no-progress"]  # fmt: skip

    def interrupted(*a, **k):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)

    monkeypatch.setattr(rep, "render", interrupted)
    assert main(args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["latent-atlas report: interrupted (SIGINT); nothing written; any previous "
                   "output is as it was, no partial output left"]  # fmt: skip
    assert not (tmp_path / "out").exists()  # not even the parent folder it made for the report


class _MeanSession:
    """A stand-in for an onnxruntime session whose output is x + k · mean_batch(x): batch
    statistics of a known size."""

    def __init__(self, k: float) -> None:
        self.k = k

    def run(self, names, feed):
        (x,) = feed.values()
        return [x + self.k * x.mean(axis=0, keepdims=True)]

    def get_outputs(self):
        from types import SimpleNamespace

        return [SimpleNamespace(name="image")]


@pytest.mark.parametrize("factor, refused", [(0.5, False), (2.0, True)])
def test_the_batch_probe_refuses_at_its_tolerance(factor, refused, tmp_path):
    """Issue 26.3, the rule at its edge: outputs that differ between one batch and batches of
    1 and 6 by half the tolerance (BATCH_RTOL of the output's scale) pass, by twice it are
    refused, naming batch statistics."""
    import numpy as np
    from latent_atlas.toolkit import runtime
    from latent_atlas.toolkit.errors import AtlasError

    x = runtime._probe_inputs("decoder", 3, None, "flat")
    whole = x + x.mean(axis=0)
    split = np.concatenate([x[:1] + x[:1], x[1:] + x[1:].mean(axis=0)])
    diff, scale = runtime._largest_difference(whole, split)  # at k = 1
    k = factor * runtime.BATCH_RTOL * max(1.0, float(np.abs(x).max())) / diff
    session = _MeanSession(k)
    if refused:
        with pytest.raises(AtlasError, match=r"output 'image' depends on the batch.*BatchNorm"):
            runtime.batch_probe(session, tmp_path / "d.onnx", "decoder", "z", x)
    else:
        (out,) = runtime.batch_probe(session, tmp_path / "d.onnx", "decoder", "z", x)
        assert np.allclose(out, x + k * x.mean(axis=0))
