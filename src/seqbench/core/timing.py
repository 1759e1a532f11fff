"""The one place that reads a clock.

A `Clock` times `number` back-to-back calls of a function and returns the elapsed seconds.
On CPU that is `time.perf_counter`; on CUDA, events recorded on the stream around the calls,
after a synchronisation so that earlier work is not billed to this sample. Tests inject a
`FakeClock` to drive the measurement loop with known durations. A `Stopwatch` reads the
wall clock for what is not a step (a whole cell, a worker's life); nothing else in seqbench
calls `time.perf_counter`.

This module imports nothing from seqbench, and torch only when a CUDA clock is made.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol


class Clock(Protocol):
    name: str

    def time(self, fn: Callable[[], object], number: int) -> float:
        """Seconds taken by `number` calls of `fn`, all work finished."""
        ...


class PerfCounterClock:
    """Wall-clock time around the calls, synchronising the device at both ends."""

    name = "perf_counter"

    def __init__(self, sync: Callable[[], None] = lambda: None) -> None:
        self._sync = sync

    def time(self, fn: Callable[[], object], number: int) -> float:
        self._sync()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        self._sync()
        return time.perf_counter() - start


class CudaEventClock:
    """CUDA events around the calls: device time, free of host-side timer jitter."""

    name = "cuda_event"

    def __init__(self, device: Any) -> None:
        import torch

        self._torch = torch
        self._device = torch.device(device)

    def time(self, fn: Callable[[], object], number: int) -> float:
        cuda = self._torch.cuda
        start = cuda.Event(enable_timing=True)
        end = cuda.Event(enable_timing=True)
        cuda.synchronize(self._device)
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0


class FakeClock:
    """Returns prepared per-call durations instead of reading a clock (for tests).

    Each `time` call consumes one duration d and reports d · number. With `call=True` the
    function still runs, so a test can check what was executed.
    """

    name = "fake"

    def __init__(self, durations: Iterable[float], *, call: bool = False) -> None:
        self._durations: Iterator[float] = iter(durations)
        self._call = call
        self.calls = 0

    def time(self, fn: Callable[[], object], number: int) -> float:
        if self._call:
            for _ in range(number):
                fn()
        self.calls += 1
        return next(self._durations) * number


def sleep(seconds: float) -> None:
    """Let `seconds` of wall time pass (while other counters are read around it)."""
    time.sleep(seconds)


class Stopwatch:
    """Wall time since it was made (or last restarted): for spans that are not steps."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self._start


def clock_for(device: Any) -> Clock:
    """CUDA events on a CUDA device, the wall clock (synchronised) elsewhere."""
    kind = device if isinstance(device, str) else device.type
    if kind.split(":")[0] == "cuda":
        return CudaEventClock(device)
    if kind.split(":")[0] == "mps":
        import torch

        return PerfCounterClock(torch.mps.synchronize)
    return PerfCounterClock()
