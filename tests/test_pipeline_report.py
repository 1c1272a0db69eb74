"""Known-answer tests of the whole analysis through tiny ONNX models, and the report writer."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from latent_atlas.analysis.render import fmt
from latent_atlas.analysis.results import ModelMetrics, flatten, from_json
from latent_atlas.toolkit.data import FASHION_MNIST_CLASSES as CLASS_NAMES
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec

from latent_atlas.batchfile import read_batch
from latent_atlas.pipeline import AnalysisConfig, Cache, analyze_model
from latent_atlas.runs import ComparisonConfig, run_batch

SEED_GRID = GridSpec()
FAST = AnalysisConfig(grids=(SEED_GRID,), n_samples=300, trust_sample=100, silhouette_sample=200,
                      atlas_steps=32, geometry_graph=16)  # fmt: skip


def _analyze(toy, name, cfg=FAST, classifier=True):
    clf = toy["root"] / "classifier.onnx" if classifier else None
    return analyze_model(toy[name], clf, toy["data"], cfg, Cache())


def _m(g):
    """A grid's metrics as metrics.json has them."""
    return g.metrics.to_json()


def test_linear_decoder_gradient_equals_slope(toy):
    g = _analyze(toy, "linear").grids[0]
    np.testing.assert_allclose(g.d_dz1, 0.05, atol=1e-6)  # brightness = 0.05·z1 + 0.5
    np.testing.assert_allclose(g.gradient, 0.05, atol=1e-6)
    assert _m(g)["brightness"]["gradient"]["mean"] == pytest.approx(0.05, abs=1e-6)
    assert _m(g)["brightness"]["gradient"]["stark_share"] == 0.0  # 0.05 < 0.25
    # every pixel is 0.05·z1 + 0.5, so the pixel sensitivity is 0.05 per latent unit too
    assert _m(g)["smoothness"]["mean"] == pytest.approx(0.05, abs=1e-6)
    assert _m(g)["brightness"]["seed_top_rows"]["mean_abs_d_dz1"] == pytest.approx(0.05)


def test_region_decoder_class_shares_equal_areas(toy):
    g = _analyze(toy, "regions").grids[0]
    # x = linspace(-4, 4, 21): 10 columns have z1 < 0 (class 0), 11 have z1 >= 0 (class 1)
    shares = _m(g)["classes"]["shares"]
    assert shares[CLASS_NAMES[0]] == pytest.approx(10 / 21)
    assert shares[CLASS_NAMES[1]] == pytest.approx(11 / 21)
    assert _m(g)["classes"]["classes_present"] == 2
    assert _m(g)["classes"]["ambiguous_share"] == 0.0
    assert (g.labels[:, :10] == 0).all() and (g.labels[:, 10:] == 1).all()
    # brightness jumps only between the two middle columns
    assert g.gradient[:, :9].max() == pytest.approx(0, abs=1e-6)
    assert g.gradient[:, 9:11].min() > 0


def test_constant_decoder_zero_gradient_one_class(toy):
    m = _analyze(toy, "constant")
    g = m.grids[0]
    assert g.gradient.max() == pytest.approx(0, abs=1e-7)
    assert _m(g)["smoothness"]["max"] == pytest.approx(0, abs=1e-7)
    assert _m(g)["classes"]["classes_present"] == 1
    assert max(_m(g)["classes"]["shares"].values()) == 1.0
    assert _m(g)["brightness"]["mean"] == pytest.approx(0.3, abs=1e-6)


def test_model_level_metrics_are_plain_json(toy):
    m = _analyze(toy, "linear")
    raw = m.metrics.to_json()
    text = json.dumps(raw, allow_nan=False)
    assert json.loads(text) == raw
    assert from_json(ModelMetrics, raw) == from_json(ModelMetrics, json.loads(text))
    assert 0 <= raw["embedding"]["knn_accuracy"] <= 1
    assert raw["grids"]["linear_21x21"]["embeddings_inside_share"] == 1.0  # tiny codes
    assert raw["not_available"] == {}


def test_auto_grid_spans_embedding_percentiles(toy):
    cfg = replace(FAST, grids=(GridSpec(steps=(5, 5), mode="auto"),))
    m = _analyze(toy, "linear", cfg)
    lo, hi = np.percentile(m.embeddings[:, 0], [1, 99])
    assert m.grids[0].grid.x[0] == pytest.approx(lo) and m.grids[0].grid.x[-1] == pytest.approx(hi)
    assert _m(m.grids[0])["embeddings_inside_share"] == pytest.approx(0.96, abs=0.03)


