"""Instructions per step under callgrind: the row contract, the gate, and the count itself.

The tests that run valgrind skip without it, and are slow (the simulator takes tens of
seconds to start torch and build a cell)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from seqbench.cli import app
from seqbench.core.request import CellRequest
from seqbench.core.schema import SCHEMA_VERSION, Measurement, ResultRow
from seqbench.execute.callgrind import (
    INSTALL_HINT,
    CountingExecutor,
    CountingWorker,
    counting_request,
    with_count,
)
from seqbench.execute.local import InProcessExecutor
from seqbench.judge.compare import compare_runs, default_threshold
from seqbench.machine.env import env_differences
from seqbench.storage import load_run
from tests.helpers import FAST, make_cell, measure_cell, save_run

needs_valgrind = pytest.mark.skipif(
    shutil.which("valgrind") is None, reason="needs valgrind (apt-get install valgrind)"
)


def counted_row(instr: float | None, median_s: float = 1e-3, **values) -> ResultRow:
    values = {"instr_steps": 5, **values}
    return ResultRow.for_cell(
        make_cell(), params=100, median_s=median_s, instr_per_step=instr, **values
    )


def test_schema_9_keeps_the_count_and_still_reads_rows_without_it():
    assert SCHEMA_VERSION >= 9  # the count came in 9; later versions keep it
    row = counted_row(1_234_567.2)
    back = ResultRow.from_dict({k: str(v) for k, v in row.to_dict().items() if v is not None})
    assert (back.instr_per_step, back.instr_steps, back.instr_note) == (1_234_567.2, 5, "")
    old = {k: v for k, v in row.to_dict().items() if not k.startswith("instr")}
    assert ResultRow.from_dict(old).instr_per_step is None


def test_a_count_joins_the_timed_row_and_a_reason_takes_its_place():
    timed = Measurement(counted_row(None, instr_steps=None), [1e-3, 2e-3])
    count = Measurement(ResultRow.for_cell(make_cell(), instr_per_step=42.0, instr_steps=5))
    joined = with_count(timed, count)
    assert (joined.row.instr_per_step, joined.row.instr_steps, joined.samples) == (
        42.0,
        5,
        [1e-3, 2e-3],
    )
    assert with_count(timed, INSTALL_HINT).row.instr_note == INSTALL_HINT
    broken = Measurement(ResultRow.for_cell(make_cell(), status="error", message="boom"))
    assert with_count(timed, broken).row.instr_note == "counting failed (error): boom"


def test_the_counting_request_is_one_thread_no_training_first_round():
    request = CellRequest(make_cell(task="adding"), FAST, round=3, memory=True)
    counting = counting_request(request, steps=7)
    assert (counting.count_steps, counting.process.threads, counting.round) == (7, 1, 1)
    assert not counting.accuracy and not counting.memory


def test_without_valgrind_every_measured_cell_says_how_to_install_it(monkeypatch, one_thread):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    cpu, cuda = make_cell(), make_cell(device="cuda")
    with CountingExecutor(InProcessExecutor()) as executor:
        executor.submit(CellRequest(cpu, FAST))
        _, measurement = executor.next_finished()
        assert measurement.row.status == "ok" and measurement.row.instr_per_step is None
        assert measurement.row.instr_note == INSTALL_HINT
        assert "apt-get install valgrind" in INSTALL_HINT
        assert executor.describe()["valgrind"] is None
        # A CUDA cell is never counted, whatever the machine has.
        executor.inner.run = lambda r: Measurement(ResultRow.for_cell(r.cell, median_s=1.0))
        executor.submit(CellRequest(cuda, FAST))
        assert executor.next_finished()[1].row.instr_note == "only CPU cells can be counted"


def test_a_count_asked_outside_callgrind_says_so(one_thread, monkeypatch):
    monkeypatch.delenv("SEQBENCH_CALLGRIND_OUT", raising=False)
    row = measure_cell(make_cell(), count_steps=3).row
    assert row.status == "ok" and row.instr_per_step is None
    assert row.instr_note == "not running under callgrind"


def test_instructions_gate_exactly_at_two_percent(tmp_path):
    assert default_threshold("instructions") == 0.02 and default_threshold("time") == 0.10
    base = save_run(tmp_path, [counted_row(1_000_000)])
    verdicts = {}
    for change in (1.015, 1.03, 0.96):
        cand = save_run(tmp_path, [counted_row(1_000_000 * change)])
        result = compare_runs(base, cand, metric="instructions", threshold=0.02)
        verdicts[change] = result.cells[0].verdict
    assert verdicts == {1.015: "unchanged", 1.03: "regression", 0.96: "improvement"}


def test_compare_gates_on_the_count_beside_time(tmp_path, cli):
    """The clock cannot tell (one sample a side); the count grew 5%: exit 1, both reported."""
    base = save_run(tmp_path, [counted_row(1_000_000)], label="base")
    cand = save_run(tmp_path, [counted_row(1_050_000)], label="cand")
    result = cli.invoke(app, ["compare", str(base.path), str(cand.path)])
    assert result.exit_code == 1, result.output
    assert "time: 1 inconclusive (threshold 10%" in result.output
    assert "instructions: 1 regression (threshold 2%" in result.output
    assert "FAIL: 1 cell regressed (instructions, more than 2%)" in result.output
    same = save_run(tmp_path, [counted_row(1_001_000)], label="same")
    # Time alone is undecided here (exit 3); the count, 0.1% apart, adds no failure.
    assert cli.invoke(app, ["compare", str(base.path), str(same.path)]).exit_code == 3
    only = cli.invoke(app, ["compare", str(base.path), str(cand.path), "--metric", "instructions"])
    assert only.exit_code == 1 and "time:" not in only.output


def test_the_env_guard_holds_valgrind_and_the_torch_build_when_both_record_them():
    a = {"cpu": "x", "valgrind": "valgrind-3.19.0", "torch_git": "abc", "cpu_capability": "AVX2"}
    assert env_differences(a, {**a, "valgrind": "valgrind-3.22.0"}) == ["valgrind"]
    assert env_differences(a, {**a, "cpu_capability": "DEFAULT"}) == ["cpu_capability"]
    assert env_differences(a, {**a, "torch_git": "def"}) == ["torch_git"]
    older = {k: v for k, v in a.items() if k in ("cpu",)}
    assert env_differences(a, older) == []  # a run from before seqbench recorded them


def test_the_table_shows_instructions_and_why_a_cell_was_not_counted():
    from seqbench.output.tables import format_table

    rows = [
        counted_row(1_350_000),
        ResultRow.for_cell(
            make_cell(mode="train"), params=100, median_s=1e-3, instr_note="reason X"
        ),
    ]
    table = format_table(rows)
    column = table.headers.index("instr/step")
    assert [line[column] for line in table.cells] == ["1.35M", "-"]
    assert "instructions not counted in 1 cell(s): reason X" in table.notes


# -- with valgrind ---------------------------------------------------------------------------


@needs_valgrind
@pytest.mark.slow
def test_two_runs_count_the_same_cell_within_half_a_percent():
    request = CellRequest(make_cell(seq_len=32, hidden=32, batch_size=8), FAST)
    figures = []
    for _ in range(2):
        worker = CountingWorker()
        try:
            measured = worker.count(request)
        finally:
            worker.close()
        assert not isinstance(measured, str), measured
        assert measured.row.status == "ok", measured.row.message
        figures.append(measured.row.instr_per_step)
    assert figures[0] > 100_000
    assert max(figures) / min(figures) - 1 < 0.005, figures


@needs_valgrind
@pytest.mark.slow
def test_the_count_agrees_with_torch_benchmarks_own_callgrind_count(monkeypatch):
    """torch.utils.benchmark counts `number` calls of the same step closure, built the same
    way; its figure includes its loop, ours subtracts an empty one: within 2%."""
    from torch.utils.benchmark import Timer

    # torch runs `python` from PATH under valgrind: this interpreter, with its torch.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cell = make_cell(seq_len=32, hidden=32, batch_size=8)
    worker = CountingWorker()
    try:
        ours = worker.count(CellRequest(cell, FAST), steps=5)
    finally:
        worker.close()
    assert not isinstance(ours, str), ours
    setup = (
        "from seqbench.core.schema import Cell\n"
        "from seqbench.measure.workload import build_workload\n"
        f"work = build_workload(Cell(**{dataclasses.asdict(cell)!r}), 0)\n"
        "work.step(); work.step()\n"
    )
    timer = Timer("work.step()", setup=setup, num_threads=1)
    theirs = timer.collect_callgrind(number=5, collect_baseline=False).counts(denoise=False) / 5
    assert abs(ours.row.instr_per_step / theirs - 1) < 0.02, (ours.row.instr_per_step, theirs)


def counted_ab(cli, out, size: str):
    """`ab base slower --count-instructions` on one small inference cell, six rounds."""
    return cli.invoke(app, [
        "ab", "base", "slower", "--arch", "gatepkg.models:make_core", "--seq-len", size,
        "--batch-size", "8", "--hidden", size, "--mode", "infer", "--min-time", "0.3",
        "--min-repeats", "6", "--warmup-time", "0.05", "--rounds", "6", "--threads", "1",
        "--count-instructions", "--out", str(out), "--format", "json",
    ])  # fmt: skip


@pytest.mark.slow
def test_ab_without_valgrind_times_the_versions_and_says_why_nothing_was_counted(
    cli, tmp_path, monkeypatch
):
    from benchmarks.gate_error_rates import make_repository

    repo = make_repository(tmp_path / "repo", base=2, slower=8)
    monkeypatch.chdir(repo)
    monkeypatch.syspath_prepend(str(repo))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    result = counted_ab(cli, tmp_path / "out", "32")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert "instructions" not in data  # nothing counted, nothing to gate on
    for side in ("baseline", "candidate"):
        (row,) = load_run(data[side], tmp_path / "out").rows
        assert row.instr_per_step is None and row.instr_note == INSTALL_HINT


@needs_valgrind
@pytest.mark.slow
def test_ab_gates_on_the_counts_of_both_versions(cli, tmp_path, monkeypatch):
    from benchmarks.gate_error_rates import make_repository

    repo = make_repository(tmp_path / "repo", base=20, slower=21)  # about 5% more work
    monkeypatch.chdir(repo)
    monkeypatch.syspath_prepend(str(repo))
    result = counted_ab(cli, tmp_path / "out", "16")
    data = json.loads(result.stdout)
    (cell,) = data["instructions"]["cells"]
    assert cell["verdict"] == "regression" and 1.02 < cell["ratio"] < 1.10, cell
    assert result.exit_code == 1
    assert "1 cell regressed (instructions, more than 2%)" in data["failures"]
    base = load_run(data["baseline"], tmp_path / "out")
    assert base.meta.env["valgrind"].startswith("valgrind-")


def test_a_valgrind_that_hangs_at_start_costs_one_wait_and_no_cell(cli, tmp_path, monkeypatch):
    # A valgrind that never starts its worker: the start-up is given up after READY_S, once
    # for the run; every timed cell is saved with the reason it has no count.
    from seqbench.execute import callgrind

    bin_dir, log = tmp_path / "bin", tmp_path / "started"
    bin_dir.mkdir()
    fake = bin_dir / "valgrind"
    fake.write_text(
        f'#!/bin/sh\n[ "$1" = --version ] && echo valgrind-3.99 && exit 0\n'
        f"echo started >> {log}\nexec sleep 600\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(callgrind, "READY_S", 3.0)
    args = ["run", "--arch", "rnn", "--seq-len", "8,16", "--mode", "infer", "--batch-size", "2"]
    flags = ["--hidden", "4", "--min-time", "0", "--processes", "1", "--warmup-time", "0"]
    result = cli.invoke(
        app, [*args, *flags, "--count-instructions", "--cell-timeout", "10", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    rows = load_run("latest", tmp_path).rows
    assert [(r.status, r.instr_note) for r in rows] == [
        ("ok", "the callgrind worker did not start within 3 s")
    ] * 2
    assert log.read_text() == "started\n"  # tried once, not once per cell


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("exec sleep 600", "valgrind did not answer `valgrind --version` within 1 s"),
        ("echo 'cannot load libc' >&2; exit 1", "`valgrind --version` said 'cannot load libc'"),
    ],
)
def test_a_valgrind_that_hangs_or_fails_on_its_version_is_said_once_before_any_cell(
    cli, tmp_path, monkeypatch, script, reason
):
    # Its version is asked once, within VERSION_S: the run says why it times only, before
    # the first cell, and never waits for a simulated worker (READY_S, minutes) to start.
    from seqbench.execute import callgrind

    bin_dir, log = tmp_path / "bin", tmp_path / "started"
    bin_dir.mkdir()
    fake = bin_dir / "valgrind"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n{script}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(callgrind, "VERSION_S", 1.0)
    monkeypatch.setattr(callgrind, "READY_S", 600.0)  # never reached
    args = ["run", "--arch", "rnn", "--seq-len", "8,16", "--mode", "infer", "--batch-size", "2"]
    flags = ["--hidden", "4", "--min-time", "0", "--processes", "1", "--warmup-time", "0"]
    result = cli.invoke(app, [*args, *flags, "--count-instructions", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"{reason}; the cells are timed only" in result.stderr
    run = load_run("latest", tmp_path)
    assert [r.status for r in run.rows] == ["ok", "ok"]
    assert all(r.instr_per_step is None and reason in r.instr_note for r in run.rows)
    assert run.meta.env["valgrind"] is None
    assert log.read_text() == "--version\n"  # asked once; no worker was started
