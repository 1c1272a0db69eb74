"""Nothing half-written, and the same inputs give the same numbers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
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
