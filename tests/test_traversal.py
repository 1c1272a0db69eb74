"""Latent traversals and interpolations (toolkit/traversal.py, analysis/traversals.py,
latent_atlas/traversals.py, `latent-atlas traverse`): a dim the decoder ignores gives identical
images, an active one a monotone change in brightness, bad input one line and exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from latent_atlas.analysis.raster import image_rows_png
from latent_atlas.analysis.traversals import (
    class_readout,
    row_brightness,
    row_change,
    traversal_metrics,
)
from latent_atlas.toolkit.dataset import ImageDataset, Split
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.runtime import load
from latent_atlas.toolkit.traversal import (
    TraversalSpec,
    decode_traversal,
    interpolation_codes,
    traversal_codes,
    traversal_values,
)
from toy_onnx import (
    linear_encoder,
    linear_gaussian,
    linear_gaussian_folder,
    linear_gaussian_images,
    prototype_classifier,
)

from latent_atlas.cli import main
from latent_atlas.traversals import diagnose, interpolate, traverse


@pytest.fixture(scope="module")
def lg(tmp_path_factory):
    """An 8-D linear-Gaussian model whose decoder ignores dims 3–7, with an encoder that does
    *not* ignore them (a random projection): their traversal values vary, their images must
    not."""
    folder = tmp_path_factory.mktemp("lg") / "lg"
    params = linear_gaussian(latent_dim=8, ignored=(3, 4, 5, 6, 7))
    # dim 0's weights all positive: brightness grows with z₀
    params["W"][0] = np.abs(params["W"][0]) + 0.01
    linear_gaussian_folder(folder, params, logvar=False)
    linear_encoder(folder / "encoder.onnx", np.random.default_rng(3).normal(0, 0.05, (784, 8)))
    images = linear_gaussian_images(params, 200)
    labels = np.arange(200) % 2
    split = Split(images, labels.astype(np.int64))
    data = ImageDataset("toy", split, split, ("dark", "bright"), "0" * 64, "toy")
    return load(folder), data, folder


def test_codes_hold_the_base_except_the_moving_dim():
    base = np.array([1.0, 2.0, 3.0])
    z = traversal_codes(base, [2, 0], np.array([[-1.0, 0.0, 1.0], [5.0, 6.0, 7.0]]))
    assert z.shape == (2, 3, 3) and z.dtype == np.float32
    np.testing.assert_array_equal(z[0, :, 2], [-1, 0, 1])
    np.testing.assert_array_equal(z[0, :, :2], [[1, 2]] * 3)
    np.testing.assert_array_equal(z[1, :, 0], [5, 6, 7])
    np.testing.assert_array_equal(z[1, :, 1:], [[2, 3]] * 3)


def test_values_span_the_percentiles_or_the_range():
    emb = np.stack([np.arange(101.0), np.zeros(101)], axis=1)
    v = traversal_values(emb, [0, 1], TraversalSpec(steps=3, percentiles=(1, 99)))
    np.testing.assert_allclose(v, [[1, 50, 99], [0, 0, 0]])
    v = traversal_values(emb, [1], TraversalSpec(steps=2, value_range=(-3, 3)))
    np.testing.assert_allclose(v, [[-3, 3]])


def test_interpolation_ends_are_the_two_codes():
    z = interpolation_codes(np.zeros(4), np.arange(4.0), 5)
    np.testing.assert_allclose(z[0], 0)
    np.testing.assert_allclose(z[-1], np.arange(4))
    np.testing.assert_allclose(z[2], np.arange(4) / 2)


def test_ignored_dim_gives_identical_images_active_dim_monotone(lg):
    model, data, _ = lg
    spec = TraversalSpec(steps=9, dims=(0, 5))
    result = traverse(model, data, spec)
    images = result.traversal.images
    assert images.shape == (2, 9, 1, 28, 28)
    assert np.ptp(result.traversal.values[1]) > 0  # dim 5 moves...
    np.testing.assert_array_equal(images[1], np.broadcast_to(images[1, :1], images[1].shape))
    assert result.metrics.change[1] == 0.0  # ...and the image does not
    bright = np.array(result.metrics.brightness[0])
    assert (np.diff(bright) > 0).all()  # dim 0: brighter with every step
    assert result.metrics.change[0] > 0


def test_default_picks_the_k_most_active_dims(lg):
    model, data, _ = lg
    result = traverse(model, data, TraversalSpec(k=3, steps=2))
    var = np.asarray(result.dimensions.diagnostics.variance)
    assert result.traversal.dims.tolist() == np.argsort(-var, kind="stable")[:3].tolist()


def test_base_is_a_test_image_embedding(lg):
    model, data, _ = lg
    result = traverse(model, data, TraversalSpec(k=1, steps=2, base=7))
    np.testing.assert_allclose(result.traversal.base, model.encode(data.test.images[7:8])[0],
                               rtol=1e-6)  # fmt: skip


def test_interpolation_reproduces_its_end_codes(lg):
    model, data, _ = lg
    line = interpolate(model, data, 2, 9, steps=4)
    ends = model.decode(model.encode(data.test.images[[2, 9]]))
    np.testing.assert_allclose(line.images[[0, -1]], ends, atol=1e-6)


@pytest.mark.parametrize(
    ("spec", "latent", "n", "match"),
    [
        (TraversalSpec(k=9), 8, 10, "--k 9: the model has 8 latent dims"),
        (TraversalSpec(base=10), 8, 10, "--base 10: the test set has 10 images"),
        (TraversalSpec(k=1), 1, 10, "latent dim 1: a traversal needs at least 2"),
        (TraversalSpec(dims=(8,)), 8, 10, "--dims 8: the model has 8 latent dims"),
    ],
)
def test_spec_refuses_what_the_model_cannot_do(spec, latent, n, match):
    with pytest.raises(AtlasError, match=match):
        spec.check(latent, n)


@pytest.mark.parametrize("kw", [{"k": 0}, {"steps": 1}, {"percentiles": (50, 50)},
                                {"base": "median"}, {"base": -1}, {"dims": (1, 1)},
                                {"value_range": (1.0, 1.0)}])  # fmt: skip
def test_spec_validates_itself(kw):
    with pytest.raises(AtlasError, match="traversal"):
        TraversalSpec(**kw)


def test_row_measures_known_answers():
    rows = np.zeros((2, 3, 1, 2, 2))
    rows[0, 1] = 0.5
    rows[0, 2] = 1.0
    np.testing.assert_allclose(row_change(rows), [1.0, 0.0])
    np.testing.assert_allclose(row_brightness(rows), [[0, 0.5, 1], [0, 0, 0]])
    labels, conf = class_readout(np.log([[0.2, 0.8], [0.6, 0.4]]))
    assert labels.tolist() == [1, 0]
    np.testing.assert_allclose(conf, [0.8, 0.6])
    logits = np.zeros((2, 3, 2))
    logits[0, 2, 1] = 5.0
    m = traversal_metrics(rows, np.zeros((2, 3)), [4, 1], "mean", logits, ["a", "b"])
    assert m.classes_crossed == [2, 1] and m.labels[0] == ["a", "a", "b"]
    json.dumps(m.to_json())
    png = image_rows_png(rows, ["z₄", "z₁"], np.zeros((2, 3)), [["a"] * 3] * 2, title="t")
    assert png.startswith(b"\x89PNG")


def _cli(args, capsys):
    capsys.readouterr()
    rc = main(args)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return rc, err


def _npz_data(tmp_path, data):
    path = tmp_path / "toy.npz"
    x = (data.test.images[:, 0] * 255).round().astype(np.uint8)
    np.savez(path, x_train=x, y_train=data.test.labels, x_test=x, y_test=data.test.labels)
    return path


def test_cli_refuses_before_writing_and_defaults_k_to_the_dims(lg, tmp_path, capsys):
    """Cold-try findings: `--between 7 7` was refused only after the traversal files were
    written (replacing a previous run's); the default --k 8 refused every model of fewer dims;
    --geodesic without --between was ignored."""
    from toy_onnx import linear_gaussian, linear_gaussian_folder

    _, data, folder = lg
    source = _npz_data(tmp_path, data)
    out = tmp_path / "out"
    base = ["traverse", "--model", str(folder), "--data", str(source), "--classifier", "none",
            "--k", "2", "--steps", "3", "--out", str(out)]  # fmt: skip
    rc, err = _cli([*base, "--between", "7", "7"], capsys)
    assert rc == 2 and err == ["latent-atlas traverse: error: --between 7 7: the same image "
                               "twice; expected two images"]  # fmt: skip
    assert not out.exists()
    rc, err = _cli([*base, "--geodesic"], capsys)
    assert rc == 2 and len(err) == 1 and "--geodesic: needs --between A B" in err[0]
    assert not out.exists()
    # a 3-D model with the default --k: every dim, not a refusal
    small = linear_gaussian_folder(tmp_path / "lg3", linear_gaussian(latent_dim=3, ignored=()),
                                   logvar=False)  # fmt: skip
    rc, err = _cli(["traverse", "--model", str(small), "--data", str(source), "--classifier",
                    "none", "--steps", "3", "--out", str(tmp_path / "o3"), "--no-progress"],
                   capsys)  # fmt: skip
    assert rc == 0, err
    doc = json.loads((tmp_path / "o3" / "lg3_dimensions.json").read_text())
    assert len(doc["traversal"]["dims"]) == 3


def test_cli_writes_figure_npz_and_json(lg, tmp_path, capsys):
    _, data, folder = lg
    source = _npz_data(tmp_path, data)
    clf = prototype_classifier(tmp_path / "clf.onnx", np.stack([np.zeros((28, 28)),
                                                                np.ones((28, 28))]))  # fmt: skip
    out = tmp_path / "out"
    rc, err = _cli(["traverse", "--model", str(folder), "--data", str(source), "--k", "3",
                    "--steps", "4", "--between", "0", "5", "--classifier", str(clf),
                    "--out", str(out)], capsys)  # fmt: skip
    assert rc == 0, err
    stem = folder.name
    with np.load(out / f"{stem}_traverse.npz") as npz:
        assert npz["images"].shape == (3, 4, 1, 28, 28) and npz["logits"].shape == (3, 4, 2)
    doc = json.loads((out / f"{stem}_dimensions.json").read_text())
    assert doc["dimensions"]["latent_dim"] == 8 and len(doc["traversal"]["labels"]) == 3
    assert doc["dimensions"]["kl"] is None and "logvar" in doc["dimensions"]["kl_not_available"]
    assert (out / f"{stem}_traverse.png").stat().st_size > 1000
    assert (out / f"{stem}_interpolate_0_5.png").is_file()


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--k", "9"], "--k 9: the model has 8 latent dims"),
        (["--base", "5000"], "--base 5000: the test set has 200 images"),
        (["--between", "0", "200"], "--between 0 200: the test set has 200 images"),
        (["--base", "first"], "--base first: expected 'mean' or a test image index"),
    ],
)
def test_cli_bad_input_one_line_exit_2_nothing_written(lg, tmp_path, capsys, extra, match):
    _, data, folder = lg
    source = _npz_data(tmp_path, data)
    out = tmp_path / "out"
    rc, err = _cli(["traverse", "--model", str(folder), "--data", str(source),
                    "--classifier", "none", "--out", str(out), *extra], capsys)  # fmt: skip
    assert rc == 2 and len(err) == 1 and match in err[0], err
    assert not out.exists() or not any(out.glob("*.png"))


def test_cli_one_dimensional_latent(tmp_path, capsys):
    folder = tmp_path / "one"
    params = linear_gaussian(latent_dim=1, ignored=())
    linear_gaussian_folder(folder, params, logvar=False)
    split = Split(linear_gaussian_images(params, 10), (np.arange(10) % 2).astype(np.int64))
    data = ImageDataset("toy", split, split, ("a", "b"), "0" * 64, "toy")
    source = _npz_data(tmp_path, data)
    rc, err = _cli(["traverse", "--model", str(folder), "--data", str(source), "--k", "1",
                    "--classifier", "none", "--out", str(tmp_path / "o")], capsys)  # fmt: skip
    assert rc == 2 and len(err) == 1
    assert "a traversal needs at least 2 latent dims" in err[0] or "latent dim 1" in err[0], err


def test_diagnose_needs_an_encoder(lg, tmp_path):
    _, data, folder = lg
    dec_only = load(folder / "decoder.onnx")
    with pytest.raises(AtlasError, match="no encoder"):
        diagnose(dec_only, data)


def test_decode_traversal_checks_embedding_width(lg):
    model, _, _ = lg
    with pytest.raises(AtlasError, match="embeddings: shape"):
        decode_traversal(model.decoder, np.zeros((5, 3)), [0], TraversalSpec(k=1))


def test_public_api(lg):
    import latent_atlas as la

    model, data, _ = lg
    assert {"traverse", "interpolate", "dimensions"} <= set(la.__all__)
    diag = la.dimensions(model, data)
    assert diag.latent_dim == 8 and diag.kl is None
    result = la.traverse(model, data, classifier=None, k=2, steps=3)
    assert result.traversal.images.shape == (2, 3, 1, 28, 28) and result.logits is None
    line = la.interpolate(model, 0, 1, steps=3, data=data, classifier=None)
    assert line.images.shape == (3, 1, 28, 28)


def _png(data):
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_interpolation_png_shows_the_two_test_images_at_its_ends():
    from latent_atlas.analysis.raster import TAB10
    from latent_atlas.analysis.traversals import interpolation_png

    images = np.full((3, 1, 8, 8), 0.5)
    ends = np.stack([np.zeros((1, 8, 8)), np.ones((1, 8, 8))])
    logits = np.array([[2.0, 0.0], [0.0, 0.0], [0.0, 2.0]])
    pixels = _png(interpolation_png(images, ends, [0, 0.5, 1], ("test image 3", "test image 9"),
                                    logits, ["a", "b"], "t"))  # fmt: skip
    grey = np.all(pixels == 128, axis=2)  # the three decoded images, 0.5 -> 128
    black = np.all(pixels == 0, axis=2)
    cols_grey = np.flatnonzero(grey.sum(axis=0) >= 40)  # an 8-px image enlarged to 56 px
    cols_black = np.flatnonzero(black.sum(axis=0) >= 40)
    assert len(cols_grey) == 3 * 56 and len(cols_black) == 56
    assert cols_black.max() < cols_grey.min()  # the first test image on the left
    # captions in the class colours: class 0 (first end and first image), class 1 (last)
    for k in (0, 1):
        assert np.all(pixels == TAB10[k], axis=2).any()


def test_image_rows_png_lays_out_rows_and_refuses_mismatches():
    from latent_atlas.analysis.raster import image_rows_png

    rows = np.zeros((2, 3, 1, 4, 4))
    rows[1] = 1.0  # the second row white
    pixels = _png(image_rows_png(rows, ["first", "second"]))
    black = np.all(pixels == 0, axis=2)
    ys = np.flatnonzero(black.sum(axis=1) >= 3 * 56)  # rows where three black images lie
    assert len(ys) == 56  # 4-px images enlarged 14x to 56 px, one row of them
    with pytest.raises(AtlasError, match="row_labels: 1 given, expected 2"):
        image_rows_png(rows, ["one"])
    with pytest.raises(AtlasError, match="captions: expected 2 rows of 3 strings"):
        image_rows_png(rows, ["a", "b"], captions=[["x"] * 3])
