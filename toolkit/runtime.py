"""Loading and running ONNX models behind the model contract (``docs/models.md``).

One wrapper over ``onnxruntime.InferenceSession`` per file. It refuses what it should not run
(external data, custom operator domains, a fixed batch dimension, inputs of the wrong kind),
learns each model's image shape and layout from the graph (after ``onnx.shape_inference``, plus
one probe run of a 2-row batch where inference leaves a symbol), picks the execution provider
(``auto``: CUDA when it really loads, else CPU), says which provider was actually used, and
converts between our one image convention — float32 ``[N, C, H, W]`` in [0, 1] — and the
file's own layout (NCHW, NHWC, ``[N, H, W]`` or flat).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from latent_atlas.toolkit import onnx_checks
from latent_atlas.toolkit.batching import activation_batch, budget_for
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.onnx_checks import run_error

PROVIDERS = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
STANDARD_DOMAINS = {"", "ai.onnx"}
ROLES = ("encoder", "decoder", "classifier")
LAYOUTS = ("NCHW", "NHWC", "NHW", "flat")
CHANNELS = (1, 3)  # grayscale or RGB
# Rows per onnxruntime call unless the caller says otherwise: large enough to keep the GEMMs
# efficient, small enough that a classifier's activations stay in the tens of MB.
DEFAULT_BATCH = 4096
DYNAMIC_BATCH_FIX = (
    "export it with a dynamic batch dimension: torch.onnx.export(..., dynamo=True, "
    "dynamic_shapes=({0: torch.export.Dim('batch')},)) or, with the TorchScript exporter, "
    "dynamic_axes={'<input>': {0: 'batch'}, '<output>': {0: 'batch'}}"
)
EXTERNAL_DATA_FIX = (
    "save it as one file: torch.onnx.export(..., external_data=False), or "
    "onnx.save(onnx.load(path), path, save_as_external_data=False)"
)

Shape = tuple[int, int, int]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------- providers
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


# ---------------------------------------------------------------------------- parsing
def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    """A tensor's dims: ints where known, the symbol (or "?") where not."""
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in value_info.type.tensor_type.shape.dim
    ]


def _read_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise AtlasError(f"model {path}: is a folder; expected an .onnx file")
    if not path.exists():
        raise AtlasError(f"model {path}: not found; expected an .onnx file")
    # a FIFO, a device (/dev/zero), a socket: refused from its metadata, never opened (a FIFO
    # would block the read for ever)
    onnx_checks.check_file_size(path)  # before reading a byte
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
    # external data and custom domains in every graph and subgraph; onnx.checker's full check
    onnx_checks.check_model(model, path, EXTERNAL_DATA_FIX)
    return model


