"""Issue 12: a synthetic 3-channel 32×32 dataset (coloured shapes, 4 classes, 208 images, made
here) goes through the commands: train conv VAE/AE/classifier for one epoch, export, report
with RGB mosaics (at the smaller atlas/geodesic/sample sizes of conftest's lean_cli_analysis:
what is checked is the shapes, the names and the colour of the mosaic)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.image import imread
from one_thread import one_torch_thread  # noqa: F401 (an autouse fixture)
from synthetic_images import SHAPE_CLASSES, coloured_shapes

from latent_atlas.cli import main


@pytest.mark.slow
def test_rgb_shapes_train_export_report(tmp_path, lean_cli_analysis):
    x, y = coloured_shapes(208)
    pixels = (x * 255).round().astype(np.uint8)  # as a user's .npz would hold them
    np.savez(tmp_path / "shapes.npz", x_train=pixels[:160], y_train=y[:160],
             x_test=pixels[160:], y_test=y[160:], class_names=np.array(SHAPE_CLASSES))  # fmt: skip
    data = ["--data", str(tmp_path / "shapes.npz")]
    one_epoch = ["--arch", "conv", "--epochs", "1", "--classifier-epochs", "1", "--hidden", "32"]
    assert main(["train", *data, *one_epoch, "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    assert main(["export", *data, "--runs", str(tmp_path / "runs"),
                 "--out", str(tmp_path / "art")]) == 0  # fmt: skip
    art = tmp_path / "art"
    card = json.loads((art / "vae" / "card.json").read_text())
    assert card["metadata"]["image_shape"] == "3,32,32" and card["model_config"]["arch"] == "conv"
    assert main(["report", *data, "--model", str(art / "vae"), "--model", str(art / "ae"),
                 "--classifier", str(art / "classifier" / "classifier.onnx"),
                 "--out", str(tmp_path / "rep"), "--steps", "5", "--no-progress"]) == 0  # fmt: skip
    report = tmp_path / "rep" / "shapes-vae-vs-ae"  # unnamed: after the data and the models
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["dataset"]["image_shape"] == [3, 32, 32]
    assert metrics["dataset"]["class_names"] == list(SHAPE_CLASSES)
    assert (report / "report.html").is_file()
    mosaic = imread(report / "figures" / "m0_linear_5x5_mosaic.png")[..., :3]
    # a grayscale mosaic has R = G = B everywhere; decoded RGB cells do not
    assert np.abs(mosaic[..., 0] - mosaic[..., 1]).max() > 0.02
