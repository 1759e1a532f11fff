"""The memory frontier: the longest sequence that still fits, found by bisection.

Each probe runs one cell (one step, memory measured) and says whether it fit: it ran
without running out of memory and, with a memory limit, its peak stayed within it. The
search doubles the length until a probe fails, then bisects between the last fit and the
first failure until they are within a tolerance. Probes normally run in fresh processes, so
that one out-of-memory probe cannot leave a fragmented or poisoned allocator to the next.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from seqbench.core.errors import SeqbenchError
from seqbench.core.schema import Measurement
from seqbench.core.settings import MeasureSettings

# One step timed, one measured for memory: a probe asks "does it fit", not "how fast".
PROBE_SETTINGS = MeasureSettings(
    min_time=0.0, min_repeats=1, max_repeats=1, warmup_time=0.0, warmup_steps=1,
    min_sample_s=0.0, processes=1,
)  # fmt: skip


@dataclass(frozen=True)
class Probe:
    seq_len: int
    fits: bool
    measurement: Measurement


@dataclass(frozen=True)
class FrontierResult:
    largest: int | None  # the longest length that fit (None: not even the shortest tried)
    smallest_failing: int | None  # the shortest that did not (None: the limit was reached)
    probes: list[Probe]


def fits(measurement: Measurement, mem_limit: int | None) -> bool:
    """Did the probe fit? Anything but ok or oom is not a question of memory: an error."""
    row = measurement.row
    if row.status == "oom":
        return False
    if row.status != "ok":
        raise SeqbenchError(
            f"a probe at seq_len {row.seq_len} failed ({row.status}): {row.message}"
        )
    return mem_limit is None or (row.peak_mem_bytes is not None and row.peak_mem_bytes <= mem_limit)


def search(
    probe: Callable[[int], Probe], *, start: int, max_len: int, tolerance: float = 0.0
) -> Iterator[Probe]:
    """Yield probes until the frontier is pinned down; the last `FrontierResult` comes from
    `summarize`. `tolerance` is relative: stop once (failing - fitting) <= tolerance · fitting."""
    lo, hi = None, None
    length = min(start, max_len)
    # Grow (or shrink, if the start already fails) by factors of two to bracket the frontier.
    while True:
        result = probe(length)
        yield result
        if result.fits:
            lo = length
            if hi is not None or length >= max_len:
                break
            length = min(length * 2, max_len)
        else:
            hi = length
            if lo is not None or length == 1:
                break
            length //= 2
    if lo is None or hi is None:
        return
    while hi - lo > max(1, int(tolerance * lo)):
        mid = (lo + hi) // 2
        result = probe(mid)
        yield result
        lo, hi = (mid, hi) if result.fits else (lo, mid)


def summarize(probes: list[Probe]) -> FrontierResult:
    good = [p.seq_len for p in probes if p.fits]
    bad = [p.seq_len for p in probes if not p.fits]
    return FrontierResult(max(good) if good else None, min(bad) if bad else None, probes)


_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip


def parse_bytes(text: str) -> int:
    """'2GiB', '500MB', '1.5e9' -> bytes."""
    match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise SeqbenchError(
            f"--mem-limit: expected a size such as 2GiB, 500MB or 1e9, got {text!r}"
        )
    try:
        value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    except ValueError:
        raise SeqbenchError(
            f"--mem-limit: expected a size such as 2GiB, 500MB or 1e9, got {text!r}"
        ) from None
    if value <= 0:
        raise SeqbenchError(f"--mem-limit: expected a positive size, got {text!r}")
    return int(value)
