"""The claims at a glance: a forest plot of the verdicts across seeds, drawn as SVG text.

One row per claim and reading (the grid as meant, the figure as drawn, the embeddings, the
class map); a claim judged on several measures (claim 2) gets one indented row per measure
under it. Each row has its own axis (the measures have different units): the 95 % interval as a
bar in the verdict's colour with its centre marked, every seed (one group) or pairing (two
groups) as a dot, the threshold as a line (the refuting edge dashed where it differs), the
confirming side shaded. SVG, not a raster: crisp at any zoom, small, its text selectable; the
colours follow the report's light/dark palette (CSS variables, with fallbacks for a viewer that
shows the file alone).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

from latent_atlas.analysis.studies import Finding

WIDTH = 960
LABEL_W, STRIP_X0, STRIP_X1, VERDICT_X = 380, 392, 790, 800
ROW_H, SUB_H, TOP = 24, 17, 46
COLOURS = {
    "confirmed": "var(--ok, #1a7f37)",
    "refuted": "var(--bad, #c62828)",
    "inconclusive": "var(--meh, #8a6d00)",
    "not supported": "var(--meh, #8a6d00)",
}
MUTED = "var(--muted, #5b5b66)"


def _colour(verdict: str) -> str:
    return COLOURS.get(verdict, MUTED)


def _points(m: Any) -> list[float]:
    """The dots of a measure: each seed's value (one group) or each pairing's difference."""
    groups = list(m.groups)
    if len(groups) == 1:
        return [float(v) for v in m.per_seed[groups[0]] if v is not None]
    a, b = m.per_seed[groups[0]], m.per_seed[groups[1]]
    return [float(y) - float(x) for x in a for y in b if x is not None and y is not None]


def _axis(m: Any, dots: list[float]) -> tuple[float, float]:
    t = m.threshold
    vals = [*dots, t.value, t.refute_value]
    if m.interval is not None:
        vals += [m.interval.low, m.interval.high]
    vals = [v for v in vals if math.isfinite(v)]
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.08 or max(abs(hi), 1.0) * 0.1
    return lo - pad, hi + pad


def _row(m: Any, y: float, h: float, title: str, verdict: str, note: str) -> list[str]:
    """SVG elements of one measure's row, centred at height ``y``."""
    out = []
    dots = _points(m)
    lo, hi = _axis(m, dots)

    def x(v: float) -> float:
        return STRIP_X0 + (v - lo) / (hi - lo) * (STRIP_X1 - STRIP_X0)

    t = m.threshold
    up = t.side in (">", ">=")
    tx = x(t.value)
    shade = (tx, STRIP_X1 - tx) if up else (STRIP_X0, tx - STRIP_X0)
    out.append(
        f'<rect x="{shade[0]:.1f}" y="{y - h / 2 + 1:.1f}" width="{max(shade[1], 0):.1f}" '
        f'height="{h - 2:.1f}" fill="var(--ok, #1a7f37)" fill-opacity="0.12"/>'
    )
    out.append(
        f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{y - h / 2 + 1:.1f}" y2="{y + h / 2 - 1:.1f}" '
        'stroke="currentColor" stroke-width="1.2"/>'
    )
    if t.refute is not None:
        rx = x(t.refute_value)
        out.append(
            f'<line x1="{rx:.1f}" x2="{rx:.1f}" y1="{y - h / 2 + 1:.1f}" '
            f'y2="{y + h / 2 - 1:.1f}" stroke="currentColor" stroke-dasharray="3 2"/>'
        )
    for i, d in enumerate(dots):
        jitter = ((i * 7) % 5 - 2) * (h / 14)
        out.append(
            f'<circle cx="{x(d):.1f}" cy="{y + jitter:.1f}" r="2" fill="{MUTED}" '
            'fill-opacity="0.55"/>'
        )
    colour = _colour(verdict)
    if m.interval is not None:
        iv = m.interval
        out.append(
            f'<line x1="{x(iv.low):.1f}" x2="{x(iv.high):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{colour}" stroke-width="{4 if h >= ROW_H else 3}" stroke-linecap="round"/>'
        )
        c = x(iv.centre)
        s = 4 if h >= ROW_H else 3
        out.append(
            f'<path d="M{c:.1f},{y - s:.1f} L{c + s:.1f},{y:.1f} L{c:.1f},{y + s:.1f} '
            f'L{c - s:.1f},{y:.1f} Z" fill="{colour}" stroke="var(--bg, #fff)" stroke-width="0.8"/>'
        )
    out.append(f'<text x="{VERDICT_X}" y="{y + 4:.1f}" fill="{colour}" font-weight="700" '
               f'font-size="{12 if h >= ROW_H else 11}">{escape(verdict)}</text>')  # fmt: skip
    if note:
        out.append(f'<text x="{VERDICT_X + 128}" y="{y + 4:.1f}" fill="{MUTED}" '
                   f'font-size="11">{escape(note)}</text>')  # fmt: skip
    return out


