"""export_model on modules we did not write: tuple/dict encoders, flat layouts, a conv VAE,
decoder-only models, the pitfalls of torch.onnx.export's defaults; the folder swap."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from latent_atlas.export import export_model
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.runtime import sha256_file
from one_thread import one_torch_thread  # noqa: F401 (an autouse fixture)
from synthetic_images import gray_dataset
from torch import nn

import latent_atlas


class ExamplesVAE(nn.Module):
    """pytorch/examples' VAE, shrunk: ``encode`` takes flat images (its ``forward`` flattens
    before calling it) and returns (mu, logvar); ``decode`` returns flat images."""

    def __init__(self, pixels: int = 64, latent: int = 2) -> None:
        super().__init__()
        self.pixels = pixels
        self.fc1 = nn.Linear(pixels, 16)
        self.fc21, self.fc22 = nn.Linear(16, latent), nn.Linear(16, latent)
        self.fc3, self.fc4 = nn.Linear(latent, 16), nn.Linear(16, pixels)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.fc1(x))
        return self.fc21(h), self.fc22(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc4(torch.relu(self.fc3(z))))


class Method(nn.Module):
    def __init__(self, owner: nn.Module, name: str) -> None:
        super().__init__()
        self.owner, self.name = owner, name

    def forward(self, x):
        return getattr(self.owner, self.name)(x)


class DictEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 6))

    def forward(self, x):
        h = self.body(x)
        return {"mu": h[:, :3], "logvar": h[:, 3:]}


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _assert_contract(folder: Path, files: list[str]) -> None:
    """Single files with a symbolic batch dimension; manifest hashes match."""
    assert not list(folder.glob("*.data"))
    manifest = json.loads((folder / "manifest.json").read_text())["files"]
    assert set(manifest) == {*files, "card.json"}
    for name in files:
        assert manifest[name] == sha256_file(folder / name)
        proto = onnx.load(folder / name)
        onnx.checker.check_model(proto, full_check=True)
        for value in list(proto.graph.input) + list(proto.graph.output):
            assert value.type.tensor_type.shape.dim[0].dim_param


@pytest.fixture(scope="module")
def examples_vae():
    torch.manual_seed(0)
    return ExamplesVAE().eval()


def test_tuple_encoder_flat_layout(examples_vae, tmp_path):
    done = export_model(  # bound methods are wrapped as modules
        tmp_path / "m", decoder=examples_vae.decode, encoder=examples_vae.encode, code=0,
        image_shape=(1, 8, 8),
    )  # fmt: skip
    assert done.files == ["encoder.onnx", "decoder.onnx"]
    _assert_contract(tmp_path / "m", done.files)
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    assert card == done.card and card["input_layouts"] == {"encoder": "flat"}
    for f in card["files"]:
        assert set(f["parity_max_abs_diff"]) == {"1", "7", "513"}
        assert max(f["parity_max_abs_diff"].values()) <= 1e-5
    x = np.random.default_rng(5).random((11, 1, 8, 8), dtype=np.float32)
    z = _session(tmp_path / "m" / "encoder.onnx").run(None, {"image": x})[0]
    with torch.no_grad():
        mu = examples_vae.encode(torch.from_numpy(x.reshape(11, 64)))[0].numpy()
        ref = examples_vae.decode(torch.from_numpy(z)).numpy().reshape(11, 1, 8, 8)
    np.testing.assert_allclose(z, mu, atol=1e-5)
    image = _session(tmp_path / "m" / "decoder.onnx").run(None, {"z": z})[0]
    assert image.shape == (11, 1, 8, 8)  # flat [N, 64] came back as images
    np.testing.assert_allclose(image, ref, atol=1e-5)
    meta = {p.key: p.value for p in onnx.load(tmp_path / "m" / "decoder.onnx").metadata_props}
    assert meta["role"] == "decoder" and meta["latent_dim"] == "2"
    assert meta["image_shape"] == "1,8,8"


def test_tuple_encoder_needs_code(examples_vae, tmp_path):
    with pytest.raises(AtlasError, match=r"tuple of 2 outputs; no code was given.*0\.\.1"):
        export_model(
            tmp_path / "m", decoder=Method(examples_vae, "decode"),
            encoder=Method(examples_vae, "encode"), image_shape=(1, 8, 8),
        )  # fmt: skip
    assert not (tmp_path / "m").exists()


def test_dict_encoder(tmp_path):
    torch.manual_seed(1)
    encoder = DictEncoder().eval()
    decoder = nn.Sequential(nn.Linear(3, 64), nn.Sigmoid(), nn.Unflatten(1, (1, 8, 8)))
    with pytest.raises(AtlasError, match=r"keys \['mu', 'logvar'\]; code='z' is not one"):
        export_model(tmp_path / "m", decoder=decoder, encoder=encoder, code="z",
                     image_shape=(1, 8, 8))  # fmt: skip
    done = export_model(
        tmp_path / "m", decoder=decoder, encoder=encoder, code="mu", image_shape=(1, 8, 8)
    )
    x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    z = _session(done.folder / "encoder.onnx").run(None, {"image": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(z, encoder(torch.from_numpy(x))["mu"].numpy(), atol=1e-5)


def _outputs(path: Path) -> list[tuple[str, list]]:
    proto = onnx.load(path)
    return [(o.name, [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim])
            for o in proto.graph.output]  # fmt: skip


def test_tuple_encoder_keeps_logvar(examples_vae, tmp_path):
    """``logvar=1`` for an encoder returning (mu, logvar): encoder.onnx has the outputs z and
    logvar, [N, d] each, both equal to torch's; the runtime still reads z as the code."""
    from latent_atlas.toolkit.runtime import load

    done = export_model(
        tmp_path / "m", decoder=examples_vae.decode, encoder=examples_vae.encode, code=0,
        logvar=1, image_shape=(1, 8, 8),
    )  # fmt: skip
    _assert_contract(done.folder, done.files)
    assert _outputs(done.folder / "encoder.onnx") == [("z", ["batch", 2]), ("logvar", ["batch", 2])]
    x = np.random.default_rng(6).random((9, 1, 8, 8), dtype=np.float32)
    z, logvar = _session(done.folder / "encoder.onnx").run(None, {"image": x})
    with torch.no_grad():
        mu, lv = (t.numpy() for t in examples_vae.encode(torch.from_numpy(x.reshape(9, 64))))
    np.testing.assert_allclose(z, mu, atol=1e-5)
    np.testing.assert_allclose(logvar, lv, atol=1e-5)
    assert not np.allclose(z, logvar)  # two different outputs, not one written twice
    parity = done.card["files"][0]["parity_max_abs_diff"]  # both outputs were compared
    assert done.card["files"][0]["file"] == "encoder.onnx" and max(parity.values()) <= 1e-5
    model = load(done.folder, provider="cpu")
    assert model.latent_dim == 2 and model.encoder.output_names == ["z", "logvar"]
    np.testing.assert_allclose(model.encode(x), mu, atol=1e-5)


