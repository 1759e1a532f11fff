"""The cells a configuration asks for, ready to measure: in run order, each task's data
loaded once, the devices this machine lacks found, and what is worth saying about the cells
before they run."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from seqbench.core.schema import Cell

if TYPE_CHECKING:
    from seqbench.plan.config import Axes, SuiteConfig

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
    from seqbench.models import matched, pins

    cells: dict[Cell, None] = {}
    lookups = _lookups()
    # What normalize_cell pins depends on the architecture, task and length alone: worked
    # out once per combination, and set before the cell is built (one Cell, not two).
    pinned: dict[tuple[str, str, int], dict[str, object]] = {}
    for axes in config.matrices:
        lists = [
            sorted(getattr(axes, n)) if n in _ASCENDING else getattr(axes, n) for n in _PLAN_ORDER
        ]
        for values in itertools.product(*lists):
            raw = raw_values(axes, dict(zip(_PLAN_ORDER, values, strict=True)), lookups)
            key = (raw["arch"], raw["task"], raw["seq_len"])
            found = pinned.get(key)
            if found is None:
                found = pinned[key] = pins(*key)
            raw.update(found)
            cells[matched(Cell(**raw))] = None
    return list(cells)


Lookups = tuple[Callable[[str], str], Callable[[str], float]]


def _lookups() -> Lookups:
    """A device's resolved name and a task's default rate, each worked out once per plan (a
    plan of a million cells asked a million times)."""
    from seqbench.core import devices
    from seqbench.tasks import new_task
    from seqbench.tasks.base import default_lr

    return functools.cache(devices.resolve), functools.cache(lambda t: default_lr(new_task(t)))


def raw_cell(axes: Axes, raw: dict, lookups: Lookups | None = None) -> Cell:
    """The cell of one combination of `axes`' values, before its architecture and task pin
    what they decide (models.normalize_cell)."""
    return Cell(**raw_values(axes, raw, lookups))


def raw_values(axes: Axes, raw: dict, lookups: Lookups | None = None) -> dict:
    """`raw_cell`'s fields: the device resolved; a speed cell's seed and rate fixed, a task
    cell's rate 0 replaced by the task's default."""
    resolve, rate = lookups or _lookups()
    raw["device"] = resolve(raw["device"])
    if not raw["task"]:
        raw["seed"], raw["lr"] = axes.seed[0], 0.0
    elif not raw["lr"]:
        raw["lr"] = rate(raw["task"])
    return raw


def first_cell(axes: Axes, arch: str) -> Cell:
    """The first cell of `axes` that measures `arch` (plan order: each axis's first value,
    the smallest batch and length), before normalize_cell: what a user's factory is first
    built for, checked before its module is imported here (plan.combined)."""
    from seqbench.models import task_pins

    raw = {
        n: min(getattr(axes, n)) if n in _ASCENDING else getattr(axes, n)[0] for n in _PLAN_ORDER
    }
    cell = raw_cell(axes, {**raw, "arch": arch})
    return dataclasses.replace(cell, **task_pins(cell))


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
