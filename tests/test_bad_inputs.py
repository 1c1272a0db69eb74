"""The bad-input matrix: every row through the CLI (exit 2, one line on stderr naming the file
or parameter, no traceback, no output file) and, where it has one, through the Python API."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import REPO, idx_bytes, write_idx_folder
from hostile_onnx import (
    batch_mean_model,
    checker_failing_decoder,
    huge_allocation_decoder,
    huge_latent_decoder,
    if_constant_decoder,
    if_initializer_decoder,
    int_code_encoder,
    loop_body_decoder,
    nan_model,
    sparse_initializer_decoder,
    write_key,
)
from latent_atlas.toolkit import atomic
from latent_atlas.toolkit.errors import AtlasError
from onnx import TensorProto, helper
from toy_onnx import (
    layout_encoder,
    linear_decoder,
    linear_encoder,
    prototype_classifier,
    toy_pair,
)

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
    layout_encoder(tmp / "m" / "encoder.onnx", "NCHW", np.zeros((1024, 2)), shape=(1, 32, 32))
    return _grid(tmp / "m", tmp / "out")


def _metadata_shape_lies(tmp: Path) -> list[str]:
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
    Row("metadata image_shape disagrees with the graph", _metadata_shape_lies,
        r"encoder.onnx: its metadata says image_shape \(1, 32, 32\) but its input takes \(1, 28, 28\)"),
    Row("sha256 mismatch", _sha_mismatch, "differs from the manifest"),
    pytest.param(Row("classifier class count", _classifier_classes, "gives 5 classes, the dataset has 10; expected a classifier trained on this dataset"),
                 marks=pytest.mark.real_data),
    pytest.param(Row("decoder given as the classifier", lambda t: ["report", "--classifier", str(REPO / "artifacts" / "fashion-mnist" / "vae" / "decoder.onnx"), "--out", str(t / "out"), "--no-progress"],
                     "its metadata says it is a decoder; expected a classifier here"), marks=pytest.mark.real_data),
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
    Row("batch with --model", lambda t: _batch(t, ENTRY) + ["--model", "a"], "--model: given with --batch; expected one or the other"),
    Row("output folder not writable", _unwritable, "output folder .*file/out: cannot create it"),
    Row("pickle checkpoint", _pickle_checkpoint, r"weights.pt: refused by torch.load\(weights_only=True\).*expected a weights-only state dict"),
    Row("train epochs zero", lambda t: ["train", "--epochs", "0", "--out", str(t / "out")], "--epochs: 0, expected "),
    Row("bench size one", lambda t: ["bench", "--sizes", "1", "--decoder", str(t / "d.onnx")], "--sizes: 1, expected N >= 2"),
    Row("report jobs zero", lambda t: ["report", "--jobs", "0", "--out", str(t / "out")], "--jobs: 0, expected >= 1"),
    Row("report same labels", lambda t: ["report", "--label", "A", "--label", "A", "--out", str(t / "out")], "two models are labelled 'A'"),
    Row("report three samples", lambda t: ["report", "--samples", "3", "--out", str(t / "out")], "--samples 3: expected an integer from 1000 to 200000"),
    Row("report samples too many", lambda t: ["report", "--samples", "99999999999", "--out", str(t / "out")], "--samples 99999999999: expected an integer from 1000 to 200000"),
]  # fmt: skip


# ---------------------------------------------------------------- train/export numbers (TrainConfig,
# ExportConfig and ModuleExportConfig check them in __post_init__; the CLI only maps flags)
def _train(tmp: Path, *flags: str) -> list[str]:
    return ["train", *flags, "--out", str(tmp / "out"), "--no-progress"]


def _export(tmp: Path, *flags: str) -> list[str]:
    return ["export", *flags, "--runs", str(tmp / "runs"), "--out", str(tmp / "out")]


ROWS += [
    Row("train lr NaN", lambda t: _train(t, "--lr", "nan"), r"--lr: nan, expected a learning rate in \(0, 1\]"),
    Row("train lr 1e30", lambda t: _train(t, "--lr", "1e30"), r"--lr: 1e\+30, expected a learning rate"),
    Row("train lr zero", lambda t: _train(t, "--lr", "0"), r"--lr: 0.0, expected a learning rate"),
    Row("train beta NaN", lambda t: _train(t, "--beta", "nan"), "--beta: nan, expected a finite KL weight >= 0"),
    Row("train beta negative", lambda t: _train(t, "--beta", "-1"), "--beta: -1.0, expected a finite KL weight"),
    Row("train seed negative", lambda t: _train(t, "--seed", "-1"), r"--seed: -1, expected an integer in 0\.\.4294967295"),
    Row("train seed too big", lambda t: _train(t, "--seed", str(2**32)), "--seed: 4294967296, expected an integer"),
    Row("train threads negative", lambda t: _train(t, "--threads", "-1"), "--threads: -1, expected >= 0"),
    Row("train limit negative", lambda t: _train(t, "--train-limit", "-5"), "--train-limit: -5, expected >= 0"),
    Row("train hidden zero", lambda t: _train(t, "--hidden", "0"), r"--hidden: 0, expected an integer in 2\.\.16384"),
    Row("train latent zero", lambda t: _train(t, "--latent-dim", "0"), r"--latent-dim: 0, expected an integer in 1\.\.1024"),
    Row("train latent huge", lambda t: _train(t, "--latent-dim", "1000000000"), "--latent-dim: 1000000000, expected"),
    Row("train classifier epochs zero", lambda t: _train(t, "--classifier-epochs", "0"), "--classifier-epochs: 0, expected"),
    Row("train batch size zero", lambda t: _train(t, "--batch-size", "0"), "--batch-size: 0, expected >= 1"),
    Row("export atol NaN", lambda t: _export(t, "--atol", "nan"), "--atol: nan, expected a finite tolerance >= 0"),
    Row("export rtol negative", lambda t: _export(t, "--rtol", "-1"), "--rtol: -1.0, expected a finite tolerance >= 0"),
    Row("export module weights missing", lambda t: ["export", "--module", "m.py:f", "--out", str(t / "out")],
        "--weights: missing; --module needs --weights FILE.pt and --out DIR"),
    Row("export module latent zero", lambda t: ["export", "--module", "m.py:f", "--weights", "w.pt", "--latent-dim", "0",
                                                 "--out", str(t / "out")], "--latent-dim: 0, expected an integer >= 1"),
    Row("export module flag without --module", lambda t: _export(t, "--latent-dim", "2"), "--latent-dim: only with --module"),
]  # fmt: skip


# ---------------------------------------------------------------- geometry (GeometryRunConfig,
# GeodesicConfig check them; class names resolve against the data)
def _geometry(model: Path, out: Path, *extra: str) -> list[str]:
    return ["geometry", "--model", str(model), "--out", str(out), *extra]


ROWS += [
    Row("geometry graph steps one", lambda t: _geometry(toy_pair(t / "m"), t / "out", "--path", "0", "0", "1", "1", "--graph-steps", "1"),
        "graph steps 1: expected 0 or 2..1024"),
    Row("geometry path NaN", lambda t: _geometry(toy_pair(t / "m"), t / "out", "--path", "nan", "0", "1", "1"),
        "--path .*expected four finite numbers"),
    Row("geometry centroids without encoder", lambda t: _geometry(linear_decoder(t / "d.onnx", np.array([0.1, 0.0]), 0.5),
                                                                   t / "out", "--centroids", "Shirt", "Coat"),
        "--centroids: model .*d.onnx has no encoder"),
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


def test_a_flag_whose_value_is_two_dashes_keeps_it(capsys):
    """CI (hypothesis): `--name=--` reached the command as [] (argparse before Python 3.13
    drops a "--" even as a flag's value) and was refused as "a list". It is the value "--";
    a flag that needs a number says that "--" is not one, in one line."""
    from latent_atlas.cli import build_parser

    args = build_parser().parse(["report", "--name=--", "--label=--", "--label=x"])
    assert args.name == "--" and args.label == ["--", "x"]
    assert main(["grid", "--model", "x", "--batch-size=--"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--batch-size: invalid int value: '--'" in err[0], err


# ================================================================ bad data (engineer "data")
# Every dataset source through the CLI: `report --data X` (the test split only) or
# `train --data X` (both splits). Kept apart from the rows above to keep merges easy.
def _report_data(tmp: Path, data: Path | str, *extra: str) -> list[str]:
    return ["report", "--data", str(data), "--out", str(tmp / "out"), "--no-progress", *extra]


def _npz_cli(tmp: Path, **arrays: np.ndarray) -> list[str]:
    base = {"x_test": np.zeros((3, 4, 4), np.uint8), "y_test": np.array([0, 1, 1])}
    np.savez(tmp / "d.npz", **{k: v for k, v in (base | arrays).items() if v is not None})
    return _report_data(tmp, tmp / "d.npz")


def _npz_bytes(tmp: Path, raw: bytes) -> list[str]:
    (tmp / "d.npz").write_bytes(raw)
    return _report_data(tmp, tmp / "d.npz")


def _npz_truncated(tmp: Path) -> list[str]:
    _npz_cli(tmp)
    raw = (tmp / "d.npz").read_bytes()
    return _npz_bytes(tmp, raw[: len(raw) // 2])


def _npz_header_lies(tmp: Path) -> list[str]:
    import io
    import zipfile

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|u1", "fortran_order": False, "shape": (10**6, 1000, 1000)}
    )
    with zipfile.ZipFile(tmp / "d.npz", "w") as zf:
        zf.writestr("x_test.npy", buf.getvalue() + bytes(16))
        zf.writestr("y_test.npy", b"")
    return _report_data(tmp, tmp / "d.npz")


def _npz_objects(tmp: Path) -> list[str]:
    np.savez(tmp / "d.npz", x_test=np.array([object()] * 3), y_test=np.zeros(3, int))
    return _report_data(tmp, tmp / "d.npz")


def _png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _image_folder(tmp: Path, odd: Callable[[Path], object] | None = None) -> list[str]:
    for i in range(4):
        _png(tmp / "imgs" / "test" / f"c{i % 2}" / f"{i}.png", np.full((6, 6), 40 * i, np.uint8))
    if odd is not None:
        odd(tmp / "imgs" / "test")
    return _report_data(tmp, tmp / "imgs")


def _non_utf8_class(test: Path) -> None:
    import os

    name = os.path.join(os.fsencode(test), b"caf\xe9")
    os.mkdir(name)
    _png(Path(os.fsdecode(name)) / "9.png", np.zeros((6, 6), np.uint8))


def _huge_png(tmp: Path, side: int) -> list[str]:
    from PIL import Image

    (tmp / "imgs" / "test" / "c0").mkdir(parents=True)
    Image.new("1", (side, side)).save(tmp / "imgs" / "test" / "c0" / "9.png")  # a few kB
    return _report_data(tmp, tmp / "imgs")


def _idx_cli(tmp: Path, name: str, raw: bytes, gz: bool = True, **more: bytes) -> list[str]:
    """A tiny IDX folder with file ``name`` (and each of ``more``: stem -> bytes) replaced."""
    folder = write_idx_folder(tmp / "data", gz=gz)
    for file, content in {name: raw, **{k + "-ubyte.gz": v for k, v in more.items()}}.items():
        (folder / file).write_bytes(gzip.compress(content) if gz else content)
    return _report_data(tmp, folder)


def _idx_header(magic: int, *dims: int) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


def _idx_gzip_bomb(tmp: Path) -> list[str]:
    folder = write_idx_folder(tmp / "data")
    body = idx_bytes(np.zeros((6, 28, 28), np.uint8))
    one_mib = gzip.compress(bytes(1 << 20), compresslevel=9)  # members concatenate: 64 MiB
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(body) + one_mib * 64)
    return _report_data(tmp, folder)


def _idx_sparse(tmp: Path) -> list[str]:
    folder = write_idx_folder(tmp / "data", gz=False)
    with open(folder / "t10k-images-idx3-ubyte", "r+b") as fh:
        fh.truncate(100 << 30)  # a 100 GiB sparse file
    return _report_data(tmp, folder)


def _idx_too_big(tmp: Path) -> list[str]:
    n = 2**31 // 784 + 1  # headers alone: nothing behind them is ever read
    return _idx_cli(tmp, "t10k-images-idx3-ubyte.gz", _idx_header(0x803, n, 28, 28),
                    **{"t10k-labels-idx1": _idx_header(0x801, n)})  # fmt: skip


def _idx_non_utf8_folder(tmp: Path) -> list[str]:
    import os

    folder = Path(os.fsdecode(os.path.join(os.fsencode(tmp), b"donn\xe9es")))
    write_idx_folder(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bbroken")
    return _report_data(tmp, folder)


def _class_names(tmp: Path, text: bytes | None) -> list[str]:
    folder = write_idx_folder(tmp / "data")
    if text is not None:
        (tmp / "names.txt").write_bytes(text)
    return _report_data(tmp, folder, "--class-names", str(tmp / "names.txt"))


def _fashion_test_foreign_train(tmp: Path) -> list[str]:
    from conftest import DEFAULT_DATA_DIR

    folder = write_idx_folder(tmp / "data")
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).unlink()
        (folder / name).symlink_to(DEFAULT_DATA_DIR / name)
    return ["train", "--data", str(folder), "--out", str(tmp / "out"), "--no-progress"]


DATA_ROWS = [
    Row("npz missing key", lambda t: _npz_cli(t, x_test=None), r"d.npz: no x_test \(found \['y_test'\]\); expected the Keras convention"),
    Row("npz NaN pixels", lambda t: _npz_cli(t, x_test=np.full((3, 4, 4), np.nan, np.float32)), "x_test image 0 holds NaN or infinite pixels"),
    Row("npz float pixels 0..255", lambda t: _npz_cli(t, x_test=np.full((3, 4, 4), 9.0)), r"from 9 to 9; expected \[0, 1\] \(divide 0..255 images by 255"),
    Row("npz labels outside class list", lambda t: _npz_cli(t, class_names=np.array(["a"])), r"label 1 is outside the class list \(1 names in its class_names array\)"),
    Row("npz empty split", lambda t: _npz_cli(t, x_test=np.zeros((0, 4, 4), np.uint8), y_test=np.zeros(0, int)), r"x_test holds 0 images; expected at least one \(empty split\)"),
    Row("npz labels count", lambda t: _npz_cli(t, y_test=np.array([0, 1])), "3 images in x_test but 2 labels in y_test"),
    Row("npz pickled objects", _npz_objects, r"x_test holds Python objects .*allow_pickle=False"),
    Row("npz header larger than its entry", _npz_header_lies, r"x_test declares uint8 \[1000000, 1000, 1000\]"),
    Row("npz not a zip", lambda t: _npz_bytes(t, b"\x93NUMPY not a zip"), "d.npz: not a readable .npz file"),
    Row("npz truncated", _npz_truncated, "d.npz: not a readable .npz file"),
    Row("npz train split missing for train", lambda t: ["train", *_npz_cli(t)[1:]], r"no x_train \(found \['x_test', 'y_test'\]\)"),
    Row("image folder mixed sizes", lambda t: _image_folder(t, lambda d: _png(d / "c1" / "9.png", np.zeros((7, 6), np.uint8))),
        r"9.png: 6×7 pixels, L; but .*0.png is 6×6, L; expected one image size"),
    Row("image folder mixed channels", lambda t: _image_folder(t, lambda d: _png(d / "c1" / "9.png", np.zeros((6, 6, 3), np.uint8))),
        "9.png: 6×6 pixels, RGB; .*expected one image size and channel count"),
    Row("image folder non-UTF-8 class name", lambda t: _image_folder(t, _non_utf8_class), r"caf\\xe9: its name is not valid UTF-8"),
    Row("image folder not an image", lambda t: _image_folder(t, lambda d: (d / "c0" / "5.png").write_bytes(b"GIF89a?")), "5.png: not a readable image"),
    Row("image folder image too large", lambda t: _huge_png(t, 5000), r"expected sides of 1..4096"),
    Row("image folder decompression bomb", lambda t: _huge_png(t, 30000), "9.png: not a readable image .*decompression bomb"),
    Row("image folder empty split", lambda t: (((t / "imgs" / "test" / "c0").mkdir(parents=True)), _report_data(t, t / "imgs"))[1],
        r"no images .*expected at least one \(empty split\)"),
    Row("IDX gzip bomb", _idx_gzip_bomb, r"t10k-images-idx3-ubyte.gz: more than 4720 bytes, .*\(trailing bytes\)"),
    Row("IDX sparse 100 GiB file", _idx_sparse, r"107374182400 bytes, expected 4720 .*\(trailing bytes\)"),
    Row("IDX dimensions overflow int64", lambda t: _idx_cli(t, "t10k-images-idx3-ubyte.gz", _idx_header(0x803, 2**32 - 1, 2**32 - 1, 2**32 - 1)),
        "more than int64 can count"),
    Row("IDX declared size over the limit", _idx_too_big, r"pixel values \(8.0 GiB as float32\); expected at most .*use a subset"),
    Row("IDX trailing bytes", lambda t: _idx_cli(t, "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(6, np.uint8)) + b"\0", gz=False),
        r"t10k-labels-idx1-ubyte: 15 bytes, expected 14 .*\(trailing bytes\)"),
    Row("IDX empty split", lambda t: _idx_cli(t, "t10k-images-idx3-ubyte.gz", _idx_header(0x803, 0, 28, 28),
        **{"t10k-labels-idx1": _idx_header(0x801, 0)}), r"0 images; expected at least one \(empty split\)"),
    Row("IDX labels outside the class list", lambda t: _class_names(t, b"a\nb\n"), r"label 9 is outside the class list \(2 names in class names file"),
    Row("IDX folder name not UTF-8", _idx_non_utf8_folder, r"donn\\xe9es/t10k-labels-idx1-ubyte.gz: cannot be read"),
    Row("class names file missing", lambda t: _class_names(t, None), "class names file .*names.txt: not found"),
    Row("class names file not UTF-8", lambda t: _class_names(t, b"caf\xe9\n"), "not UTF-8 text"),
    Row("class names file repeats", lambda t: _class_names(t, b"a\nb\na\n"), "line 3 repeats 'a'"),
    Row("data is some other file", lambda t: ((t / "x.csv").write_text("1,2"), _report_data(t, t / "x.csv"))[1], "x.csv: a file that is not an .npz"),
    Row("unknown sklearn dataset", lambda t: _report_data(t, "sklearn:iris"), "sklearn:iris: unknown; expected sklearn:digits"),
    Row("folder that is no dataset", lambda t: (((t / "d").mkdir()), _report_data(t, t / "d"))[1], "holds neither IDX files nor train/ and test/"),
    pytest.param(Row("Fashion-MNIST test split with a foreign train split", _fashion_test_foreign_train,
                     r"12 images, expected 60000 for the train split \(the test split is Fashion-MNIST's"),
                 marks=pytest.mark.real_data),
]  # fmt: skip


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


@pytest.mark.parametrize(
    "row", DATA_ROWS, ids=[getattr(r, "values", [r])[0].name for r in DATA_ROWS]
)
def test_cli_refuses_bad_data_cleanly(row, tmp_path, capsys):
    import re

    args = row.setup(tmp_path)
    before = _tree(tmp_path)
    capsys.readouterr()
    rc = main(args)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert rc == 2
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    lines[0].encode("utf-8")  # printable on a UTF-8 terminal: no undecodable bytes in it
    assert re.search(row.expect, lines[0]), lines[0]
    # nothing created, changed or deleted: `report` makes its (empty) --out folder before it
    # reads the data, as the rows above allow; no file in it
    after = _tree(tmp_path)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert {k: v for k, v in after.items() if not k.startswith(str(tmp_path / "out"))} == before


def test_data_from_the_environment_variable(tmp_path, capsys, monkeypatch):
    _npz_cli(tmp_path, y_test=np.array([0, 1]))
    monkeypatch.setenv("LATENT_ATLAS_DATA", str(tmp_path / "d.npz"))
    assert main(["report", "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "d.npz: 3 images in x_test but 2 labels" in err[0]


# ================================================================ issue 9: safety at the boundary
# Each row builds its hostile input in a sandbox (the current folder during the run), runs the
# CLI, and checks: exit 2, exactly one stderr line matching ``expect``, no traceback, and no file
# created, changed or deleted anywhere under the test's folder beyond ``writes``.
@dataclass
class SafeRow:
    name: str
    setup: Callable[[Path], list[str]]  # builds under the sandbox (also the cwd), returns args
    expect: str
    covers: str  # the class of issue 9 it closes
    writes: tuple[str, ...] = ()  # what the command may write (sandbox-relative, with contents)
    subprocess: bool = False  # run `python -m latent_atlas` (signals, rlimits, FIFOs, HOME)
    env: dict | None = None


def _toys(s: Path) -> None:
    toy_pair(s / "models" / "m")
    toy_pair(s / "models" / "m2", weights=(0.0, 0.1))
    prototype_classifier(s / "c.onnx", np.random.default_rng(0).random((10, 28, 28)))


def _pair_args(s: Path) -> list[str]:
    _toys(s)
    return ["--model", "models/m", "--model", "models/m2", "--classifier", "c.onnx",
            "--no-progress", "--steps", "3"]  # fmt: skip


def _classifier_in_a_folder(s: Path, command: str, out: str) -> list[str]:
    """The pair, its classifier as ``cl/classifier.onnx`` (the layout `export` writes)."""
    args = _pair_args(s)
    (s / "cl").mkdir()
    (s / "c.onnx").rename(s / "cl" / "classifier.onnx")
    return [command, "--out", out, *args[:4], "--classifier", "cl/classifier.onnx", *args[6:]]


def _linked_classifier(s: Path) -> list[str]:
    """``--classifier lk/classifier.onnx``, a link to ``cl/classifier.onnx``; ``--out cl/r``."""
    args = _classifier_in_a_folder(s, "report", "cl/r")
    (s / "lk").mkdir()
    (s / "lk" / "classifier.onnx").symlink_to(s / "cl" / "classifier.onnx")
    return [*args[:8], "lk/classifier.onnx", *args[9:]]


def _user_folder(s: Path, name: str = "mine") -> Path:
    (s / name).mkdir()
    (s / name / "thesis.tex").write_text("years of work")
    return s / name


def _hostile_grid(make: Callable[[Path], object]) -> Callable[[Path], list[str]]:
    def setup(s: Path) -> list[str]:
        toy_pair(s / "m")
        write_key(s)
        make(s / "m" / "decoder.onnx")
        return ["grid", "--model", "m", "--out", "g", "--no-progress", "--steps", "3"]

    return setup


def _big_sparse_model(s: Path) -> list[str]:
    toy_pair(s / "m")
    with open(s / "m" / "decoder.onnx", "r+b") as fh:  # sparse: nothing is really written
        fh.truncate((1 << 30) + 1)
    return ["grid", "--model", "m", "--out", "g", "--no-progress"]


def _huge_latent(s: Path) -> list[str]:
    toy_pair(s / "m")
    huge_latent_decoder(s / "m" / "decoder.onnx")
    return ["grid", "--model", "m", "--out", "g", "--no-progress", "--steps", "3"]


def _toml(s: Path, text: str) -> list[str]:
    _toys(s)
    (s / "b.toml").write_text(text)
    return ["report", "--batch", "b.toml", "--out", "out", "--no-progress"]


ENTRY_OK = '[[comparison]]\nname = "x"\nmodel_a = "models/m"\nmodel_b = "models/m2"\n'


def _fifo_batch(s: Path) -> list[str]:
    os.mkfifo(s / "b.toml")
    return ["report", "--batch", "b.toml", "--out", "out", "--no-progress"]


def _failing_batch(s: Path, out: str = "out", earlier: bool = False) -> list[str]:
    """A batch whose only comparison fails (a model that is not ONNX); ``earlier``: ``out`` is
    the (marked) folder of an earlier run."""
    _toys(s)
    (s / "models" / "m2" / "decoder.onnx").write_bytes(b"not an onnx file")
    if earlier:
        atomic.output_dir(s / out)
    (s / "b.toml").write_text(ENTRY_OK)
    return ["report", "--batch", "b.toml", "--out", out, "--no-progress"]


def _batch_into_exported_models(s: Path) -> list[str]:
    """``--out`` the folder of the batch's models, marked as `export` marks its output."""
    _toys(s)
    atomic._write_marker(s / "models", {"m": "export", "m2": "export"})
    (s / "b.toml").write_text(ENTRY_OK)
    return ["report", "--batch", "b.toml", "--out", "models", "--no-progress"]


def _analyze_with(s: Path, which: str, make: Callable[[Path], object]) -> list[str]:
    """``analyze`` of the toy pair with one file replaced by a hostile one: ``which`` is
    ``encoder`` (models/m/encoder.onnx) or ``classifier`` (c.onnx)."""
    args = _pair_args(s)
    make(s / "models" / "m" / "encoder.onnx" if which == "encoder" else s / "c.onnx")
    return ["analyze", "--out", "out", *args]


def _special_decoder(s: Path, kind: str) -> list[str]:
    """decoder.onnx is a FIFO (nobody writes to it: a read would block for ever) or a link
    to /dev/zero (a read would never end)."""
    toy_pair(s / "m")
    (s / "m" / "decoder.onnx").unlink()
    if kind == "fifo":
        os.mkfifo(s / "m" / "decoder.onnx")
    else:
        (s / "m" / "decoder.onnx").symlink_to("/dev/zero")
    return ["grid", "--model", "m", "--out", "g", "--no-progress", "--steps", "3"]


def _copied_dimension_encoder(path: Path) -> None:
    column = np.random.default_rng(0).normal(0, 0.05, (784, 1))
    linear_encoder(path, np.repeat(column, 2, axis=1))  # code = (h, h): one direction flat


SHIPPED_VAE = REPO / "artifacts" / "fashion-mnist" / "vae"
RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: what follows it is shown reversed
CLASSES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Boot"]  # fmt: skip


def _npz(s: Path, class_names: list[str] | None = None) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"x_test": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
              "y_test": (np.arange(20) % 10).astype(np.uint8)}  # fmt: skip
    if class_names is not None:
        arrays["class_names"] = np.array(class_names)
    np.savez(s / "d.npz", **arrays)
    return s / "d.npz"


