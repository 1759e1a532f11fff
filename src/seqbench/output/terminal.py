"""Rich output: the results, scaling, runs and environment tables, the architecture list,
terminal plots and the progress bar.

With the commands in seqbench.cli, the only module that imports Rich. The text of every
table comes from tables.py and scaling.py; this module only draws it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from rich import box
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.measure import Measurement as Extent
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

from seqbench.core.schema import ResultRow
from seqbench.judge.scaling import compute_scaling
from seqbench.output.layout import TableText
from seqbench.output.scaling import format_crossovers, format_scaling
from seqbench.output.tables import format_comparison, format_runs, format_table
from seqbench.output.text import format_count, format_env_items

if TYPE_CHECKING:
    from seqbench.judge.compare import Comparison

# Colours by the first word of a status, verdict or run-state cell.
_STYLES = {
    "ok": "green",
    "unchanged": "green",
    "improvement": "cyan",
    "skipped": "yellow",
    "inconclusive": "yellow",
    "model-changed": "yellow",
    "not-measured": "yellow",
    "oom": "red",
    "error": "red",
    "timeout": "red",
    "regression": "bold red",
    "complete": "green",
    "running": "yellow",
    "interrupted": "yellow",
    "damaged": "red",
}
_STYLED_COLUMNS = ("status", "verdict", "state")


def fitted_table(
    text: TableText, title: str | None = None, console: Console | None = None
) -> RenderableType:
    """A table, its notes below. Given the console, the least essential columns give way to
    a narrow terminal (named in the caption) rather than every column being cut short."""
    table = _build(text, title)
    if console is not None:
        order = text.drop_order()
        for n in range(1, len(order) + 1):
            if _needed_width(console, text.without(order[: n - 1])) <= console.width:
                break
            table = _build(text.without(order[:n]), title)
    if not text.notes:
        return table
    notes = Text("\n".join(f"[{i}] {note}" for i, note in enumerate(text.notes, 1)), style="dim")
    return Group(table, notes)


# Columns of free text wrap, but keep at least this many characters a line.
WRAP_WIDTH = 30


def _needed_width(console: Console, text: TableText) -> int:
    """The width a table needs with its free-text columns wrapped to WRAP_WIDTH."""
    wrapping = [i for i in range(len(text.headers)) if text.wraps(i)]
    fixed = text.without(wrapping) if wrapping else text
    # A column that does not wrap is as wide as its widest cell: measuring a table of one
    # row, each column's widest cell, gives the width of the whole (a thousand rows took
    # Rich a second to measure).
    if fixed.cells:
        widest = [max(column, key=cell_len) for column in zip(*fixed.cells, strict=True)]
        fixed = dataclasses.replace(fixed, cells=[widest])
    wide = console.options.update_width(10_000)
    width = Extent.get(console, wide, _build(fixed, None)).maximum
    for i in wrapping:
        longest = max((len(c[i]) for c in text.cells), default=0)
        width += min(WRAP_WIDTH, max(longest, len(text.headers[i]))) + 3  # padding, rule
    return width


def results_table(
    rows: list[ResultRow], title: str | None = None, console: Console | None = None
) -> RenderableType:
    return fitted_table(format_table(rows), title, console)


def results_view(
    rows: list[ResultRow],
    title: str | None = None,
    console: Console | None = None,
    flush_denormal: bool | None = None,
) -> RenderableType:
    """The results table and, with three or more lengths, how cost grows with them: the
    fitted exponents, steps far off the fit, and where two models' curves cross."""
    table = results_table(rows, title, console)
    scaling = compute_scaling(rows)
    parts: list[RenderableType] = [table]
    if any(r.task and r.metric_value is not None for r in rows):
        parts.append(accuracy_table(rows, console))
    if not scaling.keys:
        return Group(*parts) if len(parts) > 1 else table
    growth = format_scaling(scaling, flush_denormal)
    parts.append(fitted_table(growth, "How cost grows with T", console))
    crossovers = format_crossovers(scaling)
    if crossovers:
        parts.append(Text("\n".join(crossovers)))
    return Group(*parts)


def accuracy_table(rows: list[ResultRow], console: Console | None = None) -> RenderableType:
    """Each model's test score over seeds at the rate chosen on validation."""
    from seqbench.judge.accuracy import summarize_accuracy
    from seqbench.output.accuracy import format_accuracy

    title = "Accuracy over seeds (rate chosen on validation, score on test)"
    return fitted_table(format_accuracy(summarize_accuracy(rows)), title, console)


def runs_table(summaries: list, console: Console | None = None) -> RenderableType:
    return fitted_table(format_runs(summaries), "Saved runs", console)


def env_table(env: dict) -> Table:
    """The environment a run would record, one line per key."""
    table = Table(title="Environment", box=box.SIMPLE_HEAVY, header_style="bold", pad_edge=False)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value")
    for key, value in format_env_items(env):
        table.add_row(escape(key), escape(value))
    return table


