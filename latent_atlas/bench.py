"""``latent-atlas bench``: how fast latent grids turn into images and into dense atlases, as a
fraction of what this machine's float32 matrix multiply does.

In one process, on one decoder (any that meets the model contract):

- **decode** rows (21×21, 201×201, 1001×1001 by default): the seed study's loop (one cell per
  torch call), batched torch eager, and batched onnxruntime — ``session.run`` as the grid
  command does it, and IO-bound into one reused buffer. The torch columns need the decoder
  rebuilt in torch, which only our own exports allow; for any other decoder they say so.
- **atlas** row: the 1001×1001 dense atlas (a decode and a classification per point), through
  the composed graph and through decode-then-classify, each in a child process that reports
  its own wall time and peak RSS (VmHWM).
- **report**: ``latent-atlas report`` on the shipped VAE and AE (and, as `make report` runs it,
  with their shipped seeds as groups), each in a child process: wall time and peak RSS.

Every rate is also a fraction of a **GEMM calibration**: the best float32 2048³ (4096³ on a GPU)
product of onnxruntime's MatMul, torch and numpy on the decode device, measured right before
and right after each timed run (so a machine that gets busier mid-bench lowers both), and the
higher of the two used. A fraction above 1 means the calibration was wrong (the machine
changed between the runs); it is flagged, never printed as if it were real.

FLOPs are counted from the graph after shape inference: 2·M·N·K per Gemm/MatMul, and the
multiply-adds of Conv/ConvTranspose, per batch row; other operators (activations, reductions)
are not counted. Where a shape is unknown the count is "unknown".
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import onnx

from latent_atlas.engine import usable_cores
from latent_atlas.toolkit.atlas import MAX_STEPS
from latent_atlas.toolkit.binding import BoundRunner
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec, iter_decode
from latent_atlas.toolkit.runtime import OnnxModel, load_model

SEED_LOOP_MAX_CELLS = 50_000  # the seed loop at 1001×1001 would take tens of minutes
GEMM_N = {"cpu": 2048, "cuda": 4096}
FLOP_OPS = ("Gemm", "MatMul", "Conv", "ConvTranspose")
FRACTION_KEYS = ("fraction_of_gemm", "bound_fraction_of_gemm", "cpu_fraction_of_gemm",
                 "bound_cpu_fraction_of_gemm")  # fmt: skip


@dataclass(frozen=True)
class BenchConfig:
    decoder: Path
    classifier: Path | None = None  # None: no atlas row
    sizes: tuple[int, ...] = (21, 201, 1001)
    atlas_size: int = 1001  # 0: no atlas row
    provider: str = "auto"
    threads: int = 0
    batch_size: int = 4096
    repeats: int = 3
    measure_memory: bool = True
    measure_report: bool = True
    gemm_n: int | None = None  # calibration size; None: 2048 (CPU) or 4096 (GPU)
    # decoder geometry: the metric map on geometry_size² cells against its plain decodes,
    # and geodesic queries on a graph_size² grid graph; 0: none (the CLI's defaults: 201,
    # 256). geometry_only: nothing else
    geometry_size: int = 0
    graph_size: int = 0
    geometry_only: bool = False

    def __post_init__(self) -> None:
        # messages name the CLI flag that sets each field
        if not self.sizes:
            raise AtlasError("bench --sizes: none given, expected grid sizes N >= 2")
        if min(self.sizes) < 2:
            raise AtlasError(f"bench --sizes: {min(self.sizes)}, expected N >= 2")
        if self.atlas_size and not 2 <= self.atlas_size <= MAX_STEPS:
            raise AtlasError(
                f"bench --atlas-size: {self.atlas_size}, expected 0 (none) or 2..{MAX_STEPS}"
            )
        if self.repeats < 1:
            raise AtlasError(f"bench --repeats: {self.repeats}, expected >= 1")
        if self.batch_size < 1:
            raise AtlasError(f"bench --batch-size: {self.batch_size}, expected >= 1")
        if self.gemm_n is not None and self.gemm_n < 16:
            raise AtlasError(f"bench --gemm-size: {self.gemm_n}, expected >= 16")
        if self.threads < 0:
            raise AtlasError(f"bench --threads: {self.threads}, expected >= 0 (0: default)")
        for flag, v in (("--geometry-size", self.geometry_size), ("--graph-size", self.graph_size)):
            if v and not 2 <= v <= MAX_STEPS:
                raise AtlasError(f"bench {flag}: {v}, expected 0 (none) or 2..{MAX_STEPS}")


# ---------------------------------------------------------------------------- FLOPs
def _shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Every tensor's dims after shape inference; the batch (first) dim of graph tensors is
    whatever it is (a symbol: None), the others must be numbers to be counted."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    shapes: dict[str, list[int | None]] = {}
    for v in list(g.input) + list(g.output) + list(g.value_info):
        shapes[v.name] = [
            d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim
        ]
    for t in g.initializer:
        shapes[t.name] = [int(d) for d in t.dims]
    return shapes


def _known(dims: list[int | None] | None, skip_batch: bool = True) -> list[int] | None:
    if dims is None:
        return None
    body = dims[1:] if skip_batch else dims
    if any(d is None or d < 0 for d in body):
        return None
    return [int(d) for d in body]  # type: ignore[arg-type]


def _node_flops(node: onnx.NodeProto, shapes: dict[str, list[int | None]]) -> int | None:
    """Multiply-adds × 2 of one node per batch row (the first dim of its data input)."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type in ("Gemm", "MatMul"):
        a = shapes.get(node.input[0])
        out = _known(shapes.get(node.output[0]))
        if a is None or out is None or not a:
            return None
        k = a[0] if node.op_type == "Gemm" and attrs.get("transA", 0) else a[-1]
        if k is None:
            return None
        return 2 * int(k) * int(np.prod(out))
    weight = _known(shapes.get(node.input[1]), skip_batch=False)
    if weight is None or len(weight) < 3:
        return None
    if node.op_type == "Conv":
        out = _known(shapes.get(node.output[0]))
        if out is None:
            return None
        # each output value: (C_in / group) · prod(kernel) multiply-adds
        return 2 * int(np.prod(out)) * weight[1] * int(np.prod(weight[2:]))
    inp = _known(shapes.get(node.input[0]))  # ConvTranspose: each input value scatters
    if inp is None:
        return None
    return 2 * int(np.prod(inp)) * weight[1] * int(np.prod(weight[2:]))


