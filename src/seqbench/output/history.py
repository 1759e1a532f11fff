"""`seqbench history` as text and as a picture: the series table, the steps and their
evidence, and a plot of each cell's median (with its interval) run after run.

The tables are `TableText` (terminal.py draws them, layout.py writes them as markdown);
`render_history_image` returns PNG or SVG bytes from matplotlib. Nothing here prints.
"""

from __future__ import annotations

import dataclasses
import io
import math
import statistics

from seqbench.core.errors import require
from seqbench.core.schema import Cell
from seqbench.judge.history import History, Series
from seqbench.output.layout import TableText
from seqbench.output.text import format_created, format_env_differences, format_seconds

# Columns of a cell's key worth naming when they vary, in this order, and how.
_KEY_NAMES = {
    "arch": "",
    "seq_len": "T",
    "batch_size": "B",
    "hidden": "H",
    "layers": "L",
    "device": "",
    "dtype": "",
    "mode": "",
    "task": "",
}
MAX_PANELS = 12  # plots in one picture; more would be unreadable


def cell_labels(cells: list[Cell]) -> tuple[list[str], str]:
    """Short labels that tell the cells apart (only the key columns that vary among them),
    and the constant columns as one line."""
    varying, constant = [], []
    for field in dataclasses.fields(Cell):
        values = {getattr(c, field.name) for c in cells}
        if len(values) > 1:
            varying.append(field.name)
        elif field.name in _KEY_NAMES and values != {""}:
            constant.append(f"{_KEY_NAMES[field.name]}{next(iter(values))}")
    if not varying:
        varying = ["arch"]
    labels = [
        " ".join(f"{_KEY_NAMES.get(f, f + ' ')}{getattr(c, f)}" for f in varying) for c in cells
    ]
    return labels, " ".join(constant)


def short_commit(commit: str, dirty: bool = False) -> str:
    return (commit[:8] or "-") + ("+" if dirty else "")


def format_percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def format_run_range(step) -> str:
    """The first run on the new level (1-based), and where else it may sit."""
    if step.earliest < 0 or step.earliest == step.latest:
        return str(step.index + 1)
    return f"{step.index + 1} ({step.earliest + 1}–{step.latest + 1})"


def format_p(p_value: float) -> str:
    return f"{p_value:.1g}" if p_value >= 1e-4 else "< 1e-4"


SPARKS = "▁▂▃▄▅▆▇█"


