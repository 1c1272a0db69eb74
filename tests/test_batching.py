"""Rows per onnxruntime call, sized from a graph's activations: known answers on toy graphs,
the rule's edges, and the runtime honouring it whatever batch the caller asks for."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import SHIPPED
from latent_atlas.toolkit import batching
from latent_atlas.toolkit.runtime import load_classifier, load_model
from onnx import TensorProto, helper, numpy_helper


def _mlp(widths: list[int]) -> onnx.ModelProto:
    """x [N, w0] → MatMul → Relu → … ; every intermediate is [N, w] float32."""
    nodes, inits, prev = [], [], "x"
    for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
        inits.append(numpy_helper.from_array(np.ones((a, b), np.float32), f"W{i}"))
        nodes += [helper.make_node("MatMul", [prev, f"W{i}"], [f"h{i}"]),
                  helper.make_node("Relu", [f"h{i}"], [f"r{i}"])]  # fmt: skip
        prev = f"r{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", widths[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", widths[-1]])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_row_bytes_known_answer():
    # 4 → 100 → 28: intermediates h0, r0 (100 each), h1, r1 (28 each); the output y is not
    # an intermediate. (100 + 100 + 28 + 28) float32 = 1024 bytes per row
    inferred = batching.inferred(_mlp([4, 100, 28]))
    assert inferred is not None and batching.row_bytes(inferred) == 1024


def test_activation_batch_at_its_edges():
    inferred = batching.inferred(_mlp([4, 100, 28]))  # 1024 B per row
    assert batching.activation_batch(inferred, budget=1024 * 640) == 640
    assert batching.activation_batch(inferred, budget=1024 * 640 - 1) == 576  # 639 → 576
    assert batching.activation_batch(inferred, budget=1024 * 64) == batching.MIN_BATCH
    assert batching.activation_batch(inferred, budget=1024) == batching.MIN_BATCH
    assert batching.activation_batch(inferred, budget=1024 * 4096) == batching.MAX_BATCH
    assert batching.activation_batch(inferred, budget=1024 * 10**6) == batching.MAX_BATCH


def test_unknown_sizes_fall_back():
    inferred = batching.inferred(_mlp([4, 100, 28]))
    # one intermediate whose width is a symbol: the activations cannot be sized
    inferred.graph.value_info[0].type.tensor_type.shape.dim[1].dim_param = "M"
    assert batching.row_bytes(inferred) is None
    assert batching.activation_batch(inferred, unknown=333) == 333
    no_shapes = _mlp([4, 100, 28])  # never inferred: no value_info at all
    assert batching.row_bytes(no_shapes) is None
    assert batching.activation_batch(no_shapes, unknown=333) == 333


@pytest.mark.real_data
def test_shipped_models_get_their_batches():
    clf = load_classifier(SHIPPED / "classifier" / "classifier.onnx", 10)
    dec = load_model(SHIPPED / "vae" / "decoder.onnx", "decoder")
    # the CNN: 358 016 B of activations per image → 12 MiB / 358 016 B = 35 → at least 64
    assert clf.max_batch == batching.MIN_BATCH == 64
    # the MLP decoder: 12 416 B per code → 1013 → 960 (a multiple of 64)
    assert dec.max_batch == 960


@pytest.mark.real_data
def test_runtime_never_calls_with_more_rows_than_max_batch():
    clf = load_classifier(SHIPPED / "classifier" / "classifier.onnx", 10)
    seen: list[int] = []
    run = clf.session.run

    class Spy:
        def __getattr__(self, name):
            return getattr(clf.session, name)

        def run(self, names, feed):
            seen.append(len(next(iter(feed.values()))))
            return run(names, feed)

    images = np.random.default_rng(0).random((1100, 1, 28, 28), dtype=np.float32)
    expected = clf.run(images, 4096)
    clf.session = Spy()  # type: ignore[assignment]
    got = clf.run(images, 4096)
    assert seen == [64] * 17 + [12]  # 1100 = 17 · 64 + 12
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_sessions_share_one_arena_and_do_not_spin(tmp_path):
    from latent_atlas.toolkit import runtime
    from toy_onnx import linear_decoder

    dec = load_model(linear_decoder(tmp_path / "d.onnx", np.array([0.1, 0.0]), 0.5))
    opts = dec.session.get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    if runtime._shared_cpu_arena():  # onnxruntime >= 1.x registers env allocators
        assert opts.get_session_config_entry("session.use_env_allocators") == "1"


def test_run_fills_one_array_per_output_across_batches(tmp_path):
    # many batches: the outputs equal one big call, row for row (no concatenation involved)
    from toy_onnx import linear_decoder

    dec = load_model(linear_decoder(tmp_path / "d.onnx", np.array([0.1, -0.05]), 0.5))
    z = np.random.default_rng(1).normal(size=(1000, 2)).astype(np.float32)
    whole = dec.run(z, 4096)
    parts = dec.run(z, 7)  # 142 full batches and one of 6 rows
    assert [a.shape for a in parts] == [a.shape for a in whole]
    for a, b in zip(whole, parts, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_gpu_session_gets_the_gpu_budget_and_cap():
    """CUDA sessions batch from a device-memory budget with a larger cap; CPU sessions keep
    the cache-sized one. 1024 B per row: 4 MiB → 4096 rows (the CPU cap), 512 MiB → 524 288
    rows, capped at GPU_MAX_BATCH."""
    inferred = batching.inferred(_mlp([4, 100, 28]))
    cpu, gpu = batching.budget_for("cpu"), batching.budget_for("cuda")
    assert cpu == (batching.ACTIVATION_BUDGET, batching.MAX_BATCH)
    assert batching.activation_batch(inferred, *cpu) == batching.MAX_BATCH == 4096
    assert batching.activation_batch(inferred, *gpu) == batching.GPU_MAX_BATCH == 32768
    wide = batching.inferred(_mlp([4, 100_000, 28]))  # ~800 kB per row: the budget decides
    rows = batching.GPU_ACTIVATION_BUDGET // batching.row_bytes(wide) // 64 * 64
    assert batching.activation_batch(wide, *gpu) == rows == 640
    assert batching.activation_batch(wide, *cpu) == batching.MIN_BATCH
