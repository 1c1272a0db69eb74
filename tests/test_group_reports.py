"""Reports over groups of models (the seeds of one configuration): intervals across seeds in
metrics.json and both report files, per-seed values folded away, the study judged on groups,
the seed's figure as drawn; --group and [[comparison.group]] mistakes are one line."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from latent_atlas.analysis.uncertainty import mean_interval
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec
from toy_onnx import linear_encoder, region_decoder

from latent_atlas.groups import GroupConfig, expand, parse_group, study_metrics
from latent_atlas.pipeline import AnalysisConfig, Cache, analyze_model
from latent_atlas.runs import ComparisonConfig, run_comparison

SEED = AnalysisConfig(grids=(GridSpec(),), n_samples=300, trust_sample=100,
                      silhouette_sample=150, atlas_steps=16)  # fmt: skip
FOOTWEAR, OTHER = (9, 7), (6, 4)  # Ankle boot / Sneaker; Shirt / Coat


@pytest.fixture(scope="module")
def seeds(toy, tmp_path_factory) -> dict[str, list[Path]]:
    """Three "seeds" per kind: the VAE-like ones draw footwear, the AE-like ones shirts and
    coats, each with its own encoder projection and split."""
    root = tmp_path_factory.mktemp("seeds")
    protos = toy["protos"]
    out: dict[str, list[Path]] = {"vae": [], "ae": []}
    for kind, (a, b) in (("vae", FOOTWEAR), ("ae", OTHER)):
        for k in range(3):
            folder = root / f"{kind}-seed{k}"
            rng = np.random.default_rng(100 * len(kind) + k)
            linear_encoder(folder / "encoder.onnx", rng.normal(0, 0.1, (784, 2)))
            region_decoder(folder / "decoder.onnx", protos[a], protos[b], split=k - 1.0)
            out[kind].append(folder)
    return out


def _cfg(toy, seeds, **kw) -> ComparisonConfig:
    groups = (GroupConfig("VAE", tuple(seeds["vae"])), GroupConfig("AE", tuple(seeds["ae"])))
    return ComparisonConfig(
        "groups", models=(seeds["vae"][0], seeds["ae"][0]), labels=("VAE", "AE"),
        classifier=toy["root"] / "classifier.onnx", study="seed", analysis=SEED, groups=groups,
        **kw,
    )  # fmt: skip


@pytest.fixture(scope="module")
def report(toy, seeds, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "groups"
    run_comparison(_cfg(toy, seeds), out, data=toy["data"])
    return out


def test_metrics_json_holds_every_seed_and_its_interval(report):
    m = json.loads((report / "metrics.json").read_text())
    vae = m["groups"]["VAE"]
    assert vae["members"] == ["vae-seed0", "vae-seed1", "vae-seed2"]
    knn = vae["metrics"]["embedding.knn_accuracy"]
    assert len(knn["per_seed"]) == 3
    iv = mean_interval(knn["per_seed"])
    assert (knn["mean"], knn["low"], knn["high"]) == pytest.approx((iv.mean, iv.low, iv.high))
    assert knn["method"] == "t" and knn["df"] == 2
    # the first seed is the report's own VAE: the same numbers
    assert knn["per_seed"][0] == m["models"]["VAE"]["metrics"]["embedding"]["knn_accuracy"]
    found = m["group_findings"]
    assert len(found) == 10 and all(f["measures"] for f in found)
    # the VAE-like groups draw only footwear: 1.0 of the grid against 0.3 of the data, on
    # every seed — no spread, so no certain verdict from a zero-width interval: the exact test
    # decides, and with 3 seeds (smallest p 1/8, or 1/20 for 3 + 3 splits) it cannot
    assert found[0]["measures"][0]["per_seed"]["VAE"] == pytest.approx([1 / 0.3] * 3)
    assert found[0]["measures"][0]["basis"] == "exact test (no spread)"
    assert found[0]["verdict"] == found[1]["verdict"] == "inconclusive"
    assert found[1]["measures"][0]["test"]["arrangements"] == 20


def test_a_2d_report_numbers_its_dims_from_0_as_the_flags(report):
    """One numbering: a 2-D model's dims are z₀ and z₁ in every sentence and label (the
    seed study's prose included), never z₂; figure bytes inlined in the HTML are left out."""
    html = (report / "report.html").read_text()
    md = (report / "report.md").read_text()
    for text in (html, md):
        text = re.sub(r"data:[^\"')\s]*|<svg.*?</svg>", "", text, flags=re.S)
        assert "z₂" not in text and re.search(r"\bz2\b", text) is None
        assert "z₀" in text  # the study's prose: |∂b/∂z₀|, the z₀ = 4 column
    found = json.loads((report / "metrics.json").read_text())["group_findings"]
    assert all("z₂" not in json.dumps(f, ensure_ascii=False) for f in found)


