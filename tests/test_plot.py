"""Charts from rows, drawn as PNG, SVG and terminal text."""

from __future__ import annotations

import dataclasses
import sys
import xml.etree.ElementTree as ET

import pytest

from seqbench.core.errors import MissingDependency, SeqbenchError
from seqbench.core.schema import ResultRow
from seqbench.output.plots import build_chart, image_format, render_image, render_text
from tests.helpers import make_cell, power_rows

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LENGTHS = [32, 64, 128, 256]


def cost_rows():
    return power_rows("rnn", LENGTHS, 1.0) + power_rows("lstm", LENGTHS, 2.0, scale=1e-7)


def accuracy_rows():
    # (arch, T, seconds, accuracy): gru at 64 is dearer than lstm at 64 and no better.
    points = [
        ("rnn", 64, 1e-3, 0.55),
        ("rnn", 128, 2e-3, 0.60),
        ("lstm", 64, 2e-3, 0.80),
        ("lstm", 128, 4e-3, 0.95),
        ("gru", 64, 3e-3, 0.70),
    ]
    return [
        ResultRow.for_cell(
            make_cell(arch=a, seq_len=t, task="digits"),
            median_s=s,
            metric="accuracy",
            metric_value=v,
            chance_value=0.5,
        )
        for a, t, s, v in points
    ]


def test_a_cost_chart_has_one_series_per_model_with_its_fitted_exponent():
    chart = build_chart(cost_rows(), "median_s", "run-1")
    assert [s.label for s in chart.series] == ["rnn  k=1.00", "lstm  k=2.00"]
    assert chart.series[0].x == (32.0, 64.0, 128.0, 256.0)
    assert chart.y_label == "median step time (ms)"  # the largest value, 2.56 ms, reads best in ms
    assert chart.series[0].y[0] == pytest.approx(0.32)
    assert chart.title == "step time against sequence length (run-1)"
    assert chart.log_y and chart.frontiers == ()


def test_series_labels_name_what_tells_them_apart():
    rows = power_rows("gru", LENGTHS, 1.0) + power_rows("gru", LENGTHS, 1.0, mode="train")
    chart = build_chart(rows, "peak_mem_bytes")
    assert [s.label for s in chart.series] == ["gru · infer  k=1.00", "gru · train  k=1.00"]
    assert chart.y_label == "peak memory (KiB)"


def test_a_state_chart_shows_a_kv_cache_growing_and_a_recurrent_state_flat():
    lengths = [64, 128, 256]
    rows = [
        dataclasses.replace(r, mode="step", state_bytes=2 * r.seq_len * 32 * 4)
        for r in power_rows("transformer-causal", lengths, 1.0)
    ] + [
        dataclasses.replace(r, mode="step", state_bytes=256)
        for r in power_rows("lstm", lengths, 1.0)
    ]
    chart = build_chart(rows, "state_bytes")
    assert [s.label for s in chart.series] == ["transformer-causal  k=1.00", "lstm  k=0.00"]
    assert chart.y_label == "state per sequence (KiB)"
    assert chart.series[0].y == (16.0, 32.0, 64.0)


def test_an_accuracy_chart_marks_the_pareto_frontier_and_chance():
    chart = build_chart(accuracy_rows(), "metric_value")
    (front,) = chart.frontiers
    assert front.x == (1.0, 2.0, 4.0)  # ms: rnn@64, lstm@64, lstm@128
    assert front.y == (0.55, 0.80, 0.95)
    assert chart.reference == 0.5 and chart.reference_label == "chance"
    assert chart.y_label == "accuracy (higher is better)" and not chart.log_y
    assert chart.series[1].point_labels == ("T=64", "T=128")


def test_a_loss_like_metric_puts_the_frontier_at_the_bottom():
    # The copy task scores cross-entropy: lower is better, so the cheapest point starts the
    # frontier and only lower losses extend it.
    rows = [dataclasses.replace(r, task="copy", metric="cross_entropy") for r in accuracy_rows()]
    chart = build_chart(rows, "metric_value")
    assert chart.y_label == "cross_entropy (lower is better)"
    assert chart.frontiers[0].x == (1.0,)  # rnn@64 is the cheapest and has the lowest loss


