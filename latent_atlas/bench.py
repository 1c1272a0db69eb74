"""``latent-atlas bench``: how fast the decoder turns a latent grid into images.

In one process, on one decoder: (a) the seed study's loop, one cell per call in torch;
(b) batched torch eager; (c) batched onnxruntime, streamed. Plus a float32 GEMM calibration of
this machine, so decode throughput is also a fraction of what the machine's matrix multiply
does, and the peak RSS of a streamed 1001×1001 decode, measured in a child process.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from latent_atlas.toolkit.grid import GridSpec, iter_decode
from latent_atlas.toolkit.runtime import OnnxModel, load_model

SEED_LOOP_MAX_CELLS = 50_000  # the seed loop at 1001×1001 would take tens of minutes


@dataclass(frozen=True)
class BenchConfig:
    decoder: Path
    sizes: tuple[int, ...] = (21, 201, 1001)
    provider: str = "auto"
    threads: int = 0
    batch_size: int = 4096
    repeats: int = 3
    measure_memory: bool = True


def gemm_gflops(n: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """Best-of-``repeats`` float32 ``n×n @ n×n`` rate through torch (same BLAS as the
    baseline), on the device the decode runs on."""
    a, b = torch.rand(n, n, device=device), torch.rand(n, n, device=device)

    def mm() -> None:
        torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()

    mm()
    best = _best(repeats, mm)
    return 2 * n**3 / best / 1e9


def decoder_flops(path: Path) -> float | None:
    """Multiply-adds ×2 per decoded cell for Gemm/MatMul-only decoders; None otherwise."""
    model = onnx.load(str(path))
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    flops = 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            return None
        if node.op_type in ("Gemm", "MatMul"):
            dims = inits.get(node.input[1])
            if dims is None:
                return None
            flops += 2 * int(np.prod(dims))
    return float(flops)


def _timed(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def _best(reps: int, fn: Callable[..., object], *args: object) -> float:
    return min(_timed(fn, *args) for _ in range(reps))


def _grid_points(n: int) -> np.ndarray:
    spec = GridSpec(steps=(n, n))
    x, y = spec.coordinates()
    return spec.points(x, y, spec.resolve_plane(2), 0, n * n)


def seed_loop(decoder: torch.nn.Module, n: int, device: str = "cpu") -> None:
    """The seed study's loop (with its assignment moved inside the inner loop)."""
    xs = np.linspace(-4, 4, n)
    xx, yy = np.meshgrid(xs, xs)
    image = np.zeros((n * 28, n * 28))
    with torch.no_grad():
        for j in reversed(range(n)):
            for i in range(n):
                z = torch.tensor([xx[j, i], yy[j, i]], dtype=torch.float32).view(1, 2)
                image[j * 28 : (j + 1) * 28, i * 28 : (i + 1) * 28] = (
                    decoder(z.to(device)).view(28, 28).cpu().numpy()
                )


def torch_batched(decoder: torch.nn.Module, n: int, batch: int, device: str = "cpu") -> None:
    """Batched torch eager; images come back to host memory, as onnxruntime's do."""
    z = torch.from_numpy(_grid_points(n))
    with torch.no_grad():
        for start in range(0, len(z), batch):
            decoder(z[start : start + batch].to(device)).cpu()


def onnx_batched(decoder: OnnxModel, n: int, batch: int) -> None:
    spec = GridSpec(steps=(n, n))
    x, y = spec.coordinates()
    for _ in iter_decode(decoder, spec, x, y, spec.resolve_plane(2), batch):
        pass


