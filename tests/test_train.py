from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.models import Autoencoder, Classifier
from latent_atlas.toolkit.train import (
    MAX_EPOCHS,
    TrainConfig,
    channel_stats,
    default_epochs,
    default_hidden,
    load_trained,
    load_weights,
    train_all,
    train_model,
)
from one_thread import one_torch_thread  # noqa: F401 (an autouse fixture)
from synthetic_images import gray_dataset, shapes_dataset

SMALL = dict(epochs=1, classifier_epochs=1, train_limit=300, hidden=64, progress=False)
# One torch thread: on a busy 2-core machine, two threads of tiny models spin-wait for each
# other (measured 50× slower: 10 s instead of 0.2 s for 20 epochs of 90 images).
FAST = dict(threads=1, progress=False)


@pytest.mark.real_data
def test_one_epoch_smoke_and_reload(real_data, tmp_path):
    records = train_all(real_data, TrainConfig(**SMALL), tmp_path)
    assert set(records) == {"vae", "ae", "classifier"}
    vae = records["vae"]
    assert vae.dataset_sha256 == real_data.sha256 and vae.train_images == 300
    assert len(vae.history) == 1 and vae.test_metrics["kl"] > 0
    # 300 images, one epoch: well above chance (0.1), still far from trained
    assert 0.2 < records["classifier"].test_metrics["accuracy"] < 0.95
    saved = json.loads((tmp_path / "ae" / "train.json").read_text())
    assert saved["test_metrics"] == records["ae"].test_metrics
    model, _ = load_trained(tmp_path / "ae")
    x = torch.from_numpy(real_data.test.images[:4])
    assert model(x)[0].shape == (4, 1, 28, 28)


@pytest.mark.real_data
def test_same_seed_same_metrics(real_data):
    cfg = TrainConfig(models=("vae",), **SMALL)
    _, a = train_model("vae", real_data, cfg)
    _, b = train_model("vae", real_data, cfg)
    _, c = train_model("vae", real_data, TrainConfig(models=("vae",), seed=1, **SMALL))
    assert a.test_metrics == b.test_metrics
    assert a.test_metrics != c.test_metrics


@pytest.mark.real_data
def test_fashion_mnist_defaults_are_the_shipped_settings(real_data):
    """The dataset-sized defaults give Fashion-MNIST what the shipped models were trained
    with, and its pixel statistics round to the constants its classifier always used."""
    cfg = TrainConfig().for_dataset(real_data.image_shape, len(real_data.train))
    assert (cfg.hidden, cfg.epochs, cfg.classifier_epochs) == (512, 50, 15)
    assert channel_stats(real_data.train.images) == ((0.286,), (0.353,))


# ---------------------------------------------------------------- sizes that follow the data
@pytest.mark.parametrize(
    ("shape", "hidden"),
    [((1, 28, 28), 512), ((1, 8, 8), 128), ((3, 32, 32), 512), ((1, 4, 4), 64),
     ((1, 8, 16), 256), ((1, 16, 16), 512)],
)  # fmt: skip
def test_default_hidden(shape, hidden):
    assert default_hidden(shape) == hidden


def test_default_epochs():
    assert default_epochs(50, 60_000) == 50  # Fashion-MNIST: the shipped settings
    assert default_epochs(15, 60_000) == 15
    assert default_epochs(50, 59_000) == 51  # 50.42: rounded up
    assert default_epochs(50, 15_000) == 100  # 4× smaller: 2× the epochs
    assert default_epochs(50, 240_000) == 25
    assert (default_epochs(50, 1442), default_epochs(15, 1442)) == (323, 97)  # the digits
    assert default_epochs(50, 1) == 12_248  # 50 × √60000 = 12247.4
    assert default_epochs(10**6, 1) == MAX_EPOCHS
    cfg = TrainConfig(epochs=3, hidden=8).for_dataset((1, 8, 8), 15_000)
    assert (cfg.epochs, cfg.hidden, cfg.classifier_epochs) == (3, 8, 30)  # set ones stay


