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
