"""torch → ONNX for encoder, decoder and classifier, with the checks that make the files a
contract: dynamic batch dimension, ``onnx.checker`` full check, onnxruntime-vs-torch parity on
real test images, metadata inside each model, a card per model and a manifest with sha256."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from latent_atlas.toolkit.atomic import write_bytes, write_json
from latent_atlas.toolkit.data import ImageDataset
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.models import Autoencoder, ClassifierWithFeatures, MeanEncoder
from latent_atlas.toolkit.runtime import sha256_file
from latent_atlas.toolkit.train import TrainRecord, load_trained

PARITY_BATCHES = (1, 7, 513)


@dataclass(frozen=True)
class ExportConfig:
    runs: Path  # folder with vae/, ae/, classifier/ from `latent-atlas train`
    out: Path  # artifacts/<dataset>
    atol: float = 1e-5
    rtol: float = 1e-5


def to_onnx(
    module: torch.nn.Module, example: torch.Tensor, input_name: str, output_names: list[str]
) -> onnx.ModelProto:
    """Export with the dynamo exporter, batch dimension dynamic, weights inside the proto."""
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            input_names=[input_name],
            output_names=output_names,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            optimize=True,
            verbose=False,
        )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto


def check_dynamic_batch(model: onnx.ModelProto, name: str) -> None:
    for value in list(model.graph.input) + list(model.graph.output):
        dim0 = value.type.tensor_type.shape.dim[0]
        if not dim0.dim_param or dim0.dim_value:
            raise AtlasError(
                f"{name}: {value.name!r} has a fixed batch size {dim0.dim_value}; "
                "expected a symbolic dimension 0"
            )


def check_parity(
    model: onnx.ModelProto,
    module: torch.nn.Module,
    inputs: np.ndarray,
    name: str,
    atol: float,
    rtol: float,
) -> dict[str, float]:
    """Compare onnxruntime (CPU) with torch at batch sizes 1, 7 and 513: max |Δ| per size."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    report = {}
    for n in PARITY_BATCHES:
        x = inputs[:n]
        with torch.no_grad():
            ref = module(torch.from_numpy(x))
        refs = [t.numpy() for t in (ref if isinstance(ref, tuple) else (ref,))]
        outs = session.run(None, {feed: x})
        worst = 0.0
        for r, o in zip(refs, outs, strict=True):
            if r.shape != o.shape:
                raise AtlasError(f"{name}: onnxruntime shape {o.shape} != torch {r.shape} at N={n}")
            if not np.allclose(o, r, atol=atol, rtol=rtol):
                raise AtlasError(
                    f"{name}: onnxruntime differs from torch by {np.abs(o - r).max():.3g} at "
                    f"batch {n}; expected within atol {atol} + rtol {rtol}"
                )
            worst = max(worst, float(np.abs(o - r).max()))
        report[str(n)] = worst
    return report


def with_metadata(model: onnx.ModelProto, meta: dict[str, str]) -> onnx.ModelProto:
    del model.metadata_props[:]
    for key, value in sorted(meta.items()):
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "latent-atlas"
    return model