# ---------------------------------------------------------------- reports
def _batch_file(toy, tmp_path: Path, names=("good", "broken")) -> Path:
    broken = tmp_path / "broken-model"
    broken.mkdir(exist_ok=True)
    (broken / "encoder.onnx").write_bytes(b"")
    (broken / "decoder.onnx").write_bytes(b"not onnx at all")
    text = f'out = "{tmp_path / "reports"}"\nclassifier = "{toy["root"] / "classifier.onnx"}"\n'
    for name in names:
        b = broken if name == "broken" else toy["regions"]
        text += (
            f'[[comparison]]\nname = "{name}"\nmodel_a = "{toy["linear"]}"\n'
            f'model_b = "{b}"\n[[comparison.grid]]\nsteps = 5\n'
        )
    path = tmp_path / "batch.toml"
    path.write_text(text)
    return path


def _run(toy, path, jobs=1):
    out, comps = read_batch(path, FAST)
    data = toy["data"]
    # the toy dataset is not on disk: hand it to each comparison through the cache-free path
    import latent_atlas.runs as rep

    real = rep.load_dataset
    rep.load_dataset = lambda source=None, **kw: data
    try:
        return out, run_batch(comps, out, jobs=jobs, progress=False)
    finally:
        rep.load_dataset = real


def test_batch_continues_past_a_broken_entry(toy, tmp_path):
    out, (done, failed) = _run(toy, _batch_file(toy, tmp_path))
    assert [r["name"] for r in done] == ["good"]
    assert failed[0][0] == "broken" and "not a valid ONNX file" in failed[0][1]
    report = out / "good"
    assert {p.name for p in report.iterdir()} >= {"report.html", "report.md", "metrics.json"}
    index = (out / "index.html").read_text()
    assert 'href="good/report.html"' in index and "broken" in index
    assert not (out / "broken").exists()
    # the Fréchet distances' sample count is a column of its own (FAST: 300)
    assert ">Fréchet samples</th>" in index and index.count("<td>300</td>") == 2


