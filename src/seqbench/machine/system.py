"""The machine seqbench measures on, as far as Linux tells: the CPUs this process may use
(its affinity and cgroup quota), the load, the clocks, the frequency governor and turbo, the
counters read around a cell's timed samples and what other work did between two readings
(`read_counters`, `interference`: the row's noise columns, judged in `judge.noise`).
`machine.look` turns them into how busy the machine is now.

Everything is read from files under a root that tests replace with a fake one; what this
system does not offer reads as None, never as a guess. Nothing here imports torch.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqbench.core.timing import Stopwatch

ROOT = Path("/")

# Steal (a hypervisor's) or cgroup throttling above this share of the time: disturbed.
STOLEN = 0.05

# Fields of a /proc/stat cpu line: user nice system idle iowait irq softirq steal ...
_USER, _NICE, _SYSTEM, _IDLE, _IOWAIT, _IRQ, _SOFTIRQ, _STEAL = range(8)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def affinity() -> set[int] | None:
    """The CPUs this process may run on, where the system says."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def cpu_ticks(root: Path, cpus: set[int] | None) -> tuple[int, int, int] | None:
    """(busy, steal, total) clock ticks of the given CPUs (all when None), from /proc/stat."""
    text = _read(root / "proc" / "stat")
    if text is None:
        return None
    busy = steal = total = 0
    found = False
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        values = [int(v) for v in rest.split()]
        values += [0] * (8 - len(values))
        busy += sum(values[i] for i in (_USER, _NICE, _SYSTEM, _IRQ, _SOFTIRQ))
        steal += values[_STEAL]
        total += sum(values[:8])
        found = True
    return (busy, steal, total) if found else None


def _cgroup_dirs(root: Path) -> list[Path]:
    """The cgroup folders that hold this process's CPU controller (v2, then v1)."""
    text = _read(root / "proc" / "self" / "cgroup") or ""
    dirs = []
    for line in text.splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        relative = path.lstrip("/")
        if controllers == "":
            dirs.append(root / "sys" / "fs" / "cgroup" / relative)
        elif "cpu" in controllers.split(","):
            dirs.append(root / "sys" / "fs" / "cgroup" / "cpu" / relative)
    return dirs


def throttled_seconds(root: Path) -> float | None:
    for folder in _cgroup_dirs(root):
        text = _read(folder / "cpu.stat")
        if text is None:
            continue
        fields = dict(line.split()[:2] for line in text.splitlines() if len(line.split()) >= 2)
        if "throttled_usec" in fields:  # cgroup v2
            return int(fields["throttled_usec"]) / 1e6
        if "throttled_time" in fields:  # cgroup v1, nanoseconds
            return int(fields["throttled_time"]) / 1e9
    return None


def cpu_quota(root: Path = ROOT) -> float | None:
    """CPUs' worth of time the cgroup allows per period (None: no quota)."""
    for folder in _cgroup_dirs(root):
        text = _read(folder / "cpu.max")
        if text is not None:  # v2: "max 100000" or "200000 100000"
            quota, _, period = text.strip().partition(" ")
            return None if quota == "max" else int(quota) / int(period)
        quota_text = _read(folder / "cpu.cfs_quota_us")
        period_text = _read(folder / "cpu.cfs_period_us")
        if quota_text is not None and period_text is not None:
            quota = int(quota_text)
            return None if quota < 0 else quota / int(period_text)
    return None


def usable_cpus(root: Path = ROOT) -> float:
    """How many CPUs' worth of time this process can have: its affinity, capped by the
    cgroup's quota."""
    cpus = affinity()
    count = float(len(cpus) if cpus else (os.cpu_count() or 1))
    quota = cpu_quota(root)
    return min(count, quota) if quota is not None else count


def load_average(root: Path = ROOT) -> float | None:
    text = _read(root / "proc" / "loadavg")
    try:
        return float(text.split()[0]) if text else None
    except (ValueError, IndexError):
        return None


def cpu_mhz(root: Path = ROOT, cpus: set[int] | None = None) -> float | None:
    """The mean current clock of the given CPUs, from cpufreq or /proc/cpuinfo."""
    values = []
    base = root / "sys" / "devices" / "system" / "cpu"
    for cpu in sorted(cpus) if cpus else []:
        text = _read(base / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq")
        if text and text.strip().isdigit():
            values.append(int(text) / 1000)
    if not values:
        for line in (_read(root / "proc" / "cpuinfo") or "").splitlines():
            if line.startswith("cpu MHz"):
                try:
                    values.append(float(line.split(":", 1)[1]))
                except ValueError:
                    continue
    return sum(values) / len(values) if values else None


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


def process_cpu_s(pid: int, root: Path = ROOT) -> float:
    """A process's user + system seconds so far, from /proc (0 where it cannot be read: it
    has gone, or this is not Linux). A child that exited but was not waited for still has
    its entry, and its time."""
    text = _read(root / "proc" / str(pid) / "stat")
    try:
        fields = text.rsplit(")", 1)[1].split() if text else []  # its name may hold spaces
        return (int(fields[11]) + int(fields[12])) / _ticks_per_second()
    except (IndexError, ValueError):
        return 0.0


def read_counters(
    root: Path = ROOT, *, children: bool = False, running: tuple[int, ...] = ()
) -> Counters:
    """The counters now; `children`: this process's own CPU time includes that of the
    children it has waited for, and of the `running` ones (their pids) it has not."""
    ticks = cpu_ticks(root, affinity())
    # getrusage's CPU time is the scheduler's, to the microsecond; os.times() counts whole
    # clock ticks (10 ms at 100 Hz), a tenth of a pass of a tenth of a second.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = usage.ru_utime + usage.ru_stime
    if children:
        done = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s += done.ru_utime + done.ru_stime
    cpu_s += sum(process_cpu_s(pid, root) for pid in running)
    return Counters(
        watch=Stopwatch(),
        cpu_s=cpu_s,
        involuntary=usage.ru_nivcsw,
        busy_ticks=None if ticks is None else ticks[0],
        steal_ticks=None if ticks is None else ticks[1],
        total_ticks=None if ticks is None else ticks[2],
        throttled_s=throttled_seconds(root),
        load1=load_average(root),
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
        "cpu_mhz": cpu_mhz(root, affinity()),
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


def governors(root: Path = ROOT, cpus: set[int] | None = None) -> set[str] | None:
    """The frequency governors of the given CPUs, where cpufreq is exposed."""
    base = root / "sys" / "devices" / "system" / "cpu"
    found = {
        text.strip()
        for cpu in sorted(cpus or [])
        if (text := _read(base / f"cpu{cpu}" / "cpufreq" / "scaling_governor"))
    }
    return found or None


def turbo(root: Path = ROOT) -> bool | None:
    """Whether the CPU may boost its clock above the base (None: not readable here)."""
    base = root / "sys" / "devices" / "system" / "cpu"
    no_turbo = _read(base / "intel_pstate" / "no_turbo")
    if no_turbo is not None and no_turbo.strip() in ("0", "1"):
        return no_turbo.strip() == "0"
    boost = _read(base / "cpufreq" / "boost")
    if boost is not None and boost.strip() in ("0", "1"):
        return boost.strip() == "1"
    return None
