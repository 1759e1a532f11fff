"""Rendered output against files in tests/golden/, built from fixed synthetic rows.

The rows are made up (no timing), so the files change only when the rendering does. After
an intended change, regenerate them and read the diff before committing:

    SEQBENCH_UPDATE_GOLDEN=1 PYTHONPATH=src python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from rich.console import Console

from seqbench.core.schema import ResultRow
from seqbench.export import EXPORTERS
from seqbench.output.terminal import results_view, runs_table
from seqbench.storage import RunSummary
from tests.helpers import make_cell

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("SEQBENCH_UPDATE_GOLDEN") == "1"


def golden_rows() -> list[ResultRow]:
    """Three models in training at three lengths: the LSTM with a 30× cliff at 256, the
    convolution growing as √T, and a convolution too short to build."""
    core = {"rnn": 120, "lstm": 480, "conv1d": 700}
    time = {
        "rnn": lambda t: 1e-3 * t / 64,
        "lstm": lambda t: 6e-4 * t / 64 * (30 if t >= 256 else 1),
        "conv1d": lambda t: 5e-4 * (t / 64) ** 0.5,
    }
    rows = []
    for arch in ("rnn", "lstm", "conv1d"):
        layers = 2 if arch == "conv1d" else 1
        for t in (64, 128, 256):
            median = time[arch](t)
            rows.append(
                ResultRow.for_cell(
                    make_cell(arch=arch, seq_len=t, mode="train", layers=layers),
                    params=core[arch] + 309,
                    core_params=core[arch],
                    flops_per_seq=6 * core[arch] * t,
                    kernel="onednn" if arch == "lstm" else "aten",
                    median_s=median,
                    iqr_s=median * 0.04,
                    repeats=10,
                    seq_per_s=4 / median,
                    tokens_per_s=4 * t / median,
                    tflops=6 * core[arch] * t * 4 / median / 1e12,
                    peak_mem_bytes=4096 + 64 * t * (4 if arch == "lstm" else 1),
                )
            )
    rows.append(
        ResultRow.for_cell(
            make_cell(arch="conv1d", seq_len=32, mode="train", layers=2),
            status="skipped",
            message="conv1d needs seq_len >= 41",
        )
    )
    return rows


def quick_rows() -> list[ResultRow]:
    """What the default run measures (the quick suite's 16 cells), with made-up figures:
    every column a terminal could show, one cell flagged noisy."""
    core = {"rnn": 2112, "lstm": 8448, "gru": 6336, "conv1d": 14400}
    rows = []
    for arch in core:
        for t in (64, 256):
            for mode in ("infer", "train"):
                median = 1e-5 * t * (3 if mode == "train" else 1) * (2 if arch == "gru" else 1)
                rows.append(
                    ResultRow.for_cell(
                        make_cell(arch=arch, seq_len=t, mode=mode, batch_size=32, hidden=32),
                        params=core[arch] + 320_033,
                        core_params=core[arch],
                        kernel="onednn" if arch == "lstm" else "aten",
                        median_s=median,
                        iqr_s=median * 0.03,
                        repeats=50,
                        seq_per_s=32 / median,
                        tokens_per_s=32 * t / median,
                        tflops=2 * core[arch] * t * 32 / median / 1e12,
                        mfu=0.05,
                        peak_mem_bytes=2_000_000 + 10_000 * t,
                        noisy="its 2 threads shared 2 CPUs with 1.0 cores of other work"
                        if (arch, t, mode) == ("gru", 256, "train")
                        else "",
                        others_cores=1.0 if (arch, t, mode) == ("gru", 256, "train") else 0.0,
                        threads=2,
                        cpus=2.0,
                    )
                )
    return rows


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: regenerate it (see this module's docstring)"
    assert text == path.read_text(encoding="utf-8")


def rich_text(renderable_of, width: int = 120) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable_of(console))
    return console.export_text()


def test_the_markdown_export_matches_its_golden_file():
    check_golden("results.md", EXPORTERS["markdown"].render(golden_rows()))


def test_the_results_and_scaling_tables_match_their_golden_file_at_width_120():
    text = rich_text(
        lambda console: results_view(
            golden_rows(), "seqbench golden (synthetic)", console, flush_denormal=True
        )
    )
    check_golden("results_120.txt", text)


def test_the_default_table_at_80_columns_keeps_parameters_time_throughput_and_memory():
    """A terminal's default width, and what a pipe or a CI log gets: the LSTM's 4x the
    simple RNN's parameters, the first reason this tool exists, stays; the FLOP rates, the
    kernel and the noise notes give way first, and the caption names them."""
    text = rich_text(lambda console: results_view(quick_rows(), "seqbench quick", console), 80)
    check_golden("results_80.txt", text)
    assert "core params (×rnn)" in text and "8.45k (4.00×)" in text
    assert all(column in text for column in ("median ± IQR/2", "seq/s", "peak mem"))
    assert "not shown at this width: GFLOP/s, MFU, kernel, noise" in " ".join(text.split())


def test_the_runs_table_matches_its_golden_file():
    summaries = [
        RunSummary(
            "20261126-101500-scaling",
            "scaling",
            "2026-11-26T10:15:00+00:00",
            "complete",
            ("cpu",),
            20,
            {"ok": 19, "skipped": 1},
        ),
        RunSummary(
            "20261125-090000-ci",
            "ci",
            "2026-11-25T09:00:00+00:00",
            "interrupted",
            ("cpu", "cuda"),
            5,
            {"ok": 4, "error": 1},
        ),
        RunSummary(
            "20261124-080000-x",
            state="damaged",
            problem="results/20261124-080000-x/meta.json: metadata file is empty",
        ),
    ]
    check_golden("runs_120.txt", rich_text(lambda console: runs_table(summaries, console)))


@pytest.mark.parametrize(
    "name", ["results.md", "results_120.txt", "results_80.txt", "runs_120.txt"]
)
def test_golden_files_hold_no_timing_of_this_machine(name):
    text = (GOLDEN / name).read_text(encoding="utf-8")
    assert "EPYC" not in text and "torch" not in text
