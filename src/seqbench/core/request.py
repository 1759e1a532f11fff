"""One measurement asked for: a frozen, serialisable `CellRequest`.

Everything `seqbench.measure.measure` needs travels in the request (the cell, how to time
it, how to train it, the seed, the time limit, the process settings), so the same request
measures the same thing in this process, in a fresh one, on a Ray worker or from a user's
own code. It round-trips through JSON (`to_dict` / `from_dict`): that is the worker protocol.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from seqbench.core.schema import Cell
from seqbench.core.settings import MeasureSettings, ProcessSettings, TrainSettings


@dataclass(frozen=True)
class ModuleSpec:
    """A user's own module by importable names, 'package.module:attribute' each, so that a
    fresh process can build it (seqbench.api with `isolate=True`): `model` is an
    `nn.Module` or a function of no arguments that returns one; `inputs` (and `target`)
    fixed inputs or a function of (batch_size, seq_len); `loss` a function of (output) or
    (output, target); `optimizer` a function of the parameters."""

    model: str
    inputs: str
    target: str | None = None
    loss: str | None = None
    optimizer: str | None = None
    # A file holding the live objects themselves, pickled (measure.module.ship): how a live
    # module reaches the fresh processes it is measured in. The names then only describe.
    pickled: str | None = None


@dataclass(frozen=True)
class CellRequest:
    cell: Cell
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    process: ProcessSettings = field(default_factory=ProcessSettings)
    seed: int = 0
    round: int = 1  # which pass over the plan this is (1-based)
    # Train and score a task cell; off in later rounds, which only add timing samples.
    accuracy: bool = True
    memory: bool = True  # also measure peak memory (one more step, untimed)
    timeout: float | None = None  # seconds for the whole cell; None: no limit
    compile_backend: str = "inductor"
    module: ModuleSpec | None = None  # a user's module to measure instead of seqbench's model
    # > 0: count the instructions of this many steps under callgrind instead of timing them
    # (seqbench.measure.instructions; the worker must run under valgrind).
    count_steps: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellRequest:
        return cls(
            cell=Cell(**data["cell"]),
            measure=MeasureSettings(**data["measure"]),
            train=TrainSettings(**data["train"]),
            process=ProcessSettings(**data["process"]),
            module=ModuleSpec(**data["module"]) if data.get("module") else None,
            **{
                k: v
                for k, v in data.items()
                if k not in ("cell", "measure", "train", "process", "module")
            },
        )
