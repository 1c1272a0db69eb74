"""Seed sweeps: the file, the plan (what counts as finished), and tiny real sweeps through the
local engine and a local Ray instance, which must give the same bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import write_idx_folder
from latent_atlas.toolkit.errors import AtlasError

from latent_atlas.engine import EngineConfig
from latent_atlas.sweep import (
    MANIFEST,
    RUN_FILE,
    RunConfig,
    SweepConfig,
    plan,
    read_sweep,
    run_state,
    run_sweep,
)

TINY = """
seeds = 2
threads = 1
data = "data"
out = "out"
[[config]]
name = "vae"
kind = "vae"
hidden = 16
epochs = 1
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A sweep file beside a tiny IDX dataset (300 train, 100 test images)."""
    root = tmp_path_factory.mktemp("sweep")
    write_idx_folder(root / "data", n_train=300, n_test=100)
    (root / "tiny.toml").write_text(TINY)
    return root / "tiny.toml"


@pytest.fixture(scope="module")
def local_sweep(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    result = run_sweep(read_sweep(tiny, out=out), EngineConfig("local", 2), progress=False)
    assert result.failed == [] and sorted(result.trained) == ["vae-seed0", "vae-seed1"]
    return out


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


# ---------------------------------------------------------------------------- the file
def test_read_sweep(tiny):
    cfg = read_sweep(tiny)
    assert cfg.seeds == (0, 1) and cfg.threads == 1
    assert cfg.out == tiny.parent / "out" and cfg.data == str(tiny.parent / "data")
    assert cfg.configs == (RunConfig("vae", "vae", hidden=16, epochs=1),)
    assert [r.folder for r in cfg.runs()] == ["vae-seed0", "vae-seed1"]
    assert read_sweep(tiny, seeds=5).seeds == (0, 1, 2, 3, 4)
    listed = tiny.parent / "listed.toml"
    listed.write_text(TINY.replace("seeds = 2", "seeds = [1, 2, 3, 4]"))
    assert read_sweep(listed).seeds == (1, 2, 3, 4)


@pytest.mark.parametrize(
    "edit, message",
    [
        (("seeds = 2", "seeds = 0"), "seeds = 0, expected a count in 1..1000"),
        (("seeds = 2", "seeds = [1, 1]"), r"seeds \[1, 1\]: each seed once"),
        (("seeds = 2", "seeds = [-1]"), r"expected integers in 0..2\*\*32-1"),
        (("seeds = 2", 'seeds = "5"'), "expected a count or a list"),
        (("threads = 1", "threads = 0"), "threads = 0: expected an integer in 1..256"),
        (('name = "vae"', 'name = "../x"'), "name '../x': expected 1-64 letters"),
        (('name = "vae"', 'name = ""'), "name '': expected 1-64 letters"),
        (('kind = "vae"', 'kind = "gan"'), "kind 'gan', expected one of vae, ae"),
        (("epochs = 1", "epochs = 0"), "epochs = 0, expected an integer >= 1"),
        (("epochs = 1", "epochs = 1.5"), "epochs = 1.5, expected an integer >= 1"),
        (("epochs = 1", "beta = nan"), "beta = nan, expected a finite number >= 0"),
        (("epochs = 1", "lr = 0"), r"lr = 0, expected a learning rate in \(0, 1\]"),
        (("epochs = 1", "colour = 1"), r"unknown key\(s\) \['colour'\]"),
        (("threads = 1", "speed = 1"), r"unknown key\(s\) \['speed'\]"),
        (('name = "vae"\n', ""), r"missing \['name'\]"),
        (("[[config]]", "[[config]]\n[[config]]"), r"missing \['kind', 'name'\]"),
        (("seeds = 2", "seeds = [\n"), "not valid TOML"),
    ],
)
def test_sweep_file_mistakes_are_one_line(tmp_path, edit, message):
    path = tmp_path / "s.toml"
    path.write_text(TINY.replace(*edit, 1))
    with pytest.raises(AtlasError, match=message):
        read_sweep(path)


def test_config_level_mistakes(tmp_path):
    with pytest.raises(AtlasError, match="no \\[\\[config\\]\\] tables"):
        SweepConfig(configs=(), out=tmp_path)
    vae = RunConfig("vae", "vae")
    with pytest.raises(AtlasError, match="duplicate config name"):
        SweepConfig(configs=(vae, vae), out=tmp_path)
    with pytest.raises(AtlasError, match="not found"):
        read_sweep(tmp_path / "nope.toml")


# ---------------------------------------------------------------------------- finished runs
def _fake_run(folder: Path, record: dict) -> None:
    folder.mkdir(parents=True)
    files = {"encoder.onnx": b"e", "decoder.onnx": b"d", "card.json": b"{}",
             RUN_FILE: json.dumps(record).encode()}  # fmt: skip
    for name, data in files.items():
        (folder / name).write_bytes(data)
    import hashlib

    digests = {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
    (folder / MANIFEST).write_text(json.dumps({"files": digests}))


def test_what_counts_as_finished(tmp_path):
    cfg = SweepConfig(configs=(RunConfig("vae", "vae", epochs=1),), out=tmp_path, seeds=(0, 1, 2))
    runs = cfg.runs()
    sha = "ab" * 32
    _fake_run(tmp_path / "vae-seed0", runs[0].record(sha))
    _fake_run(tmp_path / "vae-seed1", runs[1].record(sha))
    assert run_state(tmp_path / "vae-seed0", runs[0].record(sha)) == "finished"
    assert run_state(tmp_path / "vae-seed2", runs[2].record(sha)) == "absent"
    # a changed file: ours, unfinished, trained again
    (tmp_path / "vae-seed1" / "decoder.onnx").write_bytes(b"changed")
    assert run_state(tmp_path / "vae-seed1", runs[1].record(sha)) == "unfinished"
    todo, finished = plan(cfg, sha)
    assert [r.folder for r in todo] == ["vae-seed1", "vae-seed2"]
    assert [r.folder for r in finished] == ["vae-seed0"]
    # no manifest at all (written last): unfinished
    (tmp_path / "vae-seed0" / MANIFEST).unlink()
    assert run_state(tmp_path / "vae-seed0", runs[0].record(sha)) == "unfinished"


def test_a_folder_that_is_not_this_run_is_refused(tmp_path):
    cfg = SweepConfig(configs=(RunConfig("vae", "vae", epochs=1),), out=tmp_path, seeds=(0,))
    run = cfg.runs()[0]
    other = SweepConfig(configs=(RunConfig("vae", "vae", epochs=2),), out=tmp_path, seeds=(0,))
    _fake_run(tmp_path / "vae-seed0", other.runs()[0].record("ab" * 32))
    with pytest.raises(AtlasError, match="holds a run with other settings \\(config differ"):
        plan(cfg, "ab" * 32)
    with pytest.raises(AtlasError, match="dataset_sha256 differ"):
        plan(other, "cd" * 32)
    shutil.rmtree(tmp_path / "vae-seed0")
    (tmp_path / "vae-seed0").mkdir()
    (tmp_path / "vae-seed0" / "notes.txt").write_text("mine")
    with pytest.raises(AtlasError, match="exists and is not a sweep run"):
        plan(cfg, "ab" * 32)
    assert (tmp_path / "vae-seed0" / "notes.txt").read_text() == "mine"
    assert run.folder == "vae-seed0"


# ---------------------------------------------------------------------------- real sweeps
@pytest.mark.slow
def test_local_sweep_writes_loadable_run_folders(local_sweep):
    from latent_atlas.toolkit.runtime import load, read_manifest

    assert sorted(p.name for p in local_sweep.iterdir()) == [".latent-atlas", "sweep.json",
                                                             "vae-seed0", "vae-seed1"]  # fmt: skip
    for seed in (0, 1):
        folder = local_sweep / f"vae-seed{seed}"
        assert sorted(p.name for p in folder.iterdir()) == [
            ".latent-atlas",
            "card.json",
            "decoder.onnx",
            "encoder.onnx",
            MANIFEST,
            RUN_FILE,
        ]
        model = load(folder)  # hashes checked against the run's manifest, which the runtime
        listed = read_manifest(folder)  # reads: one written by latent-atlas
        assert listed[str((folder / "decoder.onnx").resolve())] == model.decoder.sha256
        assert model.latent_dim == 2 and model.encoder is not None
        card = json.loads((folder / "card.json").read_text())
        assert card["train_config"]["seed"] == seed and card["epochs"] == 1
    a, b = ((local_sweep / f"vae-seed{s}" / "decoder.onnx").read_bytes() for s in (0, 1))
    assert a != b  # two seeds, two models
    summary = json.loads((local_sweep / "sweep.json").read_text())
    assert sorted(summary["runs"]) == ["vae-seed0", "vae-seed1"] and summary["seeds"] == [0, 1]


@pytest.mark.slow
def test_resume_skips_finished_runs(tiny, local_sweep):
    before = _tree(local_sweep)
    result = run_sweep(read_sweep(tiny, out=local_sweep), EngineConfig("local", 2),
                       progress=False)  # fmt: skip
    assert result.trained == [] and sorted(result.skipped) == ["vae-seed0", "vae-seed1"]
    assert _tree(local_sweep) == before  # nothing rewritten (sweep.json: same content)


@pytest.mark.slow
def test_a_failing_run_is_named_and_writes_nothing(tiny, tmp_path):
    cfg = read_sweep(tiny, out=tmp_path / "out")
    # the workers find other data than the parent saw: every run fails, by name
    result = run_sweep(cfg, EngineConfig("local", 2), progress=False, dataset_sha256="0" * 64)
    assert sorted(name for name, _ in result.failed) == ["vae-seed0", "vae-seed1"]
    assert all("expected the same data on every node" in e for _, e in result.failed)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".latent-atlas", "sweep.json"]


@pytest.mark.slow
def test_ray_sweep_gives_the_same_bytes_as_the_local_engine(tiny, local_sweep, ray_local,
                                                            tmp_path):  # fmt: skip
    out = tmp_path / "out"
    result = run_sweep(read_sweep(tiny, out=out), EngineConfig("ray", 2), progress=False)
    assert result.failed == [] and sorted(result.trained) == ["vae-seed0", "vae-seed1"]
    assert ray_local.is_initialized()  # the caller's Ray instance is left running
    for seed in (0, 1):
        a, b = local_sweep / f"vae-seed{seed}", out / f"vae-seed{seed}"
        for name in ("encoder.onnx", "decoder.onnx", RUN_FILE):
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
        # card.json differs only in the wall time it records
        ca, cb = (json.loads((f / "card.json").read_text()) for f in (a, b))
        assert ca.pop("train_seconds") >= 0 and cb.pop("train_seconds") >= 0
        assert ca == cb


# ---------------------------------------------------------------------------- the command
def test_cli_mistakes_are_one_line(tmp_path, capsys):
    from latent_atlas.cli import main

    assert main(["sweep", str(tmp_path / "nope.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"latent-atlas sweep: error: sweep file {tmp_path / 'nope.toml'}: not found"]
    (tmp_path / "s.toml").write_text(TINY)
    assert main(["sweep", str(tmp_path / "s.toml"), "--address", "auto"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--address 'auto': only used with --engine ray" in err[0]
    assert main(["sweep", str(tmp_path / "s.toml"), "--jobs", "0"]) == 2
    assert "--jobs: 0, expected >= 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_resumes_a_finished_sweep(tiny, local_sweep, capsys):
    from latent_atlas.cli import main

    rc = main(["sweep", str(tiny), "--out", str(local_sweep), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "0 trained, 2 already finished, 0 failed" in out


def test_the_shipped_seeds_are_the_example_sweep_finished():
    """`latent-atlas sweep examples/sweep.toml` finds every shipped seed finished (its
    run.json is this run, every file matches its manifest): nothing would be retrained."""
    from conftest import REPO

    cfg = read_sweep(REPO / "examples" / "sweep.toml")
    assert cfg.out.resolve() == (REPO / "artifacts" / "fashion-mnist" / "seeds").resolve()
    fashion = "14410854cf7a289477dcfc7df3f8ec24741e281cdcc425ede0d9a748ca630214"
    todo, finished = plan(cfg, fashion)
    assert todo == [] and len(finished) == 8
