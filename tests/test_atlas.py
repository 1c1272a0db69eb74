"""The dense atlas: one composed ONNX graph (decoder → brightness, classifier → class and
confidence), streamed over a grid. Known answers from toy models whose outputs are known
functions of z; the composed graph agrees with decoding and classifying separately."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import SHIPPED
from latent_atlas.analysis.brightness import brightness_gradient
from latent_atlas.toolkit import atlas as atlas_mod
from latent_atlas.toolkit import batching
from latent_atlas.toolkit.atlas import (
    MAX_STEPS,
    auto_batch,
    compute_atlas,
    fuse_graphs,
    fused_model,
    fused_session,
)
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec
from latent_atlas.toolkit.runtime import load, load_classifier, load_model
from onnx import TensorProto, helper, numpy_helper
from toy_onnx import linear_decoder, prototype_classifier, region_decoder, toy_pair


@pytest.fixture(scope="module")
def protos():
    return np.random.default_rng(0).random((10, 28, 28)).astype(np.float32)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, protos):
    path = prototype_classifier(tmp_path_factory.mktemp("clf") / "classifier.onnx", protos)
    return load_classifier(path, 10)


def _softmax_max(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).max(axis=-1)


# ---------------------------------------------------------------------------- known answers
@pytest.mark.parametrize("fused", [True, False])
def test_linear_decoder_brightness_is_the_plane(tmp_path, classifier, fused):
    # every pixel = 0.05·z₀ − 0.02·z₁ + 0.5, so brightness is that plane and its gradient
    # (analysis.brightness, on the atlas) is (0.05, −0.02) everywhere, edges included
    dec = load_model(linear_decoder(tmp_path / "d.onnx", np.array([0.05, -0.02]), 0.5))
    spec = GridSpec(steps=(9, 7), x_range=(-4.0, 4.0), y_range=(-3.0, 3.0))
    atlas = compute_atlas(dec, classifier, spec, fused=fused)
    assert atlas.method == ("fused" if fused else "separate")
    assert atlas.shape == (7, 9) and atlas.labels.dtype == np.int64
    expected = 0.05 * atlas.x[None, :] - 0.02 * atlas.y[:, None] + 0.5
    np.testing.assert_allclose(atlas.brightness, expected, atol=2e-6)
    d1, d2 = brightness_gradient(atlas.brightness, atlas.x, atlas.y)
    np.testing.assert_allclose(d1, 0.05, atol=1e-5)
    np.testing.assert_allclose(d2, -0.02, atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_two_regions_boundary_where_expected(tmp_path, protos, classifier, fused):
    # the decoder draws prototype 3 where z₀ < 0.5 and prototype 8 where z₀ >= 0.5; the
    # prototype classifier must put the class boundary exactly there (0.5 itself is class 8)
    dec = load_model(region_decoder(tmp_path / "d.onnx", protos[3], protos[8], split=0.5))
    spec = GridSpec(steps=(17, 5), x_range=(-3.5, 4.5), y_range=(-1.0, 1.0))  # step 0.5
    atlas = compute_atlas(dec, classifier, spec, fused=fused)
    assert 0.5 in atlas.x
    expected = np.where(atlas.x < 0.5, 3, 8)
    assert (atlas.labels == expected[None, :]).all()
    # confidence: the max softmax of logits_k = −50·mean((p − p_k)²) at the drawn prototype p
    logits = -50 * ((protos[None] - protos[:, None]) ** 2).mean(axis=(2, 3))  # [drawn, k]
    conf = _softmax_max(logits.astype(np.float64))
    np.testing.assert_allclose(atlas.confidence, np.where(atlas.x < 0.5, conf[3], conf[8])[None, :]
                               .repeat(5, 0), rtol=1e-5)  # fmt: skip
    np.testing.assert_allclose(
        atlas.brightness, np.where(atlas.x < 0.5, protos[3].mean(), protos[8].mean())[None, :]
        .repeat(5, 0), atol=1e-6,
    )  # fmt: skip


def test_batches_do_not_change_the_result(tmp_path, classifier):
    dec = load_model(linear_decoder(tmp_path / "d.onnx", np.array([0.05, 0.03]), 0.5))
    spec = GridSpec(steps=(11, 6))
    whole = compute_atlas(dec, classifier, spec, batch_size=4096)
    for batch in (1, 7, 65, 66):  # 66 = 11·6 points: exactly one batch; 65: one row left over
        part = compute_atlas(dec, classifier, spec, batch_size=batch)
        assert part.batch_size == batch
        assert (part.labels == whole.labels).all()
        np.testing.assert_array_equal(part.brightness, whole.brightness)
        np.testing.assert_array_equal(part.confidence, whole.confidence)


@pytest.mark.real_data
def test_fused_equals_separate_on_the_shipped_models():
    dec = load_model(SHIPPED / "vae" / "decoder.onnx", "decoder")
    clf = load_classifier(SHIPPED / "classifier" / "classifier.onnx", 10)
    spec = GridSpec(steps=(23, 19))
    fused = compute_atlas(dec, clf, spec, fused=True)
    separate = compute_atlas(dec, clf, spec, fused=False)
    assert fused.method == "fused" and separate.method == "separate"
    # float32 through different kernels: a tie between two classes may break either way
    assert (fused.labels == separate.labels).mean() > 0.99
    np.testing.assert_allclose(fused.confidence, separate.confidence, atol=1e-5)
    np.testing.assert_allclose(fused.brightness, separate.brightness, atol=1e-6)
    assert len(np.unique(fused.labels)) >= 5  # a real map, not one class everywhere


# ---------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("fused", [True, False])
def test_decoder_outside_unit_range_refused(tmp_path, classifier, fused):
    # bias 0.9 + 0.1·z₀ reaches 1.3 at z₀ = 4 (just inside at the grid's 1.0 edge otherwise)
    dec = load_model(linear_decoder(tmp_path / "d.onnx", np.array([0.1, 0.0]), 0.9))
    with pytest.raises(AtlasError, match=r"outside|expected \[0, 1\].*Sigmoid"):
        compute_atlas(dec, classifier, GridSpec(steps=(5, 5)), fused=fused)
    inside = GridSpec(steps=(5, 5), x_range=(-4.0, 1.0))  # max pixel exactly 1.0: accepted
    assert compute_atlas(dec, classifier, inside, fused=fused).brightness.max() == pytest.approx(1)


@pytest.mark.parametrize("fused", [True, False])
def test_pixel_range_allows_float32_rounding_only(tmp_path, classifier, fused):
    """1 + 2⁻²³ (a float32 Sigmoid rounded up) passes; 1 + 1e-5 is a decoder outside [0, 1]."""
    for name, bias, ok in (("ulp", 1 + 2.0**-23, True), ("over", 1 + 1e-5, False),
                           ("under", -1e-5, False)):  # fmt: skip
        dec = load_model(linear_decoder(tmp_path / f"{name}.onnx", np.zeros(2), bias))
        spec = GridSpec(steps=(3, 3))
        if ok:
            assert compute_atlas(dec, classifier, spec, fused=fused).brightness.max() > 1
        else:
            with pytest.raises(AtlasError, match="Sigmoid"):
                compute_atlas(dec, classifier, spec, fused=fused)


def test_grid_size_limit_at_its_edge():
    atlas_mod._check_spec(GridSpec(steps=(MAX_STEPS, MAX_STEPS)))
    with pytest.raises(AtlasError, match="at most 1001"):
        atlas_mod._check_spec(GridSpec(steps=(MAX_STEPS + 1, 2)))


def test_changed_file_refused(tmp_path, classifier):
    path = linear_decoder(tmp_path / "d.onnx", np.array([0.05, 0.0]), 0.5)
    dec = load_model(path)
    linear_decoder(path, np.array([0.06, 0.0]), 0.5)  # rewritten after loading
    with pytest.raises(AtlasError, match="changed on disk"):
        fused_model(dec, classifier)


def test_composed_graph_passes_the_model_checks(tmp_path, classifier):
    from latent_atlas.toolkit import runtime

    dec = load_model(linear_decoder(tmp_path / "d.onnx", np.array([0.05, 0.0]), 0.5))
    graph = fused_model(dec, classifier)
    onnx.checker.check_model(graph, full_check=True)
    runtime._parse(graph.SerializeToString(), tmp_path / "atlas")
    assert [o.name for o in graph.graph.output] == list(atlas_mod.OUTPUTS)
    # the classifier's feature output is not computed: nothing reads its projection
    assert not any(t.name.endswith("/R") for t in graph.graph.initializer)
    # both toy files name their weights "W": prefixes keep them apart
    names = {t.name for t in graph.graph.initializer}
    assert {"decoder/W", "classifier/W"} <= names


def test_composed_graph_with_external_data_is_refused(tmp_path, classifier):
    # the composed graph goes through the same refusals as a file: external data is one
    dec = load_model(linear_decoder(tmp_path / "d.onnx", np.array([0.05, 0.0]), 0.5))
    graph = fused_model(dec, classifier)
    graph.graph.initializer[0].data_location = TensorProto.EXTERNAL
    with pytest.raises(AtlasError, match="external data"):
        fused_session(graph)


def test_unfusable_pair_falls_back_and_says_why(tmp_path, classifier, monkeypatch):
    dec = load_model(linear_decoder(tmp_path / "d.onnx", np.array([0.05, 0.0]), 0.5))

    def refuse(*args):
        raise AtlasError("classifier: cannot lift opset 9 to 20 (test)")

    monkeypatch.setattr(atlas_mod, "fused_model", refuse)
    atlas = compute_atlas(dec, classifier, GridSpec(steps=(3, 3)))
    assert atlas.method == "separate" and "cannot lift opset" in atlas.note
    with pytest.raises(AtlasError, match="cannot lift"):
        compute_atlas(dec, classifier, GridSpec(steps=(3, 3)), fused=True)


# ---------------------------------------------------------------------------- layouts, opsets
def _const(name: str, values, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype), name)


def _layout_dims(layout: str, shape) -> list:
    c, h, w = shape
    return {"NCHW": ["N", c, h, w], "NHWC": ["N", h, w, c], "NHW": ["N", h, w],
            "flat": ["N", c * h * w]}[layout]  # fmt: skip


def _model(nodes, inputs, outputs, inits, opset: int) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def layout_decoder(w, b, shape, layout: str, opset: int = 17) -> onnx.ModelProto:
    """image (C·H·W order) = sigmoid(z @ w + b), emitted in ``layout``. Tensor names "x", "W"
    and "out" deliberately repeat in layout_classifier."""
    c, h, wd = shape
    nodes = [helper.make_node("Gemm", ["z", "W", "B"], ["x"]),
             helper.make_node("Sigmoid", ["x"], ["s"]),
             helper.make_node("Reshape", ["s", "nchw"], ["img"])]  # fmt: skip
    inits = [_const("W", w), _const("B", b), _const("nchw", [-1, c, h, wd], np.int64)]
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", ["img"], ["out"], perm=[0, 2, 3, 1]))
    else:
        dims = {"NCHW": [-1, c, h, wd], "NHW": [-1, h, wd], "flat": [-1, c * h * wd]}[layout]
        inits.append(_const("lay", dims, np.int64))
        nodes.append(helper.make_node("Reshape", ["img", "lay"], ["out"]))
    return _model(
        nodes, [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", w.shape[0]])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, _layout_dims(layout, shape))],
        inits, opset,
    )  # fmt: skip


def layout_classifier(
    w, b, shape, layout: str, opset: int = 17, softmax: bool = False
) -> onnx.ModelProto:
    """logits = flatten_CHW(image) @ w + b, reading the image in ``layout``; a second output
    "features" that the atlas does not need; a final Softmax when asked."""
    c, h, wd = shape
    nodes = []
    src = "x"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]))
        src = "t"
    nodes += [helper.make_node("Reshape", [src, "flat"], ["f"]),
              helper.make_node("Gemm", ["f", "W", "B"], ["out"]),
              helper.make_node("Relu", ["f"], ["features"])]  # fmt: skip
    if softmax:
        nodes.append(helper.make_node("Softmax", ["out"], ["probs"], axis=1))
    k = w.shape[1]
    return _model(
        nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, _layout_dims(layout, shape))],
        [helper.make_tensor_value_info("probs" if softmax else "out", TensorProto.FLOAT, ["N", k]),
         helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", c * h * wd])],
        [_const("W", w), _const("B", b), _const("flat", [-1, c * h * wd], np.int64)], opset,
    )  # fmt: skip


def _run(model: onnx.ModelProto, z: np.ndarray) -> dict[str, np.ndarray]:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, {"z": z}), strict=True))


def _reference(z, wd, bd, wc, bc):
    img = 1 / (1 + np.exp(-(z.astype(np.float64) @ wd + bd)))
    logits = img @ wc + bc
    return logits.argmax(1), _softmax_max(logits), img.mean(1), img.min(), img.max()


CASES = [((3, 4, 5), d, c) for d in ("NCHW", "NHWC", "flat") for c in ("NCHW", "NHWC", "flat")]
CASES += [((1, 4, 5), d, c) for d in ("NCHW", "NHWC", "NHW", "flat")
          for c in ("NCHW", "NHWC", "NHW", "flat")]  # fmt: skip


@pytest.mark.parametrize("shape, dec_layout, clf_layout", CASES)
def test_any_layout_pair_composes(shape, dec_layout, clf_layout):
    rng = np.random.default_rng(1)
    p = int(np.prod(shape))
    wd, bd = rng.normal(0, 1, (2, p)), rng.normal(0, 0.5, p)
    wc, bc = rng.normal(0, 1, (p, 6)), rng.normal(0, 0.1, 6)
    fused = fuse_graphs(
        layout_decoder(wd, bd, shape, dec_layout), layout_classifier(wc, bc, shape, clf_layout),
        image_shape=shape, decoder_output="out", decoder_layout=dec_layout,
        classifier_input="x", classifier_layout=clf_layout, logits_output="out",
    )  # fmt: skip
    onnx.checker.check_model(fused, full_check=True)
    z = rng.normal(0, 2, (40, 2)).astype(np.float32)
    got = _run(fused, z)
    labels, conf, bright, lo, hi = _reference(z, wd, bd, wc, bc)
    assert (got["labels"] == labels).all()
    np.testing.assert_allclose(got["confidence"], conf, rtol=1e-5)
    np.testing.assert_allclose(got["brightness"], bright, atol=1e-6)
    assert got["pixel_min"] == pytest.approx(lo, abs=1e-6)
    assert got["pixel_max"] == pytest.approx(hi, abs=1e-6)
    # a transpose only where the order of values in memory differs (RGB, NHWC on one side)
    glue = [n.op_type for n in fused.graph.node if n.name.startswith("atlas/")]
    differs = shape[0] > 1 and (dec_layout == "NHWC") != (clf_layout == "NHWC")
    assert glue.count("Transpose") == int(differs)


@pytest.mark.parametrize("dec_opset, clf_opset", [(12, 20), (20, 13), (17, 17), (18, 11)])
def test_different_opsets_and_ir_versions_compose(dec_opset, clf_opset):
    rng = np.random.default_rng(2)
    shape = (1, 3, 3)
    wd, bd = rng.normal(0, 1, (2, 9)), rng.normal(0, 0.5, 9)
    wc, bc = rng.normal(0, 1, (9, 4)), rng.normal(0, 0.1, 4)
    dec = layout_decoder(wd, bd, shape, "NCHW", dec_opset)
    clf = layout_classifier(wc, bc, shape, "flat", clf_opset)
    assert dec.ir_version != clf.ir_version or dec_opset == clf_opset
    fused = fuse_graphs(
        dec,
        clf,
        image_shape=shape,
        decoder_output="out",
        decoder_layout="NCHW",
        classifier_input="x",
        classifier_layout="flat",
        logits_output="out",
    )
    opset = max(dec_opset, clf_opset)
    assert [o.version for o in fused.opset_import if o.domain == ""] == [opset]
    assert fused.ir_version == max(dec.ir_version, clf.ir_version)
    z = rng.normal(0, 2, (25, 2)).astype(np.float32)
    got = _run(fused, z)
    labels, conf, bright, *_ = _reference(z, wd, bd, wc, bc)
    assert (got["labels"] == labels).all()
    np.testing.assert_allclose(got["confidence"], conf, rtol=1e-5)
    np.testing.assert_allclose(got["brightness"], bright, atol=1e-6)


def test_probability_output_is_not_softmaxed_again():
    rng = np.random.default_rng(3)
    shape = (1, 2, 2)
    wd, bd = rng.normal(0, 1, (2, 4)), rng.normal(0, 0.5, 4)
    wc, bc = rng.normal(0, 3, (4, 3)), rng.normal(0, 0.1, 3)
    fused = fuse_graphs(
        layout_decoder(wd, bd, shape, "NCHW"),
        layout_classifier(wc, bc, shape, "NCHW", softmax=True),
        image_shape=shape, decoder_output="out", decoder_layout="NCHW", classifier_input="x",
        classifier_layout="NCHW", logits_output="probs", probabilities=True,
    )  # fmt: skip
    z = rng.normal(0, 2, (30, 2)).astype(np.float32)
    got = _run(fused, z)
    labels, conf, *_ = _reference(z, wd, bd, wc, bc)
    assert (got["labels"] == labels).all()
    np.testing.assert_allclose(got["confidence"], conf, rtol=1e-5)  # max p, not max softmax(p)
    assert not any(n.op_type == "Softmax" for n in fused.graph.node if n.name.startswith("atlas/"))


def test_unknown_layout_refused():
    m = layout_decoder(np.ones((2, 4)), np.zeros(4), (1, 2, 2), "NCHW")
    with pytest.raises(AtlasError, match="layout 'NWHC'"):
        fuse_graphs(
            m,
            m,
            image_shape=(1, 2, 2),
            decoder_output="out",
            decoder_layout="NWHC",
            classifier_input="x",
            classifier_layout="flat",
            logits_output="out",
        )


# ---------------------------------------------------------------------------- batch sizing
def test_auto_batch_from_activation_sizes():
    # decoder 2 → 60 (Gemm x, Sigmoid s, Reshape img: 3 × 60 floats) then NCHW → flat; every
    # per-row intermediate counted: a budget of exactly k rows gives k rounded down to 64s
    shape = (3, 4, 5)
    fused = fuse_graphs(
        layout_decoder(np.ones((2, 60)), np.zeros(60), shape, "NCHW"),
        layout_classifier(np.ones((60, 6)), np.zeros(6), shape, "flat"),
        image_shape=shape, decoder_output="out", decoder_layout="NCHW", classifier_input="x",
        classifier_layout="flat", logits_output="out",
    )  # fmt: skip
    per_row = batching.row_bytes(onnx.shape_inference.infer_shapes(fused))
    assert per_row is not None and per_row % 4 == 0 and per_row >= 4 * 60 * 4
    assert auto_batch(fused, budget=per_row * 1000) == 960
    assert auto_batch(fused, budget=per_row * 1024) == 1024
    assert auto_batch(fused, budget=per_row * 1023) == 960
    assert auto_batch(fused, budget=per_row) == batching.MIN_BATCH
    assert auto_batch(fused, budget=per_row * 10**6) == batching.MAX_BATCH


# ---------------------------------------------------------------------------- through the runtime
def test_rgb_models_in_different_layouts_through_the_runtime(tmp_path):
    # an RGB decoder that writes NHWC and a classifier that reads NCHW, loaded by the runtime
    # (which learns each file's layout): the composed graph transposes, and the atlas equals
    # the numpy reference at every point, fused and separate alike
    rng = np.random.default_rng(4)
    shape = (3, 4, 5)
    wd, bd = rng.normal(0, 1, (2, 60)), rng.normal(0, 0.5, 60)
    wc, bc = rng.normal(0, 1, (60, 5)), rng.normal(0, 0.1, 5)
    onnx.save(layout_decoder(wd, bd, shape, "NHWC"), tmp_path / "decoder.onnx")
    onnx.save(layout_classifier(wc, bc, shape, "NCHW"), tmp_path / "classifier.onnx")
    dec = load_model(tmp_path / "decoder.onnx", "decoder")
    clf = load_model(tmp_path / "classifier.onnx", "classifier")
    assert (dec.layout, clf.layout, dec.image_shape) == ("NHWC", "NCHW", shape)
    spec = GridSpec(steps=(6, 5))
    for fused in (True, False):
        atlas = compute_atlas(dec, clf, spec, fused=fused)
        u, v = np.meshgrid(atlas.x, atlas.y)
        z = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float32)
        labels, conf, bright, *_ = _reference(z, wd, bd, wc, bc)
        assert (atlas.labels.ravel() == labels).all()
        np.testing.assert_allclose(atlas.confidence.ravel(), conf, rtol=1e-5)
        np.testing.assert_allclose(atlas.brightness.ravel(), bright, atol=1e-6)


def test_hidden_softmax_is_found_before_composing(tmp_path):
    # a Softmax behind an Identity: the file does not say it outputs probabilities, the first
    # decoded points do; the composed graph must not apply a second softmax
    rng = np.random.default_rng(5)
    w, b = rng.normal(0, 0.05, (784, 10)), rng.normal(0, 1, 10)
    nodes = [helper.make_node("Flatten", ["image"], ["flat"]),
             helper.make_node("Gemm", ["flat", "W", "B"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["p"], axis=1),
             helper.make_node("Identity", ["p"], ["out"])]  # fmt: skip
    model = _model(
        nodes, [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 10])],
        [_const("W", w), _const("B", b)], 17,
    )  # fmt: skip
    onnx.save(model, tmp_path / "classifier.onnx")
    clf = load_model(tmp_path / "classifier.onnx", "classifier")
    assert not clf.probabilities  # not visible from the graph's last node
    dec = load_model(linear_decoder(tmp_path / "d.onnx", np.array([0.05, 0.02]), 0.5))
    fused = compute_atlas(dec, clf, GridSpec(steps=(5, 4)), fused=True)
    assert clf.probabilities
    u, v = np.meshgrid(fused.x, fused.y)
    pixel = 0.05 * u + 0.02 * v + 0.5  # every pixel of the cell
    logits = pixel.ravel()[:, None] * w.sum(axis=0)[None, :] + b
    np.testing.assert_allclose(fused.confidence.ravel(), _softmax_max(logits), rtol=1e-5)
    separate = compute_atlas(dec, clf, GridSpec(steps=(5, 4)), fused=False)
    np.testing.assert_allclose(separate.confidence, fused.confidence, rtol=1e-5)


def test_both_paths_use_the_same_batch(tmp_path, classifier):
    dec = load_model(linear_decoder(tmp_path / "d.onnx", np.array([0.05, 0.0]), 0.5))
    expected = auto_batch(fused_model(dec, classifier))
    for fused in (True, False):
        assert compute_atlas(dec, classifier, GridSpec(steps=(3, 3)), fused=fused).batch_size == (
            expected
        )


# ---------------------------------------------------------------------------- early start
# `report` starts its atlases on a thread while it imports (toolkit.atlas.start_early);
# compute_atlas takes an early result only for the very inputs it was asked for.
EARLY_GRID = GridSpec(steps=(5, 5), x_range=(-3.0, 3.0), y_range=(-2.0, 2.0))


def _early_spec(steps: int = 16) -> GridSpec:
    return atlas_mod.atlas_spec_over(EARLY_GRID, *EARLY_GRID.coordinates(), steps)


@pytest.fixture
def taken(monkeypatch):
    """What compute_atlas took from the early starts: an Atlas, or None where it computed."""
    seen: list = []
    real = atlas_mod._take_early

    def take(key):
        seen.append(real(key))
        return seen[-1]

    monkeypatch.setattr(atlas_mod, "_take_early", take)
    return seen


def _started(*args, **kw) -> None:
    thread = atlas_mod.start_early(*args, **kw)
    assert thread is not None
    thread.join(timeout=60)
    assert not thread.is_alive()


def _same(a, b) -> None:
    for f in ("x", "y", "labels", "confidence", "brightness"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert (a.spec, a.method, a.batch_size, a.note) == (b.spec, b.method, b.batch_size, b.note)


def test_an_early_atlas_is_taken_once_and_is_the_atlas(tmp_path, protos, taken):
    folder = toy_pair(tmp_path / "m", weights=(0.1, -0.05))
    clf = prototype_classifier(tmp_path / "classifier.onnx", protos)
    fresh = compute_atlas(load(folder).decoder, load_classifier(clf, 10), _early_spec())
    assert taken == [None]  # nothing started: computed
    _started([folder], clf, EARLY_GRID, 16, "auto", 0)
    early = compute_atlas(load(folder).decoder, load_classifier(clf, 10), _early_spec())
    assert taken[1] is early  # taken, not computed again
    _same(early, fresh)
    again = compute_atlas(load(folder).decoder, load_classifier(clf, 10), _early_spec())
    assert taken[2] is None  # taken once: asked again, computed
    _same(again, fresh)


@pytest.mark.parametrize(
    "change",
    ["steps", "threads", "classifier", "decoder", "batch", "fused"],
)
def test_an_early_atlas_of_other_inputs_is_not_taken(tmp_path, protos, taken, change):
    folder = toy_pair(tmp_path / "m", weights=(0.1, -0.05))
    clf = prototype_classifier(tmp_path / "classifier.onnx", protos)
    _started([folder], clf, EARLY_GRID, 16, "auto", 0)
    spec, threads, kw = _early_spec(12 if change == "steps" else 16), 0, {}
    if change == "threads":
        threads = 1
    if change == "classifier":  # another file: other weights, another sha256
        clf = prototype_classifier(tmp_path / "other.onnx", protos[::-1].copy())
    if change == "decoder":
        folder = toy_pair(tmp_path / "n", weights=(0.1, -0.04))
    if change == "batch":
        kw["batch_size"] = 7
    if change == "fused":
        kw["fused"] = False
    dec, classifier = load(folder, threads=threads).decoder, load_classifier(clf, 10)
    got = compute_atlas(dec, classifier, spec, **kw)
    assert taken == [None]
    atlas_mod._EARLY.clear()
    _same(got, compute_atlas(load(folder, threads=threads).decoder, load_classifier(clf, 10),
                             spec, **kw))  # fmt: skip


def test_a_failed_or_stopped_early_start_is_computed_again(tmp_path, protos, taken, monkeypatch):
    folder = toy_pair(tmp_path / "m", weights=(0.1, -0.05))
    clf = prototype_classifier(tmp_path / "classifier.onnx", protos)
    _started([folder], tmp_path / "missing.onnx", EARLY_GRID, 16, "auto", 0)  # cannot load
    dec, classifier = load(folder).decoder, load_classifier(clf, 10)
    first = compute_atlas(dec, classifier, _early_spec())
    assert taken == [None]
    # stopped (the process ending) before its first batch: the future holds the stop, and
    # whoever asks computes the atlas itself
    stop = threading.Event()
    stop.set()
    monkeypatch.setattr(atlas_mod, "_EARLY_STOP", stop)
    spec = _early_spec()
    plane = spec.resolve_plane(2)
    x, y = spec.coordinates(None, plane)
    with pytest.raises(atlas_mod._Stopped):
        atlas_mod._compute(dec, classifier, spec, plane, x, y, None, False, None, stop)
    key = atlas_mod._early_key(dec, classifier, _early_spec(), None, None)
    failed: Future = Future()
    failed.set_exception(atlas_mod._Stopped())
    atlas_mod._EARLY[key] = failed
    _same(compute_atlas(dec, classifier, _early_spec()), first)
    assert taken == [None, None] and key not in atlas_mod._EARLY


def test_early_start_leaves_out_what_needs_embeddings(tmp_path, protos):
    folder = toy_pair(tmp_path / "m")
    clf = prototype_classifier(tmp_path / "classifier.onnx", protos)
    assert atlas_mod.start_early([folder], clf, GridSpec(mode="auto"), 16, "auto", 0) is None
    assert atlas_mod.start_early([folder], clf, GridSpec(plane="pca"), 16, "auto", 0) is None
    assert atlas_mod._EARLY == {}


def test_one_malloc_arena_is_asked_for_before_the_early_thread_starts(tmp_path, monkeypatch):
    # glibc gives a thread started before M_ARENA_MAX = 1 an arena of its own, which keeps
    # what it freed resident (toolkit.memory): the early thread must not start first
    seen: list[list[str]] = []
    monkeypatch.setattr(atlas_mod, "one_malloc_arena",
                        lambda: seen.append([t.name for t in threading.enumerate()]))  # fmt: skip
    _started([tmp_path / "none"], tmp_path / "missing.onnx", EARLY_GRID, 16, "auto", 0)
    assert len(seen) == 1 and "early-atlas" not in seen[0]
    assert atlas_mod.start_early([tmp_path], tmp_path, GridSpec(mode="auto"), 16, "auto", 0) is None
    assert len(seen) == 1  # nothing started: nothing asked


def test_one_malloc_arena_is_set_once_and_only_with_glibc(monkeypatch):
    from latent_atlas.toolkit import memory

    calls: list[tuple[int, int]] = []

    class Libc:
        def mallopt(self, param: int, value: int) -> int:
            calls.append((param, value))
            return 1

    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: Libc())
    monkeypatch.setattr(memory, "_ONE_ARENA", [])
    monkeypatch.setattr(memory.sys, "platform", "linux")
    memory.one_malloc_arena()
    memory.one_malloc_arena()
    assert calls == [(memory.M_ARENA_MAX, 1)]  # once: a later call changes nothing
    monkeypatch.setattr(memory, "_ONE_ARENA", [])
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    memory.one_malloc_arena()
    assert calls == [(memory.M_ARENA_MAX, 1)]  # no glibc: nothing asked
