"""The one place where user text becomes part of a path.

``path_component`` accepts a name (``--name``, a batch entry's ``name``) as a single folder or
file name, or refuses it with one line; ``slug`` derives a file-name-safe stem from display text
(labels, folder names) that is never refused; ``unique_slugs`` makes several of them distinct.
Labels themselves stay display text (``display_text``); only their slugs reach the filesystem.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from latent_atlas.toolkit.errors import AtlasError

MAX_CHARS = 100  # characters of a name or a slug
MAX_BYTES = 200  # UTF-8 bytes: below NAME_MAX (255) with room for a temp prefix and suffix
MAX_LABEL_CHARS = 200
# Names the tool itself writes beside or inside the folders it makes: a comparison named like
# one of them would replace (or be replaced by) the tool's own output.
RESERVED = frozenset(
    {
        "index.html", "report.html", "report.md", "metrics.json", "timings.json", "figures",
        "manifest.json", "card.json", ".latent-atlas",
    }
)  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _utf8(text: str, what: str) -> None:
    """Refuse text that is not valid UTF-8: Python keeps undecodable bytes of argv and of file
    names as lone surrogates, which no file, JSON or HTML can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise AtlasError(f"{what} {shown!r}: not valid UTF-8; expected UTF-8 text") from None


def path_component(text: object, what: str = "name") -> str:
    """``text`` as one safe path component, or an ``AtlasError`` naming ``what``.

    Refused: anything but a string, empty or blank, ``.``/``..``, a leading dot (hidden, and
    the tool's temporary names start with one), path separators, NUL and control characters,
    leading or trailing spaces, more than ``MAX_CHARS`` characters or ``MAX_BYTES`` bytes,
    text that is not valid UTF-8, and the names the tool writes itself (``RESERVED``).
    """
    if not isinstance(text, str):
        raise AtlasError(f"{what} {text!r}: a {type(text).__name__}, expected a string")
    _utf8(text, what)
    expected = "expected a plain folder name such as 'vae-vs-ae'"
    if not text.strip():
        raise AtlasError(f"{what} {text!r}: empty; {expected}")
    if text in (".", ".."):
        raise AtlasError(f"{what} {text!r}: names a folder itself; {expected}")
    if "/" in text or "\\" in text:
        raise AtlasError(f"{what} {text!r}: contains a path separator; {expected}")
    if _CONTROL.search(text):
        raise AtlasError(f"{what} {text!r}: contains a control character or NUL; {expected}")
    if text.startswith("."):
        raise AtlasError(f"{what} {text!r}: starts with a dot (a hidden name); {expected}")
    if text != text.strip():
        raise AtlasError(f"{what} {text!r}: leading or trailing spaces; {expected}")
    if len(text) > MAX_CHARS or len(text.encode("utf-8")) > MAX_BYTES:
        raise AtlasError(
            f"{what} {text[:20]!r}…: {len(text)} characters, expected at most {MAX_CHARS}"
        )
    if text.lower() in RESERVED:
        raise AtlasError(f"{what} {text!r}: reserved for a file the tool writes itself; {expected}")
    return text


def label(text: object, what: str = "label") -> str:
    """Check display text (a model's label): a valid UTF-8 string, not blank, no control
    characters, bounded length. It may hold anything else (``/``, ``$``, ``..``): it is shown
    as plain text and never becomes a path."""
    if not isinstance(text, str):
        raise AtlasError(f"{what} {text!r}: a {type(text).__name__}, expected a string")
    _utf8(text, what)
    if not text.strip():
        raise AtlasError(f"{what} {text!r}: empty; expected a display name such as 'VAE'")
    if _CONTROL.search(text):
        raise AtlasError(f"{what} {text!r}: contains a control character or NUL")
    if len(text) > MAX_LABEL_CHARS:
        raise AtlasError(
            f"{what} {text[:20]!r}…: {len(text)} characters, expected at most {MAX_LABEL_CHARS}"
        )
    return text


def display_text(text: str) -> str:
    """Text fit for a title, a JSON value or an HTML page: undecodable bytes of a file name
    (lone surrogates) become U+FFFD instead of failing later."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def slug(text: str, fallback: str = "model") -> str:
    """A file-name stem derived from display text: ASCII letters, digits, ``.``, ``_`` and
    ``-`` only, no leading dot or dash, at most 40 characters; ``fallback`` when nothing is
    left. Different texts may share a slug: use :func:`unique_slugs` for several."""
    ascii_text = (
        unicodedata.normalize("NFKD", display_text(text)).encode("ascii", "ignore").decode()
    )
    out = _UNSAFE.sub("-", ascii_text).strip(".-")[:40].strip(".-")
    if not out or out.lower() in RESERVED:
        out = fallback
    return out


def unique_slugs(texts: Sequence[str], fallback: str = "model") -> list[str]:
    """One slug per text, made distinct (case-insensitively: some file systems fold case) by
    appending ``-2``, ``-3``, … in order."""
    out: list[str] = []
    seen: set[str] = set()
    for i, text in enumerate(texts, 1):
        base = slug(text, f"{fallback}-{i}")
        candidate, n = base, 1
        while candidate.lower() in seen:
            n += 1
            candidate = f"{base}-{n}"
        seen.add(candidate.lower())
        out.append(candidate)
    return out
