"""A signal after a command's work ended (its output complete, the interpreter tearing down)
ends the process with the signal's code and one line, never silently; and the script leaves
without the slow teardown in which that signal used to land."""

from __future__ import annotations

import subprocess
import sys

import pytest
from toy_onnx import toy_pair


def _run(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def test_a_sigterm_in_the_teardown_says_so_and_exits_143():
    # the command ends well; then, in the exit handlers (where the interpreter's teardown used
    # to meet SIGTERM with the default action: 143 and not a word), the signal arrives
    code = (
        "import atexit, os, signal\n"
        "from latent_atlas import cli\n"
        "def work():\n"
        "    cli._last_command = 'report'\n"
        "    atexit.register(lambda: os.kill(os.getpid(), signal.SIGTERM))\n"
        "    print('report written', flush=True)\n"
        "    return 0\n"
        "cli.main = work\n"
        "cli.console()\n"
    )
    r = _run(code)
    assert r.returncode == 143 and r.stdout == "report written\n"
    assert r.stderr == (
        "latent-atlas report: interrupted (SIGTERM) after its output was complete; nothing lost\n"
    )


def test_a_sigint_after_the_work_is_130_with_its_line():
    code = (
        "import os, signal, time\n"
        "from latent_atlas import cli\n"
        "cli.main = lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(5), 0)[2]\n"
        "cli.console()\n"
    )
    r = _run(code)
    assert r.returncode == 130 and "interrupted (SIGINT) after its output was complete" in r.stderr


@pytest.mark.slow
def test_the_script_ends_a_command_with_its_own_code(tmp_path):
    toy_pair(tmp_path / "toy")
    ok = [sys.executable, "-m", "latent_atlas", "grid", "--model", str(tmp_path / "toy"),
          "--steps", "3", "--out", str(tmp_path / "g"), "--no-progress"]  # fmt: skip
    r = subprocess.run(ok, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "" and "toy_linear_3x3.png" in r.stdout
    assert (tmp_path / "g" / "toy_linear_3x3.png").stat().st_size > 0
    bad = subprocess.run([*ok[:3], "grid", "--model", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
