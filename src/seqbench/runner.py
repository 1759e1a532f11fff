"""Run a planned list of cells, saving after each one, and report progress as events.

The runner decides nothing about the terminal: it yields `CellStarted` and `CellFinished`
events, and the CLI turns them into a progress bar. It owns the run-level fault policy:
a cell that runs out of memory makes larger cells of the same model on that device
`skipped` (unless `skip_larger` is off), and `isolate` runs each cell in a fresh process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from seqbench.config import SuiteConfig
from seqbench.measure import Measurement, measure_cell
from seqbench.models import step_flops
from seqbench.schema import Cell, ResultRow
from seqbench.storage import Run
from seqbench.timing import Clock
from seqbench.worker import measure_isolated


@dataclass(frozen=True)
class CellStarted:
    cell: Cell
    index: int  # 0-based position in this run's list
    total: int


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


def iter_run(
    config: SuiteConfig,
    cells: list[Cell],
    run: Run,
    *,
    clock: Clock | None = None,
) -> Iterator[Event]:
    """Measure each cell in turn; the run is saved before each `CellFinished` is yielded."""
    ooms = [r.cell for r in run.rows if r.status == "oom"]  # from before a resume, too
    total = len(cells)
    for index, cell in enumerate(cells):
        yield CellStarted(cell, index, total)
        blocker = next((o for o in ooms if config.skip_larger and at_least_as_large(cell, o)), None)
        if blocker is not None:
            row = ResultRow.for_cell(
                cell,
                flops_per_seq=step_flops(cell),
                status="skipped",
                message=f"larger than an OOM cell ({blocker.cell_id})",
            )
            measurement = Measurement(row)
        elif config.isolate:
            measurement = measure_isolated(cell, config)
        else:
            measurement = measure_cell(
                cell, config.measure, seed=config.seed, clock=clock, timeout=config.cell_timeout
            )
        if measurement.row.status == "oom":
            ooms.append(cell)
        run.add(measurement)
        yield CellFinished(measurement, index, total)
