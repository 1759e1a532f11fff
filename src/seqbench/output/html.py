"""One self-contained HTML page: tables, inline SVG figures, inline CSS and a few lines of
script that sort a table by a clicked header. Nothing is fetched when the page is viewed,
so it opens offline, from a CI artifact or a mail attachment.

This module knows pages, not benchmarks: report.py decides what goes on one. A page is a
list of `Section`s; a figure is a named SVG (`Figure`), so any command that draws one
(a run's plots, a comparison's, a history's) can add it to a page. Every text that comes
from a run is escaped here.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from seqbench.output.layout import TableText


@dataclass(frozen=True)
class Figure:
    """A named SVG drawing, as matplotlib's SVG backend writes one."""

    title: str
    svg: str


@dataclass(frozen=True)
class Section:
    """A heading and its body, already HTML."""

    title: str
    body: str
    anchor: str = ""


# The multipliers that turn a table's figures ('1.2 ms', '3.4k', '0.98 MiB') into numbers to
# sort by; the text a cell shows stays as it is.
_UNITS = {
    "ns": 1e-9, "µs": 1e-6, "ms": 1e-3, "s": 1.0,
    "B": 1.0, "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30, "TiB": 2.0**40,
    "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "×": 1.0, "%": 0.01,
}  # fmt: skip
_NUMBER = re.compile(
    r"^\s*([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)\s*(ns|µs|ms|s|KiB|MiB|GiB|TiB|B|k|M|G|T|×|%)?"
)


def compute_sort_key(text: str) -> float | None:
    """The number a cell's text starts with, in base units ('1.5 ms' -> 0.0015); None when
    it starts with none ('-', 'ok')."""
    found = _NUMBER.match(text)
    if found is None:
        return None
    return float(found.group(1)) * _UNITS.get(found.group(2) or "", 1.0)


def _cell(text: str, kind: str, key: float | None, numeric: bool) -> str:
    attributes = f' class="{kind}"' if kind else ""
    if numeric:
        attributes += f' data-sort="{"Infinity" if key is None else repr(key)}"'
    return f"<td{attributes}>{html.escape(text)}</td>"


def _kind(table: TableText, i: int) -> str:
    """A column's CSS class: figures right-aligned, free text wrapping."""
    return "num" if table.justify[i] == "right" else "wrap" if table.wraps(i) else ""


def format_table_html(table: TableText, sortable: bool = True) -> str:
    """A table, its caption (the constant columns) under it and its notes numbered. With
    `sortable`, a click on a header sorts by that column: numerically where its cells hold
    figures (blank ones last), else by text."""
    keys = [[compute_sort_key(c) for c in row] for row in table.cells]
    numeric = [any(row[i] is not None for row in keys) for i in range(len(table.headers))]
    kinds = [_kind(table, i) for i in range(len(table.headers))]
    head = "".join(
        f'<th class="{k}">{html.escape(h)}</th>' for h, k in zip(table.headers, kinds, strict=True)
    )
    rows = []
    for cells, row_keys in zip(table.cells, keys, strict=True):
        tds = "".join(
            _cell(text, kinds[i], key, numeric[i])
            for i, (text, key) in enumerate(zip(cells, row_keys, strict=True))
        )
        rows.append(f"<tr>{tds}</tr>")
    kind = ' class="sortable"' if sortable else ""
    parts = [f"<table{kind}><thead><tr>{head}</tr></thead><tbody>", *rows, "</tbody></table>"]
    if table.caption:
        parts.append(f'<p class="caption">{html.escape(table.caption)}</p>')
    if table.notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in table.notes)
        parts.append(f'<ol class="notes">{items}</ol>')
    return "\n".join(parts)


def format_pairs_html(pairs: Sequence[tuple[str, str]]) -> str:
    """Key-value pairs (an environment) as a two-column table."""
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in pairs)
    return f'<table class="pairs"><tbody>{rows}</tbody></table>'


