"""The README's Python examples run as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of the README section headed ``## {section}``."""
    text = README.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


@pytest.mark.real_data
def test_notebook_example_runs(real_data):
    (code,) = python_blocks("In a notebook")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    shape, knn = out.getvalue().split("\n")[:2]
    assert shape == "(21, 21, 1, 28, 28)"
    assert 0.5 < float(knn) < 1.0  # the shipped VAE: 0.711
