"""The explorer writer (``latent_atlas.explorer``) and its vendored runtime
(``latent_atlas.ortweb``), on toy models: what goes into the page, what is refused. The page
itself runs in Chromium in ``test_explorer_browser.py``."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import toy_analysis
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec, Plane
from latent_atlas.toolkit.runtime import load_model
from toy_onnx import linear_decoder, prototype_classifier, region_decoder

from latent_atlas import ortweb
from latent_atlas.explorer import (
    ClassMap,
    ExplorerModel,
    OnnxFile,
    class_map,
    explorer_model,
    page_data,
    relative_runtime,
    write_explorer,
)

NAMES = tuple(f"class {k}" for k in range(10))


def axes_plane(d: int = 2, axes=(0, 1), fixed: tuple[float, ...] = ()) -> Plane:
    return GridSpec(axes=axes, fixed=fixed or "prior").resolve_plane(d)


def _decoder_file(path: Path, shape=(1, 28, 28), layout="NCHW") -> OnnxFile:
    return OnnxFile(path, "z", "image", layout, shape)


def _page_json(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', html)
    assert found
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    """Decoder: prototype 0 where z₁ < 0, prototype 1 where z₁ >= 0; a prototype classifier."""
    root = tmp_path_factory.mktemp("explorer")
    rng = np.random.default_rng(3)
    protos = rng.random((10, 28, 28)).astype(np.float32)
    decoder = load_model(region_decoder(root / "dec.onnx", protos[0], protos[1]), "decoder")
    classifier = load_model(prototype_classifier(root / "clf.onnx", protos), "classifier")
    return root, decoder, classifier


# ---------------------------------------------------------------------------- planes
def test_plane_points_round_once_like_the_page():
    """The page computes z = (origin + u·b₀) + v·b₁ in float64 and rounds once to float32;
    Python's plane (what the reference decodes at) must do exactly the same, tilted planes too."""
    plane = Plane("pca", np.array([0.1, 0.2, 0.3]), np.array([[0.3, 0.7, 0.1], [1 / 3, 0.0, 2.0]]),
                  ("PC1", "PC2"))  # fmt: skip
    u, v = 0.123456789, -1.987654321
    expected = [np.float32((o + u * b0) + v * b1) for o, b0, b1 in zip(*[plane.origin,
                *plane.basis], strict=True)]  # fmt: skip
    np.testing.assert_array_equal(plane.points(np.array([u]), np.array([v]))[0], expected)
    z = axes_plane(4, (1, 3), (0.5, 9.0, -2.0, 9.0)).points(np.array([1.25]), np.array([0.1]))
    np.testing.assert_array_equal(z, np.float32([[0.5, 1.25, -2.0, 0.1]]))


# ---------------------------------------------------------------------------- class map
def test_class_map_known_answer(regions):
    """The region decoder draws prototype 1 exactly where z₁ >= 0: the classifier's map is
    class 1 on those columns and class 0 on the others (a column at z₁ = 0 is class 1)."""
    _, decoder, classifier = regions
    spec = GridSpec()
    plane = spec.resolve_plane(2)
    cmap = class_map(decoder, classifier, spec, plane, (-4.0, 4.0), (-3.0, 5.0), steps=(9, 5))
    assert cmap is not None and cmap.labels.shape == (5, 9)
    x = np.linspace(-4, 4, 9)
    np.testing.assert_array_equal(cmap.labels, np.tile((x >= 0).astype(int), (5, 1)))
    assert cmap.confidence is not None and cmap.confidence.min() > 0.99
    assert cmap.x_range == (-4.0, 4.0) and cmap.y_range == (-3.0, 5.0)
    assert "9×5" in cmap.source and "classifier" in cmap.source


def test_class_map_without_a_classifier_comes_from_the_nearest_embeddings(regions):
    _, decoder, _ = regions
    emb = np.array([[-2.0, 0.0], [-2.5, 1.0], [-1.5, -1.0], [2.0, 0.0], [2.5, 1.0], [1.5, -1.0]])
    labels = np.array([4, 4, 4, 7, 7, 7])
    spec = GridSpec()
    cmap = class_map(decoder, None, spec, spec.resolve_plane(2), (-4.0, 4.0), (-1.0, 1.0), emb,
                     labels, steps=(8, 3), knn_k=3)  # fmt: skip
    assert cmap is not None and cmap.confidence is None and "3 nearest" in cmap.source
    x = np.linspace(-4, 4, 8)
    np.testing.assert_array_equal(cmap.labels, np.tile(np.where(x < 0, 4, 7), (3, 1)))
    assert class_map(decoder, None, spec, spec.resolve_plane(2), (-1, 1), (-1, 1)) is None


