"""--figure-format svg|png|pdf for the standalone figures (grid, analyze): each format's file
is what it says, the same figure gives the same bytes, one flag builder serves both commands."""

from __future__ import annotations

import pytest
from toy_onnx import toy_pair

from latent_atlas.commands import flags

MAGIC = {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF"}


@pytest.mark.slow  # imports matplotlib
def test_the_flag_lists_what_the_plots_can_write():
    from latent_atlas.analysis.plots import FIGURE_FORMATS

    assert flags.FIGURE_FORMATS == FIGURE_FORMATS


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["svg", "pdf"])
def test_grid_writes_the_mosaic_in_the_format_asked(tmp_path, capsys, fmt):
    from latent_atlas.cli import main

    toy_pair(tmp_path / "toy")
    outs = []
    for run in ("a", "b"):
        rc = main(["grid", "--model", str(tmp_path / "toy"), "--out", str(tmp_path / run),
                   "--steps", "5", "--no-progress", "--figure-format", fmt])  # fmt: skip
        assert rc == 0
        (path,) = (tmp_path / run).glob("toy_*")
        assert path.name == f"toy_linear_5x5.{fmt}"
        outs.append(path.read_bytes())
    assert outs[0].startswith(MAGIC[fmt]) and outs[0] == outs[1]  # no date: reproducible
    if fmt == "svg":  # text stays text (selectable, searchable), the cells an embedded image
        assert b"toy decoder" in outs[0] and b"<image" in outs[0]


def test_an_unknown_format_is_one_line(tmp_path, capsys):
    from latent_atlas.cli import main

    for command in ("grid", "analyze"):
        args = ["--model", "m", "--out", str(tmp_path / "x"), "--figure-format", "tiff"]
        rc = main([command, *args])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "invalid choice: 'tiff'" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_analyze_sections_draw_in_the_format_asked(toy):
    from latent_atlas.analysis.render import figures_of
    from latent_atlas.toolkit.grid import GridSpec

    from latent_atlas import api
    from latent_atlas.pipeline import AnalysisConfig
    from latent_atlas.sections import build_sections

    cfg = AnalysisConfig(grids=(GridSpec(steps=(5, 5)),), n_samples=100, trust_sample=60,
                         silhouette_sample=60, atlas_steps=0)  # fmt: skip
    models = api.analyze([toy["linear"]], data=toy["data"], classifier=None, config=cfg)
    data = toy["data"]
    figs = figures_of(build_sections(models, data.class_names, data.test.labels,
                                     figure_format="pdf"))  # fmt: skip
    assert figs and all(f.png.startswith(MAGIC["pdf"]) for f in figs)
