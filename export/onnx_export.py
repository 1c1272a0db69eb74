"""One torch module → one single-file ONNX model, with the checks that make the file a
contract: a symbolic batch dimension, no external data anywhere, ``onnx.checker`` full check,
onnxruntime-vs-torch parity at batch sizes 1, 7 and 513, metadata inside the model.

The two pitfalls of ``torch.onnx.export``'s defaults in torch 2.14 (``dynamo=True``) and how
they are avoided here: given a file name it writes the weights to a separate ``.onnx.data``
file (we never hand it a file name: the model comes back in memory and is serialised as one
protobuf), and without ``dynamic_shapes`` it fixes the batch dimension to the example's size
(we always declare dimension 0 dynamic, then check every input and output for it).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from latent_atlas.toolkit.atomic import write_bytes, write_json
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.models import Autoencoder
from latent_atlas.toolkit.runtime import sha256_file
from latent_atlas.toolkit.train import torch_threads

PARITY_BATCHES = (1, 7, 513)
MAX_MODEL_BYTES = 2**31 - 1  # protobuf's limit: one ONNX file cannot hold more


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}"


def to_onnx(
    module: torch.nn.Module, example: torch.Tensor, input_name: str, output_names: list[str]
) -> onnx.ModelProto:
    """Export with the dynamo exporter, batch dimension dynamic, weights inside the proto."""
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            input_names=[input_name],
            output_names=output_names,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            optimize=True,
            verbose=False,
        )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto


def export_graph(
    module: torch.nn.Module,
    example: torch.Tensor,
    input_name: str,
    output_names: list[str],
    name: str,
) -> onnx.ModelProto:
    """``to_onnx``, with a module the exporter cannot capture turned into one line.

    There is deliberately no fallback to the TorchScript exporter: a trace bakes in whichever
    branch of data-dependent Python control flow the example took, and parity on a few
    batches need not notice."""  # fmt: skip
    try:
        return to_onnx(module, example, input_name, output_names)
    except Exception as exc:  # torch.export raises many types for modules it cannot capture
        raise AtlasError(
            f"{name}: torch.onnx.export could not export the module ({_first_line(exc)}); "
            "expected a module that torch.export can capture (e.g. no Python control flow "
            "that depends on tensor values)"
        ) from None


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph in it (If/Loop/Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                yield from _graphs(sub)


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    for g in _graphs(graph):
        yield from g.initializer
        for sparse in g.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors


def check_single_file(model: onnx.ModelProto, name: str) -> None:
    """Refuse a proto that would not fit in one file: external tensors anywhere, or > 2 GiB."""
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _tensors(model.graph)):
        raise AtlasError(
            f"{name}: the exported graph keeps tensors in external data (.onnx.data); "
            "expected one self-contained file"
        )
    if model.ByteSize() > MAX_MODEL_BYTES:
        raise AtlasError(
            f"{name}: {model.ByteSize() / 2**30:.1f} GiB, over ONNX's 2 GiB single-file limit "
            "(protobuf); expected a smaller model"
        )


def check_dynamic_batch(model: onnx.ModelProto, name: str) -> None:
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if not dims or not dims[0].dim_param or dims[0].dim_value:
            size = dims[0].dim_value if dims else "none"
            raise AtlasError(
                f"{name}: {value.name!r} has a fixed batch size {size}; "
                "expected a symbolic dimension 0 (does the module reshape to a constant batch, "
                "e.g. x.view(3, -1)? use x.flatten(1) or x.view(x.shape[0], -1))"
            )


def _run_torch(module: torch.nn.Module, x: np.ndarray, name: str) -> list[np.ndarray]:
    try:
        with torch.no_grad():
            ref = module(torch.from_numpy(x))
    except Exception as exc:
        raise AtlasError(
            f"{name}: the torch module fails on a batch of {len(x)} ({_first_line(exc)}); "
            "expected any batch size to work"
        ) from None
    return [t.numpy() for t in (ref if isinstance(ref, tuple) else (ref,))]


def session_for(model: onnx.ModelProto, name: str, threads: int = 0) -> ort.InferenceSession:
    """An onnxruntime CPU session over the proto's bytes (no file, no external data);
    ``threads`` 0: onnxruntime's default."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(
            model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise AtlasError(
            f"{name}: onnxruntime refused the exported model ({_first_line(exc)})"
        ) from None


def check_parity(
    model: onnx.ModelProto,
    module: torch.nn.Module,
    inputs: np.ndarray,
    name: str,
    atol: float,
    rtol: float,
) -> dict[str, float]:
    """Compare onnxruntime (CPU) with torch at batch sizes 1, 7 and 513: max |Δ| per size.

    Both run on one thread, so the figures (written into the card) do not depend on how many
    threads the exporting process happens to have: a sweep's card is the same bytes whether a
    local worker or a Ray worker exported it."""
    session = session_for(model, name, threads=1)
    feed = session.get_inputs()[0].name
    with torch_threads(1):
        return _parity(session, feed, module, inputs, name, atol, rtol)


