from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
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


# ---------------------------------------------------------------- our train → export path
def _trained(tmp_path, data, arch="mlp", models=("vae", "ae", "classifier")):
    from latent_atlas.toolkit.train import TrainConfig, train_all

    cfg = TrainConfig(models=models, arch=arch, epochs=1, classifier_epochs=1, hidden=32,
                      threads=1, progress=False)  # fmt: skip
    train_all(data, cfg, tmp_path / "runs")
    return tmp_path / "runs"


def _folder_bytes(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_rgb_conv_train_then_export(tmp_path):
    from latent_atlas.export.trained import ExportConfig, export_trained
    from synthetic_images import shapes_dataset

    data = shapes_dataset()
    runs = _trained(tmp_path, data, arch="conv")
    cards = export_trained(data, ExportConfig(runs, tmp_path / "art"))
    art = tmp_path / "art"
    manifest = json.loads((art / "manifest.json").read_text())["files"]
    assert sorted(manifest) == [
        "ae/card.json", "ae/decoder.onnx", "ae/encoder.onnx", "classifier/card.json",
        "classifier/classifier.onnx", "vae/card.json", "vae/decoder.onnx", "vae/encoder.onnx",
    ]  # fmt: skip
    for rel, digest in manifest.items():
        assert sha256_file(art / rel) == digest
    meta = {p.key: p.value for p in onnx.load(art / "vae" / "decoder.onnx").metadata_props}
    assert meta["image_shape"] == "3,32,32" and meta["dataset"] == "shapes"
    assert meta["architecture"] == "conv" and meta["role"] == "decoder"
    import onnxruntime as ort

    dec = ort.InferenceSession(
        str(art / "vae" / "decoder.onnx"), providers=["CPUExecutionProvider"]
    )
    assert dec.run(None, {"z": np.zeros((2, 2), np.float32)})[0].shape == (2, 3, 32, 32)
    clf = cards["classifier"]
    assert clf["test_metrics_onnx"]["accuracy"] == pytest.approx(
        clf["test_metrics"]["accuracy"], abs=1 / len(data.test)
    )  # fmt: skip
    assert clf["model_config"]["image_shape"] == [3, 32, 32]


def test_truncated_second_checkpoint_leaves_previous_artifacts(tmp_path):
    """Issue 9, item 4: the folder is swapped in only when every model passed."""
    from latent_atlas.export.trained import ExportConfig, export_trained
    from synthetic_images import gray_dataset

    data = gray_dataset()
    runs = _trained(tmp_path, data, models=("vae", "ae"))
    cfg = ExportConfig(runs, tmp_path / "art")
    export_trained(data, cfg)
    before = _folder_bytes(tmp_path / "art")
    weights = runs / "ae" / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(AtlasError, match=r"ae/weights.pt: refused by torch.load"):
        export_trained(data, cfg)
    assert _folder_bytes(tmp_path / "art") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art", "runs"]  # no temp folder


def test_export_keeps_what_other_commands_put_in_its_folder(tmp_path):
    """`latent-atlas export` replaces artifacts/<data>/ as a whole, but the shipped layout also
    holds seeds/ (a sweep) and vae-beta4/ (another export) there: they stay, with their bytes."""
    from latent_atlas.export.trained import ExportConfig, export_trained
    from latent_atlas.toolkit.atomic import write_text
    from synthetic_images import gray_dataset

    data = gray_dataset()
    runs = _trained(tmp_path, data, models=("vae",))
    cfg = ExportConfig(runs, tmp_path / "art")
    export_trained(data, cfg)
    write_text(tmp_path / "art" / "seeds" / "groups.json", "{}")  # another command's output
    (tmp_path / "art" / "notes.txt").write_text("mine")
    export_trained(data, cfg)
    assert (tmp_path / "art" / "seeds" / "groups.json").read_text() == "{}"
    assert (tmp_path / "art" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "art" / "vae" / "decoder.onnx").is_file()


def test_trained_vae_exports_its_logvar_and_the_ae_does_not(tmp_path):
    """Our VAE's encoder.onnx has the outputs z (first, the mean, as before) and logvar,
    [N, d] each and equal to the torch model's; the AE's has z alone."""
    from latent_atlas.export.trained import ExportConfig, export_trained
    from latent_atlas.toolkit.train import load_trained
    from synthetic_images import gray_dataset

    data = gray_dataset()
    runs = _trained(tmp_path, data, models=("vae", "ae"))
    export_trained(data, ExportConfig(runs, tmp_path / "art"))
    x = data.test.images[:6]
    outputs = {}
    for kind in ("vae", "ae"):
        proto = onnx.load(tmp_path / "art" / kind / "encoder.onnx")
        outputs[kind] = [o.name for o in proto.graph.output]
        dims = [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
                for o in proto.graph.output]  # fmt: skip
        assert all(d == ["batch", 2] for d in dims)
    assert outputs == {"vae": ["z", "logvar"], "ae": ["z"]}
    session = ort.InferenceSession(str(tmp_path / "art" / "vae" / "encoder.onnx"),
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    z, logvar = session.run(None, {"image": x})
    model, _ = load_trained(runs / "vae")
    with torch.no_grad():
        mu, lv = model.eval().encode(torch.from_numpy(x))
    np.testing.assert_allclose(z, mu.numpy(), atol=1e-5)
    np.testing.assert_allclose(logvar, lv.numpy(), atol=1e-5)
    pair = load_model(tmp_path / "art" / "vae" / "encoder.onnx")
    assert pair.latent_dim == 2 and pair.output_names == ["z", "logvar"]
    np.testing.assert_allclose(pair(x), mu.numpy(), atol=1e-5)  # the code is still z


def test_export_refuses_another_dataset(tmp_path):
    import dataclasses

    from latent_atlas.export.trained import ExportConfig, export_trained
    from synthetic_images import gray_dataset

    data = gray_dataset()
    runs = _trained(tmp_path, data, models=("ae",))
    other = dataclasses.replace(data, sha256="8" * 64, source="elsewhere")
    with pytest.raises(AtlasError, match="trained on the dataset with sha256 777777777777…"):
        export_trained(other, ExportConfig(runs, tmp_path / "art"))
    assert not (tmp_path / "art").exists()
    with pytest.raises(AtlasError, match="no trained model"):
        export_trained(data, ExportConfig(tmp_path / "nothing", tmp_path / "art"))


def test_export_is_reproducible_and_leaks_no_paths(tmp_path):
    """Two exports of the same weights are byte-identical, and the files hold none of the
    exporter's stack traces (absolute source paths, line numbers)."""
    from latent_atlas.export.trained import ExportConfig, export_trained
    from synthetic_images import gray_dataset

    data = gray_dataset()
    runs = _trained(tmp_path, data, models=("vae", "classifier"))
    export_trained(data, ExportConfig(runs, tmp_path / "a"))
    export_trained(data, ExportConfig(runs, tmp_path / "b"))
    a, b = _folder_bytes(tmp_path / "a"), _folder_bytes(tmp_path / "b")
    onnx_files = [k for k in a if k.endswith(".onnx")]
    assert len(onnx_files) == 3 and all(a[k] == b[k] for k in onnx_files)
    repo = str(Path(__file__).resolve().parent.parent).encode()
    for k in onnx_files:
        assert repo not in a[k] and b"stack_trace" not in a[k] and b".py" not in a[k]


@pytest.mark.parametrize(("atol", "rtol", "message"), [
    (float("nan"), 1e-5, "--atol: nan, expected a finite tolerance >= 0"),
    (1e-5, -1.0, "--rtol: -1.0"),
    (float("inf"), 1e-5, "--atol: inf"),
])  # fmt: skip
def test_export_config_refuses(tmp_path, atol, rtol, message):
    from latent_atlas.export.trained import ExportConfig

    with pytest.raises(AtlasError, match=message):
        ExportConfig(tmp_path / "runs", tmp_path / "out", atol, rtol)
    with pytest.raises(AtlasError, match="the same folder as --runs"):
        ExportConfig(tmp_path / "runs", tmp_path / "runs")


@pytest.mark.real_data
def test_shipped_digits_artifacts():
    """artifacts/digits: trained by `latent-atlas train --data sklearn:digits`, exported by
    `latent-atlas export --data sklearn:digits`; small, and the classifier reaches ≥ 0.95."""
    from latent_atlas.toolkit.data import load_dataset
    from latent_atlas.toolkit.runtime import load_classifier

    import latent_atlas
    from latent_atlas.shipped import shipped

    folder = shipped("digits")
    data = load_dataset("sklearn:digits", train=False)
    manifest = json.loads((folder / "manifest.json").read_text())["files"]
    assert sorted(manifest) == [
        "ae/card.json", "ae/decoder.onnx", "ae/encoder.onnx", "classifier/card.json",
        "classifier/classifier.onnx", "vae/card.json", "vae/decoder.onnx", "vae/encoder.onnx",
    ]  # fmt: skip
    for rel, digest in manifest.items():
        assert sha256_file(folder / rel) == digest, rel
    assert sum((folder / rel).stat().st_size for rel in manifest) < 1_000_000
    for kind in ("vae", "ae"):
        model = latent_atlas.load(folder / kind, provider="cpu")
        assert tuple(model.image_shape) == (1, 8, 8) and model.latent_dim == 2
        assert model.decoder.metadata["dataset_sha256"] == data.sha256
        card = json.loads((folder / kind / "card.json").read_text())
        assert card["train_config"]["epochs"] == 323 and card["train_config"]["hidden"] == 128
    clf = load_classifier(folder / "classifier" / "classifier.onnx", 10, provider="cpu")
    accuracy = float((clf(data.test.images).argmax(1) == data.test.labels).mean())
    card = json.loads((folder / "classifier" / "card.json").read_text())
    assert accuracy == pytest.approx(card["test_metrics_onnx"]["accuracy"], abs=1e-9)
    assert accuracy >= 0.95


def test_every_shipped_model_is_checked_against_its_manifest():
    """Each shipped model folder (seeds included) has a manifest the runtime reads — one
    written by latent-atlas, in the folder or its artifact folder — listing its files' sha256."""
    import hashlib

    from conftest import REPO
    from latent_atlas.toolkit.runtime import read_manifest

    folders = sorted(p.parent for p in (REPO / "artifacts").rglob("decoder.onnx"))
    assert len(folders) >= 5  # fashion-mnist vae, ae, vae-beta4 (and seeds); digits vae, ae
    for folder in folders:
        listed = read_manifest(folder)
        for name in ("decoder.onnx", "encoder.onnx"):
            path = folder / name
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            assert listed.get(str(path.resolve())) == digest, path