def test_dict_encoder_keeps_logvar_by_key(tmp_path):
    torch.manual_seed(1)
    encoder = DictEncoder().eval()
    decoder = nn.Sequential(nn.Linear(3, 64), nn.Sigmoid(), nn.Unflatten(1, (1, 8, 8)))
    done = export_model(tmp_path / "m", decoder=decoder, encoder=encoder, code="mu",
                        logvar="logvar", image_shape=(1, 8, 8))  # fmt: skip
    x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    z, logvar = _session(done.folder / "encoder.onnx").run(None, {"image": x})
    with torch.no_grad():
        ref = encoder(torch.from_numpy(x))
    np.testing.assert_allclose(z, ref["mu"].numpy(), atol=1e-5)
    np.testing.assert_allclose(logvar, ref["logvar"].numpy(), atol=1e-5)


class _WideLogvar(nn.Module):
    def forward(self, x):
        h = x.flatten(1)
        return h[:, :2], h[:, :3]  # a "log-variance" of another width than the code


@pytest.mark.parametrize(("encoder", "code", "logvar", "message"), [
    ("single", None, 0, "returns one tensor, but logvar=0 was given"),
    ("tuple", 0, 0, "logvar=0 names the same output as the code"),
    ("tuple", 0, 2, r"logvar=2 is not one; expected logvar= an index 0\.\.1"),
    ("dict", "mu", "log_var", r"logvar='log_var' is not one; expected logvar= one of"),
    ("wide", 0, 1, r"logvar of shape \[3, 3\] but code of shape \[3, 2\]"),
    (None, None, 1, "logvar: given without an encoder"),
])  # fmt: skip
def test_logvar_mistakes_are_one_line(examples_vae, tmp_path, encoder, code, logvar, message):
    modules = {"single": nn.Sequential(nn.Flatten(), nn.Linear(64, 2)),
               "tuple": Method(examples_vae, "encode"), "dict": DictEncoder(),
               "wide": _WideLogvar(), None: None}  # fmt: skip
    latent = 3 if encoder == "dict" else 2
    decoder = nn.Sequential(nn.Linear(latent, 64), nn.Sigmoid())
    with pytest.raises(AtlasError, match=message):
        export_model(tmp_path / "m", decoder=decoder, encoder=modules[encoder], code=code,
                     logvar=logvar, latent_dim=latent, image_shape=(1, 8, 8))  # fmt: skip
    assert not (tmp_path / "m").exists()


