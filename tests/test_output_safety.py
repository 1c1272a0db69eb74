"""Issue 9, beyond the refusal matrix (tests/test_bad_inputs.py): what the tool may replace,
names and slugs, ONNX external data kept away from onnxruntime, manifests, plain-text labels,
isolated batch entries, signals and temporary files, and a property test over user strings."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import LEAN_PRELUDE, lean_analysis
from hostile_onnx import if_constant_decoder, write_key
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from latent_atlas.toolkit import atomic, names
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec
from toy_onnx import linear_decoder, prototype_classifier, toy_pair

import latent_atlas.runs as runs
from latent_atlas.cli import main
from latent_atlas.pipeline import AnalysisConfig
from latent_atlas.runs import ComparisonConfig, run_batch, run_comparison

FAST = AnalysisConfig(grids=(GridSpec(steps=(3, 3)),), n_samples=100, trust_sample=50,
                      silhouette_sample=100)  # fmt: skip


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------- names
@pytest.mark.parametrize("good", ["vae-vs-ae", "a b", "Ünïcode ✓", "x" * names.MAX_CHARS, "a.b"])
def test_path_component_accepts(good):
    assert names.path_component(good) == good


@pytest.mark.parametrize(
    "bad",
    ["", " ", ".", "..", "a/b", "/abs", "a\\b", "a\x00b", "a\nb", ".hidden", " lead", "trail ",
     "x" * (names.MAX_CHARS + 1), "é" * 101, "index.html", "INDEX.HTML", "figures",
     os.fsdecode(b"bad\xff"), 5, None],
)  # fmt: skip
def test_path_component_refuses(bad):
    with pytest.raises(AtlasError):
        names.path_component(bad)


def test_slugs_are_single_safe_components_and_distinct():
    labels = ["../../x", "/abs/path/pwn", "$\\foo$", "VAE", "vae", "", "...", "index.html"]
    slugs = names.unique_slugs(labels)
    assert len({s.lower() for s in slugs}) == len(labels)
    for s in slugs:
        assert names.path_component(s) == s and s.isascii()
    assert slugs[:2] == ["x", "abs-path-pwn"] and slugs[3:5] == ["VAE", "vae-2"]


# ---------------------------------------------------------------------------- atomic
def test_atomic_dir_replaces_only_what_it_wrote(tmp_path):
    out = tmp_path / "out"
    with atomic.atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("one")
    assert atomic.is_marked(out)
    assert json.loads((out / atomic.MARKER).read_text())["tool"] == "latent-atlas"
    with atomic.atomic_dir(out) as tmp:  # a previous output: replaced
        (tmp / "b.txt").write_text("two")
    assert sorted(p.name for p in out.iterdir()) == [atomic.MARKER, "b.txt"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years")
    with pytest.raises(AtlasError, match="not written by latent-atlas"), atomic.atomic_dir(mine):
        pass
    assert (mine / "thesis.tex").read_text() == "years"
    (mine / "c.txt").write_text("user's c")
    with atomic.atomic_dir(mine, overwrite=True) as tmp:  # asked for explicitly ...
        (tmp / "c.txt").write_text("three")
    # ... it replaces the entries of the same names; nothing else of the user's goes
    assert (mine / "c.txt").read_text() == "three" and atomic.is_marked(mine)
    assert (mine / "thesis.tex").read_text() == "years"
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic.atomic_dir(empty) as tmp:  # an empty folder holds nothing to lose
        (tmp / "d.txt").write_text("four")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "mine", "out"]


def test_replacing_a_folder_drops_only_what_the_tool_wrote(tmp_path):
    """A previous output's stale entries go; a user's files added into it (at the top, inside
    a folder the tool wrote, or a folder of their own) stay, with or without --overwrite."""
    out = tmp_path / "out"
    with atomic.atomic_dir(out) as tmp:
        (tmp / "figures").mkdir()
        (tmp / "figures" / "old.png").write_text("stale")
        (tmp / "report.md").write_text("1")
        (tmp / "gone").mkdir()
        (tmp / "gone" / "x").write_text("stale")
    assert set(atomic.written_here(out)) == {"figures", "figures/old.png", "report.md", "gone",
                                             "gone/x"}  # fmt: skip
    (out / "notes.txt").write_text("mine")
    (out / "figures" / "mine.png").write_text("mine")
    (out / "gone" / "keep.txt").write_text("mine")
    (out / "own").mkdir()
    (out / "own" / "a").write_text("mine")
    for overwrite in (False, True):
        with atomic.atomic_dir(out, overwrite) as tmp:
            (tmp / "report.md").write_text("2")
        assert sorted(atomic._entries(out)) == [
            "figures", "figures/mine.png", "gone", "gone/keep.txt", "notes.txt", "own", "own/a",
            "report.md",
        ]  # fmt: skip
        assert (out / "report.md").read_text() == "2" and (out / "own" / "a").read_text() == "mine"
    assert set(atomic.written_here(out)) == {"report.md"}  # the kept files are still the user's
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary left


def test_one_command_never_drops_another_commands_output(tmp_path):
    """`analyze --out artifacts/digits` after `export`: the export's models are not analyze's
    stale files (the marker records which command wrote each entry); they stay, and stay
    recorded as the export's, so the next export replaces them as its own."""
    out = tmp_path / "art"
    try:
        atomic.set_command("export")
        with atomic.atomic_dir(out) as tmp:
            (tmp / "vae").mkdir()
            (tmp / "vae" / "decoder.onnx").write_text("model")
            (tmp / "manifest.json").write_text("{}")
        atomic.set_command("analyze")
        with atomic.atomic_dir(out) as tmp:
            (tmp / "metrics.json").write_text("{}")
        assert (out / "vae" / "decoder.onnx").read_text() == "model"
        assert atomic.written_here(out) == {"metrics.json": "analyze", "vae": "export",
                                            "vae/decoder.onnx": "export",
                                            "manifest.json": "export"}  # fmt: skip
        # a file of the export's in analyze's way: refused without --overwrite
        with pytest.raises(AtlasError, match="holds manifest.json, which this command did not"):
            with atomic.atomic_dir(out) as tmp:
                (tmp / "manifest.json").write_text("analyze's")
        assert (out / "manifest.json").read_text() == "{}"
        # and a single file the same way (bench --json, grid): only with --overwrite
        with pytest.raises(AtlasError, match="was written by `latent-atlas export`"):
            atomic.write_text(out / "manifest.json", "x")
        atomic.set_command("export")  # the export again: its own files replaced, analyze's kept
        with atomic.atomic_dir(out) as tmp:
            (tmp / "manifest.json").write_text("{2}")
        assert sorted(atomic._entries(out)) == ["manifest.json", "metrics.json"]
    finally:
        atomic.set_command(None)


