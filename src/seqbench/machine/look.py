"""How busy the machine is now (`look`: the CPUs this process can use, the cores other
processes keep busy on them, the load), and what threatens a measurement on it (`checks`:
the system check `seqbench check` prints, each line with advice). Everything is read
through `machine.system`, whose root tests replace with a fake one. Nothing here imports
torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seqbench.machine import system

# Other processes keeping this many cores busy make a machine busy.
BUSY_CORES = 0.5


@dataclass(frozen=True)
class Machine:
    """How busy the machine is now: the CPUs this process can use, the cores other
    processes keep busy on them (over a short look), and the load average."""

    cpus: float
    others: float | None
    load: float | None
    steal: float | None = None

    @property
    def busy(self) -> bool:
        return bool(
            (self.others is not None and self.others >= BUSY_CORES)
            or (self.load is not None and self.load > self.cpus + BUSY_CORES)
            or (self.steal is not None and self.steal > system.STOLEN)
        )

    @property
    def free(self) -> float:
        """CPUs left for seqbench: all of them where the busy cores are unknown."""
        return self.cpus if self.others is None else max(0.0, self.cpus - self.others)

    def describe(self) -> str:
        parts = []
        if self.others is not None:
            parts.append(f"other processes keep {self.others:.1f} of its {self.cpus:g} CPUs busy")
        if self.load is not None:
            parts.append(f"load average {self.load:.1f}")
        if self.steal is not None and self.steal > system.STOLEN:
            parts.append(f"a hypervisor takes {self.steal:.0%} of the CPUs")
        return ", ".join(parts) or f"{self.cpus:g} CPUs"


def look(seconds: float = 0.5, root: Path = system.ROOT) -> Machine:
    """Watch the machine for `seconds` (this process idle) and say how busy it is."""
    return Watch(root).look(seconds)


class Watch:
    """A look at the machine begun now and ended by `look`: what this process (and any
    child it waited for) does meanwhile is its own work, not other processes', so a command
    begins the look before its imports and planning and waits only for what remains of it
    (`seqbench run` waited 0.5 s more before its first cell)."""

    def __init__(self, root: Path = system.ROOT) -> None:
        self._root = root
        self._before = system.read_counters(root, children=True)
        self._running: list[int] = []

    def own(self, pid: int) -> None:
        """Count a child started after the look began (a worker made ready while this
        process plans) as this process's own work, whether or not it has ended."""
        self._running.append(pid)

    def look(self, seconds: float = 0.5) -> Machine:
        from seqbench.core.timing import sleep

        left = seconds - self._before.watch.elapsed()
        if left > 0:
            sleep(left)
        after = system.read_counters(self._root, children=True, running=tuple(self._running))
        seen = system.interference(self._before, after, threads=1, steps=1, root=self._root)
        cpus = system.usable_cpus(self._root)
        return Machine(cpus, seen["others_cores"], after.load1, seen["steal_frac"])


@dataclass(frozen=True)
class Check:
    """One line of the system check: what was read, whether it threatens a measurement,
    and what to do about it."""

    name: str
    reading: str
    ok: bool | None  # None: cannot tell here
    advice: str = ""


def checks(machine: Machine, threads: int, root: Path = system.ROOT) -> list[Check]:
    """What threatens a measurement on this machine now, for `threads` torch threads."""
    cpus = system.affinity()
    quota = system.cpu_quota(root)
    where = f"CPUs {','.join(str(c) for c in sorted(cpus))}" if cpus else "all CPUs"
    limit = f", cgroup quota {quota:g}" if quota is not None else ", no cgroup quota"
    found = [Check("CPUs", f"{machine.cpus:g} usable ({where}{limit})", True)]
    if machine.others is None:
        found.append(Check("other work", "not readable here (no /proc/stat)", None))
    else:
        found.append(
            Check(
                "other work",
                f"{machine.others:.1f} of {machine.cpus:g} CPUs busy with other processes",
                machine.others < BUSY_CORES,
                "measure on a quiet machine; where you cannot (a shared runner), gate with "
                "`seqbench ab`, which measures both versions side by side",
            )
        )
    if machine.load is not None:
        found.append(
            Check(
                "load average",
                f"{machine.load:.2f} over the last minute",
                machine.load <= machine.cpus + BUSY_CORES,
                "more runnable tasks than CPUs: some wait for a core",
            )
        )
    free = round(machine.free)
    found.append(
        Check(
            "threads",
            f"{threads} torch thread{'s' if threads != 1 else ''}, {machine.free:.1f} CPUs free",
            threads <= max(free, 1),
            f"threads that share a core with other work wait for each other at every "
            f"parallel step: use --threads {max(free, 1)}",
        )
    )
    if machine.steal is not None:
        found.append(
            Check(
                "steal",
                f"{machine.steal:.0%} of the CPUs' time given to other virtual machines",
                machine.steal <= system.STOLEN,
                "a busy host: use a dedicated instance, or gate with `seqbench ab`",
            )
        )
    throttled = system.throttled_seconds(root)
    if throttled is not None:
        found.append(
            Check(
                "cgroup throttling",
                f"{throttled:.1f} s throttled so far"
                + (f" under a quota of {quota:g} CPUs" if quota is not None else ""),
                throttled == 0 or quota is None,
                "the container's CPU quota holds seqbench back: use --threads "
                f"{max(1, int(quota or 1))} or raise the quota",
            )
        )
    found_governors = system.governors(root, cpus)
    if found_governors is None:
        found.append(Check("frequency governor", "not readable (a VM or container?)", None))
    else:
        found.append(
            Check(
                "frequency governor",
                ", ".join(sorted(found_governors)),
                found_governors == {"performance"},
                "clocks that follow the load make step times follow it too: "
                "`sudo cpupower frequency-set -g performance`",
            )
        )
    boost = system.turbo(root)
    found.append(
        Check(
            "turbo",
            {True: "on", False: "off", None: "not readable"}[boost],
            None if boost is None else not boost,
            "turbo clocks depend on temperature and on the other cores' load: turn it off "
            "for steadier numbers, or compare only runs made the same way",
        )
    )
    mhz = system.cpu_mhz(root, cpus)
    if mhz is not None:
        found.append(Check("clock", f"{mhz:.0f} MHz now", True))
    return found
