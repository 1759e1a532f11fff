"""Plots people can read, checked on the matplotlib figure itself: intervals on every
timed point, log-axis labels that do not collide, one colour per architecture, Pareto
fronts that keep inference and training apart, axis labels with one unit."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest

from seqbench.core.schema import ResultRow
from seqbench.output.drawing import compute_log_ticks
from seqbench.output.plots import build_chart, gradient_chart
from tests.helpers import make_cell, power_rows

pytest.importorskip("matplotlib")

from seqbench.output.plots import draw_figure  # noqa: E402


def labelled_ticks(axis) -> list[tuple[float, str]]:
    """(value, text) of the labels an axis shows within its view, after a draw."""
    axis.axes.figure.canvas.draw()
    low, high = sorted(axis.get_view_interval())
    shown = [
        (tick.get_loc(), tick.label1.get_text())
        for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]
        if tick.label1.get_visible() and tick.label1.get_text()
    ]
    return sorted((v, t) for v, t in shown if low <= v <= high)


def assert_apart_on_log_axis(axis, share: float = 0.06) -> None:
    """No two labels closer than `share` of the axis' log length (they would overlap)."""
    low, high = sorted(axis.get_view_interval())
    span = math.log10(high / low)
    values = [v for v, _ in labelled_ticks(axis)]
    gaps = [math.log10(b / a) / span for a, b in zip(values, values[1:], strict=False)]
    assert min(gaps, default=1.0) >= share, values


def timed_rows(low_s: float, ratio: float = 1.3):
    """rnn at four lengths whose times climb from low_s by `ratio` a step (a short range)."""
    cells = [make_cell(arch="rnn", seq_len=t) for t in (32, 64, 128, 256)]
    return [
        ResultRow.for_cell(
            c,
            median_s=low_s * ratio**i,
            ci_low_s=low_s * ratio**i * 0.95,
            ci_high_s=low_s * ratio**i * 1.1,
            seq_per_s=4 / (low_s * ratio**i),
        )  # fmt: skip
        for i, c in enumerate(cells)
    ]


def test_a_point_without_an_interval_does_not_hide_the_others():
    rows = timed_rows(1e-3)
    rows[1] = dataclasses.replace(rows[1], ci_low_s=None, ci_high_s=None)
    (series,) = build_chart(rows, "median_s").series
    assert math.isnan(series.low[1]) and math.isnan(series.high[1])
    assert series.low[0] == pytest.approx(0.95) and series.high[3] == pytest.approx(2.197 * 1.1)
    axes = draw_figure(build_chart(rows, "median_s")).axes[0]
    (bars,) = axes.containers  # one errorbar container, its vertical segments one per point
    segments = bars.lines[2][0].get_segments()
    assert len(segments) == 4
    assert [round(s[1][1] - s[0][1], 3) for s in segments][1] == 0  # the one without


@pytest.mark.parametrize(
    "low_s",
    [
        pytest.param(2e-4, id="0.2-0.44 ms: inside one decade"),
        pytest.param(8.5e-4, id="0.85-1.87 ms: across 1"),
    ],
)
def test_log_axis_labels_do_not_collide_and_are_more_than_one(low_s):
    axes = draw_figure(build_chart(timed_rows(low_s), "median_s")).axes[0]
    labels = labelled_ticks(axes.yaxis)
    assert len(labels) >= 2, labels
    assert all(text == "" for text in (t.label1.get_text() for t in axes.yaxis.get_minor_ticks()))
    assert_apart_on_log_axis(axes.yaxis)


def test_log_ticks_step_from_decades_to_1_2_5_to_digits():
    assert compute_log_ticks(1e-4, 1.0) == [1e-4, 1e-3, 1e-2, 0.1, 1.0]
    assert compute_log_ticks(0.15, 1.9) == [0.2, 0.5, 1.0]
    assert compute_log_ticks(0.31, 0.72) == [0.4, 0.5, 0.6, 0.7]
    assert len(compute_log_ticks(0.95, 1.05)) >= 2


