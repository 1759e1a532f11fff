"""`seqbench run`: measure a matrix, with a progress bar, then show and save the rows."""

from __future__ import annotations

import contextlib
import shlex
import sys
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
    from seqbench.models.custom import limit_forward
    from seqbench.plan.suites import check_setting, parse_list

    settings = {
        option.name: check_setting(option.name, value, option.flag)
        for option, value in given.of_kind(SETTING)
    }
    # Before the architectures are checked: a user's module is probed under the cell timeout.
    limit_forward(settings.get("cell_timeout"))
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
    return axes, settings


def run(given: Given) -> None:
    """Measure a matrix of architectures x lengths x batch sizes x devices x dtypes x modes.

    With no options, runs the quick suite: every seed architecture at two lengths, inference
    and training, on the CPU, in well under a minute. Results are saved after every cell;
    Ctrl-C stops after saving what finished, and --resume finishes the rest.
    """
    from seqbench.machine.look import Watch

    if given.output_format not in RUN_FORMATS:
        raise SeqbenchError(
            f"--format: expected one of {', '.join(RUN_FORMATS)}; got {given.output_format!r}"
        )
    if given.retry_errors and given.resume is None:
        raise SeqbenchError(
            "--retry-errors measures a resumed run's failed cells again: give --resume"
        )
    # The look at how busy the machine is (0.5 s) goes on while torch is imported and the
    # plan made: this process's own work is not other processes' (machine.look.Watch).
    watch = Watch()
    # The first cell's worker imports torch meanwhile, on the other core (its work is this
    # command's own too). A run that measures in this process, in Ray or a fresh process a
    # cell stops it before any cell starts. Where torch is in this process already (the
    # command called from Python), there is no import for it to overlap.
    from seqbench.execute.isolated import start_ahead

    ready = None
    if "torch" not in sys.modules:
        with contextlib.suppress(OSError):  # no process to spare: the executor says why later
            ready = start_ahead()
            watch.own(ready.pid)
    try:
        from seqbench.execute.session import Session
        from seqbench.plan.suites import resolve_config

        axes, settings = requested(given)
        if given.resume is None:
            config = resolve_config(given.suite, axes=axes, settings=settings)
            session = Session.start(
                config, root=given.root, csv=given.csv, machine=watch, ready=ready
            )
        else:
            session = Session.resume(
                given.resume, root=given.root, suite=given.suite, axes=axes, settings=settings,
                csv=given.csv, retry_errors=given.retry_errors, machine=watch, ready=ready,
            )  # fmt: skip
        _measure(session, given)
    finally:
        if ready is not None:
            ready.close(kill=True)
    _report(session, given)


def _measure(session, given: Given) -> None:
    """Measure the session's plan with a progress bar; an interrupt or a failure to save says
    how to resume. The session finishes the run whichever way this ends."""
    from rich.markup import escape

    from seqbench.execute import CellFinished, CellStarted
    from seqbench.output.terminal import make_progress
    from seqbench.output.text import format_plural

    err = stderr()
    for line in session.notices:
        err.print(f"[yellow]warning:[/] {escape(line)}")
    passes = session.config.measure.passes
    try:
        with (
            session,
            sigterm_as_interrupt() as stopped,
            make_progress(err, disable=given.quiet) as progress,
        ):
            task = progress.add_task("starting", total=None)
            for event in session.measure():
                stopped()
                if isinstance(event, CellStarted):
                    where = f"pass {event.round}/{passes} " if passes > 1 else ""
                    # Completions move the bar: with Ray, cells start long before they finish.
                    progress.update(task, total=event.total, description=where + event.cell.cell_id)
                elif isinstance(event, CellFinished):
                    progress.advance(task)
                else:  # a Notice: other work arrived, and the threads followed
                    progress.console.print(f"[yellow]warning:[/] {escape(event.text)}")
    except KeyboardInterrupt:
        run_ = session.run
        if run_ is None:  # stopped before the run existed: nothing to resume
            err.print("interrupted", markup=False)
            raise typer.Exit(130) from None
        total = run_.meta.plan_size
        err.print(
            f"interrupted: {len(run_.rows)} of {format_plural(total, 'cell')} "
            f"{'is' if len(run_.rows) == 1 else 'are'} saved in {run_.path}"
        )
        err.print(f"resume with: {_resume_command(run_, given)}", markup=False, soft_wrap=True)
        raise typer.Exit(130) from None
    except OSError as exc:  # the disk filled up, the folder went away...
        err.print(f"error: {_cannot_save(session, given, exc)}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_CANNOT_SAVE) from None


def _cannot_save(session, given: Given, exc: OSError) -> str:
    """The line for results that could not be written: where (the run folder, or the --csv
    copy), why, and what was kept."""
    from seqbench.storage import CannotSave

    run_, reason = session.run, exc.strerror or exc
    target = exc.target if isinstance(exc, CannotSave) else None
    copy = target is not None and target == given.csv
    if run_ is None:  # the run could not be created: no folder is left behind
        if target is None:
            raise exc
        where = f"--csv {given.csv}" if copy else str(given.root)
        return f"cannot save the results in {where} ({reason}); nothing was measured"
    resume = f"make room and resume with: {_resume_command(run_, given)}"
    if copy:
        return (
            f"cannot write the rows to --csv {given.csv} ({reason}); the cells finished "
            f"before are kept in {run_.path}: {resume}"
        )
    return (
        f"cannot save the results in {run_.path} ({reason}); the cells finished before are "
        f"kept there: {resume}"
    )


def _report(session, given: Given) -> None:
    """Show the rows and pick the exit code, once the executor has let go of its backend
    (a Ray cluster's messages must not land in the middle of --format csv)."""
    from seqbench.judge.noise import WIDE_CI, noise_advice
    from seqbench.output.text import format_env_line, format_plural

    run_, env, plan = session.run, session.env, session.plan
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
    measured = [r for r in run_.rows if r.status == "ok"]
    noisy = sum(bool(r.noisy) for r in measured)
    if noisy:
        err.print(
            f"[yellow]warning:[/] {noisy} of {format_plural(counts['ok'], 'measured cell')} "
            f"{'is' if noisy == 1 else 'are'} noisy (an interval wider than ±{WIDE_CI:.0%}, "
            "processes that disagree, or other work on their CPUs; see the noise column); "
            "what helps: " + "; ".join(noise_advice(measured)),
            markup=True,
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
