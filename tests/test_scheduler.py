"""The scheduler on a fake executor: rounds, resume, skipping after an OOM, time limits and
MFU, with scripted measurements and no model built."""

from __future__ import annotations

import dataclasses
from collections import deque

import pytest

from seqbench.core.request import CellRequest
from seqbench.core.schema import Cell, Measurement, ResultRow
from seqbench.core.settings import MeasureSettings
from seqbench.execute import CellFinished, CellStarted, Scheduler
from seqbench.execute.base import OneAtATime
from seqbench.plan.cells import plan
from seqbench.plan.config import Axes, SuiteConfig, apply_overrides
from seqbench.storage import create_run, load_run, reopen_run
from tests.helpers import make_cell


def ok(cell: Cell, samples: list[float], tflops: float | None = None) -> Measurement:
    row = ResultRow.for_cell(
        cell, median_s=sorted(samples)[len(samples) // 2], rounds=1, tflops=tflops, params=10
    )
    return Measurement(row, samples)


def failed(cell: Cell, status: str, message: str = "") -> Measurement:
    return Measurement(ResultRow.for_cell(cell, status=status, message=message))


class FakeExecutor(OneAtATime):
    """Answers requests from a script: (cell id, round) -> measurement, else one sample of
    1 s per round number. Remembers every request it ran."""

    name = "fake"

    def __init__(self, script=None, *, capacity: int = 1, same_machine: bool = True) -> None:
        super().__init__()
        self.script = script or {}
        self.capacity = capacity
        self.same_machine = same_machine
        self.ran: list[CellRequest] = []
        self.cancelled: list[str] = []

    def run(self, request: CellRequest) -> Measurement:
        self.ran.append(request)
        answer = self.script.get((request.cell.cell_id, request.round))
        return answer if answer is not None else ok(request.cell, [float(request.round)])

    def cancel(self, which, reason):
        self.cancelled += [r.cell.cell_id for r in self._queue if which(r)]
        super().cancel(which, reason)


def config(**axes) -> SuiteConfig:
    base = dict(arch=("rnn",), seq_len=(16,), mode=("infer",), hidden=(4,), embed=(4,), vocab=(20,), batch_size=(2,))  # fmt: skip
    # One process: these tests follow the scheduler's passes (rounds), not processes.
    return SuiteConfig(
        label="t", matrices=(Axes(**{**base, **axes}),), ceiling=False,
        measure=MeasureSettings(processes=1),
    )  # fmt: skip


def new_run(tmp_path, cfg: SuiteConfig, cells: list[Cell]):
    return create_run(
        tmp_path, label="t", config=cfg.to_dict(), env={}, plan=[c.cell_id for c in cells]
    )


def events_of(scheduler: Scheduler, cells: list[Cell]):
    return list(scheduler.iter_plan(cells))


def test_every_cell_is_started_then_finished_and_saved(tmp_path):
    cfg = config(arch=("rnn", "gru"))
    cells = plan(cfg)
    run = new_run(tmp_path, cfg, cells)
    events = events_of(Scheduler(cfg, FakeExecutor(), run), cells)
    kinds = [(type(e).__name__, e.index, e.total, e.round) for e in events]
    assert kinds == [
        ("CellStarted", 0, 2, 1),
        ("CellFinished", 0, 2, 1),
        ("CellStarted", 1, 2, 1),
        ("CellFinished", 1, 2, 1),
    ]
    assert [r.cell for r in load_run(run.path).rows] == cells


def test_rounds_pass_over_the_plan_and_pool_each_cells_samples(tmp_path):
    cfg = dataclasses.replace(
        config(arch=("rnn", "gru")), measure=MeasureSettings(min_time=0.9, rounds=3, processes=1)
    )
    cells = plan(cfg)
    run = new_run(tmp_path, cfg, cells)
    executor = FakeExecutor()
    events = events_of(Scheduler(cfg, executor, run), cells)
    # Round by round over the whole plan, each pass with a third of the budget.
    assert [(r.cell.arch, r.round) for r in executor.ran] == [
        ("rnn", 1), ("gru", 1), ("rnn", 2), ("gru", 2), ("rnn", 3), ("gru", 3),
    ]  # fmt: skip
    assert [r.measure.min_time for r in executor.ran] == [pytest.approx(0.3)] * 6
    assert [r.accuracy for r in executor.ran] == [True, True, False, False, False, False]
    assert [e.round for e in events if isinstance(e, CellStarted)] == [1, 1, 2, 2, 3, 3]
    saved = load_run(run.path)
    assert [r.rounds for r in saved.rows] == [3, 3]
    assert saved.samples == {c.cell_id: [1.0, 2.0, 3.0] for c in cells}
    assert [r.median_s for r in saved.rows] == [2.0, 2.0]


def test_a_cell_that_fails_in_a_round_is_not_measured_again(tmp_path):
    cfg = dataclasses.replace(config(), measure=MeasureSettings(rounds=3, processes=1))
    cells = plan(cfg)
    (cell,) = cells
    run = new_run(tmp_path, cfg, cells)
    executor = FakeExecutor({(cell.cell_id, 2): failed(cell, "timeout", "too slow")})
    events = events_of(Scheduler(cfg, executor, run), cells)
    assert [r.round for r in executor.ran] == [1, 2]
    finished = [e.measurement.row for e in events if isinstance(e, CellFinished)]
    assert [(r.status, r.rounds) for r in finished] == [("ok", 1), ("timeout", 2), ("timeout", 2)]
    (row,) = load_run(run.path).rows
    assert (row.status, row.message, row.rounds) == ("timeout", "too slow", 2)


def test_a_resumed_run_measures_only_what_it_lacks(tmp_path):
    cfg = dataclasses.replace(
        config(arch=("rnn", "gru", "lstm")), measure=MeasureSettings(rounds=2, processes=1)
    )
    cells = plan(cfg)
    rnn, gru, lstm = cells
    run = new_run(tmp_path, cfg, cells)
    run.add(ok(rnn, [1.0]))  # one of two rounds behind it
    run.add(failed(gru, "error", "boom"))  # finished: a failure ends a cell
    run.finish("interrupted")

    resumed = reopen_run(run.path, tmp_path)
    executor = FakeExecutor()
    events = events_of(Scheduler(cfg, executor, resumed), cells)
    # Round by round: the rnn's second pass waits for the lstm's first.
    assert [(r.cell.arch, r.round) for r in executor.ran] == [("lstm", 1), ("rnn", 2), ("lstm", 2)]
    assert sum(isinstance(e, CellFinished) for e in events) == 3
    saved = {r.arch: r for r in load_run(run.path).rows}
    assert (saved["rnn"].rounds, saved["gru"].status, saved["lstm"].rounds) == (2, "error", 2)
    assert load_run(run.path).samples[rnn.cell_id] == [1.0, 2.0]


def test_cells_larger_than_an_oom_cell_are_skipped_without_running(tmp_path):
    cfg = config(arch=("rnn", "gru"), seq_len=(16, 32, 64))
    cells = plan(cfg)
    oom_cell = next(c for c in cells if c.arch == "rnn" and c.seq_len == 32)
    run = new_run(tmp_path, cfg, cells)
    executor = FakeExecutor({(oom_cell.cell_id, 1): failed(oom_cell, "oom", "out of memory")})
    events_of(Scheduler(cfg, executor, run), cells)
    assert [(r.cell.arch, r.cell.seq_len) for r in executor.ran] == [
        ("rnn", 16), ("rnn", 32), ("gru", 16), ("gru", 32), ("gru", 64),
    ]  # fmt: skip
    rows = {(r.arch, r.seq_len): r for r in load_run(run.path).rows}
    assert rows[("rnn", 64)].status == "skipped"
    assert rows[("rnn", 64)].message == f"larger than an OOM cell ({oom_cell.cell_id})"
    assert rows[("rnn", 64)].flops_per_seq is not None  # what the formulas say it would cost


def test_with_skip_larger_off_every_cell_is_tried(tmp_path):
    cfg = dataclasses.replace(config(seq_len=(16, 32, 64)), skip_larger=False)
    cells = plan(cfg)
    run = new_run(tmp_path, cfg, cells)
    executor = FakeExecutor({(cells[1].cell_id, 1): failed(cells[1], "oom")})
    events_of(Scheduler(cfg, executor, run), cells)
    assert len(executor.ran) == 3


def test_an_oom_before_a_resume_still_skips_larger_cells(tmp_path):
    cfg = config(seq_len=(16, 32, 64))
    cells = plan(cfg)
    run = new_run(tmp_path, cfg, cells)
    run.add(failed(cells[0], "oom"))
    run.finish("interrupted")
    executor = FakeExecutor()
    events_of(Scheduler(cfg, executor, reopen_run(run.path, tmp_path)), cells)
    assert executor.ran == []
    assert [r.status for r in load_run(run.path).rows] == ["oom", "skipped", "skipped"]


class ConcurrentExecutor(FakeExecutor):
    """Holds up to `capacity` requests and finishes them in a scripted order (as Ray does)."""

    def __init__(self, finish_order, **kw) -> None:
        super().__init__(**kw)
        self.finish_order = deque(finish_order)

    def next_finished(self):
        if self._cancelled:
            return super().next_finished()
        wanted = self.finish_order.popleft()
        request = next(r for r in self._queue if r.cell.seq_len == wanted)
        self._queue.remove(request)
        self.ran.append(request)
        answer = self.script.get((request.cell.cell_id, request.round))
        return request, answer if answer is not None else ok(request.cell, [1.0])


def test_an_oom_cancels_larger_cells_already_submitted(tmp_path):
    cfg = config(seq_len=(16, 32, 64))
    cells = plan(cfg)
    run = new_run(tmp_path, cfg, cells)
    executor = ConcurrentExecutor(
        [32, 16], capacity=3, script={(cells[1].cell_id, 1): failed(cells[1], "oom")}
    )
    events = events_of(Scheduler(cfg, executor, run), cells)
    assert executor.cancelled == [cells[2].cell_id]
    assert [type(e).__name__ for e in events[:3]] == ["CellStarted"] * 3  # all in flight
    finished = [e.measurement.row for e in events if isinstance(e, CellFinished)]
    assert [(r.seq_len, r.status) for r in finished] == [(32, "oom"), (64, "skipped"), (16, "ok")]
    assert [r.seq_len for r in load_run(run.path).rows] == [16, 32, 64]  # plan order on disk


def test_every_request_carries_the_cells_time_limit_and_settings(tmp_path):
    cfg = dataclasses.replace(config(), cell_timeout=7.5, threads=1, tf32=False)
    cfg = apply_overrides(cfg, axes={"seed": (3,)})  # the seed is an axis (schema 9)
    cells = plan(cfg)
    executor = FakeExecutor()
    events_of(Scheduler(cfg, executor, new_run(tmp_path, cfg, cells)), cells)
    (request,) = executor.ran
    assert (request.timeout, request.seed) == (7.5, 3)
    assert (request.process.threads, request.process.tf32) == (1, False)
    assert CellRequest.from_dict(request.to_dict()) == request  # what a worker receives


def test_mfu_divides_by_a_ceiling_measured_once_per_device_and_dtype(tmp_path):
    cfg = dataclasses.replace(config(arch=("rnn", "gru")), ceiling=True)
    cells = plan(cfg)
    run = new_run(tmp_path, cfg, cells)
    calls = []

    def ceiling(device, dtype):
        calls.append((device, dtype))
        return 2.0, ""

    script = {(c.cell_id, 1): ok(c, [1.0], tflops=0.5) for c in cells}
    events_of(Scheduler(cfg, FakeExecutor(script), run, ceiling=ceiling), cells)
    assert calls == [("cpu", "float32")]
    assert [r.mfu for r in load_run(run.path).rows] == [0.25, 0.25]
    assert load_run(run.path).meta.ceilings == {"cpu/float32": 2.0}


def test_no_mfu_for_cells_measured_on_other_machines(tmp_path):
    cfg = dataclasses.replace(config(), ceiling=True)
    cells = plan(cfg)
    run = new_run(tmp_path, cfg, cells)
    script = {(cells[0].cell_id, 1): ok(cells[0], [1.0], tflops=0.5)}
    executor = FakeExecutor(script, same_machine=False)
    events_of(Scheduler(cfg, executor, run, ceiling=lambda d, t: 1 / 0), cells)
    assert load_run(run.path).rows[0].mfu is None


def test_measure_one_runs_and_records_a_single_request(tmp_path):
    cfg = config()
    run = new_run(tmp_path, cfg, [])
    scheduler = Scheduler(cfg, FakeExecutor(), run)
    cell = make_cell(arch="rnn")
    measurement = scheduler.measure_one(cfg.request(cell))
    assert measurement.row.status == "ok"
    assert [r.cell for r in load_run(run.path).rows] == [cell]


def test_no_mfu_against_a_ceiling_that_other_work_disturbed(tmp_path):
    cfg = dataclasses.replace(config(), ceiling=True)
    cells = plan(cfg)
    run = new_run(tmp_path, cfg, cells)
    script = {(cells[0].cell_id, 1): ok(cells[0], [1.0], tflops=0.5)}
    busy = "its 2 threads shared 2 CPUs with 1.8 cores of other work"
    events_of(Scheduler(cfg, FakeExecutor(script), run, ceiling=lambda d, t: (2.0, busy)), cells)
    saved = load_run(run.path)
    assert saved.rows[0].mfu is None
    assert saved.meta.ceilings == {"cpu/float32": 2.0}
    assert saved.meta.ceilings_noisy == {"cpu/float32": busy}