def test_single_files_are_recorded_and_replaced_only_as_recorded(tmp_path):
    try:
        atomic.set_command("grid")
        atomic.write_text(tmp_path / "g" / "a.png", "1")  # creates g/, records a.png
        atomic.write_text(tmp_path / "g" / "a.png", "2")  # its own: replaced
        (tmp_path / "g" / "b.png").write_text("user's")
        with pytest.raises(AtlasError, match="no .latent-atlas marker records it"):
            atomic.write_text(tmp_path / "g" / "b.png", "tool's")
        atomic.set_command("bench")
        with pytest.raises(AtlasError, match="was written by `latent-atlas grid`"):
            atomic.write_text(tmp_path / "g" / "a.png", "3")
        assert atomic.written_here(tmp_path / "g") == {"a.png": "grid"}
        assert (tmp_path / "g" / "b.png").read_text() == "user's"
    finally:
        atomic.set_command(None)


def test_a_failed_swap_gives_the_kept_entries_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with atomic.atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
    (out / "notes.txt").write_text("mine")

    def fail(a, b):
        raise OSError(28, "No space left on device", str(b))

    monkeypatch.setattr(atomic, "_exchange", fail)
    with pytest.raises(AtlasError, match="No space left"), atomic.atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("2")
    assert (out / "notes.txt").read_text() == "mine" and (out / "a.txt").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


