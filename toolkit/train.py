"""Training: one visible loop per model, on the train split of any ``ImageDataset``.

Writes, per model, ``weights.pt`` (a state dict, loaded back with ``weights_only=True``) and
``train.json`` (config, seed, dataset sha256, per-epoch losses, test metrics, seconds).

Sizes the user leaves unset follow the dataset (``TrainConfig.for_dataset``):

- ``hidden`` (width of the first hidden layer): twice the pixel count rounded up to a power of
  two, between 64 and 512 (Fashion-MNIST and 32×32 RGB: 512; 8×8 digits: 128);
- ``epochs`` / ``classifier_epochs``: Fashion-MNIST's 50 / 15 times √(60 000 / N) for a
  train split of N images, rounded up: a split k times smaller gets √k times more epochs —
  more passes over fewer images, but fewer images seen in all than Fashion-MNIST's models see.
  Measured on the 8×8 digits (N = 1 442; test metrics after 150 / 500 / 2 081 epochs, 2 081
  being "as many images as Fashion-MNIST"): the classifier is at 0.997 accuracy from 50 epochs
  on; the AE's test BCE is best near 500 (20.76 / 20.01 / 20.62: it overfits); the VAE's keeps
  improving (21.60 / 20.43 / 19.36); 2 081 epochs cost 6–8 minutes per model on the shared
  machine. The rule gives 323 and 97. Counted on the whole train split, so ``--train-limit``
  (a smoke test) shortens training rather than lengthening it.
- ``threads`` 0 (auto): one torch thread for images of fewer values than Fashion-MNIST's 784
  (such models are too small for intra-op threads to pay: on the shared 2-core machine, 8×8
  digits trained 15–32× slower with two threads than with one), else torch's default.

For Fashion-MNIST these give 512, 50, 15 and torch's default threads: the shipped models'
settings (the thread count matters: the conv classifier's weights differ between one and two
threads; the MLPs' do not).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from latent_atlas.toolkit.atomic import check_file_target, write_json, write_with
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.models import (
    ARCHITECTURES,
    FASHION_MNIST_SHAPE,
    Autoencoder,
    AutoencoderConfig,
    Classifier,
    kl,
    reconstruction,
)
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from latent_atlas.toolkit.data import ImageDataset, Split

MODEL_KINDS = ("vae", "ae", "classifier")
# Fashion-MNIST's settings, from which other datasets' epochs are scaled.
AUTOENCODER_EPOCHS, CLASSIFIER_EPOCHS, REFERENCE_TRAIN = 50, 15, 60_000
# Bounds that keep a typo from allocating the machine away (a 10⁹-d latent, a 10⁹-wide layer).
MAX_LATENT_DIM = 1024
MAX_HIDDEN = 16_384
MAX_EPOCHS = 1_000_000
MAX_SEED = 2**32 - 1  # numpy's seed range (torch's is wider)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_in(name: str, value: Any, lo: int, hi: int | None = None) -> None:
    """One line naming the flag when ``value`` is not an integer in ``lo..hi``."""
    if not _is_int(value) or value < lo or (hi is not None and value > hi):
        rule = f">= {lo}" if hi is None else f"an integer in {lo}..{hi}"
        raise AtlasError(f"--{name.replace('_', '-')}: {value!r}, expected {rule}")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``None`` sizes follow the dataset (see the module docstring); the CLI and
    batch/sweep files only map values onto this, and it checks them all here."""

    models: tuple[str, ...] = MODEL_KINDS
    arch: str = "mlp"
    latent_dim: int = 2
    hidden: int | None = None  # None: sized for the image
    beta: float = 1.0
    epochs: int | None = None  # autoencoders; None: sized for the train split
    classifier_epochs: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    threads: int = 0  # 0: torch's default
    train_limit: int = 0  # 0: the whole train split; else the first N images (smoke tests)
    progress: bool = True

    def __post_init__(self) -> None:
        models = self.models
        if isinstance(models, str) or not isinstance(models, tuple | list):
            raise AtlasError(f"--models: {models!r}, expected a list of {', '.join(MODEL_KINDS)}")
        object.__setattr__(self, "models", tuple(models))
        unknown = [m for m in self.models if m not in MODEL_KINDS]
        if unknown or not self.models or len(set(self.models)) != len(self.models):
            raise AtlasError(
                f"--models: {list(self.models)}, expected one or more of "
                f"{', '.join(MODEL_KINDS)}, each once"
            )
        if self.arch not in ARCHITECTURES:
            raise AtlasError(f"--arch: {self.arch!r}, expected one of {', '.join(ARCHITECTURES)}")
        _int_in("latent_dim", self.latent_dim, 1, MAX_LATENT_DIM)
        if self.hidden is not None:
            _int_in("hidden", self.hidden, 2, MAX_HIDDEN)  # the layers use hidden // 2
        for name in ("epochs", "classifier_epochs"):
            if getattr(self, name) is not None:
                _int_in(name, getattr(self, name), 1, MAX_EPOCHS)
        _int_in("batch_size", self.batch_size, 1)
        _int_in("seed", self.seed, 0, MAX_SEED)
        _int_in("threads", self.threads, 0)
        _int_in("train_limit", self.train_limit, 0)
        if not _is_number(self.lr) or not 0 < self.lr <= 1:  # also false for NaN
            raise AtlasError(f"--lr: {self.lr!r}, expected a learning rate in (0, 1]")
        if not _is_number(self.beta) or not 0 <= self.beta < math.inf:
            raise AtlasError(f"--beta: {self.beta!r}, expected a finite KL weight >= 0")

    def for_dataset(self, image_shape: tuple[int, int, int], n_train: int) -> TrainConfig:
        """This config with every unset size filled in for images of ``image_shape`` and a
        train split of ``n_train`` images."""
        return dataclasses.replace(
            self,
            threads=self.threads or default_threads(image_shape),
            hidden=self.hidden or default_hidden(image_shape),
            epochs=self.epochs or default_epochs(AUTOENCODER_EPOCHS, n_train),
            classifier_epochs=self.classifier_epochs or default_epochs(CLASSIFIER_EPOCHS, n_train),
        )


