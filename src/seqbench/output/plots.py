"""Plots of a run: a cost against sequence length on log–log axes, or accuracy against cost.

`build_chart` turns rows into a `Chart` (chart.py): points, intervals, labels and fits,
nothing drawn. Two renderers draw one: `render_image` with matplotlib (drawing.py: PNG or
SVG bytes) and `render_text` with plotext (ANSI text for the terminal). Neither prints nor
writes a file; the CLI does. Both libraries are the `report` extra.

On log–log axes a power law c·T^k is a straight line of slope k, so the legend carries
each series' fitted k (see judge/scaling.py) and the image draws the fit as a dashed line.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from seqbench.core.errors import SeqbenchError, require
from seqbench.core.schema import Cell, ResultRow, higher_is_better
from seqbench.judge.scaling import MIN_LENGTHS, compute_pareto, fit_power_law, series_key
from seqbench.output.chart import Chart, Series
from seqbench.output.drawing import draw_figure, render_image
from seqbench.output.scaling import format_series, varying_context

# What `--metric` takes, and what each shows.
PLOT_METRICS: dict[str, str] = {
    "seq_per_s": "throughput",
    "median_s": "step time",
    "peak_mem_bytes": "peak memory",
    "tflops": "arithmetic rate",
    "state_bytes": "streaming state",
    "metric_value": "accuracy against cost",
}
# An axis label names the quantity, then its unit (from `_unit`).
QUANTITIES: dict[str, str] = {
    "seq_per_s": "throughput",
    "median_s": "median step time",
    "peak_mem_bytes": "peak memory",
    "tflops": "arithmetic rate",
    "state_bytes": "state per sequence",
}
# What accuracy can be drawn against (`--against`): the step's time, or the state the model
# may keep between tokens (a recall task's fair cost: what it was allowed to remember).
ACCURACY_AGAINST: dict[str, str] = {"median_s": "step time", "state_bytes": "state per sequence"}
IMAGE_FORMATS: dict[str, str] = {".png": "png", ".svg": "svg"}
# Point markers, one per series: distinct shapes stay apart without colour too.
TEXT_MARKERS = "•+x*o#@%"
__all__ = ["Chart", "Series", "build_chart", "draw_figure", "render_image", "render_text"]


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
    if metric in ("peak_mem_bytes", "state_bytes"):
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


# Line styles by mode, where a chart holds both: one model keeps one colour.
MODE_STYLES = {"infer": "-", "train": "-."}


def _look(key: Cell, columns: Sequence[str]) -> dict[str, str]:
    """A series' colour group and line style: inference and training of one model share
    a colour and differ in style."""
    if "mode" not in columns:
        return {}
    rest = [c for c in columns if c != "mode"]
    return {"group": format_series(key, rest), "style": MODE_STYLES.get(key.mode, "-")}


def _scaled_intervals(
    rows: Sequence[ResultRow], metric: str, scale: float
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each point's interval in axis units: NaN where a point has none, empty where no
    point of the series has one (a memory figure is not sampled)."""
    bounds = [_interval(r, metric) for r in rows]
    if not any(bounds):
        return (), ()
    low = tuple(b[0] * scale if b else math.nan for b in bounds)
    high = tuple(b[1] * scale if b else math.nan for b in bounds)
    return low, high


def _series_points(rows: Sequence[ResultRow], metric: str) -> dict[Cell, list[ResultRow]]:
    """The ok rows with a positive value, by series (every length of one model), by length."""
    by_key: dict[Cell, list[ResultRow]] = {}
    for row in rows:
        value = getattr(row, metric)
        if row.status == "ok" and value is not None and value > 0:
            by_key.setdefault(series_key(row.cell), []).append(row)
    return {k: sorted(v, key=lambda r: r.seq_len) for k, v in by_key.items()}


# The most points a series draws: past it, evenly spaced ones (the first and last kept) stand
# for the rest, which the fit still uses (5,000 lengths made a 15 MB page of SVG).
MAX_POINTS = 200


def _thinned(members: list[ResultRow]) -> list[ResultRow]:
    if len(members) <= MAX_POINTS:
        return members
    step = (len(members) - 1) / (MAX_POINTS - 1)
    return [members[round(i * step)] for i in range(MAX_POINTS)]