OLD_ENTRIES = ["a", "b", "d/a", "d/b", "e/f/g", "h"]
NEW_ENTRIES = ["a", "c", "d/a", "d/c", "e/x", "h/i"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    old=st.dictionaries(st.sampled_from(OLD_ENTRIES), st.binary(max_size=3)),
    new=st.dictionaries(st.sampled_from(NEW_ENTRIES), st.binary(max_size=3)),
    ours=st.sets(st.sampled_from(["a", "b", "d", "d/a", "d/b", "e", "e/f", "e/f/g", "h"])),
    overwrite=st.booleans(),
)
def test_replacing_a_folder_property(tmp_path_factory, old, new, ours, overwrite):
    """For any previous folder, any claim of what the tool wrote there and any new output:
    the new output is there whole, and every file the tool did not write that the new output
    has no entry of the same name for is there unchanged."""
    out = tmp_path_factory.mktemp("p") / "out"
    out.mkdir()
    for rel, text in old.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(text)
    atomic._write_marker(out, dict.fromkeys(ours))
    new_dirs = {"/".join(k.split("/")[:i]) for k in new for i in range(1, k.count("/") + 1)}

    def clash(rel: str) -> bool:  # the new output would replace this, the tool did not write it
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if p in new or p in new_dirs:
                if i < len(parts) and p in new_dirs:
                    continue
                return p not in ours
            return False
        return False

    refused = not overwrite and any(clash(rel) for rel in old)
    try:
        with atomic.atomic_dir(out, overwrite) as tmp:
            for rel, text in new.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(text)
    except AtlasError as exc:
        assert refused and "which this command did not write and would replace" in str(exc)
        assert all((out / rel).read_bytes() == text for rel, text in old.items())
        assert [p.name for p in out.parent.iterdir()] == ["out"]
        return
    assert not refused
    for rel, text in new.items():
        assert (out / rel).read_bytes() == text
    for rel, text in old.items():
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            p, is_dir = "/".join(parts[:i]), i < len(parts)
            if p in new or p in new_dirs:
                if is_dir and p in new_dirs:
                    continue  # a folder in both: look inside
                break  # replaced by the new entry of that name
            if p in ours:
                if is_dir:
                    continue  # the tool's folder: what the user added inside stays
                break  # the tool's stale file: gone
            assert (out / rel).read_bytes() == text, rel  # the user's: kept as it was
            break
    assert [p.name for p in out.parent.iterdir()] == ["out"]


def test_atomic_dir_never_replaces_an_input(tmp_path):
    model = toy_pair(tmp_path / "art" / "m")
    for target in (tmp_path / "art", model):
        with pytest.raises(AtlasError, match="an input of this run"):
            with atomic.atomic_dir(target, overwrite=True, protect=[model / "decoder.onnx"]):
                pass
    assert (model / "decoder.onnx").is_file()


def test_atomic_dir_without_exchange(tmp_path, monkeypatch):
    """Where renameat2 is missing, two renames under held signals do the same."""
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    for text in ("one", "two"):
        with atomic.atomic_dir(out) as tmp:
            (tmp / "a.txt").write_text(text)
    assert (out / "a.txt").read_text() == "two" and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_files_replace_only_inside_marked_folders(tmp_path):
    atomic.write_text(tmp_path / "new" / "a.txt", "one")  # creates and marks new/
    atomic.write_text(tmp_path / "new" / "a.txt", "two")
    (tmp_path / "b.txt").write_text("user")
    with pytest.raises(AtlasError, match="not written by latent-atlas"):
        atomic.write_text(tmp_path / "b.txt", "tool")
    (tmp_path / "link").symlink_to(tmp_path / "b.txt")
    with pytest.raises(AtlasError, match="not written by latent-atlas"):
        atomic.write_text(tmp_path / "link", "tool", overwrite=False)
    atomic.write_text(tmp_path / "b.txt", "tool", overwrite=True)
    with pytest.raises(AtlasError, match="an input of this run"):
        atomic.write_text(tmp_path / "b.txt", "x", overwrite=True, protect=[tmp_path / "b.txt"])
    assert (tmp_path / "b.txt").read_text() == "tool"


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_outputs_respect_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        path = atomic.write_text(tmp_path / "f" / "a.txt", "x")
        with atomic.atomic_dir(tmp_path / "d") as tmp:
            (tmp / "b.txt").write_text("y")
        with atomic.open_npy(tmp_path / "f" / "c.npy", (2, 2)) as arr:
            arr[:] = 1
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "f" / "c.npy").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~mask


def test_open_npy_preallocates_and_cleans_up(tmp_path):
    with atomic.open_npy(tmp_path / "a.npy", (3, 4)) as arr:
        arr[:] = np.arange(12).reshape(3, 4)
        temps = [p for p in tmp_path.iterdir() if p.name.startswith(".a.npy.")]
        assert len(temps) == 1 and temps[0].stat().st_blocks * 512 >= temps[0].stat().st_size
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.arange(12).reshape(3, 4))
    with pytest.raises(RuntimeError), atomic.open_npy(tmp_path / "b.npy", (3,)) as arr:
        raise RuntimeError("half-way")
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]


