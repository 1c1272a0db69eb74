"""One small wrapper over ``onnxruntime.InferenceSession``.

It refuses what it should not run (external data, custom operator domains, inputs of the wrong
kind), picks the execution provider (``auto``: CUDA when it really loads, else CPU), says which
provider was actually used, and validates every input before onnxruntime sees it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from latent_atlas.toolkit.errors import AtlasError

PROVIDERS = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
STANDARD_DOMAINS = {"", "ai.onnx"}
IMAGE_SHAPE = (1, 28, 28)
ROLES = ("encoder", "decoder", "classifier")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_providers(requested: str, available: list[str]) -> list[str]:
    """The provider list to ask onnxruntime for. ``cuda`` demanded but not installed is an error."""
    if requested not in ("auto", "cuda", "cpu"):
        raise AtlasError(f"--provider: {requested!r}, expected auto, cuda or cpu")
    cuda = PROVIDERS["cuda"]
    if requested == "cpu":
        return [PROVIDERS["cpu"]]
    if cuda in available:
        return [cuda, PROVIDERS["cpu"]]
    if requested == "cuda":
        raise AtlasError(
            "--provider cuda: onnxruntime has no CUDAExecutionProvider here "
            f"(available: {', '.join(available)}); install the 'gpu' extra (onnxruntime-gpu)"
        )
    return [PROVIDERS["cpu"]]


def _with_options(provider: str) -> str | tuple[str, dict[str, str]]:
    # TF32 (onnxruntime's CUDA default on Ampere and newer) keeps 10 mantissa bits: errors of
    # ~1e-3 relative, far above CPU float32. A measuring tool wants float32 on both.
    return (provider, {"use_tf32": "0"}) if provider == PROVIDERS["cuda"] else provider


def check_used_provider(requested: str, used: list[str]) -> str:
    """Name the provider a session really runs on; CUDA demanded but fallen back is an error."""
    actual = "cuda" if used and used[0] == PROVIDERS["cuda"] else "cpu"
    if requested == "cuda" and actual != "cuda":
        raise AtlasError(
            "--provider cuda: the CUDA provider failed to load (missing CUDA/cuDNN libraries?) "
            "and onnxruntime fell back to the CPU"
        )
    return actual


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise AtlasError(f"model {path}: not found; expected an .onnx file")
    raw = path.read_bytes()
    if not raw:
        raise AtlasError(f"model {path}: empty file; expected an ONNX model")
    return raw


def read_onnx(path: Path) -> onnx.ModelProto:
    """Parse an ONNX file and refuse what must not reach onnxruntime (before it sees the file)."""
    path = Path(path)
    return _parse(_read_bytes(path), path)


def _parse(raw: bytes, path: Path) -> onnx.ModelProto:
    try:
        model = onnx.load_model_from_string(raw)
    except Exception:  # protobuf DecodeError and friends
        raise AtlasError(f"model {path}: not a valid ONNX file (protobuf parse failed)") from None
    if not model.graph.node or not model.graph.input or not model.opset_import:
        raise AtlasError(f"model {path}: not a usable ONNX model (empty graph or no opset)")
    tensors = list(model.graph.initializer) + [
        a.t for n in model.graph.node for a in n.attribute if a.HasField("t")
    ]
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in tensors):
        raise AtlasError(
            f"model {path}: uses external data (.onnx.data); expected one self-contained file"
        )
    domains = {op.domain for op in model.opset_import} | {n.domain for n in model.graph.node}
    if domains - STANDARD_DOMAINS:
        raise AtlasError(
            f"model {path}: operator domain(s) {sorted(domains - STANDARD_DOMAINS)}; "
            "expected only the standard ONNX domain"
        )
    return model


@dataclass
class OnnxModel:
    """An ONNX encoder, decoder or classifier behind the project's contract.

    Encoders and classifiers take float32 images ``[N, 1, 28, 28]`` in [0, 1]; decoders take
    ``[N, latent_dim]`` and return images. ``provider`` is the one really used.
    """

    path: Path
    role: str
    session: ort.InferenceSession
    provider: str
    metadata: dict[str, str]
    input_name: str
    input_dims: list[int | str]
    output_names: list[str]
    latent_dim: int
    sha256: str = ""

    @property
    def classes(self) -> int:
        return int(self.session.get_outputs()[0].shape[-1])

    def _check(self, x: np.ndarray, name: str) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype != np.float32:
            raise AtlasError(f"{name}: dtype {x.dtype}, expected float32")
        if len(x) == 0:
            raise AtlasError(f"{name}: empty batch, expected at least one row")
        if not np.isfinite(x).all():
            raise AtlasError(f"{name}: contains NaN or inf, expected finite values")
        if self.role == "decoder":
            if x.ndim != 2 or x.shape[1] != self.latent_dim:
                raise AtlasError(
                    f"{name}: shape {tuple(x.shape)}, expected [N, {self.latent_dim}] "
                    f"for decoder {self.path.name}"
                )
        else:
            if x.shape[1:] != IMAGE_SHAPE:
                raise AtlasError(f"{name}: shape {tuple(x.shape)}, expected [N, 1, 28, 28]")
            if len(self.input_dims) == 2:  # a user's model that takes flat [N, 784] images
                x = x.reshape(len(x), -1)
        return np.ascontiguousarray(x)

    def run(self, x: np.ndarray, batch_size: int = 4096) -> list[np.ndarray]:
        """Run all outputs over ``x`` in batches; returns one array per graph output."""
        x = self._check(x, f"input to {self.role} {self.path.name}")
        parts: list[list[np.ndarray]] = [[] for _ in self.output_names]
        for start in range(0, len(x), batch_size):
            outs = self.session.run(None, {self.input_name: x[start : start + batch_size]})
            for acc, out in zip(parts, outs, strict=True):
                acc.append(out)
        return [p[0] if len(p) == 1 else np.concatenate(p) for p in parts]

    def __call__(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """First output; decoders' images come back as ``[N, 28, 28]``."""
        out = self.run(x, batch_size)[0]
        return out.reshape(len(out), 28, 28) if self.role == "decoder" else out


