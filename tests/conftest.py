"""Shared fixtures, and how the suite stays fast (issue 25).

Keeping a new test fast and safe under pytest-xdist (`make test` runs
``pytest -n auto --dist loadgroup``: the tests of one run are spread over one process per
core, in any order, each process with its own session):

- A unit test takes well under a second: make the data in the test (a few images, a toy ONNX
  model from tests/toy_onnx.py), not the real dataset or a trained model. Anything slower is
  ``@pytest.mark.slow`` (and ``real_data`` if it reads the real data or shipped artifacts); the
  run ends with the ten slowest tests: look there after adding one.
- Write only under ``tmp_path`` / ``tmp_path_factory``: another process may be running any
  other test at the same moment. No fixed output path, no ``os.chdir`` (``monkeypatch.chdir``),
  no environment variable or module global left changed (``monkeypatch``).
- Something costly that several tests read (a trained or exported model, a report, a wheel)
  is one fixture with ``scope="session"`` or ``"module"``, built once per process. If it costs
  more than a few seconds, add it to ``COSTLY_FIXTURES`` below: every test that uses it then
  runs in the same process (an ``xdist_group``), so it is built once per run, not once per
  process. Tests that must not overlap with each other (one Ray instance, one machine-wide
  resource) share a group the same way.
- A test that needs more of the same to be thorough (more random points, more seeds) runs a
  small number by default and the rest under ``@pytest.mark.exhaustive`` (opt-in: ``pytest -m
  exhaustive``), as the SIGTERM points in tests/test_output_safety.py do.
- Long tests run first (tests marked slow, and the groups, are sent out before the rest), so
  that no process is left alone with a long test at the end of the run.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from latent_atlas.toolkit.data import (
    DEFAULT_DATA_DIR,
    FASHION_MNIST_CLASSES,
    ImageDataset,
    Split,
)
from toy_onnx import linear_decoder, linear_encoder, prototype_classifier, region_decoder

from latent_atlas.shipped import shipped

REPO = Path(__file__).resolve().parent.parent
SHIPPED = shipped("fashion-mnist")


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file (magic 0x0000080<ndim>, big-endian dims)."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_folder(folder: Path, n_train: int = 12, n_test: int = 6, gz: bool = True) -> Path:
    """Four tiny IDX files of Fashion-MNIST's layout, with a deterministic pattern."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            raw = idx_bytes(arr)
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
    return folder


@pytest.fixture(scope="session")
def real_data():
    from latent_atlas.toolkit.data import load_dataset

    folder = Path(os.environ.get("LATENT_ATLAS_DATA", DEFAULT_DATA_DIR))
    if not folder.is_dir():
        pytest.fail(f"real Fashion-MNIST missing in {folder}: run `make test` (it installs it)")
    return load_dataset(folder)


@pytest.fixture(scope="session")
def real_report(tmp_path_factory, real_data):
    """`make report`'s report, written once per run through the CLI's defaults: the shipped
    VAE vs AE with their shipped seeds as groups and the seed study (the browser tests, the
    README's quoted figures and the explorer's shipped-model test all read it)."""
    from latent_atlas.cli import main

    out = tmp_path_factory.mktemp("report")
    assert main(["report", "--out", str(out), "--no-progress"]) == 0
    return out / "vae-vs-ae"


@pytest.fixture(scope="session")
def toy(tmp_path_factory):
    """Ten random prototypes (one per class), test images = prototypes + noise, a prototype
    classifier, and model folders whose decoders are known functions of z."""
    root = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(0)
    protos = rng.random((10, 28, 28)).astype(np.float32)
    labels = np.repeat(np.arange(10), 20).astype(np.uint8)
    noisy = np.clip(protos[labels] + rng.normal(0, 0.05, (200, 28, 28)), 0, 1)
    images = ((noisy * 255).round() / 255).astype(np.float32)[:, None]  # [200, 1, 28, 28]
    test = Split(images, labels.astype(np.int64))
    data = ImageDataset("toy", test, test, FASHION_MNIST_CLASSES, "0" * 64, str(root))
    prototype_classifier(root / "classifier.onnx", protos)
    projection = rng.normal(0, 0.1, (784, 2))
    folders = {}
    for name, make in {
        "linear": lambda p: linear_decoder(p, np.array([0.05, 0.0]), 0.5),
        "regions": lambda p: region_decoder(p, protos[0], protos[1], split=0.0),
        "constant": lambda p: linear_decoder(p, np.array([0.0, 0.0]), 0.3),
    }.items():
        folder = root / name
        linear_encoder(folder / "encoder.onnx", projection)
        make(folder / "decoder.onnx")
        folders[name] = folder
    return {"root": root, "data": data, "protos": protos, **folders}


