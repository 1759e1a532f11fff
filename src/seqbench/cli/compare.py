"""`seqbench compare`: two runs, cell by cell, and an exit code a CI job can gate on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from seqbench.cli.app import app
from seqbench.cli.common import TABLE_ROWS, root_option, stderr, stdout, user_errors
from seqbench.core.errors import SeqbenchError
from seqbench.core.settings import THRESHOLD, THRESHOLDS


@app.command()
@user_errors
def compare(
    baseline: str = typer.Argument(
        ...,
        help="The reference run: a run id, a run folder, 'latest', or a results CSV with its .samples.csv.",
    ),
    candidate: str = typer.Argument(..., help="The run to judge, in the same forms."),
    threshold: float = typer.Option(
        None,
        help="A change smaller than this fraction is never a regression (default: "
        f"{THRESHOLD:g} = {THRESHOLD:.0%}; {THRESHOLDS['instructions']:g} for instructions).",
        show_default=False,
    ),
    metric: str = typer.Option(
        "time",
        help="What to gate on: time (from raw samples), memory (exact), accuracy (the task "
        "metric) or instructions (counted by run --count-instructions; exact). Runs with "
        "counts are also gated on instructions beside time.",
    ),
    output_format: str = typer.Option(
        "table", "--format", help="table, markdown (for CI job summaries and PR comments) or json."
    ),
    allow_env_mismatch: bool = typer.Option(
        False,
        "--allow-env-mismatch",
        help="Compare runs from different devices, library versions, thread counts or subnormal settings.",
    ),
    fail_on_improvement: bool = typer.Option(
        False,
        "--fail-on-improvement",
        help="Also exit 1 on large improvements (they often mean a benchmark broke).",
    ),
    allow_missing: bool = typer.Option(
        False,
        "--allow-missing",
        help="Compare the cells both runs have, when the candidate lacks some of the baseline's.",
    ),
    root: Path = root_option(),
) -> None:
    """Compare two runs cell by cell; exit 1 if a cell got significantly slower than the threshold.

    Exit codes: 0 no regression; 1 at least one regression; 3 too noisy to decide (no
    regression, but one cannot be ruled out: rerun); 2 bad input, an empty or disjoint
    candidate, missing cells (unless --allow-missing), or runs from different environments
    (unless --allow-env-mismatch).
    """
    from seqbench.judge.compare import compare_runs, counted, default_threshold
    from seqbench.judge.gate import gate
    from seqbench.output.tables import format_comparison_summary
    from seqbench.output.text import format_env_differences
    from seqbench.storage import load_run, resolve_run_path

    if output_format not in ("table", "markdown", "json"):
        raise SeqbenchError(f"--format: expected table, markdown or json, got {output_format!r}")
    paths = [resolve_run_path(ref, root).resolve() for ref in (baseline, candidate)]
    if paths[0] == paths[1]:  # `compare latest latest`, said before either is read
        raise SeqbenchError(
            f"{baseline} and {candidate} are the same run ({paths[0].parent.name}): a run "
            "compared with itself says nothing; give two runs (or `seqbench ab` two versions)"
        )
    runs = load_run(baseline, root), load_run(candidate, root)
    result = compare_runs(
        *runs,
        metric=metric,
        threshold=default_threshold(metric) if threshold is None else threshold,
        allow_missing=allow_missing,
    )
    beside = None
    if metric == "time" and all(counted(run) for run in runs):
        beside = compare_runs(
            *runs,
            metric="instructions",
            threshold=default_threshold("instructions"),
            allow_missing=allow_missing,
        )
    if result.env_differences and not allow_env_mismatch:
        raise SeqbenchError(
            "the runs come from different environments: "
            + format_env_differences(result.env_differences)
            + "; pass --allow-env-mismatch to compare them anyway"
        )
    verdict = gate(result, fail_on_improvement=fail_on_improvement, beside=beside)
    show_comparison(
        result, format_comparison_summary(result), verdict, output_format, beside=beside
    )


def _table_cells(cells: list) -> list:
    """The cells the table shows: all of them up to TABLE_ROWS; past it, every cell whose
    verdict is not `unchanged`, then unchanged ones to the limit, in the comparison's order."""
    if len(cells) <= TABLE_ROWS:
        return cells
    changed = [i for i, c in enumerate(cells) if c.verdict != "unchanged"]
    rest = [i for i, c in enumerate(cells) if c.verdict == "unchanged"]
    keep = set(changed[:TABLE_ROWS]) | set(rest[: max(TABLE_ROWS - len(changed), 0)])
    return [c for i, c in enumerate(cells) if i in keep]


def show_comparison(result, summary: list[str], verdict, output_format: str, beside=None) -> None:
    """The comparison on stdout (table, markdown or JSON), its summary lines, and the exit
    code: what `compare` and `ab` print alike. `beside` is the instruction counts'
    comparison, when both runs were counted: its verdicts are summarised after time's."""
    from seqbench.output.layout import format_markdown
    from seqbench.output.tables import format_comparison, format_comparison_summary
    from seqbench.output.terminal import comparison_table

    console = stdout()
    if beside is not None:
        summary = summary + format_comparison_summary(beside)[:1]
    summary = summary + verdict.lines()
    if output_format == "json":
        console.print_json(
            data={
                **result.to_dict(),
                **({"instructions": beside.to_dict()} if beside is not None else {}),
                "failures": verdict.failures,
                "undecided": verdict.undecided,
                "exit_code": verdict.exit_code,
            }
        )
    elif output_format == "markdown":
        text = format_markdown(
            format_comparison(result), title=f"seqbench compare: {result.metric.name}"
        )
        print(text + "\n" + "\n".join(f"- {line}" for line in summary))
    else:
        shown = _table_cells(result.cells)
        console.print(comparison_table(dataclasses.replace(result, cells=shown), console=console))
        if len(shown) < len(result.cells):
            stderr().print(
                f"showing {len(shown):,} of {len(result.cells):,} cells (the ones not "
                "unchanged first): --format json or markdown has every cell",
                markup=False,
            )
        for line in summary:
            stderr().print(line, markup=False)
    if verdict.exit_code:
        raise typer.Exit(verdict.exit_code)
