"""Batch files run `geometry` and `traverse` entries like the CLI (the same files, on the local
engine and on Ray), a bad entry fails alone with one line, and every flag of `report`,
`geometry` and `traverse` can be given in a batch file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from geometry_onnx import affine_decoder
from latent_atlas.toolkit.errors import AtlasError

from latent_atlas.batchfile import (
    ANALYSIS_KEYS,
    BATCH_KEYS,
    ENTRY_KEYS,
    GRID_KEYS,
    REPORT_FLAG_KEYS,
    command_keys,
    command_parser,
    read_batch_file,
)
from latent_atlas.cli import build_parser, main
from latent_atlas.engine import EngineConfig
from latent_atlas.pipeline import AnalysisConfig
from latent_atlas.runs import run_batch

FAST = AnalysisConfig(n_samples=300, trust_sample=100, silhouette_sample=200, atlas_steps=32,
                      geometry_graph=16)  # fmt: skip


def _decoder(tmp_path: Path) -> Path:
    a = np.random.default_rng(3).normal(0, 0.01, (784, 2))
    return affine_decoder(tmp_path / "models" / "affine.onnx", a)


GEOMETRY_FLAGS = ["--steps", "5", "--graph-steps", "8", "--points", "6",
                  "--path", "0", "0", "1", "1", "--path", "-1", "0", "1", "0"]  # fmt: skip
GEOMETRY_ENTRY = """
[[geometry]]
name = "geo"
model = "models/affine.onnx"
steps = 5
graph_steps = 8
points = 6
path = [[0, 0, 1, 1], [-1, 0, 1, 0]]
"""
BAD_ENTRIES = """
[[geometry]]
name = "bad-value"
model = "models/affine.onnx"
graph_steps = 1

[[geometry]]
name = "bad-key"
model = "models/affine.onnx"
colour = "red"

