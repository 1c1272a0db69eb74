"""The report's figures are drawn after its sections are built, on forked workers where there
is more than one core: the same bytes as drawing them here, in the same order."""

from __future__ import annotations

import functools
import multiprocessing
import os
import time

import numpy as np
import pytest
from latent_atlas.analysis import plots

from latent_atlas import sections


def _draws(n: int) -> list:
    x = np.linspace(-4, 4, 9)
    maps = np.random.default_rng(0).random((n, 9, 9))
    return [
        functools.partial(plots.heatmap_figure, maps[i], x, x, f"map {i}", "value", "magma")
        for i in range(n)
    ]


def test_parallel_drawing_gives_the_same_bytes_in_order(monkeypatch):
    draws = _draws(5)
    monkeypatch.setattr(sections, "_workers", lambda n: 1)
    serial = sections._draw_all(draws)
    monkeypatch.setattr(sections, "_workers", lambda n: 2)
    parallel = sections._draw_all(draws)
    assert parallel == serial and len(set(serial)) == 5  # five different figures
    assert all(png.startswith(b"\x89PNG") for png in serial)
    assert sections._PENDING == []  # nothing left for a later fork to inherit


def _workers_in_child(queue) -> None:
    queue.put(sections._workers(100))


def test_workers_rule():
    assert sections._workers(3) == 1  # too few figures to be worth a fork
    # another Python thread alive: never fork (a lock it holds would stay held in the child)
    import threading

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert sections._workers(100) == 1
    finally:
        stop.set()
        other.join()
    # inside a worker process (a batch's --jobs): never fork again
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_workers_in_child, args=(queue,))
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == 1


def _broken() -> object:
    raise ValueError("a figure that cannot be drawn")


def _children() -> set[int]:
    """Live (not zombie) child processes of this one."""
    me, found = str(os.getpid()), set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                state, ppid = fh.read().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if ppid == me and state not in ("Z", "X"):
            found.add(int(pid))
    return found


def test_a_failing_figure_stops_the_drawing_and_leaves_no_worker(monkeypatch):
    monkeypatch.setattr(sections, "_workers", lambda n: 2)
    draws = [*_draws(3), _broken, *_draws(4)]
    before = _children()
    with pytest.raises(ValueError, match="cannot be drawn"):
        sections._draw_all(draws)
    assert sections._PENDING == []
    end = time.monotonic() + 10
    while _children() - before and time.monotonic() < end:
        time.sleep(0.05)
    assert _children() - before == set()


# A session left in a reference cycle, its pool threads parked on their condition variables;
# each drawing worker runs the collector, which would tear the inherited session down there.
_CYCLE_SCRIPT = """
import functools, gc, sys, time
import numpy as np, onnxruntime as ort
from latent_atlas import sections
from latent_atlas.analysis import plots
opts = ort.SessionOptions()
opts.intra_op_num_threads = 2
session = ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
session.run(None, {"z": np.zeros((8, 2), np.float32)})
class Holder: pass
holder = Holder()
holder.me, holder.session = holder, session
del holder, session
gc.disable()
time.sleep(1)  # the pool's threads stop spinning and wait
x = np.linspace(-4, 4, 5)
def draw(i):
    gc.collect()
    return plots.heatmap_figure(np.full((5, 5), float(i)), x, x, str(i))
sections._workers = lambda n: 2
print("drew", len(sections._draw_all([functools.partial(draw, i) for i in range(4)])))
"""


def test_workers_never_tear_down_an_inherited_onnxruntime_session(tmp_path):
    """Without the collect-and-freeze before the fork, both workers wait for ever in
    pthread_cond_destroy (seen: a report run in-process after other tests hung)."""
    import subprocess
    import sys

    from toy_onnx import linear_decoder

    model = linear_decoder(tmp_path / "d.onnx", np.array([0.1, 0.0]), 0.5)
    try:
        out = subprocess.run([sys.executable, "-c", _CYCLE_SCRIPT, str(model)], timeout=120,
                             capture_output=True, text=True, start_new_session=True)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the drawing workers hung on an inherited onnxruntime session")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["drew", "4"]