def format_sparkline(values: list[float], width: int = 20) -> str:
    """A series at a glance: at most `width` characters, each the median of its share of
    the values, from ▁ (the lowest) to █ (the highest); ▄ throughout when flat."""
    if not values:
        return ""
    size = max(1, -(-len(values) // width))
    chunks = [statistics.median(values[i : i + size]) for i in range(0, len(values), size)]
    low, high = min(chunks), max(chunks)
    if high <= low:
        return SPARKS[3] * len(chunks)
    top = len(SPARKS) - 1
    return "".join(SPARKS[round((v - low) / (high - low) * top)] for v in chunks)


def format_history_summary(history: History) -> TableText:
    """One line per cell and environment: its runs, its level now, and its steps."""
    labels, constant = cell_labels([s.cell for s in history.series])
    many_envs = len(history.environments) > 1
    cells = []
    for label, s in zip(labels, history.series, strict=True):
        level = s.changes.segments[-1].level if s.changes.segments else s.points[-1].median_s
        steps = ", ".join(
            f"{format_percent(st.ratio)} at {short_commit(s.first_after(st.index).commit)}"
            for st in s.changes.steps
        )
        trend = format_sparkline(
            [seg.level for seg in s.changes.segments for _ in range(seg.start, seg.end)]
        )
        row = [label, str(len(s.points)), trend, format_seconds(s.points[0].median_s)]
        row += [format_seconds(level), f"{s.changes.noise * 100:.1f}%", steps or "none"]
        cells.append(([f"env {s.environment}"] if many_envs else []) + row)
    headers = ["cell", "runs", "level over time", "first", "now (level)", "noise", "steps"]
    justify = ["left", "right", "left", "right", "right", "right", "left"]
    if many_envs:
        headers, justify = ["env", *headers], ["left", *justify]
    caption = f"{constant}; ordered by {history.order} time".lstrip("; ")
    give_way = {
        "noise": 1,
        "first": 2,
        "level over time": 3,
    }  # first to go first on a narrow terminal
    return TableText(headers, justify, cells, caption, drop=[give_way.get(h) for h in headers])


def format_steps(history: History) -> TableText:
    """Every step found: the first commit on the new level, the size and the evidence."""
    labels, _ = cell_labels([s.cell for s in history.series])
    cells = []
    for label, s in zip(labels, history.series, strict=True):
        for st in s.changes.steps:
            first = s.first_after(st.index)
            cells.append(
                [
                    label,
                    short_commit(first.commit, first.dirty),
                    format_run_range(st),
                    format_created(first.when),
                    format_percent(st.ratio),
                    f"{format_percent(st.ci_low)} … {format_percent(st.ci_high)}",
                    format_p(st.p_value),
                    f"{st.before} | {st.after}",
                ]
            )
    headers = ["cell", "first commit", "run (could be)", "when", "step", "95% CI", "p", "runs"]
    justify = ["left", "left", "right", "left", "right", "right", "right", "right"]
    caption = "p: two-sided Mann–Whitney, the runs on the level before | after the step"
    return TableText(headers, justify, cells, caption, drop=[None, None, 2, 1, None, None, 3, 4])


def format_series(series: Series) -> TableText:
    """A cell's every run: commit, time, median and its interval, the level and its steps."""
    starts = {st.index: st for st in series.changes.steps}
    levels = {}
    for seg in series.changes.segments:
        for i in range(seg.start, seg.end):
            levels[i] = seg.level
    cells = []
    for i, p in enumerate(series.points):
        step = starts.get(i)
        interval = (
            f"{format_seconds(p.ci_low_s)} – {format_seconds(p.ci_high_s)}"
            if p.ci_low_s is not None and p.ci_high_s is not None
            else "-"
        )
        cells.append(
            [
                str(i + 1),
                short_commit(p.commit, p.dirty),
                format_created(p.when),
                format_seconds(p.median_s),
                interval,
                format_seconds(levels.get(i)),
                f"step {format_percent(step.ratio)}" if step else "",
            ]
        )
    headers = ["#", "commit", "when", "median", "95% CI", "level", ""]
    justify = ["right", "left", "left", "right", "right", "right", "left"]
    return TableText(headers, justify, cells, f"environment {series.environment}")


def format_history_notes(history: History) -> list[str]:
    """Lines under the tables: environments kept apart, drifts, runs that were skipped."""
    lines = []
    if len(history.environments) > 1:
        for env in history.environments[1:]:
            lines.append(
                f"env {env.number} ({env.runs} runs) differs from env 1: "
                f"{format_env_differences(env.differences)}; its runs are a separate series"
            )
    relative = sum(s.relative for s in history.series)
    if relative:
        which = "every cell" if relative == len(history.series) else f"{relative} cell(s)"
        lines.append(
            f"steps and levels of {which} are relative to the machine's speed in each run (a "
            "fixed reference step timed in its processes, as compare judges), at its typical speed"
        )
    labels, _ = cell_labels([s.cell for s in history.series])
    for label, s in zip(labels, history.series, strict=True):
        for d in s.changes.drifts:
            lines.append(
                f"{label}: drift {format_percent(d.change)} over runs {d.start + 1}–{d.end} "
                f"(95% CI {format_percent(d.ci_low)} … {format_percent(d.ci_high)}), no single step"
            )
    for run, why in history.skipped:
        lines.append(f"skipped {run}: {why}")
    return lines


def render_history_image(history: History, fmt: str) -> bytes:
    """Each series in a panel of its own: the medians with their intervals, the fitted
    levels, and each step marked at its first commit. PNG or SVG bytes."""
    require("matplotlib", "a plot file")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = history.series[:MAX_PANELS]
    labels, constant = cell_labels([s.cell for s in shown])
    columns = 1 if len(shown) < 4 else 2
    rows = math.ceil(len(shown) / columns)
    figure = Figure(figsize=(9 * columns / 1.3, 2.8 * rows + 0.6), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes_list = figure.subplots(rows, columns, squeeze=False).ravel()
    for axes, label, s in zip(axes_list, labels, shown, strict=False):
        x = list(range(1, len(s.points) + 1))
        y = [p.median_s * 1e3 for p in s.points]
        low = [
            (p.median_s - (p.ci_low_s if p.ci_low_s is not None else p.median_s)) * 1e3
            for p in s.points
        ]
        high = [
            ((p.ci_high_s if p.ci_high_s is not None else p.median_s) - p.median_s) * 1e3
            for p in s.points
        ]
        axes.errorbar(
            x, y, yerr=[low, high], fmt="o", ms=3, capsize=2, lw=0.8, label="median, 95% CI"
        )
        for seg in s.changes.segments:
            axes.hlines(seg.level * 1e3, seg.start + 0.6, seg.end + 0.4, colors="black", lw=1.2)
        for st in s.changes.steps:
            first = s.first_after(st.index)
            axes.axvline(st.index + 0.5, color="red", ls="--", lw=0.8)
            axes.annotate(
                f"{format_percent(st.ratio)} at {short_commit(first.commit)}",
                (st.index + 0.6, 1), xycoords=("data", "axes fraction"), va="top", fontsize=7,
                color="red",
            )  # fmt: skip
        env = f" (env {s.environment})" if len(history.environments) > 1 else ""
        axes.set_title(f"{label}{env}", fontsize=9)
        axes.set_xlabel(f"run, in {history.order} order")
        axes.set_ylabel("median step time (ms)")
        axes.grid(True, alpha=0.3)
    for axes in axes_list[len(shown) :]:
        axes.set_visible(False)
    more = (
        f"; first {MAX_PANELS} of {len(history.series)} cells"
        if len(history.series) > len(shown)
        else ""
    )
    figure.suptitle(f"seqbench history: {constant}{more}", fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, metadata={"Date": None} if fmt == "svg" else {})
    return buffer.getvalue()


def format_history_report(history: History, lines: list[str]) -> str:
    """The history as one self-contained HTML page: the series, the steps with their
    evidence, the plot of every cell run after run (inline SVG), and the notes."""
    from seqbench.output.html import (
        Figure,
        Section,
        format_lines_html,
        format_page,
        format_table_html,
        scroll,
    )
    from seqbench.output.report import figures_section

    svg = render_history_image(history, "svg").decode("utf-8")
    sections = [
        Section("Cells", scroll(format_table_html(format_history_summary(history)))),
        Section("Steps", scroll(format_table_html(format_steps(history)))),
        figures_section("Over time", [Figure("median step time, run after run", svg)]),
    ]
    if lines:
        sections.append(Section("Notes", format_lines_html(lines)))
    lead = [f"{len(history.series)} cell(s) over {history.runs} runs, in {history.order} order"]
    return format_page("seqbench history", lead, sections)
