"""A table as text: columns declared as data, constant columns folded into the caption,
and the same table as GitHub markdown. The terminal (terminal.py) and the markdown export
both render a `TableText`, so the terminal and a PR comment show the same figures."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    """One column of a table: a header and how to write an item's cell (given its context)."""

    header: str
    value: Callable[[Any, Any], str]
    justify: str = "right"
    # A constant column (same text in every row) moves to the table's caption.
    fold: bool = False
    # When the table is too wide for the terminal, columns go in this order (1 first).
    drop: int | None = None
    # Free text (notes on steps, say) that wraps onto more lines rather than crowding out
    # the other columns.
    wrap: bool = False


@dataclass(frozen=True)
class TableText:
    """A table as text cells: headers, justification, rows, and a caption of constants."""

    headers: list[str]
    justify: list[str]
    cells: list[list[str]]
    caption: str
    drop: list[int | None] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)  # note i+1's text
    wrap: list[bool] = dataclasses.field(default_factory=list)

    def drop_order(self) -> list[int]:
        """Indices of the columns that may give way to a narrow terminal, first to go first."""
        return [i for _, i in sorted((d, i) for i, d in enumerate(self.drop) if d is not None)]

    def without(self, columns: list[int]) -> TableText:
        """The table less some columns, with a caption note naming them."""
        if not columns:
            return self
        keep = [i for i in range(len(self.headers)) if i not in columns]
        note = f"not shown at this width: {', '.join(self.headers[i] for i in columns)}"
        return TableText(
            headers=[self.headers[i] for i in keep],
            justify=[self.justify[i] for i in keep],
            cells=[[c[i] for i in keep] for c in self.cells],
            caption=f"{self.caption}; {note}" if self.caption else note,
            drop=[self.drop[i] for i in keep],
            notes=self.notes,
            wrap=[self.wraps(i) for i in keep],
        )

    def wraps(self, i: int) -> bool:
        return bool(self.wrap) and self.wrap[i]


def layout(
    columns: Sequence[Column], items: Sequence[Any], contexts: Sequence[Any], notes: list[str]
) -> TableText:
    """Write every item's cells, then fold constant columns into the caption and drop
    measured columns that are empty everywhere."""
    values = [
        [col.value(item, ctx) for col in columns] for item, ctx in zip(items, contexts, strict=True)
    ]
    keep, constants = [], []
    for i, col in enumerate(columns):
        column_values = {v[i] for v in values}
        if col.fold and len(column_values) == 1:
            only = column_values.pop()
            if only != "-":  # an empty setting (no task) goes without saying
                constants.append(f"{col.header} {only}")
            continue

        if not col.fold and column_values <= {"-"}:
            continue  # nothing measured in this column (e.g. no RNN to compare with)
        keep.append(i)
    return TableText(
        headers=[columns[i].header for i in keep],
        justify=[columns[i].justify for i in keep],
        cells=[[v[i] for i in keep] for v in values],
        caption=", ".join(constants),
        drop=[columns[i].drop for i in keep],
        notes=notes,
        wrap=[columns[i].wrap for i in keep],
    )


_ALIGN = {"left": ":---", "right": "---:"}


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def format_markdown(table: TableText, title: str | None = None) -> str:
    """A GitHub-flavoured markdown table, its caption in italics and its notes numbered."""
    lines = [f"### {title}", ""] if title else []
    lines += [
        "| " + " | ".join(table.headers) + " |",
        "| " + " | ".join(_ALIGN[j] for j in table.justify) + " |",
    ]
    lines += ["| " + " | ".join(_md_escape(c) for c in cells) + " |" for cells in table.cells]
    if table.caption:
        lines += ["", f"_{_md_escape(table.caption)}_"]
    if table.notes:
        lines += [""] + [f"{i}. {_md_escape(note)}" for i, note in enumerate(table.notes, 1)]
    return "\n".join(lines) + "\n"
