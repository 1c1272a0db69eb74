"""The bad-input matrix: every row through the CLI (exit 2, one line on stderr naming the file
or parameter, no traceback, no output file) and, where it has one, through the Python API."""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import idx_bytes, write_idx_folder
from latent_atlas.toolkit.errors import AtlasError
from onnx import TensorProto, helper
from toy_onnx import linear_decoder, linear_encoder, prototype_classifier, toy_pair

from latent_atlas.cli import main


@dataclass
class Row:
    name: str
    setup: Callable[[Path], list[str]]  # builds the bad input under tmp, returns CLI args
    expect: str  # regex the stderr line must contain


def _grid(model: Path, out: Path, *extra: str) -> list[str]:
    return ["grid", "--model", str(model), "--out", str(out), "--no-progress", *extra]


def _replace_decoder(tmp: Path, make: Callable[[Path], object]) -> list[str]:
    toy_pair(tmp / "m")
    make(tmp / "m" / "decoder.onnx")
    return _grid(tmp / "m", tmp / "out")


def _external_data(path: Path) -> None:
    linear_decoder(path, np.array([0.1, 0.0]), 0.5)
    m = onnx.load(path)
    onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="decoder.onnx.data", size_threshold=0)  # fmt: skip


def _custom_domain(path: Path) -> None:
    node = helper.make_node("Decode", ["z"], ["image"], domain="com.evil")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])],
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.evil", 1)]
    )
    onnx.save(model, path)


def _int_input(path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Cast", ["z"], ["image"], to=TensorProto.FLOAT)], "g",
        [helper.make_tensor_value_info("z", TensorProto.INT64, ["N", 2])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 2])],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _rank3_input(path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["z"], ["image"])], "g",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 2, 2])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 2, 2])],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _output_32x32(path: Path) -> None:
    w = np.zeros((2, 1024), np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["z", "W"], ["image"])], "g",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1024])],
        [onnx.numpy_helper.from_array(w, "W")],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _truncated(path: Path) -> None:
    linear_decoder(path, np.array([0.1, 0.0]), 0.5)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _dim_mismatch(tmp: Path) -> list[str]:
    linear_encoder(tmp / "m" / "encoder.onnx", np.zeros((784, 3)))
    linear_decoder(tmp / "m" / "decoder.onnx", np.array([0.1, 0.0]), 0.5)
    return _grid(tmp / "m", tmp / "out")


def _shape_mismatch(tmp: Path) -> list[str]:
    toy_pair(tmp / "m")
    m = onnx.load(tmp / "m" / "encoder.onnx")
    m.metadata_props.add(key="image_shape", value="1,32,32")
    onnx.save(m, tmp / "m" / "encoder.onnx")
    return _grid(tmp / "m", tmp / "out")


def _sha_mismatch(tmp: Path) -> list[str]:
    from latent_atlas.export.onnx_export import write_manifest

    toy_pair(tmp / "art" / "m")
    write_manifest(tmp / "art")
    linear_decoder(tmp / "art" / "m" / "decoder.onnx", np.array([0.3, 0.0]), 0.5)
    return _grid(tmp / "art" / "m", tmp / "out")


def _idx_folder(tmp: Path, name: str, raw: bytes) -> list[str]:
    folder = write_idx_folder(tmp / "data")
    (folder / name).write_bytes(gzip.compress(raw))
    return ["train", "--data", str(folder), "--out", str(tmp / "out"), "--no-progress"]


def _classifier_classes(tmp: Path) -> list[str]:
    toy_pair(tmp / "m")
    prototype_classifier(tmp / "c.onnx", np.random.default_rng(0).random((5, 28, 28)))
    toy_pair(tmp / "m2")
    return ["report", "--model", str(tmp / "m"), "--model", str(tmp / "m2"), "--classifier",
            str(tmp / "c.onnx"), "--out", str(tmp / "out"), "--no-progress"]  # fmt: skip


def _batch(tmp: Path, text: str) -> list[str]:
    (tmp / "b.toml").write_text(text)
    return ["report", "--batch", str(tmp / "b.toml"), "--out", str(tmp / "out"), "--no-progress"]


