"""The three models: a VAE, a plain AE (both with a small latent space), and a CNN classifier.

Every model takes images as float32 ``[N, 1, 28, 28]`` in [0, 1]; decoders return images of the
same shape and range (the sigmoid is part of the model). ``build_autoencoder`` resolves the
``--arch`` name in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

IMAGE_PIXELS = 28 * 28


@dataclass(frozen=True)
class AutoencoderConfig:
    kind: str = "vae"  # "vae" | "ae"
    arch: str = "mlp"  # "mlp" | "conv"
    latent_dim: int = 2
    hidden: int = 512
    beta: float = 1.0  # KL weight; used by the VAE only


def _mlp_encoder(cfg: AutoencoderConfig, out: int) -> nn.Module:
    h = cfg.hidden
    return nn.Sequential(
        nn.Flatten(), nn.Linear(IMAGE_PIXELS, h), nn.ReLU(),
        nn.Linear(h, h // 2), nn.ReLU(), nn.Linear(h // 2, out),
    )  # fmt: skip


def _mlp_decoder(cfg: AutoencoderConfig) -> nn.Module:
    h = cfg.hidden
    return nn.Sequential(
        nn.Linear(cfg.latent_dim, h // 2), nn.ReLU(), nn.Linear(h // 2, h), nn.ReLU(),
        nn.Linear(h, IMAGE_PIXELS), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)),
    )  # fmt: skip


def _conv_encoder(cfg: AutoencoderConfig, out: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.ReLU(),   # 14x14
        nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),  # 7x7
        nn.Flatten(), nn.Linear(64 * 7 * 7, cfg.hidden // 2), nn.ReLU(),
        nn.Linear(cfg.hidden // 2, out),
    )  # fmt: skip


def _conv_decoder(cfg: AutoencoderConfig) -> nn.Module:
    return nn.Sequential(
        nn.Linear(cfg.latent_dim, cfg.hidden // 2), nn.ReLU(),
        nn.Linear(cfg.hidden // 2, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
        nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),  # 14x14
        nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1), nn.Sigmoid(),  # 28x28
    )  # fmt: skip


ARCHITECTURES = {"mlp": (_mlp_encoder, _mlp_decoder), "conv": (_conv_encoder, _conv_decoder)}


class Autoencoder(nn.Module):
    """AE (deterministic code) or VAE (mean and log-variance; sampling only in training)."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        if cfg.kind not in ("vae", "ae"):
            raise ValueError(f"kind must be 'vae' or 'ae', got {cfg.kind!r}")
        if cfg.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {cfg.arch!r}")
        self.cfg = cfg
        make_encoder, make_decoder = ARCHITECTURES[cfg.arch]
        out = 2 * cfg.latent_dim if cfg.kind == "vae" else cfg.latent_dim
        self.encoder = make_encoder(cfg, out)
        self.decoder = make_decoder(cfg)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return ``(mu, logvar)``; ``logvar`` is None for the AE."""
        h = self.encoder(x)
        if self.cfg.kind == "ae":
            return h, None
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        mu, logvar = self.encode(x)
        z = mu
        if logvar is not None and self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # reparameterisation
        return self.decoder(z), mu, logvar


class MeanEncoder(nn.Module):
    """What gets exported as the encoder: the mean code only, no random nodes."""

    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x)[0]


def reconstruction(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over pixels, averaged over the batch (nats per image)."""
    return nn.functional.binary_cross_entropy(x_hat, x, reduction="sum") / x.shape[0]


def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent dims, averaged over the batch (nats)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / mu.shape[0]


class Classifier(nn.Module):
    """A small CNN. Normalisation lives inside, so inputs are plain [0, 1] images.

    ``forward`` returns logits; ``features`` the 128-d penultimate layer (used for Fréchet
    distances of decoded samples).
    """

    MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST train-set pixel statistics
    FEATURES = 128

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.25),
            nn.Linear(64 * 7 * 7, self.FEATURES), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Dropout(0.25), nn.Linear(self.FEATURES, classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.MEAN) / self.STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ClassifierWithFeatures(nn.Module):
    """Export wrapper: ``(logits, features)`` as two graph outputs."""

    def __init__(self, model: Classifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.model.features(x)
        return self.model.head(f), f
