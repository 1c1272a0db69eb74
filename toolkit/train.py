"""Training: one visible loop per model, on the real Fashion-MNIST train split.

Writes, per model, ``weights.pt`` (a state dict, loaded back with ``weights_only=True``) and
``train.json`` (config, seed, dataset sha256, per-epoch losses, test metrics, seconds).
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from latent_atlas.toolkit.atomic import write_json, write_with
from latent_atlas.toolkit.data import ImageDataset
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.models import (
    Autoencoder,
    AutoencoderConfig,
    Classifier,
    kl,
    reconstruction,
)
from tqdm.auto import tqdm

MODEL_KINDS = ("vae", "ae", "classifier")


@dataclass(frozen=True)
class TrainConfig:
    models: tuple[str, ...] = MODEL_KINDS
    arch: str = "mlp"
    latent_dim: int = 2
    hidden: int = 512
    beta: float = 1.0
    epochs: int = 50  # autoencoders
    classifier_epochs: int = 15
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    threads: int = 0  # 0: torch's default
    train_limit: int = 0  # 0: the whole train split; else the first N images (smoke tests)
    progress: bool = True


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def batches(n: int, size: int, gen: torch.Generator | None) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    yield from order.split(size)


def _tensors(split: Any, limit: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(split.images)
    y = torch.from_numpy(split.labels.astype(np.int64))
    return (x[:limit], y[:limit]) if limit else (x, y)


def autoencoder_loss(model: Autoencoder, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    x_hat, mu, logvar = model(x)
    rec = reconstruction(x_hat, x)
    parts = {"bce": rec.item()}
    loss = rec
    if logvar is not None:
        k = kl(mu, logvar)
        loss = rec + model.cfg.beta * k
        parts["kl"] = k.item()
    return loss, parts


@torch.no_grad()
def evaluate_autoencoder(model: Autoencoder, x: torch.Tensor) -> dict[str, float]:
    """Test metrics with the mean code (no sampling): BCE (nats/image), MSE (per pixel), KL."""
    model.eval()
    sums = {"bce": 0.0, "mse": 0.0, "kl": 0.0}
    for idx in batches(len(x), 1000, None):
        xb = x[idx]
        x_hat, mu, logvar = model(xb)
        sums["bce"] += reconstruction(x_hat, xb).item() * len(xb)
        sums["mse"] += torch.mean((x_hat - xb) ** 2, dim=(1, 2, 3)).sum().item()
        if logvar is not None:
            sums["kl"] += kl(mu, logvar).item() * len(xb)
    out = {k: v / len(x) for k, v in sums.items()}
    if model.cfg.kind == "ae":
        del out["kl"]
    return out


@torch.no_grad()
def evaluate_classifier(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    model.eval()
    correct, loss = 0, 0.0
    for idx in batches(len(x), 1000, None):
        logits = model(x[idx])
        loss += torch.nn.functional.cross_entropy(logits, y[idx], reduction="sum").item()
        correct += int((logits.argmax(1) == y[idx]).sum())
    return {"accuracy": correct / len(x), "cross_entropy": loss / len(x)}


def fit(
    model: torch.nn.Module,
    step_loss: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]],
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    cfg: TrainConfig,
    name: str,
) -> list[dict[str, float]]:
    """The training loop: Adam with a cosine learning-rate decay, shuffled mini-batches, a
    progress bar with the running loss."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        totals: dict[str, float] = {}
        seen = 0
        bar = tqdm(
            list(batches(len(x), cfg.batch_size, gen)),
            desc=f"{name} {epoch}/{epochs}",
            disable=not cfg.progress,
            leave=False,
        )
        for idx in bar:
            loss, parts = step_loss(x[idx], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(idx)
            for k, v in {"loss": loss.item(), **parts}.items():
                totals[k] = totals.get(k, 0.0) + v * len(idx)
            bar.set_postfix(loss=f"{totals['loss'] / seen:.4f}")
        schedule.step()
        history.append({"epoch": epoch, **{k: v / seen for k, v in totals.items()}})
        if cfg.progress:
            tqdm.write(f"{name} epoch {epoch}: loss {history[-1]['loss']:.4f}")
    return history


@dataclass(frozen=True)
class TrainRecord:
    """What training leaves beside the weights (``train.json``): the one way ``export`` and
    the cards learn how a model was trained."""

    kind: str  # "vae" | "ae" | "classifier"
    model_config: dict[str, Any]  # AutoencoderConfig fields, or {"classes": K}
    train_config: dict[str, Any]  # TrainConfig fields (without progress)
    seed: int
    dataset_sha256: str
    train_images: int
    history: list[dict[str, float]]  # per epoch: epoch, loss and its parts
    test_metrics: dict[str, float]
    train_seconds: float
    torch_version: str

    def save(self, path: Path) -> None:
        write_json(path, dataclasses.asdict(self))

    @classmethod
    def load(cls, path: Path) -> TrainRecord:
        try:
            raw = json.loads(Path(path).read_text())
            return cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls)})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AtlasError(
                f"{path}: cannot be read as a training record ({type(exc).__name__}: {exc}); "
                "expected the train.json that `latent-atlas train` writes"
            ) from None