def test_explorer_model_subsamples_embeddings_reproducibly(regions):
    _, decoder, classifier = regions
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(300, 2))
    labels = rng.integers(0, 10, 300)
    spec = GridSpec(x_range=(-3.0, 2.0))
    kw = dict(steps=(4, 4), max_points=100, geometry_steps=0)  # geometry: tested below
    a = explorer_model("A", decoder, classifier, spec, emb, labels, **kw)
    b = explorer_model("A", decoder, None, spec, emb, labels, **kw)
    assert a.embeddings is not None and a.embedding_labels is not None
    assert a.embeddings.shape == (100, 2) and a.embeddings_total == 300
    np.testing.assert_array_equal(a.embeddings, b.embeddings)  # same seed, same points
    # every point is one of the embeddings, with its own label
    idx = [int(np.flatnonzero((emb == p).all(axis=1))[0]) for p in a.embeddings]
    np.testing.assert_array_equal(labels[idx], a.embedding_labels)
    assert a.atlas is not None and "classifier" in a.atlas.source
    assert b.atlas is not None and "nearest" in b.atlas.source
    assert a.x_range == (-3.0, 2.0) and a.y_range == (-4.0, 4.0)
    assert a.decoder.sha256 == decoder.sha256 and a.decoder.input_name == "z"


def test_explorer_model_on_the_auto_range_and_a_pca_plane(regions):
    """The plane and range come from the spec as the report's grids resolve them."""
    _, decoder, _ = regions
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(500, 2)) * [3.0, 0.5] + [1.0, -2.0]
    spec = GridSpec(mode="auto", plane="pca")
    m = explorer_model("A", decoder, None, spec, emb, np.zeros(500, np.int64), steps=(4, 4),
                       geometry_steps=0)  # fmt: skip
    plane = spec.resolve_plane(2, emb)
    x, y = spec.coordinates(emb, plane)
    np.testing.assert_array_equal(m.plane.basis, plane.basis)
    assert m.x_range == (x[0], x[-1]) and m.y_range == (y[0], y[-1])
    assert m.plane.labels == ("PC1", "PC2")


# ---------------------------------------------------------------------------- page data
def _model(name: str, path: Path, **kw) -> ExplorerModel:
    labels = np.array([[0, 1], [2, 9]])
    return ExplorerModel(
        name, _decoder_file(path), 2, axes_plane(), (-4.0, 4.0), (-2.0, 2.0),
        ClassMap((-4.0, 4.0), (-2.0, 2.0), labels, np.array([[0.5, 1.0], [0.0, 0.25]])),
        np.array([[0.5, -1.0], [3.0, 1.5]]), np.array([3, 7]), 10, **kw,
    )  # fmt: skip


def test_page_data_holds_each_file_once_and_decodes_back(tmp_path):
    dec = linear_decoder(tmp_path / "dec.onnx", np.array([0.1, -0.1]), 0.5, sigmoid=True)
    clf = prototype_classifier(tmp_path / "clf.onnx", np.random.default_rng(0).random((10, 784)))
    clf_file = OnnxFile(clf, "image", "logits", "NCHW", (1, 28, 28))
    data, blobs = page_data([_model("A", dec), _model("B", dec)], clf_file, NAMES)
    assert [d for d, _ in blobs] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in (dec, clf)]
    assert [m["decoder"]["blob"] for m in data["models"]] == [0, 0]
    assert data["classifier"]["blob"] == 1 and data["classifier"]["output"] == "logits"
    a = data["models"][0]["atlas"]
    assert (a["nx"], a["ny"]) == (2, 2) and data["labelBytes"] == 1
    assert list(base64.b64decode(a["labels"])) == [0, 1, 2, 9]
    assert list(base64.b64decode(a["confidence"])) == [128, 255, 0, 64]
    e = data["models"][0]["embeddings"]
    assert np.frombuffer(base64.b64decode(e["xy"]), "<f4").tolist() == [0.5, -1.0, 3.0, 1.5]
    assert list(base64.b64decode(e["labels"])) == [3, 7] and (e["n"], e["of"]) == (2, 10)
    assert data["classes"][0] == {"name": "class 0", "color": "#1f77b4"}  # tab10, as the plots


