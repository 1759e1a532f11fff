"""Markdown: the same columns as the terminal table, for job summaries and PR comments."""

from __future__ import annotations

from seqbench.report import format_table
from seqbench.schema import ResultRow

_ALIGN = {"left": ":---", "right": "---:"}


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


class MarkdownExporter:
    name = "markdown"
    suffixes = (".md", ".markdown")
    binary = False

    def render(self, rows: list[ResultRow]) -> str:
        table = format_table(rows)
        lines = [
            "| " + " | ".join(table.headers) + " |",
            "| " + " | ".join(_ALIGN[j] for j in table.justify) + " |",
        ]
        lines += ["| " + " | ".join(_escape(c) for c in cells) + " |" for cells in table.cells]
        if table.caption:
            lines += ["", f"_{_escape(table.caption)}_"]
        if table.notes:
            lines += [""] + [f"{i}. {_escape(note)}" for i, note in enumerate(table.notes, 1)]
        return "\n".join(lines) + "\n"
