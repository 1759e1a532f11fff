"""The cells a configuration asks for, ready to measure: in run order, each task's data
loaded once, the devices this machine lacks found, and what is worth saying about the cells
before they run."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from seqbench.core.schema import Cell
from seqbench.plan.config import SuiteConfig

# The order cells run in: one model at a time, shortest sequence first (so that an
# out-of-memory cell is met before the larger ones), inference before training.
_PLAN_ORDER = (
    "match_params",
    "task",
    "compile",
    "device",
    "dtype",
    "arch",
    "hidden",
    "layers",
    "bidirectional",
    "dropout",
    "recurrent_dropout",
    "vocab",
    "embed",
    "batch_size",
    "seq_len",
    "mode",
    "lr",
    "seed",
)


_ASCENDING = ("batch_size", "seq_len")


def plan(config: SuiteConfig) -> list[Cell]:
    """Every cell of every matrix, in run order, without repeats.

    Seeds and rates multiply task cells only: a speed cell is measured once, with the first
    seed and no rate (lr 0). A rate of 0 on the axis stands for the task's default rate."""
    from seqbench.core import devices
    from seqbench.models import normalize_cell
    from seqbench.tasks import new_task
    from seqbench.tasks.base import default_lr

    cells: dict[Cell, None] = {}
    for axes in config.matrices:
        lists = [
            sorted(getattr(axes, n)) if n in _ASCENDING else getattr(axes, n) for n in _PLAN_ORDER
        ]
        for values in itertools.product(*lists):
            raw = dict(zip(_PLAN_ORDER, values, strict=True))
            raw["device"] = devices.resolve(raw["device"])
            if not raw["task"]:
                raw["seed"], raw["lr"] = axes.seed[0], 0.0
            elif not raw["lr"]:
                raw["lr"] = default_lr(new_task(raw["task"]))
            cells[normalize_cell(Cell(**raw))] = None
    return list(cells)


@dataclass(frozen=True)
class Plan:
    """The cells a configuration asks for, in run order, and the devices among them that
    this machine does not have (device -> why), each checked once."""

    cells: list[Cell]
    unavailable: dict[str, str]
    # One line per thing about the cells worth knowing before they run (a TCN that cannot
    # see its whole sequence); the front says them, the core never does.
    warnings: tuple[str, ...] = ()

    def count_on(self, device: str) -> int:
        return sum(c.device == device for c in self.cells)


def make_plan(config: SuiteConfig) -> Plan:
    """Plan the cells and load every task's data once, before anything is measured or
    saved: a missing or malformed dataset is one clear error up front, not a failed row per
    cell."""
    from seqbench.core import devices
    from seqbench.tasks import prepared

    cells = plan(config)
    for cell in cells:
        if cell.task:
            prepared(cell.task, cell.seq_len, cell.vocab, cell.seed, config.train.data)
    names = dict.fromkeys(c.device for c in cells)
    reasons = {name: devices.unavailable_reason(name) for name in names}
    return Plan(cells, {name: why for name, why in reasons.items() if why}, plan_warnings(cells))


def plan_warnings(cells: list[Cell]) -> tuple[str, ...]:
    """Each distinct warning about the cells, once, in plan order."""
    from seqbench.models import short_sight

    found = (short_sight(cell) for cell in cells)
    return tuple(dict.fromkeys(line for line in found if line))