def build_chart(
    rows: Sequence[ResultRow], metric: str, run_id: str = "", against: str = "median_s"
) -> Chart:
    """The chart `seqbench plot` draws for a run (see the module notes); `against` is the
    cost an accuracy chart draws it against."""
    check_metric(metric)
    suffix = f" ({run_id})" if run_id else ""
    if against not in ACCURACY_AGAINST:
        raise SeqbenchError(
            f"--against: expected one of {', '.join(ACCURACY_AGAINST)}; got {against!r}"
        )
    if against != "median_s" and metric != "metric_value":
        raise SeqbenchError(f"--against {against} draws accuracy (metric_value), not {metric}")
    if metric == "metric_value":
        return _accuracy_chart(rows, suffix, against)
    groups = _series_points(rows, metric)
    if not groups:
        raise SeqbenchError(f"nothing to plot: no measured cell has a {metric}")
    scale, unit = _unit(metric, [getattr(r, metric) for g in groups.values() for r in g])
    columns = varying_context(list(groups))
    series = []
    for key, every in groups.items():
        xs = tuple(float(r.seq_len) for r in every)
        ys = tuple(getattr(r, metric) * scale for r in every)
        fit = fit_power_law(xs, ys) if len(every) >= MIN_LENGTHS else None  # on every point
        members = _thinned(every)
        xs = tuple(float(r.seq_len) for r in members)
        ys = tuple(getattr(r, metric) * scale for r in members)
        label = format_series(key, columns)
        low, high = _scaled_intervals(members, metric, scale)
        series.append(
            Series(
                f"{label}  k={fit.exponent:.2f}" if fit else label,
                xs,
                ys,
                fit,
                low=low,
                high=high,
                noisy=tuple(bool(r.noisy) for r in members),
                **_look(key, columns),
            )  # fmt: skip
        )
    return Chart(
        title=f"{PLOT_METRICS[metric]} against sequence length{suffix}",
        x_label="sequence length T",
        y_label=f"{QUANTITIES[metric]} ({unit})",
        log_y=True,
        series=tuple(series),
    )


def _accuracy_chart(rows: Sequence[ResultRow], suffix: str, against: str) -> Chart:
    scored = [r for r in rows if r.status == "ok" and r.metric_value is not None and r.median_s]
    if not scored:
        raise SeqbenchError(
            "nothing to plot: no cell of this run has an accuracy figure (metric_value); "
            "it ran without a task, so plot a cost instead (e.g. --metric median_s)"
        )
    metrics = sorted({r.metric or "metric" for r in scored})
    if len(metrics) > 1:
        raise SeqbenchError(
            f"the run's tasks measure different things ({', '.join(metrics)}): "
            "plot one task at a time (--task NAME)"
        )
    if against == "state_bytes":
        scored = [r for r in scored if r.state_bytes]
        if not scored:
            raise SeqbenchError(
                "nothing to plot against state_bytes: no scored cell has one (cores that "
                "cannot stream keep no state; runs before schema 12 did not record it)"
            )
    groups = _series_points(scored, against)
    scale, unit = _unit(against, [getattr(r, against) for r in scored])
    columns = varying_context(list(groups))
    series = []
    for key, members in groups.items():
        x_low, x_high = _scaled_intervals(members, against, scale)
        series.append(
            Series(
                format_series(key, columns),
                tuple(getattr(r, against) * scale for r in members),
                tuple(r.metric_value for r in members),
                point_labels=tuple(f"T={r.seq_len}" for r in members),
                x_low=x_low,
                x_high=x_high,
                noisy=tuple(bool(r.noisy) for r in members),
                **_look(key, columns),
            )
        )
    name = metrics[0]
    higher = higher_is_better(name)
    chances = {r.chance_value for r in scored if r.chance_value is not None}
    return Chart(
        title=f"{name} against {ACCURACY_AGAINST[against]}{suffix}",
        x_label=f"{QUANTITIES[against]} ({unit})",
        y_label=f"{name} ({'higher' if higher else 'lower'} is better)",
        log_y=False,
        series=tuple(series),
        frontiers=compute_fronts(scored, scale, higher, against),
        reference=chances.pop() if len(chances) == 1 else None,
        reference_label="chance",
    )


def compute_fronts(
    scored: Sequence[ResultRow], scale: float, higher: bool, against: str = "median_s"
) -> tuple[Series, ...]:
    """One Pareto front per mode: a training step and an inference step cost different
    things, so neither may dominate the other."""
    modes = list(dict.fromkeys(r.mode for r in scored))
    fronts = []
    for mode in modes:
        points = [(getattr(r, against) * scale, r.metric_value) for r in scored if r.mode == mode]
        on_front = compute_pareto(points, higher_is_better=higher)
        label = "Pareto frontier" + (f" ({mode})" if len(modes) > 1 else "")
        fronts.append(
            Series(
                label,
                tuple(points[i][0] for i in on_front),
                tuple(points[i][1] for i in on_front),
            )
        )
    return tuple(fronts)