def _infer_role(model: onnx.ModelProto) -> str:
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("role") in ROLES:
        return meta["role"]
    dims = _dims(model.graph.input[0])
    if len(dims) == 2 and dims[1] != 784:
        return "decoder"
    out_dims = _dims(model.graph.output[0])
    return "classifier" if len(model.graph.output) > 1 or out_dims[-1] == 10 else "encoder"


def load_model(
    path: Path | str,
    role: str | None = None,
    provider: str = "auto",
    threads: int = 0,
    expected_sha256: str | None = None,
) -> OnnxModel:
    """Load an ONNX model for ``role`` (inferred from its metadata or shapes when None)."""
    path = Path(path)
    raw = _read_bytes(path)  # read once: hashed, parsed and handed to onnxruntime as bytes
    digest = hashlib.sha256(raw).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise AtlasError(
            f"model {path}: sha256 {digest[:12]}… differs from the manifest's "
            f"{expected_sha256[:12]}…; the file was changed after export"
        )
    model = _parse(raw, path)
    role = role or _infer_role(model)
    if len(model.graph.input) != 1:
        raise AtlasError(f"model {path}: {len(model.graph.input)} inputs, expected exactly one")
    inp = model.graph.input[0]
    dims = _dims(inp)
    if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise AtlasError(f"model {path}: input {inp.name!r} is not float32")
    out_dims = [_dims(o) for o in model.graph.output]
    meta = {p.key: p.value for p in model.metadata_props}
    if role == "decoder":
        if len(dims) != 2 or not isinstance(dims[1], int) or dims[1] < 1:
            raise AtlasError(f"model {path}: decoder input of shape {dims}, expected [N, d]")
        if out_dims[0][1:] not in ([1, 28, 28], [784], [28, 28]):
            raise AtlasError(
                f"model {path}: decoder output of shape {out_dims[0]}, "
                "expected [N, 1, 28, 28] or [N, 784]"
            )
        latent_dim = int(dims[1])
    else:
        if dims[1:] not in ([1, 28, 28], [784]):
            raise AtlasError(
                f"model {path}: {role} input of shape {dims}, expected [N, 1, 28, 28] or [N, 784]"
            )
        latent_dim = int(out_dims[0][-1]) if role == "encoder" else 0
        if role == "encoder" and len(out_dims[0]) != 2:
            raise AtlasError(f"model {path}: encoder output {out_dims[0]}, expected [N, d]")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    wanted = resolve_providers(provider, ort.get_available_providers())
    if wanted[0] == PROVIDERS["cuda"] and hasattr(ort, "preload_dlls"):
        # onnxruntime-gpu finds CUDA/cuDNN from the nvidia-* pip packages (torch's) this way;
        # if that fails, the session falls back and check_used_provider says so.
        with contextlib.suppress(Exception):
            ort.preload_dlls()
    try:
        session = ort.InferenceSession(raw, opts, providers=[_with_options(p) for p in wanted])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise AtlasError(f"model {path}: onnxruntime refused it ({first})") from None
    used = check_used_provider(provider, session.get_providers())
    return OnnxModel(
        path=path, role=role, session=session, provider=used, metadata=meta,
        input_name=inp.name, input_dims=dims, output_names=[o.name for o in model.graph.output],
        latent_dim=latent_dim, sha256=digest,
    )  # fmt: skip


