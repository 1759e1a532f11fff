"""Rich output: the results table, the architecture list and the progress bar.

With cli.py, the only module that imports Rich. Text comes from report.py's `format_*`.
"""

from __future__ import annotations

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from seqbench.models import REGISTRY, CoreShape
from seqbench.report import TableText, format_count, format_table
from seqbench.schema import ResultRow

_STATUS_STYLE = {"ok": "green", "skipped": "yellow", "oom": "red", "error": "red", "timeout": "red"}


def results_table(
    rows: list[ResultRow], title: str | None = None, console: Console | None = None
) -> RenderableType:
    """The run's table. Given the console, the least essential columns give way to a narrow
    terminal (named in the caption) rather than every column being cut short."""
    text = format_table(rows)
    table = _build(rows, text, title)
    if console is not None:
        order = text.drop_order()
        wide = console.options.update_width(10_000)
        for n in range(1, len(order) + 1):
            if Measurement.get(console, wide, table).maximum <= console.width:
                break
            table = _build(rows, text.without(order[:n]), title)
    if not text.notes:
        return table
    notes = Text("\n".join(f"[{i}] {note}" for i, note in enumerate(text.notes, 1)), style="dim")
    return Group(table, notes)


def _build(rows: list[ResultRow], text: TableText, title: str | None) -> Table:
    table = Table(
        title=title,
        caption=text.caption or None,
        box=box.SIMPLE_HEAVY,
        header_style="bold",
        pad_edge=False,
    )
    status_col = text.headers.index("status") if "status" in text.headers else -1
    for header, justify in zip(text.headers, text.justify, strict=True):
        table.add_column(header, justify=justify, no_wrap=header != "status")
    for row, cells in zip(rows, text.cells, strict=True):
        styled = list(cells)
        if status_col >= 0:
            styled[status_col] = f"[{_STATUS_STYLE[row.status]}]{cells[status_col]}[/]"
        table.add_row(*styled)
    return table


def archs_table(hidden: int = 32, embed: int = 32) -> Table:
    """Every registered architecture, its parameter formula and its core size at one width."""
    table = Table(
        title="Architectures",
        caption=f"I = input width, H = hidden units; example at I={embed}, H={hidden}, one layer",
        box=box.SIMPLE_HEAVY,
        header_style="bold",
    )
    table.add_column("name", style="bold")
    table.add_column("what it is")
    table.add_column("core parameters")
    table.add_column("example", justify="right")
    table.add_column("options")
    rnn = REGISTRY["rnn"].count_params(CoreShape(embed, hidden))
    for spec in REGISTRY.values():
        count = spec.count_params(CoreShape(embed, hidden))
        options = ", ".join(sorted(spec.options)) or "-"
        table.add_row(
            spec.name,
            spec.summary,
            spec.param_formula,
            f"{format_count(count)} ({count / rnn:.2f}× rnn)",
            options,
        )
    return table


def make_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
