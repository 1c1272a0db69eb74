"""``export_model``: any torch encoder/decoder/classifier → one model folder that meets the
model contract (docs/models.md): ``encoder.onnx`` (optional), ``decoder.onnx``,
``classifier.onnx`` (optional), ``card.json`` and ``manifest.json``.

The user's modules are probed once on a few inputs to learn what they return, then adapted
only where they differ from the contract (a wrapper is added only when needed, so a module
that already meets it is exported as it is):

- encoder: takes images ``[N, C, H, W]`` — or, tried in this order when that fails, flat
  ``[N, C·H·W]``, then ``[N, H, W]`` (C = 1) or ``[N, H, W, C]``; the exported encoder always
  takes ``[N, C, H, W]``. It returns the code ``[N, d]`` (more dims are flattened), or a tuple
  or dict of which ``code`` names the code (``code=0`` for ``(mu, logvar)``, ``code="mu"``)
  and, optionally, ``logvar`` the log-variance, kept as the graph's second output ``logvar``.
- decoder: takes ``[N, d]``, returns images in [0, 1] as ``[N, C, H, W]``, ``[N, C·H·W]``,
  ``[N, H, W]`` (C = 1) or ``[N, H, W, C]``; the exported decoder always returns
  ``[N, C, H, W]``. Values outside [0, 1] are refused (end the decoder with a Sigmoid).
- classifier: takes images like the encoder, returns logits ``[N, K]``, or a tuple/dict of
  which ``logits`` (and optionally ``features``, ``[N, F]``) name the outputs.

The folder is built under a temporary name and swapped in only when every model passed.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch
from latent_atlas.export.onnx_export import (
    PARITY_BATCHES,
    _first_line,
    _run_torch,
    export_one,
    session_for,
    write_manifest,
)
from latent_atlas.toolkit.atomic import atomic_dir, write_json
from latent_atlas.toolkit.errors import AtlasError
from torch import nn

if TYPE_CHECKING:
    from latent_atlas.toolkit.data import ImageDataset
    from latent_atlas.toolkit.train import TrainRecord

Selector = str | int | None
N_PARITY = max(PARITY_BATCHES)
# Pixels within this of [0, 1] count as in range (a float32 sigmoid can round to 1 + 1 ulp).
RANGE_SLACK = 1e-6


@dataclass(frozen=True)
class ExportedModel:
    """What ``export_model`` wrote: the folder and its card (also in ``folder/card.json``)."""

    folder: Path
    card: dict[str, Any]

    @property
    def files(self) -> list[str]:
        return [f["file"] for f in self.card["files"]]


# ---------------------------------------------------------------------------- adapters
def _pick(out: Any, key: Selector, what: str, flag: str) -> torch.Tensor:
    """The output ``key`` names, of a module that returned ``out`` (a tensor, tuple or dict)."""
    if isinstance(out, torch.Tensor):
        if key is not None:
            raise AtlasError(
                f"{what}: returns one tensor, but {flag}={key!r} was given; "
                f"expected {flag} only for a {what} that returns a tuple or dict"
            )
        return out
    if isinstance(out, Mapping):
        keys = list(out)
        if key not in out:
            raise AtlasError(
                f"{what}: returns a dict with keys {keys}; "
                f"{'no ' + flag + ' was given' if key is None else f'{flag}={key!r} is not one'}"
                f"; expected {flag}= one of {keys}"
            )
        value = out[key]
    elif isinstance(out, tuple | list):
        fields = getattr(out, "_fields", ())
        if isinstance(key, str) and key in fields:
            key = fields.index(key)
        if not isinstance(key, int) or not -len(out) <= key < len(out):
            names = f" ({', '.join(fields)})" if fields else ""
            raise AtlasError(
                f"{what}: returns a {type(out).__name__} of {len(out)} outputs{names}; "
                f"{'no ' + flag + ' was given' if key is None else f'{flag}={key!r} is not one'}"
                f"; expected {flag}= an index 0..{len(out) - 1}"
            )
        value = out[key]
    else:
        raise AtlasError(f"{what}: returns {type(out).__name__}; expected a tensor, tuple or dict")
    if not isinstance(value, torch.Tensor):
        raise AtlasError(f"{what}: output {key!r} is a {type(value).__name__}, expected a tensor")
    return value


# Input layouts a user's encoder/classifier may expect, in the order they are tried.
LAYOUTS = ("nchw", "flat", "hw", "nhwc")


def _to_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "flat":
        return x.flatten(1)
    if layout == "hw":
        return x[:, 0]
    if layout == "nhwc":
        return x.permute(0, 2, 3, 1)
    return x


class ImagesIn(nn.Module):
    """Feeds ``[N, C, H, W]`` to a module in the layout it wants and picks its outputs."""

    def __init__(
        self, module: nn.Module, layout: str, keys: tuple[Selector, ...], flatten: bool
    ) -> None:
        super().__init__()
        self.module, self.layout, self.keys, self.flatten = module, layout, keys, flatten

    def forward(self, x: torch.Tensor) -> Any:
        out = self.module(_to_layout(x, self.layout))
        picked = [out if k is None else out[k] for k in self.keys]
        if self.flatten:
            picked = [p.flatten(1) for p in picked]
        return picked[0] if len(picked) == 1 else tuple(picked)


class ImagesOut(nn.Module):
    """Reshapes a decoder's output to ``[N, C, H, W]`` (and picks it from a tuple/dict)."""

    def __init__(
        self, module: nn.Module, key: Selector, image_shape: tuple[int, int, int], nhwc: bool
    ) -> None:
        super().__init__()
        self.module, self.key, self.image_shape, self.nhwc = module, key, image_shape, nhwc

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.module(z)
        if self.key is not None:
            out = out[self.key]
        c, h, w = self.image_shape
        if self.nhwc:
            return out.permute(0, 3, 1, 2)
        return out.reshape(-1, c, h, w)


