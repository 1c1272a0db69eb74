"""The suite's own machinery: what makes `make test` fast must keep working."""

from __future__ import annotations

import os

import pytest


@pytest.mark.xdist_group("probe")
def test_xdist_groups_reach_the_scheduler(request):
    """Under `pytest -n N --dist loadgroup` (what `make test` runs) a grouped test's id carries
    its group, which is how pytest-xdist sends a group to one worker. pytest 9 with
    pytest-xdist 3.8 dropped the suffix silently, so every costly shared fixture was built
    once per worker (hence pytest<9 in pyproject.toml)."""
    if not os.environ.get("PYTEST_XDIST_WORKER") or not request.config.getvalue("loadgroup"):
        pytest.skip("only meaningful under pytest-xdist --dist loadgroup")
    assert request.node.nodeid.endswith("@probe")
