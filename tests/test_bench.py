"""The bench's arithmetic and plumbing (its timings are printed, never asserted)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import SHIPPED
from latent_atlas.toolkit.errors import AtlasError
from onnx import TensorProto, helper, numpy_helper
from toy_onnx import linear_decoder, prototype_classifier

from latent_atlas import bench
from latent_atlas.bench import (
    REPORT_PROBE,
    BenchConfig,
    Calibrator,
    format_table,
    graph_flops,
    run_bench,
)
from latent_atlas.cli import main

SHIPPED_DECODER_FLOPS = 2 * (2 * 256 + 256 * 512 + 512 * 784)
# conv 1→32 3×3 on 28×28, conv 32→64 3×3 on 14×14, 3136→128, 128→10
SHIPPED_CLASSIFIER_FLOPS = 2 * (32 * 784 * 9 + 64 * 196 * 32 * 9 + 3136 * 128 + 128 * 10)


# ---------------------------------------------------------------------------- FLOPs
def test_flops_of_the_shipped_models_known_answer():
    assert graph_flops(SHIPPED / "vae" / "decoder.onnx") == (SHIPPED_DECODER_FLOPS, "")
    flops, why = graph_flops(SHIPPED / "classifier" / "classifier.onnx")
    assert (flops, why) == (SHIPPED_CLASSIFIER_FLOPS, "")


def _save(tmp_path, nodes, inp, out, inits, name="m.onnx"):
    graph = helper.make_graph(nodes, "g", [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, tmp_path / name)
    return tmp_path / name


def _w(name, shape):
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def test_flops_of_grouped_conv_conv_transpose_and_transposed_gemm(tmp_path):
    # z [N, 4] → Gemm with transA on a [4, N]-shaped input is not a batch row; use a plain
    # Gemm (4 → 72), then [N, 8, 3, 3] → grouped Conv (groups 2, 8 → 6, 3×3, pad 1) →
    # ConvTranspose (6 → 4, 2×2 stride 2) → [N, 4, 6, 6]
    nodes = [
        helper.make_node("Gemm", ["z", "W0"], ["h"], transB=1),
        helper.make_node("Reshape", ["h", "s"], ["x"]),
        helper.make_node("Conv", ["x", "W1"], ["c"], group=2, pads=[1, 1, 1, 1]),
        helper.make_node("ConvTranspose", ["c", "W2"], ["image"], strides=[2, 2]),
    ]
    path = _save(
        tmp_path, nodes, helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4]),
        helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 4, 6, 6]),
        [_w("W0", (72, 4)), numpy_helper.from_array(np.array([-1, 8, 3, 3], np.int64), "s"),
         _w("W1", (6, 4, 3, 3)), _w("W2", (6, 4, 2, 2))],
    )  # fmt: skip
    gemm = 2 * 4 * 72
    conv = 2 * (6 * 3 * 3) * (4 * 3 * 3)  # each output value: C_in/group · k² multiply-adds
    deconv = 2 * (6 * 3 * 3) * (4 * 2 * 2)  # each input value scatters C_out · k²
    assert graph_flops(path) == (gemm + conv + deconv, "")


def test_flops_unknown_when_a_shape_is_symbolic(tmp_path):
    # a MatMul whose output width depends on a symbol: counted as unknown, with the reason
    nodes = [helper.make_node("MatMul", ["x", "x2"], ["y"]), helper.make_node("Relu", ["y"], ["o"])]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "K"]),
         helper.make_tensor_value_info("x2", TensorProto.FLOAT, ["K", "M"])],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, ["N", "M"])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    flops, why = graph_flops(tmp_path / "m.onnx")
    assert flops is None and "MatMul" in why and "unknown" in why


def test_flops_of_a_foreign_decoder(tmp_path):
    # not one of ours (no architecture metadata): FLOPs still counted from the graph
    path = linear_decoder(tmp_path / "d.onnx", np.array([0.1, 0.0]), 0.5)
    assert graph_flops(path) == (2 * 2 * 784, "")


# ---------------------------------------------------------------------------- calibration
def test_calibrator_measures_every_library_and_size_on_the_cpu():
    assert Calibrator("cpu", n=64).sizes == [64]  # nothing below 256 but n itself
    assert Calibrator("cpu", n=1024).sizes == [256, 512, 1024]
    cal = Calibrator("cpu", n=64)
    rates = cal.measure(reps=1)
    assert set(rates.wall) == {"onnxruntime 64³", "torch 64³", "numpy 64³"}
    assert set(rates.cpu) == set(rates.wall)
    assert all(r > 0 for r in rates.wall.values()) and cal.samples == [rates]


def test_best_rate_takes_the_highest_of_any_sample():
    rate, source = bench._best_rate(
        {"torch 2048³": 200.0, "numpy 2048³": 210.0}, {"onnxruntime 512³": 460.0}
    )
    assert (rate, source) == (460.0, "onnxruntime 512³")


def _result(fraction: float) -> dict:
    row = {"grid": "3x3", "cells": 9, "onnx_cells_per_s": 1.0, "bound_gflops": 1.0,
           "fraction_of_gemm": 0.5, "bound_fraction_of_gemm": fraction,
           "seconds": {"seed_loop": None, "torch_batched": None, "onnx_batched": 1.0,
                       "onnx_bound": 1.0}}  # fmt: skip
    return {
        "decoder": "d.onnx", "provider": "cpu", "device": "cpu", "threads": "default",
        "batch_size": 4, "decoder_mflop_per_cell": 1.0, "decoder_flops_unknown_why": "",
        "torch_baseline": "not available: not ours", "rows": [row], "gemm_gflops": 2.0,
        "gemm_source": "numpy 64³", "gemm_samples": [{"wall": {"numpy 64³": 2.0}, "cpu": {}}],
        "calibration_ok": fraction <= 1, "load_average": {"start": [0.5], "end": [0.6], "cpus": 2},
    }  # fmt: skip


@pytest.mark.parametrize("fraction, flagged", [(0.999, False), (1.0, False), (1.001, True)])
def test_a_fraction_above_one_is_flagged_never_printed_plainly(fraction, flagged):
    table = format_table(_result(fraction))
    assert ("CALIBRATION WRONG" in table) == flagged
    assert (f"{fraction:.3f}!" in table) == flagged
    assert "load average (1 min) at start 0.5" in table and "not available: not ours" in table


# ---------------------------------------------------------------------------- the bench
def test_config_validates_at_the_edges():
    dec = SHIPPED / "vae" / "decoder.onnx"
    BenchConfig(dec, atlas_size=1001)
    BenchConfig(dec, atlas_size=0)
    BenchConfig(dec, atlas_size=2)
    for bad in ({"atlas_size": 1002}, {"atlas_size": 1}, {"repeats": 0}, {"sizes": (1,)},
                {"sizes": ()}, {"batch_size": 0}, {"threads": -1}, {"gemm_n": 8}):  # fmt: skip
        with pytest.raises(AtlasError, match="bench"):
            BenchConfig(dec, **bad)  # type: ignore[arg-type]


def test_small_bench_runs_and_reports():
    cfg = BenchConfig(
        SHIPPED / "vae" / "decoder.onnx", SHIPPED / "classifier" / "classifier.onnx",
        sizes=(3, 5), atlas_size=4, repeats=1, measure_memory=False, measure_report=False,
        gemm_n=128,
    )  # fmt: skip
    result = run_bench(cfg, progress=False)
    assert [r["cells"] for r in result["rows"]] == [9, 25]
    row = result["rows"][0]
    assert set(row["seconds"]) == {"seed_loop", "torch_batched", "onnx_batched", "onnx_bound"}
    t = row["seconds"]
    assert row["onnx_gflops"] == pytest.approx(9 * SHIPPED_DECODER_FLOPS / t["onnx_batched"] / 1e9)
    assert row["bound_gflops"] == pytest.approx(9 * SHIPPED_DECODER_FLOPS / t["onnx_bound"] / 1e9)
    gemm = row["gemm_gflops"]
    assert row["bound_fraction_of_gemm"] == pytest.approx(row["bound_gflops"] / gemm["bound"])
    assert row["fraction_of_gemm"] == pytest.approx(row["onnx_gflops"] / gemm["run"])
    # every fraction is against a calibration taken right around it: 2 per onnx column, 2 per
    # atlas path
    assert len(result["gemm_samples"]) == 2 * 2 * 2 + 2 * 2
    assert result["gemm_gflops"] == max(max(s["wall"].values()) for s in result["gemm_samples"])
    assert result["gemm_cpu_gflops"] == max(max(s["cpu"].values()) for s in result["gemm_samples"])
    cpu = row["cpu_seconds"]["onnx_bound"]
    assert row["bound_cpu_fraction_of_gemm"] == pytest.approx(
        9 * SHIPPED_DECODER_FLOPS / cpu / 1e9 / row["gemm_cpu_gflops"]["bound"]
    )
    fused, separate = result["atlas"]
    assert (fused["method"], separate["method"]) == ("fused", "separate")
    per_point = SHIPPED_DECODER_FLOPS + SHIPPED_CLASSIFIER_FLOPS
    for a in (fused, separate):
        assert a["points"] == 16 and a["peak_rss_mib"] > 0
        assert a["gflops"] == pytest.approx(16 * per_point / a["seconds"] / 1e9)
        assert a["fraction_of_gemm"] == pytest.approx(a["gflops"] / a["gemm_gflops"])
        assert a["cpu_fraction_of_gemm"] == pytest.approx(
            16 * per_point / a["cpu_seconds"] / 1e9 / a["gemm_cpu_gflops"]
        )
    table = format_table(result)
    assert "21x21" not in table and "5x5" in table and "fused graph" in table
    assert "seed loop not run" not in table  # only said when a grid was too big for it
    big = {**result, "rows": [*result["rows"], {**row, "grid": "301x301", "cells": 90_601}]}
    assert "seed loop not run above 50 000 cells" in format_table(big)


def test_foreign_decoder_has_no_torch_baseline(tmp_path):
    path = linear_decoder(tmp_path / "d.onnx", np.array([0.1, 0.0]), 0.5)
    cfg = BenchConfig(path, None, sizes=(3,), repeats=1, measure_memory=False,
                      measure_report=False, gemm_n=128)  # fmt: skip
    result = run_bench(cfg, progress=False)
    assert result["torch_baseline"].startswith("not available")
    assert result["rows"][0]["seconds"]["torch_batched"] is None
    assert result["decoder_mflop_per_cell"] == pytest.approx(2 * 2 * 784 / 1e6)
    assert "atlas" not in result
    assert "torch baselines: not available" in format_table(result)


def test_atlas_child_with_a_foreign_classifier(tmp_path):
    protos = np.random.default_rng(0).random((10, 28, 28)).astype(np.float32)
    clf = prototype_classifier(tmp_path / "c.onnx", protos)
    dec = linear_decoder(tmp_path / "d.onnx", np.array([0.05, 0.0]), 0.5)
    cfg = BenchConfig(dec, clf, atlas_size=3, measure_memory=False, measure_report=False)
    child = bench.atlas_child(cfg, fused=True)
    assert child["method"] == "fused" and child["peak_rss_kib"] > 0 and child["seconds"] > 0


def test_report_probe_reports_the_childs_own_peak(tmp_path):
    out = bench._child(REPORT_PROBE, "grid", "--model", str(SHIPPED / "vae"), "--steps", "3",
                           "3", "--out", str(tmp_path / "g"), "--no-progress")  # fmt: skip
    (line,) = [x for x in out.splitlines() if x.startswith("VmHWM_KiB")]
    assert int(line.split()[1]) > 10_000  # a Python with numpy and onnxruntime: > 10 MiB
    with pytest.raises(AtlasError, match="child process failed"):
        bench._child(REPORT_PROBE, "grid", "--steps", "1", "1")


def test_cli_bench_writes_json(tmp_path, capsys):
    rc = main(["bench", "--sizes", "3", "--repeats", "1", "--no-memory", "--no-report",
               "--atlas-size", "0", "--gemm-size", "128", "--geometry-size", "0",
               "--graph-size", "0", "--json", str(tmp_path / "b.json")])  # fmt: skip
    assert rc in (0, None)
    assert json.loads((tmp_path / "b.json").read_text())["rows"][0]["grid"] == "3x3"
    out = capsys.readouterr().out
    assert "GEMM calibration" in out and "load average" in out


def test_geometry_rows_measure_the_two_ratios(tmp_path, capsys):
    path = linear_decoder(tmp_path / "d.onnx", np.array([0.1, 0.0]), 0.5)
    for bad in ({"geometry_size": 1}, {"graph_size": 1002}):
        with pytest.raises(AtlasError, match="bench --g"):
            BenchConfig(path, **bad)  # type: ignore[arg-type]
    rc = main(["bench", "--decoder", str(path), "--geometry-only", "--geometry-size", "6",
               "--graph-size", "7", "--repeats", "1"])  # fmt: skip
    assert rc in (0, None)
    out = capsys.readouterr().out
    assert "metric map 6x6 (180 decodes)" in out and "float64 graph" in out
    assert "geodesic graph 7x7 (49 nodes, 156 edges" in out and "GEMM" not in out
    cfg = BenchConfig(path, geometry_size=4, graph_size=5, geometry_only=True, repeats=1)
    g = run_bench(cfg, progress=False)["geometry"]
    m = g["map"]
    assert m["ratio_float32"] == pytest.approx(
        m["seconds"]["map_float32"] / m["seconds"]["decodes_float32"]
    )
    assert m["cpu_ratio_float64"] == pytest.approx(
        m["cpu_seconds"]["map_float64"] / m["cpu_seconds"]["decodes_float64"])  # fmt: skip
    assert g["graph"]["queries"] == 21 and g["graph"]["query_ms_median"] > 0


@pytest.mark.real_data
def test_bench_on_a_decoder_of_another_image_size(capsys):
    """The seed loop sized its canvas for 28×28: the shipped 8×8 digits VAE crashed it."""
    digits = SHIPPED.parent / "digits" / "vae" / "decoder.onnx"
    rc = main(["bench", "--decoder", str(digits), "--classifier", "none", "--sizes", "3",
               "--repeats", "1", "--no-memory", "--no-report", "--atlas-size", "0",
               "--gemm-size", "128", "--geometry-size", "0", "--graph-size", "0"])  # fmt: skip
    assert rc in (0, None)
    out = capsys.readouterr().out
    assert "3x3" in out and "torch baselines: available" in out


@pytest.mark.slow
@pytest.mark.real_data
def test_report_row_counts_the_childs_cpu(monkeypatch):
    from conftest import LEAN_PRELUDE

    # the child's report at the suite's lean sizes (conftest.LEAN)
    main = "from latent_atlas.cli import main\n"
    assert main in REPORT_PROBE
    monkeypatch.setattr(bench, "REPORT_PROBE", REPORT_PROBE.replace(main, main + LEAN_PRELUDE))
    cfg = BenchConfig(SHIPPED / "vae" / "decoder.onnx", measure_memory=False)
    rep = bench.report_child(cfg, "two-model")
    # the parent only waits: CPU seconds of the wrong process would be ~0; a lean report
    # still decodes and classifies ~40 000 images
    assert rep["cpu_seconds"] > 1.0 and rep["seconds"] > 0.5
    assert rep["cores"] == bench.usable_cores() >= 1
    assert rep["cpu_bound_seconds"] == pytest.approx(rep["cpu_seconds"] / rep["cores"])
    assert rep["peak_rss_mib"] > 10
    line = bench.report_line("two-model", rep)
    assert f"{rep['cpu_seconds']:.1f} CPU s" in line and "no seeds" in line
    assert f"can take less than {rep['cpu_bound_seconds']:.2f} s wall" in line
