"""The dense atlas in the analysis and the report: computed once per model over the first grid's
plane and range, drawn as a figure, and reused as the explorer's background."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from latent_atlas.analysis import plots
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec

from latent_atlas.pipeline import AnalysisConfig, Cache, analyze_model
from latent_atlas.runs import ComparisonConfig, run_comparison

FAST = AnalysisConfig(grids=(GridSpec(),), n_samples=300, trust_sample=100,
                      silhouette_sample=200, atlas_steps=33)  # fmt: skip


def _analyze(toy, name, cfg=FAST, classifier=True):
    clf = toy["root"] / "classifier.onnx" if classifier else None
    return analyze_model(toy[name], clf, toy["data"], cfg, Cache())


# ---------------------------------------------------------------------------- the analysis
def test_atlas_covers_the_first_grid_and_its_gradient_is_the_slope(toy):
    m = _analyze(toy, "linear")  # brightness = 0.05·z₀ + 0.5 at every pixel
    assert m.atlas is not None
    a, grid = m.atlas.atlas, m.grids[0].grid
    assert a.shape == (33, 33) and a.method == "fused"
    assert (a.x[0], a.x[-1], a.y[0], a.y[-1]) == (grid.x[0], grid.x[-1], grid.y[0], grid.y[-1])
    np.testing.assert_allclose(a.brightness, np.tile(0.05 * a.x + 0.5, (33, 1)), atol=2e-6)
    np.testing.assert_allclose(m.atlas.gradient, 0.05, atol=1e-5)


def test_atlas_class_boundary_of_the_region_decoder(toy):
    # prototype 0 where z₀ < 0, prototype 1 where z₀ >= 0: the atlas's classes split there
    a = _analyze(toy, "regions").atlas.atlas
    assert (a.labels == np.where(a.x < 0, 0, 1)[None, :]).all()


def test_no_classifier_or_no_steps_no_atlas(toy):
    assert _analyze(toy, "linear", classifier=False).atlas is None
    assert _analyze(toy, "linear", cfg=replace(FAST, atlas_steps=0)).atlas is None


@pytest.mark.parametrize("steps, ok", [(0, True), (1, False), (2, True), (1001, True),
                                       (1002, False), (-3, False)])  # fmt: skip
def test_atlas_steps_validated_at_the_edges(steps, ok):
    if ok:
        AnalysisConfig(atlas_steps=steps)
    else:
        with pytest.raises(AtlasError, match="atlas steps"):
            AnalysisConfig(atlas_steps=steps)


# ---------------------------------------------------------------------------- the figure
def test_atlas_colours_pale_only_below_the_threshold():
    labels = np.array([[0, 1, 2]])
    conf = np.array([[0.5, np.nextafter(0.5, 0), 1.0]])
    rgba = plots.atlas_rgba(labels, conf, 3, threshold=0.5)
    np.testing.assert_allclose(rgba[0, 0], plots.class_color(0))  # at the threshold: full
    expected = 0.5 * np.array(plots.class_color(1)[:3]) + 0.5  # just below: half-white
    np.testing.assert_allclose(rgba[0, 1, :3], expected)
    np.testing.assert_allclose(rgba[0, 2], plots.class_color(2))
    with pytest.raises(AtlasError, match="labels"):
        plots.atlas_rgba(np.array([[3]]), np.array([[1.0]]), 3)


def test_atlas_figure_structure():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (6, 7))
    x, y = np.linspace(-1, 1, 7), np.linspace(0, 3, 6)
    fig = plots.atlas_figure(labels, rng.random((6, 7)), rng.random((6, 7)), rng.random((6, 7)),
                             x, y, ["a", "b", "c", "d", "e"], "t", ("PC1", "PC2"))  # fmt: skip
    maps, bars = fig.axes[:3], fig.axes[3:]
    assert len(bars) == 2 and [ax.get_xlabel() for ax in maps] == ["PC1"] * 3
    legend = [t.get_text() for t in maps[0].get_legend().get_texts()]
    assert set(legend) == {"abcd"[k] for k in np.unique(labels)}
    with pytest.raises(AtlasError, match="brightness"):
        plots.atlas_figure(labels, np.ones((6, 7)), np.full((6, 7), 1.5), np.ones((6, 7)), x, y,
                           list("abcd"))  # fmt: skip


# ---------------------------------------------------------------------------- the report
def test_report_has_the_atlas_section_and_the_explorer_reuses_it(toy, tmp_path, monkeypatch):
    from latent_atlas import explorer, pipeline

    computed: list[tuple[int, int]] = []
    real = pipeline.compute_atlas

    def counting(decoder, classifier, spec, *args, **kwargs):
        computed.append(spec.steps)
        return real(decoder, classifier, spec, *args, **kwargs)

    monkeypatch.setattr(pipeline, "compute_atlas", counting)
    monkeypatch.setattr(explorer, "compute_atlas", counting)
    cfg = ComparisonConfig(name="c", models=(toy["linear"], toy["regions"]),
                           classifier=toy["root"] / "classifier.onnx", labels=("A", "B"),
                           analysis=FAST, study=None)  # fmt: skip
    run_comparison(cfg, tmp_path / "c", data=toy["data"])
    assert computed == [(33, 33), (33, 33)]  # once per model: the explorer did not recompute
    html = (tmp_path / "c" / "report.html").read_text()
    assert 'id="atlas"' in html and "Dense atlas" in html
    assert (tmp_path / "c" / "figures" / "m0_atlas.png").stat().st_size > 1000
    assert (tmp_path / "c" / "figures" / "m1_atlas.png").stat().st_size > 1000
    assert "m0_atlas.png" in (tmp_path / "c" / "report.md").read_text()


def test_a_reports_early_atlases_are_taken_and_change_no_byte(toy, tmp_path, monkeypatch):
    """`report` starts its models' atlases while it imports (commands.report.start_atlases):
    both are taken, and the report is byte for byte the one computed without them."""
    from latent_atlas.toolkit import atlas as atlas_mod

    import latent_atlas.commands.report as report_cmd
    import latent_atlas.runs as rep
    from latent_atlas.cli import main

    monkeypatch.setattr(rep, "load_dataset", lambda source=None, **kw: toy["data"])
    taken: list = []
    real = atlas_mod._take_early
    monkeypatch.setattr(atlas_mod, "_take_early", lambda key: taken.append(real(key)) or taken[-1])

    def report(out, early=True):
        if not early:
            monkeypatch.setattr(report_cmd, "start_atlases", lambda args: None)
        args = ["report", "--model", str(toy["linear"]), "--model", str(toy["regions"]),
                "--classifier", str(toy["root"] / "classifier.onnx"),
                "--steps", "5", "--samples", "1000", "--out", str(out),
                "--no-progress"]  # fmt: skip
        assert main(args) == 0
        (folder,) = [p for p in out.iterdir() if p.is_dir()]
        return folder

    with_early = report(tmp_path / "a")
    assert len(taken) == 2 and all(a is not None for a in taken)
    without = report(tmp_path / "b", early=False)
    assert len(taken) == 4 and taken[2:] == [None, None]
    for name in ("metrics.json", "explore.html", "report.md", "figures/m0_atlas.png"):
        assert (with_early / name).read_bytes() == (without / name).read_bytes(), name
