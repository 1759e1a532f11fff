"""What every measuring command does around the scheduler: plan the cells, load the tasks'
data, take the environment once, and open the run folder (new, or an interrupted one to
finish, whose configuration and environment must still match).

`seqbench run`, `seqbench frontier` and the Python API all start here, so a run is set up
the same way whichever of them measures it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqbench.core.errors import SeqbenchError
from seqbench.core.schema import Cell
from seqbench.plan.config import SuiteConfig, config_differences, plan


@dataclass(frozen=True)
class Plan:
    """The cells a configuration asks for, in run order, and the devices among them that
    this machine does not have (device -> why), each checked once."""

    cells: list[Cell]
    unavailable: dict[str, str]
    # One line per thing about the cells worth knowing before they run (a TCN that cannot
    # see its whole sequence); the CLI prints them, the core never does.
    warnings: tuple[str, ...] = ()

    def count_on(self, device: str) -> int:
        return sum(c.device == device for c in self.cells)


def make_plan(config: SuiteConfig) -> Plan:
    """Plan the cells and load every task's data once, before anything is measured or
    saved: a missing or malformed dataset is one clear error up front, not a failed row per
    cell."""
    from seqbench.core import devices
    from seqbench.tasks import prepared

    cells = plan(config)
    for cell in cells:
        if cell.task:
            prepared(cell.task, cell.seq_len, cell.vocab, cell.seed, config.train.data)
    names = dict.fromkeys(c.device for c in cells)
    reasons = {name: devices.unavailable_reason(name) for name in names}
    return Plan(cells, {name: why for name, why in reasons.items() if why}, plan_warnings(cells))


def plan_warnings(cells: list[Cell]) -> tuple[str, ...]:
    """Each distinct warning about the cells, once, in plan order."""
    from seqbench.models import short_sight

    found = (short_sight(cell) for cell in cells)
    return tuple(dict.fromkeys(line for line in found if line))


def choose_threads(config: SuiteConfig, machine: Any) -> tuple[SuiteConfig, str]:
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


def environment(config: SuiteConfig, device_names: list[str], executor: Any) -> dict[str, Any]:
    """Apply the configuration's process settings here and record the environment the
    numbers will come from: this machine's, with what the executor changes (a Ray worker's
    threads)."""
    from seqbench.machine.env import apply_process_settings, collect_env

    process = config.process
    settings = apply_process_settings(process.threads, process.flush_denormal, process.tf32)
    env = collect_env(device_names, settings)
    env["isolated"] = config.isolated
    env["executor"] = config.executor
    env.update(executor.describe())
    return env


def finish(run: Any, state: str) -> None:
    """Close a run: its noise summary into the metadata, and its final state."""
    from seqbench.judge import noise

    run.meta["noise"] = noise.summarize(run.rows)
    run.finish(state)


def new_run(
    config: SuiteConfig, the_plan: Plan, env: dict[str, Any], root: Path, extra_csv: Path | None
):
    """A fresh run folder under `root` for this configuration and plan; a --csv file that
    cannot be written is refused first, so that no empty run is left behind."""
    from seqbench.storage import check_writable, create_run

    if extra_csv is not None:
        check_writable(extra_csv, "--csv")

    return create_run(
        root,
        label=config.label,
        config=config.to_dict(),
        env=env,
        plan=[c.cell_id for c in the_plan.cells],
        extra_csv=extra_csv,
    )


def reopen(ref: str, root: Path):
    """An interrupted run, ready to take its remaining cells, and its saved configuration."""
    from seqbench.storage import reopen_run

    run = reopen_run(ref, root)
    return run, SuiteConfig.from_dict(run.meta["config"])


def check_same_configuration(run: Any, saved: SuiteConfig, asked: SuiteConfig) -> None:
    """Refuse to finish a run with another configuration than the one it started with."""
    changed = config_differences(saved, asked)
    if changed:
        raise SeqbenchError(
            f"cannot resume {run.run_id}: the configuration differs ({', '.join(changed)}); "
            "start a new run instead, or resume without those options"
        )


def check_same_environment(run: Any, env: dict[str, Any]) -> None:
    """Refuse to add cells to a run whose numbers came from another environment."""
    from seqbench.machine.env import env_differences

    changed = env_differences(run.meta["env"], env)
    if changed:
        raise SeqbenchError(
            f"cannot resume {run.run_id}: the environment differs ({', '.join(changed)}); "
            "its numbers would not be comparable with those already saved"
        )
