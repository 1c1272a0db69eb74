"""End to end on the real test set and the shipped artifacts, through the CLI."""

from __future__ import annotations

import json

import pytest
from conftest import SHIPPED

from latent_atlas.cli import main


@pytest.mark.real_data
@pytest.mark.slow
def test_analyze_writes_metrics_and_figures(real_data, tmp_path, capsys, lean_cli_analysis):
    # lean sizes (conftest.lean_analysis): the asserts below read the grids, the embeddings
    # and the files written, none of the atlas, geodesic, sample or t-SNE sizes
    rc = main(["analyze", "--out", str(tmp_path / "a"), "--no-progress", "--provider", "cpu"])
    assert rc == 0
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"VAE", "AE"}
    vae = metrics["models"]["VAE"]["metrics"]
    assert set(vae["grids"]) == {"linear_21x21", "auto_21x21"}
    # the shipped VAE's codes sit inside [-4, 4]² (a prior of N(0, I)); the AE's spill out
    assert vae["grids"]["linear_21x21"]["embeddings_inside_share"] > 0.99
    assert (
        metrics["models"]["AE"]["metrics"]["grids"]["linear_21x21"]["embeddings_inside_share"] < 0.9
    )
    assert 0.5 < vae["embedding"]["knn_accuracy"] < 1
    assert (
        metrics["models"]["VAE"]["provenance"]["decoder_sha256"]
        == json.loads((SHIPPED / "manifest.json").read_text())["files"]["vae/decoder.onnx"]
    )
    figures = sorted(p.name for p in (tmp_path / "a" / "figures").iterdir())
    # + one dense atlas, reconstructions and prior samples, and the decoder geometry's maps and
    # geodesic strips per model
    assert len(figures) == 2 + 2 * (2 * 5 + 1) + 2 + 2 * 2 + 2 * 2
    assert all((tmp_path / "a" / "figures" / f).read_bytes()[:4] == b"\x89PNG" for f in figures)
    out = capsys.readouterr().out
    assert "figures written to" in out and out.count("The ") >= 3  # the three claims, judged


@pytest.mark.real_data
def test_seed_figures_from_shipped_artifacts(real_data, tmp_path):
    models = ["--model", str(SHIPPED / "vae"), "--model", str(SHIPPED / "ae")]
    grid = ["--steps", "21", "--range", "-4", "4"]
    rc = main(["grid", *models, *grid, "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    assert {p.name for p in tmp_path.iterdir()} == {"vae_linear_21x21.png", "ae_linear_21x21.png"}