def test_page_data_many_classes_travel_as_uint16(tmp_path):
    dec = linear_decoder(tmp_path / "dec.onnx", np.array([0.1, -0.1]), 0.5)
    names = [f"c{k}" for k in range(300)]
    m = ExplorerModel("A", _decoder_file(dec), 2, axes_plane(), (-1, 1), (-1, 1),
                      ClassMap((-1, 1), (-1, 1), np.array([[0, 299], [256, 1]])))  # fmt: skip
    data, _ = page_data([m], None, names)
    assert data["labelBytes"] == 2
    raw = base64.b64decode(data["models"][0]["atlas"]["labels"])
    assert np.frombuffer(raw, "<u2").tolist() == [0, 299, 256, 1]


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda p: p.write_bytes(p.read_bytes() + b"\0"), "changed since"),
        (lambda p: p.unlink(), "unreadable"),
    ],
)
def test_a_model_file_changed_after_analysis_is_refused(tmp_path, change, match):
    dec = linear_decoder(tmp_path / "dec.onnx", np.array([0.1, -0.1]), 0.5)
    digest = hashlib.sha256(dec.read_bytes()).hexdigest()
    m = ExplorerModel("A", OnnxFile(dec, "z", "image", "NCHW", (1, 28, 28), digest), 2,
                      axes_plane(), (-1, 1), (-1, 1))  # fmt: skip
    page_data([m], None, NAMES)  # unchanged: fine
    change(dec)
    with pytest.raises(AtlasError, match=match):
        page_data([m], None, NAMES)


def test_bad_inputs_are_refused(tmp_path):
    dec = linear_decoder(tmp_path / "dec.onnx", np.array([0.1, -0.1]), 0.5)
    with pytest.raises(AtlasError, match="C 1 .grayscale. or 3"):
        OnnxFile(dec, "z", "image", "NCHW", (2, 28, 28))
    with pytest.raises(AtlasError, match="layout"):
        OnnxFile(dec, "z", "image", "CHWN", (1, 28, 28))
    with pytest.raises(AtlasError, match="expected 0..1 .2 class names"):
        page_data([_model("A", dec)], None, ("a", "b"))  # class 9 of 2 names
    clf = OnnxFile(dec, "image", "logits", "NCHW", (3, 32, 32))
    with pytest.raises(AtlasError, match="classifier takes"):
        page_data([_model("A", dec)], clf, NAMES)
    with pytest.raises(AtlasError, match="repeat"):
        write_explorer(tmp_path / "out", [_model("A", dec), _model("A", dec)], NAMES)
    with pytest.raises(AtlasError, match="no models"):
        write_explorer(tmp_path / "out", [], NAMES)
    with pytest.raises(AtlasError, match="plane of shape"):
        ExplorerModel("A", _decoder_file(dec), 3, axes_plane(), (-1, 1), (-1, 1))
    with pytest.raises(AtlasError, match="range"):
        ExplorerModel("A", _decoder_file(dec), 2, axes_plane(), (1, 1), (-1, 1))
    with pytest.raises(AtlasError, match="one label per embedding"):
        ExplorerModel("A", _decoder_file(dec), 2, axes_plane(), (-1, 1), (-1, 1),
                      embeddings=np.zeros((3, 2)), embedding_labels=np.zeros(2))  # fmt: skip
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- the page
def test_write_explorer_writes_the_page_and_its_runtime(tmp_path):
    dec = linear_decoder(tmp_path / "dec.onnx", np.array([0.1, -0.1]), 0.5)
    names = ("T-shirt", 'say "<b>hi</b>" & </script>')  # user text, escaped everywhere
    m = ExplorerModel("<VAE>", _decoder_file(dec), 2, axes_plane(), (-4, 4), (-4, 4),
                      ClassMap((-4, 4), (-4, 4), np.array([[0, 1], [1, 0]])))  # fmt: skip
    page = write_explorer(tmp_path / "out", [m], names, title="t & <t>")
    html = page.read_text()
    assert page == tmp_path / "out" / "explore.html"
    assert sorted(p.name for p in (tmp_path / "out" / ortweb.FOLDER).iterdir()) == sorted(
        ortweb.runtime_files()
    )
    assert "<b>hi</b>" not in html and "<VAE>" not in html and '</script>"' not in html
    data = _page_json(html)
    assert data["classes"][1]["name"] == names[1] and data["models"][0]["name"] == "<VAE>"
    # everything the page loads is relative: no scheme, no absolute path
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert refs == ["report.html", "explorer-runtime/ort.wasm.min.js",
                    "explorer-runtime/ort-wasm.js"]  # fmt: skip
    assert "http:" not in html and "https:" not in html
    blob = re.search(r'id="onnx-0" data-sha256="([0-9a-f]+)">([^<]*)<', html)
    assert blob and base64.b64decode(blob.group(2)) == dec.read_bytes()
    assert blob.group(1) == hashlib.sha256(dec.read_bytes()).hexdigest()