def test_cli_batch_exit_code_and_error_line(toy, tmp_path, capsys, monkeypatch):
    import latent_atlas.runs as rep
    from latent_atlas.cli import main

    monkeypatch.setattr(rep, "load_dataset", lambda source=None, **kw: toy["data"])
    rc = main(["report", "--batch", str(_batch_file(toy, tmp_path)), "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 2
    assert "error: broken:" in captured.err and "not a valid ONNX file" in captured.err
    assert "good/report.html" in captured.out


def test_script_in_name_is_escaped(toy, tmp_path):
    evil = "<script>alert(1)</script>"
    cfg = ComparisonConfig(
        name="evil", models=(toy["linear"], toy["regions"]),
        classifier=toy["root"] / "classifier.onnx", labels=(evil, "B"),
        analysis=replace(FAST, grids=(GridSpec(steps=(5, 5)),)),
    )  # fmt: skip
    import latent_atlas.runs as rep

    real = rep.load_dataset
    rep.load_dataset = lambda source=None, **kw: toy["data"]
    try:
        rep.run_batch([cfg], tmp_path, progress=False)
    finally:
        rep.load_dataset = real
    html = (tmp_path / "evil" / "report.html").read_text()
    assert evil not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    md = (tmp_path / "evil" / "report.md").read_text()
    assert evil not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_metrics_round_trip_and_html_numbers_come_from_it(toy, tmp_path):
    out, (done, _) = _run(toy, _batch_file(toy, tmp_path, names=("good",)))
    folder = out / "good"
    text = (folder / "metrics.json").read_text()
    metrics = json.loads(text)
    assert json.dumps(metrics, indent=2, sort_keys=True) + "\n" == text
    assert metrics == json.loads(json.dumps(done[0]["metrics"]))
    known = {fmt(v) for v in flatten(metrics).values() if isinstance(v, int | float)}
    html = (folder / "report.html").read_text()
    cells = re.findall(r"<td(?: class=\"best\")?>([-+0-9.e]+)(?:<span|</td>)", html)
    assert len(cells) > 50
    missing = [c for c in cells if c not in known]
    assert missing == []


def test_batch_file_errors(tmp_path):
    def check(text, message):
        path = tmp_path / "b.toml"
        path.write_text(text)
        with pytest.raises(AtlasError, match=message):
            read_batch(path, FAST)

    entry = '[[comparison]]\nname = "x"\nmodel_a = "a"\nmodel_b = "b"\n'
    check("colour = 1\n" + entry, r"unknown key\(s\) \['colour'\]")
    check('[[comparison]]\nname = "x"\nmodel_a = "a"\n', r"missing \['model_b'\]")
    check('[[comparison]]\nname = "x"\nmodels = []\n', "no model; expected one or more")
    check('[[comparison]]\nname = "x"\nmodels = ["a", "b"]\nlabels = ["A"]\n', "1 labels for 2")
    check('[[comparison]]\nname = "x"\nmodels = ["a", "a"]\n', "is given twice")
    check('[[comparison]]\nname = "x"\nmodel_a = 5\nmodel_b = "b"\n', "5 \\(int\\), expected")
    check("comparison = [1]\n", "expected a \\[\\[comparison\\]\\] table")
    check(entry + 'study = "astrology"\n', "unknown study")
    check(entry + entry, "duplicate name 'x'")
    check(entry + "speed = 3\n", r"unknown key\(s\) \['speed'\]")
    check("out = [\n", "not valid TOML")
    check("", "no \\[\\[comparison\\]\\] entries")
    check(entry + "[[comparison.grid]]\nsteps = 0\n", "grid steps 0")
    with pytest.raises(AtlasError, match="not found"):
        read_batch(tmp_path / "nope.toml", FAST)


@pytest.mark.real_data
@pytest.mark.slow
def test_parallel_jobs_match_serial(toy, tmp_path):
    path = _batch_file(toy, tmp_path, names=("one", "broken", "two"))
    # engine workers are fresh processes (spawned, not forked): they load the real test set
    out, (done, failed) = _run(toy, path, jobs=2)
    assert [r["name"] for r in done] == ["one", "two"] and [f[0] for f in failed] == ["broken"]
    assert (out / "one" / "metrics.json").read_bytes() == (
        out / "two" / "metrics.json"
    ).read_bytes().replace(b'"comparison": "two"', b'"comparison": "one"')


def test_markdown_escaping():
    from latent_atlas.analysis.render import md_escape

    assert md_escape("<script>a|b</script> & 'q'") == "&lt;script&gt;a\\|b&lt;/script&gt; &amp; 'q'"


def test_wide_grid_is_classified_at_full_resolution(toy):
    # 80 columns would be downsampled for a mosaic; the analysis must keep 28×28 cells
    cfg = replace(FAST, grids=(GridSpec(steps=(80, 3)),))
    g = _analyze(toy, "regions", cfg).grids[0]
    assert g.grid.cells.shape == (3, 80, 1, 28, 28)
    assert _m(g)["classes"]["shares"][CLASS_NAMES[0]] == pytest.approx(40 / 80)


def test_reconstructions_streamed_a_slice_at_a_time_equal_the_whole_set(toy):
    """``reconstruct`` decodes, scores and classifies a slice of codes at a time: the same
    per-image errors, logits and features as the whole set decoded at once."""
    from latent_atlas.analysis import samples as sa

    from latent_atlas.pipeline import reconstruct

    cache, data = Cache(), toy["data"]
    model = cache.model(toy["regions"], FAST, data.image_shape)
    clf = cache.classifier(toy["root"] / "classifier.onnx", data, FAST)
    x = np.concatenate([data.test.images] * 41)  # many slices, the last one short
    emb = model.encode(x)
    step = np.lcm(min(64, model.decoder.max_batch), min(64, clf.max_batch))
    assert len(x) > step and len(x) % step != 0
    (mse, bce), logits, feats = reconstruct(model, clf, x, emb, 64)
    whole = model.decode(emb, 64)
    mse_all, bce_all = sa.per_image_errors(x, whole)
    np.testing.assert_array_equal(mse, mse_all)
    np.testing.assert_array_equal(bce, bce_all)
    lg, ft = clf.logits_and_features(whole, 64)
    np.testing.assert_array_equal(logits, lg)
    np.testing.assert_array_equal(feats, ft)
    (mse2, _), none_logits, none_feats = reconstruct(model, None, x, emb, 64)
    np.testing.assert_array_equal(mse2, mse_all)
    assert none_logits is None and none_feats is None


def test_the_samples_flag_and_the_analysis_default_agree():
    from latent_atlas.cli import build_parser
    from latent_atlas.commands import flags

    assert flags.SAMPLES == AnalysisConfig().n_samples == 5000
    args = build_parser().parse_args(["report", "--samples", "10000"])
    assert flags.analysis_config(args).n_samples == 10000
    default = build_parser().parse_args(["report"])
    assert flags.analysis_config(default).n_samples == 5000
    # the range a user may ask for, at its edges (AnalysisConfig itself takes any count >= 2)
    for ok in (1000, 200_000):
        assert (
            flags.analysis_config(
                build_parser().parse_args(["report", "--samples", str(ok)])
            ).n_samples
            == ok
        )
    for bad in (999, 200_001, 3, 0, -5):
        args = build_parser().parse_args(["report", f"--samples={bad}"])
        with pytest.raises(
            AtlasError, match=rf"--samples {bad}: expected an integer from 1000 to 200000"
        ):
            flags.analysis_config(args)


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_real_features_on_several_threads_equal_one_call(toy, workers):
    from latent_atlas.pipeline import real_features

    cfg = replace(FAST, batch_size=16)  # 200 test images: 13 batches, shared out unevenly
    clf = Cache().classifier(toy["root"] / "classifier.onnx", toy["data"], cfg)
    one = real_features(clf, toy["data"], cfg, Cache())
    many = real_features(clf, toy["data"], cfg, Cache(), workers)
    for a, b in zip(one, many, strict=True):
        assert a.shape[0] == 200
        np.testing.assert_array_equal(a, b)
