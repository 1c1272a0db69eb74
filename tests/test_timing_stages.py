"""timings.json names each model's stages for the report section their work feeds, so a slow
stage can be found in the report by its name."""

from __future__ import annotations

import pytest
from latent_atlas.toolkit.grid import GridSpec

from latent_atlas.pipeline import AnalysisConfig, Cache, analyze_model
from latent_atlas.sections import build_sections


@pytest.mark.slow
def test_model_stages_are_named_for_report_sections(toy):
    grids = (GridSpec(steps=(5, 5)), GridSpec(steps=(4, 4), mode="auto"))
    cfg = AnalysisConfig(grids=grids, n_samples=100, trust_sample=60, silhouette_sample=60,
                         atlas_steps=8)  # fmt: skip
    stages: list[str] = []
    clf = toy["root"] / "classifier.onnx"
    m = analyze_model(toy["linear"], clf, toy["data"], cfg, Cache(), "A", stage=stages.append)
    data = toy["data"]
    titles = {s.title for s in build_sections([m], data.class_names, data.test.labels)}
    named = [s.split(": ", 1)[1].split(" (")[0] for s in stages]
    assert all(s.startswith("A: ") for s in stages)
    assert set(named) <= titles, (named, titles)
    assert {"Encoder embeddings", "Dense atlas", "All metrics"} <= set(named)
    assert sum(n.startswith("Grid: ") for n in named) == 2
