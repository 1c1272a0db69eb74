from __future__ import annotations

import pytest
import torch
from latent_atlas.toolkit.models import (
    Autoencoder,
    AutoencoderConfig,
    Classifier,
    ClassifierWithFeatures,
    MeanEncoder,
    PosteriorEncoder,
    kl,
    reconstruction,
)
from one_thread import one_torch_thread  # noqa: F401 (an autouse fixture)

SHAPES = [(1, 28, 28), (1, 8, 8), (3, 32, 32)]
ODD_SHAPES = [(1, 7, 9), (3, 5, 5), (1, 1, 1)]  # not multiples of 4: the conv pads and crops


@pytest.mark.parametrize("shape", SHAPES + ODD_SHAPES, ids=str)
@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("kind", ["vae", "ae"])
def test_autoencoder_shapes(shape, arch, kind):
    cfg = AutoencoderConfig(kind=kind, arch=arch, latent_dim=3, hidden=16, image_shape=shape)
    model = Autoencoder(cfg)
    x = torch.rand(2, *shape)
    x_hat, mu, logvar = model(x)
    assert x_hat.shape == (2, *shape) and mu.shape == (2, 3)
    assert (logvar is None) == (kind == "ae")
    assert 0 <= x_hat.min() and x_hat.max() <= 1
    assert MeanEncoder(model)(x).shape == (2, 3)
    assert model.decoder(torch.zeros(5, 3)).shape == (5, *shape)


def test_posterior_encoder_gives_mean_and_logvar():
    """The exported VAE encoder: (mu, logvar), the halves of the encoder's last layer, mu
    first; an AE has no log-variance to give."""
    torch.manual_seed(0)
    model = Autoencoder(AutoencoderConfig(kind="vae", arch="conv", latent_dim=4, hidden=16))
    x = torch.rand(3, 1, 28, 28)
    mu, logvar = PosteriorEncoder(model.eval())(x)
    h = model.encoder(x)
    assert torch.equal(mu, h[:, :4]) and torch.equal(logvar, h[:, 4:])
    assert torch.equal(mu, MeanEncoder(model)(x))
    with pytest.raises(ValueError, match="needs a VAE, got kind 'ae'"):
        PosteriorEncoder(Autoencoder(AutoencoderConfig(kind="ae", hidden=16)))


@pytest.mark.parametrize("latent_dim", [2, 5])
def test_latent_dim(latent_dim):
    model = Autoencoder(AutoencoderConfig(latent_dim=latent_dim, hidden=64))
    assert model(torch.rand(3, 1, 28, 28))[1].shape == (3, latent_dim)


def test_conv_pads_only_when_needed():
    # 28, 8 and 32 are multiples of 4: no pad/crop layer, so the parameter names (and the
    # exported graph) of the 28×28 conv models are what they always were.
    plain = Autoencoder(AutoencoderConfig(arch="conv", hidden=16, image_shape=(3, 32, 32)))
    assert "encoder.0.weight" in plain.state_dict()
    assert not any(isinstance(m, torch.nn.ZeroPad2d) for m in plain.modules())
    odd = Autoencoder(AutoencoderConfig(arch="conv", hidden=16, image_shape=(1, 7, 9)))
    assert isinstance(odd.encoder[0], torch.nn.ZeroPad2d)
    assert odd.encoder[0].padding == (0, 3, 0, 1)  # 9 → 12 wide, 7 → 8 high


def test_fashion_mnist_mlp_is_unchanged():
    """The default MLP for 1×28×28: the modules, names and shapes the shipped models have, in
    the order they are created (the seed's init draws depend on it)."""
    model = Autoencoder(AutoencoderConfig(kind="vae"))
    shapes = [(name, tuple(p.shape)) for name, p in model.named_parameters()]
    assert shapes == [
        ("encoder.1.weight", (512, 784)), ("encoder.1.bias", (512,)),
        ("encoder.3.weight", (256, 512)), ("encoder.3.bias", (256,)),
        ("encoder.5.weight", (4, 256)), ("encoder.5.bias", (4,)),
        ("decoder.0.weight", (256, 2)), ("decoder.0.bias", (256,)),
        ("decoder.2.weight", (512, 256)), ("decoder.2.bias", (512,)),
        ("decoder.4.weight", (784, 512)), ("decoder.4.bias", (784,)),
    ]  # fmt: skip
    torch.manual_seed(0)
    a = Autoencoder(AutoencoderConfig(kind="ae"))
    torch.manual_seed(0)
    b = Autoencoder(AutoencoderConfig("ae", "mlp", 2, 512, 1.0, (1, 28, 28)))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_vae_samples_only_in_training():
    torch.manual_seed(0)
    model = Autoencoder(AutoencoderConfig(kind="vae", hidden=64))
    x = torch.rand(2, 1, 28, 28)
    model.eval()
    assert torch.equal(model(x)[0], model(x)[0])
    model.train()
    assert not torch.equal(model(x)[0], model(x)[0])


def test_kl_known_answer():
    # KL(N(mu, s^2) || N(0,1)) = 0.5 (mu^2 + s^2 - 1 - ln s^2); mu=1, s^2=e: 0.5 (1 + e - 1 - 1)
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[1.0, 0.0]])
    assert kl(mu, logvar).item() == pytest.approx(0.5 * (torch.e - 1), rel=1e-6)
    assert kl(torch.zeros(4, 2), torch.zeros(4, 2)).item() == 0


def test_reconstruction_known_answer():
    x = torch.ones(2, 1, 28, 28)
    x_hat = torch.full_like(x, 0.5)
    # -ln(0.5) per pixel, 784 pixels, averaged over 2 images
    assert reconstruction(x_hat, x).item() == pytest.approx(784 * 0.6931472, rel=1e-5)
    # channels count as pixels: 3×8×8 = 192 of them
    rgb = torch.ones(4, 3, 8, 8)
    assert reconstruction(torch.full_like(rgb, 0.5), rgb).item() == pytest.approx(
        192 * 0.6931472, rel=1e-5
    )


@pytest.mark.parametrize("shape", SHAPES + ODD_SHAPES, ids=str)
def test_classifier_shapes(shape):
    c = shape[0]
    model = Classifier(4, shape, (0.5,) * c, (0.25,) * c).eval()
    logits, feats = ClassifierWithFeatures(model)(torch.rand(3, *shape))
    assert logits.shape == (3, 4) and feats.shape == (3, Classifier.FEATURES)


def test_classifier_normalises_per_channel():
    model = Classifier(2, (3, 4, 4), (0.1, 0.5, 0.9), (0.5, 0.25, 0.1))
    x = torch.stack([torch.full((4, 4), v) for v in (0.1, 0.75, 0.8)])[None]
    out = model.normalise(x)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([0.0, 1.0, -1.0]), atol=1e-6)
    gray = Classifier(2, (1, 4, 4), (0.2860,), (0.3530,))
    assert gray.normalise(torch.full((1, 1, 4, 4), 0.2860 + 0.3530))[0, 0, 0, 0].item() == (
        pytest.approx(1.0, abs=1e-6)
    )
    with pytest.raises(ValueError, match="3 entries"):
        Classifier(2, (3, 4, 4), (0.5,), (0.5,))


def test_bad_config_rejected():
    with pytest.raises(ValueError, match="arch must be one of"):
        AutoencoderConfig(arch="transformer")
    with pytest.raises(ValueError, match="kind must be"):
        AutoencoderConfig(kind="gan")
    with pytest.raises(ValueError, match="image_shape"):
        AutoencoderConfig(image_shape=(1, 0, 28))
