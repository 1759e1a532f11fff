"""`seqbench run`: measure a matrix, with a progress bar, then show and save the rows."""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
from typing import Any

import typer

from seqbench.cli.app import app
from seqbench.cli.common import print_rows, sigterm_as_interrupt, stderr, user_errors
from seqbench.cli.options import (
    AXIS,
    SETTING,
    SWITCH_AXIS,
    Given,
    declare,
)
from seqbench.cli.run_options import RUN_FORMATS, RUN_OPTIONS
from seqbench.core.errors import SeqbenchError

# Results could not be written (a full disk, a folder removed): every finished cell is kept.
EXIT_CANNOT_SAVE = 74


def requested(given: Given) -> tuple[dict[str, tuple], dict[str, Any]]:
    """The axes and settings the command line sets, each checked as a suite's would be."""
    from seqbench.plan.suites import check_setting, parse_list

    axes: dict[str, tuple] = {}
    for option, value in given.of_kind(AXIS, SWITCH_AXIS):
        axes[option.name] = (
            (value,) if option.kind == SWITCH_AXIS else parse_list(value, option.name, option.flag)
        )
    seeds = getattr(given, "seeds", None)
    if seeds is not None:
        if "seed" in axes:
            raise SeqbenchError("--seed and --seeds: give one of them")
        if seeds < 1:
            raise SeqbenchError(f"--seeds: expected a positive number of seeds, got {seeds}")
        axes["seed"] = tuple(range(seeds))
    settings = {
        option.name: check_setting(option.name, value, option.flag)
        for option, value in given.of_kind(SETTING)
    }
    return axes, settings


def run(given: Given) -> None:
    """Measure a matrix of architectures x lengths x batch sizes x devices x dtypes x modes.

    With no options, runs the quick suite: every seed architecture at two lengths, inference
    and training, on the CPU, in well under a minute. Results are saved after every cell;
    Ctrl-C stops after saving what finished, and --resume finishes the rest.
    """
    if given.output_format not in RUN_FORMATS:
        raise SeqbenchError(
            f"--format: expected one of {', '.join(RUN_FORMATS)}; got {given.output_format!r}"
        )
    axes, settings = requested(given)
    if given.retry_errors and given.resume is None:
        raise SeqbenchError(
            "--retry-errors measures a resumed run's failed cells again: give --resume"
        )
    if given.resume is None:
        _start(given, axes, settings)
    else:
        _resume(given, axes, settings)


def _start(given: Given, axes: dict, settings: dict) -> None:
    from seqbench.execute import make_executor, session
    from seqbench.plan.config import resolve_config

    config = resolve_config(given.suite, axes=axes, settings=settings)
    plan = session.make_plan(config)
    measured = _threads(config)
    with make_executor(measured) as executor:
        env = session.environment(measured, [c.device for c in plan.cells], executor)
        # The configuration as asked is what a resume holds the run to.
        run_ = session.new_run(config, plan, env, given.out, given.csv)
        try:
            _measure(measured, plan, run_, executor, given)
        finally:
            run_.close()  # after an error: let a resume have the run
    _report(plan, run_, env, given)


def _resume(given: Given, axes: dict, settings: dict) -> None:
    from seqbench.execute import make_executor, session
    from seqbench.plan.config import PROTECTION, apply_overrides, resolve_config
    from seqbench.storage import check_writable

    run_, config = session.reopen(given.resume, given.out)
    try:
        if run_.meta.get("ab"):
            raise SeqbenchError(
                f"{run_.run_id} is one side of a `seqbench ab` comparison: its cells were measured "
                "against another version's, round by round; run the comparison again instead"
            )
        if given.suite or axes or settings:  # what the command line says must not change it
            asked = (
                resolve_config(given.suite, axes=axes, settings=settings)
                if given.suite
                else apply_overrides(config, axes, settings)
            )
            session.check_same_configuration(run_, config, asked)
            changed = {
                k: getattr(asked, k) for k in PROTECTION if getattr(asked, k) != getattr(config, k)
            }
            if changed:  # recorded: how the rest of the run's cells were protected
                config = dataclasses.replace(config, **changed)
                run_.meta.setdefault("protection_changes", []).append(changed)
        if given.csv is not None:
            check_writable(given.csv, "--csv")
        run_.extra_csv = given.csv
        if given.retry_errors:
            retried = run_.forget_failures(("error", "timeout"))
            run_.meta.setdefault("retried", []).append(retried)
        plan = session.make_plan(config)
        if config.threads is None and config.executor != "ray":  # as many as it began with
            config = dataclasses.replace(config, threads=run_.meta["env"].get("threads"))
        measured = _threads(config)
        with make_executor(measured) as executor:
            devices = list(run_.meta["env"].get("device_names", {}))
            session.check_same_environment(run_, session.environment(measured, devices, executor))
            _measure(measured, plan, run_, executor, given)
    finally:
        run_.close()  # a refused or failed resume leaves the run to the next one
    _report(plan, run_, run_.meta["env"], given)


