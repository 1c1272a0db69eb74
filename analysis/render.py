"""Report rendering: templates in, strings out. HTML autoescapes; Markdown escapes with its own
rules (no HTML, no broken table rows). Writes nothing: the runner writes the strings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
from latent_atlas.analysis.compare import Row
from latent_atlas.analysis.studies import Finding


def md_escape(value: Any) -> str:
    """Markdown output: text from files (names, paths) can neither become HTML, which many
    Markdown renderers pass through, nor break a table row."""
    text = str(value)
    for raw, safe in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|")):
        text = text.replace(raw, safe)
    return text


def _env(markdown: bool) -> jinja2.Environment:
    """HTML templates autoescape; Markdown templates pass every value through md_escape."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("latent_atlas.analysis", "templates"),
        autoescape=not markdown,
        finalize=md_escape if markdown else None,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def fmt(v: Any) -> str:
    """How every number appears in the HTML/Markdown: 4 significant digits."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.4g}"


def render(template: str, **context: Any) -> str:
    env = _env(markdown=template.endswith(".md.j2"))
    env.filters["fmt"] = fmt
    return env.get_template(template).render(**context)


# ---------------------------------------------------------------------------- report layout
# A report is a list of sections; both templates (HTML and Markdown) loop over them, so adding
# a section is one entry in the list the runner builds, and a figure kind is written once.
@dataclass(frozen=True)
class FigureImage:
    file: str  # file name under figures/: made from indices and grid keys, never user text
    title: str
    alt: str
    png: bytes  # the file's bytes: PNG, or SVG text for a file named *.svg (shown inline)


@dataclass(frozen=True)
class FigureRow:
    """Figures shown side by side (one per model, or one wide figure)."""

    figures: tuple[FigureImage, ...]
    kind: str = "figures"


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    id: str = ""
    sortable: bool = True
    code: bool = False  # first column shows keys (metrics.json paths) as code
    kind: str = "table"
    # non-empty: the table is folded away under this one-line summary (HTML <details>; the
    # Markdown report shows it as the table's caption), e.g. per-seed values one click away
    collapsed: str = ""


@dataclass(frozen=True)
class Findings:
    findings: tuple[Finding, ...]
    kind: str = "findings"


@dataclass(frozen=True)
class Notes:
    """Short lines of text (e.g. what was not available and why)."""

    lines: tuple[str, ...]
    kind: str = "notes"


Block = FigureRow | Table | Findings | Notes


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: tuple[Block, ...]
    intro: str = ""


def figures_of(sections: list[Section]) -> list[FigureImage]:
    return [f for s in sections for b in s.blocks if isinstance(b, FigureRow) for f in b.figures]