def export_one(
    module: torch.nn.Module,
    example_inputs: np.ndarray,
    input_name: str,
    output_names: list[str],
    meta: dict[str, str],
    path: Path,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> dict:
    """Export, check (dynamic batch, checker, parity) and write one single-file model."""
    model = to_onnx(module, torch.from_numpy(example_inputs[:3]), input_name, output_names)
    name = str(path)
    check_dynamic_batch(model, name)
    model = with_metadata(model, meta)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise AtlasError(f"{name}: onnx.checker failed: {str(exc).splitlines()[0]}") from None
    parity = check_parity(model, module, example_inputs, name, atol, rtol)
    write_bytes(path, model.SerializeToString())
    return {"file": path.name, "sha256": sha256_file(path), "parity_max_abs_diff": parity}


def _base_meta(record: TrainRecord, data: ImageDataset, kind: str) -> dict[str, str]:
    return {
        "kind": kind,
        "image_shape": "1,28,28",
        "class_names": json.dumps(list(data.class_names)),
        "training_seed": str(record.seed),
        "dataset_sha256": record.dataset_sha256,
        "dataset": "fashion-mnist",
    }


def export_autoencoder(folder: Path, out: Path, data: ImageDataset, cfg: ExportConfig) -> dict:
    model, record = load_trained(folder)
    assert isinstance(model, Autoencoder)
    x = data.test.images[: max(PARITY_BATCHES)]
    meta = _base_meta(record, data, model.cfg.kind)
    meta |= {"latent_dim": str(model.cfg.latent_dim), "architecture": model.cfg.arch}
    encoder = MeanEncoder(model).eval()
    with torch.no_grad():
        z = encoder(torch.from_numpy(x)).numpy()
    files = [
        export_one(encoder, x, "image", ["z"], meta | {"role": "encoder"},
                   out / "encoder.onnx", cfg.atol, cfg.rtol),
        export_one(model.decoder, z, "z", ["image"], meta | {"role": "decoder"},
                   out / "decoder.onnx", cfg.atol, cfg.rtol),
    ]  # fmt: skip
    return write_card(out, record, meta, files)


def export_classifier(folder: Path, out: Path, data: ImageDataset, cfg: ExportConfig) -> dict:
    model, record = load_trained(folder)
    wrapped = ClassifierWithFeatures(model).eval()  # type: ignore[arg-type]
    x = data.test.images
    meta = _base_meta(record, data, "classifier") | {"role": "classifier", "architecture": "cnn"}
    path = out / "classifier.onnx"
    files = [
        export_one(wrapped, x[: max(PARITY_BATCHES)], "image", ["logits", "features"], meta,
                   path, cfg.atol, cfg.rtol)
    ]  # fmt: skip
    # The card's accuracy is measured through the exported file, on all 10 000 test images.
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = np.concatenate(
        [session.run(["logits"], {"image": x[i : i + 2000]})[0] for i in range(0, len(x), 2000)]
    )
    onnx_acc = float((logits.argmax(1) == data.test.labels).mean())
    return write_card(out, record, meta, files, {"accuracy": onnx_acc})


def write_card(
    out: Path,
    record: TrainRecord,
    meta: dict,
    files: list[dict],
    onnx_metrics: dict | None = None,
) -> dict:
    card = {
        "kind": meta["kind"],
        "metadata": meta,
        "files": files,
        "test_metrics": record.test_metrics,
        "test_metrics_onnx": onnx_metrics or {},
        "train_config": record.train_config,
        "model_config": record.model_config,
        "train_seconds": record.train_seconds,
        "epochs": len(record.history),
        "final_train_loss": record.history[-1]["loss"],
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__},
    }
    write_json(out / "card.json", card)
    return card


def write_manifest(out: Path) -> Path:
    """``manifest.json`` with the sha256 of every file under ``out`` (paths relative to it)."""
    files = {
        str(p.relative_to(out)): sha256_file(p)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "manifest.json" and not p.name.startswith(".")
    }
    return write_json(out / "manifest.json", {"files": files})


def export_all(data: ImageDataset, cfg: ExportConfig) -> dict[str, dict]:
    cards = {}
    for kind in ("vae", "ae"):
        cards[kind] = export_autoencoder(cfg.runs / kind, cfg.out / kind, data, cfg)
        print(f"{kind}: encoder.onnx, decoder.onnx, card.json -> {cfg.out / kind}")
    cards["classifier"] = export_classifier(
        cfg.runs / "classifier", cfg.out / "classifier", data, cfg
    )
    print(f"classifier: classifier.onnx, card.json -> {cfg.out / 'classifier'}")
    print(f"manifest -> {write_manifest(cfg.out)}")
    return cards


def torch_decoder_from_onnx(path: Path) -> torch.nn.Module:
    """Rebuild the torch decoder behind one of our decoder.onnx files from its metadata and
    initializers (the exporter keeps the state-dict names), for the torch baselines of
    ``latent-atlas bench``."""
    from latent_atlas.toolkit.models import AutoencoderConfig
    from latent_atlas.toolkit.runtime import read_onnx

    model = read_onnx(path)
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("role") != "decoder" or "architecture" not in meta:
        raise AtlasError(f"model {path}: not a latent-atlas decoder (metadata role/architecture)")
    weights = {i.name: torch.from_numpy(onnx.numpy_helper.to_array(i).copy())
               for i in model.graph.initializer}  # fmt: skip
    latent_dim = int(meta["latent_dim"])
    hidden = 2 * int(weights["0.weight"].shape[0])
    cfg = AutoencoderConfig(meta.get("kind", "vae"), meta["architecture"], latent_dim, hidden)
    decoder = Autoencoder(cfg).decoder
    state = {k: v for k, v in weights.items() if k in decoder.state_dict()}
    decoder.load_state_dict(state, strict=True)
    return decoder.eval()
