"""Planes beyond two chosen axes (toolkit/grid.py): the plane through three test images, the
default plane of the two most varied dims, the warning for a plane the embeddings barely span,
and one 0-based numbering of dims in flags, labels, keys and JSON."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from latent_atlas.analysis.plots import mosaic_figure
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec, decode_grid, dim_label, most_varied_dims
from latent_atlas.toolkit.runtime import load
from toy_onnx import linear_gaussian, linear_gaussian_folder, linear_gaussian_images

from latent_atlas.cli import main
from latent_atlas.commands import flags


@pytest.fixture(scope="module")
def lg(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planes") / "lg8"
    params = linear_gaussian(latent_dim=8, ignored=(3, 4, 5, 6, 7))
    linear_gaussian_folder(folder, params, logvar=False)
    model = load(folder)
    images = linear_gaussian_images(params, 60)
    images[5] = (images[1] + images[2]) / 2  # its code lies on the line through 1 and 2
    return model, images, folder


def test_images_plane_passes_through_the_three_embeddings(lg):
    model, images, _ = lg
    emb = model.encode(images)
    spec = GridSpec(steps=(5, 5), plane="images", images=(0, 7, 3), mode="auto")
    plane = spec.resolve_plane(8, emb)
    np.testing.assert_allclose(plane.basis @ plane.basis.T, np.eye(2), atol=1e-12)
    assert [m[0] for m in plane.marks] == ["#0", "#7", "#3"]
    assert plane.marks[0][1:] == (0.0, 0.0) and abs(plane.marks[1][2]) < 1e-12
    uv = np.array([m[1:] for m in plane.marks])
    z = plane.points(uv[:, 0], uv[:, 1])
    # decoding their plane coordinates reproduces decoding their embeddings
    diff = np.abs(model.decode(z) - model.decode(emb[[0, 7, 3]])).max()
    assert diff <= 1e-5
    grid = decode_grid(model.decoder, spec, emb)
    for u, v in uv:  # auto range widened to hold the marks
        assert grid.x[0] <= u <= grid.x[-1] and grid.y[0] <= v <= grid.y[-1]
    doc = plane.to_json()
    assert doc["kind"] == "images" and [m["label"] for m in doc["marks"]] == ["#0", "#7", "#3"]
    assert spec.key() == "auto_5x5_img0-7-3"
    assert "plane through test images #0, #7, #3" in plane.describe()


def test_collinear_images_are_refused(lg):
    model, images, _ = lg
    emb = model.encode(images)
    with pytest.raises(AtlasError, match="lie on one line.*span no plane"):
        GridSpec(plane="images", images=(1, 2, 5)).resolve_plane(8, emb)
    # the edge: a third image just off the line is a plane
    off = emb.copy()
    off[5] = off[5] + 1e-3 * (emb[0] - emb[1])
    GridSpec(plane="images", images=(1, 2, 5)).resolve_plane(8, off)
    with pytest.raises(AtlasError, match="the test set has 60 images"):
        GridSpec(plane="images", images=(1, 2, 60)).resolve_plane(8, emb)
    with pytest.raises(AtlasError, match="no encoder"):
        GridSpec(plane="images", images=(1, 2, 3)).resolve_plane(8, None)


@pytest.mark.parametrize("images", [(1, 1, 2), (1, 2), (-1, 2, 3)])
def test_images_spec_validates_itself(images):
    with pytest.raises(AtlasError, match="three different test image indices"):
        GridSpec(plane="images", images=images)


def test_active_plane_is_the_two_most_varied_dims():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(500, 5)) * np.array([0.1, 0.5, 3.0, 0.01, 2.0])
    assert most_varied_dims(emb) == (2, 4)
    plane = GridSpec().resolve_plane(5, emb)
    assert plane.kind == "active" and plane.labels == ("z₂", "z₄")
    assert "the two most varied dims" in plane.describe()
    assert GridSpec().key() == "linear_21x21"
    # a 2-D model: simply dims 0 and 1, as before
    two = GridSpec().resolve_plane(2, emb[:, :2] * [1, 100])
    assert two.kind == "axes" and two.labels == ("z₀", "z₁") and two.describe() == ""


def test_thin_plane_warns_in_one_line():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(300, 4)) * np.array([1.0, 0.09, 1.0, 1.0])
    thin = GridSpec(plane="axes", axes=(0, 1)).resolve_plane(4, emb)
    text = thin.warning(emb)
    assert "barely vary along z₁ (std 0.0" in text and "\n" not in text
    assert GridSpec(plane="axes", axes=(0, 2)).resolve_plane(4, emb).warning(emb) == ""
    # the edge: std exactly above the limit is no warning
    edge = np.stack([rng.normal(size=300), rng.normal(size=300)], axis=1)
    edge[:, 1] = (edge[:, 1] - edge[:, 1].mean()) / edge[:, 1].std() * 0.1001
    assert GridSpec(plane="axes", axes=(0, 1)).resolve_plane(2, edge).warning(edge) == ""
    edge[:, 1] *= 0.1 / 0.1001 * 0.999
    assert GridSpec(plane="axes", axes=(0, 1)).resolve_plane(2, edge).warning(edge) != ""


def test_one_numbering_from_zero():
    assert dim_label(0) == "z₀" and dim_label(31) == "z₃₁"
    spec = GridSpec(plane="axes", axes=(30, 9))
    assert spec.key() == "linear_21x21_z30z9"
    plane = spec.resolve_plane(32, np.random.default_rng(0).normal(size=(10, 32)))
    assert plane.labels == ("z₃₀", "z₉")


def _args(plane):
    p = argparse.ArgumentParser()
    flags.add_grid_flags(p)
    return p.parse_args(["--plane", *plane])


def test_plane_flags():
    assert flags.grid_spec(_args(["images", "4", "9", "2"])).images == (4, 9, 2)
    assert flags.grid_spec(_args(["active"])).plane == "active"
    assert flags.grid_spec(_args(["axes", "3", "1"])).axes == (3, 1)
    for bad, match in ((["images", "1", "2"], "expected 'active'"),
                       (["images", "1", "x", "2"], "integer test image indices"),
                       (["side"], "expected 'active'")):  # fmt: skip
        with pytest.raises(AtlasError, match=match):
            flags.grid_spec(_args(bad))


def test_marks_are_drawn_on_the_mosaic():
    cells = np.zeros((3, 4, 1, 2, 2))
    fig = mosaic_figure(cells, np.arange(4.0), np.arange(3.0), marks=[("#1", 1.0, 2.0)])
    [line] = [ln for ln in fig.axes[0].lines if ln.get_gid() == "mark-#1"]
    # column 1, row 2: pixel centres (1·2 + 1, 2·2 + 1)
    assert line.get_xdata()[0] == 3.0 and line.get_ydata()[0] == 5.0


def _npz(tmp_path, images):
    path = tmp_path / "toy.npz"
    x = (images[:, 0] * 255).round().astype(np.uint8)
    y = np.arange(len(x)) % 2
    np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y)
    return path


def test_cli_grid_images_plane_and_collinear(lg, tmp_path, capsys):
    _, images, folder = lg
    source = _npz(tmp_path, images)
    out = tmp_path / "g"
    rc = main(
        [
            "grid",
            "--model",
            str(folder),
            "--data",
            str(source),
            "--plane",
            "images",
            "0",
            "7",
            "3",
            "--mode",
            "auto",
            "--steps",
            "5",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0 and (out / "lg8_auto_5x5_img0-7-3.png").is_file()
    capsys.readouterr()
    rc = main(
        [
            "grid",
            "--model",
            str(folder),
            "--data",
            str(source),
            "--plane",
            "images",
            "1",
            "2",
            "1",
            "--out",
            str(out / "x"),
            "--no-progress",
        ]
    )
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1 and "three different test image indices" in err[0]
    # three collinear images that survive 8-bit quantisation: even levels and their midpoint
    even = images.copy()
    even[1] = np.round(even[1] * 127) * 2 / 255
    even[2] = np.round(even[2] * 127) * 2 / 255
    even[5] = (even[1] + even[2]) / 2
    source = _npz(tmp_path, even)
    rc = main(
        [
            "grid",
            "--model",
            str(folder),
            "--data",
            str(source),
            "--plane",
            "images",
            "1",
            "2",
            "5",
            "--out",
            str(out / "c"),
            "--no-progress",
        ]
    )
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1 and "lie on one line" in err[0], err
    assert not (out / "c").exists() or not any((out / "c").iterdir())


def test_cli_thin_plane_warns(lg, tmp_path, capsys):
    _, images, folder = lg
    source = _npz(tmp_path, images)
    capsys.readouterr()
    rc = main(
        [
            "grid",
            "--model",
            str(folder),
            "--data",
            str(source),
            "--plane",
            "axes",
            "0",
            "5",
            "--steps",
            "3",
            "--out",
            str(tmp_path / "g"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0 and "warning" in err and "barely vary along z₅" in err


def test_decoder_only_model_keeps_dims_0_1(lg):
    model, _, folder = lg
    dec = load(folder / "decoder.onnx")
    plane = GridSpec().resolve_plane(dec.latent_dim, None)
    assert plane.labels == ("z₀", "z₁") and plane.fixed == "prior"
    del model
