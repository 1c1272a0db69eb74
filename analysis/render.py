"""Report rendering: templates in, strings out. HTML autoescapes; Markdown escapes with its own
rules (no HTML, no broken table rows). Writes nothing: the runner writes the strings."""

from __future__ import annotations

from typing import Any

import jinja2


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
