"""The distribution: one import name, a wheel that is a working install, neighbours that own
the generic names `export` and `analysis` leave us alone. Builds a real wheel (slow tier)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import LEAN_MAIN

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _run(args: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, **kw)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # the venv's own setuptools (pyproject's build requirement): no isolated build env to set
    # up, nothing downloaded
    r = _run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
              "-q", "-w", str(out)])  # fmt: skip
    assert r.returncode == 0, r.stderr
    (path,) = out.glob("latent_atlas-*.whl")
    return path


def _fresh_venv(root: Path) -> Path:
    """A new venv whose dependencies come from this one's site-packages (a .pth after its
    own), so nothing is downloaded; its own site-packages holds only what we install."""
    venv.create(root, with_pip=False)
    python = root / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    purelib = Path(site.stdout.strip())
    # every site-packages this interpreter sees (a venv may itself borrow another's)
    sites = [p for p in sys.path if p.endswith("site-packages")] or [
        sysconfig.get_paths()["purelib"]
    ]
    (purelib / "zz_deps.pth").write_text("\n".join(sites) + "\n")
    return python


def _pip_install(python: Path, *targets: str) -> None:
    r = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
              "--no-deps", "--no-index", "--no-build-isolation", *targets])  # fmt: skip
    assert r.returncode == 0, r.stderr


def test_wheel_has_one_top_level_name(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.startswith("latent_atlas-")} == {"latent_atlas"}
    top = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("top_level.txt")))
    assert top.decode().split() == ["latent_atlas"]
    record = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("RECORD")))
    tops = {line.split("/")[0] for line in record.decode().splitlines() if line}
    assert tops == {"latent_atlas", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1]
                    + ".dist-info"}  # fmt: skip
    # the shipped models travel as package data
    assert "latent_atlas/artifacts/fashion-mnist/vae/decoder.onnx" in names
    for rel in ("vae16/encoder.onnx", "vae16/manifest.json", "seeds/vae16-seed4/decoder.onnx"):
        assert f"latent_atlas/artifacts/fashion-mnist/{rel}" in names
    for rel in ("vae/encoder.onnx", "ae/decoder.onnx", "classifier/card.json", "manifest.json"):
        assert f"latent_atlas/artifacts/digits/{rel}" in names
    assert "latent_atlas/analysis/templates/report.html.j2" in names
    # the explorer's runtime, with its licence
    for f in ("ort.wasm.min.js", "ort-wasm-simd-threaded.wasm.gz", "LICENSE"):
        assert f"latent_atlas/vendor/onnxruntime-web/{f}" in names


def _dummy_dist(root: Path, name: str) -> Path:
    """A distribution that owns the top-level package ``name`` (as PyPI's `export` does)."""
    src = root / f"dummy-{name}"
    (src / name).mkdir(parents=True)
    (src / name / "__init__.py").write_text(f"OWNER = 'dummy-{name}'\n")
    (src / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "dummy-{name}"
        version = "1.0"
        [tool.setuptools]
        packages = ["{name}"]
    """)
    )
    return src


def test_wheel_installs_beside_packages_owning_generic_names(wheel, tmp_path):
    python = _fresh_venv(tmp_path / "venv")
    _pip_install(python, str(wheel))
    for name in ("export", "analysis", "toolkit"):
        _pip_install(python, str(_dummy_dist(tmp_path, name)))
    probe = (
        "import export, analysis, toolkit, latent_atlas\n"
        "import latent_atlas.export.onnx_export, latent_atlas.analysis.plots\n"
        "print(export.OWNER, analysis.OWNER, toolkit.OWNER, latent_atlas.__version__,\n"
        "      latent_atlas.__file__)\n"
    )
    r = _run([str(python), "-c", probe], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    owners = r.stdout.split()
    assert owners[:3] == ["dummy-export", "dummy-analysis", "dummy-toolkit"]
    assert owners[3] != "0+unknown" and str(tmp_path / "venv") in owners[4]
    # uninstalling a neighbour leaves our files in place
    r = _run([sys.executable, "-m", "pip", "--python", str(python), "uninstall", "-y", "-q",
              "dummy-export"])  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = _run([str(python), "-c", "import latent_atlas.export.onnx_export"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr


@pytest.mark.real_data
def test_wheel_is_a_working_install(wheel, tmp_path):
    """Installed from the wheel, outside the repository: the shipped models come with it."""
    python = _fresh_venv(tmp_path / "venv")
    _pip_install(python, str(wheel))
    work = tmp_path / "work"
    work.mkdir()
    cli = [str(python), "-m", "latent_atlas"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = _run([str(python), "-c", "import latent_atlas; print(latent_atlas.shipped())"], cwd=work)
    shipped = Path(r.stdout.strip())
    # the explorer's runtime came with the wheel and passes its sha256 checks there
    probe = "from latent_atlas import ortweb; print(ortweb.VENDOR, len(ortweb.runtime_files()))"
    r = _run([str(python), "-c", probe], cwd=work)
    assert r.returncode == 0 and str(tmp_path / "venv") in r.stdout, r.stdout + r.stderr
    assert shipped.is_relative_to(tmp_path / "venv"), r.stdout + r.stderr
    r = _run([*cli, "grid", "--model", str(shipped / "vae"), "--steps", "5", "--no-progress"],
             cwd=work, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (work / "grids" / "vae_linear_5x5.png").read_bytes()[:4] == b"\x89PNG"
    # the pair alone (make report's seed groups are the same code on more models, tested on
    # the repository's artifacts); the seeds came with the wheel all the same
    assert len(list((shipped / "seeds").glob("*/decoder.onnx"))) >= 8
    # at the suite's lean sizes (conftest.LEAN), through the installed package's main()
    r = _run([str(python), "-c", LEAN_MAIN, "report", "--model", str(shipped / "vae"),
              "--model", str(shipped / "ae"), "--label", "VAE", "--label", "AE", "--name",
              "vae-vs-ae", "--steps", "5", "--no-progress", "--out", "reports"],
             cwd=work, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    metrics = json.loads((work / "reports" / "vae-vs-ae" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"VAE", "AE"}
    assert str(tmp_path / "venv") in metrics["models"]["VAE"]["provenance"]["source"]
    # and the explorer beside it, with the runtime the wheel carried
    report = work / "reports" / "vae-vs-ae"
    assert "ort-wasm.js" in (report / "explore.html").read_text()
    assert (report / "explorer-runtime" / "ort-wasm.js").stat().st_size > 4_000_000
