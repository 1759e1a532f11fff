"""Plots of a run: a cost against sequence length on log–log axes, or accuracy against cost.

`build_chart` turns rows into a `Chart`: points, labels and fits, nothing drawn. Two
renderers draw one: `render_image` with matplotlib (PNG or SVG bytes, Agg backend, no
pyplot state) and `render_text` with plotext (ANSI text for the terminal). Neither prints
nor writes a file; the CLI does. Both libraries are the `report` extra.

On log–log axes a power law c·T^k is a straight line of slope k, so the legend carries
each series' fitted k (see scaling.py) and the image draws the fit as a dashed line.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqbench.errors import SeqbenchError, require
from seqbench.output.growth import format_series, varying_context
from seqbench.scaling import (
    MIN_LENGTHS,
    PowerLaw,
    compute_pareto,
    fit_power_law,
    series_key,
)
from seqbench.schema import Cell, ResultRow, higher_is_better

# What `--metric` takes, and what each shows.
PLOT_METRICS: dict[str, str] = {
    "seq_per_s": "throughput",
    "median_s": "step time",
    "peak_mem_bytes": "peak memory",
    "tflops": "arithmetic rate",
    "metric_value": "accuracy against cost",
}
IMAGE_FORMATS: dict[str, str] = {".png": "png", ".svg": "svg"}
# Point markers, one per series: distinct shapes stay apart without colour too.
TEXT_MARKERS = "•+x*o#@%"
IMAGE_MARKERS = "os^vD<>P"
# Up to this many points a series gets markers and its x values as ticks.
MARKED_POINTS = 30


@dataclass(frozen=True)
class Series:
    """One line of a chart: its points (in the axis units) and, for a cost, its fit."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    fit: PowerLaw | None = None
    point_labels: tuple[str, ...] = ()
    # Each point's 95% interval, in the axis units (empty: no interval for this metric).
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    noisy: tuple[bool, ...] = ()  # points whose timing is flagged noisy


@dataclass(frozen=True)
class Chart:
    """Everything a renderer needs; the x axis is always logarithmic."""

    title: str
    x_label: str
    y_label: str
    log_y: bool
    series: tuple[Series, ...]
    frontier: Series | None = None
    reference: float | None = None  # a horizontal line (a guess's score)
    reference_label: str = ""


def check_metric(metric: str) -> str:
    if metric not in PLOT_METRICS:
        raise SeqbenchError(f"--metric: expected one of {', '.join(PLOT_METRICS)}; got {metric!r}")
    return metric