def test_both_report_files_show_intervals_and_fold_the_seeds(report):
    html = (report / "report.html").read_text()
    md = (report / "report.md").read_text()
    for text in (html, md):
        assert "Metrics across seeds" in text and "Findings on the seed study" in text
        assert "across training seeds" in text
        assert "Per-seed values of every metric" in text
    assert html.count("<details>") == 2  # the two folded tables
    # every verdict: one sentence, its full reasoning folded under it
    verdicts = html.count('<details class="why">')
    assert verdicts >= 10 and html.count("</details>") == 2 + verdicts
    assert 'id="group-per-seed-table"' in html and "VAE: vae-seed2" in html
    figures = {p.name for p in (report / "figures").iterdir()}
    assert {"g0_linear_21x21_as_written.png", "g1_linear_21x21_mosaic.png"} <= figures
    # the forest plot first: inline SVG in the HTML, the file beside report.md
    assert "claims_forest.svg" in figures and "](figures/claims_forest.svg)" in md
    assert html.index('<section id="verdicts">') < html.index('<section id="group-findings">')
    assert '<figure class="svg" id="fig-claims_forest"' in html and "<svg xmlns" in html
    assert md.index("claims_forest.svg") < md.index("Full reasoning")


def test_verdicts_across_seeds_come_before_the_pairs_own(report):
    """The single-pair verdicts (one seed each) follow the verdicts across seeds and say so;
    measures equal on every seed are not listed as intervals (they say nothing about seeds)."""
    html = (report / "report.html").read_text()
    md = (report / "report.md").read_text()
    for text in (html, md):
        across = text.index("claims across training seeds")
        pair = text.index("VAE and AE alone (one seed each)")
        assert across < pair < text.index("Key metrics")
        assert "the verdicts across seeds above are the ones to quote" in text
        # the seeds are named alike in the table of measures and in the per-seed metrics
        assert text.count("VAE: vae-seed2") >= 2 and "VAE #" not in text
        assert "own values, one training seed each; whether a difference holds" in text
    m = json.loads((report / "metrics.json").read_text())["groups"]

    def seeds(label: str, key: str) -> set:
        return set(m[label]["metrics"].get(key, {}).get("per_seed", [None]))

    constant = [k for k in m["VAE"]["metrics"] if len(seeds("VAE", k) | seeds("AE", k)) == 1]
    assert constant, "the toy groups share some constant measure (e.g. the grid's cell count)"
    table = html[html.index('id="group-metrics-table"') :]
    table = table[: table.index("</table>")]
    assert all(f">{k}<" not in table for k in constant)
    assert f"{len(constant)} measures equal on every seed of every group" in html


def test_lean_member_metrics_equal_the_full_analysis(toy, seeds):
    """The default report measures extra seeds only for the study: the same numbers."""
    clf = toy["root"] / "classifier.onnx"
    full = analyze_model(seeds["ae"][1], clf, toy["data"], SEED, Cache()).metrics
    lean = study_metrics(seeds["ae"][1], clf, toy["data"], SEED, Cache())
    assert lean.embedding == full.embedding
    assert lean.grids == full.grids
    # the decoder geometry too (the study's supplementary readings need it for every seed)
    assert lean.geometry is not None and full.geometry is not None and full.geometry.geodesics
    assert lean.geometry == replace(full.geometry, geodesics={})  # less the geodesics
    assert lean.reconstruction is None and "reconstruction" in lean.not_available


