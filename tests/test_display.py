"""The API's results show themselves in a notebook: IPython's display formatter finds their
HTML (a table, the mosaic inline) and PNG (the mosaic)."""

from __future__ import annotations

import base64
import re

import pytest
from latent_atlas.toolkit.grid import GridSpec

from latent_atlas import api
from latent_atlas.pipeline import AnalysisConfig

PNG = b"\x89PNG\r\n\x1a\n"
CFG = AnalysisConfig(grids=(GridSpec(steps=(7, 7)),), n_samples=100, trust_sample=60,
                     silhouette_sample=60, atlas_steps=0)  # fmt: skip


def _formats(obj) -> dict:
    from IPython.core.formatters import DisplayFormatter

    data, _ = DisplayFormatter().format(obj)
    return data


def _inline_pngs(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


@pytest.mark.slow
def test_a_grid_shows_its_mosaic(toy):
    grid = api.decode_grid(toy["linear"], steps=5)
    out = _formats(grid)
    assert out["image/png"].startswith(PNG)
    html = out["text/html"]
    assert "5 × 5, each 1×28×28" in html and "Decoded grid" in html
    (png,) = _inline_pngs(html)
    assert png.startswith(PNG) and len(png) > 1000
    assert grid.cells.shape == (5, 5, 1, 28, 28)  # still the grid it was


@pytest.mark.slow
def test_an_analysis_shows_its_key_metrics_and_mosaic(toy):
    [result] = api.analyze([toy["linear"]], data=toy["data"], classifier=None, config=CFG)
    out = _formats(result)
    html = out["text/html"]
    knn = result.metrics.embedding.knn_accuracy
    assert "k-NN accuracy" in html and f"{knn:.4g}" in html
    assert "not available" in html  # no classifier: the classifier's measures say why
    assert len(_inline_pngs(html)) == 1 and out["image/png"].startswith(PNG)


def test_a_report_folder_shows_links_and_verdicts(tmp_path):
    import json

    from latent_atlas.display import Report

    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "claims_forest.svg").write_text("<svg><text>forest</text></svg>")
    found = [{"claim": "The VAE learns <shoes>.", "verdict": "inconclusive",
              "summary": "Inconclusive: 1.11× [1.01, 1.22].", "evidence": "long"}]  # fmt: skip
    (tmp_path / "metrics.json").write_text(json.dumps({"group_findings": found}))
    report = Report(tmp_path)
    html = _formats(report)["text/html"]
    assert "report.html</a>" in html and "explore.html</a>" in html
    assert "<svg><text>forest</text></svg>" in html
    assert "The VAE learns &lt;shoes&gt;." in html and "1.11× [1.01, 1.22]" in html
    assert report / "report.html" == tmp_path / "report.html"  # still a Path