def toy_analysis(**changes):
    """An AnalysisConfig sized for the toy models and data (a few hundred test images): one
    5×5 grid, 300 samples, small trustworthiness and silhouette subsets; ``changes`` on top."""
    from latent_atlas.toolkit.grid import GridSpec

    from latent_atlas.pipeline import AnalysisConfig

    sizes = {"grids": (GridSpec(steps=(5, 5)),), "n_samples": 300, "trust_sample": 100,
             "silhouette_sample": 200}  # fmt: skip
    return AnalysisConfig(**{**sizes, **changes})


# The sizes :func:`lean_analysis` lowers (AnalysisConfig fields), and the same for a test's
# own ``python -c`` script: LEAN_PRELUDE, put before the script's first use of the CLI.
LEAN = {"atlas_steps": 32, "geometry_graph": 16, "n_samples": 2000, "tsne_points": 500}
LEAN_PRELUDE = f"""
from dataclasses import replace as _replace
from latent_atlas.commands import flags as _flags
_full = _flags.analysis_config
_flags.analysis_config = lambda args: _replace(_full(args), **{LEAN!r})
"""
# a whole script: the CLI at the lean sizes, its arguments after `python -c LEAN_MAIN`
LEAN_MAIN = "import sys\nfrom latent_atlas.cli import main\n" + LEAN_PRELUDE
LEAN_MAIN += "sys.exit(main(sys.argv[1:]))\n"


@contextlib.contextmanager
def lean_analysis() -> Iterator[None]:
    """The CLI's analysis settings at smaller sizes of what is costly and only measured, not
    shown differently: atlas 32², geodesic graph and explorer geometry 16², 2 000 decoded
    samples, t-SNE of 500 codes; every section is still computed and written. For a report
    through the CLI whose test checks something other than those measures (which sections,
    figures and pages it writes, how it fails). ``make report``'s report keeps the defaults."""
    from dataclasses import replace

    from latent_atlas.commands import flags

    full = flags.analysis_config

    def lean(args):
        return replace(full(args), **LEAN)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(flags, "analysis_config", lean)
        yield


@pytest.fixture
def lean_cli_analysis():
    """:func:`lean_analysis` for one test."""
    with lean_analysis():
        yield


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance with two CPUs, as a user's laptop "cluster" (the engine leaves a
    connection it did not open running)."""
    import ray

    from latent_atlas.engine import keeping_signal_handlers

    with keeping_signal_handlers():  # other tests in this worker expect SIGTERM's default
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 object_store_memory=200 * 2**20)  # fmt: skip
    yield ray
    with keeping_signal_handlers():
        ray.shutdown()


# -------------------------------------------------------------------------- xdist and speed
# fixture (by name, anywhere in a test's fixture closure) → xdist group: every test using it
# runs in one process, which builds it once per run
COSTLY_FIXTURES = {
    "real_report": "real-report",  # `make report`'s report: the pair, its seeds, the study
    "fashion_three_ways": "fashion-three-ways",  # 16 000 PNGs and an .npz (test_data.py)
    "wheel": "wheel",  # a built wheel (test_packaging.py)
    "report": "group-report",  # a report of 2 × 3 seeds (test_group_reports.py)
    # one Ray instance per run; the sweep the Ray sweep is compared with comes along
    "ray_local": "ray",
    "local_sweep": "ray",
}


@pytest.fixture(autouse=True, scope="session")
def _torch_threads_per_worker() -> Iterator[None]:
    """Under xdist, torch gets this process's share of the cores: two workers with two torch
    threads each on two cores spin-wait for each other (see tests/one_thread.py)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    yield
    torch.set_num_threads(threads)


def _is_slow(item: pytest.Item) -> bool:
    return item.get_closest_marker("slow") is not None


# tryfirst: before xdist's own hook, which turns each xdist_group mark into its node id
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # opt-in: the exhaustive tests run only when the -m expression names them
    if "exhaustive" not in (config.option.markexpr or ""):
        skipped = [i for i in items if i.get_closest_marker("exhaustive")]
        if skipped:
            config.hook.pytest_deselected(items=skipped)
            items[:] = [i for i in items if not i.get_closest_marker("exhaustive")]
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        for name in getattr(item, "fixturenames", ()):
            if name in COSTLY_FIXTURES:
                item.add_marker(pytest.mark.xdist_group(COSTLY_FIXTURES[name]))
                break
    # in an xdist worker only (a plain run keeps each module's tests together, for its
    # module-scoped fixtures): the groups and the slow tests first, the same order in every
    # worker (a stable sort: the collection order within each class)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda i: 0 if _is_slow(i) or i.get_closest_marker("xdist_group") else 1)