def image_format(path: str | Path) -> str:
    """'png' or 'svg' from a file name; anything else is one clear error."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_FORMATS:
        raise SeqbenchError(
            f"--out {path}: cannot draw a {suffix or 'suffix-less'!r} file; "
            f"use {' or '.join(IMAGE_FORMATS)}"
        )
    return IMAGE_FORMATS[suffix]


def _unit(metric: str, values: Sequence[float]) -> tuple[float, str]:
    """A scale and unit that keep axis numbers readable: seconds as ms, bytes as MiB."""
    top = max(values)
    if metric == "median_s":
        for scale, unit in ((1.0, "s"), (1e3, "ms"), (1e6, "µs")):
            if top * scale >= 1:
                return scale, unit
        return 1e9, "ns"
    if metric == "peak_mem_bytes":
        for scale, unit in ((2**-30, "GiB"), (2**-20, "MiB"), (2**-10, "KiB")):
            if top * scale >= 1:
                return scale, unit
        return 1.0, "bytes"
    if metric == "tflops":
        return 1e3, "GFLOP/s"
    return 1.0, "sequences/s"


def _interval(row: ResultRow, metric: str) -> tuple[float, float] | None:
    """A point's 95% interval in the metric's own units: the median time's, or the rate's
    that follows from it (a faster bound is a higher rate)."""
    if row.ci_low_s is None or row.ci_high_s is None or not row.ci_low_s:
        return None
    if metric == "median_s":
        return row.ci_low_s, row.ci_high_s
    value = getattr(row, metric)
    if metric in ("seq_per_s", "tflops"):  # proportional to 1 / time
        return value * row.median_s / row.ci_high_s, value * row.median_s / row.ci_low_s
    return None


def _series_points(rows: Sequence[ResultRow], metric: str) -> dict[Cell, list[ResultRow]]:
    """The ok rows with a positive value, by series (every length of one model), by length."""
    by_key: dict[Cell, list[ResultRow]] = {}
    for row in rows:
        value = getattr(row, metric)
        if row.status == "ok" and value is not None and value > 0:
            by_key.setdefault(series_key(row.cell), []).append(row)
    return {k: sorted(v, key=lambda r: r.seq_len) for k, v in by_key.items()}


def build_chart(rows: Sequence[ResultRow], metric: str, run_id: str = "") -> Chart:
    """The chart `seqbench plot` draws for a run (see the module notes)."""
    check_metric(metric)
    suffix = f" ({run_id})" if run_id else ""
    if metric == "metric_value":
        return _accuracy_chart(rows, suffix)
    groups = _series_points(rows, metric)
    if not groups:
        raise SeqbenchError(f"nothing to plot: no measured cell has a {metric}")
    scale, unit = _unit(metric, [getattr(r, metric) for g in groups.values() for r in g])
    columns = varying_context(list(groups))
    series = []
    for key, members in groups.items():
        xs = tuple(float(r.seq_len) for r in members)
        ys = tuple(getattr(r, metric) * scale for r in members)
        fit = fit_power_law(xs, ys) if len(members) >= MIN_LENGTHS else None
        label = format_series(key, columns)
        bounds = [_interval(r, metric) for r in members]
        low, high = (
            (tuple(b[0] * scale for b in bounds), tuple(b[1] * scale for b in bounds))
            if all(bounds)
            else ((), ())
        )
        series.append(
            Series(
                f"{label}  k={fit.exponent:.2f}" if fit else label,
                xs,
                ys,
                fit,
                low=low,
                high=high,
                noisy=tuple(bool(r.noisy) for r in members),
            )  # fmt: skip
        )
    return Chart(
        title=f"{PLOT_METRICS[metric]} against sequence length{suffix}",
        x_label="sequence length T",
        y_label=f"{metric} ({unit})",
        log_y=True,
        series=tuple(series),
    )


def _accuracy_chart(rows: Sequence[ResultRow], suffix: str) -> Chart:
    scored = [r for r in rows if r.status == "ok" and r.metric_value is not None and r.median_s]
    if not scored:
        raise SeqbenchError(
            "nothing to plot: no cell of this run has an accuracy figure (metric_value); "
            "it ran without a task, so plot a cost instead (e.g. --metric median_s)"
        )
    groups = _series_points(scored, "median_s")
    scale, unit = _unit("median_s", [r.median_s for r in scored])
    columns = varying_context(list(groups))
    series = tuple(
        Series(
            format_series(key, columns),
            tuple(r.median_s * scale for r in members),
            tuple(r.metric_value for r in members),
            point_labels=tuple(f"T={r.seq_len}" for r in members),
        )
        for key, members in groups.items()
    )
    metrics = sorted({r.metric or "metric" for r in scored})
    if len(metrics) > 1:
        raise SeqbenchError(
            f"the run's tasks measure different things ({', '.join(metrics)}): "
            "plot one task at a time (--task NAME)"
        )
    name = metrics[0]
    higher = higher_is_better(name)
    points = [(x, y) for s in series for x, y in zip(s.x, s.y, strict=True)]
    on_front = compute_pareto(points, higher_is_better=higher)
    frontier = Series(
        "Pareto frontier",
        tuple(points[i][0] for i in on_front),
        tuple(points[i][1] for i in on_front),
    )
    chances = {r.chance_value for r in scored if r.chance_value is not None}
    return Chart(
        title=f"{name} against step time{suffix}",
        x_label=f"median step time ({unit})",
        y_label=f"{name} ({'higher' if higher else 'lower'} is better)",
        log_y=False,
        series=series,
        frontier=frontier,
        reference=chances.pop() if len(chances) == 1 else None,
        reference_label="chance",
    )


def render_image(chart: Chart, fmt: str) -> bytes:
    """The chart as PNG or SVG bytes, drawn by matplotlib's Agg (raster) or SVG backend."""
    require("matplotlib", "a plot file")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    figure = Figure(figsize=(8, 5), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    noisy_labelled = False
    for i, series in enumerate(chart.series):
        # Markers on a long profile would hide the line itself.
        marker = IMAGE_MARKERS[i % len(IMAGE_MARKERS)] if len(series.x) <= MARKED_POINTS else None
        (line,) = axes.plot(series.x, series.y, marker=marker, label=series.label)
        if series.low:
            below = [y - lo for y, lo in zip(series.y, series.low, strict=True)]
            above = [hi - y for y, hi in zip(series.y, series.high, strict=True)]
            axes.errorbar(
                series.x, series.y, yerr=[below, above], fmt="none", ecolor=line.get_color(),
                capsize=3, lw=0.8,
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
            axes.plot(ends, [series.fit.at(t) for t in ends], "--", color=line.get_color(), lw=0.8)
        for x, y, text in zip(series.x, series.y, series.point_labels, strict=False):
            axes.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if chart.frontier is not None and chart.frontier.x:
        axes.step(
            chart.frontier.x, chart.frontier.y, where="post", color="black", ls=":",
            label=chart.frontier.label,
        )  # fmt: skip
    if chart.reference is not None:
        axes.axhline(chart.reference, color="grey", lw=0.8, ls="--", label=chart.reference_label)
    plain = FuncFormatter(lambda value, _: f"{value:g}")  # 20, not 2×10¹
    axes.set_xscale("log")
    if chart.log_y:
        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(plain)
        axes.yaxis.set_minor_formatter(plain)
    lengths = sorted({x for s in chart.series for x in s.x})
    if chart.frontier is None and len(lengths) <= MARKED_POINTS:
        # Lengths are few and round (often powers of two): label them as they are.
        axes.set_xticks(lengths, [f"{x:g}" for x in lengths])
        axes.xaxis.set_minor_formatter(NullFormatter())
    else:
        axes.xaxis.set_major_formatter(plain)
        axes.xaxis.set_minor_formatter(NullFormatter())

    axes.set_title(chart.title)
    axes.set_xlabel(chart.x_label)
    axes.set_ylabel(chart.y_label)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize="small")
    buffer = io.BytesIO()
    # No date in the SVG: the same chart gives the same file.
    metadata = {"Date": None} if fmt == "svg" else {}
    figure.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


def render_text(chart: Chart, width: int, height: int) -> str:
    """The chart drawn with plotext in `width` × `height` terminal cells (ANSI colour codes
    included), with the legend as lines underneath so it never hides a point."""
    plotext = require("plotext", "a plot in the terminal")
    figure = plotext.figure
    figure.clear()
    try:
        plotext.terminal.limit(False, False)
        figure.plot_size(width, height)
        legend = []
        if chart.frontier is not None and chart.frontier.x:
            # First, so that the models' markers are drawn over it.
            frontier = figure.signal(list(chart.frontier.x), list(chart.frontier.y), marker="·")
            figure.draw(frontier.lines())
        for i, series in enumerate(chart.series):
            marker = TEXT_MARKERS[i % len(TEXT_MARKERS)]
            figure.draw(figure.signal(list(series.x), list(series.y), marker=marker).lines())
            legend.append(f"{marker} {series.label}")
            flagged = [
                (x, y) for x, y, bad in zip(series.x, series.y, series.noisy, strict=False) if bad
            ]
            if flagged:  # drawn over the line: a noisy point is a "?"
                xs, ys = zip(*flagged, strict=True)
                figure.draw(figure.signal(list(xs), list(ys), marker="?").lines(False))
        if any(any(s.noisy) for s in chart.series):
            legend.append("? noisy: see the noise column (seqbench show)")
        if chart.frontier is not None and chart.frontier.x:
            legend.append(f"· {chart.frontier.label}")
        if chart.reference is not None:
            figure.line(chart.reference, "horizontal")
            legend.append(f"─ {chart.reference_label} ({chart.reference:g})")
        figure.ruler("x").scale("log")
        if chart.log_y:
            figure.ruler("y").scale("log")
        figure.title(chart.title)
        figure.label(chart.x_label, "x")
        figure.label(chart.y_label, "y")
        drawing = figure.build().string()
    finally:
        figure.clear()
    return drawing.rstrip("\n") + "\n" + "\n".join(legend) + "\n"


def gradient_chart(profiles: Sequence[Any]) -> Chart:
    """Input-gradient norm against distance from the end, one line per architecture (and
    after training, when measured): the vanishing gradient, drawn. Norms are relative to
    each profile's last step that gets any gradient, so a growing gradient rises; exact zeros
    (underflow) cannot sit on a log axis and are left out."""
    from seqbench.output.text import format_arch

    series = []
    for profile in profiles:
        for label, norms in (("init", profile.initial), ("trained", profile.trained)):
            if norms is None:
                continue
            back = list(reversed(norms))  # back[d] is d steps before the last
            reference = next((v for v in back if v > 0), 1.0)  # the last live step
            # log10 on a linear axis: the values span 40 decades, and exponents read better
            # than 0.0000000000000000013 on a terminal's axis.
            points = [(d + 1, math.log10(v / reference)) for d, v in enumerate(back) if v > 0]
            name = format_arch(profile.cell) + ("" if profile.trained is None else f" ({label})")
            series.append(Series(name, tuple(p[0] for p in points), tuple(p[1] for p in points)))
    return Chart(
        title="gradient reaching each input step, relative to the last step's",
        x_label="steps back from the end (1 = the last step)",
        y_label="log10 of |d loss / d x_t| / the last step's",
        log_y=False,
        series=tuple(series),
        frontier=None,
        reference=-3.0,
        reference_label="memory horizon threshold (1e-3)",
    )