def test_tasks_with_different_metrics_are_not_mixed_in_one_chart():
    rows = accuracy_rows()
    rows[0] = dataclasses.replace(rows[0], metric="cross_entropy")
    with pytest.raises(
        SeqbenchError, match=r"measure different things \(accuracy, cross_entropy\)"
    ):
        build_chart(rows, "metric_value")


def test_asking_for_accuracy_of_a_run_without_a_task_says_what_to_do():
    with pytest.raises(SeqbenchError, match="no cell of this run has an accuracy figure"):
        build_chart(cost_rows(), "metric_value")


def test_an_unknown_metric_or_image_suffix_is_refused():
    with pytest.raises(SeqbenchError, match="--metric: expected one of seq_per_s, median_s"):
        build_chart(cost_rows(), "speed")
    with pytest.raises(SeqbenchError, match=r"cannot draw a '\.jpg' file; use \.png or \.svg"):
        image_format("plot.jpg")
    assert image_format("docs/Plot.SVG") == "svg"


def test_a_png_is_written_with_the_png_signature():
    data = render_image(build_chart(cost_rows(), "median_s"), "png")
    assert data[:8] == PNG_SIGNATURE and len(data) > 10_000


@pytest.mark.parametrize("rows", [cost_rows(), accuracy_rows()], ids=["cost", "accuracy"])
def test_an_svg_parses_as_xml_with_an_svg_root(rows):
    metric = "metric_value" if rows[0].task else "median_s"
    root = ET.fromstring(render_image(build_chart(rows, metric), "svg"))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"


def test_the_terminal_plot_draws_points_and_a_legend_under_them():
    text = render_text(build_chart(cost_rows(), "median_s", "run-1"), width=80, height=20)
    lines = text.splitlines()
    assert "step time against sequence length (run-1)" in lines[0]
    assert lines[-2:] == ["• rnn  k=1.00", "+ lstm  k=2.00"]
    assert sum("•" in line for line in lines[:-2]) >= 5  # the rnn's points and line


def test_plots_without_their_library_say_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "plotext", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    chart = build_chart(cost_rows(), "median_s")
    with pytest.raises(
        MissingDependency, match=r"needs plotext, .*: pip install 'seqbench\[report\]'"
    ):
        render_text(chart, 80, 20)
    with pytest.raises(
        MissingDependency, match=r"needs matplotlib, .*: pip install 'seqbench\[report\]'"
    ):
        render_image(chart, "png")


def rows_with_intervals():
    rows = power_rows("rnn", LENGTHS, 1.0)
    return [
        dataclasses.replace(
            r,
            ci_low_s=r.median_s * 0.9,
            ci_high_s=r.median_s * 1.25,
            noisy="its interval is ±18%, wider than ±10%" if r.seq_len == 64 else "",
        )  # fmt: skip
        for r in rows
    ]


def test_every_time_point_carries_its_interval_and_noisy_points_are_marked():
    (series,) = build_chart(rows_with_intervals(), "median_s").series
    assert series.low == pytest.approx([y * 0.9 for y in series.y])
    assert series.high == pytest.approx([y * 1.25 for y in series.y])
    assert series.noisy == (False, True, False, False)
    # A rate's interval comes from the time's, the faster end giving the higher rate.
    (rate,) = build_chart(rows_with_intervals(), "seq_per_s").series
    assert rate.low == pytest.approx([y / 1.25 for y in rate.y])
    assert rate.high == pytest.approx([y / 0.9 for y in rate.y])
    assert build_chart(rows_with_intervals(), "peak_mem_bytes").series[0].low == ()


def test_a_drawn_chart_shows_intervals_and_names_the_noisy_points():
    pytest.importorskip("matplotlib")
    svg = render_image(build_chart(rows_with_intervals(), "median_s"), "svg").decode()
    assert "noisy (see the noise column)" in svg
    quiet = [dataclasses.replace(r, noisy="") for r in rows_with_intervals()]
    assert (
        "noisy (see the noise column)"
        not in render_image(build_chart(quiet, "median_s"), "svg").decode()
    )
    pytest.importorskip("plotext")
    text = render_text(build_chart(rows_with_intervals(), "median_s"), 100, 25)
    assert "? noisy: see the noise column" in text