def _with_class_names(s: Path, source: str, bad: str) -> list[str]:
    """``analyze`` of the toy pair on data whose class name 3 is ``bad``, from ``source``:
    ``npz`` (its class_names array), ``file`` (a --class-names file), ``folder`` (an image
    folder's class folders: their sorted names, so ``bad`` sorts to index 3)."""
    args = ["analyze", "--out", "out", *_pair_args(s)]
    names = [*CLASSES[:3], bad, *CLASSES[4:]]
    if source == "npz":
        return [*args, "--data", str(_npz(s, names))]
    if source == "file":
        (s / "names.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
        return [*args, "--data", str(_npz(s)), "--class-names", "names.txt"]
    from PIL import Image

    for i, name in enumerate(["a", "b", "c", bad, "x", "y"]):
        (s / "imgs" / "test" / name).mkdir(parents=True)
        Image.new("L", (28, 28), 40 * i).save(s / "imgs" / "test" / name / "0.png")
    return [*args, "--data", "imgs"]


NESTED = "x = " + "[" * 5000 + "]" * 5000 + "\n"


def _empty_decoder_report(s: Path) -> list[str]:
    args = [a for a in _pair_args(s) if a != "--no-progress"]
    (s / "models" / "m" / "decoder.onnx").write_bytes(b"")
    return ["report", "--out", "r", *args]


def _grid_args(s: Path, *extra: str) -> list[str]:
    toy_pair(s / "m")
    return ["grid", "--model", "m", "--out", "g", "--no-progress", "--steps", "3", *extra]


def _png_is_folder(s: Path) -> list[str]:
    (s / "g" / "m_linear_3x3.png").mkdir(parents=True)
    return _grid_args(s)


def _user_png(s: Path) -> list[str]:
    (s / "m_linear_3x3.png").write_bytes(b"the user's own picture")
    toy_pair(s / "m")
    return ["grid", "--model", "m", "--out", ".", "--no-progress", "--steps", "3"]


def _mount_point() -> str:
    return next(p for p in ("/proc", "/sys", "/dev") if os.path.ismount(p))


def _rlimit_fsize(limit: int) -> Callable[[], None]:
    def pre() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return pre


BAD_UTF8 = os.fsdecode(b"name-\xff")
OUTPUT, NAMES, ONNX, MANIFEST, ONE_LINE, BATCH, TEMP, SILENT = (
    "1 output folders", "2 names", "3 onnx external data", "4 manifests", "5 one line",
    "6 batch isolation", "7 temporary files", "8 silent wrong results",
)  # fmt: skip

SAFETY_ROWS = [
    # 1: output folders never destroy what they replace
    SafeRow("analyze into a user's folder", lambda s: (_user_folder(s), ["analyze", "--out", "mine", *_pair_args(s)])[1],
            r"output folder mine: exists and was not written by latent-atlas .* pass --overwrite", OUTPUT),
    SafeRow("analyze --out a user's file", lambda s: ((s / "notes.txt").write_text("mine"), ["analyze", "--out", "notes.txt", *_pair_args(s)])[1],
            "output folder notes.txt: exists and is not a folder", OUTPUT),
    SafeRow("analyze --out a file, --overwrite", lambda s: ((s / "notes.txt").write_text("mine"), ["analyze", "--out", "notes.txt", "--overwrite", *_pair_args(s)])[1],
            "output folder notes.txt: exists and is not a folder", OUTPUT),
    SafeRow("analyze --out the models' parent, --overwrite", lambda s: ["analyze", "--out", "models", "--overwrite", *_pair_args(s)],
            r"output folder .*models: is or holds models/m, an input of this run", OUTPUT),
    SafeRow("report named like its model folder, --overwrite", lambda s: ["report", "--out", "models", "--name", "m", "--overwrite", *_pair_args(s)],
            r"error: output folder .*models: is or holds models/m, an input of this run", OUTPUT),
    SafeRow("analyze --out .", lambda s: ["analyze", "--out", ".", *_pair_args(s)], "is or holds the current folder", OUTPUT),
    SafeRow("analyze --out ..", lambda s: ["analyze", "--out", "..", *_pair_args(s)], "is or holds the current folder", OUTPUT),
    SafeRow("analyze --out a mount point", lambda s: ["analyze", "--out", _mount_point(), "--overwrite", *_pair_args(s)], "is a mount point", OUTPUT),
    SafeRow("batch out='o' entry named like a user's folder", lambda s: ((s / "o").mkdir(), _user_folder(s / "o", "photos"), _toml(s, 'out = "o"\n' + ENTRY_OK.replace('"x"', '"photos"'))[:3] + ["--no-progress"])[2],
            r"photos: output folder .*photos: exists and was not written by latent-atlas", OUTPUT),
    SafeRow("batch out='' beside its models", lambda s: _toml(s, 'out = ""\n' + ENTRY_OK)[:3] + ["--no-progress"],
            r"output folder .*sandbox: is or holds .*models/m, an input of this run", OUTPUT),
    # issue 26: a batch whose every comparison fails writes nothing; never beside its models
    SafeRow("batch whose every comparison fails", _failing_batch,
            r"^latent-atlas report: error: x: model .*models/m2/decoder.onnx: not a valid ONNX file", BATCH),
    SafeRow("batch whose every comparison fails, into an earlier output", lambda s: _failing_batch(s, earlier=True),
            r"error: x: model .*models/m2/decoder.onnx: not a valid ONNX file", BATCH),
    SafeRow("batch --out the folder of its (exported) models", _batch_into_exported_models,
            r"output folder .*models: is or holds .*models/m, an input of this run; choose an output outside", BATCH),
    SafeRow("grid --out the model folder", lambda s: (_grid_args(s)[:3] + ["--out", "m", "--steps", "3"]),
            r"output file .*m/m_linear_3x3.png: lies inside m, an input of this run", OUTPUT),
    SafeRow("grid --out inside the model folder, --overwrite", lambda s: (_grid_args(s)[:3] + ["--out", "m/sub", "--overwrite", "--steps", "3"]),
            r"output file .*m/sub/m_linear_3x3.png: lies inside m, an input of this run", OUTPUT),
    SafeRow("report --out inside a model folder", lambda s: ["report", "--out", "models/m/r", *_pair_args(s)],
            r"output folder .*models/m/r: lies inside models/m, an input of this run", OUTPUT),
    SafeRow("grid --model FOLDER/decoder.onnx --out FOLDER", lambda s: (_grid_args(s), ["grid", "--model", "m/decoder.onnx", "--out", "m", "--steps", "3"])[1],
            r"output file .*m/m_linear_3x3.png: lies inside m, an input of this run", OUTPUT),
    SafeRow("report --out inside the folder of --classifier FOLDER/classifier.onnx", lambda s: _classifier_in_a_folder(s, "report", "cl/r"),
            r"output folder .*cl/r: lies inside cl, an input of this run", OUTPUT),
    SafeRow("analyze --out inside the folder of --classifier FOLDER/classifier.onnx", lambda s: _classifier_in_a_folder(s, "analyze", "cl/a"),
            r"output folder .*cl/a: lies inside cl, an input of this run", OUTPUT),
    SafeRow("analyze --out the classifier 'auto' would pick, --overwrite", lambda s: ["analyze", "--out", str(REPO / "artifacts" / "fashion-mnist" / "classifier"), "--overwrite", *_pair_args(s)[:4], "--no-progress"],
            r"output folder .*artifacts/fashion-mnist/classifier: is or holds .*classifier, an input of this run", OUTPUT),
    SafeRow("grid over a user's file in a folder the tool marked", lambda s: (atomic.write_text(s / "g" / "other.png", "tool's"), (s / "g" / "m_linear_3x3.png").write_text("user's"), _grid_args(s))[2],
            r"output file g/m_linear_3x3.png: exists and was not written by latent-atlas \(no .latent-atlas marker records it", OUTPUT),
    SafeRow("bench --json over a user's notes in a report folder", lambda s: (atomic.write_text(s / "r" / "report.md", "tool's"), (s / "r" / "notes.txt").write_text("user's"), ["bench", "--json", "r/notes.txt", "--decoder", str(toy_pair(s / "m") / "decoder.onnx")])[2],
            r"output file r/notes.txt: exists and was not written by latent-atlas", OUTPUT),
    SafeRow("bench --json into the decoder's folder", lambda s: (toy_pair(s / "m"), ["bench", "--json", "m/b.json", "--decoder", "m/decoder.onnx", "--classifier", "none"])[1],
            r"output file .*m/b.json: lies inside m, an input of this run", OUTPUT),
    SafeRow("a marker whose record is not one", lambda s: (atomic.write_text(s / "g" / "other.png", "tool's"), (s / "g" / ".latent-atlas").write_text('{"tool": "latent-atlas", "files": "x"}'), (s / "g" / "m_linear_3x3.png").write_text("user's"), _grid_args(s))[3],
            r"output file g/m_linear_3x3.png: exists and was not written by latent-atlas", OUTPUT),
    SafeRow("grid over a user's file of the same name", _user_png, r"output file .*m_linear_3x3.png: exists and was not written", OUTPUT),
    SafeRow("bench --json over a user's file", lambda s: ((s / "r.json").write_text("{}"), ["bench", "--json", "r.json", "--decoder", str(toy_pair(s / "m") / "decoder.onnx")])[1],
            "output file r.json: exists and was not written by latent-atlas", OUTPUT),
    # 2: one place validates names
    SafeRow("batch name empty", lambda s: _toml(s, ENTRY_OK.replace('"x"', '""')), "comparison name '': empty", NAMES),
    SafeRow("--out= (an unset $OUT) on report: not the default folder", lambda s: ["report", "--out=", *_pair_args(s)], r"^latent-atlas report: error: --out '': empty; expected a value", ONE_LINE),
    SafeRow("--out= on export: not the shipped artifacts", lambda s: ["export", "--out="], r"^latent-atlas export: error: --out '': empty; expected a value", ONE_LINE),
    SafeRow("--out= on analyze", lambda s: ["analyze", "--out=", *_pair_args(s)], r"^latent-atlas analyze: error: --out '': empty; expected a value", ONE_LINE),
    SafeRow("an empty positional (sweep '')", lambda s: ["sweep", ""], r"^latent-atlas sweep: error: TOML '': empty; expected a value", ONE_LINE),
    SafeRow("report --classifier LINK/classifier.onnx (a link to a classifier) --out inside the real folder", lambda s: _linked_classifier(s), r"output folder .*cl/r: lies inside .*cl, an input of this run", OUTPUT),
    SafeRow("--name '' (given empty)", lambda s: ["report", "--name", "", "--out", "out", *_pair_args(s)], "--name '': empty", NAMES),
    SafeRow("--name ../x", lambda s: ["report", "--name", "../x", "--out", "out", *_pair_args(s)], "contains a path separator", NAMES),
    SafeRow("--name /abs/x", lambda s: ["report", "--name", "/tmp/x", "--out", "out", *_pair_args(s)], "contains a path separator", NAMES),
    SafeRow("--name ..", lambda s: ["report", "--name", "..", "--out", "out", *_pair_args(s)], "names a folder itself", NAMES),
    SafeRow("--name index.html", lambda s: ["report", "--name", "index.html", "--out", "out", *_pair_args(s)], "reserved for a file the tool writes", NAMES),
    SafeRow("--name not UTF-8", lambda s: ["report", "--name", BAD_UTF8, "--out", "out", *_pair_args(s)], r"not valid UTF-8", NAMES),
    SafeRow("batch name with NUL", lambda s: _toml(s, ENTRY_OK.replace('"x"', '"a\\u0000b"')), r"contains U\+0000, a control character, at character 2", NAMES),
    SafeRow("batch name with a separator", lambda s: _toml(s, ENTRY_OK.replace('"x"', '"a/b"')), "contains a path separator", NAMES),
    SafeRow("label with a newline", lambda s: ["report", "--label", "A\nB", "--label", "C", "--out", "out", *_pair_args(s)], "label 'A\\\\nB': contains U\\+000A, a line break, at character 2", NAMES),
    # 3: ONNX external data in every graph, checker, size cap
    SafeRow("external data in an If branch Constant", _hostile_grid(if_constant_decoder), r"external data \(.onnx.data\): tensor 'kv', attribute 'value' .*'then_branch'.* points to 'key.bin'", ONNX),
    SafeRow("external data in an If branch initializer", _hostile_grid(if_initializer_decoder), r"external data .*initializer of graph 'then_branch', points to 'key.bin'", ONNX),
    SafeRow("external data in a Loop body's If", _hostile_grid(loop_body_decoder), r"external data .*initializer of graph 'inner_then'", ONNX),
    SafeRow("external data in a sparse initializer", _hostile_grid(sparse_initializer_decoder), r"external data .*sparse initializer of graph 'hostile'", ONNX),
    SafeRow("onnx.checker full check fails", _hostile_grid(checker_failing_decoder), r"fails onnx.checker's full check", ONNX),
    SafeRow("model file above the size cap", _big_sparse_model, r"1.0 GiB, above the 1 GiB limit", ONNX),
    SafeRow("declared latent dim of a million", _huge_latent, r"latent dimension 1000000, expected at most 4096", ONNX),
    # 4: a manifest that latent-atlas did not write is not ours... but ours still counts
    SafeRow("own manifest, hash mismatch", lambda s: (_sha_mismatch(s), _grid(s / "art" / "m", s / "out"))[1], "differs from the manifest", MANIFEST),
    # 5: every failure is one line
    SafeRow("ENOSPC (RLIMIT_FSIZE) writing the PNG", lambda s: _grid_args(s), r"output file g/m_linear_3x3.png: cannot write it \(File too large; free some space", ONE_LINE,
            writes=("g", "g/.latent-atlas"), subprocess=True, env={"RLIMIT_FSIZE": "4096"}),
    SafeRow("ENOSPC (RLIMIT_FSIZE) preallocating --npy", lambda s: _grid_args(s, "--npy", "--steps", "40"), r"output file g/m_linear_40x40.npy: cannot write it \(File too large", ONE_LINE,
            writes=("g", "g/.latent-atlas"), subprocess=True, env={"RLIMIT_FSIZE": str(1 << 20)}),
    SafeRow("FIFO as the batch file", _fifo_batch, "batch file b.toml: not a regular file", ONE_LINE, subprocess=True),
    SafeRow("batch file is a folder", lambda s: ((s / "b.toml").mkdir(), ["report", "--batch", "b.toml"])[1], "batch file b.toml: not a regular file", ONE_LINE),
    SafeRow("bench --json a folder", lambda s: ((s / "d").mkdir(), ["bench", "--json", "d", "--decoder", str(toy_pair(s / "m") / "decoder.onnx")])[1],
            "output file d: is a folder; expected a file name", ONE_LINE),
    SafeRow("grid PNG name is a folder", _png_is_folder, r"m_linear_3x3.png: is a folder; expected a file name", ONE_LINE),
    SafeRow("TOML model_a = 5", lambda s: _toml(s, ENTRY_OK.replace('model_a = "models/m"', "model_a = 5")), r"comparison #1 \('x'\): 5 \(int\), expected strings \(paths and labels\)", ONE_LINE),
    SafeRow("TOML comparison = [1]", lambda s: _toml(s, "comparison = [1]\n"), r"comparison #1: 1 \(int\), expected a \[\[comparison\]\] table", ONE_LINE),
    SafeRow("TOML data = true", lambda s: _toml(s, "data = true\n" + ENTRY_OK), r"b.toml, comparison #1 \('x'\): True \(bool\), expected a dataset path or sklearn:digits", ONE_LINE),
    SafeRow("TOML name = 5", lambda s: _toml(s, ENTRY_OK.replace('name = "x"', "name = 5")), r"comparison #1: 5 \(int\), expected name = a string", ONE_LINE),
    SafeRow("TOML label_a = [1]", lambda s: _toml(s, ENTRY_OK + "label_a = [1]\n"), r"comparison #1 \('x'\): \[1\] \(list\), expected strings", ONE_LINE),
    SafeRow("TOML grid steps = 'x'", lambda s: _toml(s, ENTRY_OK + '[[comparison.grid]]\nsteps = "x"\n'), "grid: steps = 'x', expected 2 numbers", ONE_LINE),
    SafeRow("TOML two models, three labels", lambda s: _toml(s, '[[comparison]]\nname = "x"\nmodels = ["models/m", "models/m2"]\nlabels = ["a", "b", "c"]\n'),
            r"b.toml, comparison #1 \('x'\): 3 labels for 2 models; expected labels = \[...\] with one label per entry of models", ONE_LINE),
    SafeRow("sweep --seeds 0 (the flag named, not the file)", lambda s: ((s / "s.toml").write_text('[[config]]\nname = "ae"\nkind = "ae"\n'), ["sweep", "s.toml", "--seeds", "0", "--out", "sw"])[1],
            r"^latent-atlas sweep: error: --seeds 0, expected a count in 1..1000", ONE_LINE),
    SafeRow("TOML out = 5", lambda s: _toml(s, "out = 5\n" + ENTRY_OK), r"b.toml: out: 5 \(int\), expected a path", ONE_LINE),
    SafeRow("analyze --batch-size 0", lambda s: ["analyze", "--batch-size", "0", "--out", "out", *_pair_args(s)], "--batch-size: 0, expected an integer >= 1", ONE_LINE),
    SafeRow("analyze --batch-size -1", lambda s: ["analyze", "--batch-size", "-1", "--out", "out", *_pair_args(s)], "--batch-size: -1, expected an integer >= 1", ONE_LINE),
    SafeRow("grid --threads -1", lambda s: _grid_args(s, "--threads", "-1"), "--threads: -1, expected an integer >= 0", ONE_LINE),
    SafeRow("report --gradient-threshold nan", lambda s: ["report", "--gradient-threshold", "nan", "--out", "out", *_pair_args(s)], r"gradient threshold: nan, expected a number in \(0, inf\]", ONE_LINE),
    SafeRow("bench --repeats 0", lambda s: ["bench", "--repeats", "0", "--decoder", str(toy_pair(s / "m") / "decoder.onnx")], "--repeats: 0, expected >= 1", ONE_LINE),
    SafeRow("--range -1e30 1e30 parses (then the decoder's range is refused)", lambda s: _grid_args(s, "--range", "-1e30", "1e30"),
            r"decoded pixel values in \[-1e\+29, 1e\+29\], expected \[0, 1\]; end the decoder with a Sigmoid", ONE_LINE),
    SafeRow("an abbreviated flag (--batch for --batch-size)", lambda s: _grid_args(s, "--batch", "3"),
            r"^latent-atlas grid: error: unrecognized arguments: --batch 3 \(see --help\)", ONE_LINE),
    SafeRow("an abbreviated flag (--over for --overwrite)", lambda s: _grid_args(s, "--over"),
            r"^latent-atlas grid: error: unrecognized arguments: --over \(see --help\)", ONE_LINE),
    SafeRow("HOME is a missing folder (library noise)", lambda s: _grid_args(s, "--range", "5", "4"), r"grid x range \[5.0, 4.0\]: expected low < high", ONE_LINE,
            subprocess=True, env={"HOME": "/dev/null/nohome", "XDG_CACHE_HOME": "", "MPLCONFIGDIR": ""}),
    # issue 26.3: outputs that depend on the batch (batch statistics) are refused at load
    SafeRow("decoder adds the batch mean (BatchNorm in training mode)", _hostile_grid(batch_mean_model),
            r"m/decoder.onnx: the decoder's output 'image' depends on the batch: the same 7 inputs give values up to .* apart when run as one batch and as batches of 1 and 6.*BatchNorm left in training mode at export.*model.eval\(\)", SILENT),
    SafeRow("encoder adds the batch mean", lambda s: _analyze_with(s, "encoder", lambda p: batch_mean_model(p, "encoder")),
            r"models/m/encoder.onnx: the encoder's output 'code' depends on the batch.*BatchNorm", SILENT),
    SafeRow("classifier adds the batch mean", lambda s: _analyze_with(s, "classifier", lambda p: batch_mean_model(p, "classifier")),
            r"c.onnx: the classifier's output 'logits' depends on the batch.*BatchNorm", SILENT),
    # issue 26.5: each message names the file, what was found, what was expected and the fix
    SafeRow("encoder gives NaN codes", lambda s: _analyze_with(s, "encoder", nan_model),
            r"models/m/encoder.onnx: the encoder gives NaN or inf codes \(output 'code'\) for \d+ of \d+ images.*expected finite values", ONE_LINE),
    SafeRow("classifier gives NaN logits", lambda s: _analyze_with(s, "classifier", lambda p: nan_model(p, "classifier")),
            r"c.onnx: the classifier gives NaN or inf logits \(output 'logits'\) for \d+ of \d+ images.*expected finite values", ONE_LINE),
    SafeRow("encoder gives int64 codes", lambda s: _analyze_with(s, "encoder", int_code_encoder),
            r"models/m/encoder.onnx: the encoder's codes are int64; expected float32", ONE_LINE),
    SafeRow("--range -1e38 1e38 on the shipped VAE (float32 overflow)", lambda s: ["grid", "--model", str(SHIPPED_VAE), "--out", "g", "--no-progress", "--steps", "3", "--range", "-1e38", "1e38"],
            r"vae/decoder.onnx: decoding codes as large as 1e\+38 gives NaN or inf pixels .*float32 overflow .*because of the codes asked for, not the model.*--range", ONE_LINE),
    SafeRow("decoder that asks for 84 GB (onnxruntime's own log kept off stderr)", _hostile_grid(lambda p: huge_allocation_decoder(p, 3_000_000_000)),
            r"m/decoder.onnx: out of memory on a batch of 7 \(it asked for 84 GB at once\); expected a model whose tensors fit", ONE_LINE, subprocess=True),
    SafeRow("decoder.onnx is a FIFO", lambda s: _special_decoder(s, "fifo"), r"m/decoder.onnx: not a regular file \(a FIFO \(named pipe\)\); expected an .onnx file", ONE_LINE, subprocess=True),
    SafeRow("decoder.onnx is /dev/zero", lambda s: _special_decoder(s, "zero"), r"m/decoder.onnx: not a regular file \(a device\); expected an .onnx file", ONE_LINE),
    SafeRow("--model /dev/zero", lambda s: ["grid", "--model", "/dev/zero", "--out", "g", "--no-progress"], r"model /dev/zero: not a regular file \(a device\)", ONE_LINE),
    # cold try: a --data that grid does not read (a fixed range) was taken without a word
    SafeRow("grid --data that does not exist, over a fixed range", lambda s: _grid_args(s, "--data", "nope"),
            r"^latent-atlas grid: error: dataset nope: does not exist; expected a folder of IDX files", ONE_LINE),
    # cold try: a missing --classifier was "model …: not found", after the data was loaded
    SafeRow("report --classifier that does not exist", lambda s: ["report", "--out", "r", *[a if a != "c.onnx" else "nope.onnx" for a in _pair_args(s)]],
            r"^latent-atlas report: error: classifier nope.onnx: not found; expected a classifier .onnx file", ONE_LINE),
    # cold try: a report refused once it runs (its decoder file read), stderr a pipe and the
    # progress bar on: the one line alone, no bar frames before it
    SafeRow("report with an empty decoder.onnx, progress on, stderr a pipe", _empty_decoder_report,
            r"^latent-atlas report: error: m-vs-m2: model models/m/decoder.onnx: empty file", ONE_LINE, subprocess=True),
    SafeRow("batch file nested 5000 levels deep", lambda s: _toml(s, NESTED + ENTRY_OK), r"batch file b.toml: nested deeper than the TOML reader can follow; expected \[\[comparison\]\] tables", ONE_LINE),
    # issue 26.4: one rule for names, from every source: control characters and bidi
    # overrides refused, naming the source and the index
    SafeRow("npz class_names with a bidi override", lambda s: _with_class_names(s, "npz", f"Dre{RLO}ss"),
            r"d.npz: class name 3 of its class_names array 'Dre\\u202ess': contains U\+202E \(RIGHT-TO-LEFT OVERRIDE\), a bidi control, at character 4; expected plain text", NAMES),
    SafeRow("npz class_names with a newline", lambda s: _with_class_names(s, "npz", "Dre\nss"),
            r"d.npz: class name 3 of its class_names array 'Dre\\nss': contains U\+000A, a line break", NAMES),
    SafeRow("--class-names file with a bidi override", lambda s: _with_class_names(s, "file", f"Dre{RLO}ss"),
            r"class names file names.txt: line 4 'Dre\\u202ess': contains U\+202E .*a bidi control", NAMES),
    SafeRow("--class-names file with a line separator", lambda s: _with_class_names(s, "file", "Dre\u2028ss"),
            r"class names file names.txt: line 4 'Dre\\u2028ss': contains U\+2028 \(LINE SEPARATOR\), a line break", NAMES),
    SafeRow("image folder class named with a bidi override", lambda s: _with_class_names(s, "folder", f"d{RLO}x"),
            r"image folder imgs: class folder 3 'd\\u202ex': contains U\+202E .*a bidi control", NAMES),
    SafeRow("image folder class named with a newline", lambda s: _with_class_names(s, "folder", "d\nx"),
            r"image folder imgs: class folder 3 'd\\nx': contains U\+000A, a line break", NAMES),
    SafeRow("--label with a bidi override", lambda s: ["report", "--label", f"V{RLO}AE", "--label", "C", "--out", "out", *_pair_args(s)],
            r"label 'V\\u202eAE': contains U\+202E .*a bidi control", NAMES),
    SafeRow("batch label_b with a bidi override", lambda s: _toml(s, ENTRY_OK + f'label_a = "A"\nlabel_b = "B{RLO}"\n'),
            r"comparison x: label 'B\\u202e': contains U\+202E", NAMES),
    SafeRow("batch entry name with a bidi override", lambda s: _toml(s, ENTRY_OK.replace('"x"', f'"x{RLO}y"')),
            r"'x\\u202ey': contains U\+202E .*a bidi control", NAMES),
    SafeRow("model folder name (the default label) with a bidi override", lambda s: (_toys(s), (s / "models" / "m").rename(s / "models" / f"m{RLO}"),
                                                                             ["report", "--model", f"models/m{RLO}", "--model", "models/m2", "--classifier", "c.onnx", "--out", "out", "--no-progress", "--steps", "3"])[2],
            r"model 1's folder name \(its label; or pass --label\) 'm\\u202e': contains U\+202E", NAMES),
    # 8: silent wrong results become refusals
    SafeRow("same folder as both models", lambda s: ["report", "--model", "models/m", "--model", "./models/m/", "--classifier", "c.onnx", "--out", "out", *_pair_args(s)[6:]],
            "model models/m is given twice; expected different models", SILENT),
    SafeRow("range 1e-300 2e-300", lambda s: _grid_args(s, "--range", "1e-300", "2e-300"), r"grid x coordinates 1e-300..2e-300: neighbouring points are equal in float32", SILENT),
    SafeRow("range 1 1.0000000001", lambda s: _grid_args(s, "--range", "1", "1.0000000001"), r"grid x coordinates 1..1: neighbouring points are equal in float32", SILENT),
    SafeRow("grid of a logits decoder", lambda s: (_grid_args(s), toy_pair(s / "m", weights=(1.0, 0.0)))[0], r"decoded pixel values in \[-3.5, 4.5\], expected \[0, 1\]; end the decoder with a Sigmoid", SILENT),
]  # fmt: skip


def _snapshot(root: Path) -> dict[str, object]:
    """Every path under ``root``: folders by existence, files by content and mode."""
    out: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = "dir"
        elif p.is_file():
            st = p.stat()
            digest = (
                "sparse" if st.st_size > 1 << 24 else hashlib.sha256(p.read_bytes()).hexdigest()
            )
            out[rel] = (digest, st.st_size, st.st_mode)
        else:
            out[rel] = "special"
    return out


def _run_cli(row: SafeRow, args: list[str], sandbox: Path, capsys) -> tuple[int, str, str]:
    if not row.subprocess:
        capsys.readouterr()
        rc = main(args)
        captured = capsys.readouterr()
        return rc, captured.out, captured.err
    env = dict(os.environ)
    preexec = None
    for k, v in (row.env or {}).items():
        if k == "RLIMIT_FSIZE":
            preexec = _rlimit_fsize(int(v))
        elif v:
            env[k] = v
        else:
            env.pop(k, None)
    proc = subprocess.run([sys.executable, "-m", "latent_atlas", *args], cwd=sandbox, env=env,
                          capture_output=True, text=True, timeout=120, preexec_fn=preexec)  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("row", SAFETY_ROWS, ids=[r.name for r in SAFETY_ROWS])
def test_refusal_leaves_the_sandbox_untouched(row, tmp_path, monkeypatch, capsys):
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    monkeypatch.chdir(sandbox)
    args = row.setup(sandbox)
    before = _snapshot(tmp_path)
    rc, out, err = _run_cli(row, args, sandbox, capsys)
    after = _snapshot(tmp_path)
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, (rc, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert re.search(row.expect, lines[0]), lines[0]
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    allowed = [f"sandbox/{w}" for w in row.writes]
    stray = sorted(k for k in changed if not any(k == w or k.startswith(w + "/") for w in allowed))
    assert stray == []
    temps = [k for k in after if Path(k).name.startswith(".") and k not in before]
    assert [k for k in temps if Path(k).name != ".latent-atlas"] == []


def test_every_safety_class_has_rows():
    counts = {c: sum(r.covers == c for r in SAFETY_ROWS) for c in
              (OUTPUT, NAMES, ONNX, MANIFEST, ONE_LINE, SILENT)}  # fmt: skip
    assert all(n >= 1 for n in counts.values()), counts


@pytest.mark.parametrize(
    "bad", ["Dre\u202ess", "Dre\nss", "Dre\u2066ss", "Dre\x85ss", "Dre\u200fss"]
)
def test_every_name_from_the_api_follows_the_one_rule(bad):
    """Issue 26.4: whatever a name comes through (a dataset built in Python, a group, a
    comparison's labels or name), the same characters are refused with one line naming the
    source and the index, before any output (Markdown, HTML, JSON keys, figure text, file
    names) can hold them."""
    from latent_atlas.toolkit.dataset import ImageDataset, Split

    from latent_atlas.groups import GroupConfig
    from latent_atlas.runs import ComparisonConfig

    split = Split(np.zeros((2, 1, 4, 4), np.float32), np.array([0, 1]))
    with pytest.raises(AtlasError, match=r"^dataset toy: class name 1 'Dre.*ss': contains U\+"):
        ImageDataset("toy", split, None, ("ok", bad), "0" * 64, "toy")
    with pytest.raises(AtlasError, match=r"^group label 'Dre.*ss': contains U\+"):
        GroupConfig(bad, (Path("a"), Path("b")))
    with pytest.raises(AtlasError, match=r"label 'Dre.*ss': contains U\+"):
        ComparisonConfig("c", (Path("a"), Path("b")), ("ok", bad))
    with pytest.raises(AtlasError, match=r"^comparison name 'Dre.*ss': contains U\+"):
        ComparisonConfig(bad, (Path("a"), Path("b")))
    assert ImageDataset("toy", split, None, ("ok", "Dress / <b>|*"), "0" * 64, "toy")


def test_a_flat_code_direction_is_reported_not_refused(tmp_path, monkeypatch):
    """Codes with a direction that never varies (a collapsed unit, or a copied dimension) make
    the Gaussian fit singular: its KL to N(0, I) is infinite. That is what the model is, not a
    mistake: the analysis runs, and metrics.json names the measure, what was found and where to
    look, for that model only."""
    monkeypatch.chdir(tmp_path)
    args = _analyze_with(tmp_path, "encoder", _copied_dimension_encoder)
    assert main([*args, "--no-progress"]) == 0
    models = json.loads((tmp_path / "out" / "metrics.json").read_text())["models"]
    flat = models["m"]["metrics"]["not_available"]
    assert "covariance is singular" in flat["embedding.kl_to_standard_normal"]
    assert models["m"]["metrics"]["embedding"]["kl_to_standard_normal"] is None
    assert "embedding.kl_to_standard_normal" not in models["m2"]["metrics"]["not_available"]


@pytest.mark.parametrize("command", ["report", "analyze"])
@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("--model", "model .*nope: does not exist; expected a model folder"),
        ("second --model", "model .*nope: does not exist; expected a model folder"),
        ("--group member", "model .*nope: does not exist; expected a model folder"),
        ("folder without decoder.onnx", r"no decoder.onnx \(found no .onnx files\)"),
    ],
)
def test_a_wrong_model_path_is_one_line_before_any_work(command, where, expected, tmp_path,
                                                         capsys, monkeypatch):  # fmt: skip
    """Cold try: with the progress bar on (no --no-progress) and stderr not a terminal, a
    missing model printed four lines of a bar that ended at "100%" before the error, after the
    data was loaded; now the paths are checked first (the data is never loaded): one line,
    nothing written. (Bars are now drawn only on a terminal as well.)"""
    import latent_atlas.runs as rep

    loads: list = []
    monkeypatch.setattr(rep, "load_dataset", lambda *a, **kw: loads.append(a) or 1 / 0)
    toy_pair(tmp_path / "m")
    (tmp_path / "empty").mkdir()
    nope = str(tmp_path / "nope")
    args = {
        "--model": ["--model", nope, "--model", str(tmp_path / "m")],
        "second --model": ["--model", str(tmp_path / "m"), "--model", nope],
        "--group member": ["--group", f"G={tmp_path / 'm'},{nope}"],
        "folder without decoder.onnx": ["--model", str(tmp_path / "empty")],
    }[where]
    before = sorted(tmp_path.rglob("*"))
    assert main([command, *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(expected, err[0]), err
    assert err[0].startswith(f"latent-atlas {command}: error: model "), err
    assert sorted(tmp_path.rglob("*")) == before
    assert loads == []
