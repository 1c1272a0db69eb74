"""The one place where user text becomes part of a path, and the one rule for user text that
names things.

The rule (``plain_text``): text that names something — a class name from any source (an
``.npz``'s ``class_names``, an image folder's class folders, a ``--class-names`` file), a model's
label (``--label``, a batch entry's labels, a model folder's name standing for one), a group's
label, a comparison's name — holds no control character (C0, DEL, C1: a newline splits the rows
of a Markdown table), no bidi control (U+202A..U+202E, U+2066..U+2069, U+200E, U+200F, U+061C:
U+202E reorders what a reader sees) and no line or paragraph separator (U+2028, U+2029). Such
text is refused with one line naming its source and index, never escaped: so every output
(Markdown, HTML, JSON keys, figure text, file names) shows the name as given.

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
# C0, DEL and C1 controls; the bidi marks and controls; the line and paragraph separators
_CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
PLAIN_TEXT = "expected plain text (no control characters, line breaks or bidi overrides)"


def _unsafe_char(text: str) -> str | None:
    """What the first character the rule refuses is, with its position; None if none."""
    found = _CONTROL.search(text)
    if found is None:
        return None
    ch = found.group()
    name = unicodedata.name(ch, "")
    kind = ("a bidi control" if unicodedata.bidirectional(ch) in
            ("LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI") or ch in
            "\u200e\u200f\u061c" else "a line break" if ch in "\n\r\u2028\u2029"
            else "a control character")  # fmt: skip
    shown = f"U+{ord(ch):04X}" + (f" ({name})" if name else "")
    return f"{shown}, {kind}, at character {found.start() + 1}"


def plain_text(text: str, where: str) -> str:
    """``text`` if it passes the rule of this module's docstring, else an ``AtlasError``:
    ``where`` names the source and the index (``"class name 3 in x.npz's class_names"``)."""
    bad = _unsafe_char(text)
    if bad is not None:
        raise AtlasError(f"{where} {text!r}: contains {bad}; {PLAIN_TEXT}: rename it")
    return text


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
    bad = _unsafe_char(text)
    if bad is not None:
        raise AtlasError(f"{what} {text!r}: contains {bad}; {expected}")
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
    """Check display text (a model's label): a valid UTF-8 string, not blank, plain text (no
    control characters or bidi overrides, see ``plain_text``), bounded length. It may hold
    anything else (``/``, ``$``, ``..``): it is shown as plain text and never becomes a path."""
    if not isinstance(text, str):
        raise AtlasError(f"{what} {text!r}: a {type(text).__name__}, expected a string")
    _utf8(text, what)
    if not text.strip():
        raise AtlasError(f"{what} {text!r}: empty; expected a display name such as 'VAE'")
    plain_text(text, what)
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
