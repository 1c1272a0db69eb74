"""The model contract (docs/models.md) against models we did not export: other exporters,
other layouts, decoder-only models, classifiers without a feature output or with a Softmax at
the end, latent spaces above 2-D. Each case either works or ends with one line saying how to
fix the model — through the API and through the CLI."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec, decode_grid
from latent_atlas.toolkit.runtime import load, load_classifier, load_model
from toy_onnx import (
    layout_decoder,
    layout_encoder,
    linear_decoder,
    plain_classifier,
    toy_pair,
)

from latent_atlas.cli import main
from latent_atlas.pipeline import AnalysisConfig, Cache, analyze_model

FAST = AnalysisConfig(grids=(GridSpec(steps=(5, 5)),), n_samples=300, trust_sample=100,
                      silhouette_sample=200)  # fmt: skip


def _cli(args, capsys):
    capsys.readouterr()
    rc = main(args)
    err = capsys.readouterr().err
    return rc, [line for line in err.splitlines() if line.strip()]


# ---------------------------------------------------------------- layouts
@pytest.mark.parametrize("layout", ["NCHW", "NHWC", "NHW", "flat"])
def test_decoder_layouts_come_back_as_nchw(tmp_path, layout):
    dec = load_model(layout_decoder(tmp_path / "d.onnx", layout, (0.05, 0.1), 0.5), "decoder")
    assert dec.layout == layout and dec.image_shape == (1, 28, 28)
    images = dec(np.array([[2.0, 1.0]], np.float32))
    assert images.shape == (1, 1, 28, 28)
    np.testing.assert_allclose(images, 0.05 * 2 + 0.1 + 0.5, atol=1e-6)


def test_rgb_nhwc_decoder_keeps_its_channels(tmp_path):
    dec = load_model(layout_decoder(tmp_path / "d.onnx", "NHWC", shape=(3, 8, 6)), "decoder")
    assert dec.image_shape == (3, 8, 6) and dec.layout == "NHWC"
    assert dec(np.zeros((4, 2), np.float32)).shape == (4, 3, 8, 6)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC", "NHW", "flat"])
def test_encoder_layouts_read_our_images(tmp_path, layout):
    proj = np.random.default_rng(0).normal(0, 0.1, (784, 2)).astype(np.float32)
    enc = load_model(layout_encoder(tmp_path / "e.onnx", layout, proj), "encoder")
    assert enc.image_shape == (1, 28, 28) and enc.latent_dim == 2
    images = np.random.default_rng(1).random((5, 1, 28, 28)).astype(np.float32)
    # every layout flattens row-major over its own dims; for 1 channel they all agree
    np.testing.assert_allclose(enc(images), images.reshape(5, -1) @ proj, rtol=1e-5, atol=1e-5)


def test_flat_non_square_decoder_needs_image_shape(tmp_path):
    path = layout_decoder(tmp_path / "d.onnx", "flat", shape=(1, 8, 5))
    with pytest.raises(AtlasError, match="needs the metadata key image_shape"):
        load_model(path, "decoder")
    # the dataset's shape as a hint, or the metadata key, settles it
    assert load_model(path, "decoder", image_shape=(1, 8, 5)).image_shape == (1, 8, 5)
    meta = layout_decoder(tmp_path / "m.onnx", "flat", shape=(1, 8, 5),
                          meta={"image_shape": "1,8,5"})  # fmt: skip
    assert load_model(meta, "decoder").image_shape == (1, 8, 5)
    # 48 values read alone as a square RGB image (3×4×4); a gray 8×6 dataset's hint wins
    gray = layout_decoder(tmp_path / "g.onnx", "flat", shape=(1, 8, 6))
    assert load_model(gray, "decoder").image_shape == (3, 4, 4)
    assert load_model(gray, "decoder", image_shape=(1, 8, 6)).image_shape == (1, 8, 6)


# ---------------------------------------------------------------- refusals with the fix
def test_fixed_batch_is_refused_with_the_fix(tmp_path, capsys):
    path = layout_decoder(tmp_path / "m" / "decoder.onnx", "NCHW", batch=1)
    with pytest.raises(AtlasError, match=r"fixed batch size 1; export it with a dynamic batch"):
        load_model(path, "decoder")
    rc, lines = _cli(["grid", "--model", str(path), "--out", str(tmp_path / "g"),
                      "--no-progress"], capsys)  # fmt: skip
    assert rc == 2 and len(lines) == 1 and "dynamic_shapes=" in lines[0]
    assert "dynamic_axes=" in lines[0]
    # a symbolic input but a fixed output batch is refused the same way
    path = layout_decoder(tmp_path / "o.onnx", "NCHW", out_batch=7)
    with pytest.raises(AtlasError, match="'image' has a fixed batch size 7"):
        load_model(path, "decoder")


def _torch_decoder() -> torch.nn.Module:
    class Decoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(2, 784)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.lin(z)).view(-1, 1, 28, 28)

    torch.manual_seed(0)
    return Decoder().eval()


@pytest.mark.slow
def test_dynamo_exporter_defaults_are_refused_with_the_fix(tmp_path):
    """torch 2.x's default export: weights in a .onnx.data file, batch fixed to the example."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_torch_decoder(), (torch.zeros(3, 2),), str(tmp_path / "d.onnx"),
                          verbose=False)  # fmt: skip
    if (tmp_path / "d.onnx.data").exists():
        with pytest.raises(AtlasError, match="external_data=False"):
            load_model(tmp_path / "d.onnx", "decoder")
    one = onnx.load(tmp_path / "d.onnx")
    onnx.save(one, tmp_path / "one.onnx", save_as_external_data=False)
    with pytest.raises(AtlasError, match="fixed batch size 3; export it with a dynamic batch"):
        load_model(tmp_path / "one.onnx", "decoder")


