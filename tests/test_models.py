from __future__ import annotations

import pytest
import torch
from latent_atlas.toolkit.models import (
    Autoencoder,
    AutoencoderConfig,
    Classifier,
    ClassifierWithFeatures,
    MeanEncoder,
    kl,
    reconstruction,
)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("kind", ["vae", "ae"])
@pytest.mark.parametrize("latent_dim", [2, 5])
def test_autoencoder_shapes(arch, kind, latent_dim):
    model = Autoencoder(AutoencoderConfig(kind=kind, arch=arch, latent_dim=latent_dim, hidden=64))
    x = torch.rand(3, 1, 28, 28)
    x_hat, mu, logvar = model(x)
    assert x_hat.shape == (3, 1, 28, 28) and mu.shape == (3, latent_dim)
    assert (logvar is None) == (kind == "ae")
    assert 0 <= x_hat.min() and x_hat.max() <= 1
    assert MeanEncoder(model)(x).shape == (3, latent_dim)


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


def test_classifier_shapes():
    model = Classifier(10).eval()
    logits, feats = ClassifierWithFeatures(model)(torch.rand(4, 1, 28, 28))
    assert logits.shape == (4, 10) and feats.shape == (4, Classifier.FEATURES)


def test_bad_arch_rejected():
    with pytest.raises(ValueError, match="arch must be one of"):
        Autoencoder(AutoencoderConfig(arch="transformer"))