MEMORY_PROBE = """
import resource, sys
from latent_atlas.toolkit.grid import GridSpec, decode_grid
from latent_atlas.toolkit.runtime import load_model
dec = load_model(sys.argv[1], "decoder", sys.argv[2], int(sys.argv[3]))
grid = decode_grid(dec, GridSpec(steps=(1001, 1001)), batch_size=int(sys.argv[4]))
# VmHWM is this process's own peak; ru_maxrss would also count the parent's pages that
# the fork copied before exec (the bench parent holds torch: hundreds of MB).
try:
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    print(int(status.split()[0]))
except (OSError, IndexError):
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_streamed(cfg: BenchConfig) -> float:
    """Peak RSS (MiB) of a child process decoding 1001×1001 with a 2-px-per-cell mosaic."""
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(cfg.decoder), cfg.provider,
         str(cfg.threads), str(cfg.batch_size)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def run_bench(cfg: BenchConfig, progress: bool = True) -> dict:
    from latent_atlas.export.onnx_export import torch_decoder_from_onnx

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ort_decoder = load_model(cfg.decoder, "decoder", cfg.provider, cfg.threads)
    torch_decoder = torch_decoder_from_onnx(cfg.decoder)
    device = "cpu"
    if ort_decoder.provider == "cuda" and torch.cuda.is_available():
        device = "cuda"
    torch_decoder = torch_decoder.to(device)
    flops = decoder_flops(cfg.decoder)
    gemm = gemm_gflops(4096 if device == "cuda" else 2048, device=device)
    rows = []
    for n in cfg.sizes:
        cells = n * n
        timings: dict[str, float | None] = {}
        # warm-ups, then best of `repeats` (each decode is long enough at the large sizes)
        reps = cfg.repeats if cells <= 50_000 else 1
        if cells <= SEED_LOOP_MAX_CELLS:
            seed_loop(torch_decoder, 3, device)
            timings["seed_loop"] = _best(reps, seed_loop, torch_decoder, n, device)
        else:
            timings["seed_loop"] = None
        torch_batched(torch_decoder, 5, cfg.batch_size, device)
        timings["torch_batched"] = _best(
            reps, torch_batched, torch_decoder, n, cfg.batch_size, device
        )
        onnx_batched(ort_decoder, 5, cfg.batch_size)
        timings["onnx_batched"] = _best(reps, onnx_batched, ort_decoder, n, cfg.batch_size)
        row: dict = {"grid": f"{n}x{n}", "cells": cells, "seconds": timings}
        onnx_s = timings["onnx_batched"]
        assert onnx_s is not None
        row["onnx_cells_per_s"] = cells / onnx_s
        if timings["seed_loop"]:
            row["speedup_onnx_vs_seed"] = timings["seed_loop"] / onnx_s
        row["speedup_onnx_vs_torch"] = (timings["torch_batched"] or 0) / onnx_s
        if flops:
            row["onnx_gflops"] = cells * flops / onnx_s / 1e9
            row["fraction_of_gemm"] = row["onnx_gflops"] / gemm
        rows.append(row)
        if progress:
            print(f"  {n}x{n} done", file=sys.stderr)
    result = {
        "decoder": str(cfg.decoder),
        "provider": ort_decoder.provider,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "threads": cfg.threads or torch.get_num_threads(),
        "batch_size": cfg.batch_size,
        "gemm_gflops": gemm,
        "decoder_mflop_per_cell": flops / 1e6 if flops else None,
        "rows": rows,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": ort_version(),
        },
    }
    if cfg.measure_memory:
        result["peak_rss_mib_1001_streamed"] = peak_rss_streamed(cfg)
    result["self_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def format_table(result: dict) -> str:
    def s(v: float | None) -> str:
        return "—" if v is None else f"{v:.4g}"

    lines = [
        f"decoder: {result['decoder']}  provider: {result['provider']}  "
        f"threads: {result['threads']}  batch: {result['batch_size']}",
        f"GEMM calibration (float32, torch, {result['device']}): "
        f"{result['gemm_gflops']:.1f} GFLOP/s; "
        f"decoder: {s(result['decoder_mflop_per_cell'])} MFLOP/cell",
        "",
        f"{'grid':>10} {'seed loop s':>12} {'torch s':>10} {'onnx s':>10} "
        f"{'onnx/seed':>10} {'onnx/torch':>10} {'GFLOP/s':>9} {'of GEMM':>8}",
    ]
    for r in result["rows"]:
        t = r["seconds"]
        lines.append(
            f"{r['grid']:>10} {s(t['seed_loop']):>12} {s(t['torch_batched']):>10} "
            f"{s(t['onnx_batched']):>10} {s(r.get('speedup_onnx_vs_seed')):>9}× "
            f"{s(r['speedup_onnx_vs_torch']):>9}× {s(r.get('onnx_gflops')):>9} "
            f"{s(r.get('fraction_of_gemm')):>8}"
        )
    if "peak_rss_mib_1001_streamed" in result:
        lines.append(
            f"\npeak RSS of the streamed 1001×1001 decode (child process): "
            f"{result['peak_rss_mib_1001_streamed']:.0f} MiB"
        )
    lines.append("seed loop not run above 50 000 cells (it would take tens of minutes).")
    return "\n".join(lines)


def write_result(result: dict, path: Path) -> None:
    from latent_atlas.toolkit.atomic import write_text

    write_text(path, json.dumps(result, indent=2) + "\n")
