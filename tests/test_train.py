from __future__ import annotations

import json
import pickle

import pytest
import torch
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.train import (
    TrainConfig,
    load_trained,
    load_weights,
    train_all,
    train_model,
)

SMALL = dict(epochs=1, classifier_epochs=1, train_limit=300, hidden=64, progress=False)


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