def _resolve_key(out: Any, key: Selector) -> Selector:
    """The index/key to use inside the exported graph (namedtuple field names → index)."""
    if isinstance(out, tuple | list) and isinstance(key, str):
        return list(getattr(out, "_fields", ())).index(key)
    return key


def _call(module: nn.Module, x: torch.Tensor) -> Any:
    with torch.no_grad():
        return module(x)


def _probe_images_in(module: nn.Module, images: np.ndarray, what: str) -> tuple[str, Any]:
    """The first input layout in ``LAYOUTS`` the module accepts, and what it returned."""
    x = torch.from_numpy(images[:3])
    first_error = None
    c = images.shape[1]
    for layout in LAYOUTS:
        if (layout == "hw" and c != 1) or (layout == "nhwc" and c == 1):
            continue
        try:
            return layout, _call(module, _to_layout(x, layout))
        except Exception as exc:  # a user's module raises whatever its layers raise
            first_error = first_error or _first_line(exc)
    raise AtlasError(
        f"{what}: fails on images [N, {', '.join(map(str, images.shape[1:]))}] (and on the "
        f"flat and channels-last layouts): {first_error}; expected a module that takes images "
        "of image_shape"
    )


def adapt_encoder(
    encoder: nn.Module, images: np.ndarray, code: Selector, logvar: Selector = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The module to export as ``encoder.onnx``: image ``[N, C, H, W]`` → code ``[N, d]``,
    and, when ``logvar`` names another output of the encoder, → ``(code, logvar)``, the
    log-variance ``[N, d]`` being the graph's second output (named ``logvar``)."""
    layout, out = _probe_images_in(encoder, images, "encoder")
    z = _pick(out, code, "encoder", "code")
    if z.ndim < 2 or z.shape[0] != 3 or z[0].numel() < 1:
        raise AtlasError(f"encoder: code of shape {list(z.shape)} for 3 images; expected [N, d]")
    flatten = z.ndim > 2
    info = {"input_layout": layout, "latent_dim": int(z[0].numel())}
    keys = [_resolve_key(out, code)]
    if logvar is not None:
        if isinstance(out, torch.Tensor):
            raise AtlasError(
                f"encoder: returns one tensor, but logvar={logvar!r} was given; expected "
                "logvar= only for an encoder that returns a tuple or dict such as (mu, logvar)"
            )
        lv = _pick(out, logvar, "encoder", "logvar")
        keys.append(_resolve_key(out, logvar))
        if keys[0] == keys[1]:
            raise AtlasError(
                f"encoder: logvar={logvar!r} names the same output as the code; expected the "
                "log-variance to be another output than the mean"
            )
        if lv.shape != z.shape:
            raise AtlasError(
                f"encoder: logvar of shape {list(lv.shape)} but code of shape {list(z.shape)}; "
                "expected one log-variance per latent dimension, the same shape as the code"
            )
    as_is = (
        layout == "nchw"
        and not flatten
        and (
            isinstance(out, torch.Tensor)
            or (isinstance(out, tuple) and len(keys) == 2 and keys == list(range(len(out))))
        )
    )
    if as_is:
        return encoder, info
    return ImagesIn(encoder, layout, tuple(keys), flatten), info


def adapt_decoder(
    decoder: nn.Module, codes: np.ndarray, image_shape: tuple[int, int, int], key: Selector = None
) -> nn.Module:
    """The module to export as ``decoder.onnx`` (code ``[N, d]`` → image ``[N, C, H, W]``)."""
    try:
        out = _call(decoder, torch.from_numpy(codes[:3]))
    except Exception as exc:
        raise AtlasError(
            f"decoder: fails on codes [N, {codes.shape[1]}] ({_first_line(exc)}); expected a "
            "module that takes latent codes of latent_dim"
        ) from None
    x = _pick(out, key, "decoder", "image")
    c, h, w = image_shape
    shape = tuple(x.shape[1:])
    accepted = {(c, h, w): "nchw", (c * h * w,): "flat", (h, w, c): "nhwc"}
    if c == 1:
        accepted[(h, w)] = "hw"
    if x.shape[0] != 3 or shape not in accepted:
        raise AtlasError(
            f"decoder: output of shape {list(x.shape)} for 3 codes; expected images "
            f"[N, {c}, {h}, {w}] (or [N, {c * h * w}], or channels last) for image_shape "
            f"{image_shape}"
        )
    if accepted[shape] == "nchw" and isinstance(out, torch.Tensor):
        return decoder
    return ImagesOut(decoder, _resolve_key(out, key), image_shape, accepted[shape] == "nhwc")


def adapt_classifier(
    classifier: nn.Module, images: np.ndarray, logits: Selector, features: Selector
) -> tuple[nn.Module, list[str], dict[str, Any]]:
    """The module to export as ``classifier.onnx`` and its output names (``logits`` and,
    when the classifier has one, ``features``)."""
    layout, out = _probe_images_in(classifier, images, "classifier")
    if isinstance(out, torch.Tensor) and features is not None:
        raise AtlasError(
            "classifier: returns one tensor (logits), but features= was given; expected "
            "features= only for a classifier that returns a tuple or dict"
        )
    lg = _pick(out, logits, "classifier", "logits")
    keys: list[Selector] = [_resolve_key(out, logits)]
    names = ["logits"]
    if features is not None:
        ft = _pick(out, features, "classifier", "features")
        if ft.ndim != 2:
            raise AtlasError(f"classifier: features of shape {list(ft.shape)}, expected [N, F]")
        keys.append(_resolve_key(out, features))
        names.append("features")
    if lg.ndim != 2 or lg.shape[1] < 2:
        raise AtlasError(
            f"classifier: logits of shape {list(lg.shape)} for 3 images; expected [N, K], K >= 2"
        )
    info = {"input_layout": layout, "classes": int(lg.shape[1])}
    as_is = layout == "nchw" and (
        isinstance(out, torch.Tensor) or (isinstance(out, tuple) and keys == list(range(len(out))))
    )
    if as_is:
        return classifier, names, info
    return ImagesIn(classifier, layout, tuple(keys), flatten=False), names, info


class Method(nn.Module):
    """One method of a module (``vae.encode``) as a module of its own, for export."""

    def __init__(self, owner: nn.Module, method: str) -> None:
        super().__init__()
        self.owner, self.method = owner, method

    def forward(self, x: torch.Tensor) -> Any:
        return getattr(self.owner, self.method)(x)


def as_module(part: nn.Module | Callable[..., Any], what: str) -> nn.Module:
    """A module, or a bound method of one (``vae.decode``) wrapped as a module."""
    if isinstance(part, nn.Module):
        return part
    owner = getattr(part, "__self__", None)
    if isinstance(owner, nn.Module) and callable(part):
        return Method(owner, part.__name__)
    raise AtlasError(
        f"{what}: {type(part).__name__}; expected a torch.nn.Module or a method of one "
        "(such as vae.decode)"
    )


# ---------------------------------------------------------------------------- inputs
def _on_cpu_float32(module: nn.Module) -> nn.Module:
    """The module in eval mode on the CPU in float32; a copy when it is not there already (the
    caller's module is never moved or cast). Eval mode is set on the caller's module."""
    tensors = list(module.parameters()) + list(module.buffers())
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        module = copy.deepcopy(module).cpu().float()
    return module.eval()


def parity_images(
    image_shape: tuple[int, int, int], dataset: ImageDataset | None, seed: int
) -> np.ndarray:
    """513 images ``[513, C, H, W]``: the dataset's test images (repeated when the split is
    smaller), else seeded uniform noise in [0, 1)."""
    if dataset is None:
        rng = np.random.default_rng(seed)
        return rng.random((N_PARITY, *image_shape), dtype=np.float32)
    test = dataset.test.images
    if tuple(test.shape[1:]) != tuple(image_shape):
        raise AtlasError(
            f"dataset {dataset.name}: images of shape {list(test.shape[1:])}, but image_shape is "
            f"{list(image_shape)}; expected the shape the models were trained on"
        )
    return np.ascontiguousarray(np.take(test, np.arange(N_PARITY) % len(test), axis=0))


def _image_shape(value: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(value)
    if len(shape) != 3 or not all(isinstance(n, int) and n >= 1 for n in shape):
        raise AtlasError(f"image_shape: {value!r}, expected (C, H, W), three integers >= 1")
    return shape


def _check_range(module: nn.Module, codes: np.ndarray) -> None:
    """Refuse a decoder whose images leave [0, 1] on the parity codes."""
    x = _run_torch(module, codes, "decoder")[0]
    lo, hi = float(x.min()), float(x.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise AtlasError("decoder: outputs NaN or inf; expected images in [0, 1]")
    if lo < -RANGE_SLACK or hi > 1 + RANGE_SLACK:
        raise AtlasError(
            f"decoder: outputs values in [{lo:.3g}, {hi:.3g}]; expected images in [0, 1]: "
            "end the decoder with a Sigmoid (it outputs logits or unbounded values)"
        )


# ---------------------------------------------------------------------------- the folder
def write_model_files(
    folder: Path,
    *,
    image_shape: tuple[int, int, int],
    decoder: nn.Module | Callable[..., Any] | None = None,
    encoder: nn.Module | Callable[..., Any] | None = None,
    classifier: nn.Module | Callable[..., Any] | None = None,
    class_names: Sequence[str] | None = None,
    code: Selector = None,
    logvar: Selector = None,
    image: Selector = None,
    logits: Selector = None,
    features: Selector = None,
    latent_dim: int | None = None,
    dataset: ImageDataset | None = None,
    kind: str = "autoencoder",
    metadata: Mapping[str, str] | None = None,
    record: TrainRecord | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    seed: int = 0,
) -> dict[str, Any]:
    """Export, check and write the models and ``card.json`` into ``folder`` (which the caller
    builds aside and swaps in); returns the card. Shared by ``export_model`` and the export of
    our own trained runs."""
    if decoder is None and classifier is None:
        raise AtlasError("export: nothing to export; expected a decoder and/or a classifier")
    if encoder is not None and decoder is None:
        raise AtlasError("export: an encoder without a decoder; expected a decoder too")
    if class_names is not None:
        class_names = [str(n) for n in class_names]
    elif dataset is not None:
        class_names = list(dataset.class_names)
    images = parity_images(image_shape, dataset, seed)
    meta: dict[str, str] = {"kind": kind, "image_shape": ",".join(map(str, image_shape))}
    if class_names is not None:
        meta["class_names"] = json.dumps(class_names)
    if dataset is not None:
        meta |= {"dataset": dataset.name, "dataset_sha256": dataset.sha256}
    meta |= dict(metadata or {})
    files: list[dict[str, Any]] = []
    onnx_metrics: dict[str, float] = {}
    layouts: dict[str, str] = {}
    if decoder is not None:
        codes = None
        if encoder is not None:
            enc, info = adapt_encoder(
                _on_cpu_float32(as_module(encoder, "encoder")), images, code, logvar
            )
            layouts["encoder"] = info["input_layout"]
            if latent_dim is not None and latent_dim != info["latent_dim"]:
                raise AtlasError(
                    f"latent_dim: {latent_dim}, but the encoder gives "
                    f"{info['latent_dim']}-d codes; expected them to agree"
                )
            latent_dim = info["latent_dim"]
            with torch.no_grad():
                encoded = enc(torch.from_numpy(images))
            codes = (encoded[0] if isinstance(encoded, tuple) else encoded).numpy()
        elif code is not None or logvar is not None:
            which = "code" if code is not None else "logvar"
            raise AtlasError(f"{which}: given without an encoder; expected it only with encoder=")
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise AtlasError(
                f"latent_dim: {latent_dim!r}; expected an integer >= 1 (needed when there is "
                "no encoder to learn it from)"
            )
        if codes is None:
            codes = np.random.default_rng(seed).standard_normal((N_PARITY, latent_dim))
            codes = codes.astype(np.float32)
        dec = adapt_decoder(
            _on_cpu_float32(as_module(decoder, "decoder")), codes, image_shape, image
        )
        _check_range(dec, codes)
        ae_meta = meta | {"latent_dim": str(latent_dim)}
        if encoder is not None:
            # the mean keeps its name and first place; the log-variance, when kept, is second
            outputs = ["z", "logvar"] if logvar is not None else ["z"]
            files.append(export_one(enc, images, "image", outputs, ae_meta | {"role": "encoder"},
                                    folder / "encoder.onnx", atol, rtol))  # fmt: skip
        files.append(export_one(dec, codes, "z", ["image"], ae_meta | {"role": "decoder"},
                                folder / "decoder.onnx", atol, rtol))  # fmt: skip
    if classifier is not None:
        clf, names, info = adapt_classifier(
            _on_cpu_float32(as_module(classifier, "classifier")), images, logits, features
        )
        layouts["classifier"] = info["input_layout"]
        if class_names is not None and info["classes"] != len(class_names):
            raise AtlasError(
                f"classifier: {info['classes']} logits, but there are {len(class_names)} class "
                "names; expected one logit per class"
            )
        clf_meta = meta | {"role": "classifier"}
        path = folder / "classifier.onnx"
        files.append(export_one(clf, images, "image", names, clf_meta, path, atol, rtol))
        if dataset is not None:
            onnx_metrics["accuracy"] = onnx_accuracy(path, dataset)
    card: dict[str, Any] = {
        "kind": kind,
        "metadata": meta | ({"role": "classifier"} if decoder is None else {}),
        "files": files,
        "test_metrics": dict(record.test_metrics) if record else {},
        "test_metrics_onnx": onnx_metrics,
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__},
    }
    if any(layout != "nchw" for layout in layouts.values()):
        card["input_layouts"] = layouts
    if record is not None:
        card |= {
            "train_config": record.train_config,
            "model_config": record.model_config,
            "train_seconds": record.train_seconds,
            "epochs": len(record.history),
            "final_train_loss": record.history[-1]["loss"] if record.history else None,
        }
    write_json(folder / "card.json", card)
    return card


def onnx_accuracy(path: Path, dataset: ImageDataset, batch: int = 2000) -> float:
    """Accuracy of the written classifier on every test image, through onnxruntime."""
    session = session_for(onnx.load(path), str(path))
    x, y = dataset.test.images, dataset.test.labels
    name = session.get_inputs()[0].name
    logits = np.concatenate(
        [session.run(["logits"], {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)]
    )
    return float((logits.argmax(1) == y).mean())


def export_model(
    out: str | Path,
    *,
    decoder: nn.Module | Callable[..., Any],
    image_shape: Sequence[int],
    encoder: nn.Module | Callable[..., Any] | None = None,
    classifier: nn.Module | Callable[..., Any] | None = None,
    class_names: Sequence[str] | None = None,
    code: Selector = None,
    logvar: Selector = None,
    image: Selector = None,
    logits: Selector = None,
    features: Selector = None,
    latent_dim: int | None = None,
    dataset: ImageDataset | None = None,
    kind: str = "autoencoder",
    metadata: Mapping[str, str] | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    seed: int = 0,
    overwrite: bool = False,
) -> ExportedModel:
    """Export a torch autoencoder (and optionally a classifier) as a model folder ``out``.

    Parameters
    ----------
    out : folder to write: ``encoder.onnx`` (with ``encoder``), ``decoder.onnx``,
        ``classifier.onnx`` (with ``classifier``), ``card.json``, ``manifest.json``. Built
        aside and swapped in only when every model passed its checks.
    decoder : module (or a module's method, such as ``vae.decode``), latent codes ``[N, d]``
        → images in [0, 1] (see the module docstring for the accepted output shapes).
    image_shape : ``(C, H, W)`` of the images.
    encoder : module, images → code, or a tuple/dict holding it (then ``code`` says which).
    classifier : module, images → logits ``[N, K]``, or a tuple/dict (``logits``/``features``).
    class_names : K names; default the dataset's.
    code, image, logits, features : index or key of that output, for a module that returns a
        tuple or dict (``code=0`` for an encoder returning ``(mu, logvar)``, ``code="mu"`` for
        a dict; ``image`` for the decoder's).
    logvar : index or key of the encoder's log-variance output (``logvar=1`` for
        ``(mu, logvar)``, ``logvar="logvar"`` for a dict), ``[N, d]`` like the code; when given,
        ``encoder.onnx`` has it as a second output named ``logvar`` (parity-checked like the
        code), which readers use for per-dimension KL. None: the mean only.
    latent_dim : d; needed only without an encoder.
    dataset : an ``ImageDataset`` whose test images drive the parity checks (and the
        classifier's accuracy in the card); default seeded random inputs in range.
    kind, metadata : free text written into every model's metadata (``kind``, extra keys).
    atol, rtol : onnxruntime-vs-torch tolerance at batch sizes 1, 7 and 513.
    seed : seed of the random parity inputs.
    overwrite : replace an existing ``out`` that latent-atlas did not write (a folder it
        wrote is always replaced; an unmarked one is refused without this).

    Returns
    -------
    ExportedModel : the folder and its card.
    """
    shape = _image_shape(image_shape)
    check_tolerances(atol, rtol)
    out = Path(out)
    with atomic_dir(out, overwrite) as tmp:
        card = write_model_files(
            tmp, image_shape=shape, decoder=decoder, encoder=encoder, classifier=classifier,
            class_names=class_names, code=code, logvar=logvar, image=image, logits=logits,
            features=features,
            latent_dim=latent_dim, dataset=dataset, kind=kind, metadata=metadata,
            atol=atol, rtol=rtol, seed=seed,
        )  # fmt: skip
        write_manifest(tmp)
    return ExportedModel(out, card)


def check_tolerances(atol: float, rtol: float) -> None:
    """Parity tolerances: finite numbers >= 0 (``allclose(o, r, atol, rtol)``)."""
    for name, value in (("atol", atol), ("rtol", rtol)):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not 0 <= value < math.inf:
            raise AtlasError(f"--{name}: {value!r}, expected a finite tolerance >= 0")