def test_a_shared_runtime_is_referred_to_not_copied(tmp_path):
    dec = linear_decoder(tmp_path / "dec.onnx", np.array([0.1, -0.1]), 0.5)
    m = ExplorerModel("A", _decoder_file(dec), 2, axes_plane(), (-4, 4), (-4, 4))
    batch = tmp_path / "batch out"
    ortweb.write_runtime(batch / ortweb.FOLDER)
    for name in ("one", "two"):
        rel = relative_runtime(batch / name, batch / ortweb.FOLDER)
        assert rel == "../explorer-runtime"
        write_explorer(batch / name, [m], NAMES, runtime=rel, report=None)
        assert not (batch / name / ortweb.FOLDER).exists()
        assert (
            'src="../explorer-runtime/ort-wasm.js"' in (batch / name / "explore.html").read_text()
        )
    assert relative_runtime(tmp_path / "a b", tmp_path / "rt #1") == "../rt%20%231"


# ---------------------------------------------------------------------------- the runtime
def test_vendored_runtime_is_the_published_one():
    """The written runtime holds the published bytes: the script (less its source-map line),
    the Emscripten glue as text and the WebAssembly binary, gzip + base64."""
    files = ortweb.runtime_files()
    script = files["ort.wasm.min.js"]
    published = (ortweb.VENDOR / "ort.wasm.min.js").read_bytes()
    assert published.startswith(script.rstrip(b"\n")) and b"sourceMappingURL" not in script
    assert b"ONNX Runtime Web v" + ortweb.VERSION.encode() in script
    body = files["ort-wasm.js"].decode()
    assert body.startswith("globalThis.LATENT_ATLAS_ORT = ") and body.endswith(";\n")
    runtime = json.loads(body[len("globalThis.LATENT_ATLAS_ORT = ") : -2])
    wasm = gzip.decompress(base64.b64decode(runtime["wasmGzipBase64"]))
    assert wasm[:4] == b"\0asm" and runtime["wasmBytes"] == len(wasm)
    assert hashlib.sha256(wasm).hexdigest() == ortweb.SHA256["ort-wasm-simd-threaded.wasm"]
    glue = runtime["glue"].encode()
    assert hashlib.sha256(glue).hexdigest() == ortweb.SHA256["ort-wasm-simd-threaded.mjs"]
    assert b"MIT License" in files["LICENSE"] and b"Microsoft" in files["LICENSE"]
    assert runtime["version"] == ortweb.VERSION


@pytest.mark.parametrize(
    "name, damage, match",
    [
        ("ort.wasm.min.js", lambda p: p.write_bytes(p.read_bytes()[:-1]), "sha256"),
        ("ort-wasm-simd-threaded.wasm.gz", lambda p: p.write_bytes(b"not gzip"), "unreadable"),
        ("ort-wasm-simd-threaded.wasm.gz",
         lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes()) + b"\0", 1)),
         "sha256"),
        ("LICENSE", lambda p: p.unlink(), "unreadable"),
    ],
)  # fmt: skip
def test_a_damaged_vendored_runtime_is_refused(tmp_path, name, damage, match):
    vendor = tmp_path / "vendor"
    shutil.copytree(ortweb.VENDOR, vendor)
    ortweb.runtime_files(vendor)  # an intact copy passes
    damage(vendor / name)
    with pytest.raises(AtlasError, match=match):
        ortweb.runtime_files.__wrapped__(vendor)


def test_vendoring_from_the_npm_tarball_checks_integrity_and_hashes(tmp_path):
    """``make vendor-ortweb``'s step after ``npm pack``, on a tarball built here from the
    published files: its integrity string is checked, then every file's sha256."""
    import io
    import tarfile

    published = {
        "ort.wasm.min.js": (ortweb.VENDOR / "ort.wasm.min.js").read_bytes(),
        "ort-wasm-simd-threaded.mjs": (ortweb.VENDOR / "ort-wasm-simd-threaded.mjs").read_bytes(),
        "ort-wasm-simd-threaded.wasm": gzip.decompress(
            (ortweb.VENDOR / "ort-wasm-simd-threaded.wasm.gz").read_bytes()),
    }  # fmt: skip
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for name, data in published.items():
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tarball = tmp_path / "onnxruntime-web.tgz"
    tarball.write_bytes(buf.getvalue())
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(buf.getvalue()).digest()).decode()
    target = tmp_path / "vendor"
    target.mkdir()
    for name in ("LICENSE", "ThirdPartyNotices.txt"):
        shutil.copy(ortweb.VENDOR / name, target / name)
    with pytest.raises(AtlasError, match="integrity"):
        ortweb.vendor(tarball, ortweb.NPM_INTEGRITY, target)  # not the published tarball
    assert not (target / "ort.wasm.min.js").exists()
    ortweb.vendor(tarball, integrity, target)
    assert ortweb.runtime_files.__wrapped__(target) == ortweb.runtime_files()