def test_default_threads_and_restore():
    from latent_atlas.toolkit.train import default_threads, torch_threads

    assert default_threads((1, 8, 8)) == 1 and default_threads((1, 27, 28)) == 1
    assert default_threads((1, 28, 28)) == 0 and default_threads((3, 32, 32)) == 0
    assert TrainConfig(threads=2).for_dataset((1, 8, 8), 10).threads == 2  # given: kept
    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before


def test_channel_stats_known_answers():
    x = np.zeros((4, 3, 2, 2), np.float32)
    x[:, 0] = 0.5  # constant: std 0, replaced by 1
    x[:2, 1] = 1.0  # half the images white: mean 0.5, std 0.5
    x[:, 2, 0, :] = 1.0  # top row white: mean 0.5, std 0.5
    assert channel_stats(x) == ((0.5, 0.5, 0.5), (1.0, 0.5, 0.5))
    rng = np.random.default_rng(0)
    y = rng.random((5000, 1, 3, 3), dtype=np.float32)  # chunked over 4096 images
    mean, std = channel_stats(y)
    assert mean[0] == round(float(y.mean(dtype=np.float64)), 4)
    assert std[0] == round(float(y.std(dtype=np.float64)), 4)


# ---------------------------------------------------------------- config validation
BAD = [
    ("lr", math.nan, "--lr: nan, expected a learning rate in"),
    ("lr", 1e30, r"--lr: 1e\+30"),
    ("lr", 0.0, "--lr: 0.0"),
    ("lr", 1.0000001, "--lr: 1.0000001"),
    ("beta", math.nan, "--beta: nan, expected a finite KL weight >= 0"),
    ("beta", -0.1, "--beta: -0.1"),
    ("beta", math.inf, "--beta: inf"),
    ("seed", -1, "--seed: -1, expected an integer in 0..4294967295"),
    ("seed", 2**32, "--seed: 4294967296"),
    ("threads", -1, "--threads: -1, expected >= 0"),
    ("train_limit", -5, "--train-limit: -5, expected >= 0"),
    ("epochs", 0, "--epochs: 0, expected an integer in 1..1000000"),
    ("classifier_epochs", 0, "--classifier-epochs: 0"),
    ("hidden", 1, "--hidden: 1, expected an integer in 2..16384"),
    ("latent_dim", 0, "--latent-dim: 0"),
    ("latent_dim", 1025, "--latent-dim: 1025"),
    ("batch_size", 0, "--batch-size: 0, expected >= 1"),
    ("epochs", True, "--epochs: True"),
    ("epochs", 2.0, "--epochs: 2.0"),
    ("lr", "0.1", "--lr: '0.1'"),
    ("models", (), "--models: \\[\\], expected one or more"),
    ("models", ("vae", "vae"), "each once"),
    ("models", ("gan",), "--models: \\['gan'\\]"),
    ("models", "vae", "--models: 'vae', expected a list"),
    ("arch", "transformer", "--arch: 'transformer', expected one of mlp, conv"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD, ids=[f"{f}={v!r}" for f, v, _ in BAD])
def test_config_refuses(field, value, message):
    with pytest.raises(AtlasError, match=message):
        TrainConfig(**{field: value})


def test_config_accepts_the_edges():
    TrainConfig(lr=1.0, beta=0.0, seed=2**32 - 1, threads=0, train_limit=0, hidden=2,
                latent_dim=1024, epochs=MAX_EPOCHS, models=["ae"])  # fmt: skip
    assert TrainConfig(models=["ae", "vae"]).models == ("ae", "vae")  # a TOML list


# ---------------------------------------------------------------- any image shape
@pytest.mark.slow
def test_rgb_conv_models_one_epoch(tmp_path):
    data = shapes_dataset()
    cfg = TrainConfig(arch="conv", epochs=1, classifier_epochs=1, hidden=32, **FAST)
    records = train_all(data, cfg, tmp_path)
    assert records["vae"].model_config["image_shape"] == [3, 32, 32]
    clf = records["classifier"]
    assert clf.model_config["classes"] == 4 and len(clf.model_config["mean"]) == 3
    assert clf.model_config["mean"] == list(channel_stats(data.train.images)[0])
    assert 0 <= clf.test_metrics["accuracy"] <= 1
    assert clf.train_config["classifier_epochs"] == 1 and clf.train_config["hidden"] == 32
    vae, _ = load_trained(tmp_path / "vae")
    assert isinstance(vae, Autoencoder) and vae.cfg.image_shape == (3, 32, 32)
    x = torch.from_numpy(data.test.images[:5])
    assert vae(x)[0].shape == (5, 3, 32, 32)
    classifier, record = load_trained(tmp_path / "classifier")
    assert isinstance(classifier, Classifier) and classifier.mean == tuple(clf.model_config["mean"])
    with torch.no_grad():  # reloaded, it gives the accuracy recorded at training time
        acc = (classifier(torch.from_numpy(data.test.images)).argmax(1).numpy()
               == data.test.labels).mean()  # fmt: skip
    assert acc == pytest.approx(record.test_metrics["accuracy"])


def test_small_gray_mlp_learns(tmp_path):
    data = gray_dataset((1, 8, 8))
    cfg = TrainConfig(models=("classifier", "ae"), epochs=20, classifier_epochs=10, hidden=32,
                      **FAST)  # fmt: skip
    records = train_all(data, cfg, tmp_path)
    assert records["classifier"].test_metrics["accuracy"] == 1.0  # left vs right half
    losses = [h["loss"] for h in records["ae"].history]
    assert losses[-1] < losses[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ae", "classifier"]


def test_no_train_split_refused():
    import dataclasses

    data = dataclasses.replace(gray_dataset(), train=None)
    with pytest.raises(AtlasError, match="loaded without its train split"):
        train_model("vae", data, TrainConfig(progress=False))


# ---------------------------------------------------------------- checkpoints
class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_payload_refused(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_bytes(pickle.dumps({"w": _Evil()}))
    with pytest.raises(AtlasError, match="refused"):
        load_weights(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(AtlasError, match="not found"):
        load_weights(tmp_path / "nope.pt")


def test_checkpoint_of_another_model_refused(tmp_path):
    data = gray_dataset()
    train_all(data, TrainConfig(models=("ae",), epochs=1, hidden=16, **FAST), tmp_path)
    record = json.loads((tmp_path / "ae" / "train.json").read_text())
    record["model_config"]["hidden"] = 32
    (tmp_path / "ae" / "train.json").write_text(json.dumps(record))
    with pytest.raises(AtlasError, match="does not fit the model in train.json"):
        load_trained(tmp_path / "ae")


def test_legacy_classifier_record_loads(tmp_path):
    """train.json files written before models had an image shape are Fashion-MNIST's."""
    from latent_atlas.toolkit.train import TrainRecord, build_model

    legacy = TrainRecord("classifier", {"classes": 10}, {}, 0, "", 1, [], {}, 0.0, "")
    model = build_model(legacy)
    assert isinstance(model, Classifier)
    assert (model.image_shape, model.mean, model.std) == ((1, 28, 28), (0.2860,), (0.3530,))


def test_cli_train_refuses_a_users_files_before_training(tmp_path, capsys):
    """train --out over files latent-atlas did not write: one line naming --overwrite, before
    any training (no file written); with --overwrite the file is replaced."""
    from latent_atlas.cli import main

    mine = tmp_path / "mine" / "vae"
    mine.mkdir(parents=True)
    (mine / "weights.pt").write_bytes(b"my weights")
    args = ["train", "--data", "sklearn:digits", "--models", "vae", "--epochs", "1",
            "--hidden", "16", "--threads", "1", "--no-progress",
            "--out", str(tmp_path / "mine")]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0] and "weights.pt" in err[0], err
    assert sorted(p.name for p in mine.iterdir()) == ["weights.pt"]
    assert (mine / "weights.pt").read_bytes() == b"my weights"
    assert main([*args, "--overwrite"]) == 0
    assert (mine / "weights.pt").read_bytes() != b"my weights" and (mine / "train.json").is_file()
