"""The one exception type for mistakes a user can make (bad file, bad flag, bad shape).

The CLI turns it into a single line on stderr and exit code 2. Programming errors stay
ordinary exceptions with tracebacks.
"""

from __future__ import annotations


class AtlasError(Exception):
    """A user-facing error: the message names the file or parameter, what was found and
    what was expected."""
