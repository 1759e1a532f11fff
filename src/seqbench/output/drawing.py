"""Charts drawn with matplotlib: a `Figure` to inspect (tests read its ticks, colours and
line styles) or PNG/SVG bytes. Agg and SVG backends only, no pyplot state, nothing printed.

Log axes get their ticks here rather than from matplotlib's defaults, whose minor labels
collide on a short range ('0.0009 0.0008 ...', '0.9' on top of '1') and whose major labels
can leave a range inside one decade with a single label.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from seqbench.core.errors import require
from seqbench.output.chart import Chart, Series

# Point markers, one per series: distinct shapes stay apart without colour too.
IMAGE_MARKERS = "os^vD<>P"
# Up to this many points a series gets markers and its x values as ticks.
MARKED_POINTS = 30
# Log-axis labels: the mantissas tried, coarsest first, until the range holds enough.
_MANTISSAS = ((1,), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9))
MIN_LABELS = 3
# Lengths are their own x ticks when there are at most this many, each this far apart.
TICKED_LENGTHS = 12
# Past this many entries, the legend goes beside the axes rather than over them.
LEGEND_INSIDE = 5
TICK_RATIO = 1.2


def compute_log_ticks(low: float, high: float) -> list[float]:
    """Tick values for a log axis from low to high: whole decades when the range spans
    several, else 1-2-5 steps, else every digit; never fewer than two values."""
    if not (0 < low < high):
        return [v for v in (low, high) if v > 0][:1]
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for mantissas in _MANTISSAS:
        ticks = [
            float(f"{m * 10.0**e:.12g}")
            for e in range(first, last + 1)
            for m in mantissas
            if low <= m * 10.0**e <= high
        ]
        if len(ticks) >= MIN_LABELS:
            return ticks
    # Less than a step between digits (0.95 to 1.05): evenly spaced round values.
    from matplotlib.ticker import MaxNLocator

    return [float(f"{v:.12g}") for v in MaxNLocator(4).tick_values(low, high) if low <= v <= high]


def _set_log_ticks(axis: Any, low: float, high: float) -> None:
    from matplotlib.ticker import NullFormatter

    ticks = compute_log_ticks(low, high)
    axis.set_ticks(ticks, [f"{t:g}" for t in ticks])
    axis.set_minor_formatter(NullFormatter())


def _colours(series: Sequence[Series]) -> dict[str, str]:
    """One colour per group (the label when a series has none), in order of appearance."""
    from matplotlib import rcParams

    cycle = rcParams["axes.prop_cycle"].by_key()["color"]
    groups = list(dict.fromkeys(s.group or s.label for s in series))
    return {g: cycle[i % len(cycle)] for i, g in enumerate(groups)}


def _spans(values: tuple[float, ...], low: tuple[float, ...], high: tuple[float, ...]):
    """Error-bar lengths below and above each value; a point without an interval gets 0,
    and so does an end that does not reach past the value (a shift estimate's interval
    need not hold the median)."""

    def ok(v: float) -> bool:
        return not math.isnan(v)

    below = [max(v - lo, 0.0) if ok(lo) else 0.0 for v, lo in zip(values, low, strict=True)]
    above = [max(hi - v, 0.0) if ok(hi) else 0.0 for v, hi in zip(values, high, strict=True)]
    return [below, above]


def new_axes(height: float = 5.0) -> tuple[Any, Any]:
    """A figure 8 inches wide with a canvas attached (no pyplot state), and its one axes."""
    require("matplotlib", "a plot file")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, height), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def draw_figure(chart: Chart) -> Any:
    """The chart as a matplotlib Figure (with a canvas attached)."""
    from matplotlib.ticker import NullFormatter

    figure, axes = new_axes()
    colours = _colours(chart.series)
    noisy_labelled = False
    for i, series in enumerate(chart.series):
        colour = colours[series.group or series.label]
        # Markers on a long profile would hide the line itself.
        marker = IMAGE_MARKERS[i % len(IMAGE_MARKERS)] if len(series.x) <= MARKED_POINTS else None
        axes.plot(
            series.x, series.y, marker=marker, label=series.label, color=colour, ls=series.style
        )
        if series.low or series.x_low:
            axes.errorbar(
                series.x, series.y,
                yerr=_spans(series.y, series.low, series.high) if series.low else None,
                xerr=_spans(series.x, series.x_low, series.x_high) if series.x_low else None,
                fmt="none", ecolor=colour, capsize=3, lw=0.8,
            )  # fmt: skip
        flagged = [
            (x, y) for x, y, bad in zip(series.x, series.y, series.noisy, strict=False) if bad
        ]
        if flagged:
            axes.scatter(
                *zip(*flagged, strict=True), s=160, facecolors="none", edgecolors="red",
                lw=1.2, label=None if noisy_labelled else "noisy (see the noise column)",
            )  # fmt: skip
            noisy_labelled = True
        if series.fit is not None:
            ends = (series.x[0], series.x[-1])
            axes.plot(ends, [series.fit.at(t) for t in ends], "--", color=colour, lw=0.8)
        for x, y, text in zip(series.x, series.y, series.point_labels, strict=False):
            axes.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    for front, style in zip(chart.frontiers, (":", "-.", "--"), strict=False):
        if front.x:
            axes.step(
                front.x, front.y, where="post", color="black", ls=style, label=front.label
            )  # fmt: skip
    if chart.reference is not None:
        axes.axhline(chart.reference, color="grey", lw=0.8, ls="--", label=chart.reference_label)
    if chart.log_x:
        axes.set_xscale("log")
    if chart.log_y:
        axes.set_yscale("log")
        _set_log_ticks(axes.yaxis, *axes.get_ylim())
    lengths = sorted({x for s in chart.series for x in s.x})
    spread = all(b / a >= TICK_RATIO for a, b in zip(lengths, lengths[1:], strict=False))
    if chart.log_x and not chart.frontiers and len(lengths) <= TICKED_LENGTHS and spread:
        # Lengths are few, apart and round (often powers of two): label them as they are.
        axes.set_xticks(lengths, [f"{x:g}" for x in lengths])
        axes.xaxis.set_minor_formatter(NullFormatter())
    elif chart.log_x:
        _set_log_ticks(axes.xaxis, *axes.get_xlim())
    axes.set_title(chart.title)
    axes.set_xlabel(chart.x_label)
    axes.set_ylabel(chart.y_label)
    axes.grid(True, which="major", alpha=0.3)
    if len(axes.get_legend_handles_labels()[1]) > LEGEND_INSIDE:
        # Many lines: a legend inside would sit on some of them.
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        axes.legend(fontsize="small")
    return figure


def render_image(chart: Chart, fmt: str) -> bytes:
    """The chart as PNG or SVG bytes, drawn by matplotlib's Agg (raster) or SVG backend."""
    return save_figure(draw_figure(chart), fmt)