class ConvVAE(nn.Module):
    """A user's conv VAE, latent 8, channels-last decoder output."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
            nn.Linear(16 * 4 * 4, 16),
        )  # fmt: skip
        self.dec = nn.Sequential(
            nn.Linear(8, 16 * 4 * 4), nn.ReLU(), nn.Unflatten(1, (16, 4, 4)),
            nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1), nn.Sigmoid(),
        )  # fmt: skip

    def encode(self, x):
        mu, logvar = self.enc(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z):
        return self.dec(z).permute(0, 2, 3, 1)  # [N, H, W, C], as some code bases do

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar


def test_conv_vae_latent_8_trained_a_few_steps(tmp_path):
    from synthetic_images import coloured_shapes

    torch.manual_seed(0)
    x, _ = coloured_shapes(64, size=16)
    model = ConvVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt = torch.from_numpy(x)
    for _ in range(5):
        x_hat, mu, logvar = model(xt)
        loss = nn.functional.binary_cross_entropy(x_hat.permute(0, 3, 1, 2), xt)
        loss = loss - 0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    done = export_model(
        tmp_path / "conv", encoder=Method(model, "encode"), decoder=Method(model, "decode"),
        code=0, image_shape=(3, 16, 16), class_names=["a", "b", "c", "d"],
    )  # fmt: skip
    _assert_contract(done.folder, done.files)
    z = _session(done.folder / "encoder.onnx").run(None, {"image": x[:9]})[0]
    assert z.shape == (9, 8)
    out = _session(done.folder / "decoder.onnx").run(None, {"z": z})[0]
    with torch.no_grad():
        ref = model.decode(torch.from_numpy(z)).permute(0, 3, 1, 2).numpy()
    assert out.shape == (9, 3, 16, 16)  # channels-last came back as [N, C, H, W]
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert json.loads(done.card["metadata"]["class_names"]) == ["a", "b", "c", "d"]


def test_decoder_only_needs_latent_dim(tmp_path):
    decoder = nn.Sequential(nn.Linear(4, 64), nn.Sigmoid())
    with pytest.raises(AtlasError, match="latent_dim: None; expected an integer >= 1"):
        export_model(tmp_path / "d", decoder=decoder, image_shape=(1, 8, 8))
    done = export_model(tmp_path / "d", decoder=decoder, image_shape=(1, 8, 8), latent_dim=4)
    assert done.files == ["decoder.onnx"]
    _assert_contract(done.folder, done.files)


def test_decoder_logits_refused(tmp_path):
    decoder = nn.Sequential(nn.Linear(2, 64), nn.Unflatten(1, (1, 8, 8)))  # no Sigmoid
    with pytest.raises(AtlasError, match="outputs values in .*end the decoder with a Sigmoid"):
        export_model(tmp_path / "d", decoder=decoder, image_shape=(1, 8, 8), latent_dim=2)
    assert not (tmp_path / "d").exists()


def test_decoder_of_wrong_size_refused(tmp_path):
    decoder = nn.Sequential(nn.Linear(2, 81), nn.Sigmoid())
    with pytest.raises(AtlasError, match=r"output of shape \[3, 81\].*\[N, 1, 8, 8\]"):
        export_model(tmp_path / "d", decoder=decoder, image_shape=(1, 8, 8), latent_dim=2)


def test_default_exporter_pitfalls_are_avoided(tmp_path):
    """torch 2.14's torch.onnx.export, given a file name and no dynamic_shapes, writes the
    weights beside the model (.onnx.data) and fixes the batch dimension; export_model writes
    one file with a symbolic batch dimension from the same module."""
    decoder = nn.Sequential(nn.Linear(2, 64), nn.Sigmoid(), nn.Unflatten(1, (1, 8, 8))).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(decoder, (torch.zeros(3, 2),), tmp_path / "default.onnx", verbose=False)
    naive = onnx.load(tmp_path / "default.onnx", load_external_data=False)
    external = [t for t in naive.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:  # the pitfall as it stands in this torch
        assert (tmp_path / "default.onnx.data").exists()
    assert naive.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    done = export_model(tmp_path / "m", decoder=decoder, image_shape=(1, 8, 8), latent_dim=2)
    _assert_contract(done.folder, done.files)
    z = np.zeros((600, 2), np.float32)
    assert _session(done.folder / "decoder.onnx").run(None, {"z": z})[0].shape == (600, 1, 8, 8)


def test_constant_batch_reshape_refused(tmp_path):
    class Fixed(nn.Module):
        def forward(self, z):
            return torch.sigmoid(z.repeat(1, 32).view(3, 1, 8, 8))

    with pytest.raises(AtlasError, match="batch"):
        export_model(tmp_path / "m", decoder=Fixed(), image_shape=(1, 8, 8), latent_dim=2)
    assert not (tmp_path / "m").exists()


def test_classifier_logits_only_with_dataset(tmp_path):
    data = gray_dataset()
    torch.manual_seed(0)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    x, y = torch.from_numpy(data.train.images), torch.from_numpy(data.train.labels)
    opt = torch.optim.Adam(clf.parameters(), lr=0.05)
    for _ in range(30):
        loss = nn.functional.cross_entropy(clf(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    decoder = nn.Sequential(nn.Linear(2, 64), nn.Sigmoid())
    done = export_model(tmp_path / "m", decoder=decoder, latent_dim=2, classifier=clf.eval(),
                        image_shape=(1, 8, 8), dataset=data)  # fmt: skip
    assert done.files == ["decoder.onnx", "classifier.onnx"]
    with torch.no_grad():
        expected = float((clf(torch.from_numpy(data.test.images)).argmax(1).numpy()
                          == data.test.labels).mean())  # fmt: skip
    assert done.card["test_metrics_onnx"]["accuracy"] == pytest.approx(expected)
    assert expected > 0.9  # the halves are easy: a broken accuracy would not reach this
    proto = onnx.load(done.folder / "classifier.onnx")
    assert [o.name for o in proto.graph.output] == ["logits"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["dataset"] == "halves" and json.loads(meta["class_names"]) == ["left", "right"]
    with pytest.raises(AtlasError, match="2 logits, but there are 3 class names"):
        export_model(tmp_path / "n", decoder=decoder, latent_dim=2, classifier=clf,
                     image_shape=(1, 8, 8), class_names=["a", "b", "c"])  # fmt: skip


def test_failed_export_leaves_the_previous_folder(examples_vae, tmp_path):
    done = export_model(tmp_path / "m", decoder=Method(examples_vae, "decode"), latent_dim=2,
                        image_shape=(1, 8, 8))  # fmt: skip
    before = {p.name: p.read_bytes() for p in done.folder.iterdir()}
    with pytest.raises(AtlasError):
        export_model(tmp_path / "m", decoder=Method(examples_vae, "decode"), latent_dim=3,
                     image_shape=(1, 8, 8))  # fmt: skip
    assert {p.name: p.read_bytes() for p in done.folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left


def test_gpu_or_float64_modules_are_not_changed(examples_vae, tmp_path):
    decoder = nn.Sequential(nn.Linear(2, 64), nn.Sigmoid()).double()
    export_model(tmp_path / "m", decoder=decoder, latent_dim=2, image_shape=(1, 8, 8))
    assert next(decoder.parameters()).dtype == torch.float64  # exported from a float32 copy


def test_not_a_module_refused(tmp_path):
    with pytest.raises(AtlasError, match="builtin_function_or_method; expected a torch.nn.Module"):
        export_model(tmp_path / "m", decoder=torch.sigmoid, image_shape=(1, 8, 8), latent_dim=2)


def test_public_name():
    assert latent_atlas.export_model is export_model
    assert "export_model" in latent_atlas.__all__


# ---------------------------------------------------------------- latent-atlas export --module
USER_FILE = """
import torch
from torch import nn


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 16)
        self.fc21, self.fc22 = nn.Linear(16, 2), nn.Linear(16, 2)
        self.fc3, self.fc4 = nn.Linear(2, 16), nn.Linear(16, 64)

    def encode(self, x):
        h = torch.relu(self.fc1(x))
        return self.fc21(h), self.fc22(h)

    def decode(self, z):
        return torch.sigmoid(self.fc4(torch.relu(self.fc3(z))))


