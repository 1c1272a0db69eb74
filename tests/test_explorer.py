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
from pathlib import Path

import numpy as np
import pytest
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
    a = explorer_model("A", decoder, classifier, spec, emb, labels, steps=(4, 4), max_points=100)
    b = explorer_model("A", decoder, None, spec, emb, labels, steps=(4, 4), max_points=100)
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
    m = explorer_model("A", decoder, None, spec, emb, np.zeros(500, np.int64), steps=(4, 4))
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
