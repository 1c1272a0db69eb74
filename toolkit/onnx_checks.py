"""What an ONNX file must satisfy before onnxruntime sees it, checked in every graph.

onnxruntime resolves a tensor stored as external data relative to the process's working
folder, wherever that tensor sits: a top-level initializer, an initializer of an ``If`` /
``Loop`` / ``Scan`` branch, a ``Constant`` node's tensor attribute, a sparse initializer, a node
of a local function. A model that checks only the top-level initializers lets a crafted
decoder read any file of the current folder into its output. So this module walks every graph
and subgraph and refuses any tensor whose ``data_location`` is ``EXTERNAL`` (or that carries
external-data entries at all), any operator outside the standard domain anywhere, and any
model that ``onnx.checker``'s full check refuses. Files above ``MAX_MODEL_BYTES`` are refused
from their size, before a byte is read; declared latent dimensions above ``MAX_LATENT_DIM``
are refused before anything is allocated from them. Once a model runs, its decoded pixels must
lie in [0, 1] (``check_decoded_range``), the same rule for every command.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from latent_atlas.toolkit.errors import AtlasError
from onnx import AttributeProto, GraphProto, NodeProto, TensorProto

MAX_MODEL_BYTES = 1 << 30  # 1 GiB: far above any decoder this tool is for; protobuf caps at 2
# Every buffer sized by a latent dimension (a batch of grid points, the samples for the
# Fréchet distances) grows with it; 4096 keeps a 10 000-sample batch near 300 MB.
MAX_LATENT_DIM = 4096
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})


def check_file_size(path: Path) -> None:
    """Refuse what is not a regular file or is larger than ``MAX_MODEL_BYTES``, from its
    metadata alone (a FIFO or a 100 GiB sparse file is never read)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise AtlasError(f"model {path}: cannot read it ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else
                "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                "a socket" if stat.S_ISSOCK(st.st_mode) else "not a file")  # fmt: skip
        raise AtlasError(
            f"model {path}: not a regular file ({kind}); expected an .onnx file: give the "
            "path of the model file itself"
        )
    if st.st_size > MAX_MODEL_BYTES:
        raise AtlasError(
            f"model {path}: {st.st_size / 2**30:.1f} GiB, above the {MAX_MODEL_BYTES >> 30} GiB "
            "limit for one model file"
        )


def _node_graphs(node: NodeProto) -> Iterator[GraphProto]:
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH or attr.HasField("g"):
            yield attr.g
        yield from attr.graphs


def iter_graphs(graph: GraphProto) -> Iterator[GraphProto]:
    """``graph`` and every subgraph nested in its nodes' attributes, depth first."""
    yield graph
    for node in graph.node:
        for sub in _node_graphs(node):
            yield from iter_graphs(sub)


def _roots(model: onnx.ModelProto) -> list[GraphProto]:
    """The model's top-level graphs: the main graph and its training-info graphs."""
    roots: list[GraphProto] = [model.graph]
    for info in model.training_info:
        roots += [info.initialization, info.algorithm]
    return roots


def _all_nodes(model: onnx.ModelProto) -> Iterator[tuple[str, NodeProto]]:
    """Every node: of the main graph and its subgraphs, of local functions (and their
    subgraphs), of training-info graphs; with the name of the graph that holds it."""
    for root in _roots(model):
        for g in iter_graphs(root):
            for node in g.node:
                yield g.name, node
    for fn in model.functions:
        for node in fn.node:
            yield f"function {fn.name}", node
            for sub in _node_graphs(node):
                for g in iter_graphs(sub):
                    for inner in g.node:
                        yield g.name, inner


def iter_tensors(model: onnx.ModelProto) -> Iterator[tuple[str, TensorProto]]:
    """Every tensor stored in the model, with where it sits: initializers and sparse
    initializers of every graph, and tensor attributes (``Constant`` values included)."""
    for root in _roots(model):
        for g in iter_graphs(root):
            for t in g.initializer:
                yield f"initializer of graph {g.name!r}", t
            for sp in g.sparse_initializer:
                yield f"sparse initializer of graph {g.name!r}", sp.values
                yield f"sparse initializer of graph {g.name!r}", sp.indices
    for where, node in _all_nodes(model):
        for attr in node.attribute:
            place = f"attribute {attr.name!r} of node {node.name or node.op_type!r} in {where!r}"
            if attr.HasField("t"):
                yield place, attr.t
            for t in attr.tensors:
                yield place, t
            sparse = [attr.sparse_tensor] if attr.HasField("sparse_tensor") else []
            for sp in [*sparse, *attr.sparse_tensors]:
                yield place, sp.values
                yield place, sp.indices


def refuse_external_data(model: onnx.ModelProto, path: Path, fix: str = "") -> None:
    for where, t in iter_tensors(model):
        if t.data_location == TensorProto.EXTERNAL or len(t.external_data):
            location = next((e.value for e in t.external_data if e.key == "location"), "?")
            raise AtlasError(
                f"model {path}: uses external data (.onnx.data): tensor {t.name!r}, "
                f"{where}, points to {location!r}; expected one self-contained file"
                + (f": {fix}" if fix else "")
            )


def refuse_custom_domains(model: onnx.ModelProto, path: Path) -> None:
    domains = {op.domain for op in model.opset_import}
    domains |= {node.domain for _, node in _all_nodes(model)}
    if domains - STANDARD_DOMAINS:
        raise AtlasError(
            f"model {path}: operator domain(s) {sorted(domains - STANDARD_DOMAINS)}; "
            "expected only the standard ONNX domain"
        )


def check_model(model: onnx.ModelProto, path: Path, external_fix: str = "") -> None:
    """Everything a parsed model must pass before onnxruntime sees it (see the module doc);
    ``external_fix`` ends the external-data message (how to save the model as one file)."""
    refuse_external_data(model, path, external_fix)
    refuse_custom_domains(model, path)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # ValidationError, InferenceError, and what protobuf raises
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise AtlasError(f"model {path}: fails onnx.checker's full check ({first})") from None


def check_latent_dim(latent_dim: int, path: Path) -> None:
    """Refuse a declared latent dimension above ``MAX_LATENT_DIM``: buffers are sized from it."""
    if latent_dim > MAX_LATENT_DIM:
        raise AtlasError(
            f"model {path}: latent dimension {latent_dim}, expected at most {MAX_LATENT_DIM}"
        )


# A Sigmoid computed in float32 can round to 1 + 2⁻²³: rounding, not a decoder outside [0, 1]
# (the same slack as toolkit.atlas; such values pass as they are).
PIXEL_SLACK = 1e-6


def check_decoded_range(images: np.ndarray, path: Path) -> np.ndarray:
    """The one rule for decoder outputs, for every command: pixel values in [0, 1] (within
    ``PIXEL_SLACK``). Values outside (logits, an unbounded last layer) are refused, never
    clipped for a picture while the metrics refuse them. Returns ``images`` unchanged."""
    if images.size == 0:
        return images
    lo, hi = float(np.min(images)), float(np.max(images))
    if not (lo >= -PIXEL_SLACK and hi <= 1.0 + PIXEL_SLACK):  # also catches NaN
        raise AtlasError(
            f"model {path}: decoded pixel values in [{lo:.4g}, {hi:.4g}], expected [0, 1]; "
            "end the decoder with a Sigmoid (see docs/models.md)"
        )
    return images


# onnxruntime's words for an allocation that failed (its arena, the C++ runtime, the OS)
_OUT_OF_MEMORY = re.compile(r"Failed to allocate|bad_alloc|out of memory|Cannot allocate", re.I)
_REQUESTED = re.compile(r"buffer of size (\d+)")


def run_error(exc: BaseException, where: str, rows: int, what: str) -> AtlasError:
    """One line for a run on ``rows`` rows that raised ``exc``, of the model ``where`` names
    ("model PATH"): memory when an allocation failed (with the size asked for, when
    onnxruntime says it), else the runtime's first line and the batch contract."""
    text = str(exc).strip()
    first = (text.splitlines() or [type(exc).__name__])[0][:200]
    if isinstance(exc, MemoryError) or _OUT_OF_MEMORY.search(text):
        size = _REQUESTED.search(text)
        asked = f" (it asked for {int(size.group(1)) / 1e9:.3g} GB at once)" if size else ""
        return AtlasError(
            f"{where}: out of memory on a batch of {rows}{asked}; expected a model whose "
            "tensors fit in this machine's memory: lower --batch-size, or look in the graph "
            "for a node that builds a huge tensor (ConstantOfShape, Expand, Tile, Resize)"
        )
    return AtlasError(
        f"{where}: {what} on a batch of {rows} ({first}); expected a model that runs on "
        "any batch size (see docs/models.md)"
    )
