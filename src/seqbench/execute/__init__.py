"""Running cells: one scheduler, executors behind one interface.

    command -> SuiteConfig.request(cell, round) -> Scheduler -> Executor -> measure(request)

The `Scheduler` (scheduler.py) owns what is the same for every backend: the order of the
passes, resuming, skipping cells larger than one that ran out of memory, pooling rounds,
the MFU, saving, and the events a progress bar follows. An executor only runs requests and
hands their measurements back: in this process (local.py), each in a fresh process
(isolated.py, whose child side is worker.py), or on a Ray cluster (ray.py). A new
backend is one file that implements `Executor` (base.py), named in factory.py.

Importing this package imports neither torch nor Ray.
"""

from seqbench.execute.base import CellFinished, CellStarted, Event, Executor, Notice
from seqbench.execute.factory import make_executor
from seqbench.execute.scheduler import Scheduler

__all__ = [
    "CellFinished",
    "CellStarted",
    "Event",
    "Executor",
    "Notice",
    "Scheduler",
    "make_executor",
]
