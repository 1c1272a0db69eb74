"""The one exception type for mistakes a user can make (bad file, bad flag, bad shape).

The CLI turns it into a single line on stderr and exit code 2. Programming errors stay
ordinary exceptions with tracebacks.
"""

from __future__ import annotations


class AtlasError(Exception):
    """A user-facing error: the message names the file or parameter, what was found and
    what was expected."""


def describe(exc: BaseException) -> str:
    """One line for any failure: an ``AtlasError``'s own message; for anything else (a bug, a
    library's error, an allocation that failed) its type and first line, so a batch can name
    it and go on."""
    if isinstance(exc, AtlasError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory (MemoryError); try a smaller grid, batch size or model"
    lines = str(exc).strip().splitlines()
    first = lines[0][:300] if lines else ""
    return f"unexpected {type(exc).__name__}" + (f": {first}" if first else "")
