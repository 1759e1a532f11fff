"""What the API measures agrees with what `seqbench run` measures, and the reading commands
read the API's runs like any other. Structure and counts only: timing agreement is a
figure, in benchmarks/api_agreement.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

import seqbench
from seqbench.cli import app
from seqbench.core.errors import ConfigError
from seqbench.models import build_model, step_flops
from seqbench.storage import load_run

pytestmark = pytest.mark.filterwarnings("ignore:this machine is busy:RuntimeWarning")

FACTORY = "tests.api_models:core"
SETTINGS = {"min_time": 0.0, "min_repeats": 3, "warmup_time": 0.0, "threads": 1, "processes": 1}
FLAGS = ["--min-time", "0", "--min-repeats", "3", "--warmup-time", "0", "--threads", "1",
         "--processes", "1"]  # fmt: skip
SHAPE = {"hidden": 16, "layers": 1, "vocab": 50, "embed": 8}


def cli_run(cli, root: Path, *args: str):
    result = cli.invoke(app, ["run", *args, *FLAGS, "--out", str(root), "--quiet"])
    assert result.exit_code == 0, result.output
    return load_run("latest", root)


def test_measure_module_agrees_with_seqbench_run_on_a_factory_model(cli, tmp_path):
    run = cli_run(
        cli, tmp_path, "--arch", FACTORY, "--seq-len", "8,16", "--batch-size", "2",
        "--hidden", "16", "--vocab", "50", "--embed", "8", "--mode", "infer,train",
    )  # fmt: skip
    # The same model seqbench builds for the factory, on the same kind of inputs, with the
    # same loss and optimiser (the seed's RMSprop).
    model = build_model(run.rows[0].cell)
    frame = seqbench.measure_module(
        model, lambda b, t: torch.randint(1, 50, (b, t)), label=FACTORY, key=SHAPE,
        target=lambda b, t: torch.randint(0, 2, (b, 1)).float(),
        loss=nn.functional.binary_cross_entropy_with_logits,
        optimizer=lambda p: torch.optim.RMSprop(p, lr=1e-3, alpha=0.9, eps=1e-7),
        seq_len=[8, 16], batch_size=2, mode=["infer", "train"], **SETTINGS,
    )  # fmt: skip
    assert list(frame.cell_id) == [r.cell_id for r in run.rows]
    assert list(frame.params) == [r.params for r in run.rows]
    # No formula for a user's module: its FLOPs are counted on one step. The factory is a
    # GRU core, so an inference step counts exactly what the formula gives for `gru`; a
    # training step counts the real backward pass, which is the formulas' 3x forward less
    # the one recurrent matmul autograd skips: the gradient into the initial state (zeros,
    # no grad), 2 x 3H x H FLOPs.
    counted = [r.flops_per_seq for r in run.rows]
    assert list(frame.flops_per_seq) == counted
    for row in run.rows:
        formula = step_flops(dataclasses.replace(row.cell, arch="gru"))
        if row.mode == "infer":
            assert row.flops_per_seq == formula
        else:
            assert formula - row.flops_per_seq == 2 * 3 * 16 * 16
    assert set(frame.status) == {r.status for r in run.rows} == {"ok"}
    assert list(frame.mem_source) == [r.mem_source for r in run.rows]
    assert list(frame.threads) == [r.threads for r in run.rows] == [1] * 4
    assert (frame.repeats >= 3).all() and all(r.repeats >= 3 for r in run.rows)
    # The same kind of thing is named alike, whichever way it came in.
    assert list(frame.kernel) == [r.kernel for r in run.rows] == ["user module"] * 4


def test_a_user_module_streams_through_its_own_step_or_says_how_it_could(cli, tmp_path):
    run = cli_run(
        cli, tmp_path, "--arch", f"{FACTORY},tests.api_models:streaming_core", "--seq-len", "8",
        "--batch-size", "2", "--hidden", "16", "--vocab", "50", "--embed", "8", "--mode", "step",
    )  # fmt: skip
    rows = {r.arch: r for r in run.rows}
    plain, streaming = rows[FACTORY], rows["tests.api_models:streaming_core"]
    assert (plain.status, plain.message) == (
        "skipped",
        f"no streaming step: {FACTORY} has no streaming step (give its module "
        "init_state(batch, device, dtype) and step(x_t, state) -> (y_t, state) methods)",
    )
    assert (streaming.status, streaming.kernel) == ("ok", "user module")
    assert streaming.median_s > 0 and streaming.state_bytes == 16 * 4  # H float32 a sequence


@pytest.mark.slow
def test_seqbench_run_returns_the_rows_the_cli_saves(cli, tmp_path):
    run = cli_run(
        cli, tmp_path / "cli", "--arch", "rnn,conv1d", "--seq-len", "64", "--mode", "infer"
    )
    frame = seqbench.run(arch=["rnn", "conv1d"], seq_len=64, mode="infer", out=tmp_path / "api",
                         **SETTINGS)  # fmt: skip
    saved = load_run(frame.attrs["run_id"], tmp_path / "api")
    assert list(frame.cell_id) == [r.cell_id for r in run.rows] == [r.cell_id for r in saved.rows]
    assert set(frame.status) == {"ok"}
    for column in ("params", "core_params", "flops_per_seq", "kernel", "status"):
        assert list(frame[column]) == [getattr(r, column) for r in run.rows], column
    assert saved.meta.config["matrices"] == run.meta.config["matrices"]


def test_seqbench_run_refuses_an_unknown_option():
    with pytest.raises(ConfigError, match="run\\(\\): unknown option 'seqlen'"):
        seqbench.run(seqlen=3)


@pytest.mark.slow
def test_show_compare_and_plot_read_runs_the_api_made(cli, tmp_path, one_thread):
    pytest.importorskip("matplotlib")
    for _ in range(2):
        seqbench.measure_module(
            nn.Linear(8, 8), lambda b, t: torch.randn(b, t, 8), label="lin", seq_len=[8, 32],
            batch_size=2, out=tmp_path, **SETTINGS,
        )  # fmt: skip
    first, second = sorted(p.name for p in tmp_path.iterdir())
    root = ["--root", str(tmp_path)]
    shown = cli.invoke(app, ["show", second, *root])
    assert shown.exit_code == 0 and f"seqbench lin ({second})" in shown.output
    compared = cli.invoke(app, ["compare", first, second, *root])
    assert compared.exit_code in (0, 1, 3), compared.output  # 2 would be unreadable input
    assert "time:" in compared.output  # the verdict counts line
    plotted = cli.invoke(app, ["plot", second, "--out", str(tmp_path / "p.png"), *root])
    assert plotted.exit_code == 0, plotted.output
    assert (tmp_path / "p.png").stat().st_size > 0


@pytest.mark.slow
def test_a_module_by_name_is_measured_in_a_fresh_process(tmp_path):
    frame = seqbench.measure_module(
        "tests.api_models:small", "tests.api_models:small_inputs", label="small", seq_len=[4, 8],
        batch_size=2, mode=["infer", "train"], isolate=True, out=tmp_path, **SETTINGS,
    )  # fmt: skip
    assert list(frame.status) == ["ok"] * 4
    assert set(frame.params) == {8 * 16 + 16 + 16 + 1}
    # A fresh process per cell: its own resident-set high-water mark is recorded.
    assert frame.peak_rss_bytes.notna().all()
    assert load_run("latest", tmp_path).meta.env["isolated"] is True
