"""What else the machine was doing while a cell was timed, and when a number can't be trusted.

Noise is a measurement: around a cell's timed samples seqbench reads the system's counters
(`read_counters`), and the difference (`interference`) becomes columns of the row:

- `load_before`, `load_after`: the 1-minute load average at the start and end;
- `cpu_share`: the CPU time the process got over wall time x its threads;
- `others_cores`: cores that other processes kept busy on this process's CPUs;
- `ctx_switches_per_step`: involuntary context switches of the process per step;
- `steal_frac`: the share of the CPUs' time a hypervisor gave to other guests;
- `throttled_frac`: the share of wall time the cgroup's CPU quota held the process back;
- `cpu_mhz`: the CPUs' mean clock at the end.

`flag` turns a row into the reasons it is `noisy`, or nothing (`findings` gives each reason
short, for a table, and in full). A cell is flagged when its
median's 95% confidence interval is wider than ±`WIDE_CI`, or when it ran under
interference: its threads and the other processes' busy cores together wanted more than
the CPUs it could use (`CONTENTION` cores of slack), or steal or throttling took more than
`system.STOLEN` of its time. Those levels were chosen on a 2-core machine: quiet, no cell of the
quick suite crosses them; with two busy processes beside it, every cell run with two
threads does (benchmarks/oversubscription.py shows why that matters).

Everything is read from `/proc` and `/sys` under a root that tests replace with a fake
one; a reading this system does not offer is None, never a guess. Nothing here imports
torch or seqbench beyond the timing module.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqbench import system
from seqbench.system import ROOT, STOLEN
from seqbench.timing import Stopwatch

# Flagging levels (see the module docstring).
WIDE_CI = 0.10  # the median's 95% CI half-width, relative
CONTENTION = 0.25  # cores of demand beyond the CPUs before a cell counts as contended


@dataclass(frozen=True)
class Counters:
    """Cumulative counters at one instant; only differences between two mean anything."""

    watch: Stopwatch  # when they were read
    cpu_s: float  # this process's user + system seconds, all threads
    involuntary: int  # this process's involuntary context switches
    busy_ticks: int | None  # on this process's CPUs: time not idle, steal excluded
    steal_ticks: int | None
    total_ticks: int | None
    throttled_s: float | None  # the cgroup's throttled time
    load1: float | None


def read_counters(root: Path = ROOT) -> Counters:
    ticks = system.cpu_ticks(root, system.affinity())
    times = os.times()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return Counters(
        watch=Stopwatch(),
        cpu_s=times.user + times.system,
        involuntary=usage.ru_nivcsw,
        busy_ticks=None if ticks is None else ticks[0],
        steal_ticks=None if ticks is None else ticks[1],
        total_ticks=None if ticks is None else ticks[2],
        throttled_s=system.throttled_seconds(root),
        load1=system.load_average(root),
    )


def _ticks_per_second() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        return 100


def interference(
    before: Counters,
    after: Counters,
    *,
    threads: int,
    steps: int,
    root: Path = ROOT,
    ticks_per_s: int | None = None,
) -> dict[str, Any]:
    """The noise columns of a row, from counters read around its timed samples."""
    wall = before.watch.elapsed() - after.watch.elapsed()
    wall = max(wall, 1e-9)
    own = after.cpu_s - before.cpu_s
    hz = ticks_per_s or _ticks_per_second()
    columns: dict[str, Any] = {
        "load_before": before.load1,
        "load_after": after.load1,
        "cpu_share": own / (wall * max(threads, 1)),
        "ctx_switches_per_step": (after.involuntary - before.involuntary) / max(steps, 1),
        "others_cores": None,
        "steal_frac": None,
        "throttled_frac": None,
        "cpu_mhz": system.cpu_mhz(root, system.affinity()),
    }
    if before.busy_ticks is not None and after.busy_ticks is not None:
        busy = (after.busy_ticks - before.busy_ticks) / hz
        columns["others_cores"] = max(0.0, (busy - own) / wall)
        total = after.total_ticks - before.total_ticks
        if total > 0:
            columns["steal_frac"] = (after.steal_ticks - before.steal_ticks) / total
    if before.throttled_s is not None and after.throttled_s is not None:
        columns["throttled_frac"] = (after.throttled_s - before.throttled_s) / wall
    return columns


def findings(row: Any) -> list[tuple[str, str]]:
    """Why a row's timing cannot be trusted, as (short, full) pairs: the rule in the module
    notes. `row` is a ResultRow (or anything with its columns). CUDA and MPS cells are
    judged with one thread: their work runs on the device, the host only feeds it."""
    found = []
    if row.median_s and row.ci_low_s is not None and row.ci_high_s is not None:
        half = (row.ci_high_s - row.ci_low_s) / 2 / row.median_s
        if half > WIDE_CI:
            found.append(
                (f"CI ±{half:.0%}", f"its interval is ±{half:.0%}, wider than ±{WIDE_CI:.0%}")
            )
    threads = (row.threads or 1) if row.device == "cpu" else 1
    others, cpus = row.others_cores, row.cpus
    if others is not None and cpus and threads + others > cpus + CONTENTION:
        plural = "s" if threads > 1 else ""
        found.append(
            (
                f"{others:.1f} busy cores",
                f"its {threads} thread{plural} shared {cpus:g} CPUs with {others:.1f} cores "
                "of other work",
            )
        )
    for column, what in (("steal_frac", "steal"), ("throttled_frac", "throttled")):
        value = getattr(row, column)
        if value is not None and value > STOLEN:
            found.append((f"{what} {value:.0%}", f"{what} took {value:.0%} of its time"))
    return found


def flag(row: Any) -> str:
    """The `noisy` column: every reason the timing cannot be trusted, '' when it can."""
    return "; ".join(full for _, full in findings(row))


def summarize(rows: list[Any]) -> dict[str, Any]:
    """What a run's noise columns come to, for its metadata."""
    measured = [r for r in rows if r.status == "ok"]

    def extreme(column: str, pick=max):
        values = [getattr(r, column) for r in measured if getattr(r, column) is not None]
        return pick(values) if values else None

    return {
        "cells": len(measured),
        "noisy": sum(bool(r.noisy) for r in measured),
        "others_cores_max": extreme("others_cores"),
        "cpu_share_min": extreme("cpu_share", min),
        "load_max": extreme("load_after"),
        "steal_frac_max": extreme("steal_frac"),
        "throttled_frac_max": extreme("throttled_frac"),
        "ctx_switches_per_step_max": extreme("ctx_switches_per_step"),
    }