def default_hidden(image_shape: tuple[int, int, int]) -> int:
    """Twice the pixel count rounded up to a power of two, clamped to 64..512."""
    pixels = math.prod(image_shape)
    return min(512, max(64, 1 << (2 * pixels - 1).bit_length()))


def default_threads(image_shape: tuple[int, int, int]) -> int:
    """1 for images of fewer than 784 values, else 0 (torch's default)."""
    return 1 if math.prod(image_shape) < 28 * 28 else 0


def default_epochs(reference: int, n_train: int) -> int:
    """``reference`` epochs (Fashion-MNIST's) × √(60 000 / n_train), rounded up, 1..MAX_EPOCHS."""
    scaled = reference * math.sqrt(REFERENCE_TRAIN / max(1, n_train))
    return min(MAX_EPOCHS, max(1, math.ceil(scaled - 1e-9)))  # 1e-9: 50.000000001 is 50


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of float32 images ``[N, C, H, W]`` in [0, 1].

    Accumulated in float64, 4096 images at a time (no full-size copy), and rounded to four
    decimals: stable across platforms, and Fashion-MNIST's train split gives 0.2860 and 0.3530,
    the constants its classifier always used. A channel that never varies gets std 1.
    """
    n, c = images.shape[:2]
    total = np.zeros(c)
    squares = np.zeros(c)
    for start in range(0, n, 4096):
        chunk = images[start : start + 4096].astype(np.float64)
        total += chunk.sum(axis=(0, 2, 3))
        squares += np.square(chunk).sum(axis=(0, 2, 3))
    count = n * images.shape[2] * images.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return (
        tuple(round(float(m), 4) for m in mean),
        tuple(round(float(s), 4) or 1.0 for s in std),
    )


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def batches(n: int, size: int, gen: torch.Generator | None) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    yield from order.split(size)


def _tensors(split: Split, limit: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The split as tensors (no copy); its first ``limit`` images when ``limit`` > 0."""
    with warnings.catch_warnings():  # loaders may hand out read-only arrays; we never write
        warnings.simplefilter("ignore", UserWarning)
        x = torch.from_numpy(split.images)
    y = torch.from_numpy(np.asarray(split.labels, dtype=np.int64))
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
    every = -(-epochs // 50)  # at most about 50 lines however many epochs
    for epoch in range(1, epochs + 1):
        model.train()
        totals: dict[str, float] = {}
        seen = 0
        bar = tqdm(
            list(batches(len(x), cfg.batch_size, gen)),
            desc=f"{name} {epoch}/{epochs}",
            disable=None if cfg.progress else True,  # None: on a terminal only
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
        if cfg.progress and (epoch % every == 0 or epoch == epochs):
            tqdm.write(f"{name} epoch {epoch}: loss {history[-1]['loss']:.4f}")
    return history


@dataclass(frozen=True)
class TrainRecord:
    """What training leaves beside the weights (``train.json``): the one way ``export`` and
    the cards learn how a model was trained."""

    kind: str  # "vae" | "ae" | "classifier"
    model_config: dict[str, Any]  # AutoencoderConfig fields, or classes/image_shape/mean/std
    train_config: dict[str, Any]  # TrainConfig fields (without progress)
    seed: int
    dataset_sha256: str
    train_images: int
    history: list[dict[str, float]]  # per epoch: epoch, loss and its parts
    test_metrics: dict[str, float]
    train_seconds: float
    torch_version: str

    def save(self, path: Path, overwrite: bool = False) -> None:
        write_json(path, dataclasses.asdict(self), overwrite)

    @classmethod
    def load(cls, path: Path) -> TrainRecord:
        try:
            raw = json.loads(Path(path).read_text())
            return cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls)})
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise AtlasError(
                f"{path}: cannot be read as a training record ({type(exc).__name__}: {exc}); "
                "expected the train.json that `latent-atlas train` writes"
            ) from None


