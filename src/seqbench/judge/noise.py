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
median's 95% confidence interval is wider than ±`WIDE_CI`, when the fresh processes it was
measured in disagree by more than `DISAGREE` times what their own samples explain (and more
than `SPREAD_FLOOR`), or when it ran under
interference: its threads and the other processes' busy cores together wanted more than
the CPUs it could use (`CONTENTION` cores of slack), or steal or throttling took more than
`system.STOLEN` of its time. Those levels were chosen on a 2-core machine: quiet, no cell of the
quick suite crosses them; with two busy processes beside it, every cell run with two
threads does (benchmarks/oversubscription.py shows why that matters).

A CPU cell is also flagged when its process was off the CPUs for more than `OFF_CPU` of
its timed time and none of the rules above explains it: stopped (SIGSTOP, a debugger, a
suspended laptop), or its step waiting on something other than the CPU. A CPU cell's
process always has a thread at work while it runs (the one that times the steps), so it
was running for no more of the time than the CPU time it got over wall time, `cpu_share`
x threads: one minus that is the least it was off. Its median may survive a stop that
lands in a few samples, but the samples are not one running process's. CUDA and MPS cells
are not judged this way: their host thread may sleep while it waits for the device.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from seqbench.machine.system import STOLEN

if TYPE_CHECKING:  # numpy, which the command line does not load to start
    from seqbench.judge.stats import RatioEstimate

# Flagging levels (see the module docstring).
WIDE_CI = 0.10  # the median's 95% CI half-width, relative
CONTENTION = 0.25  # cores of demand beyond the CPUs before a cell counts as contended
# Processes disagree when their medians spread this many times what their own samples
# explain (and by more than SPREAD_FLOOR, which no timing needs to resolve).
DISAGREE = 3.0
SPREAD_FLOOR = 0.02
# Off the CPUs for more than this share of the timed time, unexplained: flagged. It lies
# above what the sharing the rules tolerate can cost a thread (CONTENTION cores beyond the
# CPUs take at most 0.25/1.25 = 20% of one CPU's time, 11% of two CPUs') and a scheduler's
# time slice in a pass of a tenth of a second; a stop of a quarter of the time, spread
# over the samples, would make each up to a third slower, three times the gate's 10%.
OFF_CPU = 0.25


def findings(row: Any) -> list[tuple[str, str]]:
    """Why a row's timing cannot be trusted, as (short, full) pairs: the rule in the module
    notes. `row` is a ResultRow (or anything with its columns). CUDA and MPS cells are
    judged with one thread: their work runs on the device, the host only feeds it."""
    return _spread(row) + _disturbed(row)


def disturbances(row: Any) -> list[str]:
    """The reasons other work on the machine disturbed a cell (busy cores, steal,
    throttling), or its process being off the CPUs (stopped), in full: not how far its
    figures spread, which an interval across processes already holds."""
    return [full for _, full in _disturbed(row)]


# Steps whose fastest tenth is shorter than this are not moved by other work sharing the
# CPU, steal or throttling, which take the CPU in slices longer than that: beside two busy
# processes on this project's 2-core machine, one thread's fastest tenth moved by +0.0%
# (0.44 ms steps), +0.2% (1.7 ms), +0.7% (4.6 ms) and +1.9% (12.6 ms), where the median
# moved by +0.6%, +6%, +17% and +51% (benchmarks/time_slices.py, median of 3 rounds).
# One millisecond leaves room for shorter slices elsewhere.
SLICE_S = 1e-3


def judge_disturbed(
    verdict: str,
    note: str,
    est: RatioEstimate,
    base: Any,
    cand: Any,
    threshold: float,
    lower_is_better: bool,
    *,
    short: bool = False,
) -> tuple[str, str]:
    """A change found between two rows, (verdict, note) once other work on the CPUs is
    weighed: where either side was disturbed, a regression could be other work slowing
    the candidate, an improvement other work slowing the baseline, so the estimate is
    judged again with that side's `slowdown_bound` taken off. `short`: the change was
    judged relative to the machine's speed, on one thread, and the fastest steps are
    shorter than `SLICE_S`; sharing cannot have moved them, and the verdict's fast-sample
    rule already asks that they moved, so the verdict stands."""
    disturbed = [
        f"the {side} ({'; '.join(found)})"
        for side, row in (("baseline", base), ("candidate", cand))
        if (found := disturbances(row))
    ]
    if not disturbed:
        return verdict, note
    one_thread = all((row.threads or 1) == 1 or row.device != "cpu" for row in (base, cand))
    if short and one_thread:
        return (
            verdict,
            "other work shared the CPUs, in slices longer than these steps: not what moved them",
        )
    bound = slowdown_bound(cand if verdict == "regression" else base)
    if _discounted(est, bound, verdict, lower_is_better, threshold) != verdict:
        return (
            "inconclusive",
            f"a {round((est.ratio - 1) * 100):+d}% change, but noisy: {'; '.join(disturbed)}",
        )
    return verdict, f"larger than the other work could explain (at most x{bound:.2f})"


