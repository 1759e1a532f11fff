"""What the scheduler asks of a backend, and the events it reports."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from seqbench.core.request import CellRequest
from seqbench.core.schema import Cell, Measurement


@dataclass(frozen=True)
class CellStarted:
    cell: Cell
    index: int  # 0-based position among this run's (round, cell) passes, in start order
    total: int
    round: int = 1


@dataclass(frozen=True)
class CellFinished:
    measurement: Measurement
    index: int  # 0-based, in finish order (Ray finishes cells out of start order)
    total: int
    round: int = 1


@dataclass(frozen=True)
class Notice:
    """Something a user should hear while the run goes on (the front says it)."""

    text: str


Event = CellStarted | CellFinished | Notice


def process_index(request: CellRequest) -> int:
    """Which of its cell's processes a pass belongs to (1-based): each process runs
    `rounds` passes, one process after the other."""
    return (request.round - 1) // request.measure.rounds + 1


class Executor(Protocol):
    """Runs requests somewhere and hands back their measurements.

    `submit` hands over a request; `next_finished` blocks until one submitted request has a
    measurement, and returns both. An executor never raises for a cell: a crash, a lost
    node or a hang past the request's time limit comes back as a row saying so. At most
    `capacity` requests are in flight at once. Used as a context manager, which starts the
    backend (a cluster) and releases what it holds (processes, connections) at the end.
    """

    name: str
    capacity: int
    # Cells run on this machine, so a ceiling measured here applies to them (for the MFU).
    same_machine: bool
    # A cell's passes run in fresh processes (a process per pass, or per process index):
    # their samples are judged across processes (see measure.sampling.timing_fields).
    separate_processes: bool

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...

    def describe(self) -> dict[str, Any]:
        """What the backend adds to the run's environment (threads it gives a cell, nodes)."""
        ...

    def submit(self, request: CellRequest) -> None: ...

    def next_finished(self) -> tuple[CellRequest, Measurement]: ...

    def cancel(self, which: Callable[[CellRequest], bool], reason: str) -> None:
        """Give up on submitted requests that `which` picks; they come back `skipped`, with
        `reason` as their message."""
        ...


class OneAtATime:
    """An executor that runs each request when it is collected, in the order submitted:
    the shape of every backend on this machine. Subclasses say how one request runs."""

    name = "one-at-a-time"
    capacity = 1
    same_machine = True
    separate_processes = False

    def __init__(self) -> None:
        self._queue: deque[CellRequest] = deque()
        self._cancelled: deque[tuple[CellRequest, str]] = deque()

    def run(self, request: CellRequest) -> Measurement:
        raise NotImplementedError

    def __enter__(self) -> OneAtATime:
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.clear()
        self._cancelled.clear()

    def describe(self) -> dict[str, Any]:
        return {}

    def submit(self, request: CellRequest) -> None:
        self._queue.append(request)

    def next_finished(self) -> tuple[CellRequest, Measurement]:
        if self._cancelled:
            from seqbench.measure import failure

            request, reason = self._cancelled.popleft()
            return request, failure(request.cell, "skipped", reason)
        request = self._queue.popleft()
        return request, self.run(request)

    def cancel(self, which: Callable[[CellRequest], bool], reason: str) -> None:
        # A submitted request has not started yet (it runs when collected): drop it.
        for request in [r for r in self._queue if which(r)]:
            self._queue.remove(request)
            self._cancelled.append((request, reason))
