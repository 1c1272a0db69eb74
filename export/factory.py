"""``latent-atlas export --module FILE.py:FUNCTION --weights FILE.pt``: a user's own model,
built by a function in their file, its weights loaded with ``weights_only=True``, exported
through ``export_model``.

The function takes no arguments and returns an ``nn.Module`` whose state dict matches the
weights (a plain state dict, or a checkpoint dict holding one under ``state_dict``,
``model_state_dict`` or ``model``). Its decoder is ``model.decode`` (a method) or
``model.decoder`` (a submodule); its encoder, when it has one, ``model.encode`` or
``model.encoder``. Running the user's file runs their code: that is what they asked for.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from latent_atlas.export.model_export import (
    ExportedModel,
    Method,
    Selector,
    _first_line,
    check_tolerances,
    export_model,
)
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.train import load_weights
from torch import nn

if TYPE_CHECKING:
    from latent_atlas.toolkit.data import ImageDataset

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")


@dataclass(frozen=True)
class ModuleExportConfig:
    """What ``export --module`` needs; checks its values itself (the CLI only maps flags)."""

    module: str  # "path/to/file.py:function"
    weights: Path
    out: Path
    image_shape: tuple[int, int, int] | None = None  # None: the dataset's
    encoder_output: Selector = None  # which output of a tuple/dict encoder is the code
    encoder_logvar: Selector = None  # and which its log-variance (kept as output "logvar")
    latent_dim: int | None = None  # needed for a decoder-only model
    atol: float = 1e-5
    rtol: float = 1e-5
    overwrite: bool = False  # replace an --out folder that latent-atlas did not write

    def __post_init__(self) -> None:
        file, sep, func = self.module.rpartition(":")
        if not sep or not file.endswith(".py") or not func.isidentifier():
            raise AtlasError(
                f"--module {self.module!r}: expected FILE.py:FUNCTION, e.g. my_models.py:build_vae"
            )
        object.__setattr__(self, "weights", Path(self.weights))
        object.__setattr__(self, "out", Path(self.out))
        if self.image_shape is not None:
            shape = tuple(self.image_shape)
            if len(shape) != 3 or not all(isinstance(n, int) and n >= 1 for n in shape):
                raise AtlasError(f"--image-shape: {list(shape)}, expected C H W, integers >= 1")
            object.__setattr__(self, "image_shape", shape)
        for key in ("encoder_output", "encoder_logvar"):
            out = getattr(self, key)
            if isinstance(out, str) and out.lstrip("-").isdigit():
                object.__setattr__(self, key, int(out))  # "0" from the command line
        if self.encoder_logvar is not None and self.encoder_output is None:
            raise AtlasError(
                f"--encoder-logvar {self.encoder_logvar!r}: given without --encoder-output; "
                "expected both for an encoder that returns (mu, logvar), e.g. "
                "--encoder-output 0 --encoder-logvar 1"
            )
        if self.latent_dim is not None and (
            not isinstance(self.latent_dim, int) or self.latent_dim < 1
        ):
            raise AtlasError(f"--latent-dim: {self.latent_dim!r}, expected an integer >= 1")
        check_tolerances(self.atol, self.rtol)

    @property
    def file(self) -> Path:
        return Path(self.module.rpartition(":")[0])

    @property
    def function(self) -> str:
        return self.module.rpartition(":")[2]


def load_factory(file: Path, function: str) -> Any:
    """Import ``file`` under a private module name and return its ``function``."""
    if not file.is_file():
        raise AtlasError(f"--module {file}: not found; expected a Python file")
    name = f"_latent_atlas_user_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise AtlasError(f"--module {file}: cannot be imported; expected a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise AtlasError(f"--module {file}: importing it failed ({_first_line(exc)})") from None
    factory = getattr(module, function, None)
    if not callable(factory):
        raise AtlasError(f"--module {file}: has no function {function!r}")
    return factory


def _state_dict(raw: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(raw, dict) and raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
        return raw
    if isinstance(raw, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(raw.get(key), dict):
                return _state_dict(raw[key], path)
    raise AtlasError(
        f"checkpoint {path}: holds no state dict (a dict of tensors, or one under "
        f"{', '.join(STATE_DICT_KEYS)}); expected torch.save(model.state_dict(), ...)"
    )


def build_model(cfg: ModuleExportConfig) -> nn.Module:
    """The user's module, built by their function, with the weights loaded."""
    factory = load_factory(cfg.file, cfg.function)
    try:
        model = factory()
    except Exception as exc:
        raise AtlasError(f"--module {cfg.module}: calling it failed ({_first_line(exc)})") from None
    if not isinstance(model, nn.Module):
        raise AtlasError(
            f"--module {cfg.module}: returned {type(model).__name__}; expected a torch.nn.Module"
        )
    state = _state_dict(load_weights(cfg.weights), cfg.weights)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        missing = set(model.state_dict()) - set(state)
        extra = set(state) - set(model.state_dict())
        detail = (
            f"missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]}"
            if missing or extra
            else _first_line(exc)
        )
        raise AtlasError(
            f"checkpoint {cfg.weights}: does not fit the module {cfg.module} ({detail}); "
            "expected the state dict of the model that function builds"
        ) from None
    return model.eval()


def part(model: nn.Module, role: str) -> nn.Module | None:
    """``model.encode``/``model.decode`` (a method) or ``model.encoder``/``model.decoder``."""
    verb = role.removesuffix("r")  # encoder → encode
    if callable(getattr(type(model), verb, None)):
        return Method(model, verb)
    sub = getattr(model, role, None)
    return sub if isinstance(sub, nn.Module) else None


def export_factory(cfg: ModuleExportConfig, dataset: ImageDataset | None = None) -> ExportedModel:
    """Build the user's model, find its encoder and decoder, and export them to ``cfg.out``."""
    shape = cfg.image_shape
    if dataset is not None:
        if shape is not None and tuple(shape) != dataset.image_shape:
            raise AtlasError(
                f"--image-shape {list(shape)}: the dataset {dataset.name} has images of "
                f"{list(dataset.image_shape)}; expected them to agree (or leave one out)"
            )
        shape = dataset.image_shape
    if shape is None:
        raise AtlasError("--image-shape: missing; expected C H W (or --data to take it from)")
    model = build_model(cfg)
    decoder = part(model, "decoder")
    if decoder is None:
        raise AtlasError(
            f"--module {cfg.module}: the module has no decode() method and no .decoder; "
            "expected an autoencoder with one of them"
        )
    return export_model(
        cfg.out, decoder=decoder, encoder=part(model, "encoder"), image_shape=shape,
        code=cfg.encoder_output, logvar=cfg.encoder_logvar, latent_dim=cfg.latent_dim,
        dataset=dataset, metadata={"source": f"{cfg.file.name}:{cfg.function}"}, atol=cfg.atol,
        rtol=cfg.rtol, overwrite=cfg.overwrite,
    )  # fmt: skip