def build_vae():
    return VAE()


def broken():
    raise ValueError("no such size")
"""


@pytest.fixture
def user_model(tmp_path):
    (tmp_path / "my_models.py").write_text(USER_FILE)
    namespace: dict = {}
    exec(compile(USER_FILE, "my_models.py", "exec"), namespace)
    torch.manual_seed(3)
    model = namespace["build_vae"]().eval()
    torch.save(model.state_dict(), tmp_path / "vae.pt")
    return tmp_path, model


def _cli(*args: str) -> tuple[int, list[str]]:
    import contextlib
    import io

    from latent_atlas.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(list(args))
    return rc, [line for line in err.getvalue().splitlines() if line.strip()]


def test_cli_exports_a_user_module(user_model):
    tmp, model = user_model
    rc, err = _cli("export", "--module", f"{tmp}/my_models.py:build_vae", "--weights",
                   f"{tmp}/vae.pt", "--encoder-output", "0", "--image-shape", "1", "8", "8",
                   "--out", f"{tmp}/out")  # fmt: skip
    assert (rc, err) == (0, [])
    _assert_contract(tmp / "out", ["encoder.onnx", "decoder.onnx"])
    x = np.random.default_rng(1).random((5, 1, 8, 8), dtype=np.float32)
    z = _session(tmp / "out" / "encoder.onnx").run(None, {"image": x})[0]
    with torch.no_grad():
        mu = model.encode(torch.from_numpy(x.reshape(5, 64)))[0]
    np.testing.assert_allclose(z, mu, atol=1e-5)
    card = json.loads((tmp / "out" / "card.json").read_text())
    assert card["metadata"]["source"] == "my_models.py:build_vae"
    # with --data: the image shape, class names and parity images come from the dataset
    rc, err = _cli("export", "--module", f"{tmp}/my_models.py:build_vae", "--weights",
                   f"{tmp}/vae.pt", "--encoder-output", "0", "--data", "sklearn:digits",
                   "--out", f"{tmp}/out")  # fmt: skip
    assert (rc, err) == (0, [])
    meta = json.loads((tmp / "out" / "card.json").read_text())["metadata"]
    assert meta["dataset"] == "digits" and meta["image_shape"] == "1,8,8"
    assert json.loads(meta["class_names"]) == [str(k) for k in range(10)]


def test_cli_keeps_a_user_modules_logvar(user_model):
    tmp, model = user_model
    rc, err = _cli("export", "--module", f"{tmp}/my_models.py:build_vae", "--weights",
                   f"{tmp}/vae.pt", "--encoder-output", "0", "--encoder-logvar", "1",
                   "--image-shape", "1", "8", "8", "--out", f"{tmp}/out")  # fmt: skip
    assert (rc, err) == (0, [])
    x = np.random.default_rng(2).random((5, 1, 8, 8), dtype=np.float32)
    z, logvar = _session(tmp / "out" / "encoder.onnx").run(None, {"image": x})
    with torch.no_grad():
        mu, lv = model.encode(torch.from_numpy(x.reshape(5, 64)))
    np.testing.assert_allclose(z, mu.numpy(), atol=1e-5)
    np.testing.assert_allclose(logvar, lv.numpy(), atol=1e-5)
    rc, err = _cli("export", "--encoder-logvar", "1", "--out", f"{tmp}/x")
    assert rc == 2 and err == ["latent-atlas export: error: --encoder-logvar: only with --module"]


@pytest.mark.parametrize(("change", "message"), [
    ({"--module": "{tmp}/my_models.py:nothing"}, "has no function 'nothing'"),
    ({"--module": "{tmp}/my_models.py:broken"}, r"calling it failed \(ValueError: no such size\)"),
    ({"--module": "{tmp}/absent.py:build_vae"}, "absent.py: not found"),
    ({"--module": "{tmp}/my_models.py"}, "expected FILE.py:FUNCTION"),
    ({"--encoder-output": None}, "returns a tuple of 2 outputs; no code was given"),
    ({"--encoder-output": "mu"}, "code='mu' is not one"),
    ({"--encoder-logvar": "0"}, "logvar=0 names the same output as the code"),
    ({"--encoder-logvar": "2"}, "logvar=2 is not one"),
    ({"--encoder-output": None, "--encoder-logvar": "1"},
     "--encoder-logvar 1: given without --encoder-output"),
    ({"--image-shape": None}, "--image-shape: missing"),
    ({"--image-shape": "1 9 9"}, r"fails on images \[N, 1, 9, 9\]"),
    ({"--weights": "{tmp}/pickled.pt"}, r"refused by torch.load\(weights_only=True\)"),
    ({"--weights": "{tmp}/other.pt"}, r"does not fit the module .*missing \['fc1.bias'"),
    ({"--atol": "nan"}, "--atol: nan, expected a finite tolerance"),
])  # fmt: skip
def test_cli_module_export_refuses(user_model, change, message):
    tmp, _ = user_model
    import pickle

    (tmp / "pickled.pt").write_bytes(pickle.dumps({"w": _Evil()}))
    torch.save({"fc1.weight": torch.zeros(16, 64)}, tmp / "other.pt")
    flags = {"--module": f"{tmp}/my_models.py:build_vae", "--weights": f"{tmp}/vae.pt",
             "--encoder-output": "0", "--image-shape": "1 8 8", "--out": f"{tmp}/out"}  # fmt: skip
    flags |= {k: v.format(tmp=tmp) if v else v for k, v in change.items()}
    args = ["export"]
    for flag, value in flags.items():
        if value is not None:
            args += [flag, *value.split(" ")]
    rc, err = _cli(*args)
    assert rc == 2 and len(err) == 1, err
    import re

    assert re.search(message, err[0]), err[0]
    assert "pwned" not in err[0] and not (tmp / "out").exists()


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cli_export_into_a_users_folder_needs_overwrite(user_model):
    """An --out folder latent-atlas did not write is refused (one line naming --overwrite,
    the folder untouched); with --overwrite the export's own files go in and the user's
    other files stay."""
    tmp, _ = user_model
    mine = tmp / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    (mine / "decoder.onnx").write_bytes(b"an old decoder of the user's")
    args = ["export", "--module", f"{tmp}/my_models.py:build_vae", "--weights",
            f"{tmp}/vae.pt", "--encoder-output", "0", "--image-shape", "1", "8", "8",
            "--out", str(mine)]  # fmt: skip
    rc, err = _cli(*args)
    assert rc == 2 and len(err) == 1 and "--overwrite" in err[0], err
    assert sorted(p.name for p in mine.iterdir()) == ["decoder.onnx", "notes.txt"]
    rc, err = _cli(*args, "--overwrite")
    assert (rc, err) == (0, [])
    assert (mine / "decoder.onnx").read_bytes()[:4] != b"an o"  # replaced: same name
    assert (mine / "notes.txt").read_text() == "my notes"  # kept: not the export's
    rc, err = _cli(*args)  # now marked: a second export replaces its own files, keeps notes
    assert (rc, err) == (0, []) and (mine / "notes.txt").read_text() == "my notes"
