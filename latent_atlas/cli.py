"""The `latent-atlas` command: the top parser, and the one place a command's errors and
signals become one line and an exit code. Each command's flags and handler live in
``latent_atlas.commands.<command>`` (flags → frozen config → one runner call → where the output
went); flags several commands share are built in ``latent_atlas.commands.flags``. The only
layer that reads ``sys.argv`` or the environment."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from latent_atlas.commands import (
    analyze,
    bench,
    export,
    geometry,
    grid,
    report,
    sweep,
    train,
    traverse,
)
from latent_atlas.toolkit.errors import AtlasError

# the order of `latent-atlas --help`
COMMANDS = [train, export, sweep, grid, traverse, geometry, bench, analyze, report]


# A negative number in any spelling float() reads is a value, not a flag: argparse's own pattern
# knows only "-4" and "-.5", so "--range -1e30 1e30" was refused as an unknown option.
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$|^-(inf|infinity|nan)$", re.I)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2), like every other error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # "--batch 3" must not be read as "--batch-size 3" (nor "--over" as "--overwrite")
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.commands: Mapping[str, argparse.ArgumentParser] = {}  # the top parser's, by name
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # Python < 3.13 drops a "--" even when it is a flag's value: `--name=--` (the only way
        # a one-value flag gets "--" here; `--name --` is refused) gave [], not "--"
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            value = self._get_value(action, "--")
            self._check_value(action, value)
            return value
        return super()._get_values(action, arg_strings)

    def parse(self, argv: Sequence[str] | None) -> argparse.Namespace:
        """``parse_args``, but a command's unknown flags are reported by the command's own
        parser ("latent-atlas grid: error: …", as every other error), not by the top one, and
        no flag takes an empty value."""
        parsed, extra = self.parse_known_args(argv)
        where = self.commands.get(getattr(parsed, "command", ""), self)
        if extra:
            where.error(f"unrecognized arguments: {' '.join(extra)}")
        # an empty value is never meant: `--out=` from an unset $OUT must not mean the default
        for action in where._actions:
            value = getattr(parsed, action.dest, None)
            if "" in (value if isinstance(value, list) else [value]):
                flag = action.option_strings[-1] if action.option_strings else action.metavar
                where.error(f"{flag or action.dest} '': empty; expected a value")
        return parsed


def build_parser() -> _Parser:
    parser = _Parser(
        prog="latent-atlas",
        description="See and measure what an autoencoder's latent space has learned.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    parser.commands = sub.choices
    return parser


def _quiet_libraries() -> None:
    """Keep stderr to our own line. With HOME pointing nowhere, matplotlib logs two warnings
    about its config folder and onnxruntime prints one about its telemetry id, at import."""
    import logging
    import warnings

    logging.getLogger("matplotlib").setLevel(logging.ERROR)
    # a label in a script the font lacks is drawn as boxes: said once here, not per glyph
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
    if "onnxruntime" in sys.modules:
        return
    try:
        saved = os.dup(2)
    except OSError:
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import onnxruntime  # noqa: F401
        except Exception:
            pass  # the command that needs it says so in its own words
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        # pass on anything but onnxruntime's own warnings
        for line in sink.read().decode("utf-8", "replace").splitlines():
            if line.strip() and "W:onnxruntime" not in line:
                print(line, file=sys.stderr)


def _one_line(command: str, message: str) -> None:
    print(f"latent-atlas {command}: error: {message}", file=sys.stderr)


def _interrupted(command: str, code: int) -> int:
    """One line that says what an interrupt left: outputs finished before it (each whole, new,
    replacing its previous version in one step) and that nothing else was touched."""
    from latent_atlas.toolkit.atomic import written

    name = "SIGTERM" if code == 143 else "SIGINT"
    done = written()
    if not done:
        what = "nothing written; any previous output is as it was, no partial output left"
    else:
        shown = ", ".join(str(p) for p in done[:5]) + (f" and {len(done) - 5} more"
                                                         if len(done) > 5 else "")  # fmt: skip
        what = (f"the new {shown} {'is' if len(done) == 1 else 'are'} already in place, whole "
                "(replacing any previous version); nothing else written, no partial output "
                "left")  # fmt: skip
    print(f"latent-atlas {command}: interrupted ({name}); {what}", file=sys.stderr)
    return code


_last_command = "?"  # the command the late handler names (see ``console``)


def _late(signum: int, frame: object) -> None:
    """SIGINT/SIGTERM after the command's work ended: its output is complete; say so (one
    line, as for any other end) and exit with the signal's code."""
    name = signal.Signals(signum).name
    with contextlib.suppress(OSError):
        os.write(2, f"latent-atlas {_last_command}: interrupted ({name}) after its output was "
                    "complete; nothing lost\n".encode())  # fmt: skip
    os._exit(128 + signum)


def console() -> NoReturn:
    """The ``latent-atlas`` script: :func:`main`, then out without the interpreter's teardown.

    Freeing what the process is about to lose anyway (sessions, arrays, modules) takes about
    two seconds after a report; a SIGTERM then met the default action and ended a finished,
    successful run with 143 and no line. Here a late signal is reported by :func:`_late`
    (installed before ``main``, which restores it when it ends, so no moment is uncovered),
    the exit handlers that must run (Ray, multiprocessing, temporary files) run, and the
    process ends with ``os._exit`` once its streams are flushed."""
    import atexit

    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, _late)
    code = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    from latent_atlas.toolkit import signals

    for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 print escaped
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.getsignal(s) for s in signals.SIGNALS} if main_thread else {}
    if main_thread:
        signals.install()  # SIGTERM like SIGINT: temporaries removed, previous output kept
    try:
        return _run(argv)
    finally:
        if main_thread:
            signals.uninstall()
            for s, handler in previous.items():
                signal.signal(s, handler)


def _run(argv: Sequence[str] | None) -> int:
    from latent_atlas.toolkit import atomic, signals
    from latent_atlas.toolkit.errors import describe
    from latent_atlas.toolkit.signals import Interrupted

    command = "?"
    try:
        try:
            args = build_parser().parse(argv)
        except SystemExit as exc:  # --help, or a usage error already printed
            return int(exc.code or 0)
        command = args.command
        global _last_command
        _last_command = command
        _quiet_libraries()
        # no tqdm monitor thread: a thread that wakes every 10 s to check on progress bars
        from tqdm import tqdm as _tqdm

        _tqdm.monitor_interval = 0
        atomic.set_command(command)  # markers record which command wrote each output
        try:
            code = int(args.func(args) or 0)
        finally:
            atomic.set_command(None)
        signals.checkpoint()  # a signal whose exception a library swallowed still counts
        return code
    except AtlasError as exc:
        _one_line(command, str(exc))
        return 2
    except KeyboardInterrupt as exc:
        return _interrupted(command, exc.exit_code if isinstance(exc, Interrupted) else 130)
    except Exception as exc:  # last resort: the causes are fixed where they arise
        if (signum := signals.raised()) is not None:  # the signal's exception, turned into this
            return _interrupted(command, 128 + signum)
        if os.environ.get("LATENT_ATLAS_TRACEBACK"):
            raise
        _one_line(command, f"{describe(exc)} (set LATENT_ATLAS_TRACEBACK=1 for details)")
        return 2


if __name__ == "__main__":
    console()