def graph_flops(path: Path) -> tuple[float | None, str]:
    """FLOPs per batch row of an ONNX file's Gemm/MatMul/Conv/ConvTranspose nodes, and "" —
    or (None, the reason) where a shape is unknown or such a node sits in a subgraph."""
    model = onnx.load(str(path))
    for node in model.graph.node:
        if any(a.HasField("g") or len(a.graphs) for a in node.attribute):
            return None, f"a {node.op_type} subgraph (control flow) is not counted"
    try:
        shapes = _shapes(model)
    except Exception as exc:  # a shape inference failure: say so, count nothing
        return None, f"shape inference failed ({str(exc).splitlines()[0][:80]})"
    total = 0
    for node in model.graph.node:
        if node.op_type in FLOP_OPS:
            flops = _node_flops(node, shapes)
            if flops is None:
                return None, f"{node.op_type} {node.name or node.output[0]!r}: shape unknown"
            total += flops
    return float(total), ""


def decoder_flops(path: Path) -> float | None:
    """FLOPs per decoded cell (see :func:`graph_flops`); None when unknown."""
    return graph_flops(path)[0]


# ---------------------------------------------------------------------------- calibration
def _best(reps: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclass
class Rates:
    """One calibration: GFLOP/s per GEMM (wall clock) and GFLOP per CPU second (``cpu``;
    empty on a GPU), keyed ``"<library> <n>³"``."""

    wall: dict[str, float]
    cpu: dict[str, float]


class Calibrator:
    """The best float32 GEMM of onnxruntime, torch and numpy on ``device``, over a few square
    sizes (``n``, ``n/2``, ``n/4``, none below 256): the best rate is not always the largest
    product (measured here: onnxruntime's 512³ at 230 GFLOP per CPU second, 2048³ at 214)."""

    def __init__(self, device: str = "cpu", threads: int = 0, n: int | None = None) -> None:
        self.device = device
        self.n = n or GEMM_N[device]
        # n, n/2 and n/4, none below 256 (smaller products time the call, not the kernel)
        self.sizes = sorted({m for m in (self.n // 4, self.n // 2) if m >= 256} | {self.n})
        self.samples: list[Rates] = []
        self._runs: dict[str, tuple[int, Callable[[], object]]] = {}
        try:
            import torch
        except ImportError:  # torch is an optional baseline
            torch = None  # type: ignore[assignment]
        rng = np.random.default_rng(0)
        for size in self.sizes:
            a = rng.random((size, size), dtype=np.float32)
            b = rng.random((size, size), dtype=np.float32)
            self._runs[f"onnxruntime {size}³"] = (size, self._ort(a, b, threads))
            if torch is not None:
                self._runs[f"torch {size}³"] = (size, self._torch(torch, a, b))
            if device == "cpu":
                out = np.empty_like(a)
                self._runs[f"numpy {size}³"] = (size, partial(np.matmul, a, b, out=out))
        self._reps = {}
        for name, (_, run) in self._runs.items():
            run()  # warm-up: thread pools, packing, CUDA context
            once = _best(3, run)
            # enough products per timing that each lasts ~20 ms (timer and wake-up noise)
            self._reps[name] = int(min(100, max(1, 0.02 / max(once, 1e-6))))

    def _torch(self, torch: object, a: np.ndarray, b: np.ndarray) -> Callable[[], object]:
        ta = torch.from_numpy(a).to(self.device)  # type: ignore[attr-defined]
        tb = torch.from_numpy(b).to(self.device)  # type: ignore[attr-defined]

        def mm() -> None:
            torch.mm(ta, tb)  # type: ignore[attr-defined]
            if self.device == "cuda":
                torch.cuda.synchronize()  # type: ignore[attr-defined]

        return mm

    def _ort(self, a: np.ndarray, b: np.ndarray, threads: int) -> Callable[[], object]:
        import onnxruntime as ort
        from onnx import TensorProto, helper

        n = len(a)
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["A", "B"], ["C"])], "gemm",
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "AB"],
            [helper.make_tensor_value_info("C", TensorProto.FLOAT, [n, n])],
        )  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # like the runtime's sessions: workers sleep between runs, so CPU time is work
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            opts.intra_op_num_threads = threads
        from latent_atlas.toolkit.runtime import PROVIDERS, _with_options

        # the runtime's provider options (on CUDA: TF32 off), so the GEMM is float32 like the
        # decode it is compared with
        provider = _with_options(PROVIDERS[self.device])
        session = ort.InferenceSession(model.SerializeToString(), opts, providers=[provider])
        binding = session.io_binding()
        # inputs and output live on the device: the calibration moves no data
        keep = [ort.OrtValue.ortvalue_from_numpy(x, self.device, 0) for x in (a, b)]
        keep.append(ort.OrtValue.ortvalue_from_shape_and_type([n, n], np.float32,
                                                              self.device, 0))  # fmt: skip
        binding.bind_ortvalue_input("A", keep[0])
        binding.bind_ortvalue_input("B", keep[1])
        binding.bind_ortvalue_output("C", keep[2])

        def run() -> None:
            session.run_with_iobinding(binding)
            _ = keep  # the device buffers live as long as the closure

        return run

    def measure(self, reps: int = 3) -> Rates:
        """GFLOP/s (wall) and GFLOP per CPU second of each GEMM, best of ``reps``;
        remembered in ``samples``."""
        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for name, (size, run) in self._runs.items():
            k = self._reps[name]
            flop = 2 * size**3 * k
            best_wall = best_cpu = float("inf")
            for _ in range(reps):
                c0, t0 = _cpu_seconds(), time.perf_counter()
                for _ in range(k):
                    run()
                best_wall = min(best_wall, time.perf_counter() - t0)
                best_cpu = min(best_cpu, _cpu_seconds() - c0)
            wall[name] = flop / best_wall / 1e9
            if self.device == "cpu" and best_cpu > 0:
                cpu[name] = flop / best_cpu / 1e9
        rates = Rates(wall, cpu)
        self.samples.append(rates)
        return rates


