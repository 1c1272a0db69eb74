"""SIGINT and SIGTERM as one exception, deferred while files are being swapped into place.

Without this, SIGTERM kills the process where it stands (a hidden temporary folder or a
half-allocated ``.npy`` stays behind), and Ctrl-C can land between the two renames that
replace a folder. With :func:`install`, both signals raise :class:`Interrupted` (a
``KeyboardInterrupt``, so every ``except BaseException`` cleanup runs); inside
:func:`critical` they are held and raised when the section ends, so a swap is never cut in two.
Only the process that installed the handlers is affected: a forked worker that inherits them
gets the default action back.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType, TracebackType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``exit_code`` is the shell's convention (128 + signal)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_owner: int | None = None  # pid of the process that installed the handlers
_depth = 0  # nesting of critical sections
_pending: int | None = None  # a signal held back by a critical section
# A signal whose exception was swallowed: raised inside a weakref callback, a __del__ or a
# garbage-collector run, Python prints "Exception ignored" and goes on. It is raised again at
# the next checkpoint (every critical section, and the end of the command).
_swallowed: int | None = None
# The last signal raised as Interrupted: a library may turn that exception into another
# (pybind11 reports one raised while it converts arguments as "incompatible function
# arguments"), which then surfaces instead of it (see ``raised``).
_raised: int | None = None
_default_unraisable = sys.unraisablehook


def _unraisable(info: sys.UnraisableHookArgs) -> None:
    global _swallowed
    if isinstance(info.exc_value, Interrupted):
        _swallowed = info.exc_value.signum
        return
    _default_unraisable(info)


def checkpoint() -> None:
    """Raise a signal whose first exception was swallowed (see ``_swallowed``)."""
    global _swallowed
    if _swallowed is not None and not _depth:
        signum, _swallowed = _swallowed, None
        _interrupt(signum)


def _handler(signum: int, frame: FrameType | None) -> None:
    global _pending
    if os.getpid() != _owner:  # a forked child: behave as if we had never been installed
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _depth:
        _pending = signum
        return
    _interrupt(signum)


def _interrupt(signum: int) -> None:
    global _raised
    _raised = signum
    raise Interrupted(signum)


def raised() -> int | None:
    """The signal raised as :class:`Interrupted` since :func:`install`, if any: an exception
    that ends the command after it is that signal's, whatever its type."""
    return _raised


def install() -> None:
    """Route SIGINT and SIGTERM of this process to :class:`Interrupted` (main thread only)."""
    global _owner, _raised
    _owner, _raised = os.getpid(), None
    sys.unraisablehook = _unraisable
    for s in SIGNALS:
        signal.signal(s, _handler)


def uninstall() -> None:
    """Back to the default actions: a signal after the command's work ends the process
    quietly instead of raising into interpreter shutdown."""
    global _owner, _pending, _swallowed
    _owner, _pending, _swallowed = None, None, None
    sys.unraisablehook = _default_unraisable
    for s in SIGNALS:
        signal.signal(s, signal.SIG_DFL)


class critical:  # noqa: N801 (used as a context manager: ``with critical():``)
    """Hold SIGINT/SIGTERM for the duration of the block; raise the held one at its end."""

    def __enter__(self) -> None:
        global _depth
        checkpoint()
        _depth += 1

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        global _depth, _pending, _raised
        _depth -= 1
        if _depth == 0 and _pending is not None:
            signum, _pending = _pending, None
            _raised = signum
            raise Interrupted(signum) from exc
