"""Markdown: the same columns as the terminal table, for job summaries and PR comments."""

from __future__ import annotations

from seqbench.report import format_markdown, format_table
from seqbench.schema import ResultRow


class MarkdownExporter:
    name = "markdown"
    suffixes = (".md", ".markdown")
    binary = False

    def render(self, rows: list[ResultRow]) -> str:
        return format_markdown(format_table(rows))
