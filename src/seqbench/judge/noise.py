"""When a timing cannot be trusted: the `noisy` flag and a run's noise summary.

Noise is a measurement: around a cell's timed samples seqbench reads the system's counters
(`machine.system.read_counters`), and the difference (`machine.system.interference`)
becomes columns of the row:

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
"""

from __future__ import annotations

from typing import Any

from seqbench.machine.system import STOLEN

# Flagging levels (see the module docstring).
WIDE_CI = 0.10  # the median's 95% CI half-width, relative
CONTENTION = 0.25  # cores of demand beyond the CPUs before a cell counts as contended


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
