"""benchmarks/vs_ref.py (issue 25): its flags, its pairing, its arithmetic and its measuring.
The benchmark itself (minutes) is never run here."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load():
    spec = importlib.util.spec_from_file_location("vs_ref", REPO / "benchmarks" / "vs_ref.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["vs_ref"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


vs_ref = _load()
Sample = vs_ref.Sample


def test_defaults():
    args = vs_ref.parse_args([])
    assert (args.ref, args.runs, args.warmup) == ("807a9a8", 5, 1)
    assert args.reports == ("two-model", "five-seed") and not args.suite
    assert args.ref_dir is None and args.json is None


def test_flags_reach_the_namespace(tmp_path):
    argv = ["--ref", "main~3", "--runs", "2", "--warmup", "0", "--suite", "--suite-runs", "3",
            "--reports", "five-seed,five-seed", "--ref-dir", str(tmp_path),
            "--json", str(tmp_path / "r.json")]  # fmt: skip
    args = vs_ref.parse_args(argv)
    assert (args.ref, args.runs, args.warmup, args.suite_runs) == ("main~3", 2, 0, 3)
    assert args.reports == ("five-seed",) and args.suite  # a name given twice runs once
    assert args.ref_dir == tmp_path and args.json == tmp_path / "r.json"
    assert vs_ref.parse_args(["--suite", "--no-reports"]).reports == ()


@pytest.mark.parametrize(
    "argv",
    [["--runs", "0"], ["--runs", "-1"], ["--runs", "two"], ["--warmup", "-1"],
     ["--suite-runs", "0"], ["--ref", ""], ["--ref", "--help"], ["--ref", "a b"],
     ["--reports", "three-model"], ["--reports", ","], ["--no-reports"], ["--bogus"]],
)  # fmt: skip
def test_mistakes_are_refused_with_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        vs_ref.parse_args(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_edges_are_accepted():
    args = vs_ref.parse_args(["--runs", "1", "--warmup", "0", "--suite-runs", "1"])
    assert (args.runs, args.warmup, args.suite_runs) == (1, 0, 1)


def test_pairs_alternate_which_side_runs_first():
    orders = [vs_ref.pair_order(i) for i in range(4)]
    assert orders == [("ref", "tree"), ("tree", "ref"), ("ref", "tree"), ("tree", "ref")]
    firsts = [o[0] for o in orders]
    assert firsts.count("ref") == firsts.count("tree")


def test_ratio_known_answers():
    assert vs_ref.ratio(5.0, 10.0) == 0.5
    assert vs_ref.ratio(3.0, 2.0) == 1.5
    assert vs_ref.ratio(0.0, 0.0) == 1.0
    assert vs_ref.ratio(1.0, 0.0) == float("inf")


def test_summary_is_the_ratio_of_the_medians():
    ref = [Sample(10, 18, 440), Sample(12, 20, 450), Sample(11, 19, 442)]
    tree = [Sample(5, 9, 400), Sample(7, 8, 390), Sample(6.5, 30, 420)]
    s = vs_ref.summarise({"ref": ref, "tree": tree})
    assert s["ref"] == {"wall_s": 11, "cpu_s": 19, "peak_rss_mib": 442}
    assert s["tree"] == {"wall_s": 6.5, "cpu_s": 9, "peak_rss_mib": 400}
    assert s["ratio"] == pytest.approx({"wall_s": 6.5 / 11, "cpu_s": 9 / 19,
                                        "peak_rss_mib": 400 / 442})  # fmt: skip
    # an even count: the mean of the middle two
    even = vs_ref.summarise({"ref": ref[:2], "tree": tree[:2]})
    assert even["ref"]["wall_s"] == 11 and even["tree"]["wall_s"] == 6
    assert even["ratio"]["wall_s"] == pytest.approx(6 / 11)
    with pytest.raises(ValueError, match="no runs for tree"):
        vs_ref.summarise({"ref": ref, "tree": []})


def test_table_prints_medians_and_ratios():
    s = vs_ref.summarise({"ref": [Sample(11.4, 18.0, 442)], "tree": [Sample(5.1, 8.2, 430)]})
    text = vs_ref.table("two-model report", s, 1)
    lines = text.splitlines()
    assert lines[0].startswith("two-model report (median of 1 run per side")
    assert lines[2].split() == ["ref", "11.40", "18.00", "442"]
    assert lines[3].split() == ["tree", "5.10", "8.20", "430"]
    assert lines[4].split() == ["tree/ref", "0.45", "0.46", "0.97"]


def test_report_command_lines(tmp_path):
    side = vs_ref.Side("ref", tmp_path, tmp_path / "bin")
    two = vs_ref.report_argv(side, "two-model", tmp_path / "out")
    assert two == [str(tmp_path / "bin" / "latent-atlas"), "report", "--no-progress", "--out",
                   str(tmp_path / "out"), "--model", "artifacts/fashion-mnist/vae",
                   "--model", "artifacts/fashion-mnist/ae"]  # fmt: skip
    assert vs_ref.report_argv(side, "five-seed", tmp_path / "o") == two[:4] + [str(tmp_path / "o")]
    with pytest.raises(ValueError, match="unknown report"):
        vs_ref.report_argv(side, "three-model", tmp_path)


def test_each_side_imports_only_its_own_code(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.setenv("VIRTUAL_ENV", "/elsewhere/.venv")
    env = vs_ref.clean_env(vs_ref.Side("ref", tmp_path, tmp_path / "bin"))
    assert "PYTHONPATH" not in env and "VIRTUAL_ENV" not in env
    assert env["PATH"].split(":")[0] == str(tmp_path / "bin")


def test_measure_reads_the_runs_own_cpu_and_peak(tmp_path):
    """A child that holds 150 MiB and spins 0.1 CPU s; then a small one: its peak is its own,
    not the largest child's so far (what RUSAGE_CHILDREN would say). Measured from a small
    process, as the benchmark is one: Linux carries the parent's peak over fork and exec."""
    spin = "import time\nx = bytearray(150 << 20)\nt = time.process_time()\n"
    spin += "while time.process_time() - t < 0.1: pass\n"
    probe = (
        "import sys, json\n"
        f"sys.path.insert(0, {str(REPO / 'benchmarks')!r})\n"
        "import vs_ref\n"
        f"big = vs_ref.measure([sys.executable, '-c', {spin!r}], vs_ref.Path('.'))\n"
        "small = vs_ref.measure([sys.executable, '-c', 'pass'], vs_ref.Path('.'))\n"
        "print(json.dumps([vs_ref.asdict(big), vs_ref.asdict(small)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout  # fmt: skip
    big, small = (Sample(**d) for d in json.loads(out))
    assert big.peak_rss_mib >= 150 and big.cpu_s >= 0.1 and big.wall_s >= big.cpu_s * 0.5
    assert small.peak_rss_mib < 100 and small.cpu_s < big.cpu_s


def test_a_failing_command_is_an_error_with_its_stderr(tmp_path):
    with pytest.raises(RuntimeError, match=r"exit 3\n.*boom"):
        code = "import sys; print('boom', file=sys.stderr); sys.exit(3)"
        vs_ref.measure([sys.executable, "-c", code], tmp_path)
