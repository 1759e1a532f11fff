"""The cells a configuration asks for, ready to measure: in run order, each task's data
loaded once, the devices this machine lacks found, and what is worth saying about the cells
before they run."""

from __future__ import annotations

from dataclasses import dataclass

from seqbench.core.schema import Cell
from seqbench.plan.config import SuiteConfig, plan


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
