"""The cells a configuration asks for, ready to measure: in run order, each task's data
loaded once, the devices this machine lacks found, and what is worth saying about the cells
before they run."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
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
    cells: dict[Cell, None] = {}
    make = _maker()
    for axes in config.matrices:
        for values in itertools.product(*_axis_lists(axes)):
            cells[make(axes, values)] = None
    return list(cells)


def _axis_lists(axes: Axes) -> list[list]:
    return [
        sorted(getattr(axes, n)) if n in _ASCENDING else list(getattr(axes, n)) for n in _PLAN_ORDER
    ]


def _maker() -> Callable[[Axes, tuple], Cell]:
    """What makes the cell of one combination of an axes' values (in _PLAN_ORDER), with what
    normalize_cell pins set before the cell is built (one Cell, not two). What it pins
    depends on the architecture, task and length alone: worked out once per combination."""
    from seqbench.models import matched, pins

    lookups = _lookups()
    pinned: dict[tuple[str, str, int], dict[str, object]] = {}

    def make(axes: Axes, values: tuple) -> Cell:
        raw = raw_values(axes, dict(zip(_PLAN_ORDER, values, strict=True)), lookups)
        key = (raw["arch"], raw["task"], raw["seq_len"])
        found = pinned.get(key)
        if found is None:
            found = pins(*key)
            if _FREE.intersection(found):  # never so: the long plan's count relies on it
                raise AssertionError(f"{key} pins {sorted(_FREE.intersection(found))}")
            pinned[key] = found
        raw.update(found)
        return matched(Cell(**raw))

    return make


# Axes nothing about a cell depends on but themselves: no architecture or task pins them,
# and they change nothing else about the cell (its model, data, device or warnings).
_FREE = frozenset({"batch_size", "mode"})
# From this many cells, a one-matrix plan is made as it runs (LongPlan).
LONG_PLAN = 100_000


class LongPlan(Sequence[Cell]):
    """The cells of a long one-matrix plan, made as they are reached rather than all
    before the first one runs: a million Cell objects took 6 s to make and 1.2 GB to hold.

    Its `core` is the plan at the first batch size and mode alone, made whole: every other
    cell is one of those at another batch size or mode (_FREE), so the core says what the
    whole plan needs up front (its size, devices, data, warnings), and which combinations of
    the other axes make a cell that no earlier one made (normalisation can make two the
    same: a speed cell's seeds, an option an architecture does not take), in the order the
    whole plan reaches them (the same order with the free axes left out)."""

    def __init__(self, axes: Axes) -> None:
        self._axes = axes
        self._lists = _axis_lists(axes)
        self._free = [i for i, n in enumerate(_PLAN_ORDER) if n in _FREE]
        for i in self._free:
            self._lists[i] = list(dict.fromkeys(self._lists[i]))
        core_lists = [[v[0]] if i in self._free else v for i, v in enumerate(self._lists)]
        make = _maker()
        found: dict[Cell, None] = {}
        self._first: set[tuple] = set()  # the combinations, free axes left out, that count
        for values in itertools.product(*core_lists):
            cell = make(axes, values)
            if cell not in found:
                found[cell] = None
                self._first.add(self._rest(values))
        self.core = list(found)
        self._times = math.prod(len(self._lists[i]) for i in self._free)

    def _rest(self, values: tuple) -> tuple:
        return tuple(v for i, v in enumerate(values) if i not in self._free)

    def __len__(self) -> int:
        return len(self.core) * self._times

    def stored(self) -> dict[str, object]:
        """What meta.json keeps of it: its size, and the SHA-256 of its core's ids, one a
        line, then each free axis's values (what the whole plan is made from)."""
        free = [f"{_PLAN_ORDER[i]}={self._lists[i]}" for i in self._free]
        text = "\n".join([*(c.cell_id for c in self.core), *free])
        return {"cells": len(self), "sha256": hashlib.sha256(text.encode()).hexdigest()}

    def count_on(self, device: str) -> int:
        return sum(c.device == device for c in self.core) * self._times

    def __iter__(self) -> Iterator[Cell]:
        make, first, rest, axes = _maker(), self._first, self._rest, self._axes
        for values in itertools.product(*self._lists):
            if rest(values) in first:
                yield make(axes, values)

    def __getitem__(self, index):  # type: ignore[override]  # a Sequence's, by walking
        if isinstance(index, slice):
            return list(itertools.islice(self, *index.indices(len(self))))
        if not -len(self) <= index < len(self):
            raise IndexError("plan index out of range")
        return next(itertools.islice(self, index % len(self), None))


def long_plan(config: SuiteConfig) -> LongPlan | None:
    """The plan made as it runs, for one matrix of at least LONG_PLAN combinations."""
    if len(config.matrices) != 1:
        return None
    axes = config.matrices[0]
    if math.prod(len(v) for v in _axis_lists(axes)) < LONG_PLAN:
        return None
    return LongPlan(axes)


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

    cells: Sequence[Cell]  # a list, or a LongPlan made as it runs
    unavailable: dict[str, str]
    # One line per thing about the cells worth knowing before they run (a TCN that cannot
    # see its whole sequence); the front says them, the core never does.
    warnings: tuple[str, ...] = ()
    devices: tuple[str, ...] | None = None  # the cells' devices, in order (None: from cells)

    def count_on(self, device: str) -> int:
        if isinstance(self.cells, LongPlan):
            return self.cells.count_on(device)
        return sum(c.device == device for c in self.cells)

    def device_names(self) -> list[str]:
        if self.devices is not None:
            return list(self.devices)
        return list(dict.fromkeys(c.device for c in self.cells))


def make_plan(config: SuiteConfig, *, long: bool = True) -> Plan:
    """Plan the cells and load every task's data once, before anything is measured or
    saved: a missing or malformed dataset is one clear error up front, not a failed row per
    cell. `long`: a long one-matrix plan is made as it runs (LongPlan)."""
    from seqbench.core import devices
    from seqbench.tasks import prepared

    made_later = long_plan(config) if long else None
    cells: Sequence[Cell] = plan(config) if made_later is None else made_later
    core = cells if made_later is None else made_later.core  # what the plan needs up front
    for cell in core:
        if cell.task:
            prepared(cell.task, cell.seq_len, cell.vocab, cell.seed, config.train.data)
    names = dict.fromkeys(c.device for c in core)
    reasons = {name: devices.unavailable_reason(name) for name in names}
    unavailable = {name: why for name, why in reasons.items() if why}
    return Plan(cells, unavailable, plan_warnings(core), tuple(names))


def plan_warnings(cells: list[Cell]) -> tuple[str, ...]:
    """Each distinct warning about the cells, once, in plan order."""
    from seqbench.models import short_sight

    found = (short_sight(cell) for cell in cells)
    return tuple(dict.fromkeys(line for line in found if line))
