"""The bench's arithmetic and plumbing (its timings are printed, never asserted)."""

from __future__ import annotations

import json

import pytest
from conftest import SHIPPED

from latent_atlas.bench import BenchConfig, decoder_flops, format_table, run_bench
from latent_atlas.cli import main


def test_decoder_flops_known_answer():
    # MLP decoder 2 → 256 → 512 → 784: 2·(2·256 + 256·512 + 512·784) FLOP per cell
    assert decoder_flops(SHIPPED / "vae" / "decoder.onnx") == 2 * (2 * 256 + 256 * 512 + 512 * 784)


def test_small_bench_runs_and_reports(tmp_path, capsys):
    result = run_bench(
        BenchConfig(
            SHIPPED / "vae" / "decoder.onnx", sizes=(3, 5), repeats=1, measure_memory=False
        ),
        progress=False,
    )
    assert [r["cells"] for r in result["rows"]] == [9, 25]
    row = result["rows"][0]
    assert set(row["seconds"]) == {"seed_loop", "torch_batched", "onnx_batched"}
    assert row["onnx_gflops"] == pytest.approx(9 * 1_065_984 / row["seconds"]["onnx_batched"] / 1e9)
    assert "21x21" not in format_table(result) and "5x5" in format_table(result)
    rc = main(["bench", "--sizes", "3", "--repeats", "1", "--no-memory",
               "--json", str(tmp_path / "b.json")])  # fmt: skip
    assert rc == 0 and json.loads((tmp_path / "b.json").read_text())["rows"][0]["grid"] == "3x3"
    assert "GEMM calibration" in capsys.readouterr().out
