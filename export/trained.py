"""Our own train → export path: the runs of ``latent-atlas train`` (``RUNS/{vae,ae,classifier}``)
become an artifact set ``OUT/{vae,ae,classifier}/`` + ``OUT/manifest.json``, every model through
the same ``write_model_files`` as a user's ``export_model``.

The whole set is built under a temporary name and swapped in only when every model passed, so
a failing export (a truncated checkpoint, a parity failure) leaves the previous set untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latent_atlas.export.model_export import check_tolerances, write_model_files
from latent_atlas.export.onnx_export import write_manifest
from latent_atlas.toolkit.atomic import atomic_dir
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.models import (
    Autoencoder,
    Classifier,
    ClassifierWithFeatures,
    MeanEncoder,
    PosteriorEncoder,
)
from latent_atlas.toolkit.train import MODEL_KINDS, TrainRecord, load_trained
from torch import nn

if TYPE_CHECKING:
    from latent_atlas.toolkit.data import ImageDataset


@dataclass(frozen=True)
class ExportConfig:
    runs: Path | None = None  # `latent-atlas train` output; None: runs/<dataset>
    out: Path | None = None  # None: artifacts/<dataset>
    atol: float = 1e-5
    rtol: float = 1e-5
    overwrite: bool = False  # replace an --out folder that latent-atlas did not write

    def __post_init__(self) -> None:
        check_tolerances(self.atol, self.rtol)
        if self.runs is not None and self.out is not None:
            if Path(self.out).resolve() == Path(self.runs).resolve():
                raise AtlasError(
                    f"--out {self.out}: the same folder as --runs; expected a separate folder"
                )

    def folders(self, data: ImageDataset) -> tuple[Path, Path]:
        """``(runs, out)``, the defaults named after the dataset."""
        runs = Path(self.runs) if self.runs is not None else Path("runs") / data.name
        out = Path(self.out) if self.out is not None else Path("artifacts") / data.name
        return runs, out


def _check_dataset(folder: Path, sha256: str, data: ImageDataset) -> None:
    if sha256 != data.sha256:
        raise AtlasError(
            f"{folder}: trained on the dataset with sha256 {sha256[:12]}…, but --data "
            f"{data.source} has {data.sha256[:12]}…; expected the dataset it was trained on"
        )


def export_trained_model(
    model: nn.Module,
    record: TrainRecord,
    data: ImageDataset,
    folder: Path,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> dict[str, Any]:
    """Write one trained model of ours (an ``Autoencoder`` or a ``Classifier``) and its card
    into the existing ``folder``; returns the card. Used by ``export_trained`` and by sweeps."""
    _check_dataset(folder, record.dataset_sha256, data)
    meta = {"training_seed": str(record.seed)}
    if isinstance(model, Autoencoder):
        meta["architecture"] = model.cfg.arch
        # a VAE's encoder.onnx gives the posterior's mean and log-variance (outputs "z" and
        # "logvar"); an AE's, its code alone
        vae = model.cfg.kind == "vae"
        encoder = PosteriorEncoder(model) if vae else MeanEncoder(model)
        return write_model_files(
            folder, image_shape=model.cfg.image_shape, kind=record.kind, metadata=meta,
            encoder=encoder.eval(), code=0 if vae else None, logvar=1 if vae else None,
            decoder=model.decoder, dataset=data, record=record, atol=atol, rtol=rtol,
        )  # fmt: skip
    if not isinstance(model, Classifier):
        raise TypeError(f"expected an Autoencoder or a Classifier, got {type(model).__name__}")
    meta["architecture"] = "cnn"
    return write_model_files(
        folder, image_shape=model.image_shape, kind=record.kind, metadata=meta,
        classifier=ClassifierWithFeatures(model).eval(), logits=0, features=1, dataset=data,
        record=record, atol=atol, rtol=rtol,
    )  # fmt: skip


def export_trained(data: ImageDataset, cfg: ExportConfig) -> dict[str, dict[str, Any]]:
    """Export every model found in the runs folder (vae, ae, classifier) into the artifact
    folder (``cfg.folders``)."""
    runs, out = cfg.folders(data)
    kinds = [k for k in MODEL_KINDS if (runs / k / "train.json").is_file()]
    if not kinds:
        raise AtlasError(
            f"--runs {runs}: no trained model (vae/, ae/ or classifier/ with train.json); "
            "run `latent-atlas train` with the same --data first"
        )
    cards = {}
    with atomic_dir(out, cfg.overwrite, (runs,)) as tmp:
        for kind in kinds:
            model, record = load_trained(runs / kind)
            _check_dataset(runs / kind, record.dataset_sha256, data)
            (tmp / kind).mkdir()
            cards[kind] = export_trained_model(model, record, data, tmp / kind, cfg.atol, cfg.rtol)
            if kind == "classifier":
                accuracy = cards[kind]["test_metrics_onnx"]["accuracy"]
                print(f"classifier: classifier.onnx, card.json (test accuracy {accuracy:.4f}) "
                      f"-> {out / kind}")  # fmt: skip
            else:
                print(f"{kind}: encoder.onnx, decoder.onnx, card.json -> {out / kind}")
        write_manifest(tmp)
    print(f"manifest -> {out / 'manifest.json'}")
    return cards