# ---------------------------------------------------------------------------- in reports
def test_a_batch_shares_one_runtime_and_a_lone_report_holds_its_own(toy, tmp_path, monkeypatch):
    """Every report gets explore.html, linked from report.html, report.md and the index; a
    batch writes the runtime once beside its reports, a lone report inside its folder."""
    import latent_atlas.runs as rep
    from latent_atlas.pipeline import AnalysisConfig
    from latent_atlas.runs import ComparisonConfig, run_batch

    monkeypatch.setattr(rep, "load_dataset", lambda source=None, **kw: toy["data"])
    fast = AnalysisConfig(grids=(GridSpec(steps=(5, 5)),), n_samples=300, trust_sample=100,
                          silhouette_sample=200)  # fmt: skip
    comps = [
        ComparisonConfig("one", (toy["linear"], toy["regions"]),
                         classifier=toy["root"] / "classifier.onnx", analysis=fast),
        ComparisonConfig("two", (toy["regions"], toy["constant"]), classifier=None,
                         analysis=fast),
    ]  # fmt: skip
    out = tmp_path / "batch"
    done, failed = run_batch(comps, out, progress=False)
    assert failed == [] and len(done) == 2
    assert sorted(p.name for p in (out / ortweb.FOLDER).iterdir()) == sorted(ortweb.runtime_files())
    index = (out / "index.html").read_text()
    for name in ("one", "two"):
        folder = out / name
        assert not (folder / ortweb.FOLDER).exists()
        html = (folder / "explore.html").read_text()
        assert 'src="../explorer-runtime/ort-wasm.js"' in html
        assert 'href="explore.html"' in (folder / "report.html").read_text()
        assert "(explore.html)" in (folder / "report.md").read_text()
        assert f'href="{name}/explore.html"' in index
    one = _page_json((out / "one" / "explore.html").read_text())
    two = _page_json((out / "two" / "explore.html").read_text())
    assert one["classifier"] is not None and "classifier" in one["models"][0]["atlas"]["source"]
    assert two["classifier"] is None and "nearest" in two["models"][0]["atlas"]["source"]
    assert [m["name"] for m in one["models"]] == ["linear", "regions"]
    assert one["models"][0]["embeddings"]["of"] == len(toy["data"].test)

    lone = tmp_path / "lone"
    run_batch(comps[:1], lone, progress=False, index=False)
    assert (lone / "one" / ortweb.FOLDER / "ort-wasm.js").is_file()
    assert not (lone / ortweb.FOLDER).exists()
    assert 'src="explorer-runtime/ort-wasm.js"' in (lone / "one" / "explore.html").read_text()


def test_runtime_refused_as_a_whole_when_one_file_is_a_users(tmp_path):
    """A runtime folder holding a file latent-atlas did not write: refused before any file
    is written (the cold try found ort.wasm.min.js written beside the refused one)."""
    from latent_atlas.toolkit.errors import AtlasError

    from latent_atlas import ortweb

    folder = tmp_path / "explorer-runtime"
    folder.mkdir()
    names = list(ortweb.runtime_files())
    (folder / names[-1]).write_text("mine")
    with pytest.raises(AtlasError, match="was not written by latent-atlas"):
        ortweb.write_runtime(folder)
    assert sorted(p.name for p in folder.iterdir()) == [names[-1]]
    assert (folder / names[-1]).read_text() == "mine"


# ---------------------------------------------------------------------------- geometry layer
def _affine(tmp_path: Path, d: int = 2, seed: int = 0):
    from geometry_onnx import affine_decoder

    a = np.random.default_rng(seed).normal(0, 0.01, (784, d))
    return a, load_model(affine_decoder(tmp_path / f"affine{d}.onnx", a), "decoder")


