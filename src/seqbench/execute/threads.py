"""How many torch threads a run's cells get: chosen for the machine before the first cell,
and lowered for the cells still to come when other work arrives while the run goes on.

Threads that share a core with other work wait for each other at every parallel step: a
two-thread cell on a busy two-core machine was measured 3,000 times slower than a
one-thread cell (benchmarks/oversubscription.py), and a load that arrives after the start
would make every later cell pay that. So the run watches each finished cell's record of the
other processes' busy cores (`others_cores`), and when a cell's threads and that other work
wanted more than its CPUs, the cells not yet started get the CPUs left free. A cell keeps the
threads its first pass had in its later passes, so that no cell's processes mix two thread
counts; the disturbed cell stays flagged noisy (judge.noise), never printed as clean.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from seqbench.core.request import CellRequest
from seqbench.core.schema import Cell, ResultRow
from seqbench.core.settings import MeasureSettings
from seqbench.judge.noise import CONTENTION
from seqbench.plan.config import SuiteConfig

if TYPE_CHECKING:
    from seqbench.machine.look import Machine


def choose_threads(config: SuiteConfig, machine: Machine) -> tuple[SuiteConfig, str]:
    """The configuration with its CPU threads decided, and a warning line if there is one.

    Threads the user chose stay (with a warning when the machine cannot give them all a
    core). Otherwise seqbench takes torch's default, lowered to the CPUs other processes
    leave free: threads that share a core with other work wait for each other at every
    parallel step, and a two-thread cell on a busy two-core machine was measured 3,000
    times slower than a one-thread cell (benchmarks/oversubscription.py). A Ray cluster's
    workers get their threads from their node.
    """
    if config.executor == "ray":
        return config, ""
    if config.threads is not None:
        if config.threads > machine.cpus:
            return config, (
                f"--threads {config.threads} is more than the {machine.cpus:g} CPUs this process "
                "can use: the threads will wait for each other, and the numbers say more about "
                "that than about the model"
            )
        if machine.busy and config.threads == 1:
            return config, (
                f"this machine is busy ({machine.describe()}): cells that other work "
                "disturbs are flagged noisy"
            )
        if machine.busy and config.threads > round(machine.free):
            return config, (
                f"this machine is busy ({machine.describe()}): {config.threads} threads will "
                "wait for each other, and cells will be flagged noisy; --threads 1 is steadier"
            )
        return config, ""
    import torch

    default = torch.get_num_threads()
    threads = max(1, min(default, round(machine.free)))
    config = dataclasses.replace(config, threads=threads)
    if threads < default:
        return config, (
            f"this machine is busy ({machine.describe()}): measuring with {threads} "
            f"thread{'s' if threads > 1 else ''} instead of {default} (--threads N to insist); "
            "cells that other work disturbs are flagged noisy"
        )
    if machine.busy:
        return config, (
            f"this machine is busy ({machine.describe()}): cells that other work disturbs "
            "are flagged noisy"
        )
    return config, ""


class ThreadsWatch:
    """The configuration's requests, with threads that follow the machine: a `RunConfig` for
    the scheduler. Only threads seqbench chose are lowered; threads the user asked for stay
    (their cells are flagged noisy instead)."""

    def __init__(self, config: SuiteConfig, chosen_here: bool) -> None:
        self.config = config
        self._adapt = chosen_here and config.executor != "ray" and config.threads is not None
        self._threads = config.threads
        self._given: dict[str, int | None] = {}  # cell id -> the threads its first pass had

    @property
    def measure(self) -> MeasureSettings:
        return self.config.measure

    @property
    def skip_larger(self) -> bool:
        return self.config.skip_larger

    @property
    def ceiling(self) -> bool:
        return self.config.ceiling

    def request(self, cell: Cell, round: int = 1) -> CellRequest:
        threads = self._given.setdefault(cell.cell_id, self._threads)
        request = self.config.request(cell, round)
        if threads == request.process.threads:
            return request
        process = dataclasses.replace(request.process, threads=threads)
        return dataclasses.replace(request, process=process)

    def observe(self, row: ResultRow) -> str:
        """Lower the threads of the cells to come when this cell's CPUs were contended; the
        line that says so, the first time (else '')."""
        if not self._adapt or row.status != "ok" or row.device != "cpu":
            return ""
        threads, others, cpus = row.threads or 1, row.others_cores, row.cpus
        if others is None or not cpus or threads <= 1 or threads + others <= cpus + CONTENTION:
            return ""
        free = max(1, math.floor(cpus - others + CONTENTION))
        if free >= (self._threads or threads):
            return ""
        before, self._threads = self._threads, free
        return (
            f"other work arrived ({others:.1f} of {cpus:g} CPUs busy while {row.cell_id} ran): "
            f"the cells still to come are measured with {free} thread{'s' if free > 1 else ''} "
            f"instead of {before}; {row.cell_id} stays flagged noisy"
        )