ENTRY = '[[comparison]]\nname = "x"\nmodel_a = "a"\nmodel_b = "b"\n'


def _pickle_checkpoint(tmp: Path) -> list[str]:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    for kind in ("vae", "ae", "classifier"):
        (tmp / "runs" / kind).mkdir(parents=True)
        (tmp / "runs" / kind / "train.json").write_text(
            '{"kind": "ae", "model_config": {"kind": "ae", "arch": "mlp", "latent_dim": 2, '
            '"hidden": 64, "beta": 1.0}, "train_config": {}, "seed": 0, "dataset_sha256": "", '
            '"train_images": 1, "history": [], "test_metrics": {}, "train_seconds": 0, '
            '"torch_version": ""}'
        )
        (tmp / "runs" / kind / "weights.pt").write_bytes(pickle.dumps({"w": Evil()}))
    return ["export", "--runs", str(tmp / "runs"), "--out", str(tmp / "out")]


def _unwritable(tmp: Path) -> list[str]:
    toy_pair(tmp / "m")
    (tmp / "file").write_text("a file, not a folder")
    return _grid(tmp / "m", tmp / "file" / "out")


ROWS = [
    Row("missing model file", lambda t: _grid(t / "nope", t / "out"), "model .*nope: does not exist; expected a model folder"),
    Row("missing decoder.onnx", lambda t: (linear_encoder(t / "m" / "encoder.onnx", np.zeros((784, 2))),
        _grid(t / "m", t / "out"))[1], r"no decoder.onnx \(found \['encoder.onnx'\]\)"),
    Row("empty model file", lambda t: _replace_decoder(t, lambda p: p.write_bytes(b"")), "empty file"),
    Row("truncated model file", lambda t: _replace_decoder(t, _truncated), "not a valid ONNX file"),
    Row("non-ONNX file", lambda t: _replace_decoder(t, lambda p: p.write_text("hello")), "not a valid ONNX file"),
    Row("external data", lambda t: _replace_decoder(t, _external_data), r"external data \(.onnx.data\)"),
    Row("custom operator domain", lambda t: _replace_decoder(t, _custom_domain), r"operator domain.*com.evil"),
    Row("int64 decoder input", lambda t: _replace_decoder(t, _int_input), "is not float32"),
    Row("rank-3 decoder input", lambda t: _replace_decoder(t, _rank3_input), r"expected \[N, d\]"),
    Row("decoder output 32x32", lambda t: _replace_decoder(t, _output_32x32), r"encoder takes images of \(1, 28, 28\) but the decoder makes \(1, 32, 32\)"),
    Row("latent dims differ", _dim_mismatch, "3-d codes but the decoder takes 2-d"),
    Row("image shapes differ", _shape_mismatch, r"encoder takes images of \(1, 32, 32\) but the decoder makes \(1, 28, 28\)"),
    Row("sha256 mismatch", _sha_mismatch, "differs from the manifest"),
    pytest.param(Row("classifier class count", _classifier_classes, "gives 5 classes, the dataset has 10; expected a classifier trained on this dataset"),
                 marks=pytest.mark.real_data),
    Row("IDX wrong magic", lambda t: _idx_folder(t, "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros((12, 28, 28), np.uint8))),
        "magic number 0x00000803, expected 0x00000801"),
    Row("IDX truncated body", lambda t: _idx_folder(t, "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((12, 28, 28), np.uint8))[:-100]),
        "truncated"),
    Row("IDX count mismatch", lambda t: _idx_folder(t, "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros(11, np.uint8))),
        "12 images but train-labels-idx1-ubyte.gz has 11 labels"),
    Row("IDX image sizes differ between splits", lambda t: _idx_folder(t, "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((12, 32, 32), np.uint8))),
        "images of 32×32 pixels, but t10k-images-idx3-ubyte.gz holds 28×28; expected one image size"),
    Row("dataset missing", lambda t: ["train", "--data", str(t / "nope"), "--out", str(t / "out")],
        "dataset .*nope: does not exist; expected a folder of IDX files"),
    Row("grid steps zero", lambda t: _grid(toy_pair(t / "m"), t / "out", "--steps", "0"), "grid steps 0"),
    Row("grid steps negative", lambda t: _grid(toy_pair(t / "m"), t / "out", "--steps", "-5", "3"), "grid steps -5"),
    Row("grid range reversed", lambda t: _grid(toy_pair(t / "m"), t / "out", "--range", "4", "-4"), "expected low < high"),
    Row("grid range NaN", lambda t: _grid(toy_pair(t / "m"), t / "out", "--range", "nan", "4"), "expected finite"),
    Row("grid range inf", lambda t: _grid(toy_pair(t / "m"), t / "out", "--range", "-4", "inf"), "expected finite"),
    Row("grid too big unstreamed", lambda t: _grid(toy_pair(t / "m"), t / "out", "--steps", "1001", "--cell-px", "28"),
        "needs 2.9 GiB; the limit is 131072 cells"),
    Row("latent values NaN", lambda t: _grid(toy_pair(t / "m"), t / "out", "--fixed", "nan", "0"), "fixed values: expected finite"),
    Row("batch unknown key", lambda t: _batch(t, "colour = 1\n" + ENTRY), r"unknown key\(s\) \['colour'\]"),
    Row("batch missing field", lambda t: _batch(t, '[[comparison]]\nname = "x"\n'), r"missing \['model_a', 'model_b'\]"),
    Row("batch duplicate names", lambda t: _batch(t, ENTRY + ENTRY), "duplicate name 'x'"),
    Row("batch not TOML", lambda t: _batch(t, "[[comparison\n"), "not valid TOML"),
    Row("output folder not writable", _unwritable, "output folder .*file/out: cannot create it"),
    Row("pickle checkpoint", _pickle_checkpoint, r"weights.pt: refused by torch.load\(weights_only=True\).*expected a weights-only state dict"),
    Row("train epochs zero", lambda t: ["train", "--epochs", "0", "--out", str(t / "out")], "--epochs: 0, expected >= 1"),
    Row("bench size one", lambda t: ["bench", "--sizes", "1", "--decoder", str(t / "d.onnx")], "--sizes: 1, expected N >= 2"),
    Row("report jobs zero", lambda t: ["report", "--jobs", "0", "--out", str(t / "out")], "--jobs: 0, expected >= 1"),
    Row("report same labels", lambda t: ["report", "--label", "A", "--label", "A", "--out", str(t / "out")], "two models are labelled 'A'"),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[getattr(r, "values", [r])[0].name for r in ROWS])
def test_cli_refuses_cleanly(row, tmp_path, capsys):
    args = row.setup(tmp_path)
    capsys.readouterr()
    rc = main(args)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert rc == 2
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and "pwned" not in captured.out
    import re

    assert re.search(row.expect, lines[0]), lines[0]
    out = tmp_path / "out"
    written = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert written == []


# ---------------------------------------------------------------- the same through the API
def test_api_raises_project_error(tmp_path):
    from latent_atlas.toolkit.data import load_dataset
    from latent_atlas.toolkit.grid import GridSpec
    from latent_atlas.toolkit.runtime import load, load_model

    with pytest.raises(AtlasError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(AtlasError, match="not found"):
        load_model(tmp_path / "nope.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(AtlasError):
        load_model(tmp_path / "bad.onnx")
    with pytest.raises(AtlasError, match="expected low < high"):
        GridSpec(x_range=(1.0, 0.0))
    pair = load(toy_pair(tmp_path / "m"))
    with pytest.raises(AtlasError, match="NaN or inf"):
        pair.decoder(np.array([[np.nan, 0]], np.float32))
    assert issubclass(AtlasError, Exception) and not issubclass(AtlasError, ValueError)


def test_usage_error_is_one_line(capsys):
    assert main(["grid", "--model", "x", "--range", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--range: expected 2 arguments" in err[0]