def train_model(
    kind: str, data: ImageDataset, cfg: TrainConfig
) -> tuple[torch.nn.Module, TrainRecord]:
    """Train one model on ``data.train``, evaluate it on ``data.test``; return it and its record.

    Unset sizes in ``cfg`` are filled in for the dataset first (``TrainConfig.for_dataset``).
    """
    if kind not in MODEL_KINDS:
        raise AtlasError(f"--models: unknown model {kind!r}; expected some of {MODEL_KINDS}")
    if data.train is None:
        raise AtlasError(f"dataset {data.name}: loaded without its train split; cannot train")
    cfg = cfg.for_dataset(data.image_shape, len(data.train))
    with torch_threads(cfg.threads):
        return _train_model(kind, data, cfg)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` torch CPU threads (0: leave torch's setting), then restore it."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train_model(
    kind: str, data: ImageDataset, cfg: TrainConfig
) -> tuple[torch.nn.Module, TrainRecord]:
    assert data.train is not None and cfg.hidden and cfg.epochs and cfg.classifier_epochs
    set_seed(cfg.seed)
    x, y = _tensors(data.train, cfg.train_limit)
    x_test, y_test = _tensors(data.test)
    start = time.perf_counter()
    model: torch.nn.Module
    if kind == "classifier":
        mean, std = channel_stats(x.numpy())
        model = Classifier(data.n_classes, data.image_shape, mean, std)

        def step(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            return torch.nn.functional.cross_entropy(model(xb), yb), {}

        history = fit(model, step, x, y, cfg.classifier_epochs, cfg, kind)
        metrics = evaluate_classifier(model, x_test, y_test)
        model_cfg: dict[str, Any] = {
            "classes": data.n_classes, "image_shape": list(data.image_shape),
            "mean": list(mean), "std": list(std),
        }  # fmt: skip
    else:
        ae_cfg = AutoencoderConfig(
            kind, cfg.arch, cfg.latent_dim, cfg.hidden, cfg.beta, data.image_shape
        )
        ae = Autoencoder(ae_cfg)
        model = ae
        history = fit(ae, lambda xb, _yb: autoencoder_loss(ae, xb), x, y, cfg.epochs, cfg, kind)
        metrics = evaluate_autoencoder(ae, x_test)
        model_cfg = dataclasses.asdict(ae_cfg) | {"image_shape": list(data.image_shape)}
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


def save_model(
    model: torch.nn.Module, record: TrainRecord, folder: Path, overwrite: bool = False
) -> None:
    write_with(folder / "weights.pt", lambda fh: torch.save(model.state_dict(), fh), overwrite)
    record.save(folder / "train.json", overwrite)


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict; ``weights_only=True`` refuses pickled code."""
    try:
        with open(path, "rb") as fh:
            buf = io.BytesIO(fh.read())
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.simplefilter("ignore")
            return torch.load(buf, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise AtlasError(
            f"checkpoint {path}: not found; expected a weights file (`latent-atlas train` "
            "writes weights.pt; your own: torch.save(model.state_dict(), path))"
        ) from None
    except Exception as exc:  # torch raises UnpicklingError / RuntimeError for unsafe or bad files
        # torch's own message suggests weights_only=False: advice we must not pass on.
        raise AtlasError(
            f"checkpoint {path}: refused by torch.load(weights_only=True) "
            f"({type(exc).__name__}: it holds more than tensors, or is no checkpoint); "
            "expected a weights-only state dict"
        ) from None


def build_model(record: TrainRecord) -> torch.nn.Module:
    """The untrained module a record describes (same architecture, parameter names)."""
    cfg = dict(record.model_config)
    try:
        if record.kind == "classifier":
            # Records written before models had an image shape are Fashion-MNIST's, whose
            # classifier normalised with these constants.
            return Classifier(
                cfg["classes"],
                tuple(cfg.get("image_shape", FASHION_MNIST_SHAPE)),
                tuple(cfg.get("mean", (0.2860,))),
                tuple(cfg.get("std", (0.3530,))),
            )
        return Autoencoder(AutoencoderConfig(**cfg))
    except (KeyError, TypeError, ValueError) as exc:
        raise AtlasError(
            f"training record of a {record.kind!r} model: model_config {cfg} does not describe "
            f"one ({type(exc).__name__}: {exc}); expected what `latent-atlas train` writes"
        ) from None


def load_trained(folder: Path) -> tuple[torch.nn.Module, TrainRecord]:
    """Rebuild a model from ``folder/train.json`` and ``folder/weights.pt``."""
    record = TrainRecord.load(Path(folder) / "train.json")
    model = build_model(record)
    try:
        model.load_state_dict(load_weights(Path(folder) / "weights.pt"))
    except RuntimeError as exc:  # missing/unexpected keys or shapes that differ
        first = str(exc).strip().splitlines()[0]
        raise AtlasError(
            f"checkpoint {Path(folder) / 'weights.pt'}: does not fit the model in train.json "
            f"({first}); expected the weights saved beside it"
        ) from None
    model.eval()
    return model, record


def train_all(
    data: ImageDataset, cfg: TrainConfig, out: Path, overwrite: bool = False
) -> dict[str, TrainRecord]:
    """Train every model in ``cfg.models`` and save each under ``out/<kind>/``. Files there
    that latent-atlas did not write are refused before any training (``overwrite``: replace)."""
    for kind in cfg.models:
        for name in ("weights.pt", "train.json"):
            check_file_target(Path(out) / kind / name, overwrite)
    records = {}
    for kind in cfg.models:
        model, record = train_model(kind, data, cfg)
        save_model(model, record, Path(out) / kind, overwrite)
        records[kind] = record
        summary = ", ".join(f"{k} {v:.4f}" for k, v in record.test_metrics.items())
        print(f"{kind}: test {summary} ({record.train_seconds} s) -> {Path(out) / kind}")
    return records