def _discounted(
    est: RatioEstimate, bound: float, verdict: str, lower_is_better: bool, threshold: float
) -> str:
    """The verdict on `est` had the disturbed side been `bound` times worse than its code."""
    from seqbench.judge.verdicts import classify

    if math.isinf(bound):
        return "inconclusive"
    # A regression's candidate, or an improvement's baseline, counted `bound` times better.
    scale = 1 / bound if (verdict == "regression") == lower_is_better else bound
    scaled = dataclasses.replace(
        est,
        ratio=est.ratio * scale,
        ci_low=est.ci_low * scale,
        ci_high=est.ci_high * scale,
        fast_ratio=est.fast_ratio * scale,
    )
    return classify(scaled, threshold, lower_is_better)[0]


def slowdown_bound(row: Any) -> float:
    """The most that the other work seen around a disturbed cell could have slowed it: 1.0
    for an undisturbed cell. One thread that shares the CPUs with others' busy cores gets at
    least its fair share, so it waits at most (its threads + their cores) / CPUs times as
    long, or 1 / `cpu_share` where the CPU time it got says more (a stopped process, too,
    ran at least `cpu_share` of the time); steal and throttling take
    their share on top. Several threads that share a core with other work have no bound
    (each parallel step waits for the slowest: benchmarks/oversubscription.py measured 1000x),
    so that is infinite."""
    if not _disturbed(row):
        return 1.0
    threads = (row.threads or 1) if row.device == "cpu" else 1
    others, cpus = row.others_cores or 0.0, row.cpus
    bound = 1.0
    if cpus and threads + others > cpus + CONTENTION:
        if threads > 1:
            return math.inf
        bound = (threads + others) / cpus
    share = getattr(row, "cpu_share", None)
    if share:
        bound = max(bound, 1 / min(share, 1.0))
    for column in ("steal_frac", "throttled_frac"):
        value = getattr(row, column)
        if value is not None and value > STOLEN:
            bound /= max(1 - value, 1e-9)
    return bound


def _spread(row: Any) -> list[tuple[str, str]]:
    """A wide interval, or processes that disagree."""
    found = []
    if row.median_s and row.ci_low_s is not None and row.ci_high_s is not None:
        half = (row.ci_high_s - row.ci_low_s) / 2 / row.median_s
        if half > WIDE_CI:
            found.append(
                (f"CI ±{half:.0%}", f"its interval is ±{half:.0%}, wider than ±{WIDE_CI:.0%}")
            )
    spread, within = getattr(row, "process_spread", None), getattr(row, "within_spread", None)
    if spread is not None and within is not None and spread > max(DISAGREE * within, SPREAD_FLOOR):
        found.append(
            (
                f"processes ±{spread:.0%}",
                f"its {row.processes} processes disagree by ±{spread:.0%}, more than their own "
                f"samples explain (±{within:.1%})",
            )
        )
    return found


def _disturbed(row: Any) -> list[tuple[str, str]]:
    """Other work on the cell's CPUs, a hypervisor's steal, or cgroup throttling; failing
    those, a process off the CPUs for a large part of its timed time."""
    found = _other_work(row)
    off = off_cpu(row)
    if not found and off > OFF_CPU:
        found.append(
            (
                f"off CPU {off:.0%}",
                f"its process was off the CPUs for {off:.0%} of its timed time, with no other "
                "work to explain it (stopped or suspended, or its step waited)",
            )
        )
    return found


def _other_work(row: Any) -> list[tuple[str, str]]:
    """Other work on the cell's CPUs, a hypervisor's steal, or cgroup throttling."""
    found = []
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


def off_cpu(row: Any) -> float:
    """The least share of a CPU cell's timed time its process was not running (see the
    module notes): 0.0 where unknown, or for a CUDA or MPS cell."""
    share = getattr(row, "cpu_share", None)
    if share is None or row.device != "cpu":
        return 0.0
    return max(0.0, 1.0 - share * (row.threads or 1))


def noise_advice(rows: list[Any]) -> list[str]:
    """What would steady the noisy ones among measured rows, most useful first (see the docs'
    "When the machine is busy" for the measurements behind each)."""
    noisy = [r for r in rows if r.noisy]
    advice = []
    if any((r.threads or 1) > 1 and _other_work(r) for r in noisy):
        advice.append(
            "--threads 1 (threads that share a core with other work wait for each other at "
            "every parallel step)"
        )
    processes = max((r.processes or 1 for r in noisy), default=1)
    if any(_spread(r) for r in noisy):
        more = max(2 * processes, 3)
        advice.append(
            f"more processes (--processes {more}: the interval is across them, and narrows as "
            "their number grows)"
        )
    return advice or ["rerun on a quieter machine"]


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


# A regression whose steps page-fault at least this often, and ten times as often as the
# baseline's, says so (seen once: 0.01 faults a step, then 95 in a run 90 s later on
# identical code that the machine had slowed).
FAULTS_NOTE = 10.0


def faults_note(base: Any, cand: Any) -> str:
    """Why a slowdown might lie in memory rather than in the computation: the candidate's
    steps page-fault far more often than the baseline's (new allocations in the code, or
    the machine reclaiming memory), or nothing."""
    b, c = base.faults_per_step, cand.faults_per_step
    if b is None or c is None or c < FAULTS_NOTE or c < 10 * b:
        return ""
    return (
        f"its steps page-fault {c:,.0f} times each, {b:.2g} before: new allocations in the "
        "code, or the machine reclaiming memory"
    )
