"""Markdown: the same columns as the terminal table, for job summaries and PR comments; with
three or more lengths, the scaling table and its crossovers too."""

from __future__ import annotations

from seqbench.core.schema import ResultRow
from seqbench.judge.scaling import compute_scaling
from seqbench.output.layout import format_markdown
from seqbench.output.scaling import format_crossovers, format_scaling
from seqbench.output.tables import format_table


class MarkdownExporter:
    name = "markdown"
    suffixes = (".md", ".markdown")
    binary = False

    def render(self, rows: list[ResultRow]) -> str:
        text = format_markdown(format_table(rows))
        scaling = compute_scaling(rows)
        if not scaling.keys:
            return text
        text += "\n" + format_markdown(format_scaling(scaling), title="How cost grows with T")
        crossovers = format_crossovers(scaling)
        return text + "".join(f"\n- {line}" for line in crossovers) + ("\n" if crossovers else "")
