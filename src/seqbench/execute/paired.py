"""Two versions of the code measured side by side: the paired design behind `seqbench ab`.

For every cell, each version gets a worker process of its own (its interpreter, its code
first on the import path), kept for the cell's rounds. Round by round the two measure the
cell back to back, in the order A B, then B A, then A B...: whatever the machine does at
that moment (a burst of other work, a clock that drifts) weighs on both, and the order
alternates so that neither always goes first. Each version's passes are recorded in its own
run by its own `Scheduler`, so pooling, saving and the rows are those of any run; what the
comparison needs on top is each round's pair of figures (`Pairs`).

A round's figure is the 10th percentile of its samples, not their median. On a loaded
machine the scheduler decides, round by round, whether the measuring process gets a CPU
to itself or shares one with other work, and a shared round's median was measured 2.7x
slower than an unshared one's while its fastest tenth stayed within 3% (two busy processes
on two CPUs): with medians, identical code looked 1.56x slower. Interference only adds
time; a slower version is slower in its fastest steps too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from seqbench.core.schema import Cell
from seqbench.execute.base import CellFinished, CellStarted, Event
from seqbench.execute.scheduler import Scheduler
from seqbench.judge.stats import fast_quantile


@dataclass
class Pairs:
    """One cell's per-round figures, baseline and candidate, in round order: each round's
    fastest tenth (`stats.fast_quantile`), what a step costs when nothing else interferes."""

    baseline: list[float] = field(default_factory=list)
    candidate: list[float] = field(default_factory=list)


class PairedRun:
    """Measure `cells` with two schedulers (baseline, candidate) in alternating pairs.

    Iterate it for the events; `pairs` holds each cell's medians as they come. A cell that
    fails in either version is not measured again (its rows say why).
    """

    def __init__(self, baseline: Scheduler, candidate: Scheduler, cells: list[Cell]) -> None:
        self.sides = (baseline, candidate)
        self.cells = cells
        self.rounds = baseline.config.measure.rounds
        self.pairs: dict[str, Pairs] = {c.cell_id: Pairs() for c in cells}

    def __iter__(self) -> Iterator[Event]:
        total = len(self.cells) * self.rounds * 2
        index = 0
        for cell in self.cells:
            for round_no in range(1, self.rounds + 1):
                order = (0, 1) if round_no % 2 else (1, 0)
                medians: dict[int, float] = {}
                for side in order:
                    scheduler = self.sides[side]
                    yield CellStarted(cell, index, total, round_no)
                    request = scheduler.config.request(cell, round_no)
                    raw, recorded = scheduler.measure_pass(request)
                    yield CellFinished(recorded, index, total, round_no)
                    index += 1
                    if raw.row.status != "ok":
                        break
                    medians[side] = fast_quantile(raw.samples)
                if len(medians) < 2:
                    break  # one version failed this cell: its row says why
                self.pairs[cell.cell_id].baseline.append(medians[0])
                self.pairs[cell.cell_id].candidate.append(medians[1])
            for scheduler in self.sides:
                close = getattr(scheduler.executor, "close_worker", None)
                if close is not None:
                    close()  # each cell gets fresh processes