def _best_rate(*samples: dict[str, float]) -> tuple[float, str]:
    return max((rate, name) for s in samples for name, rate in s.items())


@dataclass
class Timed:
    seconds: float
    cpu_seconds: float
    gemm_gflops: float  # the calibration around this run (the higher of before and after)
    gemm_source: str
    gemm_cpu_gflops: float | None  # the same, per CPU second (None on a GPU)


def timed_against_gemm(cal: Calibrator, fn: Callable[[], object], reps: int = 1) -> Timed:
    """Best of ``reps`` runs of ``fn`` (wall and CPU time), with a calibration right before
    and right after."""
    before = cal.measure()
    best_wall = best_cpu = float("inf")
    for _ in range(reps):
        c0, t0 = _cpu_seconds(), time.perf_counter()
        fn()
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, _cpu_seconds() - c0)
    after = cal.measure()
    gemm, source = _best_rate(before.wall, after.wall)
    cpu = _best_rate(before.cpu, after.cpu)[0] if before.cpu and after.cpu else None
    return Timed(best_wall, best_cpu, gemm, source, cpu)


def fraction(gflops: float | None, gemm: float) -> float | None:
    return None if gflops is None else gflops / gemm


# ---------------------------------------------------------------------------- decode
def _grid_points(n: int, latent_dim: int = 2) -> np.ndarray:
    spec = GridSpec(steps=(n, n))
    x, y = spec.coordinates()
    return spec.points(x, y, spec.resolve_plane(latent_dim), 0, n * n)


def seed_loop(decoder: object, n: int, device: str = "cpu") -> None:
    """The seed study's loop (with its assignment moved inside the inner loop)."""
    import torch

    xs = np.linspace(-4, 4, n)
    xx, yy = np.meshgrid(xs, xs)
    image: np.ndarray | None = None  # the seed's canvas, sized from the first decoded image
    with torch.no_grad():
        for j in reversed(range(n)):
            for i in range(n):
                z = torch.tensor([xx[j, i], yy[j, i]], dtype=torch.float32).view(1, 2)
                cell = decoder(z.to(device)).cpu().numpy()  # type: ignore[operator]
                cell = cell.reshape(cell.shape[-3:]).transpose(1, 2, 0)  # [1, C, H, W] -> HWC
                h, w = cell.shape[:2]
                if image is None:
                    image = np.zeros((n * h, n * w, cell.shape[2]))
                image[j * h : (j + 1) * h, i * w : (i + 1) * w] = cell


def torch_batched(decoder: object, n: int, batch: int, device: str = "cpu") -> None:
    """Batched torch eager; images come back to host memory, as onnxruntime's do."""
    import torch

    z = torch.from_numpy(_grid_points(n))
    with torch.no_grad():
        for start in range(0, len(z), batch):
            decoder(z[start : start + batch].to(device)).cpu()  # type: ignore[operator]


def onnx_batched(decoder: OnnxModel, n: int, batch: int) -> None:
    """The grid command's decode: ``session.run`` per batch, every batch a new array."""
    spec = GridSpec(steps=(n, n))
    x, y = spec.coordinates()
    for _ in iter_decode(decoder, spec, x, y, spec.resolve_plane(decoder.latent_dim), batch):
        pass


def onnx_bound(decoder: OnnxModel, n: int, batch: int) -> None:
    """IO-bound decode: every batch lands in one reused buffer (on the device, with CUDA:
    images are never copied to the host)."""
    spec = GridSpec(steps=(n, n))
    x, y = spec.coordinates()
    plane = spec.resolve_plane(decoder.latent_dim)
    runner = BoundRunner(decoder.session, decoder.input_name, decoder.provider, str(decoder.path))
    index = int(getattr(decoder, "logits_index", 0))
    out, row = decoder.output_names[index], _file_row_shape(decoder, index)
    for start in range(0, n * n, batch):
        z = spec.points(x, y, plane, start, min(n * n, start + batch))
        runner.run_reused(z, out, row)


