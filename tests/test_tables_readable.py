"""Tables people can read, rendered as a terminal of 80 and of 150 columns would show them:
a one-cell run keeps its measurements, the scaling table of a long frontier keeps its
architecture column, figures never have four digits or an exponent, headers fit what is
shown, and ad-hoc runs say what they measured."""

from __future__ import annotations

import dataclasses

import pytest
from rich.console import Console

from seqbench.core.schema import ResultRow
from seqbench.output.terminal import results_view
from seqbench.output.text import (
    format_bytes,
    format_count,
    format_plural,
    format_ratio,
    format_seconds,
)
from seqbench.plan.config import describe_matrices
from seqbench.plan.suites import resolve_config
from tests.helpers import make_cell, power_rows


def rendered(renderable_of, width: int) -> str:
    console = Console(record=True, width=width)
    console.print(renderable_of(console))
    return console.export_text()


def one_cell_row() -> ResultRow:
    return ResultRow.for_cell(
        make_cell(arch="lstm", seq_len=64, batch_size=32, hidden=32),
        params=328_000, core_params=8_448, kernel="onednn", median_s=354e-6,
        iqr_s=354e-6 * 0.1, repeats=50, seq_per_s=90_300, tflops=0.0947,
        peak_mem_bytes=1023 * 1024,
    )  # fmt: skip


@pytest.mark.parametrize("width", [80, 150])
def test_a_one_cell_run_folds_its_settings_and_keeps_its_measurements(width):
    text = rendered(lambda c: results_view([one_cell_row()], "one", c), width)
    header = next(line for line in text.splitlines() if "median" in line)
    for measured in ("median ± IQR/2", "seq/s", "peak mem"):
        assert measured in header
    for setting in ("arch", " T ", "batch", "hidden", "device", "dtype", "mode", "kernel"):
        assert setting not in header
    footer = " ".join(text.split())
    assert "arch lstm, T 64, batch 32, hidden 32, device cpu, dtype float32, mode infer" in footer
    assert "kernel onednn" in footer
    assert "0.999 MiB" in text and "e+" not in text
    if width == 150:
        assert "GFLOP/s" in header and "not shown" not in text


def frontier_rows() -> list[ResultRow]:
    """Three models at eleven lengths from 256 to 262144, two with steps off their fits."""
    lengths = [256 * 2**i for i in range(11)]
    rows = []
    for arch, k in (("rnn", 1.0), ("lstm", 1.0), ("conv1d", 0.5)):
        for row in power_rows(arch, lengths, k, mode="train"):
            jump = 3.0 if arch != "rnn" and row.seq_len in (8192, 65536) else 1.0
            rows.append(dataclasses.replace(row, median_s=row.median_s * jump))
    return rows


@pytest.mark.parametrize("width", [80, 150])
def test_the_scaling_table_of_a_frontier_keeps_its_arch_column_and_wraps_its_notes(width):
    text = rendered(lambda c: results_view(frontier_rows(), "frontier", c), width)
    growth = text[text.index("How cost grows with T") :]
    header = next(line for line in growth.splitlines() if "time ∝ T^k" in line)
    assert header.split()[0] == "arch"
    assert "…" not in growth.split("[1]")[0]
    lines = growth.splitlines()
    for arch in ("rnn", "lstm", "conv1d"):
        assert any(line.split()[:1] == [arch] for line in lines), arch
    assert "steps off the fit" in header
    assert "time ×" in growth and "256–262144 (11)" in growth


def test_figures_never_have_four_digits_or_an_exponent():
    assert format_bytes(1000 * 1024) == "0.977 MiB"
    assert format_bytes(1023 * 1024) == "0.999 MiB"
    assert format_bytes(1024 * 1024) == "1 MiB"
    assert format_bytes(999.6 * 2**20) == "0.976 GiB"
    assert format_bytes(999) == "999 B"
    assert format_count(999.6) == "1k"
    assert format_count(999_999) == "1M"
    assert format_seconds(0.99971e-3) == "1 ms"


def test_small_ratios_keep_their_size_and_counts_their_number():
    assert format_ratio(0.0042) == "0.0042×"
    assert format_ratio(0.04) == "0.04×"
    assert format_ratio(1.5) == "1.50×"
    assert format_plural(1, "cell") == "1 cell"
    assert format_plural(2, "cell") == "2 cells"
    assert format_plural(0, "measured cell") == "0 measured cells"


def test_the_rnn_ratio_header_goes_when_there_is_no_rnn():
    rows = power_rows("lstm", [64, 128], 1.0) + power_rows("gru", [64, 128], 1.0)
    rows = [dataclasses.replace(r, core_params=1000) for r in rows]
    text = rendered(lambda c: results_view(rows, None, c), 150)
    assert "core params" in text and "×rnn" not in text
    with_rnn = rows + [dataclasses.replace(r, arch="rnn", core_params=250) for r in rows[:2]]
    text = rendered(lambda c: results_view(with_rnn, None, c), 150)
    assert "core params (×rnn)" in text and "4.00×" in text


def test_ad_hoc_runs_are_labelled_with_what_they_measured():
    config = resolve_config(
        axes={"arch": ("lstm", "gru"), "seq_len": (64, 128), "mode": ("infer",)}
    )
    assert config.label == "lstm,gru T=64,128 infer"
    many = resolve_config(
        axes={"arch": ("rnn", "lstm", "gru", "conv1d", "tcn"), "seq_len": (64, 128, 256, 1024)}
    )
    assert many.label == "rnn,lstm,gru+2 T=64-1024"
    assert resolve_config(axes={"device": ("cuda",)}).label == "rnn,lstm,gru+1 T=64,256 cuda"
    given = resolve_config(axes={"arch": ("lstm",)}, settings={"label": "mine"})
    assert given.label == "mine"
    assert resolve_config().label == "quick"  # the suite keeps its own name
    assert len(describe_matrices(many.matrices)) <= 40


def test_the_width_a_table_needs_is_measured_from_its_widest_cells():
    # `_needed_width` measures one row of each column's widest cell, not every row: the
    # result must be what Rich measures for the whole table, wide characters included.
    from rich.measure import Measurement

    from seqbench.output.layout import TableText
    from seqbench.output.terminal import _build, _needed_width

    cells = [["lstm", "1.5 µs", "ok"], ["gru-paper", "12 ms", "error: 界 wide"], ["rnn", "3 s", ""]]
    text = TableText(
        headers=["arch", "median", "status"], justify=["left", "right", "left"],
        cells=cells, caption="", wrap=[False, False, False],
    )  # fmt: skip
    console = Console(width=200)
    whole = Measurement.get(console, console.options.update_width(10_000), _build(text, None))
    assert _needed_width(console, text) == whole.maximum
    # The widest cells (界 takes two columns), padding between columns, dividers and edges.
    assert whole.maximum == len("gru-paper") + len("median") + len("error: 界 wide") + 1 + 4 + 2 + 2
