"""A fixture for tests of tiny torch models: one torch thread while they run.

On a busy 2-core machine two torch threads spin-wait for each other: 20 epochs of a tiny model
on 90 images took 10 s with two threads and 0.2 s with one (measured with the load average at
16). Import ``one_torch_thread`` into a test module to apply it to every test there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
