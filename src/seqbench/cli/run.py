"""`seqbench run`: measure a matrix, with a progress bar, then show and save the rows."""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
from pathlib import Path
from typing import Any

import typer

from seqbench.cli.app import app
from seqbench.cli.common import print_rows, sigterm_as_interrupt, stderr, user_errors
from seqbench.cli.options import (
    AXIS,
    COMMAND,
    RESULTS_ROOT,
    SETTING,
    SWITCH_AXIS,
    THREADS,
    Given,
    Option,
    declare,
)
from seqbench.errors import SeqbenchError
from seqbench.suites import suite_names

# Results could not be written (a full disk, a folder removed): every finished cell is kept.
EXIT_CANNOT_SAVE = 74

# What `run --format` prints on stdout: the Rich table, or an exporter's text.
RUN_FORMATS = ("table", "csv", "json", "markdown")

RUN_OPTIONS: tuple[Option, ...] = (
    Option(
        "suite",
        f"Suite file, or the name of one: {', '.join(suite_names())} (from ./benchmarks and "
        "seqbench's own). Default: quick.",
        kind=COMMAND,
        flags=("--suite", "-s"),
    ),
    # -- the matrix
    Option(
        "arch",
        "Architectures, comma-separated (see `seqbench archs`), or package.module:factory.",
        kind=AXIS,
    ),
    Option("seq_len", "Sequence lengths, comma-separated.", kind=AXIS),
    Option("batch_size", "Batch sizes, comma-separated.", kind=AXIS),
    Option("hidden", "Hidden units (filters for conv1d), comma-separated.", kind=AXIS),
    Option("layers", "Stacked recurrent layers, comma-separated.", kind=AXIS),
    Option(
        "bidirectional",
        "Bidirectional recurrent layers.",
        kind=SWITCH_AXIS,
        type=bool,
        switch=True,
    ),
    Option("dropout", "Input dropout rates in [0, 1), one mask per sequence.", kind=AXIS),
    Option(
        "recurrent_dropout",
        "Variational recurrent dropout rates in [0, 1) (training only; runs a per-step loop).",
        kind=AXIS,
    ),
    Option("vocab", "Vocabulary sizes of the token embedding.", kind=AXIS),
    Option("embed", "Embedding widths.", kind=AXIS),
    Option("device", "Devices: cpu, cuda, cuda:N, mps or auto, comma-separated.", kind=AXIS),
    Option("dtype", "float32, bfloat16 or float16 (autocast), comma-separated.", kind=AXIS),
    Option(
        "mode",
        "infer, train, step (one token of streaming inference, state carried), comma-separated.",
        kind=AXIS,
    ),
    Option(
        "match_params",
        "Choose each architecture's width so its core has about this many parameters (comma list; 0: off).",
        kind=AXIS,
    ),
    Option(
        "task",
        "Accuracy tasks, comma-separated: adding, copy, digits, imdb, or none (speed only, the default).",
        kind=AXIS,
    ),
    # -- training a task
    Option(
        "train_steps", "Training steps per task cell (default 200 unless --train-time).", type=int
    ),
    Option("train_time", "Seconds of training per task cell, at most.", type=float),
    Option(
        "target",
        "Record the training time until the task metric first reaches this (time_to_target_s).",
        type=float,
    ),
    Option(
        "eval_every", "Steps between evaluations while chasing --target (default 100).", type=int
    ),
    Option(
        "optimizer",
        "adam (with gradient clipping) or rmsprop; default: the task's (adam for synthetic tasks, rmsprop for imdb).",
    ),
    Option("lr", "Learning rate (default 1e-3).", type=float),
    Option("clip", "Gradient-norm clipping with Adam (default 1.0; 0 turns it off).", type=float),
    Option("data", "A local dataset: Keras' imdb.npz or the aclImdb folder (imdb task)."),
    Option(
        "grad_flow",
        "Also measure each cell's memory horizon (see `seqbench gradflow`).",
        type=bool,
        switch=True,
    ),
    # -- how the model runs
    Option(
        "compile",
        "Run the models through torch.compile (compile time is reported apart, never timed).",
        kind=SWITCH_AXIS,
        type=bool,
        switch=True,
    ),
    Option("compile_backend", "torch.compile backend (default inductor)."),
    Option(
        "tf32",
        "Let CUDA float32 matmuls and cuDNN use TensorFloat-32 (default on; recorded per row).",
        type=bool,
        switch=True,
    ),
    Option(
        "ceiling",
        "Measure each device's matmul FLOP/s once per run, for the mfu column (default on).",
        type=bool,
        switch=True,
    ),
    # -- how each cell is timed
    Option("min_time", "Seconds of timed steps per cell, at least (default 0.5).", type=float),
    Option("min_repeats", "Timing samples per cell, at least (default 5).", type=int),
    Option("max_repeats", "Timing samples per cell, at most (default 1000).", type=int),
    Option(
        "precision",
        "Stop a cell early once its median's 95% CI half-width is this fraction (0 = off).",
        type=float,
    ),
    Option(
        "warmup_time",
        "Seconds of untimed warm-up steps per cell, at least (default 0.1).",
        type=float,
    ),
    Option(
        "rounds",
        "Passes over the whole matrix; each cell's samples are pooled across them, so a burst of interference touches one pass (default 1).",
        type=int,
    ),
    # -- the process
    THREADS,
    Option("seed", "Seed for weights and inputs (default 0).", type=int),
    Option(
        "flush_denormal",
        "Flush subnormal floats to zero on the CPU (default on, as in Keras).",
        type=bool,
        switch=True,
    ),
    # -- where cells run
    Option(
        "executor",
        "local (default), or ray: every cell a Ray task in a fresh worker, on any node of the cluster.",
    ),
    Option(
        "ray_address",
        "With --executor ray: 'auto' or an address joins that cluster; default: a local cluster.",
    ),
    Option(
        "cpu_cells_per_node",
        "With --executor ray: CPU cells that may run on one node at once, sharing its CPUs (default 1).",
        type=int,
    ),
    Option(
        "isolate",
        "Run each cell in a fresh process: a crash or leak costs one cell, and host memory is measured cleanly.",
        type=bool,
        switch=True,
    ),
    Option(
        "cell_timeout",
        "Seconds a cell may take before it is recorded as 'timeout' and the run goes on.",
        type=float,
    ),
    Option(
        "skip_larger",
        "After an OOM cell, skip larger cells of the same model on that device (default on).",
        type=bool,
        switch=True,
    ),
    # -- the run itself
    Option("label", "A short name for the run (default: the suite's)."),
    Option(
        "resume",
        "Finish an interrupted run: its id, its folder, or 'latest'. Uses the run's saved configuration.",
        kind=COMMAND,
    ),
    Option(
        "retry_errors",
        "With --resume: measure the cells that ended in an error or a timeout again.",
        kind=COMMAND,
        type=bool,
        default=False,
        flags=("--retry-errors",),
    ),
    RESULTS_ROOT,
    Option(
        "csv",
        "Also write the rows to this CSV (with .samples.csv and .meta.json beside it).",
        kind=COMMAND,
        type=Path,
    ),
    Option(
        "output_format",
        "What to print on stdout at the end: table, csv, json or markdown (progress and notes go to stderr).",
        kind=COMMAND,
        default="table",
        flags=("--format",),
    ),
    Option(
        "quiet",
        "No progress bar and nothing on stdout: only warnings and the final 'saved ...' line, on stderr.",
        kind=COMMAND,
        type=bool,
        default=False,
        flags=("--quiet", "-q"),
    ),
)