@contextmanager
def text_figure(width: int, height: int) -> Iterator[Any]:
    """plotext's one global figure, cleared and sized to `width` × `height` terminal cells
    (not the terminal's), and cleared again afterwards whatever happens."""
    plotext = require("plotext", "a plot in the terminal")
    figure = plotext.figure
    figure.clear()
    try:
        plotext.terminal.limit(False, False)
        figure.plot_size(width, height)
        yield figure
    finally:
        figure.clear()


def with_legend(drawing: str, legend: Sequence[str]) -> str:
    """A plotext drawing with its legend as lines underneath, so it never hides a point."""
    return drawing.rstrip("\n") + "\n" + "\n".join(legend) + "\n"


def render_text(chart: Chart, width: int, height: int) -> str:
    """The chart drawn with plotext in `width` × `height` terminal cells (ANSI colour codes
    included), with the legend as lines underneath so it never hides a point."""
    with text_figure(width, height) as figure:
        legend = []
        for front in chart.frontiers:
            # First, so that the models' markers are drawn over it.
            figure.draw(figure.signal(list(front.x), list(front.y), marker="·").lines())
        intervals = False
        for series in chart.series:  # first: each point's marker is drawn over its interval
            for x, y, low, high in _interval_ends(series):
                figure.draw(figure.segment((x, x), (low, high), marker="│"))
                intervals = intervals or (low, high) != (y, y)
            for x, y, low, high in _interval_ends(series, on_x=True):
                figure.draw(figure.segment((low, high), (y, y), marker="─"))
                intervals = intervals or (low, high) != (x, x)
        if intervals:
            legend.append("│ each point's 95% interval")
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
        legend += [f"· {front.label}" for front in chart.frontiers if front.x]
        if chart.reference is not None:
            figure.line(chart.reference, "horizontal")
            legend.append(f"─ {chart.reference_label} ({chart.reference:g})")
        figure.ruler("x").scale("log")
        if chart.log_y:
            figure.ruler("y").scale("log")
        figure.title(chart.title)
        figure.label(chart.x_label, "x")
        figure.label(chart.y_label, "y")
        return with_legend(figure.build().string(), legend)


def _interval_ends(series: Series, on_x: bool = False) -> list[tuple[float, ...]]:
    """(x, y, low, high) of every point that has an interval, on y (or x)."""
    lows, highs = (series.x_low, series.x_high) if on_x else (series.low, series.high)
    return [
        (x, y, lo, hi)
        for x, y, lo, hi in zip(series.x, series.y, lows, highs, strict=False)
        if not (math.isnan(lo) or math.isnan(hi))
    ]


def gradient_chart(profiles: Sequence[Any]) -> Chart:
    """Input-gradient norm against distance from the end, one line per architecture (and
    after training, when measured): the vanishing gradient, drawn. Norms are relative to
    each profile's last step that gets any gradient, so a growing gradient rises; exact zeros
    (underflow) cannot sit on a log axis and are left out."""
    from seqbench.output.text import format_arch

    series = []
    for profile in profiles:
        # One colour per architecture; dashed before training, solid after.
        for label, norms, style in (
            ("init", profile.initial, "-" if profile.trained is None else "--"),
            ("trained", profile.trained, "-"),
        ):
            if norms is None:
                continue
            back = list(reversed(norms))  # back[d] is d steps before the last
            reference = next((v for v in back if v > 0), 1.0)  # the last live step
            # log10 on a linear axis: the values span 40 decades, and exponents read better
            # than 0.0000000000000000013 on a terminal's axis.
            points = [(d + 1, math.log10(v / reference)) for d, v in enumerate(back) if v > 0]
            name = format_arch(profile.cell) + ("" if profile.trained is None else f" ({label})")
            series.append(
                Series(
                    name,
                    tuple(p[0] for p in points),
                    tuple(p[1] for p in points),
                    group=format_arch(profile.cell),
                    style=style,
                )
            )
    return Chart(
        title="gradient reaching each input step, relative to the last step's",
        x_label="steps back from the end (1 = the last step)",
        y_label="log10 of |d loss / d x_t| / the last step's",
        log_y=False,
        series=tuple(series),
        reference=-3.0,
        reference_label="memory horizon threshold (1e-3)",
    )