def _file_row_shape(decoder: OnnxModel, index: int) -> tuple[int, ...]:
    """One decoded image as the file lays it out (its dims after the batch)."""
    layout = getattr(decoder, "layout", None)
    if layout is not None:
        c, h, w = decoder.image_shape
        return {"NCHW": (c, h, w), "NHWC": (h, w, c), "NHW": (h, w), "flat": (c * h * w,)}[layout]
    return tuple(int(d) for d in decoder.session.get_outputs()[index].shape[1:])


def torch_decoder(path: Path, device: str) -> tuple[object | None, str]:
    """The decoder rebuilt in torch (our own exports only), or (None, why not)."""
    try:
        import torch  # noqa: F401

        from latent_atlas.export.onnx_export import torch_decoder_from_onnx

        return torch_decoder_from_onnx(path).to(device), ""
    except ImportError:
        return None, "torch is not installed"
    except Exception as exc:  # any decoder we did not export: no torch baseline
        return None, (str(exc).splitlines() or [type(exc).__name__])[0][:160]


# ---------------------------------------------------------------------------- children
VMHWM = """
def _vmhwm_kib():
    # VmHWM is this process's own peak; ru_maxrss of a child would also count the parent's
    # pages that a fork copied before exec.
    try:
        return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
    except (OSError, IndexError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""

MEMORY_PROBE = (
    VMHWM
    + """
import sys
from latent_atlas.toolkit.grid import GridSpec, decode_grid
from latent_atlas.toolkit.runtime import load_model
dec = load_model(sys.argv[1], "decoder", sys.argv[2], int(sys.argv[3]))
grid = decode_grid(dec, GridSpec(steps=(1001, 1001)), batch_size=int(sys.argv[4]))
print(_vmhwm_kib())
"""
)

ATLAS_PROBE = (
    VMHWM
    + """
import json, sys, time
from latent_atlas.toolkit.atlas import compute_atlas
from latent_atlas.toolkit.grid import GridSpec
from latent_atlas.toolkit.runtime import load_model
decoder, classifier, provider, threads, n, batch, fused = sys.argv[1:8]
dec = load_model(decoder, "decoder", provider, int(threads))
clf = load_model(classifier, "classifier", provider, int(threads))
fused = fused == "fused"
batch = int(batch) or None
compute_atlas(dec, clf, GridSpec(steps=(5, 5)), batch, fused=fused)  # warm-up
import resource
def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
start, cpu = time.perf_counter(), _cpu()
atlas = compute_atlas(dec, clf, GridSpec(steps=(int(n), int(n))), batch, fused=fused)
seconds, cpu = time.perf_counter() - start, _cpu() - cpu
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_kib": _vmhwm_kib(),
                  "method": atlas.method,
                  "batch_size": atlas.batch_size, "note": atlas.note}))
"""
)

REPORT_PROBE = (
    VMHWM
    + """
