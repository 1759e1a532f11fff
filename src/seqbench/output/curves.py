"""Learning curves: a task cell's validation metric against training steps or seconds.

`compute_curves` averages each model-and-rate's curves over its seeds (points at the same
step; the seconds averaged too), with the lowest and highest seed beside the mean;
`render_curves_image` and `render_curves_text` draw them (matplotlib, plotext)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from seqbench.core.errors import SeqbenchError
from seqbench.core.schema import ResultRow
from seqbench.judge.accuracy import group_key
from seqbench.output.text import format_arch

X_AXES = {"step": "training steps", "time": "training seconds (evaluations not counted)"}


@dataclass(frozen=True)
class Curve:
    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]  # the mean over seeds
    low: tuple[float, ...]  # the lowest seed at each point
    high: tuple[float, ...]
    seeds: int


def compute_curves(
    rows: Sequence[ResultRow],
    curves: dict[str, list[tuple[int, float, float]]],
    x: str = "step",
    problem: str = "",
) -> list[Curve]:
    """One curve per model and rate: the mean over its seeds at every step all of them
    reached (a seed that stopped early on --train-time ends the curve there)."""
    if x not in X_AXES:
        raise SeqbenchError(f"--x: expected one of {', '.join(X_AXES)}, got {x!r}")
    groups: dict[tuple, list[list[tuple[int, float, float]]]] = {}
    labels: dict[tuple, str] = {}
    for row in rows:
        points = curves.get(row.cell_id)
        if not points:
            continue
        key = (group_key(row.cell), row.lr)
        groups.setdefault(key, []).append(points)
        labels[key] = f"{format_arch(row.cell)} T{row.seq_len} lr {row.lr:g}"
    out = []
    for key, members in groups.items():
        steps = sorted(set.intersection(*({p[0] for p in m} for m in members)))
        by_step = [{p[0]: p for p in m} for m in members]
        xs, ys, lows, highs = [], [], [], []
        for step in steps:
            at = [m[step] for m in by_step]
            values = [p[2] for p in at]
            xs.append(float(step) if x == "step" else sum(p[1] for p in at) / len(at))
            ys.append(sum(values) / len(values))
            lows.append(min(values))
            highs.append(max(values))
        out.append(
            Curve(labels[key], tuple(xs), tuple(ys), tuple(lows), tuple(highs), len(members))
        )
    if not out:
        raise SeqbenchError(
            problem
            or "nothing to plot: no cell of this run has a learning curve (task cells have "
            "one from schema 9 on)"
        )
    return out


def _title(rows: Sequence[ResultRow], run_id: str) -> tuple[str, str]:
    metrics = sorted({r.metric for r in rows if r.metric})
    metric = ", ".join(metrics) or "metric"
    return f"learning curves, validation split ({run_id})", f"validation {metric}"


def render_curves_image(
    curves: list[Curve], rows: Sequence[ResultRow], run_id: str, x: str, fmt: str
) -> bytes:
    """PNG or SVG bytes: each mean curve, with the band between its lowest and highest seed."""
    from seqbench.output.drawing import new_axes, save_figure

    figure, axes = new_axes()
    for curve in curves:
        label = curve.label + (f" ({curve.seeds} seeds)" if curve.seeds > 1 else "")
        (line,) = axes.plot(curve.x, curve.y, label=label)
        if curve.seeds > 1:
            axes.fill_between(curve.x, curve.low, curve.high, color=line.get_color(), alpha=0.15)
    title, y_label = _title(rows, run_id)
    axes.set_title(title)
    axes.set_xlabel(X_AXES[x])
    axes.set_ylabel(y_label)
    axes.legend(fontsize=8)
    return save_figure(figure, fmt)


def render_curves_text(
    curves: list[Curve], rows: Sequence[ResultRow], run_id: str, x: str, width: int, height: int
) -> str:
    """The mean curves drawn with plotext, the legend underneath."""
    from seqbench.output.plots import TEXT_MARKERS, text_figure, with_legend

    with text_figure(width, height) as figure:
        legend = []
        for i, curve in enumerate(curves):
            marker = TEXT_MARKERS[i % len(TEXT_MARKERS)]
            figure.draw(figure.signal(list(curve.x), list(curve.y), marker=marker).lines())
            legend.append(f"{marker} {curve.label} ({curve.seeds} seed(s), mean)")
        title, y_label = _title(rows, run_id)
        figure.title(title)
        figure.label(X_AXES[x], "x")
        figure.label(y_label, "y")
        return with_legend(figure.build().string(), legend)
