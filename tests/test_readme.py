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


@pytest.mark.real_data
@pytest.mark.slow
def test_what_the_shipped_models_show_is_what_make_report_writes(real_report):
    """README "What the shipped models show" quotes the default report (make report) on the
    shipped seeds: the verdicts and every interval it states come from its metrics.json."""
    import json

    metrics = json.loads((real_report / "metrics.json").read_text())
    assert {g: len(v["members"]) for g, v in metrics["groups"].items()} == {"VAE": 5, "AE": 5}
    readme = README.read_text()
    section = readme[readme.index("## What the shipped models show") :]
    section = section[: section.index("\n## ", 3)]

    def shown(x: float, digits: int = 3) -> str:
        return f"{x:+.{digits}f}".replace("-", "−") if x < 0 else f"{x:.{digits}f}"

    findings = {f["claim"].split(" (")[0]: f for f in metrics["group_findings"]
                if "(meant" in f["claim"] or "(embeddings" in f["claim"]}  # fmt: skip
    claims = list(findings)
    shoes, more, globally, named, rows = (findings[c] for c in claims)
    assert (shoes["verdict"], more["verdict"]) == ("inconclusive", "refuted")
    assert (globally["verdict"], named["verdict"], rows["verdict"]) == (
        "inconclusive", "confirmed", "refuted")  # fmt: skip
    f = shoes["figures"]
    assert f"{f['mean']:.2f}× its share of\n  the data [{f['low']:.2f}, {f['high']:.2f}]" in section
    d = more["measures"][0]["interval"]
    assert f"{shown(d['mean'])} [{shown(d['low'])}, {shown(d['high'])}]" in section
    r = rows["measures"][0]["interval"]
    assert f"{r['mean']:.3f} per latent unit [{r['low']:.3f}, {r['high']:.3f}]" in section
    for group in ("VAE", "AE"):
        knn = metrics["groups"][group]["metrics"]["embedding.knn_accuracy"]
        assert f"{knn['mean']:.3f} [{knn['low']:.3f}, {knn['high']:.3f}]" in section
