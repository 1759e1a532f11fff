"""The one scheduler: which cells run, in what order, and what happens to what comes back.

For every executor alike it owns the run-level policy:
- passes: with `rounds` > 1 the whole plan is measured once per round, each pass with its
  share of the budget, and a cell's samples are pooled across them, so a burst of
  interference touches one pass of a cell, not all of it;
- resuming: a run that already holds a cell's row picks up at the round it reached;
- out of memory: a cell at least as large as one that ran out of memory (the same model on
  the same device, no smaller along any size axis) is `skipped`, and such cells already
  submitted are cancelled (unless `skip_larger` is off);
- time limits: every request carries the cell's limit, which the executor enforces with
  what it has (an alarm in this process, a kill for a process or a Ray task);
- recording: rounds pooled, MFU added, the run saved before the event that reports it.

It yields `CellStarted` and `CellFinished` events and decides nothing about the terminal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from seqbench.core.request import CellRequest
from seqbench.core.schema import Cell, Measurement, ResultRow
from seqbench.core.settings import MeasureSettings

if TYPE_CHECKING:
    from seqbench.storage import Run
from seqbench.execute.base import CellFinished, CellStarted, Event, Executor, process_index

# A cell is at least as large as another when it builds the same kind of model on the same
# device, in the same dtype and mode, and is no smaller along any size axis.
_SAME = (
    "arch",
    "device",
    "dtype",
    "mode",
    "layers",
    "bidirectional",
    "dropout",
    "recurrent_dropout",
)
_SIZES = ("seq_len", "batch_size", "hidden", "embed", "vocab")


def at_least_as_large(cell: Cell, other: Cell) -> bool:
    return all(getattr(cell, k) == getattr(other, k) for k in _SAME) and all(
        getattr(cell, k) >= getattr(other, k) for k in _SIZES
    )


def rounds_done(row: ResultRow | None, rounds: int) -> int:
    """Passes a cell has behind it: a failed cell is finished, whatever round it failed in."""
    if row is None:
        return 0
    return rounds if row.status != "ok" else (row.rounds or 1)


# A device's matmul TFLOP/s in a dtype, and why it cannot be trusted ('' when it can).
Ceiling = Callable[[str, str], tuple[float, str]]


def _measured_ceiling(device: str, dtype: str) -> tuple[float, str]:
    from seqbench.measure.ceiling import measure_ceiling_with_noise

    return measure_ceiling_with_noise(device, dtype)


class RunConfig(Protocol):
    """What the scheduler asks of a configuration (a `plan.config.SuiteConfig` is one)."""

    @property
    def measure(self) -> MeasureSettings: ...  # its `rounds`: passes over the plan

    @property
    def skip_larger(self) -> bool: ...  # skip cells larger than one that ran out of memory

    @property
    def ceiling(self) -> bool: ...  # measure the device's matmul rate for the MFU

    def request(self, cell: Cell, round: int = 1) -> CellRequest: ...


class Scheduler:
    """Runs a configuration's requests on one executor and records them in one run.

    `config` says what each cell's request is and the run-level policy (`RunConfig`); `run`
    is the run being written; `ceiling` measures a device's matmul TFLOP/s, once per device
    and dtype of a run.
    """

    def __init__(
        self, config: RunConfig, executor: Executor, run: Run, *, ceiling: Ceiling | None = None
    ) -> None:
        self.config = config
        self.executor = executor
        self.run = run
        self._ceiling = ceiling or _measured_ceiling
        # Cells that ran out of memory, from before a resume too.
        self._ooms: list[Cell] = [r.cell for r in run.rows if r.status == "oom"]

    # ------------------------------------------------------------------ a whole plan

    def iter_plan(self, cells: Sequence[Cell]) -> Iterator[Event]:
        """Measure what `cells` still lack in the run, round by round, yielding events;
        the run is saved before every `CellFinished`. A run with no rows yet goes through
        `cells` once a round as they come (a long plan is made as it runs); one with rows
        looks up each cell's finished passes first, once."""
        rounds = self.config.measure.passes
        if self.run.rows:
            done = [rounds_done(self.run.row(c.cell_id), rounds) for c in cells]  # once each
            todo = [
                [cell for cell, finished in zip(cells, done, strict=True) if finished < r]
                for r in range(1, rounds + 1)
            ]
            total = sum(map(len, todo))
        else:
            todo, total = [], len(cells) * rounds
        started = finished = 0
        for round_no in range(1, rounds + 1):
            queue = iter(todo[round_no - 1] if todo else cells)
            following = next(queue, None)
            in_flight = 0
            while following is not None or in_flight:
                while following is not None and in_flight < self.executor.capacity:
                    cell, following = following, next(queue, None)
                    yield CellStarted(cell, started, total, round_no)
                    started += 1
                    done_row = self._without_executor(cell)
                    if done_row is None:
                        self.executor.submit(self.config.request(cell, round_no))
                        in_flight += 1
                        continue
                    yield CellFinished(done_row, finished, total, round_no)
                    finished += 1
                if in_flight:
                    measurement = self._collect()
                    in_flight -= 1
                    yield CellFinished(measurement, finished, total, round_no)
                    finished += 1

    # ------------------------------------------------------------------ one request

    def measure_one(self, request: CellRequest) -> Measurement:
        """Run one request now and record it (for searches such as the memory frontier,
        whose next request depends on this one's answer)."""
        return self.measure_pass(request)[1]

    def measure_pass(self, request: CellRequest) -> tuple[Measurement, Measurement]:
        """Run one request now and record it: (this pass alone, the cell as recorded, its
        earlier rounds pooled in)."""
        self.executor.submit(request)
        return self._collect_pass()

    # ------------------------------------------------------------------ internals

    def _without_executor(self, cell: Cell) -> Measurement | None:
        """A cell's measurement when no executor is needed: it failed in an earlier round
        (its row stands), or it is larger than a cell that ran out of memory."""
        earlier = self.run.row(cell.cell_id)
        if earlier is not None and earlier.status != "ok":
            return Measurement(earlier)
        blocker = self._oom_blocker(cell)
        if blocker is None:
            return None
        from seqbench.measure import failure

        return self.record(failure(cell, "skipped", _larger_than(blocker)))

    def _oom_blocker(self, cell: Cell) -> Cell | None:
        if not self.config.skip_larger:
            return None
        return next((o for o in self._ooms if at_least_as_large(cell, o)), None)

    def _collect(self) -> Measurement:
        return self._collect_pass()[1]

    def _collect_pass(self) -> tuple[Measurement, Measurement]:
        request, measurement = self.executor.next_finished()
        if measurement.row.status == "oom":
            oom = request.cell
            self._ooms.append(oom)
            if self.config.skip_larger:
                self.executor.cancel(lambda r: at_least_as_large(r.cell, oom), _larger_than(oom))
        process = self._process_of(request)
        return measurement, self.record(measurement, process, request.measure.rounds)

    def _process_of(self, request: CellRequest) -> int:
        """Which of its cell's fresh processes a request's pass ran in: each process runs
        `rounds` passes in turn (1 when every pass shares one process)."""
        if not getattr(self.executor, "separate_processes", False):
            return 1
        return process_index(request)

    def record(
        self, measurement: Measurement, process: int = 1, per_process: int = 1
    ) -> Measurement:
        """Pool a pass with the cell's earlier rounds, add its MFU, and save it in the run:
        what happens to every measurement that comes back. `process` is the fresh process
        the pass ran in, each running `per_process` passes: passes from two or more are
        judged across them."""
        from seqbench.measure.sampling import merge_rounds

        cell = measurement.row.cell
        earlier = self.run.row(cell.cell_id)
        if earlier is not None and earlier.status == "ok":
            earlier_samples = self.run.samples.get(cell.cell_id, [])
            groups = None
            if process > 1:  # this pass's process, beside the earlier ones'
                groups = self.run.sample_groups(cell.cell_id, per_process)
                if process > len(groups):
                    groups.append([])
                groups[-1] = groups[-1] + list(measurement.samples)
            measurement = merge_rounds(Measurement(earlier, earlier_samples), measurement, groups)
        row = measurement.row
        if self.config.ceiling and self.executor.same_machine and row.tflops is not None:
            ceiling = self._device_ceiling(cell)
            if ceiling is not None:
                row = dataclasses.replace(row, mfu=row.tflops / ceiling)
                measurement = dataclasses.replace(measurement, row=row)
        self.run.add(measurement)
        return measurement

    def _device_ceiling(self, cell: Cell) -> float | None:
        """The device's matmul TFLOP/s in the cell's dtype, measured once per run (kept in
        the run's metadata, so a resumed run reuses it); None when other work disturbed
        that measurement, since an MFU against a depressed ceiling would flatter."""
        ceilings = self.run.meta.ceilings
        disturbed = self.run.meta.ceilings_noisy
        key = f"{cell.device}/{cell.dtype}"
        if key not in ceilings:
            ceilings[key], reason = self._ceiling(cell.device, cell.dtype)
            if reason:
                disturbed[key] = reason
            self.run.save_meta()
        return None if key in disturbed else ceilings[key]


def _larger_than(oom: Cell) -> str:
    return f"larger than an OOM cell ({oom.cell_id})"
