"""Run a planned list of cells, saving after each one, and report progress as events.

The runner decides nothing about the terminal: it yields `CellStarted` and `CellFinished`
events, and the CLI turns them into a progress bar. It owns the run-level fault policy:
a cell that runs out of memory makes larger cells of the same model on that device
`skipped` (unless `skip_larger` is off), and `isolate` runs each cell in a fresh process.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from seqbench.config import SuiteConfig
from seqbench.measure import Measurement, measure_ceiling, measure_cell, merge_rounds
from seqbench.models import step_flops
from seqbench.schema import Cell, ResultRow
from seqbench.storage import Run
from seqbench.tasks import prepared
from seqbench.timing import Clock
from seqbench.worker import measure_isolated


@dataclass(frozen=True)
class CellStarted:
    cell: Cell
    index: int  # 0-based position in this run's list of (round, cell) passes
    total: int
    round: int = 1


@dataclass(frozen=True)
class CellFinished:
    measurement: Measurement
    index: int
    total: int


Event = CellStarted | CellFinished

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


def prepare_tasks(config: SuiteConfig, cells: list[Cell]) -> None:
    """Load every task's data once, before the first cell: a missing or malformed dataset
    is one clear error up front (a ConfigError), not a failed row per cell."""
    for cell in cells:
        if cell.task:
            prepared(cell.task, cell.seq_len, cell.vocab, config.seed, config.train.data)


def ceiling_for(run: Run, cell: Cell) -> float:
    """The device's matmul TFLOP/s in the cell's dtype, measured once per run (kept in the
    run's metadata, so a resumed run reuses it)."""
    ceilings = run.meta.setdefault("ceilings", {})
    key = f"{cell.device}/{cell.dtype}"
    if key not in ceilings:
        ceilings[key] = measure_ceiling(cell.device, cell.dtype)
        run.save_meta()  # saving a cell no longer rewrites the metadata
    return ceilings[key]


def rounds_done(row: ResultRow | None, rounds: int) -> int:
    """Passes a cell has behind it: a failed cell is finished, whatever round it failed in."""
    if row is None:
        return 0
    return rounds if row.status != "ok" else (row.rounds or 1)


def iter_run(
    config: SuiteConfig,
    cells: list[Cell],
    run: Run,
    *,
    clock: Clock | None = None,
) -> Iterator[Event]:
    """Measure the cells that `run` does not hold yet, saving before each `CellFinished`.

    With `rounds` > 1 the whole list is measured once per round, each pass with its share
    of the budget, and each cell's samples are pooled: a burst of interference from other
    work then touches one pass of a cell, not all of it. A resumed run picks up at the
    round each cell had reached.
    """
    prepare_tasks(config, cells)
    if config.executor == "ray":
        yield from _iter_ray(config, cells, run)
        return
    rounds = config.measure.rounds
    settings = config.measure.per_round()

    ooms = [r.cell for r in run.rows if r.status == "oom"]  # from before a resume, too
    todo = [
        (r, cell)
        for r in range(1, rounds + 1)
        for cell in cells
        if rounds_done(run.row(cell.cell_id), rounds) < r
    ]
    total = len(todo)
    for index, (round_no, cell) in enumerate(todo):
        yield CellStarted(cell, index, total, round_no)
        earlier = run.row(cell.cell_id)
        if earlier is not None and earlier.status != "ok":  # failed in an earlier round
            yield CellFinished(Measurement(earlier), index, total)
            continue
        skipped = skip_after_oom(cell, ooms, config)
        if skipped is not None:
            measurement = skipped
        elif config.isolate:
            measurement = measure_isolated(cell, config, settings, accuracy=round_no == 1)
        else:
            measurement = measure_cell(
                cell,
                settings,
                seed=config.seed,
                clock=clock,
                timeout=config.cell_timeout,
                train=config.train,
                accuracy=round_no == 1,  # trained and scored once; later rounds add timing
                compile_backend=config.compile_backend,
            )
        if measurement.row.status == "oom":
            ooms.append(cell)
        measurement = record(run, measurement, mfu=config.ceiling)
        yield CellFinished(measurement, index, total)


def skip_after_oom(cell: Cell, ooms: list[Cell], config: SuiteConfig) -> Measurement | None:
    """A `skipped` row when `cell` is at least as large as a cell that ran out of memory."""
    blocker = next((o for o in ooms if config.skip_larger and at_least_as_large(cell, o)), None)
    if blocker is None:
        return None
    row = ResultRow.for_cell(
        cell,
        flops_per_seq=step_flops(cell),
        status="skipped",
        message=f"larger than an OOM cell ({blocker.cell_id})",
    )
    return Measurement(row)


def record(run: Run, measurement: Measurement, *, mfu: bool) -> Measurement:
    """Pool a pass with the cell's earlier rounds, add its MFU, and save the run: what every
    executor does with a measurement that came back."""
    cell = measurement.row.cell
    earlier = run.row(cell.cell_id)
    if earlier is not None and earlier.status == "ok":
        measurement = merge_rounds(
            Measurement(earlier, run.samples.get(cell.cell_id, [])), measurement
        )
    if mfu and measurement.row.tflops is not None:
        row = dataclasses.replace(
            measurement.row, mfu=measurement.row.tflops / ceiling_for(run, cell)
        )
        measurement = Measurement(row, measurement.samples)
    run.add(measurement)
    return measurement


def _iter_ray(config: SuiteConfig, cells: list[Cell], run: Run) -> Iterator[Event]:
    """The Ray executor's events, numbered like a local run's (see ray_executor.py)."""
    from seqbench.ray_executor import iter_ray

    todo = sum(
        config.measure.rounds - rounds_done(run.row(c.cell_id), config.measure.rounds)
        for c in cells
    )
    started = finished = 0
    for kind, payload in iter_ray(config, cells, run):
        if kind == "started":
            yield CellStarted(payload, started, todo)
            started += 1
        else:
            yield CellFinished(payload, finished, todo)
            finished += 1
