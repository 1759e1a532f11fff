"""How a cell stops early: its time limit, a model that cannot run, memory running out."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class CellTimeout(BaseException):
    """Raised inside a cell that ran past its time limit. A BaseException, so that a model's
    own `except Exception` cannot swallow it."""


class CellSkipped(Exception):
    """A cell that cannot run for a reason of the model (raised while building it)."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise CellTimeout in this thread after `seconds` (SIGALRM; main thread, Unix only).

    Python checks for signals between bytecodes, so a cell stuck inside one long C++ call is
    stopped when that call returns; a cell in its own process is killed instead.
    """
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise CellTimeout(f"the cell ran past its {seconds:g} s limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def is_out_of_memory(exc: BaseException) -> bool:
    """Device OOM, or host memory exhaustion where torch or Python report it."""
    import torch

    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def first_line(exc: BaseException) -> str:
    """'TypeName: first line of the message', for a row's message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