def test_the_accuracy_plot_labels_its_time_axis_more_than_once():
    rows = [
        ResultRow.for_cell(
            make_cell(arch=a, seq_len=64, task="digits"),
            median_s=s,
            metric="accuracy",
            metric_value=v,
            ci_low_s=s * 0.9,
            ci_high_s=s * 1.2,
        )  # fmt: skip
        for a, s, v in (("rnn", 1.2e-3, 0.6), ("lstm", 1.9e-3, 0.8), ("gru", 2.5e-3, 0.7))
    ]
    chart = build_chart(rows, "metric_value")
    assert chart.series[0].x_low == pytest.approx((1.08,))  # the time's interval, in ms
    axes = draw_figure(chart).axes[0]
    assert len(labelled_ticks(axes.xaxis)) >= 2
    assert_apart_on_log_axis(axes.xaxis)


def test_a_pareto_front_never_mixes_inference_and_training():
    rows = [
        ResultRow.for_cell(
            make_cell(arch=a, seq_len=64, task="digits", mode=m),
            median_s=s,
            metric="accuracy",
            metric_value=v,
        )  # fmt: skip
        for a, m, s, v in (
            ("rnn", "infer", 1e-3, 0.6),
            ("lstm", "infer", 2e-3, 0.8),
            ("rnn", "train", 3e-3, 0.6),
            ("lstm", "train", 9e-3, 0.8),
        )  # fmt: skip
    ]
    fronts = build_chart(rows, "metric_value").frontiers
    assert [f.label for f in fronts] == ["Pareto frontier (infer)", "Pareto frontier (train)"]
    assert fronts[0].x == (1.0, 2.0) and fronts[1].x == (3.0, 9.0)  # ms, each its own mode


def test_the_gradient_plot_keeps_one_colour_per_architecture():
    profiles = [
        SimpleNamespace(
            cell=make_cell(arch=arch),
            initial=[0.1**k * (i + 1) for i in range(20)],
            trained=[0.5 ** (20 - i) for i in range(20)],
        )  # fmt: skip
        for arch, k in (("rnn", 1), ("lstm", 0.2))
    ]
    axes = draw_figure(gradient_chart(profiles)).axes[0]
    lines = {
        line.get_label(): (line.get_color(), line.get_linestyle())
        for line in axes.get_lines()
        if not line.get_label().startswith("_")
    }
    assert lines["rnn (init)"][0] == lines["rnn (trained)"][0] != lines["lstm (init)"][0]
    assert lines["lstm (init)"][0] == lines["lstm (trained)"][0]
    assert lines["rnn (init)"][1] == "--" and lines["rnn (trained)"][1] == "-"


@pytest.mark.parametrize(
    ("metric", "label"),
    [
        ("median_s", "median step time (ms)"),
        ("seq_per_s", "throughput (sequences/s)"),
        ("peak_mem_bytes", "peak memory (KiB)"),
        ("tflops", "arithmetic rate (GFLOP/s)"),
    ],
)
def test_axis_labels_name_the_quantity_and_its_unit_once(metric, label):
    rows = [dataclasses.replace(r, tflops=1e-3) for r in power_rows("rnn", [32, 64, 128], 1.0)]
    chart = build_chart(rows, metric)
    assert chart.y_label == label
    assert chart.x_label == "sequence length T"


def test_the_terminal_plot_draws_each_interval_too():
    pytest.importorskip("plotext")
    from seqbench.output.plots import render_text

    text = render_text(build_chart(timed_rows(1e-3, ratio=3.0), "median_s"), 80, 24)
    assert "│ each point's 95% interval" in text
    memory = render_text(
        build_chart(power_rows("rnn", [32, 64, 128], 1.0), "peak_mem_bytes"), 80, 24
    )
    assert "95% interval" not in memory


def test_a_model_keeps_its_colour_in_inference_and_training():
    rows = power_rows("rnn", [32, 64], 1.0) + power_rows("lstm", [32, 64], 1.0)
    rows += [dataclasses.replace(r, mode="train") for r in rows]
    axes = draw_figure(build_chart(rows, "median_s")).axes[0]
    lines = {
        line.get_label(): (line.get_color(), line.get_linestyle())
        for line in axes.get_lines()
        if not line.get_label().startswith("_")
    }
    assert lines["rnn · infer"][0] == lines["rnn · train"][0] != lines["lstm · infer"][0]
    assert lines["rnn · infer"][1] == "-" and lines["rnn · train"][1] == "-."