def requested(given: Given) -> tuple[dict[str, tuple], dict[str, Any]]:
    """The axes and settings the command line sets, each checked as a suite's would be."""
    from seqbench.suites import check_setting, parse_list

    axes: dict[str, tuple] = {}
    for option, value in given.of_kind(AXIS, SWITCH_AXIS):
        axes[option.name] = (
            (value,) if option.kind == SWITCH_AXIS else parse_list(value, option.name, option.flag)
        )
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
    from seqbench import session
    from seqbench.config import resolve_config
    from seqbench.execute import make_executor

    config = resolve_config(given.suite, axes=axes, settings=settings)
    plan = session.make_plan(config)
    measured = _threads(config)
    with make_executor(measured) as executor:
        env = session.environment(measured, [c.device for c in plan.cells], executor)
        # The configuration as asked is what a resume holds the run to.
        run_ = session.new_run(config, plan, env, given.out, given.csv)
        try:
            _measure(measured, plan, run_, executor, env, given)
        finally:
            run_.close()  # after an error: let a resume have the run


def _resume(given: Given, axes: dict, settings: dict) -> None:
    from seqbench import session
    from seqbench.config import PROTECTION, apply_overrides, resolve_config
    from seqbench.execute import make_executor
    from seqbench.storage import check_writable

    run_, config = session.reopen(given.resume, given.out)
    try:
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
            _measure(measured, plan, run_, executor, run_.meta["env"], given)
    finally:
        run_.close()  # a refused or failed resume leaves the run to the next one


def _threads(config):
    """The configuration with its threads decided for this machine (and a warning line)."""
    from rich.markup import escape

    from seqbench import session, system

    measured, warning = session.choose_threads(config, system.look())
    if warning:
        stderr().print(f"[yellow]warning:[/] {escape(warning)}")
    return measured


def _measure(config, plan, run_, executor, env: dict, given: Given) -> None:
    """Measure the plan with a progress bar, then show the rows and pick the exit code."""
    from seqbench import session
    from seqbench.execute import CellFinished, CellStarted, Scheduler
    from seqbench.noise import WIDE_CI
    from seqbench.output.terminal import make_progress
    from seqbench.output.text import format_env_line

    err = stderr()
    for device, reason in plan.unavailable.items():
        err.print(f"[yellow]warning:[/] {reason}: skipping its {plan.count_on(device)} cells")
    rounds = config.measure.rounds
    scheduler = Scheduler(config, executor, run_)
    try:
        with sigterm_as_interrupt(), make_progress(err, disable=given.quiet) as progress:
            task = progress.add_task("starting", total=None)
            for event in scheduler.iter_plan(plan.cells):
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
        err.print(f"interrupted: {len(run_.rows)} of {total} cells are saved in {run_.path}")
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

    if not given.quiet:
        print_rows(run_, run_.rows, given.output_format, env)
        err.print(format_env_line(env))
    counts = {
        s: sum(r.status == s for r in run_.rows)
        for s in ("ok", "skipped", "oom", "timeout", "error")
    }
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    err.print(f"saved {len(run_.rows)} cells ({summary}) to {run_.path}")
    if run_.extra_csv is not None and not given.quiet:
        err.print(f"rows also written to {run_.extra_csv}")
    noisy = sum(bool(r.noisy) for r in run_.rows if r.status == "ok")
    if noisy:
        steadier = "--rounds 3" if config.threads == 1 else "--threads 1 --rounds 3"
        err.print(
            f"[yellow]warning:[/] {noisy} of {counts['ok']} measured cells are noisy (an interval "
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