[[traverse]]
name = "bad-model"
model = "models/nowhere"
"""


def _same_outputs(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir() if not p.name.startswith("."))
    assert names == sorted(p.name for p in b.iterdir() if not p.name.startswith("."))
    assert any(n.endswith(".npz") for n in names) and any(n.endswith("_paths.png") for n in names)
    for name in names:
        if name.endswith(".npz"):  # a zip's entries carry their write time: compare arrays
            with np.load(a / name) as x, np.load(b / name) as y:
                assert sorted(x.files) == sorted(y.files)
                for k in x.files:
                    np.testing.assert_array_equal(x[k], y[k])
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_a_geometry_entry_writes_what_the_cli_writes_and_a_bad_entry_fails_alone(tmp_path, capsys):
    model = _decoder(tmp_path)
    cli_out = tmp_path / "cli"
    assert main(["geometry", "--model", str(model), *GEOMETRY_FLAGS, "--out", str(cli_out)]) == 0
    batch = tmp_path / "batch.toml"
    batch.write_text('out = "reports"\n' + BAD_ENTRIES + GEOMETRY_ENTRY)
    capsys.readouterr()
    rc = main(["report", "--batch", str(batch), "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 2
    _same_outputs(cli_out, tmp_path / "reports" / "geo")
    assert "geo: " in out and "(geometry, " in out and "index:" not in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 3, lines
    by_name = {line.split(": error: ")[1].split(":")[0]: line for line in lines}
    assert "graph steps 1" in by_name["bad-value"]
    assert "unknown key(s) ['colour']" in by_name["bad-key"]
    assert "nowhere" in by_name["bad-model"]
    for name in ("bad-value", "bad-key", "bad-model"):
        assert not (tmp_path / "reports" / name).exists()


@pytest.mark.slow
def test_a_geometry_entry_on_worker_processes_writes_the_same(tmp_path):
    model = _decoder(tmp_path)
    assert main(["geometry", "--model", str(model), *GEOMETRY_FLAGS,
                 "--out", str(tmp_path / "cli")]) == 0  # fmt: skip
    batch = tmp_path / "batch.toml"
    batch.write_text(BAD_ENTRIES + GEOMETRY_ENTRY)
    b = read_batch_file(batch, FAST)
    done, failed = run_batch(b.comparisons, tmp_path / "jobs", progress=False,
                             engine=EngineConfig("local", 2), commands=b.commands)  # fmt: skip
    assert [r["name"] for r in done] == ["geo"] and len(failed) == 3
    _same_outputs(tmp_path / "cli", tmp_path / "jobs" / "geo")


@pytest.mark.slow
def test_a_geometry_entry_on_ray_writes_the_same(tmp_path, ray_local):
    model = _decoder(tmp_path)
    assert main(["geometry", "--model", str(model), *GEOMETRY_FLAGS,
                 "--out", str(tmp_path / "cli")]) == 0  # fmt: skip
    batch = tmp_path / "batch.toml"
    batch.write_text(GEOMETRY_ENTRY + BAD_ENTRIES)
    b = read_batch_file(batch, FAST)
    done, failed = run_batch(b.comparisons, tmp_path / "ray", progress=False,
                             engine=EngineConfig("ray", 2), commands=b.commands)  # fmt: skip
    assert [r["name"] for r in done] == ["geo"] and {f[0] for f in failed} == {
        "bad-value", "bad-key", "bad-model"}  # fmt: skip
    _same_outputs(tmp_path / "cli", tmp_path / "ray" / "geo")


def test_a_traverse_entry_writes_what_the_cli_writes(toy, tmp_path):
    x = (toy["data"].test.images[:, 0] * 255).round().astype(np.uint8)
    y = toy["data"].test.labels
    np.savez(tmp_path / "toy.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    folder = toy["linear"]
    flags = ["--k", "2", "--steps", "3", "--between", "0", "5", "--classifier", "none",
             "--threshold", "0"]  # fmt: skip
    assert main(["traverse", "--model", str(folder), "--data", str(tmp_path / "toy.npz"),
                 *flags, "--out", str(tmp_path / "cli")]) == 0  # fmt: skip
    batch = tmp_path / "batch.toml"
    batch.write_text(f'data = "toy.npz"\nclassifier = "none"\n[[traverse]]\nname = "dims"\n'
                     f'model = "{folder}"\nk = 2\nsteps = 3\nbetween = [0, 5]\n'
                     "threshold = 0\n")  # fmt: skip
    b = read_batch_file(batch, FAST)
    done, failed = run_batch([], tmp_path / "batch", progress=False, commands=b.commands)
    assert failed == [] and done[0]["kind"] == "traverse"
    names = sorted(p.name for p in (tmp_path / "cli").iterdir() if not p.name.startswith("."))
    assert done[0]["files"] == names and any(n.startswith(folder.name) for n in names)
    a, c = tmp_path / "cli", tmp_path / "batch" / "dims"
    json_name = next(n for n in names if n.endswith(".json"))
    assert json.loads((a / json_name).read_text()) == json.loads((c / json_name).read_text())
    for n in names:
        if n.endswith(".png"):
            assert (a / n).read_bytes() == (c / n).read_bytes()


# ---------------------------------------------------------------------------- every flag
def _dests(parser) -> set[str]:
    return {a.dest for a in parser._actions if a.option_strings and a.dest != "help"}


def test_every_report_flag_has_its_place_in_a_batch_file():
    """A new flag of `latent-atlas report` fails this until REPORT_FLAG_KEYS says where it
    goes in a batch file, and every place named is a key the batch file reader takes."""
    report = build_parser()._subparsers._group_actions[0].choices["report"]  # type: ignore[union-attr]
    assert _dests(report) == set(REPORT_FLAG_KEYS)
    for dest, key in REPORT_FLAG_KEYS.items():
        if key is None:  # a flag of the batch's own command line
            continue
        if key.startswith("grid."):
            assert key[5:] in GRID_KEYS, dest
        elif key.startswith("file."):
            assert key[5:] in BATCH_KEYS, dest
        else:
            assert key in ENTRY_KEYS, dest


@pytest.mark.parametrize("kind", ["geometry", "traverse"])
def test_every_flag_of_a_command_is_a_key_of_its_entry(kind):
    cli = build_parser()._subparsers._group_actions[0].choices[kind]  # type: ignore[union-attr]
    assert _dests(cli) - {"out"} == set(command_keys(kind))
    assert _dests(command_parser(kind)) == _dests(cli)


def test_the_newer_report_flags_reach_a_comparisons_analysis(tmp_path):
    """--threshold, --k, --plane-images, --plane images A B C and the runtime flags, as keys
    of a [[comparison]] entry and of its grid table."""
    batch = tmp_path / "b.toml"
    batch.write_text('[[comparison]]\nname = "x"\nmodels = ["a", "b"]\nthreshold = 0.05\n'
                     "k = 3\nplane_images = [4, 5, 6]\ngradient_threshold = 0.5\n"
                     'provider = "cpu"\nthreads = 2\nbatch_size = 64\nsamples = 1000\n'
                     '[[comparison.grid]]\nsteps = 9\nmode = "auto"\nplane = "images"\n'
                     "images = [1, 2, 3]\n")  # fmt: skip
    [cfg] = read_batch_file(batch, FAST).comparisons
    a = cfg.analysis
    assert (a.active_threshold, a.traverse_k, a.plane_images) == (0.05, 3, (4, 5, 6))
    assert (a.gradient_threshold, a.provider, a.threads, a.batch_size) == (0.5, "cpu", 2, 64)
    assert a.n_samples == 1000  # the smallest a user may ask for
    [spec] = a.grids
    assert (spec.plane, spec.images, spec.steps) == ("images", (1, 2, 3), (9, 9))
    assert set(ANALYSIS_KEYS) <= ENTRY_KEYS


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("k = 0\n", "--k: 0"),
        ("threshold = -1\n", "--threshold"),
        ('k = "many"\n', "k = an integer"),
        ("plane_images = [1, 2]\n", "plane_images"),
        ("samples = 999\n", r"comparison #1 \('x'\): samples = 999: expected an integer from 1000"),
        ("samples = 200001\n", "samples = 200001: expected an integer from 1000 to 200000"),
        ("samples = 2.5\n", "samples = 2.5: expected an integer"),
        ("samples = true\n", "samples = True: expected an integer"),
    ],
)
def test_bad_analysis_keys_are_one_line(tmp_path, extra, match):
    batch = tmp_path / "b.toml"
    batch.write_text('[[comparison]]\nname = "x"\nmodels = ["a", "b"]\n' + extra)
    with pytest.raises(AtlasError, match=match):
        read_batch_file(batch, FAST)


def test_an_entry_without_a_name_says_so(tmp_path):
    """Cold try: `[[geometry]]` without `name` said "None (NoneType), expected name = a string"."""
    batch = tmp_path / "b.toml"
    batch.write_text('[[geometry]]\nmodel = "m"\n')
    with pytest.raises(AtlasError, match=r"geometry #1: no name; expected name = a string"):
        read_batch_file(batch, FAST)
