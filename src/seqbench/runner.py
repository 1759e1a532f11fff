"""Run a planned list of cells, saving after each one, and report progress as events.

The runner decides nothing about the terminal: it yields `CellStarted` and `CellFinished`
events, and the CLI turns them into a progress bar.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from seqbench.config import SuiteConfig
from seqbench.measure import Measurement, measure_cell
from seqbench.schema import Cell
from seqbench.storage import Run
from seqbench.timing import Clock


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


def iter_run(
    config: SuiteConfig,
    cells: list[Cell],
    run: Run,
    *,
    clock: Clock | None = None,
) -> Iterator[Event]:
    """Measure each cell in turn; the run is saved before each `CellFinished` is yielded."""
    total = len(cells)
    for index, cell in enumerate(cells):
        yield CellStarted(cell, index, total)
        measurement = measure_cell(cell, config.measure, seed=config.seed, clock=clock)
        run.add(measurement)
        yield CellFinished(measurement, index, total)
