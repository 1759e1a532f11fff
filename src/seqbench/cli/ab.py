"""`seqbench ab`: two versions of the code measured side by side, and a verdict on the change."""

from __future__ import annotations

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
from seqbench.core.settings import THRESHOLD
from seqbench.execute.ab import AB_ROUNDS, MIN_ROUNDS

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
        "A change smaller than this fraction is never a regression.",
        kind=COMMAND,
        type=float,
        default=THRESHOLD,
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


def ab(given: Given) -> None:
    """Measure two versions of the code side by side and judge the change, under load too.

    Each cell gets a fresh process per version, and the two measure it in turns (A B, B A,
    A B, ...) for --rounds rounds, so that whatever else the machine does weighs on both; the
    change is estimated from the per-round pairs of each round's fastest tenth. The output
    and exit codes are compare's: 0 no regression, 1 a regression, 3 too noisy to decide, 2
    bad input.
    """
    from seqbench.cli.compare import show_comparison
    from seqbench.execute import CellStarted
    from seqbench.execute.ab import ABSession
    from seqbench.judge.compare import check_threshold
    from seqbench.judge.gate import judge_ab
    from seqbench.output.tables import format_comparison_summary
    from seqbench.output.terminal import make_progress
    from seqbench.plan.suites import resolve_config

    if given.output_format not in ("table", "markdown", "json"):
        raise SeqbenchError(
            f"--format: expected table, markdown or json, got {given.output_format!r}"
        )
    check_threshold(given.threshold)
    axes, settings = requested(given)
    settings["rounds"] = given.rounds or AB_ROUNDS
    config = resolve_config(given.suite, axes=axes, settings=settings)
    ab_run = ABSession.start(
        config, given.baseline, given.candidate, repo=given.repo, root=given.root
    )
    err = stderr()
    for line in ab_run.notices:
        err.print(f"warning: {line}", markup=False)
    rounds = ab_run.config.measure.rounds
    try:
        with (
            ab_run,
            sigterm_as_interrupt() as stopped,
            make_progress(err, disable=given.output_format != "table") as progress,
        ):
            task = progress.add_task("starting", total=None)
            for event in ab_run.measure():
                stopped()
                if isinstance(event, CellStarted):
                    where = f"round {event.round}/{rounds} {event.cell.cell_id}"
                    progress.update(task, total=event.total, description=where)
                else:
                    progress.advance(task)
    except KeyboardInterrupt:
        if len(ab_run.runs) < 2:
            err.print("interrupted", markup=False)
        else:
            err.print(
                f"interrupted: what was measured is saved in {ab_run.baseline.path} and "
                f"{ab_run.candidate.path}"
            )
        raise typer.Exit(130) from None
    judged = judge_ab(
        ab_run.baseline, ab_run.candidate, ab_run.pairs,
        threshold=given.threshold, fail_on_improvement=given.fail_on_improvement,
    )  # fmt: skip
    summary = format_comparison_summary(judged.comparison)
    summary.append(f"versions: {given.baseline} -> {given.candidate}; runs saved in {given.root}")
    show_comparison(
        judged.comparison, summary, judged.verdict, given.output_format, beside=judged.beside
    )


app.command(name="ab")(user_errors(declare(AB_OPTIONS)(ab)))
