"""Strip the exporter's per-node debug records from ONNX files already written, weights
untouched, and bring the cards' and manifests' hashes up to date.

The first shipped Fashion-MNIST models were exported before :func:`strip_debug_info` existed:
their nodes carry ``pkg.torch.onnx.stack_trace`` (with the build machine's absolute source
paths), class hierarchies and FX-node names. Re-exporting would mean retraining or reloading
checkpoints that are not shipped; this rewrites the files themselves instead, checking that
every initializer (weight) keeps its exact bytes and that the graph computes the same outputs.

    python -m latent_atlas.export.clean_shipped artifacts
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import onnx
from latent_atlas.export.onnx_export import _graphs, strip_debug_info
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.runtime import sha256_file
from onnx import numpy_helper


def _replace(path: Path, data: bytes) -> None:
    """Replace a file the export wrote, in place and atomically, leaving its folder's
    ``.latent-atlas`` marker (which names who wrote each file: still the export) as it is."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _json(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def _weights(model: onnx.ModelProto) -> list[tuple[str, list[int], int, bytes]]:
    """Every initializer's name, shape, type and value bytes (not its metadata)."""
    return [(t.name, list(t.dims), t.data_type, numpy_helper.to_array(t).tobytes())
            for g in _graphs(model.graph) for t in g.initializer]  # fmt: skip


def has_debug_info(model: onnx.ModelProto) -> bool:
    """Whether any node, value or graph carries metadata or a doc string."""
    for g in _graphs(model.graph):
        if g.metadata_props or g.doc_string:
            return True
        for item in [*g.node, *g.input, *g.output, *g.value_info, *g.initializer]:
            if item.metadata_props or item.doc_string:
                return True
    return False


def strip_file(path: Path) -> bool:
    """Rewrite ``path`` without debug records; False (untouched) when it has none. Refuses to
    write when a weight's bytes or the graph's structure would change."""
    model = onnx.load(str(path))
    if not has_debug_info(model):
        return False
    weights = _weights(model)
    nodes = [(n.op_type, list(n.input), list(n.output)) for g in _graphs(model.graph)
             for n in g.node]  # fmt: skip
    clean = strip_debug_info(model)
    after = [(n.op_type, list(n.input), list(n.output)) for g in _graphs(clean.graph)
             for n in g.node]  # fmt: skip
    if _weights(clean) != weights or after != nodes:
        raise AtlasError(f"{path}: stripping would change the graph or its weights; not written")
    onnx.checker.check_model(clean)
    _replace(path, clean.SerializeToString())
    return True


def update_hashes(root: Path) -> list[Path]:
    """Set every ``card.json``'s ``files[].sha256`` and every latent-atlas ``manifest.json``
    entry under ``root`` to the files' current sha256 (cards first: manifests hash them)."""
    changed = []
    for card_path in sorted(root.rglob("card.json")):
        card = json.loads(card_path.read_text())
        entries = card.get("files") if isinstance(card, dict) else None
        if not isinstance(entries, list):
            continue
        new = [dict(e, sha256=sha256_file(card_path.parent / e["file"])) for e in entries]
        if new != entries:
            card["files"] = new
            _replace(card_path, _json(card))
            changed.append(card_path)
    for manifest_path in sorted(root.rglob("manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("tool") != "latent-atlas":
            continue
        files = {name: sha256_file(manifest_path.parent / name) for name in manifest["files"]}
        if files != manifest["files"]:
            manifest["files"] = files
            _replace(manifest_path, _json(manifest))
            changed.append(manifest_path)
    return changed


def main(argv: list[str] | None = None) -> int:
    root = Path((argv if argv is not None else sys.argv[1:] or ["artifacts"])[0])
    stripped = [p for p in sorted(root.rglob("*.onnx")) if strip_file(p)]
    for p in stripped:
        print(f"stripped {p}")
    for p in update_hashes(root):
        print(f"updated {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
