"""`seqbench ab`: two versions of the code measured side by side, and a verdict on the change."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import typer

from seqbench.cli.app import app
from seqbench.cli.common import sigterm_as_interrupt, stderr, user_errors
from seqbench.cli.options import (
    ARGUMENT,
    COMMAND,
    Given,
    Option,
    declare,
)
from seqbench.cli.run import requested
from seqbench.cli.run_options import RUN_OPTIONS
from seqbench.core.errors import SeqbenchError

# Pairs of rounds: with fewer than 6 the signed-rank interval cannot reach 95%.
AB_ROUNDS = 10
MIN_ROUNDS = 6
# Samples a round takes at least, so that its fastest tenth is more than one sample.
ROUND_SAMPLES = 10

# From `run`: the matrix, and how each cell is timed and trained; not where cells run
# (each version has its own worker per cell), nor the run's own output.
_NOT_FOR_AB = {
    "executor", "ray_address", "cpu_cells_per_node", "isolate", "resume", "csv",
    "output_format", "quiet", "ceiling", "rounds", "label",
}  # fmt: skip

AB_OPTIONS: tuple[Option, ...] = (
    Option(
        "baseline",
        "The version to compare against: a git ref of --repo, '.' (the working tree as it "
        "is), or python:PATH (another interpreter with seqbench installed).",
        kind=ARGUMENT,
    ),
    Option("candidate", "The version to judge, in the same forms.", kind=ARGUMENT),
    *(o for o in RUN_OPTIONS if o.name not in _NOT_FOR_AB),
    Option(
        "rounds",
        f"Rounds of pairs: each cell measured once per version per round, in the order A B, "
        f"B A, ... (default {AB_ROUNDS}; at least {MIN_ROUNDS}).",
        type=int,
    ),
    Option(
        "repo",
        "The git repository the refs name (default: the current folder's).",
        kind=COMMAND,
        type=Path,
        default=Path("."),
    ),
    Option(
        "threshold",
        "A change smaller than this fraction is never a regression (default 0.10).",
        kind=COMMAND,
        type=float,
        default=0.10,
    ),
    Option(
        "fail_on_improvement",
        "Also exit 1 on large improvements (they often mean a benchmark broke).",
        kind=COMMAND,
        type=bool,
        default=False,
        flags=("--fail-on-improvement",),
    ),
    Option(
        "output_format",
        "table, markdown (for CI job summaries and PR comments) or json.",
        kind=COMMAND,
        default="table",
        flags=("--format",),
    ),
)

# Run in each version's own interpreter and folder: the environment its numbers come from.
_ENV_PROBE = """
import json, sys
from seqbench.machine.env import apply_process_settings, collect_env
threads, flush, tf32, devices = json.loads(sys.argv[1])
print(json.dumps(collect_env(devices, apply_process_settings(threads, flush, tf32)), default=str))
"""


def _environment(version, config, devices: list[str], here: dict) -> dict:
    """The environment of a version's numbers: this process's (`here`) when the version runs
    on this interpreter, else what its own interpreter reports."""
    if version.launch.inherit_path:  # the same interpreter and packages: only the code differs
        return _tagged({**here}, version)
    process = config.process
    argument = json.dumps([process.threads, process.flush_denormal, process.tf32, devices])
    done = subprocess.run(
        [version.launch.python, "-c", _ENV_PROBE, argument],
        capture_output=True,
        text=True,
        env=version.launch.environment(),
        cwd=version.launch.cwd,
        timeout=300,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise SeqbenchError(f"{version.name}: cannot start seqbench there ({last})")
    return _tagged(json.loads(done.stdout.splitlines()[-1]), version)


def _tagged(env: dict, version) -> dict:
    env.update(executor="ab", isolated=True, version=version.name)
    if version.commit:
        from seqbench.machine.env import git_commit_time

        env.update(
            git_commit=version.commit,
            git_dirty=version.dirty,
            git_commit_time=git_commit_time(version.commit),
        )
    return env


class _NoExecutor:
    """What `session.environment` asks of an executor, for the environment of this process."""

    @staticmethod
    def describe() -> dict:
        return {}


def ab(given: Given) -> None:
    """Measure two versions of the code side by side and judge the change, under load too.

    Each cell gets a fresh process per version, and the two measure it in turns (A B, B A,
    A B, ...) for --rounds rounds, so that whatever else the machine does weighs on both; the
    change is estimated from the per-round pairs of each round's fastest tenth. The output
    and exit codes are compare's: 0 no regression, 1 a regression, 3 too noisy to decide, 2
    bad input.
    """
    from seqbench.cli.compare import show_comparison
    from seqbench.execute import CellStarted, Scheduler, session
    from seqbench.execute.callgrind import CountingExecutor
    from seqbench.execute.isolated import CellWorkerExecutor
    from seqbench.execute.paired import PairedRun
    from seqbench.execute.versions import checked_out
    from seqbench.judge.compare import (
        check_threshold,
        compare_paired,
        compare_runs,
        counted,
        default_threshold,
    )
    from seqbench.judge.gate import gate
    from seqbench.machine import system
    from seqbench.output.tables import format_comparison_summary
    from seqbench.output.terminal import make_progress
    from seqbench.plan.config import resolve_config
    from seqbench.storage import create_run

    if given.output_format not in ("table", "markdown", "json"):
        raise SeqbenchError(
            f"--format: expected table, markdown or json, got {given.output_format!r}"
        )
    if given.rounds is not None and given.rounds < MIN_ROUNDS:
        raise SeqbenchError(
            f"--rounds: expected at least {MIN_ROUNDS} (pairs for a 95% interval), got {given.rounds}"
        )
    check_threshold(given.threshold)
    axes, settings = requested(given)
    settings["rounds"] = given.rounds or AB_ROUNDS
    config = resolve_config(given.suite, axes=axes, settings=settings)
    least = max(config.measure.min_repeats, ROUND_SAMPLES * config.measure.rounds)
    measure = dataclasses.replace(
        config.measure, min_repeats=least, max_repeats=max(config.measure.max_repeats, least)
    )
    config = dataclasses.replace(
        config, measure=measure, ceiling=False, executor="local", isolate=True
    )
    plan = session.make_plan(config)
    err = stderr()
    config, warning = session.choose_threads(config, system.look())
    if warning:
        err.print(f"warning: {warning}", markup=False)
    devices = [c.device for c in plan.cells]
    here = session.environment(config, devices, _NoExecutor())
    with checked_out((given.baseline, given.candidate), given.repo) as versions:
        runs, schedulers = [], []
        for side, version in zip(("baseline", "candidate"), versions, strict=True):
            env = _environment(version, config, devices, here)
            label = f"ab-{side}"
            run_ = create_run(
                given.out,
                label=label,
                config={**config.to_dict(), "label": label},
                env=env,
                plan=[c.cell_id for c in plan.cells],
            )
            run_.meta["ab"] = {"side": side, "version": version.name, "commit": version.commit}
            runs.append(run_)
            executor = CellWorkerExecutor(version.launch)
            if config.count_instructions:  # each version counted in its own simulated worker
                executor = CountingExecutor(executor, version.launch, config.count_steps)
                run_.meta["env"].update(executor.describe())
            schedulers.append(Scheduler(config, executor, run_))
        paired = PairedRun(schedulers[0], schedulers[1], plan.cells)
        try:
            with (
                sigterm_as_interrupt() as stopped,
                schedulers[0].executor,
                schedulers[1].executor,
                make_progress(err, disable=given.output_format != "table") as progress,
            ):
                task = progress.add_task("starting", total=None)
                for event in paired:
                    stopped()
                    if isinstance(event, CellStarted):
                        where = f"round {event.round}/{config.measure.rounds} {event.cell.cell_id}"
                        progress.update(task, total=event.total, description=where)
                    else:
                        progress.advance(task)
        except KeyboardInterrupt:
            for run_ in runs:
                session.finish(run_, "interrupted")
            err.print(
                f"interrupted: what was measured is saved in {runs[0].path} and {runs[1].path}"
            )
            raise typer.Exit(130) from None
    for side, (run_, other) in enumerate(zip(runs, reversed(runs), strict=True)):
        # The per-round figures the verdict comes from, kept for whoever checks it later.
        run_.meta["ab"]["partner"] = other.run_id
        run_.meta["ab"]["rounds"] = {
            cell_id: pairs.baseline if side == 0 else pairs.candidate
            for cell_id, pairs in paired.pairs.items()
        }
        session.finish(run_, "complete")
    result = compare_paired(runs[0], runs[1], paired.pairs, threshold=given.threshold)
    beside = None
    if all(counted(run_) for run_ in runs):  # --count-instructions: gated on counts too
        beside = compare_runs(*runs, metric="instructions", allow_missing=True,
                              threshold=default_threshold("instructions"))  # fmt: skip
    verdict = gate(result, fail_on_improvement=given.fail_on_improvement, beside=beside)
    summary = format_comparison_summary(result)
    summary.append(f"versions: {given.baseline} -> {given.candidate}; runs saved in {given.out}")
    show_comparison(result, summary, verdict, given.output_format, beside=beside)


app.command(name="ab")(user_errors(declare(AB_OPTIONS)(ab)))
