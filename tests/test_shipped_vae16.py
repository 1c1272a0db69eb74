"""The shipped 16-D conv VAE (``artifacts/fashion-mnist/vae16`` = seed 0, and
``seeds/vae16-seed1..4``): the sweep file that trains it, its files against their manifests
and cards, no trace of the exporting machine in them, and — on the real data — an encoder
that gives the posterior's mean and log-variance, ``[N, 16]`` each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import REPO, SHIPPED
from latent_atlas.toolkit.runtime import read_manifest, sha256_file

from latent_atlas.sweep import RUN_FILE, plan, read_sweep, run_state

SWEEP_FILE = REPO / "examples" / "sweep-vae16.toml"
FASHION_SHA256 = "14410854cf7a289477dcfc7df3f8ec24741e281cdcc425ede0d9a748ca630214"
VAE16 = SHIPPED / "vae16"
SEEDS = [SHIPPED / "seeds" / f"vae16-seed{k}" for k in range(1, 5)]
FOLDERS = [VAE16, *SEEDS]
MODEL_FILES = ("encoder.onnx", "decoder.onnx")
# Our metadata keys (export/model_export.py): anything else in a shipped file is a leak.
OUR_KEYS = {"architecture", "class_names", "dataset", "dataset_sha256", "image_shape", "kind",
            "latent_dim", "role", "training_seed"}  # fmt: skip


def test_the_sweep_file_parses():
    cfg = read_sweep(SWEEP_FILE)
    assert cfg.seeds == (0, 1, 2, 3, 4) and cfg.threads == 1 and cfg.data is None
    assert cfg.out.resolve() == (SHIPPED / "seeds").resolve()
    (c,) = cfg.configs
    assert (c.name, c.kind, c.arch, c.latent_dim, c.hidden, c.beta) == (
        "vae16", "vae", "conv", 16, 64, 1.0,
    )  # fmt: skip
    assert c.epochs == 5 and c.train_limit == 0


def test_the_shipped_vae16_is_that_sweep_finished():
    """Seeds 1-4 are finished runs of the sweep file where it writes them (nothing would be
    retrained), and vae16/ holds its seed 0: that run's run.json, every file as listed."""
    cfg = read_sweep(SWEEP_FILE)
    todo, finished = plan(cfg, FASHION_SHA256)
    assert [r.folder for r in finished] == [f"vae16-seed{k}" for k in range(1, 5)]
    assert [r.folder for r in todo] == ["vae16-seed0"]  # moved to vae16/, as the file says
    assert run_state(VAE16, todo[0].record(FASHION_SHA256)) == "finished"
    assert json.loads((VAE16 / RUN_FILE).read_text())["seed"] == 0


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_files_match_manifest_and_card(folder: Path):
    listed = read_manifest(folder)
    card = json.loads((folder / "card.json").read_text())
    assert str((folder / "card.json").resolve()) in listed
    for entry in card["files"]:
        path = folder / entry["file"]
        assert listed[str(path.resolve())] == entry["sha256"] == sha256_file(path)
        assert max(entry["parity_max_abs_diff"].values()) <= 1e-5
    assert [e["file"] for e in card["files"]] == list(MODEL_FILES)
    assert card["model_config"] == {
        "arch": "conv", "beta": 1.0, "hidden": 64, "kind": "vae", "latent_dim": 16,
        "image_shape": [1, 28, 28],
    }  # fmt: skip
    assert card["epochs"] == card["train_config"]["epochs"] == 5
    assert card["metadata"]["dataset_sha256"] == FASHION_SHA256
    seed = 0 if folder == VAE16 else int(folder.name.rpartition("seed")[2])
    assert card["metadata"]["training_seed"] == str(seed)


def test_shipped_vae16_is_small():
    """Five seeds, two ONNX files each: a few MB in the repository and in the wheel."""
    total = sum((f / name).stat().st_size for f in FOLDERS for name in MODEL_FILES)
    assert total < 6_000_000


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_shipped_vae16_onnx_hold_no_trace_of_the_machine(folder: Path):
    """No absolute path, stack trace or doc string of the exporting machine in the files:
    only the graph, the weights and our own metadata keys."""
    for name in MODEL_FILES:
        raw = (folder / name).read_bytes()
        for needle in (b"/work/", b"/root/", b"/home/", b"/tmp/", b"stack_trace", b".py"):
            assert needle not in raw, (name, needle)
        model = onnx.load_from_string(raw)
        assert {p.key for p in model.metadata_props} <= OUR_KEYS
        assert model.doc_string == "" and model.graph.doc_string == ""
        assert all(not n.doc_string and not n.metadata_props for n in model.graph.node)


@pytest.mark.real_data
def test_shipped_vae16_encodes_mean_and_logvar(real_data):
    """The encoder's outputs z and logvar, [N, 16] each, finite; the mean KL to the prior they
    give over the test split is the card's test KL (computed by torch at training time); at
    least a few of the 16 dimensions are active (variance of the means > 0.01)."""
    import latent_atlas

    model = latent_atlas.load(VAE16, provider="cpu")
    assert model.latent_dim == 16 and model.encoder is not None
    assert model.encoder.output_names == ["z", "logvar"]
    images = real_data.test.images
    z, logvar = model.encoder.run(images)
    assert z.shape == logvar.shape == (len(images), 16)
    assert np.isfinite(z).all() and np.isfinite(logvar).all()
    np.testing.assert_array_equal(model.encode(images[:64]), z[:64])  # the code is still z
    z64, lv64 = z.astype(np.float64), logvar.astype(np.float64)
    kl = -0.5 * np.sum(1 + lv64 - z64**2 - np.exp(lv64), axis=1).mean()
    card = json.loads((VAE16 / "card.json").read_text())
    assert kl == pytest.approx(card["test_metrics"]["kl"], rel=1e-4)
    active = int((z.var(axis=0) > 0.01).sum())
    assert 4 <= active <= 16
    decoded = model.decode(z[:8])
    assert decoded.shape == (8, 1, 28, 28)