import sys
from latent_atlas.cli import main
code = main(sys.argv[1:])
print("VmHWM_KiB", _vmhwm_kib())
sys.exit(code)
"""
)


def _child(code: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no message"])[-1][:240]
        raise AtlasError(f"bench child process failed (exit {out.returncode}): {last}")
    return out.stdout


def peak_rss_streamed(cfg: BenchConfig) -> float:
    """Peak RSS (MiB) of a child process decoding 1001×1001 with a 2-px-per-cell mosaic."""
    out = _child(MEMORY_PROBE, str(cfg.decoder), cfg.provider, str(cfg.threads),
                 str(cfg.batch_size))  # fmt: skip
    return int(out.strip().splitlines()[-1]) / 1024


def atlas_child(cfg: BenchConfig, fused: bool) -> dict:
    """One atlas of ``atlas_size``² points in a child process: seconds, peak RSS, method."""
    assert cfg.classifier is not None
    out = _child(
        ATLAS_PROBE, str(cfg.decoder), str(cfg.classifier), cfg.provider, str(cfg.threads),
        str(cfg.atlas_size), "0", "fused" if fused else "separate",
    )  # fmt: skip
    return dict(json.loads(out.strip().splitlines()[-1]))


REPORTS = {  # name: (what it is, its --model flags)
    # issue 14's target: the shipped VAE and AE, no seed sweep
    "two-model": (
        "the shipped VAE vs AE, no seeds",
        ["--model", "{art}/vae", "--model", "{art}/ae"],
    ),
    "default": ("`make report`'s: VAE vs AE with their shipped seeds 1–4 as groups", []),
}


def report_child(cfg: BenchConfig, which: str = "two-model") -> dict:
    """``latent-atlas report`` (``which``: see ``REPORTS``) in a child process, into a
    temporary folder: wall seconds (interpreter start included), CPU seconds (user + system,
    any process it starts included) and what they allow on this process's cores (no schedule
    of the same work can end sooner than CPU seconds / cores), and its peak RSS."""
    from latent_atlas.shipped import shipped

    art = str(shipped())
    with tempfile.TemporaryDirectory(prefix="latent-atlas-bench-") as tmp:
        models = [a.format(art=art) for a in REPORTS[which][1]]
        args = ["report", "--out", tmp, "--no-progress", "--provider", cfg.provider,
                "--threads", str(cfg.threads), *models]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        out = _child(REPORT_PROBE, *args)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child's, and its children's
    kib = {w[0]: int(w[1]) for w in map(str.split, out.splitlines())
           if len(w) == 2 and w[0].endswith("_KiB")}  # fmt: skip
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cores = usable_cores()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "cores": cores,
        "cpu_bound_seconds": cpu / cores,
        "peak_rss_mib": kib["VmHWM_KiB"] / 1024,
    }


def report_line(which: str, rep: dict) -> str:
    """The bench's line for ``report_child(cfg, which)``'s figures."""
    return (
        f"latent-atlas report ({REPORTS[which][0]}; child process): {rep['seconds']:.2f} s wall, "
        f"{rep['cpu_seconds']:.1f} CPU s (so no run on {rep['cores']} cores can take less than "
        f"{rep['cpu_bound_seconds']:.2f} s wall), peak RSS {rep['peak_rss_mib']:.0f} MiB"
    )


# ---------------------------------------------------------------------------- the bench
def ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def run_bench(cfg: BenchConfig, progress: bool = True) -> dict:
    def say(msg: str) -> None:
        if progress:
            print(f"  {msg}", file=sys.stderr)

    load_start = _load()
    if cfg.geometry_only:
        geometry = geometry_rows(cfg, say)
        load = {"start": load_start, "end": _load(), "cpus": os.cpu_count()}
        return {"decoder": str(cfg.decoder), "geometry": geometry, "load_average": load}
    decoder = load_model(cfg.decoder, "decoder", cfg.provider, cfg.threads)
    device = decoder.provider
    torch_dec, torch_why = torch_decoder(cfg.decoder, device)
    if cfg.threads and torch_dec is not None:
        import torch

        torch.set_num_threads(cfg.threads)
    flops, flops_why = graph_flops(cfg.decoder)
    cal = Calibrator(device, cfg.threads, cfg.gemm_n)
    # what the runtime really uses: never more rows per call than the decoder's activations
    # allow (toolkit.batching), for both onnxruntime columns alike
    batch = min(cfg.batch_size, decoder.max_batch)
    rows = []
    for n in cfg.sizes:
        cells = n * n
        reps = cfg.repeats if cells <= 50_000 else 1
        seconds: dict[str, float | None] = {"seed_loop": None, "torch_batched": None}
        if torch_dec is not None:
            if cells <= SEED_LOOP_MAX_CELLS:
                seed_loop(torch_dec, 3, device)
                seconds["seed_loop"] = _best(reps, partial(seed_loop, torch_dec, n, device))
            torch_batched(torch_dec, 5, cfg.batch_size, device)
            seconds["torch_batched"] = _best(
                reps, partial(torch_batched, torch_dec, n, cfg.batch_size, device)
            )
        onnx_batched(decoder, 5, batch)
        plain = timed_against_gemm(cal, partial(onnx_batched, decoder, n, batch), reps)
        onnx_bound(decoder, 5, batch)
        bound = timed_against_gemm(cal, partial(onnx_bound, decoder, n, batch), reps)
        seconds["onnx_batched"] = plain.seconds
        seconds["onnx_bound"] = bound.seconds
        row: dict = {"grid": f"{n}x{n}", "cells": cells, "seconds": seconds}
        row["onnx_cells_per_s"] = cells / bound.seconds
        if seconds["seed_loop"]:
            row["speedup_onnx_vs_seed"] = seconds["seed_loop"] / bound.seconds
        if seconds["torch_batched"]:
            row["speedup_onnx_vs_torch"] = seconds["torch_batched"] / bound.seconds
        row["cpu_seconds"] = {"onnx_batched": plain.cpu_seconds, "onnx_bound": bound.cpu_seconds}
        row["gemm_gflops"] = {"run": plain.gemm_gflops, "bound": bound.gemm_gflops}
        row["gemm_cpu_gflops"] = {"run": plain.gemm_cpu_gflops, "bound": bound.gemm_cpu_gflops}
        if flops:
            row["onnx_gflops"] = cells * flops / plain.seconds / 1e9
            row["bound_gflops"] = cells * flops / bound.seconds / 1e9
            row["fraction_of_gemm"] = row["onnx_gflops"] / plain.gemm_gflops
            row["bound_fraction_of_gemm"] = row["bound_gflops"] / bound.gemm_gflops
            for key, t in (("cpu_fraction_of_gemm", plain), ("bound_cpu_fraction_of_gemm", bound)):
                if t.gemm_cpu_gflops and t.cpu_seconds > 0:
                    row[key] = cells * flops / t.cpu_seconds / 1e9 / t.gemm_cpu_gflops
        rows.append(row)
        say(f"decode {n}x{n} done")

    result: dict = {
        "decoder": str(cfg.decoder),
        "provider": device,
        "device": _device_name(device),
        "threads": cfg.threads or "default",
        "batch_size": batch,
        "decoder_mflop_per_cell": flops / 1e6 if flops else None,
        "decoder_flops_unknown_why": flops_why,
        "torch_baseline": "available" if torch_dec is not None else f"not available: {torch_why}",
        "rows": rows,
    }
    if cfg.classifier is not None and cfg.atlas_size:
        result["atlas"] = _atlas_rows(cfg, cal, flops, say)
    if cfg.geometry_size or cfg.graph_size:
        result["geometry"] = geometry_rows(cfg, say)
    if cfg.measure_memory:
        result["peak_rss_mib_1001_streamed"] = peak_rss_streamed(cfg)
    if cfg.measure_report:
        for which in REPORTS:
            say(f"{which} report (child process)")
            result[f"report_{which}"] = report_child(cfg, which)
    best, source = _best_rate(*(r.wall for r in cal.samples))
    result["gemm_gflops"] = best
    result["gemm_source"] = source
    if cal.samples[0].cpu:
        result["gemm_cpu_gflops"], result["gemm_cpu_source"] = _best_rate(
            *(r.cpu for r in cal.samples)
        )
    result["gemm_sizes"] = cal.sizes
    result["gemm_samples"] = [{"wall": r.wall, "cpu": r.cpu} for r in cal.samples]
    fractions = [r.get(k) for r in rows for k in FRACTION_KEYS]
    fractions += [a.get(k) for a in result.get("atlas", []) for k in FRACTION_KEYS]
    result["calibration_ok"] = all((f or 0) <= 1 for f in fractions)
    result["load_average"] = {"start": load_start, "end": _load(), "cpus": os.cpu_count()}
    result["machine"] = {
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "onnxruntime": ort_version(),
        "numpy": np.__version__,
    }
    if torch_dec is not None:
        import torch

        result["machine"]["torch"] = torch.__version__
    result["self_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _device_name(device: str) -> str:
    if device == "cuda":
        try:
            import torch

            return str(torch.cuda.get_device_name())
        except Exception:
            return "cuda"
    return "cpu"


def _atlas_rows(
    cfg: BenchConfig, cal: Calibrator, dec_flops: float | None, say: Callable[[str], None]
) -> list[dict]:
    assert cfg.classifier is not None
    clf_flops, clf_why = graph_flops(cfg.classifier)
    per_point = dec_flops + clf_flops if dec_flops and clf_flops else None
    n = cfg.atlas_size
    out = []
    for fused in (True, False):
        before = cal.measure()
        child = atlas_child(cfg, fused)
        after = cal.measure()
        gemm, source = _best_rate(before.wall, after.wall)
        gemm_cpu = _best_rate(before.cpu, after.cpu)[0] if before.cpu and after.cpu else None
        row = {
            "grid": f"{n}x{n}",
            "points": n * n,
            "path": "fused graph" if fused else "decode, then classify",
            **child,
            "peak_rss_mib": child["peak_rss_kib"] / 1024,
            "points_per_s": n * n / child["seconds"],
            "mflop_per_point": per_point / 1e6 if per_point else None,
            "flops_unknown_why": clf_why if not clf_flops else "",
            "gemm_gflops": gemm,
            "gemm_source": source,
        }
        if per_point:
            row["gflops"] = n * n * per_point / child["seconds"] / 1e9
            row["fraction_of_gemm"] = row["gflops"] / gemm
            if gemm_cpu and child["cpu_seconds"] > 0:
                row["gemm_cpu_gflops"] = gemm_cpu
                row["cpu_fraction_of_gemm"] = (
                    n * n * per_point / child["cpu_seconds"] / 1e9 / gemm_cpu
                )
        out.append(row)
        say(f"atlas {n}x{n} {row['path']} done")
    return out


# ---------------------------------------------------------------------------- geometry
MAP_TARGET, QUERY_TARGET_MS = 1.3, 100.0  # issue 22: the map within 1.3× its decodes; 100 ms


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    cpu, wall = _cpu_seconds(), time.perf_counter()
    fn()
    return time.perf_counter() - wall, _cpu_seconds() - cpu


def geometry_rows(cfg: BenchConfig, say: Callable[[str], None]) -> dict:
    """The two ratios of decoder geometry, measured in this process, pairs alternated.

    - map: ``geometry_maps`` on ``geometry_size²`` cells (Jacobians, metric, magnification,
      condition number, step lengths) over the ``2·2 + 1`` decodes per cell it needs, decoded
      plainly (the same stencil rows through the same session, in the same chunks) — for the
      float32 graph and for the float64 copy ``auto`` picks where onnxruntime allows; and the
      float64 map over the float32 decodes (what the default costs against plain decoding).
    - graph: a ``graph_size²`` grid graph (8 neighbours, image-space edges), then Dijkstra
      queries between random pairs of nodes: median and worst milliseconds per query.
    """
    from latent_atlas.analysis import geometry as geo
    from latent_atlas.geometry import geometry_maps
    from latent_atlas.toolkit.jacobian import chunk_points, float64_decoder, stencil
    from latent_atlas.toolkit.runtime import Model

    decoder = load_model(cfg.decoder, "decoder", cfg.provider, cfg.threads)
    model = Model(cfg.decoder.stem, cfg.decoder, decoder)
    out: dict = {"provider": decoder.provider}
    n = cfg.geometry_size
    if n:
        spec = GridSpec(steps=(n, n))
        plane = spec.resolve_plane(decoder.latent_dim)
        x, y = spec.coordinates(None, plane)
        points = spec.points(x, y, plane, 0, n * n)
        step = chunk_points(int(np.prod(decoder.image_shape)), 2)
        wide = float64_decoder(decoder)

        def plain(run: Callable[[np.ndarray], object], dtype: type) -> None:
            for start in range(0, len(points), step):
                run(stencil(points[start : start + step], plane.basis, dtype)[0])

        runs: dict[str, Callable[[], object]] = {
            "decodes_float32": partial(plain, decoder, np.float32),
            "map_float32": partial(geometry_maps, model, spec, None, "float32"),
        }
        if wide is not None:
            runs["decodes_float64"] = partial(plain, wide, np.float64)
            runs["map_float64"] = partial(geometry_maps, model, spec, None, "float64")
        best = {k: (math.inf, math.inf) for k in runs}
        for _ in range(max(2, cfg.repeats)):  # alternated: a busier machine slows all alike
            for k, fn in runs.items():
                wall, cpu = _timed(fn)
                best[k] = (min(best[k][0], wall), min(best[k][1], cpu))
        out["map"] = {
            "grid": f"{n}x{n}",
            "decodes": 5 * n * n,
            "seconds": {k: v[0] for k, v in best.items()},
            "cpu_seconds": {k: v[1] for k, v in best.items()},
            "ratio_float32": best["map_float32"][0] / best["decodes_float32"][0],
            "cpu_ratio_float32": best["map_float32"][1] / best["decodes_float32"][1],
        }
        if wide is not None:
            out["map"]["ratio_float64"] = best["map_float64"][0] / best["decodes_float64"][0]
            out["map"]["cpu_ratio_float64"] = best["map_float64"][1] / best["decodes_float64"][1]
            out["map"]["float64_over_float32_decodes"] = (
                best["map_float64"][0] / best["decodes_float32"][0]
            )
        say(f"geometry map {n}x{n} done")
    g = cfg.graph_size
    if g:
        axis = np.linspace(-4.0, 4.0, g)
        u, v = np.meshgrid(axis, axis)
        coords = np.stack([u.ravel(), v.ravel()], axis=1)
        z = np.zeros((g * g, decoder.latent_dim), np.float32)
        z[:, :2] = coords
        build_wall, images = time.perf_counter(), decoder(z, cfg.batch_size)
        graph = geo.grid_graph(images, (g, g), 8)
        build = time.perf_counter() - build_wall
        del images
        rng = np.random.default_rng(0)
        pairs = rng.integers(0, g * g, size=(21, 2))
        times, cpu_times = [], []
        for a, b in pairs:
            wall, cpu = _timed(partial(geo.graph_path, graph, int(a), int(b)))
            times.append(wall * 1e3)
            cpu_times.append(cpu * 1e3)
        out["graph"] = {
            "grid": f"{g}x{g}",
            "nodes": g * g,
            "edges": int(graph.nnz // 2),
            "build_seconds": build,
            "query_ms_median": float(np.median(times)),
            "query_ms_max": float(np.max(times)),
            "query_cpu_ms_median": float(np.median(cpu_times)),
            "queries": len(times),
        }
        say(f"geodesic graph {g}x{g} done")
    return out


def geometry_lines(geometry: dict) -> list[str]:
    lines = [f"decoder geometry ({geometry['provider']}; targets: map ≤ {MAP_TARGET}× its "
             f"2·d+1 decodes, one query ≤ {QUERY_TARGET_MS:.0f} ms)"]  # fmt: skip
    if "map" in geometry:
        m = geometry["map"]
        t = m["seconds"]
        lines.append(
            f"  metric map {m['grid']} ({m['decodes']} decodes): float32 graph "
            f"{t['map_float32']:.3f} s over its decodes {t['decodes_float32']:.3f} s = "
            f"{m['ratio_float32']:.2f}× (CPU s {m['cpu_ratio_float32']:.2f}×)"
        )
        if "ratio_float64" in m:
            lines.append(
                f"  {'':>10} float64 graph (the default where onnxruntime allows) "
                f"{t['map_float64']:.3f} s over its decodes {t['decodes_float64']:.3f} s = "
                f"{m['ratio_float64']:.2f}× (CPU s {m['cpu_ratio_float64']:.2f}×); over the "
                f"float32 decodes {m['float64_over_float32_decodes']:.2f}×"
            )
    if "graph" in geometry:
        gr = geometry["graph"]
        lines.append(
            f"  geodesic graph {gr['grid']} ({gr['nodes']} nodes, {gr['edges']} edges, built "
            f"in {gr['build_seconds']:.2f} s): Dijkstra query median {gr['query_ms_median']:.1f} "
            f"ms, worst {gr['query_ms_max']:.1f} ms of {gr['queries']} (CPU "
            f"{gr['query_cpu_ms_median']:.1f} ms median)"
        )
    return lines


# ---------------------------------------------------------------------------- output
def _s(v: float | None, spec: str = ".4g") -> str:
    return "—" if v is None else format(v, spec)


def _frac(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.3f}" + ("!" if v > 1 else "")


def format_table(result: dict) -> str:
    if "rows" not in result:  # --geometry-only
        load = result["load_average"]
        return "\n".join([
            f"decoder: {result['decoder']}  load average (1 min) at start {load['start'][0]}, "
            f"at end {load['end'][0]} on {load['cpus']} CPUs",
            *geometry_lines(result["geometry"]),
        ])  # fmt: skip
    load = result["load_average"]
    samples = result["gemm_samples"]
    per_gemm = {k: max(s["wall"][k] for s in samples) for k in samples[0]["wall"]}
    cpu_line = ""
    if result.get("gemm_cpu_gflops"):
        cpu_line = (
            f"; per CPU second {result['gemm_cpu_gflops']:.1f} GFLOP ({result['gemm_cpu_source']})"
        )
    lines = [
        f"decoder: {result['decoder']}  provider: {result['provider']} ({result['device']})  "
        f"threads: {result['threads']}  batch: {result['batch_size']}",
        f"load average (1 min) at start {load['start'][0]}, at end {load['end'][0]} "
        f"on {load['cpus']} CPUs",
        "GEMM calibration (float32, best of "
        + ", ".join(f"{k} {v:.1f}" for k, v in per_gemm.items())
        + f" GFLOP/s): {result['gemm_gflops']:.1f} GFLOP/s ({result['gemm_source']}){cpu_line}; "
        f"{len(samples)} calibrations interleaved with the runs, each run compared with the "
        "ones right around it",
        f"decoder: {_s(result['decoder_mflop_per_cell'])} MFLOP/cell"
        + (
            f" (unknown: {result['decoder_flops_unknown_why']})"
            if result["decoder_mflop_per_cell"] is None
            else ""
        )  # fmt: skip
        + f"; torch baselines: {result['torch_baseline']}",
        "",
        "decode (images out; 'run' = session.run per batch, 'bound' = IO binding into one "
        "reused buffer; 'of GEMM' = wall-clock rate / the GEMM's, 'per CPU s' = GFLOP per CPU "
        "second / the GEMM's, which a busy machine disturbs less)",
        f"{'grid':>10} {'seed loop s':>12} {'torch s':>9} {'run s':>9} {'bound s':>9} "
        f"{'×seed':>8} {'×torch':>7} {'GFLOP/s':>8} {'run of GEMM':>12} {'bound of GEMM':>14} "
        f"{'per CPU s':>10}",
    ]
    for r in result["rows"]:
        t = r["seconds"]
        lines.append(
            f"{r['grid']:>10} {_s(t['seed_loop']):>12} {_s(t['torch_batched']):>9} "
            f"{_s(t['onnx_batched']):>9} {_s(t['onnx_bound']):>9} "
            f"{_s(r.get('speedup_onnx_vs_seed'), '.0f'):>8} "
            f"{_s(r.get('speedup_onnx_vs_torch'), '.2f'):>7} {_s(r.get('bound_gflops'), '.1f'):>8} "
            f"{_frac(r.get('fraction_of_gemm')):>12} {_frac(r.get('bound_fraction_of_gemm')):>14} "
            f"{_frac(r.get('bound_cpu_fraction_of_gemm')):>10}"
        )
    if any(r["cells"] > SEED_LOOP_MAX_CELLS for r in result["rows"]):
        lines.append(f"{'':>10} seed loop not run above {SEED_LOOP_MAX_CELLS:,} cells (it would "
                     "take tens of minutes)".replace(",", " "))  # fmt: skip
    if "atlas" in result:
        a0 = result["atlas"][0]
        lines += [
            "",
            f"atlas {a0['grid']} ({a0['points']} decodes + classifications; "
            f"{_s(a0['mflop_per_point'])} MFLOP/point decoder + classifier"
            + (f", unknown: {a0['flops_unknown_why']}" if a0["mflop_per_point"] is None else "")
            + "), each in a child process",
            f"{'path':>24} {'method':>9} {'batch':>6} {'s':>8} {'points/s':>10} "
            f"{'GFLOP/s':>8} {'of GEMM':>8} {'per CPU s':>10} {'peak RSS MiB':>13}",
        ]
        for a in result["atlas"]:
            lines.append(
                f"{a['path']:>24} {a['method']:>9} {a['batch_size']:>6} {a['seconds']:>8.2f} "
                f"{a['points_per_s']:>10.0f} {_s(a.get('gflops'), '.1f'):>8} "
                f"{_frac(a.get('fraction_of_gemm')):>8} {_frac(a.get('cpu_fraction_of_gemm')):>10} "
                f"{a['peak_rss_mib']:>13.0f}"
            )
            if a.get("note"):
                lines.append(f"{'':>24} {a['note']}")
        if len(result["atlas"]) == 2 and result["atlas"][0]["method"] == "fused":
            f, s = result["atlas"]
            lines.append(f"{'':>24} fused / separate speed: {s['seconds'] / f['seconds']:.2f}×")
    if "geometry" in result:
        lines += ["", *geometry_lines(result["geometry"])]
    if "peak_rss_mib_1001_streamed" in result:
        lines.append(
            f"\npeak RSS of the streamed 1001×1001 decode (child process): "
            f"{result['peak_rss_mib_1001_streamed']:.0f} MiB"
        )
    for which in REPORTS:
        if f"report_{which}" in result:
            lines.append(report_line(which, result[f"report_{which}"]))
    if not result["calibration_ok"]:
        lines.append(
            "CALIBRATION WRONG: a fraction marked '!' is above 1, i.e. a run beat the GEMM "
            "measured right around it — the machine's load changed between them, or a faster "
            "GEMM exists than the ones calibrated; do not quote these fractions."
        )
    return "\n".join(lines)


def write_result(result: dict, path: Path, overwrite: bool = False, protect: tuple = ()) -> None:
    from latent_atlas.toolkit.atomic import write_text

    write_text(path, json.dumps(result, indent=2) + "\n", overwrite, protect)
