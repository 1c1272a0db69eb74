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


def test_bring_your_own_model_example_runs(tmp_path, monkeypatch):
    """A torch module defined in the example, trained briefly on the digits, exported with
    export_model, loaded with latent_atlas.load and gridded."""
    import numpy as np
    import torch

    (code,) = python_blocks("Bring your own model")
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model on a busy machine: see tests/one_thread.py
    try:
        namespace: dict = {"__name__": "readme_example"}
        exec(compile(code, "README.md", "exec"), namespace)
    finally:
        torch.set_num_threads(threads)
    model, grid, data = namespace["model"], namespace["grid"], namespace["data"]
    # the folder is marked as written by latent-atlas (.latent-atlas), so exporting again may
    # replace it (a folder without the marker would be refused)
    assert sorted(p.name for p in (tmp_path / "my-vae").iterdir()) == [
        ".latent-atlas", "card.json", "decoder.onnx", "encoder.onnx", "manifest.json",
    ]  # fmt: skip
    assert model.latent_dim == 2 and tuple(model.image_shape) == (1, 8, 8)
    assert grid.cells.shape == (15, 15, 1, 8, 8)
    assert 0 <= grid.cells.min() and grid.cells.max() <= 1
    x = data.test.images  # it learned something: reconstructions beat the mean image
    rec = model.decode(model.encode(x))
    assert np.mean((rec - x) ** 2) < 0.8 * np.mean((x.mean(0) - x) ** 2)
