"""How the API's results show themselves in Jupyter: ``_repr_html_`` (a table, the mosaic
inline) and ``_repr_png_`` (the mosaic) for a decoded grid, an analysis and a written report.

IPython asks an object for these methods when it is the value of a cell; nothing here runs
otherwise. The mosaic is the report's own figure (``analysis.plots.mosaic_figure``).
(The geodesic result belongs to the geometry work: it should get the same two methods there.)
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, fields
from html import escape
from pathlib import Path
from typing import Any

from latent_atlas.toolkit.grid import DecodedGrid

DPI = 80
FILES = ("report.html", "explore.html")


def mosaic_png(cells: Any, x: Any, y: Any, title: str = "", labels: Any = None) -> bytes:
    """The decoded grid as the report draws it (z₁ upward), PNG bytes."""
    from latent_atlas.analysis import plots

    kw = {} if labels is None else {"labels": tuple(labels)}
    return plots.figure_png_bytes(plots.mosaic_figure(cells, x, y, title, **kw), dpi=DPI)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}" style="max-width:420px">'


def _table(rows: list[tuple[str, str]], caption: str = "") -> str:
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    body = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(v)}</td></tr>"
                   for k, v in rows)  # fmt: skip
    return f"<table>{cap}{body}</table>"


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "—" if v is None else str(v)


@dataclass
class Grid(DecodedGrid):
    """A decoded grid (:class:`~latent_atlas.toolkit.grid.DecodedGrid`) that shows itself in a
    notebook: the mosaic (PNG) and, as HTML, its shape and range beside the mosaic."""

    @classmethod
    def of(cls, grid: DecodedGrid) -> Grid:
        return cls(**{f.name: getattr(grid, f.name) for f in fields(DecodedGrid)})

    def _repr_png_(self) -> bytes:
        return mosaic_png(self.cells, self.x, self.y, self.spec.describe(), self.labels)

    def _repr_html_(self) -> str:
        ny, nx = self.cells.shape[:2]
        rows = [
            ("grid", self.spec.describe()),
            ("cells", f"{ny} × {nx}, each {'×'.join(map(str, self.cells.shape[2:]))}"),
            (f"{self.labels[0]} range", f"{self.x[0]:.3g} … {self.x[-1]:.3g}"),
            (f"{self.labels[1]} range", f"{self.y[0]:.3g} … {self.y[-1]:.3g}"),
            ("mean brightness", f"{float(self.brightness.mean()):.3f}"),
        ]
        return (f"<div>{_table(rows, 'Decoded grid')}"
                f"{_img(self._repr_png_(), 'mosaic of the decoded grid')}</div>")  # fmt: skip


def analysis_html(a: Any) -> str:
    """A :class:`~latent_atlas.pipeline.ModelAnalysis` as HTML: its key metrics, what was not
    available, and the mosaic of its first grid."""
    from latent_atlas.analysis.results import KEY_METRICS

    m = a.metrics
    rows = [("model", f"{a.name} ({a.provenance.latent_dim}-D latent)")]
    rows += [(km.label, _num(km.value(m))) for km in KEY_METRICS]
    rows += [(what, f"not available: {why}") for what, why in m.not_available.items()]
    html = _table(rows, f"Analysis of {a.name}")
    if a.grids:
        g = a.grids[0].grid
        png = mosaic_png(g.cells, g.x, g.y, f"{a.name}: {g.spec.describe()}", g.plane.labels)
        html += _img(png, f"mosaic of {a.name}'s grid")
    return f"<div>{html}</div>"


def analysis_png(a: Any) -> bytes | None:
    if not a.grids:
        return None
    g = a.grids[0].grid
    return mosaic_png(g.cells, g.x, g.y, f"{a.name}: {g.spec.describe()}", g.plane.labels)


class Report(type(Path())):  # type: ignore[misc]
    """The folder :func:`latent_atlas.write_report` wrote (a :class:`pathlib.Path`), showing
    itself in a notebook as the verdicts, the forest plot of the claims when there is one, and
    links to report.html and explore.html."""

    def _metrics(self) -> dict[str, Any]:
        return json.loads((self / "metrics.json").read_text())

    def _repr_html_(self) -> str:
        m = self._metrics()
        found = m.get("group_findings") or m.get("findings") or []
        html, explore = (escape((self.resolve() / f).as_uri()) for f in FILES)
        parts = [f"<p>Report <code>{escape(str(self))}</code>: <a href='{html}'>report.html</a>, "
                 f"<a href='{explore}'>explore.html</a></p>"]  # fmt: skip
        forest = self / "figures" / "claims_forest.svg"
        if forest.is_file():
            parts.append(f"<div style='max-width:960px'>{forest.read_text()}</div>")
        if found:
            rows = "".join(
                f"<tr><td style='text-align:left'>{escape(f['claim'])}</td>"
                f"<td><b>{escape(f['verdict'])}</b></td>"
                f"<td style='text-align:left'>{escape(f.get('summary') or f['evidence'])}</td></tr>"
                for f in found
            )
            parts.append("<table><tr><th>claim</th><th>verdict</th><th>in one sentence</th></tr>"
                         f"{rows}</table>")  # fmt: skip
        else:
            models = ", ".join(m.get("order", []))
            parts.append(f"<p>Models: {escape(models)}; no study judged.</p>")
        return "<div>" + "".join(parts) + "</div>"