def test_plane_geometry_of_an_affine_decoder_known_answer(tmp_path):
    """f(z) = A z + b: magnification √det(AᵀA) everywhere, and each shipped edge weight is
    ‖A Δz‖ for that edge's step Δz; 0 exactly where the neighbour lies outside the grid."""
    from latent_atlas.explorer import EDGE_OFFSETS, plane_geometry

    a, decoder = _affine(tmp_path)
    g = plane_geometry(decoder, axes_plane(), (-2.0, 3.0), (-1.0, 1.0), steps=5)
    assert g.magnification.shape == (5, 5) and g.weights.shape == (4, 5, 5)
    assert g.weights.dtype == np.float32
    np.testing.assert_allclose(g.magnification, np.sqrt(np.linalg.det(a.T @ a)), rtol=1e-4)
    dx, dy = 5 / 4, 2 / 4
    for k, (dr, dc) in enumerate(EDGE_OFFSETS):
        step = np.linalg.norm(a @ [dc * dx, dr * dy])
        inside = np.zeros((5, 5), bool)
        inside[: 5 - dr, max(0, -dc) : 5 - max(0, dc)] = True
        # float32 images of values near 0.5: differences carry ~1e-7 absolute error each
        np.testing.assert_allclose(g.weights[k][inside], step, rtol=1e-3)
        assert (g.weights[k][~inside] == 0).all()


def test_shipped_weights_rebuild_the_analysis_graph(tmp_path):
    """The page's weights are analysis.geometry.grid_graph's edges (8 neighbours) on the
    decoded grid, in float32: PlaneGeometry.graph() gives back the same sparse matrix."""
    from latent_atlas.analysis.geometry import grid_graph

    from latent_atlas.explorer import plane_geometry

    rng = np.random.default_rng(2)
    protos = rng.random((2, 28, 28)).astype(np.float32)
    decoder = load_model(region_decoder(tmp_path / "dec.onnx", protos[0], protos[1]), "decoder")
    plane = axes_plane()
    g = plane_geometry(decoder, plane, (-1.0, 1.0), (-1.0, 1.0), steps=6, precision="float32")
    x = np.linspace(-1, 1, 6)
    u, v = np.meshgrid(x, x)
    reference = grid_graph(decoder(plane.points(u.ravel(), v.ravel())), (6, 6), 8)
    shipped = g.graph()
    assert shipped.nnz == reference.nnz == 2 * (2 * 6 * 5 + 2 * 5 * 5)
    np.testing.assert_array_equal(shipped.indices, reference.indices)
    np.testing.assert_allclose(shipped.data, reference.data, rtol=1e-6, atol=1e-30)
    # the region decoder jumps between its two prototypes across z₁ = 0 only
    jump = np.linalg.norm(protos[0] - protos[1])
    assert np.isclose(g.weights[0, :, 2], jump, rtol=1e-5).all()
    assert (g.weights[0, :, :2] < 1e-6).all() and (g.weights[0, :, 3:5] < 1e-6).all()