def forest_svg(findings: Sequence[Finding], title: str = "The claims across seeds") -> str:
    """The forest plot of ``findings`` (those judged across seeds, with measures) as SVG text.

    Parameters
    ----------
    findings : sequence of Finding
        Findings with ``measures`` (``analysis.studies.seed.Measure``: interval, threshold,
        per-seed values); findings without measures are left out.
    title : str
        The figure's heading.

    Returns
    -------
    str
        A standalone ``<svg>`` element (UTF-8 text), width 960 user units, one row per claim
        and reading (plus one per measure of a multi-measure claim).
    """
    rows: list[tuple[str, Any, str, str, bool]] = []  # (title, measure, verdict, note, main)
    for f in findings:
        if not f.measures:
            continue
        label = f.label or f.claim
        if len(f.measures) == 1:
            rows.append((label, f.measures[0], f.verdict, "", True))
            continue
        conf = sum(m.verdict == "confirmed" for m in f.measures)
        note = f"{conf} of {len(f.measures)} clearer, needs {f.figures.get('needed', '?'):g}"
        rows.append((label, None, f.verdict, note, True))
        for m in f.measures:
            name = m.label.split(",")[0].replace(" in the class map", "")
            rows.append((name, m, m.verdict, "", False))
    height = TOP + sum(ROW_H if main else SUB_H for *_, main in rows) + 26
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" style="max-width:{WIDTH}px;color:var(--fg, #1b1b1f)" role="img" '
        f'aria-labelledby="forest-title" font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="forest-title">{escape(title)}</title>',
        f'<text x="0" y="16" font-size="14" font-weight="700" fill="currentColor">'
        f"{escape(title)}</text>",
        f'<text x="0" y="34" font-size="11" fill="{MUTED}">Each row on its own scale: the 95 % '
        "interval (bar, ◆ its centre) in the verdict's colour, the seeds or pairings (dots), "
        "the threshold (line; dashed: the refuting edge), the confirming side shaded.</text>",
    ]
    y = TOP
    for i, (name, m, verdict, note, main) in enumerate(rows):
        h = ROW_H if main else SUB_H
        cy = y + h / 2
        if main and i:
            parts.append(f'<line x1="0" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}" '
                         'stroke="var(--line, #d8d8e0)"/>')  # fmt: skip
        indent = 0 if main else 14
        weight = "600" if main else "400"
        text = name if len(name) <= 58 else name[:56] + "…"
        parts.append(f"<g><title>{escape(name)}: {escape(verdict)}</title>")
        size = 12 if main else 11
        parts.append(f'<text x="{indent}" y="{cy + 4:.1f}" font-weight="{weight}" '
                     f'fill="currentColor" font-size="{size}">{escape(text)}</text>')  # fmt: skip
        if m is not None:
            parts += _row(m, cy, h, name, verdict, note)
        else:
            parts.append(f'<text x="{VERDICT_X}" y="{cy + 4:.1f}" fill="{_colour(verdict)}" '
                         f'font-weight="700">{escape(verdict)}</text>')  # fmt: skip
            parts.append(f'<text x="{STRIP_X0}" y="{cy + 4:.1f}" fill="{MUTED}" '
                         f'font-size="11">{escape(note)}</text>')  # fmt: skip
        parts.append("</g>")
        y += h
    parts.append("</svg>")
    return "\n".join(parts)
