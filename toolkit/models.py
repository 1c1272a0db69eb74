"""The three models: a VAE, a plain AE (both with a small latent space), and a CNN classifier,
each sized for the dataset's image shape ``(C, H, W)`` and class count.

Every model takes images as float32 ``[N, C, H, W]`` in [0, 1]; decoders return images of the
same shape and range (the sigmoid is part of the model). ``ARCHITECTURES`` resolves the
``--arch`` name in one place.

Sizes other than 28×28 (the rule, for ``conv``): the two stride-2 convolutions halve the image
twice, so the encoder zero-pads the bottom and right edges up to the next multiple of 4 and
the decoder crops its output back to ``H × W``. For sizes that are already multiples of 4
(28, 8, 32) there is no padding layer at all, so Fashion-MNIST's models are the same modules,
created in the same order, as before images had a shape. The classifier's two 2×2 max-pools
round odd sizes up (``ceil_mode``), only where a size is odd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

FASHION_MNIST_SHAPE = (1, 28, 28)


def _pixels(image_shape: tuple[int, int, int]) -> int:
    return math.prod(image_shape)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


@dataclass(frozen=True)
class AutoencoderConfig:
    kind: str = "vae"  # "vae" | "ae"
    arch: str = "mlp"  # "mlp" | "conv"
    latent_dim: int = 2
    hidden: int = 512
    beta: float = 1.0  # KL weight; used by the VAE only
    image_shape: tuple[int, int, int] = FASHION_MNIST_SHAPE  # (C, H, W)

    def __post_init__(self) -> None:
        # train.json stores the shape as a JSON list; the model wants a tuple
        object.__setattr__(self, "image_shape", tuple(int(n) for n in self.image_shape))
        if self.kind not in ("vae", "ae"):
            raise ValueError(f"kind must be 'vae' or 'ae', got {self.kind!r}")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {self.arch!r}")
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f"image_shape must be (C, H, W) >= 1, got {self.image_shape}")


class Crop(nn.Module):
    """Keep the top-left ``height × width`` of ``[N, C, H', W']`` (undoes the encoder's pad)."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        self.height, self.width = height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : self.height, : self.width]


def _mlp_encoder(cfg: AutoencoderConfig, out: int) -> nn.Module:
    h = cfg.hidden
    return nn.Sequential(
        nn.Flatten(), nn.Linear(_pixels(cfg.image_shape), h), nn.ReLU(),
        nn.Linear(h, h // 2), nn.ReLU(), nn.Linear(h // 2, out),
    )  # fmt: skip


def _mlp_decoder(cfg: AutoencoderConfig) -> nn.Module:
    h = cfg.hidden
    return nn.Sequential(
        nn.Linear(cfg.latent_dim, h // 2), nn.ReLU(), nn.Linear(h // 2, h), nn.ReLU(),
        nn.Linear(h, _pixels(cfg.image_shape)), nn.Sigmoid(), nn.Unflatten(1, cfg.image_shape),
    )  # fmt: skip


def _conv_sizes(cfg: AutoencoderConfig) -> tuple[int, int, int, int]:
    """(padded H, padded W, bottleneck H, bottleneck W): padded to a multiple of 4, then / 4."""
    _, h, w = cfg.image_shape
    ph, pw = _round_up(h, 4), _round_up(w, 4)
    return ph, pw, ph // 4, pw // 4


def _conv_encoder(cfg: AutoencoderConfig, out: int) -> nn.Module:
    c, h, w = cfg.image_shape
    ph, pw, bh, bw = _conv_sizes(cfg)
    pad: list[nn.Module] = [nn.ZeroPad2d((0, pw - w, 0, ph - h))] if (ph, pw) != (h, w) else []
    return nn.Sequential(
        *pad,
        nn.Conv2d(c, 32, 4, stride=2, padding=1), nn.ReLU(),   # H/2 × W/2
        nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),  # H/4 × W/4
        nn.Flatten(), nn.Linear(64 * bh * bw, cfg.hidden // 2), nn.ReLU(),
        nn.Linear(cfg.hidden // 2, out),
    )  # fmt: skip


def _conv_decoder(cfg: AutoencoderConfig) -> nn.Module:
    c, h, w = cfg.image_shape
    ph, pw, bh, bw = _conv_sizes(cfg)
    crop: list[nn.Module] = [Crop(h, w)] if (ph, pw) != (h, w) else []
    return nn.Sequential(
        nn.Linear(cfg.latent_dim, cfg.hidden // 2), nn.ReLU(),
        nn.Linear(cfg.hidden // 2, 64 * bh * bw), nn.ReLU(), nn.Unflatten(1, (64, bh, bw)),
        nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),  # H/2 × W/2
        nn.ConvTranspose2d(32, c, 4, stride=2, padding=1), nn.Sigmoid(),  # padded H × W
        *crop,
    )  # fmt: skip


ARCHITECTURES = {"mlp": (_mlp_encoder, _mlp_decoder), "conv": (_conv_encoder, _conv_decoder)}


class Autoencoder(nn.Module):
    """AE (deterministic code) or VAE (mean and log-variance; sampling only in training)."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
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


class PosteriorEncoder(nn.Module):
    """What gets exported as a VAE's encoder: ``(mu, logvar)``, both ``[N, d]``, the mean and
    the log-variance of the diagonal Gaussian posterior q(z|x) (natural log of σ²), no random
    nodes. The mean stays the first output, so readers that take only the code still do."""

    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        if model.cfg.kind != "vae":
            raise ValueError(f"PosteriorEncoder needs a VAE, got kind {model.cfg.kind!r}")
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.model.encode(x)
        assert logvar is not None  # a VAE always has one (checked in __init__)
        return mu, logvar


def reconstruction(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over pixels (and channels), averaged over the batch
    (nats per image): minus the Bernoulli log-likelihood, the VAE objective's reconstruction
    term (Kingma & Welling, 2014, section 3 and appendix C.1)."""
    return nn.functional.binary_cross_entropy(x_hat, x, reduction="sum") / x.shape[0]


def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent dims, averaged over the batch (nats):
    -½ Σ (1 + log σ² − μ² − σ²), Kingma & Welling (2014), appendix B."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / mu.shape[0]


def _max_pool(height: int, width: int) -> tuple[nn.MaxPool2d, int, int]:
    """A 2×2 max-pool and the size after it; odd sizes round up (not down to nothing)."""
    odd = bool(height % 2 or width % 2)
    return nn.MaxPool2d(2, ceil_mode=odd), -(-height // 2), -(-width // 2)


class Classifier(nn.Module):
    """A small CNN. Normalisation lives inside, so inputs are plain [0, 1] images.

    ``mean`` and ``std`` are per-channel pixel statistics of the train split (see
    ``toolkit.train.channel_stats``), kept as constants of the module: they are recorded in
    ``train.json`` and become constants of the exported graph. ``forward`` returns logits;
    ``features`` the 128-d penultimate layer (used for Fréchet distances of decoded samples).
    """

    FEATURES = 128

    def __init__(
        self,
        classes: int,
        image_shape: tuple[int, int, int],
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> None:
        super().__init__()
        c, h, w = image_shape
        if len(mean) != c or len(std) != c or min(std) <= 0:
            raise ValueError(f"mean/std must have {c} entries with std > 0, got {mean}, {std}")
        self.image_shape = (c, h, w)
        self.mean, self.std = tuple(mean), tuple(std)
        pool1, h, w = _max_pool(h, w)
        pool2, h, w = _max_pool(h, w)
        self.body = nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), pool1,
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), pool2,
            nn.Flatten(), nn.Dropout(0.25),
            nn.Linear(64 * h * w, self.FEATURES), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Dropout(0.25), nn.Linear(self.FEATURES, classes))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.mean) == 1:  # scalars: the graph Fashion-MNIST's classifier always had
            return (x - self.mean[0]) / self.std[0]
        mean = x.new_tensor(self.mean).view(1, -1, 1, 1)
        std = x.new_tensor(self.std).view(1, -1, 1, 1)
        return (x - mean) / std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalise(x))

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