def train_model(
    kind: str, data: ImageDataset, cfg: TrainConfig
) -> tuple[torch.nn.Module, TrainRecord]:
    """Train one model; return it and its record."""
    set_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    x, y = _tensors(data.train, cfg.train_limit)
    x_test, y_test = _tensors(data.test)
    start = time.perf_counter()
    model: torch.nn.Module
    if kind == "classifier":
        model = Classifier(len(data.class_names))

        def step(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            return torch.nn.functional.cross_entropy(model(xb), yb), {}

        history = fit(model, step, x, y, cfg.classifier_epochs, cfg, kind)
        metrics = evaluate_classifier(model, x_test, y_test)
        model_cfg: dict[str, Any] = {"classes": len(data.class_names)}
    else:
        ae_cfg = AutoencoderConfig(kind, cfg.arch, cfg.latent_dim, cfg.hidden, cfg.beta)
        ae = Autoencoder(ae_cfg)
        model = ae
        history = fit(ae, lambda xb, _yb: autoencoder_loss(ae, xb), x, y, cfg.epochs, cfg, kind)
        metrics = evaluate_autoencoder(ae, x_test)
        model_cfg = dataclasses.asdict(ae_cfg)
    record = TrainRecord(
        kind=kind,
        model_config=model_cfg,
        train_config={k: v for k, v in dataclasses.asdict(cfg).items() if k != "progress"},
        seed=cfg.seed,
        dataset_sha256=data.sha256,
        train_images=len(x),
        history=history,
        test_metrics=metrics,
        train_seconds=round(time.perf_counter() - start, 1),
        torch_version=torch.__version__,
    )
    return model, record


def save_model(model: torch.nn.Module, record: TrainRecord, folder: Path) -> None:
    write_with(folder / "weights.pt", lambda fh: torch.save(model.state_dict(), fh))
    record.save(folder / "train.json")


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict; ``weights_only=True`` refuses pickled code."""
    try:
        with open(path, "rb") as fh:
            buf = io.BytesIO(fh.read())
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.simplefilter("ignore")
            return torch.load(buf, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise AtlasError(f"checkpoint {path}: not found; run `latent-atlas train` first") from None
    except Exception as exc:  # torch raises UnpicklingError / RuntimeError for unsafe or bad files
        # torch's own message suggests weights_only=False: advice we must not pass on.
        raise AtlasError(
            f"checkpoint {path}: refused by torch.load(weights_only=True) "
            f"({type(exc).__name__}: it holds more than tensors, or is no checkpoint); "
            "expected a weights-only state dict"
        ) from None


def load_trained(folder: Path) -> tuple[torch.nn.Module, TrainRecord]:
    """Rebuild a model from ``folder/train.json`` and ``folder/weights.pt``."""
    record = TrainRecord.load(Path(folder) / "train.json")
    model: torch.nn.Module
    if record.kind == "classifier":
        model = Classifier(record.model_config["classes"])
    else:
        model = Autoencoder(AutoencoderConfig(**record.model_config))
    model.load_state_dict(load_weights(Path(folder) / "weights.pt"))
    model.eval()
    return model, record


def train_all(data: ImageDataset, cfg: TrainConfig, out: Path) -> dict[str, TrainRecord]:
    """Train every model in ``cfg.models`` and save each under ``out/<kind>/``."""
    records = {}
    for kind in cfg.models:
        if kind not in MODEL_KINDS:
            raise AtlasError(f"--models: unknown model {kind!r}; expected some of {MODEL_KINDS}")
        model, record = train_model(kind, data, cfg)
        save_model(model, record, Path(out) / kind)
        records[kind] = record
        summary = ", ".join(f"{k} {v:.4f}" for k, v in record.test_metrics.items())
        print(f"{kind}: test {summary} ({record.train_seconds} s) -> {Path(out) / kind}")
    return records