def _threads(config):
    """The configuration with its threads decided for this machine (and a warning line)."""
    from rich.markup import escape

    from seqbench.execute import session
    from seqbench.machine import system

    measured, warning = session.choose_threads(config, system.look())
    if warning:
        stderr().print(f"[yellow]warning:[/] {escape(warning)}")
    return measured


def _measure(config, plan, run_, executor, given: Given) -> None:
    """Measure the plan with a progress bar, and close the run; an interrupt or a failure to
    save says how to resume."""
    from rich.markup import escape

    from seqbench.execute import CellFinished, CellStarted, Scheduler, session
    from seqbench.output.terminal import make_progress
    from seqbench.output.text import format_plural

    err = stderr()
    for device, reason in plan.unavailable.items():
        err.print(
            f"[yellow]warning:[/] {reason}: skipping its {format_plural(plan.count_on(device), 'cell')}"
        )
    for line in plan.warnings:
        err.print(f"[yellow]warning:[/] {escape(line)}")
    if config.count_instructions:
        from seqbench.execute.callgrind import unavailable_reason

        reason = unavailable_reason()
        if reason:
            err.print(f"warning: {reason}; the cells are timed only", markup=False)
    rounds = config.measure.rounds
    scheduler = Scheduler(config, executor, run_)
    try:
        with sigterm_as_interrupt() as stopped, make_progress(err, disable=given.quiet) as progress:
            task = progress.add_task("starting", total=None)
            for event in scheduler.iter_plan(plan.cells):
                stopped()
                if isinstance(event, CellStarted):
                    where = f"round {event.round}/{rounds} " if rounds > 1 else ""
                    # Completions move the bar: with Ray, cells start long before they finish.
                    progress.update(task, total=event.total, description=where + event.cell.cell_id)
                elif isinstance(event, CellFinished):
                    progress.advance(task)
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            session.finish(run_, "interrupted")
        total = len(run_.meta["plan"])
        err.print(
            f"interrupted: {len(run_.rows)} of {format_plural(total, 'cell')} "
            f"{'is' if len(run_.rows) == 1 else 'are'} saved in {run_.path}"
        )
        err.print(f"resume with: {_resume_command(run_, given)}", markup=False, soft_wrap=True)
        raise typer.Exit(130) from None
    except OSError as exc:  # the disk filled up, the folder went away...
        with contextlib.suppress(OSError):
            session.finish(run_, "interrupted")
        err.print(
            f"error: cannot save the results in {run_.path} ({exc.strerror or exc}); the cells "
            f"finished before are kept there: make room and resume with: {_resume_command(run_, given)}",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_CANNOT_SAVE) from None
    session.finish(run_, "complete")


def _report(plan, run_, env: dict, given: Given) -> None:
    """Show the rows and pick the exit code, once the executor has let go of its backend
    (a Ray cluster's messages must not land in the middle of --format csv)."""
    from seqbench.judge.noise import WIDE_CI
    from seqbench.output.text import format_env_line, format_plural

    err = stderr()
    if not given.quiet:
        print_rows(run_, run_.rows, given.output_format, env)
        err.print(format_env_line(env))
    counts = {
        s: sum(r.status == s for r in run_.rows)
        for s in ("ok", "skipped", "oom", "timeout", "error")
    }
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    err.print(f"saved {format_plural(len(run_.rows), 'cell')} ({summary}) to {run_.path}")
    if run_.extra_csv is not None and not given.quiet:
        err.print(f"rows also written to {run_.extra_csv}")
    noisy = sum(bool(r.noisy) for r in run_.rows if r.status == "ok")
    if noisy:
        steadier = "--rounds 3" if env.get("threads") == 1 else "--threads 1 --rounds 3"
        err.print(
            f"[yellow]warning:[/] {noisy} of {format_plural(counts['ok'], 'measured cell')} "
            f"{'is' if noisy == 1 else 'are'} noisy (an interval "
            f"wider than ±{WIDE_CI:.0%}, or other work on their CPUs; see the noise column): "
            f"rerun on a quieter machine, or with {steadier}"
        )
    unavailable = {r.device for r in run_.rows if r.status == "skipped"} & set(plan.unavailable)
    if counts["error"] or unavailable:
        raise typer.Exit(1)


def _resume_command(run_, given: Given) -> str:
    """How to finish the run, as a line that pastes into a shell (paths may hold spaces)."""
    parts = ["seqbench", "run", "--resume", str(run_.path)]
    if given.csv is not None:
        parts += ["--csv", str(given.csv)]
    return shlex.join(parts)


app.command(name="run")(user_errors(declare(RUN_OPTIONS)(run)))
