"""Module-level task functions for tests/test_engine.py (a spawned worker imports tasks by
name, so they cannot live inside a test function)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np

from latent_atlas.engine import scratch_folder


def array(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float32) / 7


def scratch_then_sleep(note: str, seconds: float) -> None:
    """Make a scratch folder, say where it is, and sleep: SIGTERM must remove the folder."""
    with scratch_folder() as tmp:
        (tmp / "partial.bin").write_bytes(b"x" * 1000)
        Path(note).write_text(str(tmp))
        time.sleep(seconds)


def stubborn_sleep(seconds: float) -> None:
    """Ignore SIGTERM (as careless task code might): only SIGKILL stops this one."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)


def unpicklable_result() -> object:
    return lambda: 1
