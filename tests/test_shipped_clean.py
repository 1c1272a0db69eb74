"""The shipped ONNX files hold no trace of the machine that built them, and the script that
cleaned them changes no weight and keeps the cards' and manifests' hashes true."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import REPO
from latent_atlas.export.clean_shipped import has_debug_info, strip_file, update_hashes
from latent_atlas.toolkit.runtime import load, sha256_file
from toy_onnx import linear_decoder

ABSOLUTE = (b"/work/", b"/root/", b"/home/", b"/tmp/")
SHIPPED_ONNX = sorted((REPO / "artifacts").rglob("*.onnx"))


@pytest.mark.parametrize("path", SHIPPED_ONNX, ids=lambda p: str(p.relative_to(REPO)))
def test_no_shipped_onnx_holds_an_absolute_path(path):
    raw = path.read_bytes()
    assert not [a for a in ABSOLUTE if a in raw]
    assert b"pkg.torch.onnx.stack_trace" not in raw


def test_shipped_hashes_match_their_cards():
    cards = sorted((REPO / "artifacts").rglob("card.json"))
    assert len(cards) >= 10
    for card in cards:
        for entry in json.loads(card.read_text()).get("files", []):
            assert sha256_file(card.parent / entry["file"]) == entry["sha256"], card


def _debug_model(path):
    """A toy decoder whose node carries a torch-like stack trace with an absolute path."""
    linear_decoder(path, np.array([0.1, 0.0]), 0.5)
    model = onnx.load(str(path))
    node = model.graph.node[0]
    node.doc_string = "made at /home/someone/model.py"
    node.metadata_props.add(key="pkg.torch.onnx.stack_trace", value='File "/work/x.py", line 1')
    model.graph.initializer[0].metadata_props.add(key="pkg.torch.onnx.name", value="/tmp/w")
    onnx.save(model, str(path))
    return model


def test_strip_file_drops_the_debug_records_and_keeps_the_weights(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    before = _debug_model(folder / "decoder.onnx")
    z = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    want = load(folder / "decoder.onnx").decode(z)
    assert has_debug_info(before)
    assert strip_file(folder / "decoder.onnx") is True
    raw = (folder / "decoder.onnx").read_bytes()
    assert not [a for a in ABSOLUTE if a in raw]
    after = onnx.load(str(folder / "decoder.onnx"))
    assert not has_debug_info(after)
    assert [p.key for p in after.metadata_props] == [p.key for p in before.metadata_props]
    for a, b in zip(after.graph.initializer, before.graph.initializer, strict=True):
        assert onnx.numpy_helper.to_array(a).tobytes() == onnx.numpy_helper.to_array(b).tobytes()
    np.testing.assert_array_equal(load(folder / "decoder.onnx").decode(z), want)
    assert strip_file(folder / "decoder.onnx") is False  # nothing left to strip: untouched
    assert [p.name for p in folder.iterdir()] == ["decoder.onnx"]  # no temporary file left


def test_update_hashes_rewrites_cards_then_manifests(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    _debug_model(folder / "decoder.onnx")
    old = sha256_file(folder / "decoder.onnx")
    (folder / "card.json").write_text(json.dumps({"files": [{"file": "decoder.onnx",
                                                              "sha256": old}]}))  # fmt: skip
    (tmp_path / "manifest.json").write_text(json.dumps({"tool": "latent-atlas", "files": {
        "m/decoder.onnx": old, "m/card.json": sha256_file(folder / "card.json")}}))  # fmt: skip
    strip_file(folder / "decoder.onnx")
    changed = update_hashes(tmp_path)
    assert changed == [folder / "card.json", tmp_path / "manifest.json"]
    new = sha256_file(folder / "decoder.onnx")
    assert new != old
    assert json.loads((folder / "card.json").read_text())["files"][0]["sha256"] == new
    files = json.loads((tmp_path / "manifest.json").read_text())["files"]
    assert files == {"m/decoder.onnx": new, "m/card.json": sha256_file(folder / "card.json")}
    assert update_hashes(tmp_path) == []
    load(folder / "decoder.onnx")  # the manifest check of the runtime passes