def save_figure(figure: Any, fmt: str) -> bytes:
    """A figure as PNG or SVG bytes."""
    from matplotlib import rc_context

    buffer = io.BytesIO()
    # No date and fixed element ids in an SVG: the same chart gives the same file.
    metadata = {"Date": None} if fmt == "svg" else {}
    with rc_context({"svg.hashsalt": "seqbench"}):
        figure.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


_VERDICT_COLOURS = {"regression": "tab:red", "improvement": "tab:green", "unchanged": "tab:blue"}


def draw_ratios(
    labels: Sequence[str],
    ratios: Sequence[float],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    verdicts: Sequence[str],
    threshold: float,
    title: str,
) -> Any:
    """A comparison as a figure: one line per cell, its ratio (candidate / baseline) and
    95% interval on a log axis, coloured by verdict, over the band the threshold allows."""
    figure, axes = new_axes(1.6 + 0.28 * len(labels))
    rows = range(len(labels))
    axes.axvspan(1 - threshold, 1 + threshold, color="grey", alpha=0.15, label="threshold")
    axes.axvline(1.0, color="grey", lw=0.8)
    for verdict in dict.fromkeys(verdicts):
        mine = [i for i in rows if verdicts[i] == verdict]
        ys = [float(i) for i in mine]
        xs = [ratios[i] for i in mine]
        nan = float("nan")
        spans = _spans(
            tuple(xs),
            tuple(nan if lows[i] is None else lows[i] for i in mine),
            tuple(nan if highs[i] is None else highs[i] for i in mine),
        )
        axes.errorbar(
            xs, ys, xerr=spans, fmt="o", color=_VERDICT_COLOURS.get(verdict, "tab:orange"),
            capsize=3, lw=0.9, label=verdict,
        )  # fmt: skip
    axes.set_yticks(list(rows), list(labels), fontsize=8)
    axes.invert_yaxis()
    axes.set_xscale("log")
    _set_log_ticks(axes.xaxis, *axes.get_xlim())
    axes.set_xlabel("candidate / baseline (1 = unchanged)")
    axes.set_title(title)
    axes.grid(True, axis="x", which="major", alpha=0.3)
    axes.legend(fontsize="small", loc="best")
    return figure


def render_ratios(*args: Any) -> str:
    """`draw_ratios` as SVG text."""
    return save_figure(draw_ratios(*args), "svg").decode()
