"""The layers of docs/architecture.md, held by a test: imports only run down.

    latent_atlas (top: cli, runners, bench, api)
        │
        ├──► analysis  (metrics, plots, rendering; at most toolkit's errors)
        ├──► export    (torch → ONNX; toolkit only)
        ▼
    toolkit   (the ground; nothing of ours above it)

Every import of our own code is spelled ``latent_atlas.…``; a bare ``import toolkit`` (or
``analysis``, ``export``) would find whatever else on sys.path owns that name.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FLOORS = {  # folder in the repository -> its package
    "latent_atlas": "latent_atlas",
    "toolkit": "latent_atlas.toolkit",
    "export": "latent_atlas.export",
    "analysis": "latent_atlas.analysis",
}
# What each package may import of ours (besides itself).
ALLOWED = {
    "latent_atlas": {"latent_atlas.toolkit", "latent_atlas.export", "latent_atlas.analysis"},
    "latent_atlas.export": {"latent_atlas.toolkit"},
    "latent_atlas.analysis": {"latent_atlas.toolkit.errors"},
    "latent_atlas.toolkit": set(),
}
BARE = {"toolkit", "export", "analysis", "artifacts"}


def _imports(path: Path, package: str) -> list[tuple[int, str]]:
    """Every module name imported by ``path`` (relative imports resolved against ``package``)."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found += [(node.lineno, module)]
            # `from latent_atlas import toolkit` imports the subpackage too
            found += [
                (node.lineno, f"{module}.{a.name}") for a in node.names if module == "latent_atlas"
            ]
    return found


def _owner(module: str) -> str | None:
    """The floor a module of ours belongs to, or None for a third-party module."""
    if module == "latent_atlas" or not module.startswith("latent_atlas"):
        return "latent_atlas" if module == "latent_atlas" else None
    parts = module.split(".")
    sub = ".".join(parts[:2])
    return sub if sub in ALLOWED else "latent_atlas"


def _files() -> list[tuple[Path, str]]:
    out = []
    for folder, package in FLOORS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            out.append((path, package))
    return out


def violations(files: list[tuple[Path, str]]) -> list[str]:
    bad = []
    for path, package in files:
        for line, module in _imports(path, package):
            head = module.split(".")[0]
            where = f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}:{line}"
            if head in BARE:
                bad.append(f"{where}: bare `{module}`; import latent_atlas.{module}")
                continue
            owner = _owner(module)
            if owner is None or owner == package:
                continue
            allowed = ALLOWED[package]
            if not any(module == a or module.startswith(a + ".") for a in allowed):
                bad.append(f"{where}: {package} imports {module}, which runs back up")
    return bad


def test_imports_only_run_down():
    assert violations(_files()) == []


def test_tests_use_the_package_name():
    tests = [(p, "tests") for p in sorted((REPO / "tests").glob("*.py"))]
    bare = [
        f"{p.name}:{line} {m}" for p, _ in tests for line, m in _imports(p, "tests")
        if m.split(".")[0] in BARE
    ]  # fmt: skip
    assert bare == []


@pytest.mark.parametrize(
    "package, source",
    [
        ("latent_atlas.toolkit", "from latent_atlas.analysis.plots import mosaic_figure\n"),
        ("latent_atlas.toolkit", "import latent_atlas.cli\n"),
        ("latent_atlas.export", "from latent_atlas.pipeline import Cache\n"),
        ("latent_atlas.analysis", "from latent_atlas.toolkit.runtime import load_model\n"),
        ("latent_atlas.analysis", "from ..toolkit import grid\n"),
        ("latent_atlas.toolkit", "import toolkit.errors\n"),
        ("latent_atlas.analysis", "from latent_atlas import toolkit\n"),
    ],
)
def test_the_check_catches_an_import_that_runs_back_up(tmp_path, package, source):
    path = tmp_path / "bad.py"
    path.write_text(source)
    assert violations([(path, package)]) != []


ANALYSIS_PROBE = """
import importlib, pkgutil, sys
import latent_atlas.analysis as pkg
for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
    importlib.import_module(m.name)
heavy = sorted(n for n in ("torch", "onnxruntime", "onnx") if n in sys.modules)
print(",".join(heavy))
"""


def test_analysis_loads_neither_torch_nor_onnxruntime():
    out = subprocess.run(
        [sys.executable, "-c", ANALYSIS_PROBE], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"latent_atlas.analysis pulled in {out.stdout.strip()}"


def test_analysis_writes_no_files():
    """Rendering returns strings; only the top floor writes (through toolkit.atomic)."""
    writers = ("open(", ".write_text(", ".write_bytes(", "savefig(", "atomic")
    for path in sorted((REPO / "analysis").rglob("*.py")):
        text = path.read_text()
        code = "\n".join(line for line in text.splitlines() if not line.strip().startswith("#"))
        for w in writers:
            if w == "savefig(" and path.name == "plots.py":
                continue  # figure_png_bytes renders into a BytesIO, not a file
            assert w not in code, f"{path.name} calls {w}"


# what a command may import before its first check (report: its flags and batch file, the
# comparisons they make): scikit-learn and scipy.stats cost ~1.5 s, the whole pipeline ~2.5 s
LIGHT_PROBE = """
import sys
import latent_atlas.settings, latent_atlas.commands.grid, latent_atlas.commands.traverse
import latent_atlas.analysis.traversals, latent_atlas.geometry, latent_atlas.cli
import latent_atlas.batchfile, latent_atlas.commands.report
heavy = sorted(n for n in ("sklearn", "scipy.stats", "matplotlib.pyplot", "latent_atlas.pipeline",
                           "latent_atlas.runs") if n in sys.modules)
print(",".join(heavy))
"""


def test_settings_and_the_light_commands_start_without_the_pipeline():
    out = subprocess.run(
        [sys.executable, "-c", LIGHT_PROBE], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"a light import pulled in {out.stdout.strip()}"


# a report of 2-D models draws every figure in pixels (analysis.raster): matplotlib's figures
# (~0.3 s to import) come only with a >2-D model's figures or an SVG/PDF figure format
REPORT_PROBE = """
import sys
import latent_atlas.runs, latent_atlas.commands.report, latent_atlas.sections
print(",".join(sorted(n for n in ("matplotlib.figure", "matplotlib.pyplot", "matplotlib.axes")
                      if n in sys.modules)))
"""


def test_the_report_path_imports_no_matplotlib_figure():
    out = subprocess.run(
        [sys.executable, "-c", REPORT_PROBE], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"the report's modules pulled in {out.stdout.strip()}"


def test_settings_atlas_bound_is_the_atlas_bound():
    from latent_atlas.toolkit.atlas import MAX_STEPS

    from latent_atlas.settings import ATLAS_MAX_STEPS

    assert ATLAS_MAX_STEPS == MAX_STEPS