def format_lines_html(lines: Sequence[str]) -> str:
    return "".join(f"<p>{html.escape(line)}</p>" for line in lines)


_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_ID = re.compile(r'\bid="([^"]+)"')


def inline_svg(svg: str, prefix: str) -> str:
    """An SVG file's text made fit to sit in a page beside others: without its XML prolog,
    doctype and metadata (which name web addresses), and with every id prefixed, so that
    two figures' clip paths and glyphs never resolve to each other's."""
    body = _METADATA.sub("", _PROLOG.sub("", svg, count=1))
    ids = set(_ID.findall(body))
    if not ids:
        return body

    def rename(match: re.Match[str]) -> str:
        name = match.group(2)
        return f"{match.group(1)}{prefix}{name}" if name in ids else match.group(0)

    return re.sub(r'(\bid="|#)([A-Za-z_][\w.-]*)', rename, body)


def format_figure_html(figure: Figure, prefix: str) -> str:
    svg = inline_svg(figure.svg, prefix)
    return f"<figure>{svg}<figcaption>{html.escape(figure.title)}</figcaption></figure>"


def format_figures_html(figures: Sequence[Figure], prefix: str = "f") -> str:
    return "\n".join(format_figure_html(f, f"{prefix}{i}-") for i, f in enumerate(figures))


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1f24;
       margin: 0 auto; padding: 1.5em 2em; max-width: 1200px; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.8em;
     border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; }
.lead { color: #57606a; margin-top: 0; }
nav a { margin-right: 1em; color: #0969da; text-decoration: none; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 0.5em 0; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #eaeef2; white-space: nowrap; }
th { background: #f6f8fa; text-align: left; } .num { text-align: right; }
td.wrap { white-space: normal; min-width: 24em; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-dir="asc"]::after { content: " ▲"; }
table.sortable th[data-dir="desc"]::after { content: " ▼"; }
table.pairs th { background: none; font-weight: 600; }
.scroll { overflow-x: auto; }
.caption, .notes { color: #57606a; font-size: 0.92em; }
figure { margin: 0.5em 0; display: inline-block; width: calc(50% - 0.6em);
         min-width: 420px; vertical-align: top; }
figure svg { width: 100%; height: auto; }
figcaption { color: #57606a; font-size: 0.9em; }
"""

# Sorts a table by the clicked header: by data-sort where the column has figures.
_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach((th, i) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], up = th.dataset.dir !== "asc";
  th.parentNode.querySelectorAll("th").forEach(h => delete h.dataset.dir);
  th.dataset.dir = up ? "asc" : "desc";
  const key = td => "sort" in td.dataset ? parseFloat(td.dataset.sort) : td.textContent;
  [...body.rows].sort((a, b) => { const x = key(a.cells[i]), y = key(b.cells[i]);
    return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1); }).forEach(r => body.appendChild(r));
}));
"""


def format_page(title: str, lead: Sequence[str], sections: Sequence[Section]) -> str:
    """The whole page: a title, lead lines under it, links to the sections, the sections."""
    links = " ".join(
        f'<a href="#{html.escape(s.anchor or _anchor(s.title, i))}">{html.escape(s.title)}</a>'
        for i, s in enumerate(sections)
    )
    body = "\n".join(
        f'<section id="{html.escape(s.anchor or _anchor(s.title, i))}">'
        f"<h2>{html.escape(s.title)}</h2>\n{s.body}</section>"
        for i, s in enumerate(sections)
    )
    lead_html = "".join(f'<p class="lead">{html.escape(line)}</p>' for line in lead)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style></head>\n"
        f"<body><h1>{html.escape(title)}</h1>{lead_html}<nav>{links}</nav>\n{body}\n"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


def _anchor(title: str, index: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return slug or f"section-{index}"


def scroll(inner: str) -> str:
    """Wide content (a table of many columns) scrolls sideways rather than widening the page."""
    return f'<div class="scroll">{inner}</div>'
