"""What every measuring command does around the scheduler: plan the cells, load the tasks'
data, take the environment once, and open the run folder (new, or an interrupted one to
finish, whose configuration and environment must still match).

`seqbench run`, `seqbench frontier` and the Python API all start here, so a run is set up
the same way whichever of them measures it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqbench.config import SuiteConfig, config_differences, plan
from seqbench.errors import SeqbenchError
from seqbench.schema import Cell


@dataclass(frozen=True)
class Plan:
    """The cells a configuration asks for, in run order, and the devices among them that
    this machine does not have (device -> why), each checked once."""

    cells: list[Cell]
    unavailable: dict[str, str]

    def count_on(self, device: str) -> int:
        return sum(c.device == device for c in self.cells)


def make_plan(config: SuiteConfig) -> Plan:
    """Plan the cells and load every task's data once, before anything is measured or
    saved: a missing or malformed dataset is one clear error up front, not a failed row per
    cell."""
    from seqbench import devices
    from seqbench.tasks import prepared

    cells = plan(config)
    for cell in cells:
        if cell.task:
            prepared(cell.task, cell.seq_len, cell.vocab, config.seed, config.train.data)
    names = dict.fromkeys(c.device for c in cells)
    reasons = {name: devices.unavailable_reason(name) for name in names}
    return Plan(cells, {name: why for name, why in reasons.items() if why})


def environment(config: SuiteConfig, device_names: list[str], executor: Any) -> dict[str, Any]:
    """Apply the configuration's process settings here and record the environment the
    numbers will come from: this machine's, with what the executor changes (a Ray worker's
    threads)."""
    from seqbench.env import apply_process_settings, collect_env

    process = config.process
    settings = apply_process_settings(process.threads, process.flush_denormal, process.tf32)
    env = collect_env(device_names, settings)
    env["isolated"] = config.isolated
    env["executor"] = config.executor
    env.update(executor.describe())
    return env


def new_run(
    config: SuiteConfig, the_plan: Plan, env: dict[str, Any], root: Path, extra_csv: Path | None
):
    """A fresh run folder under `root` for this configuration and plan."""
    from seqbench.storage import create_run

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
    from seqbench.env import env_differences

    changed = env_differences(run.meta["env"], env)
    if changed:
        raise SeqbenchError(
            f"cannot resume {run.run_id}: the environment differs ({', '.join(changed)}); "
            "its numbers would not be comparable with those already saved"
        )
