from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from conftest import SHIPPED
from latent_atlas.export.onnx_export import PARITY_BATCHES, check_dynamic_batch, export_one, to_onnx
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.models import Autoencoder, AutoencoderConfig, MeanEncoder
from latent_atlas.toolkit.runtime import load_model, sha256_file


@pytest.fixture(scope="module")
def tiny_vae():
    torch.manual_seed(0)
    return Autoencoder(AutoencoderConfig(kind="vae", hidden=32)).eval()


def test_export_round_trip(tiny_vae, tmp_path):
    x = np.random.default_rng(0).random((max(PARITY_BATCHES), 1, 28, 28), dtype=np.float32)
    meta = {"role": "encoder", "kind": "vae", "latent_dim": "2", "image_shape": "1,28,28"}
    info = export_one(MeanEncoder(tiny_vae), x, "image", ["z"], meta, tmp_path / "encoder.onnx")
    assert set(info["parity_max_abs_diff"]) == {"1", "7", "513"}
    assert max(info["parity_max_abs_diff"].values()) <= 1e-5
    assert info["sha256"] == sha256_file(tmp_path / "encoder.onnx")
    assert not list(tmp_path.glob("*.data"))  # one self-contained file
    model = load_model(tmp_path / "encoder.onnx")
    assert model.role == "encoder" and model.latent_dim == 2
    # a fixed batch dimension would have been refused by load_model
    assert model.metadata["kind"] == "vae" and model.layout == "NCHW"
    # dynamic batch: any N runs, and the mean code has no randomness
    z = model(x[:11])
    assert z.shape == (11, 2)
    np.testing.assert_array_equal(z, model(x[:11]))
    with torch.no_grad():
        ref = MeanEncoder(tiny_vae)(torch.from_numpy(x[:11])).numpy()
    np.testing.assert_allclose(z, ref, atol=1e-5)
    proto = onnx.load(tmp_path / "encoder.onnx")
    assert not any(n.op_type.startswith("Random") for n in proto.graph.node)


def test_fixed_batch_is_detected(tiny_vae):
    proto = to_onnx(tiny_vae.decoder, torch.zeros(3, 2), "z", ["image"])
    check_dynamic_batch(proto, "ok")
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 3
    with pytest.raises(AtlasError, match="fixed batch size 3"):
        check_dynamic_batch(proto, "decoder.onnx")


def test_parity_failure_stops_export(tiny_vae, tmp_path):
    z = np.random.default_rng(0).normal(size=(513, 2)).astype(np.float32)

    class Drifting(torch.nn.Module):
        """Exports the decoder, but torch's output (the reference) is shifted afterwards."""

        def __init__(self):
            super().__init__()
            self.dec = tiny_vae.decoder
            self.shift = 0.0

        def forward(self, x):
            return self.dec(x) + self.shift

    module = Drifting()
    import latent_atlas.export.onnx_export as ex

    real = ex.to_onnx

    def export_then_drift(*args, **kwargs):
        proto = real(*args, **kwargs)
        module.shift = 1e-3
        return proto

    ex.to_onnx = export_then_drift
    try:
        with pytest.raises(AtlasError, match="differs from torch"):
            export_one(module, z, "z", ["image"], {"role": "decoder"}, tmp_path / "d.onnx")
    finally:
        ex.to_onnx = real
    assert not (tmp_path / "d.onnx").exists()


@pytest.mark.real_data
def test_shipped_artifacts_reproduce_their_cards(real_data):
    from latent_atlas.toolkit.runtime import load, load_classifier

    manifest = json.loads((SHIPPED / "manifest.json").read_text())["files"]
    for rel, digest in manifest.items():
        assert sha256_file(SHIPPED / rel) == digest, rel
    for kind in ("vae", "ae"):
        pair = load(SHIPPED / kind, provider="cpu")
        assert pair.encoder.metadata["dataset_sha256"] == real_data.sha256
        assert pair.decoder.metadata["kind"] == kind and pair.decoder.latent_dim == 2
    clf = load_classifier(SHIPPED / "classifier" / "classifier.onnx", 10, provider="cpu")
    card = json.loads((SHIPPED / "classifier" / "card.json").read_text())
    logits = clf(real_data.test.images)
    accuracy = float((logits.argmax(1) == real_data.test.labels).mean())
    assert accuracy == pytest.approx(card["test_metrics_onnx"]["accuracy"], abs=5e-4)
    assert accuracy >= 0.92


def test_conv_autoencoder_exports_and_rebuilds(tmp_path):
    from latent_atlas.export.onnx_export import torch_decoder_from_onnx

    torch.manual_seed(0)
    model = Autoencoder(AutoencoderConfig(kind="ae", arch="conv", hidden=32)).eval()
    z = np.random.default_rng(0).normal(size=(max(PARITY_BATCHES), 2)).astype(np.float32)
    meta = {"role": "decoder", "kind": "ae", "latent_dim": "2", "architecture": "conv"}
    export_one(model.decoder, z, "z", ["image"], meta, tmp_path / "decoder.onnx")
    decoder = load_model(tmp_path / "decoder.onnx")
    assert decoder(z[:5]).shape == (5, 1, 28, 28)
    rebuilt = torch_decoder_from_onnx(tmp_path / "decoder.onnx")
    with torch.no_grad():
        np.testing.assert_allclose(
            rebuilt(torch.from_numpy(z[:5])).numpy(), decoder(z[:5]), atol=1e-5
        )