def test_page_ships_the_geometry_and_its_size(tmp_path):
    """log₁₀ magnification [ny·nx] and weights [4·ny·nx] as float32 base64: 80 KiB of
    numbers for a 64² grid (109 232 characters of base64) per model."""
    from latent_atlas.explorer import EDGE_OFFSETS, PlaneGeometry

    n = 64
    rng = np.random.default_rng(4)
    mag = rng.uniform(0.5, 20, (n, n))
    mag[0, 0] = 0.0  # a rank-deficient Jacobian: NaN in the page (drawn grey)
    geom = PlaneGeometry((-4.0, 4.0), (-2.0, 2.0), mag, rng.random((4, n, n)).astype(np.float32))
    dec = linear_decoder(tmp_path / "dec.onnx", np.array([0.1, -0.1]), 0.5)
    data, _ = page_data([_model("A", dec, geometry=geom)], None, NAMES)
    g = data["models"][0]["geometry"]
    assert (g["nx"], g["ny"], g["offsets"]) == (n, n, [list(o) for o in EDGE_OFFSETS])
    log_mag = np.frombuffer(base64.b64decode(g["log10Magnification"]), "<f4").reshape(n, n)
    assert np.isnan(log_mag[0, 0])
    np.testing.assert_allclose(log_mag.ravel()[1:], np.log10(mag.ravel()[1:]), rtol=1e-6)
    weights = np.frombuffer(base64.b64decode(g["weights"]), "<f4")
    np.testing.assert_array_equal(weights, geom.weights.ravel())
    base64_chars = [4 * -(-nbytes // 3) for nbytes in (4 * n * n * 4, n * n * 4)]
    assert [len(g["weights"]), len(g["log10Magnification"])] == base64_chars  # 87 + 22 KB


def test_plane_geometry_refuses_what_the_page_cannot_draw(tmp_path):
    from latent_atlas.explorer import PlaneGeometry, plane_geometry

    _, decoder = _affine(tmp_path)
    with pytest.raises(AtlasError, match="geometry steps 2"):
        plane_geometry(decoder, axes_plane(), (-1.0, 1.0), (-1.0, 1.0), steps=2)
    with pytest.raises(AtlasError, match=r"expected \[ny, nx\]"):
        PlaneGeometry((0, 1), (0, 1), np.ones((4, 4)), np.ones((4, 4, 5), np.float32))
    with pytest.raises(AtlasError, match="NaN or inf"):
        PlaneGeometry((0, 1), (0, 1), np.full((3, 3), np.inf), np.ones((4, 3, 3), np.float32))


# ---------------------------------------------------------------------------- > 2 latent dims
def test_latent_dims_are_the_embeddings_percentiles_or_the_prior():
    from latent_atlas.explorer import latent_dims

    rng = np.random.default_rng(5)
    emb = rng.normal(size=(1000, 4)) * [1.0, 3.0, 0.5, 0.0] + [0.0, 1.0, -2.0, 0.25]
    dims = latent_dims(4, emb)
    np.testing.assert_allclose(dims.low[:3], np.percentile(emb[:, :3], 1, axis=0))
    np.testing.assert_allclose(dims.high[:3], np.percentile(emb[:, :3], 99, axis=0))
    np.testing.assert_allclose(dims.centre, emb.mean(axis=0))
    assert (dims.low[3], dims.high[3]) == (-0.25, 0.75)  # a dim never moved: width 1 around it
    assert "percentile" in dims.source
    prior = latent_dims(3)
    assert (prior.low == -3).all() and (prior.high == 3).all() and (prior.centre == 0).all()
    assert "prior" in prior.source


def test_a_higher_dimensional_model_offers_planes_with_orthonormal_bases(tmp_path):
    """A 5-D model: the report's plane (two most varied dims) plus the principal plane, whose
    basis is orthonormal (latent units) and spans the embeddings' two leading directions; a
    2-D model offers none; the page carries both and every dim's range."""
    from latent_atlas.explorer import plane_options

    a, decoder = _affine(tmp_path, d=5)
    rng = np.random.default_rng(6)
    mix = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    emb = (rng.normal(size=(400, 5)) * [3.0, 2.0, 0.3, 0.2, 0.1]) @ mix.T + 1.0
    m = explorer_model("A", decoder, None, GridSpec(steps=(5, 5)), emb,
                       rng.integers(0, 10, 400), steps=(4, 4), geometry_steps=8)  # fmt: skip
    assert m.plane.kind == "active" and m.dims is not None and len(m.planes) == 1
    pca = m.planes[0].plane
    np.testing.assert_allclose(pca.basis @ pca.basis.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(np.abs(pca.basis @ mix[:, :2]), np.eye(2), atol=0.05)
    np.testing.assert_allclose(pca.origin, emb.mean(axis=0))
    coords = pca.project(emb)
    (x0, x1), (y0, y1) = m.planes[0].x_range, m.planes[0].y_range
    lo, hi = np.percentile(coords, [1, 99], axis=0)
    assert x0 < lo[0] < hi[0] < x1 and y0 < lo[1] < hi[1] < y1
    assert m.geometry is not None and m.geometry.magnification.shape == (8, 8)
    # the report's plane is two axes: its magnification is that of A's two columns
    i, j = np.flatnonzero(m.plane.basis.any(axis=0))
    cols = a[:, [i, j]] if m.plane.basis[0, i] else a[:, [j, i]]
    np.testing.assert_allclose(m.geometry.magnification, np.sqrt(np.linalg.det(cols.T @ cols)),
                               rtol=1e-4)  # fmt: skip
    data, _ = page_data([m], None, NAMES)
    entry = data["models"][0]
    assert entry["dims"]["labels"] == ["z₀", "z₁", "z₂", "z₃", "z₄"]
    assert len(entry["dims"]["low"]) == 5 and entry["planes"][0]["plane"]["kind"] == "pca"
    assert plane_options(axes_plane(), rng.normal(size=(50, 2))) == ()
    assert plane_options(GridSpec(plane="pca").resolve_plane(5, emb), emb) == ()
    two = explorer_model("B", _affine(tmp_path, 2, 1)[1], None, GridSpec(steps=(3, 3)),
                         geometry_steps=0)  # fmt: skip
    assert two.dims is None and two.planes == () and two.geometry is None


def test_bad_dims_are_refused(tmp_path):
    from latent_atlas.explorer import LatentDims

    dec = _decoder_file(tmp_path / "d.onnx")
    plane = axes_plane(3)
    with pytest.raises(AtlasError, match="dims.low must hold 3"):
        ExplorerModel("A", dec, 3, plane, (-1.0, 1.0), (-1.0, 1.0),
                      dims=LatentDims(np.zeros(2), np.ones(3), np.zeros(3), ""))  # fmt: skip
    with pytest.raises(AtlasError, match="low < high"):
        ExplorerModel("A", dec, 3, plane, (-1.0, 1.0), (-1.0, 1.0),
                      dims=LatentDims(np.ones(3), np.ones(3), np.zeros(3), ""))  # fmt: skip


def test_the_report_s_other_planes_are_offered_with_their_marks(tmp_path):
    """The planes of the report's other grids: its PCA plane (standard deviations, as its
    figure) replaces the page's own, the plane through three images comes with orthonormal
    axes and the three images as marks; an axes grid (the page's lists do that) and a repeat
    of the report's plane are not offered twice."""
    from latent_atlas.explorer import plane_options

    rng = np.random.default_rng(7)
    emb = rng.normal(size=(200, 4)) * [2.0, 1.0, 0.5, 0.3]
    plane = GridSpec().resolve_plane(4, emb)
    others = [GridSpec(mode="auto", plane="pca"), GridSpec(mode="auto", plane="images",
              images=(3, 10, 7)), GridSpec(axes=(2, 3)), GridSpec(mode="auto")]  # fmt: skip
    pca, images = plane_options(plane, emb, others)
    assert pca.plane.kind == "pca" and "principal plane" in pca.label
    np.testing.assert_allclose(pca.plane.basis, others[0].resolve_plane(4, emb).basis)
    x, y = others[1].coordinates(emb, images.plane)
    assert (images.x_range, images.y_range) == ((x[0], x[-1]), (y[0], y[-1]))
    np.testing.assert_allclose(images.plane.basis @ images.plane.basis.T, np.eye(2), atol=1e-12)
    assert [t for t, _, _ in images.plane.marks] == ["#3", "#10", "#7"]
    dec = _decoder_file(tmp_path / "d.onnx")
    shutil.copy(linear_decoder(tmp_path / "l.onnx", np.zeros(4), 0.5, 4), dec.path)
    m = ExplorerModel("A", dec, 4, plane, (-1.0, 1.0), (-1.0, 1.0), planes=(pca, images))
    data, _ = page_data([m], None, NAMES)
    shipped = data["models"][0]["planes"][1]["plane"]
    assert [k["label"] for k in shipped["marks"]] == ["#3", "#10", "#7"]
    assert shipped["marks"][1]["u"] == pytest.approx(images.plane.marks[1][1])


@pytest.mark.parametrize(("graph", "steps"), [(0, None), (2, 3), (7, 7)])
def test_the_geometry_layer_follows_the_reports_geodesic_graph_size(toy, graph, steps):
    """The page's geometry grid is AnalysisConfig.geometry_graph points per axis (so what a
    caller's config lowers reaches a worker process too), 0 none, never below the 3 a
    geometry grid needs."""
    from latent_atlas.pipeline import Cache
    from latent_atlas.runs import ComparisonConfig, explorer_models, run_analyses

    fast = toy_analysis(atlas_steps=4, geometry_graph=graph, extras=False)
    cfg = ComparisonConfig("g", (toy["linear"],), classifier=None, analysis=fast)
    cache = Cache()
    models, _ = explorer_models(cfg, run_analyses(cfg, cache, toy["data"]), cache)
    geometry = models[0].geometry
    if steps is None:
        assert geometry is None
    else:
        assert geometry is not None and geometry.magnification.shape == (steps, steps)


@pytest.mark.parametrize("spare", [True, False])
def test_timings_give_the_explorers_own_seconds(toy, tmp_path, monkeypatch, spare):
    """Cold try: built on a thread beside the figures, the explorer's stage in timings.json
    was the main thread's wait for it (0.0 s). Now the thread times its own work under
    "explorer" and the wait is a stage of its own; with no spare core, one "explorer" stage."""
    import latent_atlas.runs as rep
    from latent_atlas.runs import ComparisonConfig, run_comparison

    monkeypatch.setattr(rep, "parallel_workers", lambda n: min(n, 2) if spare else 1)
    monkeypatch.setattr(rep, "load_dataset", lambda source=None, **kw: toy["data"])
    slow = rep.explorer_models

    def explorer_models(*a, **k):  # at least 0.2 s, whatever the machine
        time.sleep(0.2)
        return slow(*a, **k)

    monkeypatch.setattr(rep, "explorer_models", explorer_models)
    fast = toy_analysis(atlas_steps=8, geometry_graph=6, extras=False)
    cfg = ComparisonConfig("t", (toy["linear"],), classifier=None, analysis=fast)
    run_comparison(cfg, tmp_path / "t")
    stages = json.loads((tmp_path / "t" / "timings.json").read_text())["stages_seconds"]
    assert stages["t: explorer"] >= 0.2
    assert ("t: waiting for the explorer" in stages) == spare
