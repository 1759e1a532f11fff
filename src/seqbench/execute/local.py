"""The in-process executor: every cell measured in this process, one at a time.

The fastest way to run a matrix, and the one a user's debugger sees; a cell that crashes
the interpreter takes the run with it (the subprocess executor is for that). It is also the only executor that can
measure a user's live module (seqbench.api): an arbitrary module cannot be sent to another
process. The process
settings (threads, subnormals, TF32) are this process's: the command applied them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from seqbench.core.request import CellRequest
from seqbench.core.schema import Measurement
from seqbench.core.timing import Clock
from seqbench.execute.base import OneAtATime


class InProcessExecutor(OneAtATime):
    name = "local"

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__()
        self._clock = clock
        # Users' live modules (seqbench.measure.module.UserModule), by the arch label their
        # cells carry: what `measure_module` and the pytest plugin measure.
        self._modules: dict[str, Any] = {}

    def attach(self, module: Any, labels: Iterable[str]) -> None:
        """Measure `module` for the cells with these arch labels."""
        for label in labels:
            self._modules[label] = module

    def run(self, request: CellRequest) -> Measurement:
        from seqbench.measure import measure

        return measure(request, self._clock, self._modules.get(request.cell.arch))
