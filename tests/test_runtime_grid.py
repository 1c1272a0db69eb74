from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec, cell_pixels, decode_grid, downsample
from latent_atlas.toolkit.runtime import (
    check_used_provider,
    load,
    load_model,
    resolve_providers,
)
from toy_onnx import linear_decoder, linear_encoder, toy_pair

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


# ---------------------------------------------------------------- providers
def test_provider_resolution():
    assert resolve_providers("auto", [CPU]) == [CPU]
    assert resolve_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert resolve_providers("cpu", [CUDA, CPU]) == [CPU]
    with pytest.raises(AtlasError, match="no CUDAExecutionProvider"):
        resolve_providers("cuda", [CPU])
    with pytest.raises(AtlasError, match="expected auto, cuda or cpu"):
        resolve_providers("tpu", [CPU])


def test_fallback_reported():
    assert check_used_provider("auto", [CPU]) == "cpu"
    assert check_used_provider("auto", [CUDA, CPU]) == "cuda"
    with pytest.raises(AtlasError, match="fell back to the CPU"):
        check_used_provider("cuda", [CPU])


def test_session_reports_provider(tmp_path):
    dec = load_model(linear_decoder(tmp_path / "d.onnx", np.array([0.1, 0.0]), 0.5))
    assert dec.provider in ("cpu", "cuda") and dec.role == "decoder" and dec.latent_dim == 2


# ---------------------------------------------------------------- input validation
@pytest.fixture
def decoder(tmp_path):
    return load_model(linear_decoder(tmp_path / "d.onnx", np.array([0.1, 0.0]), 0.5))


@pytest.mark.parametrize(
    "z, message",
    [
        (np.array([["a", "b"]]), "dtype <U1, expected float32"),
        (np.zeros((3, 3), np.float32), r"shape \(3, 3\), expected \[N, 2\]"),
        (np.zeros((3,), np.float32), r"expected \[N, 2\]"),
        (np.array([[0.0, np.nan]], np.float32), "NaN or inf"),
        (np.array([[np.inf, 0.0]], np.float32), "NaN or inf"),
        (np.zeros((0, 2), np.float32), "empty batch"),
    ],
)
def test_decoder_input_validation(decoder, z, message):
    with pytest.raises(AtlasError, match=message):
        decoder(z)


def test_float64_codes_are_cast_not_refused(decoder):
    images = decoder(np.zeros((3, 2), np.float64))
    assert images.dtype == np.float32 and images.shape == (3, 1, 28, 28)


def test_encoder_input_validation(tmp_path):
    enc = load_model(linear_encoder(tmp_path / "e.onnx", np.zeros((784, 2))))
    assert enc.role == "encoder" and enc.latent_dim == 2
    with pytest.raises(AtlasError, match=r"expected \[N, 1, 28, 28\]"):
        enc(np.zeros((2, 28, 28), np.float32))


def test_pair_with_different_latent_dims_refused(tmp_path):
    linear_encoder(tmp_path / "encoder.onnx", np.zeros((784, 3)))
    linear_decoder(tmp_path / "decoder.onnx", np.array([0.1, 0.0]), 0.5)
    with pytest.raises(AtlasError, match="3-d codes but the decoder takes 2-d"):
        load(tmp_path)


def test_pair_with_wrong_image_shape_metadata_refused(tmp_path):
    toy_pair(tmp_path)
    m = onnx.load(tmp_path / "decoder.onnx")
    m.metadata_props.add(key="image_shape", value="3,32,32")
    onnx.save(m, tmp_path / "decoder.onnx")
    with pytest.raises(AtlasError, match=r"encoder takes images of \(1, 28, 28\) but the decoder"):
        load(tmp_path)


def test_manifest_hash_mismatch_refused(tmp_path):
    from latent_atlas.export.onnx_export import write_manifest

    toy_pair(tmp_path / "m")
    write_manifest(tmp_path)
    assert load(tmp_path / "m").decoder.sha256
    linear_decoder(tmp_path / "m" / "decoder.onnx", np.array([0.2, 0.0]), 0.5)
    with pytest.raises(AtlasError, match="differs from the manifest"):
        load(tmp_path / "m")


# ---------------------------------------------------------------- grid spec
def test_default_spec_is_the_seeds_grid():
    x, y = GridSpec().coordinates()
    np.testing.assert_allclose(x, np.linspace(-4, 4, 21))
    np.testing.assert_allclose(y, np.linspace(-4, 4, 21))
    assert GridSpec().n_cells == 441


def test_icdf_points():
    x, y = GridSpec(steps=(5, 3), mode="icdf", quantile=0.05).coordinates()
    assert len(x) == 5 and len(y) == 3 and np.isfinite(x).all()
    assert x[2] == pytest.approx(0) and x[-1] == pytest.approx(1.6448536, abs=1e-6)
    np.testing.assert_allclose(x, -x[::-1], atol=1e-12)