def checks_table(found: list) -> Table:
    """The system check: one line per reading, its verdict, and advice where it fails."""
    table = Table(title="System check", box=box.SIMPLE_HEAVY, header_style="bold", pad_edge=False)
    table.add_column("check", style="bold", no_wrap=True)
    table.add_column("reading")
    table.add_column("", no_wrap=True)
    table.add_column("advice")
    marks = {True: "[green]ok[/]", False: "[bold red]warn[/]", None: "[yellow]?[/]"}
    for c in found:
        advice = escape(c.advice) if c.ok is False else ""
        table.add_row(escape(c.name), escape(c.reading), marks[c.ok], advice)
    return table


def terminal_plot(ansi: str) -> Text:
    """A plot drawn by plotext (ANSI text), as Rich text: Rich then drops the colours where
    the terminal has none (a pipe, NO_COLOR)."""
    return Text.from_ansi(ansi, no_wrap=True, overflow="crop")


def comparison_table(comparison: Comparison, console: Console | None = None) -> RenderableType:
    title = f"{comparison.metric.name}: {comparison.baseline_id} -> {comparison.candidate_id}"
    return fitted_table(format_comparison(comparison), title, console)


def _build(text: TableText, title: str | None) -> Table:
    table = Table(
        title=title,
        caption=text.caption or None,
        box=box.SIMPLE_HEAVY,
        header_style="bold",
        pad_edge=False,
    )
    for i, (header, justify) in enumerate(zip(text.headers, text.justify, strict=True)):
        table.add_column(header, justify=justify, no_wrap=not text.wraps(i))
    styled = [i for i, h in enumerate(text.headers) if h in _STYLED_COLUMNS]
    for cells in text.cells:
        row = [escape(c) for c in cells]
        for i in styled:
            style = _STYLES.get(cells[i].split(" ")[0], "")
            row[i] = f"[{style}]{row[i]}[/]" if style else row[i]
        table.add_row(*row)
    return table


def archs_table(hidden: int = 32, embed: int = 32) -> Table:
    """Every registered architecture, its parameter formula and its core size at one width."""
    from seqbench.models import REGISTRY, CoreShape, count_parameters, get_arch
    from seqbench.models.custom import plugin_names
    from seqbench.models.registry import describe_knob

    table = Table(
        title="Architectures",
        caption=(
            f"I = input width, H = hidden units; example at I={embed}, H={hidden}, one layer "
            "(a preset at its own depth; tcn-paper sizes itself to the sequence). Settings "
            "in parentheses are the defaults a variant may change: --arch 'mamba(d_state=32)'"
        ),
        box=box.SIMPLE_HEAVY,
        header_style="bold",
    )
    table.add_column("name", style="bold")
    table.add_column("what it is")
    table.add_column("core parameters")
    table.add_column("example", justify="right")
    table.add_column("options")
    rnn = REGISTRY["rnn"].count_params(CoreShape(embed, hidden))
    specs = [*REGISTRY.values(), *(get_arch(name) for name in plugin_names())]
    for spec in specs:
        shape = CoreShape(embed, hidden, layers=int(spec.fixed.get("layers", 1)))
        count = (
            spec.count_params(shape) if spec.count_params else count_parameters(spec.build(shape))
        )

        options = ", ".join(sorted(spec.options)) or "-"
        if spec.knobs:  # a variant's settings, with their defaults
            knobs = ",".join(f"{k}={describe_knob(v)}" for k, v in spec.knobs.items())
            options += f"; ({knobs})"
        table.add_row(
            spec.name,
            spec.summary,
            spec.param_formula,
            f"{format_count(count)} ({count / rnn:.2f}× rnn)",
            options,
        )
    return table


def tasks_table(seq_len: int = 200) -> Table:
    """Every task, its metric, and chance in theory and measured on its evaluation set."""
    from seqbench.core.errors import ConfigError
    from seqbench.tasks import TASKS, new_task, prepared

    table = Table(
        title="Tasks",
        caption=(
            f"chance at T={seq_len} (a task with a length of its own uses that), seed 0; "
            "settings in parentheses are defaults a variant may change: "
            "--task 'mqar(pairs=16,vocab=256)'"
        ),
        box=box.SIMPLE_HEAVY,
        header_style="bold",
    )
    for name, justify in (("name", "left"), ("what it is", "left"), ("metric", "left"),
                          ("T", "right"), ("chance", "right"), ("measured", "right")):  # fmt: skip
        table.add_column(name, justify=justify)
    for name in TASKS:
        task = new_task(name)
        length = task.fixed_seq_len or max(seq_len, task.min_seq_len)
        theory = measured = "-"
        try:
            ready = prepared(name, length, 10_000, 0, None)
            theory, measured = f"{ready.chance_theory():.4g}", f"{ready.chance():.4g}"
        except ConfigError:
            pass
        settings = getattr(task, "settings", {})  # the sizes a variant may set, at their defaults
        if settings:
            name += f"({','.join(f'{k}={v}' for k, v in settings.items())})"
        table.add_row(name, task.summary, task.metric, str(length), theory, measured)
    return table


def make_progress(console: Console, disable: bool = False) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=disable,
    )