# ---------------------------------------------------------------------------- ONNX
def test_subgraph_external_data_never_reaches_onnxruntime(tmp_path, monkeypatch, capsys):
    """The hostile decoder really leaks the key through onnxruntime on its own; through the
    tool it is refused before any session is made from it."""
    monkeypatch.chdir(tmp_path)
    key = write_key(tmp_path)
    raw = if_constant_decoder(tmp_path / "hostile.onnx").read_bytes()
    leaked = ort.InferenceSession(raw, providers=["CPUExecutionProvider"]).run(
        None, {"z": np.zeros((1, 2), np.float32)}
    )[0]
    assert leaked.tobytes() == key  # the threat is real

    toy_pair(tmp_path / "m")
    (tmp_path / "m" / "decoder.onnx").write_bytes(raw)
    import latent_atlas.toolkit.runtime as runtime

    seen = []
    real = runtime.ort.InferenceSession

    def recording(model, *a, **k):
        seen.append(model)
        return real(model, *a, **k)

    monkeypatch.setattr(runtime.ort, "InferenceSession", recording)
    rc = main(["grid", "--model", "m", "--out", "g", "--npy", "--no-progress", "--steps", "3"])
    err = capsys.readouterr().err
    assert rc == 2 and "external data" in err and "key.bin" in err
    assert raw not in seen  # no session was ever made from it
    assert not (tmp_path / "g").exists()