def test_auto_range_from_embeddings():
    emb = np.stack([np.linspace(0, 100, 101), np.linspace(-10, 10, 101)], axis=1)
    x, y = GridSpec(steps=(3, 3), mode="auto").coordinates(emb)
    np.testing.assert_allclose(x, [1, 50, 99])
    np.testing.assert_allclose(y, [-9.8, 0, 9.8])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(steps=(0, 21)), "expected an integer >= 2"),
        (dict(steps=(-3, 21)), "expected an integer >= 2"),
        (dict(x_range=(4.0, -4.0)), "expected low < high"),
        (dict(y_range=(1.0, 1.0)), "expected low < high"),
        (dict(x_range=(float("nan"), 4.0)), "expected finite"),
        (dict(y_range=(-float("inf"), 4.0)), "expected finite"),
        (dict(mode="spiral"), "expected one of"),
        (dict(mode="icdf", quantile=0.0), "0 < q < 0.5"),
        (dict(axes=(1, 1)), "two different dimensions"),
    ],
)
def test_impossible_grids_refused(kwargs, message):
    with pytest.raises(AtlasError, match=message):
        GridSpec(**kwargs)


def test_higher_dim_points():
    spec = GridSpec(steps=(2, 3), axes=(2, 0), fixed=(9.0, 7.0, 5.0))
    x, y = np.array([10.0, 20.0]), np.array([-1.0, 0.0, 1.0])
    plane = spec.resolve_plane(3)
    z = spec.points(x, y, plane, 0, 6)
    # columns sweep dim 2 (z₂), rows sweep dim 0 (z₀); dim 1 stays fixed
    np.testing.assert_array_equal(z[:, 2], [10, 20, 10, 20, 10, 20])
    np.testing.assert_array_equal(z[:, 0], [-1, -1, 0, 0, 1, 1])
    np.testing.assert_array_equal(z[:, 1], [7] * 6)
    assert plane.labels == ("z₂", "z₀") and plane.fixed == "values"  # numbered from 0
    with pytest.raises(AtlasError, match="only 2 latent dims"):
        spec.resolve_plane(2)
    with pytest.raises(AtlasError, match="2 given, expected 3"):
        GridSpec(fixed=(1.0, 2.0)).resolve_plane(3)


def test_other_dims_sit_at_the_embedding_mean_by_default():
    emb = np.random.default_rng(0).normal([1.0, -2.0, 3.0, 5.0], 0.5, (500, 4))
    plane = GridSpec(axes=(1, 3)).resolve_plane(4, emb)
    z = plane.points(np.array([0.25]), np.array([-0.5]))[0]
    np.testing.assert_allclose(z[[0, 2]], emb.mean(axis=0)[[0, 2]], rtol=1e-6)
    assert z[1] == 0.25 and z[3] == -0.5 and plane.fixed == "mean"
    prior = GridSpec(axes=(1, 3), fixed="prior").resolve_plane(4, emb)
    assert prior.points(np.array([0.0]), np.array([0.0]))[0].tolist() == [0, 0, 0, 0]
    # a decoder-only model has no embeddings: the prior's mean, and the plane says so
    assert GridSpec(axes=(1, 3)).resolve_plane(4, None).fixed == "prior"


def test_pca_plane_spans_the_embeddings_in_standard_deviations():
    rng = np.random.default_rng(1)
    # codes spread 3.0 along (1, 1, 0)/√2 and 0.5 along (0, 0, 1), around (2, 2, 2)
    u, v = rng.normal(0, 3.0, 4000), rng.normal(0, 0.5, 4000)
    emb = 2.0 + np.outer(u, [1, 1, 0]) / np.sqrt(2) + np.outer(v, [0, 0, 1])
    plane = GridSpec(plane="pca").resolve_plane(3, emb)
    assert plane.labels == ("PC1", "PC2")
    np.testing.assert_allclose(plane.origin, emb.mean(axis=0))
    np.testing.assert_allclose(np.linalg.norm(plane.basis, axis=1), [3.0, 0.5], rtol=0.05)
    np.testing.assert_allclose(np.abs(plane.basis[0]) / 3.0, [0.7071, 0.7071, 0], atol=0.03)
    coords = plane.project(emb)  # in standard deviations: unit spread along both axes
    np.testing.assert_allclose(coords.std(axis=0), [1.0, 1.0], rtol=0.02)
    with pytest.raises(AtlasError, match="needs the encoder's test embeddings"):
        GridSpec(plane="pca").resolve_plane(3, None)


def test_grid_points_collapsing_in_float32_are_refused():
    with pytest.raises(AtlasError, match="equal in float32"):
        GridSpec(x_range=(1.0, 1.0000000001)).coordinates()
    with pytest.raises(AtlasError, match="equal in float32"):
        GridSpec(x_range=(1e-300, 2e-300)).coordinates()
    x, _ = GridSpec(steps=(3, 3), x_range=(1.0, 1.001)).coordinates()  # distinct: fine
    assert len(np.unique(x.astype(np.float32))) == 3


