"""The in-process executor: every cell measured in this process, one at a time.

The fastest way to run a matrix, and the one a user's debugger sees; a cell that crashes
the interpreter takes the run with it (the subprocess executor is for that). The process
settings (threads, subnormals, TF32) are this process's: the command applied them.
"""

from __future__ import annotations

from seqbench.execute.base import OneAtATime
from seqbench.request import CellRequest
from seqbench.schema import Measurement
from seqbench.timing import Clock


class InProcessExecutor(OneAtATime):
    name = "local"

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__()
        self._clock = clock

    def run(self, request: CellRequest) -> Measurement:
        from seqbench.measure import measure

        return measure(request, self._clock)