# ---------------------------------------------------------------------------- manifests
def test_unrelated_and_malformed_manifests_are_ignored(tmp_path, capsys):
    webapp = {"name": "My PWA", "start_url": "/", "icons": []}
    (tmp_path / "manifest.json").write_text(json.dumps(webapp))  # two folders up
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "manifest.json").write_text("{ not json")  # beside, malformed
    toy_pair(tmp_path / "art" / "m")
    (tmp_path / "art" / "m" / "manifest.json").write_text(json.dumps({"files": 3}))
    rc = main(["grid", "--model", str(tmp_path / "art" / "m"), "--out", str(tmp_path / "g"),
               "--steps", "3", "--no-progress"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err


def test_own_manifest_beside_the_model_still_counts(tmp_path):
    from latent_atlas.export.onnx_export import write_manifest
    from latent_atlas.toolkit.runtime import read_manifest

    toy_pair(tmp_path / "art" / "m")
    write_manifest(tmp_path / "art")
    assert json.loads((tmp_path / "art" / "manifest.json").read_text())["tool"] == "latent-atlas"
    files = read_manifest(tmp_path / "art" / "m")  # one level up: the artifact folder
    assert str((tmp_path / "art" / "m" / "decoder.onnx").resolve()) in files
    assert read_manifest(tmp_path / "art" / "m" / "x") == {}  # two levels up: not its own


# ---------------------------------------------------------------------------- plain text
@pytest.fixture
def toy_data(toy, monkeypatch):
    monkeypatch.setattr(
        runs, "load_dataset", lambda source=None, train=True, class_names=None: toy["data"]
    )
    return toy


def test_mathtext_and_traversal_in_labels_are_plain_text(toy_data, tmp_path, capsys):
    evil = ["$\\foo$", "/abs/path/pwn"]
    rc = main(["report", "--model", str(toy_data["linear"]), "--model", str(toy_data["regions"]),
               "--classifier", str(toy_data["root"] / "classifier.onnx"), "--label", evil[0],
               "--label", evil[1], "--name", "evil", "--out", str(tmp_path / "out"),
               "--steps", "3", "--no-progress"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    report = tmp_path / "out" / "evil"
    figs = sorted(p.name for p in (report / "figures").iterdir())
    assert "m0_embeddings.png" in figs and "m1_embeddings.png" in figs  # from indexes
    assert all(p.resolve().is_relative_to(tmp_path) for p in tmp_path.rglob("*"))
    metrics = json.loads((report / "metrics.json").read_text())
    assert sorted(metrics["models"]) == sorted(evil)  # labels stay display text
    assert "$\\foo$" in (report / "report.html").read_text()


def test_odd_folder_names_become_safe_file_names(tmp_path, capsys):
    odd = [tmp_path / "$\\foo$", tmp_path / os.fsdecode(b"caf\xe9"), tmp_path / "x" / "vae",
           tmp_path / "y" / "vae"]  # fmt: skip
    for folder in odd:
        toy_pair(folder)
    args = ["grid", "--out", str(tmp_path / "g"), "--steps", "3", "--no-progress"]
    for folder in odd:
        args += ["--model", str(folder)]
    rc = main(args)
    assert rc == 0, capsys.readouterr().err
    pngs = sorted(p.name for p in (tmp_path / "g").glob("*.png"))
    assert pngs == ["caf_linear_3x3.png", "foo_linear_3x3.png", "vae-2_linear_3x3.png",
                    "vae_linear_3x3.png"]  # fmt: skip


def test_report_on_folders_with_undecodable_names(toy_data, tmp_path, capsys):
    """No labels given: the labels are the folder names, one of them not valid UTF-8 and one
    with mathtext; the report is written, its folder named by a slug."""
    odd = [tmp_path / os.fsdecode(b"caf\xe9"), tmp_path / "$\\foo$"]
    for folder in odd:
        toy_pair(folder)
    rc = main(["report", "--model", str(odd[0]), "--model", str(odd[1]), "--classifier",
               str(toy_data["root"] / "classifier.onnx"), "--out", str(tmp_path / "out"),
               "--steps", "3", "--no-progress"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    (report,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert report.name.isascii() and (report / "report.html").is_file()
    assert "caf\ufffd" in (report / "report.html").read_text()  # shown as U+FFFD


def test_negative_exponent_ranges_parse(tmp_path, capsys):
    toy_pair(tmp_path / "m")
    linear_decoder(tmp_path / "m" / "decoder.onnx", np.array([1.0, 0.0]), 0.0, sigmoid=True)
    rc = main(["grid", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "g"),
               "--range", "-1e30", "1e30", "--steps", "3", "--no-progress"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    "exc, expect",
    [(RuntimeError("boom\nsecond line"), "unexpected RuntimeError: boom"),
     (MemoryError(), "out of memory")],
)  # fmt: skip
def test_last_resort_is_one_line(tmp_path, monkeypatch, capsys, exc, expect):
    import latent_atlas.toolkit.grid as grid

    def fail(*a, **k):
        raise exc

    monkeypatch.setattr(grid, "decode_grid", fail)
    toy_pair(tmp_path / "m")
    rc = main(["grid", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "g"),
               "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and expect in err[0] and "Traceback" not in err[0]


def test_decoder_range_is_one_rule_for_grid_and_report(toy, tmp_path):
    logits = tmp_path / "logits"
    toy_pair(logits, weights=(1.0, 0.0))
    cfg = ComparisonConfig("c", (logits, toy["linear"]), classifier=toy["root"] / "classifier.onnx",
                           analysis=FAST)  # fmt: skip
    with pytest.raises(AtlasError, match="expected \\[0, 1\\]; end the decoder with a Sigmoid"):
        run_comparison(cfg, tmp_path / "out", data=toy["data"])
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- batches
def test_serial_batch_isolates_any_failure(toy_data, tmp_path, monkeypatch):
    real = runs.run_analyses

    def flaky(cfg, *a, **k):
        if cfg.name == "bad":
            raise ZeroDivisionError("a bug in one entry")
        return real(cfg, *a, **k)

    monkeypatch.setattr(runs, "run_analyses", flaky)
    clf = toy_data["root"] / "classifier.onnx"
    comps = [ComparisonConfig(n, (toy_data["linear"], toy_data["regions"]), classifier=clf,
                              analysis=FAST) for n in ("first", "bad", "last")]  # fmt: skip
    done, failed = run_batch(comps, tmp_path / "out", progress=False)
    assert [r["name"] for r in done] == ["first", "last"]
    assert failed == [("bad", "unexpected ZeroDivisionError: a bug in one entry")]
    index = (tmp_path / "out" / "index.html").read_text()
    assert "bad" in index and "ZeroDivisionError" in index


def test_serial_batch_keeps_each_comparisons_labels(toy_data, tmp_path):
    clf = toy_data["root"] / "classifier.onnx"
    comps = [
        ComparisonConfig(c, (toy_data["linear"], toy_data["regions"]), labels, clf,
                         analysis=FAST)
        for c, labels in (("c1", ("A", "B")), ("c2", ("C", "D")))
    ]  # fmt: skip
    done, failed = run_batch(comps, tmp_path / "out", progress=False)
    assert not failed
    assert [sorted(r["metrics"]["models"]) for r in done] == [["A", "B"], ["C", "D"]]
    assert "C vs D" in (tmp_path / "out" / "c2" / "report.html").read_text()


# ---------------------------------------------------------------------------- signals, temps
DRIVER = (
    textwrap.dedent(
        """
    import os, sys, time
    import numpy as np
    import latent_atlas.runs as runs
    from latent_atlas.toolkit.data import FASHION_MNIST_CLASSES, ImageDataset, Split

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 10).astype(np.int64)
    images = rng.random((100, 1, 28, 28)).astype(np.float32)
    split = Split(images, labels)
    tiny = ImageDataset("tiny", split, split, FASHION_MNIST_CLASSES, "0" * 64, "tiny")
    runs.load_dataset = lambda source=None, train=True, class_names=None: tiny
    pause = os.environ.get("PAUSE_AT")
    if pause:  # hold at a known point so a signal lands there
        real = getattr(runs, pause)
        def held(*a, **k):
            out = real(*a, **k)
            print("held", flush=True)
            time.sleep(60)
            return out
        setattr(runs, pause, held)
    from latent_atlas.cli import main
    """
    )
    + LEAN_PRELUDE
    + textwrap.dedent(
        """
    print("ready", flush=True)  # imports done: the command itself starts now
    code = main(sys.argv[1:])
    print("done", flush=True)  # the command's work is over: what follows is teardown
    sys.exit(code)
    """
    )
)


def _spawn(args, cwd, **env):
    return subprocess.Popen([sys.executable, "-c", DRIVER, *args], cwd=cwd,
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _report_args(root: Path) -> list[str]:
    return ["report", "--model", str(root / "m"), "--model", str(root / "m2"), "--classifier",
            str(root / "c.onnx"), "--out", "out", "--steps", "3", "--no-progress"]  # fmt: skip


def _toys(root: Path) -> None:
    toy_pair(root / "m")
    toy_pair(root / "m2", weights=(0.0, 0.1))
    prototype_classifier(root / "c.onnx", np.random.default_rng(0).random((10, 28, 28)))


def _hidden(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.name != atomic.MARKER]


@pytest.mark.parametrize("signalled", [True, False])
def test_an_exception_a_library_makes_of_a_signal_still_ends_as_the_signal(
    signalled, monkeypatch, capsys
):
    """pybind11 turns an exception raised while it converts arguments into a TypeError
    ("affine_transform(): incompatible function arguments": matplotlib, SIGTERM at a random
    point of `grid --npy`): after a signal, that is the signal's exit, not an error."""
    from latent_atlas.commands import grid as grid_command

    def grid(args):
        try:
            if signalled:
                os.kill(os.getpid(), signal.SIGTERM)  # the handler raises Interrupted here
                time.sleep(5)
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise TypeError("affine_transform(): incompatible function arguments") from None

    monkeypatch.setattr(grid_command, "run", grid)
    monkeypatch.delenv("LATENT_ATLAS_TRACEBACK", raising=False)
    rc = main(["grid", "--model", "m"])
    err = capsys.readouterr().err.strip().splitlines()
    if signalled:
        assert rc == 143 and err == [
            "latent-atlas grid: interrupted (SIGTERM); nothing written; any previous output "
            "is as it was, no partial output left"
        ]
    else:  # no signal: the library's error, as one line
        assert rc == 2 and len(err) == 1 and "unexpected TypeError" in err[0]
    assert signal.getsignal(signal.SIGTERM) is not None


def test_signals_are_held_in_critical_sections_and_never_lost():
    from latent_atlas.toolkit import signals

    previous = {s: signal.getsignal(s) for s in signals.SIGNALS}
    signals.install()
    try:
        reached = False
        with pytest.raises(signals.Interrupted) as caught, signals.critical():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # delivered here, and held
            reached = True
        assert reached and caught.value.exit_code == 143

        class Collected:  # a signal that lands in a __del__ is "ignored" by Python...
            def __del__(self):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)

        Collected()
        with pytest.raises(signals.Interrupted):  # ...and raised again at the next checkpoint
            signals.checkpoint()
    finally:
        signals.uninstall()
        for s, handler in previous.items():
            signal.signal(s, handler)


def test_sigterm_mid_report_keeps_the_previous_report(tmp_path):
    _toys(tmp_path)
    first = _spawn(_report_args(tmp_path), tmp_path)
    assert first.communicate(timeout=120) and first.returncode == 0
    before = _files(tmp_path / "out")
    proc = _spawn(_report_args(tmp_path), tmp_path, PAUSE_AT="build_sections")
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    assert proc.stdout.readline().strip() == "held"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted (SIGTERM)" in lines[0], err
    assert _files(tmp_path / "out") == before and _hidden(tmp_path) == []


def test_a_second_run_creating_the_same_folder_keeps_the_first_ones_record(tmp_path):
    """Two grids into a new g/: both see g/ missing and mark it; the second marking must not
    wipe the record of the file the first one already wrote (CI caught that race: the second
    grid then refused its own .npy), and a file is recorded before it appears."""
    try:
        atomic.set_command("grid")
        atomic.write_text(tmp_path / "g" / "a.npy", "first run's")
        atomic._write_marker(tmp_path / "g", {}, new=True)  # the second run's marking
        assert atomic.written_here(tmp_path / "g") == {"a.npy": "grid"}
        atomic.write_text(tmp_path / "g" / "a.npy", "second run's")  # its own: replaced
    finally:
        atomic.set_command(None)


def test_two_grids_writing_the_same_npy_do_not_collide(tmp_path):
    toy_pair(tmp_path / "m")
    args = ["grid", "--model", "m", "--out", "g", "--npy", "--steps", "150", "--no-progress"]
    procs = [_spawn(args, tmp_path) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err  # not SIGBUS (-7)
    raw = np.load(tmp_path / "g" / "m_linear_150x150.npy")
    assert raw.shape == (150, 150, 1, 28, 28) and 0 <= raw.min() and raw.max() <= 1
    assert _hidden(tmp_path) == []


# Random SIGTERM points: each run of the suite puts one point in each of STRATA equal slices
# of the window (the point classes, from the start of the work to its late part). The ten
# uniform points this replaces cost twice the time and still left one fifth of the window
# unvisited in about half the runs (0.48). Three runs must keep the previous output, so two
# may land late on a machine whose load dropped after the complete runs were timed.
# `pytest -m exhaustive` also runs EXHAUSTIVE_STRATA slices, one point each.
STRATA = 5
EXHAUSTIVE_STRATA = 16


def _strata_delays(rng: np.random.Generator, window: float, strata: int) -> list[float]:
    """One uniform point in each of ``strata`` equal slices of [0, ``window``), in order."""
    edges = np.linspace(0.0, window, strata + 1)
    return [float(rng.uniform(lo, hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def test_strata_delays_put_one_point_in_each_slice():
    delays = _strata_delays(np.random.default_rng(0), 8.0, 4)
    assert len(delays) == 4
    assert all(2.0 * k <= d < 2.0 * (k + 1) for k, d in enumerate(delays)), delays


def _sigterm_at_random(tmp_path, args, strata: int, out: Path) -> int:
    """SIGTERM at a random point of each of ``strata`` slices of the command (0.8 × the
    shorter of two complete runs of main(), counted from when the imports are done): never a
    traceback or a temporary left, and the output either the previous one, byte for byte, or a
    complete new one (when the signal came after the swap). Returns how many runs the handler
    stopped with the previous output kept."""
    rng = np.random.default_rng(9)
    durations = []
    for _ in range(2):  # the shorter of two complete runs: the first one runs on cold caches
        first = _spawn(args, tmp_path)
        assert first.stdout is not None and first.stdout.readline().strip() == "ready"
        start = time.perf_counter()
        while first.stdout.readline().strip() != "done":  # main() returned: the work is over
            pass
        durations.append(time.perf_counter() - start)  # the interpreter's teardown excluded
        assert first.communicate(timeout=180) and first.returncode == 0
    duration = min(durations)
    kept, codes = 0, []
    for delay in _strata_delays(rng, 0.8 * duration, strata):
        before = _files(out)
        proc = _spawn(args, tmp_path)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        # 143: our handler; -15: the default action, only outside main() (before the
        # handlers are installed, or after the work is done and they are removed)
        assert proc.returncode in (0, 143, -signal.SIGTERM), err
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err
        assert _hidden(tmp_path) == [], (delay, err)
        after = _files(out)
        assert after == before or after.keys() == before.keys(), delay  # old, or new and whole
        kept += proc.returncode == 143 and after == before
        codes.append(proc.returncode)
    print(f"run of {duration:.1f} s; exit codes: {codes}; previous output kept by {kept}")
    return kept


STRATA_PARAMS = [
    pytest.param(STRATA, id=f"{STRATA}-slices"),
    pytest.param(EXHAUSTIVE_STRATA, id=f"{EXHAUSTIVE_STRATA}-slices",
                 marks=pytest.mark.exhaustive),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("strata", STRATA_PARAMS)
def test_sigterm_at_random_points_of_report(tmp_path, strata):
    _toys(tmp_path)
    assert _sigterm_at_random(tmp_path, _report_args(tmp_path), strata, tmp_path / "out") >= 3


@pytest.mark.slow
@pytest.mark.parametrize("strata", STRATA_PARAMS)
def test_sigterm_at_random_points_of_grid_npy(tmp_path, strata):
    toy_pair(tmp_path / "m")
    args = ["grid", "--model", "m", "--out", "g", "--npy", "--steps", "150", "--no-progress"]
    assert _sigterm_at_random(tmp_path, args, strata, tmp_path / "g") >= 3


# ---------------------------------------------------------------------------- property
SEPARATORS = st.sampled_from(["/", "..", ".", "\\", "\x00", "$", " ", "index.html", "-"])
user_text = st.lists(st.one_of(st.text(max_size=6), SEPARATORS), max_size=5).map("".join)


@pytest.fixture(scope="module")
def sandbox_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    _toys(root)
    return root


def _valid(name: str, a: str, b: str) -> bool:
    """What the tool must accept."""
    try:
        names.path_component(name)  # given, even empty: checked (empty is refused)
        names.label(a)
        names.label(b)
    except AtlasError:
        return False
    return a != b


plain = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,8}[A-Za-z0-9]", fullmatch=True)
HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=15, deadline=None, suppress_health_check=HEALTH)
@given(out=st.one_of(user_text, plain), name=st.one_of(user_text, plain),
       label_a=st.one_of(user_text, plain), label_b=user_text)  # fmt: skip
@example(out="../x", name="r1", label_a="../../../../x", label_b="/abs/path/pwn")
@example(out="..", name="..", label_a="a", label_b="b")
@example(out=".", name="index.html", label_a="$\\foo$", label_b="b")
@example(out="00", name="--", label_a="00", label_b="--")  # argparse dropped a "--" value (CI)
def test_writes_stay_under_the_intended_folder(
    out, name, label_a, label_b, sandbox_models, toy_data, tmp_path_factory, monkeypatch
):
    top = tmp_path_factory.mktemp("sandbox")
    cwd = top / "a" / "b" / "cwd"  # room for a few ".." inside the sandbox
    cwd.mkdir(parents=True)
    (top / "a" / "precious.txt").write_text("keep")
    (cwd / "notes.txt").write_text("keep")
    monkeypatch.chdir(cwd)
    assume("\x00" not in out and out.strip())
    target = Path(os.path.abspath(out))
    assume(target.is_relative_to(top))
    before = _files(top)
    args = ["report", "--model", str(sandbox_models / "m"), "--model",
            str(sandbox_models / "m2"), "--classifier", str(sandbox_models / "c.onnx"),
            f"--out={out}", f"--name={name}", f"--label={label_a}", f"--label={label_b}",
            "--steps", "3", "--no-progress"]  # fmt: skip
    with lean_analysis():  # where files go, not what the measures weigh
        rc = main(args)
    assert rc in (0, 2)
    if _valid(name, label_a, label_b) and not target.is_file():
        assert rc == 0, args
    after = _files(top)
    for rel, content in before.items():  # nothing that was there changed
        assert after.get(rel) == content, rel
    new = [top / rel for rel in after.keys() - before.keys()]
    if rc == 2:
        assert new == []
        return
    folder = name or names.slug(f"{label_a}-vs-{label_b}", "comparison")
    report = Path(os.path.realpath(target)) / folder
    for p in new:  # inside the report, or the marker of a folder made to hold it
        real = Path(os.path.realpath(p))
        assert real.is_relative_to(report) or (
            real.name == atomic.MARKER and report.is_relative_to(real.parent)
        ), p


def test_default_report_names_carry_the_data():
    """An unnamed report on --data other than the default is named after the data as well as
    its labels, so the README's digits report does not replace `make report`'s vae-vs-ae."""
    from conftest import REPO

    from latent_atlas.cli import build_parser
    from latent_atlas.commands.flags import comparison, data_tag

    assert data_tag("sklearn:digits") == "digits"
    assert data_tag("some/where/fm_small.npz") == "fm_small"
    assert data_tag("/usr/share/datasets/fashion-mnist/") == "fashion-mnist"
    parser = build_parser()
    art = REPO / "artifacts" / "digits"
    args = parser.parse_args(["report", "--data", "sklearn:digits", "--model", str(art / "vae"),
                              "--model", str(art / "ae")])  # fmt: skip
    assert comparison(args).name == "digits-vae-vs-ae"
    args = parser.parse_args(["report", "--model", str(art / "vae"), "--model", str(art / "ae")])
    assert comparison(args).name == "vae-vs-ae"


def test_dollar_labels_are_drawn_as_written():
    """A label with $…$ is drawn as the user wrote it: no mathtext, and no escaping backslash
    left visible (the cold try saw `\\$\\alpha\\$` in a legend)."""
    from latent_atlas.analysis import plots
    from matplotlib.text import Text

    fig = plots.class_share_bars({"$\\alpha$": [0.5, 0.5], "b": [0.2, 0.8]}, ["$x$", "y"])
    texts = {t.get_text() for t in plots.plain_text(fig).findobj(Text)}
    assert {"$\\alpha$", "$x$"} <= texts
    assert not any("\\$" in t for t in texts)
    assert plots.figure_png_bytes(fig)[:4] == b"\x89PNG"  # drawn without a mathtext error