# ---------------------------------------------------------------- decoding
def test_brightness_is_known_function_of_z(tmp_path):
    # brightness = 0.05·z1 + 0.1·z2 + 0.5: rows follow y (z2), columns follow x (z1)
    dec = load_model(linear_decoder(tmp_path / "d.onnx", np.array([0.05, 0.1]), 0.5))
    grid = decode_grid(dec, GridSpec(steps=(5, 3), x_range=(-2, 2), y_range=(-1, 1)))
    expected = 0.05 * grid.x[None, :] + 0.1 * grid.y[:, None] + 0.5
    np.testing.assert_allclose(grid.brightness, expected, atol=1e-6)
    assert grid.cells.shape == (3, 5, 1, 28, 28)
    # row 0 holds the smallest z2 (drawn at the bottom of the mosaic)
    assert grid.cells[0].mean() < grid.cells[-1].mean()
    np.testing.assert_allclose(grid.cells[2, 4], 0.05 * 2 + 0.1 * 1 + 0.5, atol=1e-6)


def test_streamed_equals_one_shot(tmp_path):
    dec = load_model(linear_decoder(tmp_path / "d.onnx", np.array([0.05, 0.06]), 0.5))
    spec = GridSpec(steps=(13, 11))
    one = decode_grid(dec, spec, batch_size=10_000)
    streamed = decode_grid(dec, spec, batch_size=7, raw_path=tmp_path / "raw.npy")
    # bit-equal on the CPU; on CUDA another batch size may pick another kernel (last-bit noise)
    np.testing.assert_allclose(one.cells, streamed.cells, rtol=0, atol=1e-6)
    np.testing.assert_allclose(one.brightness, streamed.brightness, rtol=0, atol=1e-6)
    raw = np.load(tmp_path / "raw.npy")
    assert raw.shape == (11, 13, 1, 28, 28)
    np.testing.assert_array_equal(raw, streamed.cells)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_large_grid_downsampled_and_guarded(tmp_path):
    dec = load_model(linear_decoder(tmp_path / "d.onnx", np.array([0.05, 0.06]), 0.5))
    assert cell_pixels(21) == 28 and cell_pixels(73) == 28 and cell_pixels(1001) == 2
    assert cell_pixels(21, (1, 8, 8)) == 8 and cell_pixels(1001, (3, 32, 32)) == 2
    grid = decode_grid(dec, GridSpec(steps=(301, 5)), batch_size=512)
    assert grid.cells.shape == (5, 301, 1, 4, 4)
    np.testing.assert_allclose(grid.cells.mean(axis=(2, 3, 4)), grid.brightness, atol=1e-6)
    with pytest.raises(AtlasError, match="limit is 1000 cells"):
        decode_grid(dec, GridSpec(steps=(40, 40)), cell_px=28, memory_pixels=1000 * 784)
    with pytest.raises(AtlasError, match="cell pixels 5: expected one of"):
        decode_grid(dec, GridSpec(steps=(4, 4)), cell_px=5)


def test_downsample_area_average():
    img = np.arange(28 * 28, dtype=np.float32).reshape(1, 1, 28, 28)
    small = downsample(img, 2)
    assert small.shape == (1, 1, 14, 14)
    assert small[0, 0, 0, 0] == pytest.approx((0 + 1 + 28 + 29) / 4)
    assert downsample(img, 28)[0, 0, 0, 0] == pytest.approx(img.mean())
    rgb = np.stack([img[:, 0], img[:, 0] + 1, img[:, 0] + 2], axis=1)  # [1, 3, 28, 28]
    np.testing.assert_allclose(downsample(rgb, 4).mean(axis=(2, 3)), rgb.mean(axis=(2, 3)))


def test_grid_cli_writes_mosaic(tmp_path, capsys):
    from latent_atlas.cli import main

    toy_pair(tmp_path / "toy")
    rc = main(["grid", "--model", str(tmp_path / "toy"), "--out", str(tmp_path / "g"),
               "--steps", "5", "--no-progress"])  # fmt: skip
    assert rc == 0
    png = tmp_path / "g" / "toy_linear_5x5.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert str(png) in capsys.readouterr().out


def test_grid_cli_bad_steps_one_line(tmp_path, capsys):
    from latent_atlas.cli import main

    toy_pair(tmp_path / "toy")
    rc = main(["grid", "--model", str(tmp_path / "toy"), "--out", str(tmp_path / "g"),
               "--steps", "0"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "grid steps 0" in err
    assert not (tmp_path / "g").exists() or not any((tmp_path / "g").iterdir())


def test_metadata_json_is_valid(tmp_path):
    toy_pair(tmp_path)
    dec = load(tmp_path).decoder
    assert dec.metadata["role"] == "decoder"
    assert json.dumps(dec.metadata)


def test_percentile_ordinals():
    from latent_atlas.toolkit.grid import _ordinal

    got = [_ordinal(p) for p in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 99, 101, 111, 112, 2.5)]
    assert got == ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd",
                   "99th", "101st", "111th", "112th", "2.5th"]  # fmt: skip
