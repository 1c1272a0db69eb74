"""The model contract's optional log-variance (docs/models.md): an encoder output named
``logvar`` beside the code is read, checked and returned by ``Model.encode_posterior``; encoders
built with onnx.helper and with plain ``torch.onnx.export``, mean only and mean + log-variance."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.runtime import load
from toy_onnx import linear_gaussian, linear_gaussian_folder, linear_gaussian_images, toy_pair


@pytest.fixture(scope="module")
def params():
    return linear_gaussian(latent_dim=4, ignored=(3,))


def _expected_mu(params, images):
    return (images.reshape(len(images), -1) - params["b"]) @ params["A"]


def test_mean_and_logvar_are_read(tmp_path, params):
    model = load(linear_gaussian_folder(tmp_path / "m", params))
    assert model.has_logvar and model.encoder.logvar_index == 1
    images = linear_gaussian_images(params, 7)
    mu, logvar = model.encode_posterior(images, batch_size=3)  # batches that do not divide 7
    np.testing.assert_allclose(mu, _expected_mu(params, images), atol=1e-4)
    assert logvar.shape == (7, 4) and logvar.dtype == np.float32
    np.testing.assert_allclose(logvar, np.tile(params["logvar"], (7, 1)), rtol=1e-5)
    # encode() is unchanged: the code alone
    np.testing.assert_array_equal(model.encode(images), mu)


def test_mean_only_encoder_gives_none(tmp_path, params):
    model = load(linear_gaussian_folder(tmp_path / "m", params, logvar=False))
    assert not model.has_logvar
    mu, logvar = model.encode_posterior(linear_gaussian_images(params, 3))
    assert logvar is None and mu.shape == (3, 4)
    plain = load(toy_pair(tmp_path / "toy"))  # the toys of every other test: mean only
    assert plain.encode_posterior(np.zeros((2, 1, 28, 28), np.float32))[1] is None


@pytest.mark.parametrize("name", ["logvar", "log_var", "LogVar"])
def test_documented_names(tmp_path, params, name):
    model = load(linear_gaussian_folder(tmp_path / "m", params, logvar_name=name))
    assert model.has_logvar


def test_an_output_of_another_name_is_not_a_logvar(tmp_path, params):
    model = load(linear_gaussian_folder(tmp_path / "m", params, logvar_name="sigma"))
    assert not model.has_logvar  # read as an extra output, ignored: the contract names it


def test_logvar_first_still_finds_the_code(tmp_path, params):
    folder = linear_gaussian_folder(tmp_path / "m", params)
    enc = onnx.load(folder / "encoder.onnx")
    outs = list(enc.graph.output)
    del enc.graph.output[:]
    enc.graph.output.extend(outs[::-1])  # (logvar, mu)
    onnx.save(enc, folder / "encoder.onnx")
    model = load(folder)
    assert model.encoder.logits_index == 1 and model.encoder.logvar_index == 0
    images = linear_gaussian_images(params, 2)
    mu, logvar = model.encode_posterior(images)
    np.testing.assert_allclose(mu, _expected_mu(params, images), atol=1e-4)
    assert logvar is not None


def test_logvar_of_the_wrong_width_is_refused_at_load(tmp_path, params):
    folder = linear_gaussian_folder(tmp_path / "m", params)
    enc = onnx.load(folder / "encoder.onnx")
    # a [N, d+1] log-variance: concatenate one more column
    enc.graph.node.append(onnx.helper.make_node("Concat", ["lv0", "lv0_1"], ["logvar"], axis=1))
    for node in enc.graph.node:
        if node.op_type == "Add" and "logvar" in node.output:
            node.output[0] = "lv0"
    enc.graph.node.append(onnx.helper.make_node("Slice", ["lv0", "s0", "s1", "ax"], ["lv0_1"]))
    enc.graph.initializer.extend([onnx.numpy_helper.from_array(np.array([v], np.int64), n)
                                  for n, v in (("s0", 0), ("s1", 1), ("ax", 1))])  # fmt: skip
    out = enc.graph.output[1]
    out.type.tensor_type.shape.dim[1].dim_value = 5
    # the nodes must stay in topological order
    nodes = list(enc.graph.node)
    del enc.graph.node[:]
    enc.graph.node.extend(nodes[:-2] + [nodes[-1], nodes[-2]])
    onnx.save(enc, folder / "encoder.onnx")
    with pytest.raises(AtlasError, match=r"'logvar' has shape \['N', 5\]; expected the log-var"):
        load(folder)


def test_non_finite_logvar_is_refused_with_the_fix(tmp_path, params):
    bad = dict(params, logvar=np.array([0.0, np.inf, 0.0, 0.0]))
    model = load(linear_gaussian_folder(tmp_path / "m", bad))
    with pytest.raises(AtlasError, match=r"'logvar' is NaN or inf for 3 of 3 images.*clamp"):
        model.encode_posterior(linear_gaussian_images(params, 3))
    # every command that encodes reads it too (a cold try's 2-D report ignored a NaN logvar)
    with pytest.raises(AtlasError, match=r"'logvar' is NaN or inf for 3 of 3 images.*clamp"):
        model.encode(linear_gaussian_images(params, 3))


def test_only_a_logvar_output_is_refused(tmp_path, params):
    folder = linear_gaussian_folder(tmp_path / "m", params)
    enc = onnx.load(folder / "encoder.onnx")
    del enc.graph.output[0]
    onnx.save(enc, folder / "encoder.onnx")
    with pytest.raises(AtlasError, match="only output 'logvar' is a log-variance"):
        load(folder)


@pytest.mark.slow
@pytest.mark.parametrize("with_logvar", [False, True])
def test_plain_torch_onnx_export(tmp_path, with_logvar):
    """A user's own VAE encoder from plain torch.onnx.export (dynamo, dynamic batch, one file),
    mean only and (mu, logvar) with output_names=["mu", "logvar"]."""
    torch = pytest.importorskip("torch")

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 16))
            self.mu, self.logvar = torch.nn.Linear(16, 6), torch.nn.Linear(16, 6)

        def forward(self, x):
            h = torch.relu(self.body(x))
            return (self.mu(h), self.logvar(h)) if with_logvar else self.mu(h)

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(6, 784)

        def forward(self, z):
            return torch.sigmoid(self.lin(z)).view(-1, 1, 28, 28)

    folder = tmp_path / "mine"
    folder.mkdir()
    enc, dec = Encoder().eval(), Decoder().eval()
    batch = torch.export.Dim("batch")
    names = ["mu", "logvar"] if with_logvar else ["mu"]
    for module, example, path, inp, outs in (
        (enc, torch.rand(3, 1, 28, 28), folder / "encoder.onnx", "image", names),
        (dec, torch.zeros(3, 6), folder / "decoder.onnx", "z", ["image"]),
    ):
        prog = torch.onnx.export(module, (example,), dynamo=True, input_names=[inp],
                                 output_names=outs, dynamic_shapes=({0: batch},))  # fmt: skip
        onnx.save(prog.model_proto, path, save_as_external_data=False)
    model = load(folder)
    assert model.has_logvar is with_logvar
    x = torch.rand(5, 1, 28, 28)
    mu, logvar = model.encode_posterior(x.numpy())
    with torch.no_grad():
        want = enc(x)
    if with_logvar:
        np.testing.assert_allclose(mu, want[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(logvar, want[1].numpy(), atol=1e-5)
    else:
        assert logvar is None
        np.testing.assert_allclose(mu, want.numpy(), atol=1e-5)