def test_lean_groups_report(toy, seeds, tmp_path):
    out = tmp_path / "lean"
    run_comparison(_cfg(toy, seeds, groups_full=False), out, data=toy["data"])
    m = json.loads((out / "metrics.json").read_text())
    # reconstruction is measured for the report's own models, not for the other seeds
    assert m["groups"]["AE"]["metrics"]["reconstruction.mse"]["per_seed"][1:] == [None, None]
    assert "mean" not in m["groups"]["AE"]["metrics"]["reconstruction.mse"]
    assert len(m["group_findings"]) == 10  # with claim 2 read on the class map
    html = (out / "report.html").read_text()
    assert 'id="group-metrics-table"' not in html
    # the geometry across seeds: every seed measured, a reading beside claims 1-3, a table
    share = m["groups"]["AE"]["metrics"]["geometry.top_rows_length_share"]
    assert len(share["per_seed"]) == 3 and None not in share["per_seed"] and "mean" in share
    assert "geometry.separation.footwear.within" in m["groups"]["VAE"]["metrics"]
    readings = {f["label"][0]: f["geometry"] for f in m["group_findings"] if f["geometry"]}
    assert "3" in readings and all("supplementary" in r for r in readings.values())
    # the toy decoders draw flat regions: a class whose codes all decode alike has no spread,
    # so no finite ratio, and its claim no reading
    named = [m["groups"][g]["metrics"].get("geometry.separation.named.ratio", {})
             .get("per_seed", [None]) for g in ("VAE", "AE")]  # fmt: skip
    assert ("2" in readings) == all(v is not None for vs in named for v in vs)
    assert html.count('<p class="muted geometry">Geometry reading') == len(readings)
    assert 'id="group-geometry-table"' in html
    assert "Geometry reading" in (out / "report.md").read_text()


# ---------------------------------------------------------------------------- mistakes
@pytest.mark.parametrize(
    "text, message",
    [
        ("VAE", "expected LABEL=PATTERN"),
        ("=a,b", "expected LABEL=PATTERN"),
        ("VAE=", "expected LABEL=PATTERN"),
        ("VAE=/nonexistent/seed*", "matches no model folder"),
        ("VAE=/tmp", "1 model\\(s\\), expected at least 2"),
        ("VAE=/tmp,/tmp", "given twice"),
    ],
)
def test_group_flag_mistakes(text, message):
    with pytest.raises(AtlasError, match=message):
        parse_group(text)


def test_globs_are_in_natural_order(tmp_path):
    for k in (10, 2, 1):
        (tmp_path / f"vae-seed{k}").mkdir()
    assert [p.name for p in expand(["vae-seed*"], tmp_path)] == [
        "vae-seed1", "vae-seed2", "vae-seed10"]  # fmt: skip


def test_cli_group_report_is_refused_in_one_line(toy, seeds, tmp_path, capsys):
    from latent_atlas.cli import main

    rc = main(["report", "--group", f"VAE={seeds['vae'][0]}", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "expected at least 2" in err[0]
    assert not (tmp_path / "o").exists()


def test_one_group_or_duplicate_labels_are_refused(toy, seeds):
    with pytest.raises(AtlasError, match="one group; expected two or more"):
        replace(_cfg(toy, seeds), groups=(GroupConfig("VAE", tuple(seeds["vae"])),))
    with pytest.raises(AtlasError, match="labelled alike"):
        replace(_cfg(toy, seeds), groups=(GroupConfig("VAE", tuple(seeds["vae"])),
                                         GroupConfig("VAE", tuple(seeds["ae"]))))  # fmt: skip


def test_batch_file_groups(toy, seeds, tmp_path):
    from latent_atlas.batchfile import read_batch

    root = seeds["vae"][0].parent
    path = tmp_path / "b.toml"
    path.write_text(
        f'[[comparison]]\nname = "g"\nstudy = "seed"\n'
        f'  [[comparison.group]]\n  label = "VAE"\n  models = ["{root}/vae-seed*"]\n'
        f'  [[comparison.group]]\n  label = "AE"\n  models = ["{root}/ae-seed0", '
        f'"{root}/ae-seed2"]\n'
    )
    _, (cfg,) = read_batch(path, SEED)
    assert [g.label for g in cfg.groups] == ["VAE", "AE"]
    assert [p.name for p in cfg.groups[0].members] == ["vae-seed0", "vae-seed1", "vae-seed2"]
    assert [p.name for p in cfg.models] == ["vae-seed0", "ae-seed0"]
    assert cfg.display_labels() == ("VAE", "AE")
    path.write_text(path.read_text().replace('label = "AE"', 'label = "AE"\n  colour = 1'))
    with pytest.raises(AtlasError, match="group #2: keys .* expected exactly"):
        read_batch(path, SEED)