def check_pair(encoder: OnnxModel, decoder: OnnxModel) -> None:
    """Refuse an encoder/decoder pair whose latent dims or image shapes disagree."""
    if encoder.latent_dim != decoder.latent_dim:
        raise AtlasError(
            f"models {encoder.path} and {decoder.path}: encoder gives {encoder.latent_dim}-d "
            f"codes but the decoder takes {decoder.latent_dim}-d codes"
        )
    for m in (encoder, decoder):
        shape = m.metadata.get("image_shape")
        if shape and shape != "1,28,28":
            raise AtlasError(f"model {m.path}: image_shape {shape}, expected 1,28,28")


def read_manifest(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` from the nearest ``manifest.json`` at or above ``folder``."""
    folder = Path(folder).resolve()
    for candidate in (folder, *folder.parents[:2]):
        path = candidate / "manifest.json"
        if path.is_file():
            try:
                files = json.loads(path.read_text())["files"]
            except (ValueError, KeyError) as exc:
                raise AtlasError(f"manifest {path}: unreadable ({exc})") from None
            return {str((candidate / k).resolve()): v for k, v in files.items()}
    return {}


@dataclass
class ModelPair:
    """Encoder and decoder of one autoencoder, loaded from a folder with encoder.onnx and
    decoder.onnx (hashes checked against a manifest.json when there is one)."""

    name: str
    folder: Path
    encoder: OnnxModel
    decoder: OnnxModel

    @property
    def latent_dim(self) -> int:
        return self.decoder.latent_dim

    @property
    def image_shape(self) -> tuple[int, ...]:
        return IMAGE_SHAPE

    def encode(self, images: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Codes ``[N, latent_dim]`` of float32 images ``[N, 1, 28, 28]`` in [0, 1]."""
        return self.encoder(images, batch_size)

    def decode(self, z: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Images ``[N, 28, 28]`` in [0, 1] of float32 codes ``[N, latent_dim]``."""
        return self.decoder(z, batch_size)

    @classmethod
    def from_dir(
        cls, folder: Path | str, provider: str = "auto", threads: int = 0, name: str = ""
    ) -> ModelPair:
        folder = Path(folder)
        if not folder.is_dir():
            raise AtlasError(f"model folder {folder}: does not exist")
        manifest = read_manifest(folder)
        models = {}
        for role in ("encoder", "decoder"):
            path = folder / f"{role}.onnx"
            models[role] = load_model(
                path, role, provider, threads, manifest.get(str(path.resolve()))
            )
        check_pair(models["encoder"], models["decoder"])
        return cls(name or folder.name, folder, models["encoder"], models["decoder"])


def load_classifier(
    path: Path | str, classes: int, provider: str = "auto", threads: int = 0
) -> OnnxModel:
    path = Path(path)
    manifest = read_manifest(path.parent)
    model = load_model(path, "classifier", provider, threads, manifest.get(str(path.resolve())))
    if model.classes != classes:
        raise AtlasError(
            f"model {path}: classifier gives {model.classes} classes, the dataset has {classes}"
        )
    return model