@pytest.mark.slow
def test_torchscript_exporter_with_dynamic_axes_works(tmp_path):
    """The TorchScript exporter (opset 12) leaves symbolic output dims that shape inference
    (or the probe run) resolves."""
    module = _torch_decoder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (torch.zeros(3, 2),), str(tmp_path / "decoder.onnx"), dynamo=False,
            input_names=["z"], output_names=["image"], opset_version=12,
            dynamic_axes={"z": {0: "batch_size"}, "image": {0: "batch_size"}},
        )  # fmt: skip
    dec = load_model(tmp_path / "decoder.onnx", "decoder")
    assert dec.image_shape == (1, 28, 28) and dec.latent_dim == 2
    z = np.random.default_rng(0).normal(size=(513, 2)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(dec(z), module(torch.from_numpy(z)).numpy(), atol=1e-6)


# ---------------------------------------------------------------- classifiers
def test_logits_only_classifier(tmp_path, toy):
    path = plain_classifier(tmp_path / "c.onnx", toy["protos"])
    clf = load_classifier(path, 10)
    assert clf.features_index is None and not clf.probabilities
    assert clf.feature_source == "logits"
    m = analyze_model(toy["regions"], path, toy["data"], FAST, Cache())
    assert m.metrics.samples is not None and m.metrics.samples.feature_source == "logits"
    assert m.metrics.grids["linear_5x5"].classes.source == "classifier"


@pytest.mark.parametrize("hidden", [False, True])
def test_softmax_classifier_is_detected_and_used_as_probabilities(tmp_path, toy, hidden):
    logits_path = plain_classifier(tmp_path / "l.onnx", toy["protos"])
    probs_path = plain_classifier(tmp_path / "p.onnx", toy["protos"], softmax=not hidden,
                                  hidden_softmax=hidden)  # fmt: skip
    a = analyze_model(toy["regions"], logits_path, toy["data"], FAST, Cache())
    b = analyze_model(toy["regions"], probs_path, toy["data"], FAST, Cache())
    ca, cb = a.metrics.grids["linear_5x5"].classes, b.metrics.grids["linear_5x5"].classes
    # not "every cell ambiguous": the same classes and confidences as from the logits
    assert cb.shares == ca.shares and cb.ambiguous_share == ca.ambiguous_share == 0.0
    assert cb.mean_confidence == pytest.approx(ca.mean_confidence, abs=1e-5)
    clf = Cache().classifier(probs_path, toy["data"], FAST)
    assert clf.probabilities is (not hidden)  # the graph shows a final Softmax, or not


def test_classifier_class_count_must_match(tmp_path, toy):
    path = plain_classifier(tmp_path / "c.onnx", toy["protos"][:4])
    with pytest.raises(AtlasError, match="gives 4 classes, the dataset has 10"):
        load_classifier(path, 10)


# ---------------------------------------------------------------- decoder-only models
def test_decoder_alone_from_a_file_or_a_folder(tmp_path):
    path = linear_decoder(tmp_path / "solo" / "decoder.onnx", np.array([0.05, 0.0]), 0.5)
    for source in (path, path.parent):
        m = load(source)
        assert m.encoder is None and m.name == "solo" and m.latent_dim == 2
        with pytest.raises(AtlasError, match="no encoder; it is decoder-only"):
            m.encode(np.zeros((1, 1, 28, 28), np.float32))
    other = linear_decoder(tmp_path / "my-dec.onnx", np.array([0.05, 0.0]), 0.5)
    assert load(other).name == "my-dec"
    grid = decode_grid(load(path).decoder, GridSpec(steps=(3, 3)))
    assert grid.cells.shape == (3, 3, 1, 28, 28)


def test_decoder_only_analysis_lists_what_is_not_available(tmp_path, toy):
    path = linear_decoder(tmp_path / "solo.onnx", np.array([0.05, 0.0]), 0.5)
    cfg = replace(FAST, grids=(GridSpec(steps=(5, 5)), GridSpec(steps=(5, 5), mode="auto")))
    m = analyze_model(path, toy["root"] / "classifier.onnx", toy["data"], cfg, Cache())
    assert m.metrics.embedding is None and m.metrics.reconstruction is None
    assert m.metrics.samples is not None and m.metrics.samples.frechet_fitted_gaussian is None
    assert set(m.metrics.grids) == {"linear_5x5"}
    na = m.metrics.not_available
    assert na["embedding"] == "not available: no encoder"
    assert na["grids.auto_5x5"].startswith("not available: no encoder")
    assert m.metrics.grids["linear_5x5"].brightness.gradient.mean == pytest.approx(0.05)


def test_no_classifier_class_maps_come_from_the_nearest_embeddings(toy):
    m = analyze_model(toy["regions"], None, toy["data"], FAST, Cache())
    classes = m.metrics.grids["linear_5x5"].classes
    assert classes is not None and classes.source == "nearest embeddings"
    assert classes.ambiguous_share is None and classes.mean_confidence is None
    assert m.metrics.samples is None and "classifier" in m.metrics.not_available
    assert m.grids[0].labels is not None and m.grids[0].confidence is None


def test_report_with_decoder_only_and_no_classifier(tmp_path, toy, capsys, monkeypatch):
    import latent_atlas.runs as rep

    monkeypatch.setattr(rep, "load_dataset", lambda source=None, **kw: toy["data"])
    solo = linear_decoder(tmp_path / "solo.onnx", np.array([0.05, 0.0]), 0.5)
    rc, lines = _cli(["report", "--model", str(toy["regions"]), "--model", str(solo),
                      "--classifier", "none", "--steps", "5", "--out", str(tmp_path / "r"),
                      "--no-progress"], capsys)  # fmt: skip
    assert rc == 0, lines
    folder = tmp_path / "r" / "regions-vs-solo"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["study"] is None and metrics["findings"] == []
    assert metrics["classifier"] is None
    assert metrics["models"]["solo"]["metrics"]["not_available"]["embedding"]
    html = (folder / "report.html").read_text()
    assert "Not available" in html and "no encoder" in html
    assert "from the nearest test embeddings" in html  # the class maps say where they came from
    assert "findings-table" not in html


# ---------------------------------------------------------------- above 2-D
@pytest.mark.slow
def test_eight_dim_conv_vae_on_a_plane(tmp_path, toy, capsys, monkeypatch, lean_cli_analysis):
    """An 8-D conv VAE, trained a few steps (on 40 images: what is checked is the planes, not
    the fit), exported, analysed on two planes."""
    from latent_atlas.export.onnx_export import export_one
    from latent_atlas.toolkit.models import Autoencoder, AutoencoderConfig, MeanEncoder

    torch.manual_seed(0)
    model = Autoencoder(AutoencoderConfig(kind="vae", arch="conv", latent_dim=8, hidden=32))
    x = torch.from_numpy(toy["data"].test.images[:40])
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(3):
        x_hat, mu, logvar = model(x)
        loss = torch.nn.functional.binary_cross_entropy(x_hat, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    xs = toy["data"].test.images
    with torch.no_grad():
        z = MeanEncoder(model)(torch.from_numpy(xs)).numpy()
    folder = tmp_path / "vae8"
    export_one(MeanEncoder(model), xs, "image", ["z"], {"role": "encoder"}, folder / "encoder.onnx")
    zs = np.concatenate([z, z, z])
    export_one(model.decoder, zs, "z", ["image"], {"role": "decoder"}, folder / "decoder.onnx")
    m8 = load(folder)
    assert m8.latent_dim == 8
    cfg = replace(FAST, grids=(GridSpec(steps=(5, 5), plane="pca"),
                               GridSpec(steps=(5, 5), axes=(2, 5))))  # fmt: skip
    a = analyze_model(folder, toy["root"] / "classifier.onnx", toy["data"], cfg, Cache())
    # dims numbered from 0 in keys and labels, as in the flags
    # (and a model of more than two dims gets the PCA plane and a plane through three test
    # images as auto-range grids)
    assert {"linear_5x5_pca", "linear_5x5_z2z5", "auto_5x5_pca"} <= set(a.metrics.grids)
    pca = a.metrics.grids["linear_5x5_pca"].plane
    assert pca["kind"] == "pca" and pca["labels"] == ["PC1", "PC2"] and len(pca["origin"]) == 8
    axes = a.metrics.grids["linear_5x5_z2z5"].plane
    assert axes["labels"] == ["z₂", "z₅"] and axes["fixed"] == "mean"
    np.testing.assert_allclose(
        [axes["origin"][i] for i in (0, 1, 3, 4, 6, 7)],
        z.mean(axis=0)[[0, 1, 3, 4, 6, 7]],
        rtol=1e-5,
        atol=1e-6,
    )
    assert a.metrics.embedding is not None and a.metrics.embedding.latent_dim == 8
    # through the CLI, with a 2-D model beside it: the report says which plane each grid is
    import latent_atlas.runs as rep

    monkeypatch.setattr(rep, "load_dataset", lambda source=None, **kw: toy["data"])
    rc, lines = _cli(["report", "--model", str(toy["linear"]), "--model", str(folder),
                      "--plane", "pca", "--steps", "5", "--out", str(tmp_path / "r"),
                      "--classifier", str(toy["root"] / "classifier.onnx"), "--no-progress"],
                     capsys)  # fmt: skip
    assert rc == 0, lines
    html = (tmp_path / "r" / "linear-vs-vae8" / "report.html").read_text()
    assert "principal plane" in html and "vae8 8-D" in html


def test_axes_beyond_the_latent_dim_are_one_line(tmp_path, capsys):
    toy_pair(tmp_path / "m")
    rc, lines = _cli(["grid", "--model", str(tmp_path / "m"), "--plane", "axes", "0", "5",
                      "--out", str(tmp_path / "g"), "--no-progress"], capsys)  # fmt: skip
    assert rc == 2 and len(lines) == 1 and "only 2 latent dims" in lines[0]


def test_three_models_in_one_report(tmp_path, toy, capsys, monkeypatch):
    import latent_atlas.runs as rep

    monkeypatch.setattr(rep, "load_dataset", lambda source=None, **kw: toy["data"])
    third = toy_pair(tmp_path / "third", weights=(0.0, 0.08), bias=0.4)
    rc, lines = _cli(["report", "--model", str(toy["linear"]), "--model", str(toy["regions"]),
                      "--model", str(third), "--label", "A", "--label", "B", "--label", "C",
                      "--steps", "5", "--classifier", str(toy["root"] / "classifier.onnx"),
                      "--out", str(tmp_path / "r"), "--no-progress"], capsys)  # fmt: skip
    assert rc == 0, lines
    folder = tmp_path / "r" / "A-vs-B-vs-C"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["order"] == ["A", "B", "C"] and metrics["study"] is None
    html = (folder / "report.html").read_text()
    assert html.count('<th scope="col">C</th>') == 2  # key metrics and all metrics
    assert "★" in html and "findings-table" not in html
    figures = {p.name for p in (folder / "figures").iterdir()}
    assert {"m0_linear_5x5_mosaic.png", "m2_linear_5x5_mosaic.png"} <= figures
    md = (folder / "report.md").read_text()
    assert "| metric | A | B | C |" in md
    # --study seed on models not labelled VAE and AE: refused with one line
    rc, lines = _cli(["report", "--model", str(toy["linear"]), "--model", str(third),
                      "--study", "seed", "--steps", "21", "--out", str(tmp_path / "s"),
                      "--no-progress"], capsys)  # fmt: skip
    assert rc == 2 and len(lines) == 1 and "needs two models labelled VAE and AE" in lines[0]


def test_auto_finds_the_classifier_exported_beside_the_models(tmp_path):
    """--classifier auto on user data: classifier/classifier.onnx in the models' artifact
    folder, only when its metadata names this data's sha256; a folder stands for its file."""
    import shutil

    from conftest import REPO
    from latent_atlas.toolkit.data import load_dataset

    from latent_atlas.runs import ComparisonConfig
    from latent_atlas.shipped import classifier_beside

    art = tmp_path / "artifacts" / "mine"
    for part in ("vae", "ae", "classifier"):
        shutil.copytree(REPO / "artifacts" / "digits" / part, art / part)
    digits = "be7bd4b346317972a1f794bd59c24ad536ed8f503a42b5f28287512bb347eaff"
    models = (art / "vae", art / "ae" / "decoder.onnx")
    assert classifier_beside(models, digits) == art / "classifier" / "classifier.onnx"
    assert classifier_beside(models[1:], digits) == art / "classifier" / "classifier.onnx"
    assert classifier_beside(models, "0" * 64) is None  # trained on other data: not used
    (art / "classifier" / "classifier.onnx").write_bytes(b"not a model")
    assert classifier_beside(models, digits) is None
    cfg = ComparisonConfig(name="c", models=models, classifier=art / "classifier")
    assert cfg.classifier_for(load_dataset("sklearn:digits", train=False)) == (
        art / "classifier" / "classifier.onnx"
    )


@pytest.mark.real_data
def test_a_model_of_other_images_than_the_data_names_the_fix(tmp_path, capsys):
    """The digits VAE on the default data (Fashion-MNIST): grid --mode auto and report say
    which shapes differ and to pass --data, one line each."""
    from conftest import REPO

    from latent_atlas.cli import main

    vae, ae = (str(REPO / "artifacts" / "digits" / m) for m in ("vae", "ae"))
    grid = ["grid", "--model", vae, "--mode", "auto", "--out", str(tmp_path / "g")]
    report = ["report", "--model", vae, "--model", ae, "--out", str(tmp_path / "r")]
    for args in (grid, report):
        assert main([*args, "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "(1, 8, 8)" in err[0] and "pass --data" in err[0], err
    assert not (tmp_path / "g").exists() or not any((tmp_path / "g").glob("*.png"))
