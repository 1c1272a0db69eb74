"""Models analysed on threads at once: the same numbers as one at a time, results in order,
the first failure stops the rest, stage timings per thread; the Fréchet square root's flags."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from conftest import toy_analysis
from latent_atlas.analysis import samples as sa
from latent_atlas.toolkit.grid import GridSpec
from scipy.linalg import sqrtm

from latent_atlas.pipeline import (
    AnalysisConfig,
    Cache,
    analyze_models,
    in_parallel,
    session_threads,
)
from latent_atlas.runs import StageTimer

FAST = AnalysisConfig(grids=(GridSpec(),), n_samples=300, trust_sample=100, silhouette_sample=200)


def test_parallel_analysis_gives_the_serial_numbers(toy):
    sources = [toy["linear"], toy["regions"], toy["constant"]]
    names = ["a", "b", "c"]
    clf = toy["root"] / "classifier.onnx"
    one = analyze_models(sources, names, clf, toy["data"], FAST, Cache(), workers=1)
    two = analyze_models(sources, names, clf, toy["data"], FAST, Cache(), workers=2)
    assert [m.name for m in two] == names
    assert [m.metrics.to_json() for m in two] == [m.metrics.to_json() for m in one]
    assert (two[1].grids[0].grid.cells == one[1].grids[0].grid.cells).all()


def test_in_parallel_keeps_order_and_runs_at_once():
    seen: set[str] = set()
    barrier = threading.Barrier(2, timeout=5)  # both items must be running together

    def work(item: int, stage) -> int:
        barrier.wait()
        seen.add(threading.current_thread().name)
        return item * 10

    assert in_parallel([1, 2], work, workers=2) == [10, 20]
    assert len(seen) == 2
    assert in_parallel([3, 4], lambda i, st: -i, workers=1) == [-3, -4]


def test_first_failure_stops_the_others_at_their_next_stage():
    reached = []

    def work(item: str, stage) -> str:
        if item == "bad":
            raise ValueError("broken model")
        for k in range(50):
            time.sleep(0.01)
            stage(f"{item} {k}")  # raises Stopped once the other item failed
            reached.append(k)
        return item

    with pytest.raises(ValueError, match="broken model"):
        in_parallel(["slow", "bad"], work, workers=2)
    assert len(reached) < 50


def test_stage_timer_times_each_thread_apart():
    timer = StageTimer(lambda s: None)

    def work(item: str, stage) -> None:
        stage(f"{item}: first")
        time.sleep(0.05)
        stage(f"{item}: second")
        time.sleep(0.02)

    timer("load")
    in_parallel(["a", "b"], work, workers=2, stage=timer)
    timer.end()
    assert set(timer.seconds) == {"load", "a: first", "a: second", "b: first", "b: second"}
    for item in "ab":  # each thread's stage ends at that thread's next stage, not another's
        assert timer.seconds[f"{item}: first"] >= 0.045
        assert 0.015 <= timer.seconds[f"{item}: second"] < timer.seconds[f"{item}: first"]


def test_session_threads_shared_out_only_when_left_to_onnxruntime(monkeypatch):
    monkeypatch.setattr("latent_atlas.engine.usable_cores", lambda: 4)
    assert session_threads(FAST, 2).threads == 2
    assert session_threads(FAST, 1) is FAST
    given = AnalysisConfig(grids=FAST.grids, threads=3)
    assert session_threads(given, 2).threads == 3


def test_flagged_sqrtm_is_scipys_square_root_with_its_warning():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 6))
    spd = a @ a.T + np.eye(6)
    out, flagged = sa._flagged_sqrtm(spd)
    assert not flagged
    assert np.array_equal(out, np.asarray(sqrtm(spd)))
    singular = np.diag([1.0, 0.0, 2.0])
    assert sa._flagged_sqrtm(singular)[1]
    assert sa._sqrtm(singular) is None
    # the Fréchet distance of a singular case takes the eps path, as before
    mu = np.zeros(3)
    assert sa.frechet_distance(mu, singular, mu, singular) == pytest.approx(0.0, abs=1e-5)


TRIM_SCRIPT = """
import ctypes, numpy as np
from latent_atlas.pipeline import release_freed_memory
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
ctypes.CDLL(None).mallopt(-1, 512 * 2**20)  # M_TRIM_THRESHOLD: free() trims nothing itself
blocks = [np.ones(64 * 1024 // 8) for _ in range(1024)]  # 64 MiB in blocks below mmap's size
pin = np.ones(64 * 1024 // 8)  # above them at the heap's top: free() cannot shrink the heap
del blocks
held = rss()
done = release_freed_memory()
print(done, held, rss())
"""


def test_freed_memory_goes_back_to_the_system_after_the_analyses(toy, monkeypatch):
    """analyze_models ends by trimming the C heap: 64 MiB of small arrays freed under a live
    one stay resident until release_freed_memory gives them back (in a process of its own:
    the script changes glibc's settings)."""
    import subprocess
    import sys

    from latent_atlas import pipeline

    if sys.platform.startswith("linux"):
        out = subprocess.run([sys.executable, "-c", TRIM_SCRIPT], capture_output=True,
                             text=True, check=True).stdout.split()  # fmt: skip
        done, held, after = out[0], float(out[1]), float(out[2])
        assert done == "True" and after < held - 32, out
    calls = []
    monkeypatch.setattr(pipeline, "release_freed_memory", lambda: calls.append(1) or True)
    lean = toy_analysis(grids=(GridSpec(),), atlas_steps=0, geometry_graph=0, extras=False)
    analyze_models([toy["linear"]], ["A"], None, toy["data"], lean)  # fmt: skip
    assert calls == [1]


@pytest.mark.parametrize("workers", [1, 2])
def test_in_parallel_runs_every_call_and_takes_unhashable_items(workers):
    # each call does its work (no result kept from an earlier call with the same arguments,
    # which would also keep a report's analyses alive) and an item need not be hashable
    calls: list[list[int]] = []

    def work(item: list[int], stage) -> int:
        calls.append(item)
        return sum(item)

    items = [[1, 2], [3]]
    assert in_parallel(items, work, workers) == [3, 3]
    assert in_parallel(items, work, workers) == [3, 3]
    assert len(calls) == 4