def _inferred(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with shapes propagated through the graph (TorchScript and tf2onnx files often
    leave output dims as symbols such as ``Sigmoid_dim_2`` that inference resolves)."""
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # inference is a help, not a requirement: the probe run decides
        return model


# ---------------------------------------------------------------------------- image layouts
def _layout_of(dims: list[int | str], meta_layout: str | None = None) -> str:
    """How a file lays out an image batch, from its dims (batch first)."""
    rank = len(dims)
    if meta_layout in LAYOUTS:
        return meta_layout
    if rank == 2:
        return "flat"
    if rank == 3:
        return "NHW"
    if rank == 4:
        first, last = dims[1], dims[3]
        if last in CHANNELS and first not in CHANNELS:
            return "NHWC"
        return "NCHW"
    raise AtlasError(f"image tensor of rank {rank} ({dims}); expected [N, C, H, W], "
                     "[N, H, W, C], [N, H, W] or [N, H·W·C]")  # fmt: skip


def _shape_from(dims: list[int | str], layout: str) -> Shape | None:
    """``(C, H, W)`` from a file's image dims, or None where a dim is symbolic or flat."""
    body = dims[1:]
    if not all(isinstance(d, int) and d > 0 for d in body):
        return None
    if layout == "NCHW":
        return (int(body[0]), int(body[1]), int(body[2]))
    if layout == "NHWC":
        return (int(body[2]), int(body[0]), int(body[1]))
    if layout == "NHW":
        return (1, int(body[0]), int(body[1]))
    return None  # flat: the pixel count alone does not say the shape


def _square_shape(pixels: int) -> Shape | None:
    """A flat image of ``pixels`` values read as a square grayscale or RGB image, if it is one
    (``3·s²`` and ``t²`` cannot both hold: √3 is irrational, so the reading is unique)."""
    side = math.isqrt(pixels)
    if side * side == pixels:
        return (1, side, side)
    side = math.isqrt(pixels // 3)
    if pixels % 3 == 0 and 3 * side * side == pixels:
        return (3, side, side)
    return None


def _parse_shape(text: str, where: str) -> Shape:
    try:
        c, h, w = (int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise AtlasError(f"{where}: image_shape {text!r}; expected 'C,H,W'") from None
    if c not in CHANNELS or h < 1 or w < 1:
        raise AtlasError(f"{where}: image_shape {text!r}; expected C in {CHANNELS}, H, W >= 1")
    return (c, h, w)


def to_layout(images: np.ndarray, layout: str) -> np.ndarray:
    """Our ``[N, C, H, W]`` batch in a file's layout."""
    n = len(images)
    if layout == "NCHW":
        return images
    if layout == "NHWC":
        return images.transpose(0, 2, 3, 1)
    if layout == "NHW":
        return images.reshape(n, images.shape[2], images.shape[3])
    return images.reshape(n, -1)


def from_layout(out: np.ndarray, layout: str, shape: Shape) -> np.ndarray:
    """A file's image batch as our ``[N, C, H, W]``."""
    c, h, w = shape
    if layout == "NHWC":
        return out.reshape(len(out), h, w, c).transpose(0, 3, 1, 2)
    return out.reshape(len(out), c, h, w)


# ---------------------------------------------------------------------------- one model
@dataclass
class OnnxModel:
    """One ONNX encoder, decoder or classifier behind the contract.

    Encoders and classifiers take float32 images ``[N, C, H, W]`` in [0, 1]; decoders take
    codes ``[N, latent_dim]`` and return images ``[N, C, H, W]``; the conversion to and from the
    file's ``layout`` happens here. ``provider`` is the one really used.
    """

    path: Path
    role: str
    session: ort.InferenceSession
    provider: str
    metadata: dict[str, str]
    input_name: str
    output_names: list[str]
    layout: str  # the file's image layout: NCHW, NHWC, NHW or flat
    image_shape: Shape  # (C, H, W) as we see it
    latent_dim: int = 0  # encoder output / decoder input; 0 for a classifier
    n_classes: int = 0  # classifier only: width of the logits output
    logits_index: int = 0  # which output holds the code / logits / image
    features_index: int | None = None  # classifier only: a feature output, when there is one
    logvar_index: int | None = None  # encoder only: the log-variance output, when there is one
    probabilities: bool = False  # classifier only: its output is already a distribution
    sha256: str = ""
    # rows per onnxruntime call at most, whatever the caller asks: sized from the graph's
    # activations (toolkit.batching), so a CNN classifier does not hold ~1 GB of arena
    max_batch: int = DEFAULT_BATCH
    _cast_warned: bool = field(default=False, repr=False)

    @property
    def classes(self) -> int:
        return self.n_classes

    @property
    def name(self) -> str:
        return self.path.name

    def _check(self, x: np.ndarray, what: str) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise AtlasError(f"{what}: dtype {x.dtype}, expected float32 numbers")
        if x.dtype != np.float32:  # float64 from a notebook, ints from a literal: cast
            x = x.astype(np.float32)
        if x.ndim == 0 or len(x) == 0:
            raise AtlasError(f"{what}: empty batch, expected at least one row")
        if not np.isfinite(x).all():
            raise AtlasError(f"{what}: contains NaN or inf, expected finite values")
        if self.role == "decoder":
            if x.ndim != 2 or x.shape[1] != self.latent_dim:
                raise AtlasError(
                    f"{what}: shape {tuple(x.shape)}, expected [N, {self.latent_dim}] "
                    f"for decoder {self.path.name}"
                )
            return np.ascontiguousarray(x)
        if x.shape[1:] != self.image_shape:
            c, h, w = self.image_shape
            raise AtlasError(f"{what}: shape {tuple(x.shape)}, expected [N, {c}, {h}, {w}]")
        return np.ascontiguousarray(to_layout(x, self.layout))

    def _session_run(self, feed: np.ndarray) -> list[np.ndarray]:
        try:
            return list(self.session.run(None, {self.input_name: feed}))
        except Exception as exc:  # onnxruntime raises its own types; one line names the model
            raise run_error(exc, f"model {self.path}", len(feed), "onnxruntime failed") from None

    def run(self, x: np.ndarray, batch_size: int = DEFAULT_BATCH) -> list[np.ndarray]:
        """Every graph output over ``x``, in batches; images come back as ``[N, C, H, W]``."""
        if batch_size < 1:
            raise AtlasError(f"batch size {batch_size}: expected >= 1")
        feed = self._check(x, f"input to {self.role} {self.path.name}")
        step = min(batch_size, self.max_batch)
        full: list[np.ndarray] = []  # every output, filled batch by batch (no concatenation:
        # the results are held once, not twice)
        for start in range(0, len(feed), step):
            chunk = feed[start : start + step]
            outs = self._session_run(chunk)
            for i, out in enumerate(outs):
                if len(out) != len(chunk):
                    raise AtlasError(
                        f"model {self.path}: output {self.output_names[i]!r} has {len(out)} rows "
                        f"for {len(chunk)} inputs; expected one row per input"
                    )
            if len(chunk) == len(feed):
                full = outs
                break
            if not full:
                full = [np.empty((len(feed), *o.shape[1:]), o.dtype) for o in outs]
            for target, out in zip(full, outs, strict=True):
                if out.shape[1:] != target.shape[1:]:
                    raise AtlasError(
                        f"model {self.path}: output of shape {out.shape[1:]} per row after "
                        f"{target.shape[1:]}; expected the same shape for every batch"
                    )
                target[start : start + len(chunk)] = out
        outs = full
        if self.role == "decoder":
            image = outs[self.logits_index]
            if image[0].size != int(np.prod(self.image_shape)):
                raise AtlasError(
                    f"model {self.path}: output of {image[0].size} values per row, expected "
                    f"{int(np.prod(self.image_shape))} (image shape {self.image_shape})"
                )
            image = from_layout(image, self.layout, self.image_shape)
            _check_finite_images(image, feed, self.path)
            # one rule for every command: pixels in [0, 1], refused (never clipped) outside
            outs[self.logits_index] = onnx_checks.check_decoded_range(image, self.path)
        else:
            self._check_finite_outputs(outs, len(feed))
        return outs

    def _check_finite_outputs(self, outs: list[np.ndarray], rows: int) -> None:
        """Codes, logits and features must be finite: NaN or inf from the model is refused
        here, naming it, before any measure sees (and blames) an anonymous array."""
        used = [self.logits_index]
        if self.role == "classifier" and self.features_index is not None:
            used.append(self.features_index)
        what = "codes" if self.role == "encoder" else "logits"
        for i in used:
            out = outs[i]
            if out.dtype.kind != "f":
                continue
            bad = ~np.isfinite(out).reshape(len(out), -1).all(axis=1)
            if bad.any():
                name = self.output_names[i] if i < len(self.output_names) else str(i)
                kind = what if i == self.logits_index else "features"
                raise AtlasError(
                    f"model {self.path}: the {self.role} gives NaN or inf {kind} (output "
                    f"{name!r}) for {int(bad.sum())} of {rows} images, the first at row "
                    f"{int(np.argmax(bad))}; expected finite values for images in [0, 1]: "
                    "check the model (a log or division of 0, an overflow) and export it again"
                )

    def __call__(self, x: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """The main output: codes ``[N, d]``, images ``[N, C, H, W]`` or logits ``[N, K]``."""
        if self.role == "classifier":
            return self.logits_and_features(x, batch_size)[0]
        return self.run(x, batch_size)[self.logits_index]

    def logits_and_features(
        self, x: np.ndarray, batch_size: int = DEFAULT_BATCH
    ) -> tuple[np.ndarray, np.ndarray]:
        """Classifier: ``(logits [N, K], features [N, F])``. Features are the feature output
        when the model has one, else the logits themselves (see ``feature_source``). A
        classifier that outputs probabilities gives ``log p`` as its logits."""
        return self.split_outputs(self.run(x, batch_size))

    def split_outputs(self, outs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(logits, features)`` from the outputs of :meth:`run` (see above)."""
        logits = outs[self.logits_index]
        if self.probabilities:  # log p is a valid logit vector: softmax(log p) = p
            logits = np.log(np.clip(logits, 1e-30, None))
        feats = outs[self.features_index] if self.features_index is not None else logits
        return logits, feats

    def detect_probabilities(self, outs: list[np.ndarray]) -> bool:
        """Mark this classifier as one whose output is already a distribution when its main
        output over real images (``outs`` from :meth:`run`) is non-negative rows summing to 1
        (a Softmax at the end, possibly hidden behind other nodes)."""
        main = outs[self.logits_index]
        if self.role == "classifier" and not self.probabilities:
            rows = main.sum(axis=1)
            self.probabilities = bool((main >= 0).all() and np.allclose(rows, 1, atol=1e-4))
        return self.probabilities

    @property
    def feature_source(self) -> str:
        """What Fréchet distances use: the classifier's feature output, or its logits."""
        if self.features_index is None:
            return "logits"
        return f"features ({self.output_names[self.features_index]!r})"


# Codes this large lie far outside any trained latent space: NaN or inf decoded from them is
# float32 overflow inside the decoder (a layer's values pass 3.4e38), a fault of the range asked
# for, not of the model.
OVERFLOW_CODE = 1e6


def _check_finite_images(images: np.ndarray, codes: np.ndarray, path: Path) -> None:
    """Refuse NaN or inf pixels, saying whose fault they are: the codes' (huge, so float32
    overflow: a grid range such as ``--range -1e38 1e38``) or the decoder's."""
    bad = ~np.isfinite(images).reshape(len(images), -1).all(axis=1)
    if not bad.any():
        return
    size = np.abs(codes[bad].astype(np.float64)).max(axis=1)
    first = int(np.argmax(bad))
    if float(size.min()) >= OVERFLOW_CODE:
        raise AtlasError(
            f"model {path}: decoding codes as large as {float(size.max()):.3g} gives NaN or inf "
            f"pixels ({int(bad.sum())} of {len(images)} images): float32 overflow inside the "
            "decoder, because of the codes asked for, not the model; expected codes of the "
            "size the model was trained on: choose a grid range within the latent codes' "
            "scale (--range, e.g. -4 4)"
        )
    raise AtlasError(
        f"model {path}: the decoder gives NaN or inf pixels for {int(bad.sum())} of "
        f"{len(images)} codes (the first: {codes[first].tolist()[:4]}); expected images in "
        "[0, 1]: check the decoder (a log or division of 0, an overflow) and export it again"
    )


def _infer_role(model: onnx.ModelProto, path: Path) -> str:
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("role") in ROLES:
        return meta["role"]
    stem = path.stem.lower()
    for role in ROLES:
        if role in stem:
            return role
    dims = _dims(model.graph.input[0])
    return "decoder" if len(dims) == 2 and isinstance(dims[1], int) and dims[1] <= 64 else "encoder"


_ARENA: list[bool] = []  # registered yet? (once per process)


def _shared_cpu_arena() -> bool:
    """Register one CPU arena with onnxruntime's environment (once), growing by exactly what
    is asked (``kSameAsRequested``) rather than doubling; False where onnxruntime cannot."""
    if not _ARENA:
        try:
            info = ort.OrtMemoryInfo(
                "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
            )
            # max memory 0 (no limit), extend strategy 1 (same as requested), defaults
            ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 1, -1, -1))
            _ARENA.append(True)
        except Exception:  # an onnxruntime without shared allocators: one arena per session
            _ARENA.append(False)
    return _ARENA[0]


def _session(
    raw: bytes, path: Path, provider: str, threads: int
) -> tuple[ort.InferenceSession, str]:
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    # 4 (fatal only): onnxruntime logs a failed run (an allocation of 84 GB, a bad shape) as a
    # coloured line of its own on stderr before raising; the exception says the same, and the
    # user gets it as our one line
    opts.log_severity_level = 4
    # onnxruntime's workers busy-wait after each run by default; numpy/OpenBLAS work right
    # after a run (covariances, distances) then fights them for the cores: np.cov of the
    # [10 000, 128] Fréchet features took 0.5–1.3 s instead of 0.01–0.2 s. A worker that
    # sleeps costs a wake-up (µs) per parallel section instead.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if _shared_cpu_arena():
        # one arena for every session of the process: a report's sessions (encoders,
        # decoders, classifier) run one after another, so they need the largest of their
        # activations, not the sum (663 → 520 MiB peak for the default report)
        opts.add_session_config_entry("session.use_env_allocators", "1")
    wanted = resolve_providers(provider, ort.get_available_providers())
    if wanted[0] == PROVIDERS["cuda"] and hasattr(ort, "preload_dlls"):
        # onnxruntime-gpu finds CUDA/cuDNN from the nvidia-* pip packages (torch's) this way;
        # if that fails, the session falls back and check_used_provider says so.
        with contextlib.suppress(Exception):
            ort.preload_dlls()
    try:
        session = ort.InferenceSession(raw, opts, providers=[_with_options(p) for p in wanted])
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise AtlasError(f"model {path}: onnxruntime refused it ({first})") from None
    return session, check_used_provider(provider, session.get_providers())


def _probe(session: ort.InferenceSession, path: Path, name: str, example: np.ndarray) -> list:
    try:
        return list(session.run(None, {name: example}))
    except Exception as exc:
        raise run_error(exc, f"model {path}", len(example), "a probe run failed") from None


# The probe batch: PROBE_ROWS inputs run as one batch and again split in two (1 row and the
# rest). A model whose rows depend on each other (batch statistics) gives different outputs.
PROBE_ROWS = 7
# Allowed difference between the two runs, relative to the output's scale (at least 1): float32
# kernels chosen by batch size differ by ~1e-7 relative; batch statistics by ~1e-2 and more.
BATCH_RTOL = 1e-4


def _probe_inputs(role: str, latent: int, shape: Shape | None, layout: str) -> np.ndarray:
    """Fixed, varied probe inputs: codes from N(0, 1) for a decoder, images with values in
    [0, 1] (in the file's layout) for an encoder or a classifier."""
    rng = np.random.default_rng(20261)
    if role == "decoder":
        return rng.standard_normal((PROBE_ROWS, latent)).astype(np.float32)
    assert shape is not None
    images = rng.random((PROBE_ROWS, *shape), dtype=np.float32)
    return np.ascontiguousarray(to_layout(images, layout))


def _largest_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(largest |a - b| over the entries, the scale max(1, largest finite |a|)); equal
    non-finite entries count as equal, one finite and one not as infinitely apart."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    both = (np.isnan(a64) & np.isnan(b64)) | (np.isinf(a64) & (a64 == b64))
    with np.errstate(invalid="ignore"):
        diff = np.where(both, 0.0, np.abs(a64 - b64))
    diff = np.where(np.isnan(diff), np.inf, diff)
    finite = np.abs(a64[np.isfinite(a64)])
    return float(diff.max(initial=0.0)), max(1.0, float(finite.max(initial=0.0)))


def batch_probe(
    session: ort.InferenceSession, path: Path, role: str, name: str, example: np.ndarray
) -> list[np.ndarray]:
    """Run ``example`` as one batch and again as two (its first row, then the rest) and refuse
    a model whose outputs differ beyond float tolerance (``BATCH_RTOL``): each row's output
    must depend on that row alone, or every number would depend on the batch size. Returns
    the outputs of the whole batch."""
    whole = _probe(session, path, name, example)
    parts = [_probe(session, path, name, example[:1]), _probe(session, path, name, example[1:])]
    for i, out in enumerate(whole):
        first, rest = parts[0][i], parts[1][i]
        if first.shape[1:] != out.shape[1:] or rest.shape[1:] != out.shape[1:]:
            continue  # a batch-dependent shape: the runs refuse it with its own message
        if len(first) + len(rest) != len(out) or out.dtype.kind not in "fiub":
            continue
        split = np.concatenate([first, rest])
        diff, scale = _largest_difference(out, split)
        if diff > BATCH_RTOL * scale:
            label = session.get_outputs()[i].name
            raise AtlasError(
                f"model {path}: the {role}'s output {label!r} depends on the batch: the same "
                f"{len(example)} inputs give values up to {diff:.3g} apart when run as one "
                f"batch and as batches of 1 and {len(example) - 1}; expected each row's output "
                "to depend on that row only. Likely cause: batch statistics (BatchNorm left in "
                "training mode at export) or randomness (Dropout, sampling) in the graph: call "
                "model.eval() before torch.onnx.export and export again"
            )
    return whole


def _check_float32(path: Path, role: str, what: str, out: np.ndarray) -> None:
    """The contract: codes, images and logits are float32."""
    if out.dtype != np.float32:
        raise AtlasError(
            f"model {path}: the {role}'s {what} are {out.dtype}; expected float32 (see "
            "docs/models.md): end the graph with a Cast to float32, or export in float32"
        )


def _check_batch_dims(model: onnx.ModelProto, path: Path) -> None:
    for value in list(model.graph.input)[:1] + list(model.graph.output):
        dims = _dims(value)
        if not dims:
            raise AtlasError(f"model {path}: {value.name!r} is a scalar; expected a batch")
        if isinstance(dims[0], int) and dims[0] > 0:
            raise AtlasError(
                f"model {path}: {value.name!r} has a fixed batch size {dims[0]}; "
                + DYNAMIC_BATCH_FIX
            )


def _produced_by_softmax(model: onnx.ModelProto, output: str) -> bool:
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    return producers.get(output) == "Softmax"


def load_model(
    path: Path | str,
    role: str | None = None,
    provider: str = "auto",
    threads: int = 0,
    expected_sha256: str | None = None,
    image_shape: Shape | None = None,
) -> OnnxModel:
    """Load an ONNX model for ``role`` (from its metadata, file name or shapes when None).

    ``image_shape`` ``(C, H, W)`` is a hint from the dataset, used only where the file itself
    does not say (a flat layout, symbolic image dims); the file wins when it does.
    """
    path = Path(path)
    raw = _read_bytes(path)  # read once: hashed, parsed and handed to onnxruntime as bytes
    digest = hashlib.sha256(raw).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise AtlasError(
            f"model {path}: sha256 {digest[:12]}… differs from the manifest's "
            f"{expected_sha256[:12]}…; the file was changed after export"
        )
    model = _parse(raw, path)
    role = role or _infer_role(model, path)
    inputs = [
        i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}
    ]
    if len(inputs) != 1:
        raise AtlasError(f"model {path}: {len(inputs)} inputs, expected exactly one")
    inp = inputs[0]
    if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise AtlasError(f"model {path}: input {inp.name!r} is not float32; expected float32")
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("role") in ROLES and meta["role"] != role:
        raise AtlasError(
            f"model {path}: its metadata says it is a {meta['role']}; expected a {role} here "
            f"(check which file was given where)"
        )
    inferred = _inferred(model)
    _check_batch_dims(inferred, path)
    in_dims = _dims(inp)
    out_dims = [_dims(o) for o in inferred.graph.output]
    out_names = [o.name for o in model.graph.output]
    session, used = _session(raw, path, provider, threads)
    meta_shape = (
        _parse_shape(meta["image_shape"], f"model {path}") if meta.get("image_shape") else None
    )
    kw: dict = {}

    if role == "decoder":
        if len(in_dims) != 2 or not isinstance(in_dims[1], int) or in_dims[1] < 1:
            raise AtlasError(f"model {path}: decoder input of shape {in_dims}, expected [N, d]")
        latent = int(in_dims[1])
        onnx_checks.check_latent_dim(latent, path)
        dims = out_dims[0]
        example = _probe_inputs(role, latent, None, "flat")
        (out, *_) = batch_probe(session, path, role, inp.name, example)
        _check_float32(path, role, "images", out)
        if len(dims) < 2 or any(not isinstance(d, int) for d in dims[1:]):
            # symbols left after inference: the probe run says what comes out
            dims = ["N", *out.shape[1:]]
        layout = _layout_of(dims, meta.get("layout"))
        shape = meta_shape or _shape_from(dims, layout)
        if shape is None:  # flat output: the hint, else a square reading
            pixels = math.prod(int(d) for d in dims[1:])
            if image_shape is not None and int(np.prod(image_shape)) == pixels:
                shape = image_shape
            else:
                shape = _square_shape(pixels)
        if shape is None or shape[0] not in CHANNELS:
            raise AtlasError(
                f"model {path}: decoder output of shape {dims}; expected images [N, C, H, W], "
                "[N, H, W, C], [N, H, W] or flat [N, C·H·W] with C in (1, 3) (a flat output that "
                "is not square needs the metadata key image_shape = 'C,H,W')"
            )
        kw = dict(latent_dim=latent)
    else:
        layout = _layout_of(in_dims, meta.get("layout"))
        graph_shape = _shape_from(in_dims, layout)
        if meta_shape and graph_shape and tuple(meta_shape) != tuple(graph_shape):
            raise AtlasError(
                f"model {path}: its metadata says image_shape {tuple(meta_shape)} but its input "
                f"takes {tuple(graph_shape)}; expected the two to agree: fix (or remove) the "
                "metadata key image_shape"
            )
        shape = meta_shape or graph_shape
        if shape is None:
            pixels = int(np.prod([d for d in in_dims[1:] if isinstance(d, int)] or [0]))
            if image_shape is not None and (
                layout != "flat" or int(np.prod(image_shape)) == pixels
            ):
                shape = image_shape
            elif layout == "flat" and all(isinstance(d, int) for d in in_dims[1:]):
                shape = _square_shape(pixels)
        if shape is None or shape[0] not in CHANNELS:
            raise AtlasError(
                f"model {path}: {role} input of shape {in_dims}; expected images [N, C, H, W], "
                "[N, H, W, C], [N, H, W] or flat [N, C·H·W] with C in (1, 3)"
            )
        dims_known = all(len(d) == 2 and isinstance(d[1], int) for d in out_dims)
        outs = batch_probe(session, path, role, inp.name, _probe_inputs(role, 0, shape, layout))
        if not dims_known:
            out_dims = [["N", *o.shape[1:]] for o in outs]
        if role == "encoder":
            kw = _encoder_outputs(path, out_names, out_dims)
            _check_float32(path, role, "codes", outs[kw["logits_index"]])
            if kw["logvar_index"] is not None:
                _check_float32(path, role, "log-variances", outs[kw["logvar_index"]])
        else:
            kw = _classifier_outputs(model, path, out_names, out_dims)
            _check_float32(path, role, "logits", outs[kw["logits_index"]])
            if kw["features_index"] is not None:
                _check_float32(path, role, "features", outs[kw["features_index"]])
    return OnnxModel(
        path=path, role=role, session=session, provider=used, metadata=meta,
        input_name=inp.name, output_names=out_names, layout=layout,
        image_shape=(int(shape[0]), int(shape[1]), int(shape[2])), sha256=digest,
        max_batch=activation_batch(inferred, *budget_for(used), unknown=DEFAULT_BATCH), **kw,
    )  # fmt: skip


# Names an encoder's log-variance output may carry (compared lower-case): ``logvar`` is the one
# docs/models.md asks for; the others are what VAE code in the wild calls it.
LOGVAR_NAMES = ("logvar", "log_var", "log_variance", "logvariance")


def _encoder_outputs(path: Path, names: list[str], dims: list[list[int | str]]) -> dict:
    """Which output is the code and which (if any) the log-variance: an output named ``logvar``
    (see ``LOGVAR_NAMES``) is the log-variance; the code is the first other output. Both must
    be ``[N, d]`` with the same ``d``."""
    lower = [n.lower() for n in names]
    logvar = next((i for i, n in enumerate(lower) if n in LOGVAR_NAMES), None)
    code = next((i for i in range(len(names)) if i != logvar), None)
    if code is None:
        raise AtlasError(
            f"model {path}: encoder's only output {names[0]!r} is a log-variance; expected the "
            "code (the posterior mean) [N, d] as its first output"
        )
    if len(dims[code]) != 2 or not isinstance(dims[code][1], int):
        raise AtlasError(f"model {path}: encoder output {dims[code]}, expected [N, d]")
    d = int(dims[code][1])
    if logvar is not None and (len(dims[logvar]) != 2 or dims[logvar][1] != d):
        raise AtlasError(
            f"model {path}: encoder output {names[logvar]!r} has shape {dims[logvar]}; expected "
            f"the log-variance [N, {d}] beside the code [N, {d}] (or rename the output if it is "
            "not a log-variance)"
        )
    return dict(latent_dim=d, logits_index=code, logvar_index=logvar)


def _classifier_outputs(
    model: onnx.ModelProto, path: Path, names: list[str], dims: list[list[int | str]]
) -> dict:
    """Which output is the logits and which (if any) the features: by name ("logits",
    "features"), else the first 2-D output is the logits and a second 2-D one the features."""
    flat = [i for i, d in enumerate(dims) if len(d) == 2 and isinstance(d[1], int)]
    if not flat:
        raise AtlasError(f"model {path}: classifier outputs {dims}; expected logits [N, K]")
    by_name = {n.lower(): i for i, n in enumerate(names)}
    logits = by_name.get("logits", flat[0])
    feats = by_name.get("features", next((i for i in flat if i != logits), None))
    k = int(dims[logits][1])
    if k < 2:
        raise AtlasError(f"model {path}: classifier gives {k} class; expected K >= 2 logits")
    return dict(
        n_classes=k, logits_index=logits, features_index=feats,
        probabilities=_produced_by_softmax(model, names[logits]),
    )  # fmt: skip


# ---------------------------------------------------------------------------- manifests
MANIFEST_TOOL = "latent-atlas"  # the "tool" key of the manifests `export` writes


def _own_manifest(path: Path) -> dict[str, str] | None:
    """The ``files`` of a manifest written by this tool, or None for anything else: a
    missing, unreadable, malformed or unrelated ``manifest.json`` (a web app's) is not ours."""
    try:
        if not path.is_file() or path.stat().st_size > 1 << 20:
            return None
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):  # deep nesting: not a manifest of ours
        return None
    if not isinstance(doc, dict) or doc.get("tool") != MANIFEST_TOOL:
        return None
    files = doc.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        return None
    return files


def read_manifest(folder: Path) -> dict[str, str]:
    """``{resolved path: sha256}`` from the manifest of the model's own artifact folder:
    ``folder/manifest.json`` or the one beside it (``artifacts/<dataset>/manifest.json`` for
    ``artifacts/<dataset>/vae``). Only a manifest written by latent-atlas counts."""
    folder = Path(folder).resolve()
    for candidate in (folder, folder.parent):
        files = _own_manifest(candidate / "manifest.json")
        if files is not None:
            return {str((candidate / k).resolve()): v for k, v in files.items()}
    return {}


def _expected(manifest: dict[str, str], path: Path) -> str | None:
    return manifest.get(str(path.resolve()))


# ---------------------------------------------------------------------------- models
@dataclass
class Model:
    """An autoencoder as the toolkit sees it: a decoder, and an encoder when there is one.

    ``source`` is what the user pointed at (a folder, or a decoder ``.onnx`` file).
    """

    name: str
    source: Path
    decoder: OnnxModel
    encoder: OnnxModel | None = None

    @property
    def folder(self) -> Path:
        return self.source if self.source.is_dir() else self.source.parent

    @property
    def latent_dim(self) -> int:
        return self.decoder.latent_dim

    @property
    def image_shape(self) -> Shape:
        return self.decoder.image_shape

    @property
    def provider(self) -> str:
        return self.decoder.provider

    def encode(self, images: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """Codes ``[N, latent_dim]`` of float32 images ``[N, C, H, W]`` in [0, 1]."""
        if self.encoder is None:
            raise AtlasError(f"model {self.name} ({self.source}): no encoder; it is decoder-only")
        if self.has_logvar:  # one run gives both; the log-variance is checked on every run
            return self.encode_posterior(images, batch_size)[0]
        return self.encoder(images, batch_size)

    @property
    def has_logvar(self) -> bool:
        """Whether the encoder also gives the posterior's log-variance (output ``logvar``)."""
        return self.encoder is not None and self.encoder.logvar_index is not None

    def encode_posterior(
        self, images: np.ndarray, batch_size: int = DEFAULT_BATCH
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The diagonal Gaussian posterior ``q(z|x)`` of each image: ``(mu [N, d],
        logvar [N, d] | None)``, float32. ``logvar`` is ``log σ²`` (natural log) from the
        encoder's output named ``logvar``; None when the encoder gives only the mean. One
        encoder run gives both."""
        if self.encoder is None:
            raise AtlasError(f"model {self.name} ({self.source}): no encoder; it is decoder-only")
        outs = self.encoder.run(images, batch_size)
        mu = outs[self.encoder.logits_index]
        if self.encoder.logvar_index is None:
            return mu, None
        logvar = np.asarray(outs[self.encoder.logvar_index], np.float32)
        name = self.encoder.output_names[self.encoder.logvar_index]
        if logvar.shape != mu.shape:
            raise AtlasError(
                f"model {self.encoder.path}: output {name!r} has shape {logvar.shape} for codes "
                f"of shape {mu.shape}; expected the log-variance, one value per code value"
            )
        if not np.isfinite(logvar).all():
            bad = int((~np.isfinite(logvar)).any(axis=1).sum())
            raise AtlasError(
                f"model {self.encoder.path}: output {name!r} is NaN or inf for {bad} of "
                f"{len(logvar)} images; expected a finite log-variance (clamp it in the model, "
                "e.g. logvar.clamp(-30, 20))"
            )
        return mu, logvar

    def decode(self, z: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """Images ``[N, C, H, W]`` in [0, 1] of codes ``[N, latent_dim]``."""
        return self.decoder(z, batch_size)


# Kept for code and notebooks written against 0.1.
ModelPair = Model


def check_pair(encoder: OnnxModel, decoder: OnnxModel) -> None:
    """Refuse an encoder/decoder pair whose latent dims or image shapes disagree."""
    if encoder.latent_dim != decoder.latent_dim:
        raise AtlasError(
            f"models {encoder.path} and {decoder.path}: encoder gives {encoder.latent_dim}-d "
            f"codes but the decoder takes {decoder.latent_dim}-d codes"
        )
    if encoder.image_shape != decoder.image_shape:
        raise AtlasError(
            f"models {encoder.path} and {decoder.path}: encoder takes images of "
            f"{encoder.image_shape} but the decoder makes {decoder.image_shape}"
        )


def model_paths(source: Path | str) -> tuple[Path, Path | None]:
    """The decoder file of a model source (a folder with ``decoder.onnx``, or a decoder
    ``.onnx`` file) and, for a folder, where its encoder would be; refused, from the file
    system alone, where there is no decoder (commands check their models with it before any
    work, so a wrong path is answered at once)."""
    source = Path(source)
    if source.is_file() or source.suffix == ".onnx":
        if not source.exists():
            raise AtlasError(f"model {source}: not found; expected a decoder .onnx file")
        return source, None
    if source.exists() and not source.is_dir():
        onnx_checks.check_file_size(source)  # a FIFO or a device: says which, reads nothing
    if not source.is_dir():
        raise AtlasError(
            f"model {source}: does not exist; expected a model folder (decoder.onnx, "
            "optionally encoder.onnx) or a decoder .onnx file"
        )
    dec_path = source / "decoder.onnx"
    if not dec_path.exists():
        found = sorted(p.name for p in source.glob("*.onnx"))
        raise AtlasError(
            f"model {source}: no decoder.onnx (found {found or 'no .onnx files'}); expected "
            "decoder.onnx, and encoder.onnx when the model has one"
        )
    return dec_path, source / "encoder.onnx"


def load(
    source: Path | str,
    provider: str = "auto",
    threads: int = 0,
    name: str = "",
    image_shape: Shape | None = None,
) -> Model:
    """A model from a folder (``decoder.onnx``, with ``encoder.onnx`` when there is one) or a
    single decoder ``.onnx`` file; hashes checked against the folder's manifest.json."""
    source = Path(source)
    dec_path, enc_path = model_paths(source)
    if enc_path is None:  # a single decoder file
        manifest = read_manifest(source.parent)
        decoder = load_model(source, "decoder", provider, threads, _expected(manifest, source),
                             image_shape)  # fmt: skip
        stem = source.parent.name if source.stem == "decoder" else source.stem
        return Model(name or stem, source, decoder)
    manifest = read_manifest(source)
    decoder = load_model(dec_path, "decoder", provider, threads, _expected(manifest, dec_path),
                         image_shape)  # fmt: skip
    encoder = None
    if enc_path.exists():
        encoder = load_model(enc_path, "encoder", provider, threads,
                             _expected(manifest, enc_path), decoder.image_shape)  # fmt: skip
        check_pair(encoder, decoder)
    return Model(name or source.name, source, decoder, encoder)


def check_classifier_path(path: Path | str) -> None:
    """One line naming the classifier (not "model") when its path does not exist: what a
    command checks before it loads any data, and what :func:`load_classifier` checks."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise AtlasError(
            f"classifier {path}: not found; expected a classifier .onnx file (or a folder "
            "holding classifier.onnx), or --classifier none"
        )


def load_classifier(
    path: Path | str,
    classes: int,
    provider: str = "auto",
    threads: int = 0,
    image_shape: Shape | None = None,
) -> OnnxModel:
    """A classifier for a dataset of ``classes`` classes (and, when given, ``image_shape``)."""
    path = Path(path)
    check_classifier_path(path)
    manifest = read_manifest(path.parent)
    model = load_model(path, "classifier", provider, threads, _expected(manifest, path),
                       image_shape)  # fmt: skip
    if model.n_classes != classes:
        raise AtlasError(
            f"model {path}: classifier gives {model.n_classes} classes, the dataset has "
            f"{classes}; expected a classifier trained on this dataset (or --classifier none)"
        )
    if image_shape is not None and model.image_shape != tuple(image_shape):
        raise AtlasError(
            f"model {path}: classifier takes images of {model.image_shape}, the dataset's are "
            f"{tuple(image_shape)}; expected a classifier for this dataset (or --classifier none)"
        )
    return model