def _parity(
    session: ort.InferenceSession,
    feed: str,
    module: torch.nn.Module,
    inputs: np.ndarray,
    name: str,
    atol: float,
    rtol: float,
) -> dict[str, float]:
    report = {}
    for n in PARITY_BATCHES:
        x = inputs[:n]
        refs = _run_torch(module, x, name)
        try:
            outs = session.run(None, {feed: x})
        except Exception as exc:
            raise AtlasError(
                f"{name}: onnxruntime fails on a batch of {n} ({_first_line(exc)})"
            ) from None
        worst = 0.0
        for r, o in zip(refs, outs, strict=True):
            if r.shape != o.shape:
                raise AtlasError(f"{name}: onnxruntime shape {o.shape} != torch {r.shape} at N={n}")
            if not (np.isfinite(r).all() and np.isfinite(o).all()):
                raise AtlasError(f"{name}: NaN or inf in the outputs at batch {n}")
            if not np.allclose(o, r, atol=atol, rtol=rtol):
                raise AtlasError(
                    f"{name}: onnxruntime differs from torch by {np.abs(o - r).max():.3g} at "
                    f"batch {n}; expected within atol {atol} + rtol {rtol}"
                )
            worst = max(worst, float(np.abs(o - r).max()))
        report[str(n)] = worst
    return report


def strip_debug_info(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop what the exporter records per node and value (``pkg.torch.onnx.stack_trace`` with
    absolute source paths and line numbers, class and FX-node names, doc strings): it leaks
    the exporting machine's paths and makes the same weights export to different bytes from
    another checkout or after an edit elsewhere in the file. The graph and weights stay."""
    for graph in _graphs(model.graph):
        for item in [*graph.node, *graph.input, *graph.output, *graph.value_info,
                     *graph.initializer]:  # fmt: skip
            del item.metadata_props[:]
            item.doc_string = ""
        del graph.metadata_props[:]
        graph.doc_string = ""
    return model


def with_metadata(model: onnx.ModelProto, meta: dict[str, str]) -> onnx.ModelProto:
    del model.metadata_props[:]
    for key, value in sorted(meta.items()):
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "latent-atlas"
    return model


def export_one(
    module: torch.nn.Module,
    example_inputs: np.ndarray,
    input_name: str,
    output_names: list[str],
    meta: dict[str, str],
    path: Path,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> dict[str, Any]:
    """Export, check (single file, dynamic batch, checker, parity) and write one model.

    ``example_inputs`` holds at least 513 rows (the largest parity batch); the export traces
    the first three. Returns the card's entry for the file.
    """
    name = str(path)
    model = export_graph(
        module, torch.from_numpy(example_inputs[:3]), input_name, output_names, name
    )
    check_single_file(model, name)
    check_dynamic_batch(model, name)
    model = with_metadata(strip_debug_info(model), meta)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise AtlasError(f"{name}: onnx.checker failed: {str(exc).splitlines()[0]}") from None
    parity = check_parity(model, module, example_inputs, name, atol, rtol)
    write_bytes(path, model.SerializeToString())
    return {"file": path.name, "sha256": sha256_file(path), "parity_max_abs_diff": parity}


def write_manifest(out: Path) -> Path:
    """``manifest.json`` with the sha256 of every file under ``out`` (paths relative to it)."""
    files = {
        str(p.relative_to(out)): sha256_file(p)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "manifest.json" and not p.name.startswith(".")
    }
    # "tool": only a manifest written by latent-atlas is read back (toolkit.runtime)
    return write_json(out / "manifest.json", {"tool": "latent-atlas", "files": files})


def torch_decoder_from_onnx(path: Path) -> torch.nn.Module:
    """Rebuild the torch decoder behind one of our decoder.onnx files from its metadata and
    initializers (the exporter keeps the state-dict names), for the torch baselines of
    ``latent-atlas bench``."""
    from latent_atlas.toolkit.models import AutoencoderConfig
    from latent_atlas.toolkit.runtime import read_onnx

    model = read_onnx(path)
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("role") != "decoder" or "architecture" not in meta:
        raise AtlasError(f"model {path}: not a latent-atlas decoder (metadata role/architecture)")
    weights = {i.name: torch.from_numpy(onnx.numpy_helper.to_array(i).copy())
               for i in model.graph.initializer}  # fmt: skip
    latent_dim = int(meta["latent_dim"])
    hidden = 2 * int(weights["0.weight"].shape[0])
    c, h, w = (int(n) for n in meta.get("image_shape", "1,28,28").split(","))
    cfg = AutoencoderConfig(
        meta.get("kind", "vae"), meta["architecture"], latent_dim, hidden, image_shape=(c, h, w)
    )
    decoder = Autoencoder(cfg).decoder
    state = {k: v for k, v in weights.items() if k in decoder.state_dict()}
    decoder.load_state_dict(state, strict=True)
    return decoder.eval()
