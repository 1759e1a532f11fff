"""`seqbench history`: every cell's median across the saved runs, in commit order, with the
commits where it stepped; `--fail-on-step` makes it a gate."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import typer

from seqbench.cli.app import app
from seqbench.cli.common import (
    FILTER_COLUMNS,
    filter_option,
    root_option,
    stderr,
    stdout,
    user_errors,
    write_file,
    write_image,
)
from seqbench.cli.options import path_value
from seqbench.core.errors import SeqbenchError
from seqbench.core.settings import THRESHOLD


def _fraction(value: float, flag: str, upper: float = math.inf) -> None:
    if not (math.isfinite(value) and 0 < value < upper):
        raise SeqbenchError(f"{flag}: expected a number between 0 and {upper:g}, got {value}")


@app.command()
@user_errors
def history(
    runs: list[str] | None = typer.Argument(
        None,
        help="Runs to line up (ids, folders, or rows files with their .meta.json); default: every run under --root.",
    ),
    arch: str | None = filter_option("arch"),
    mode: str | None = filter_option("mode"),
    device: str | None = filter_option("device"),
    task: str | None = filter_option("task"),
    order: str = typer.Option(
        "auto",
        help="commit (the measured commit's time), run (when the run was made), or auto: commit when every run records its commit's time.",
    ),
    out: Path | None = typer.Option(
        None, help="Also draw every cell's history to this .png or .svg file.", parser=path_value
    ),
    html_out: Path | None = typer.Option(
        None,
        "--html",
        help="Also write the history as one self-contained HTML page (inline SVG).",
        parser=path_value,
    ),
    points: bool = typer.Option(
        False, "--points", help="List every run of every cell (shown anyway for a single cell)."
    ),
    output_format: str = typer.Option(
        "table", "--format", help="table, markdown (for a CI job summary) or json."
    ),
    fail_on_step: bool = typer.Option(
        False,
        "--fail-on-step",
        help="Exit 1 when a cell's latest level began with a step slower than --threshold (cells of the latest run's environment).",
    ),
    threshold: float = typer.Option(
        THRESHOLD, help="With --fail-on-step: the slowdown (fraction) a step must exceed to fail."
    ),
    min_step: float = typer.Option(
        0.05, help="Smaller changes (fraction) are never reported as steps."
    ),
    alpha: float = typer.Option(
        0.01, help="Significance a step needs (two-sided Mann–Whitney on the two levels)."
    ),
    penalty: float = typer.Option(
        1.5, help="Cost of one more change point, × ln(runs) in noise units: higher finds fewer."
    ),
    root: Path = root_option(),
) -> None:
    """Show each cell's median over the saved runs and the commits where it stepped.

    Runs are ordered by the time of the commit they measured (or by when they ran), and
    runs from different environments (device, CPU, library versions, threads, subnormal
    and TF32 settings) form separate series. A step is a change of level found by a
    penalised piecewise-constant fit on the log medians, confirmed by a Mann–Whitney test
    of the runs on either side and at least --min-step large; it is named by the first
    commit on the new level, with its size, interval and evidence. A step needs three runs
    on the new level to be told from an outlier.

    Exit codes: 0 done; 1 with --fail-on-step, a slowdown step into some cell's current
    level; 2 bad input.
    """
    from seqbench.cli.select import select_rows
    from seqbench.judge.changepoints import Settings
    from seqbench.judge.history import build_history, gate_steps, gather_runs

    if output_format not in ("table", "markdown", "json"):
        raise SeqbenchError(f"--format: expected table, markdown or json, got {output_format!r}")
    _fraction(threshold, "--threshold")
    _fraction(min_step, "--min-step")
    _fraction(alpha, "--alpha", 1)
    _fraction(penalty, "--penalty")
    fmt = None
    from seqbench.storage import check_writable

    # Before anything is printed: a refused file must not follow a full table.
    for path, flag in ((out, "--out"), (html_out, "--html")):
        if path is not None:
            check_writable(path, flag, special_ok=True)
    if out is not None or html_out is not None:
        from seqbench.core.errors import require
        from seqbench.output.plots import image_format

        fmt = image_format(out) if out is not None else "svg"
        require("matplotlib", "a plot file")
    filters = dict(zip(FILTER_COLUMNS, (arch, mode, device, task), strict=True))
    found, skipped = gather_runs(runs or [], root)
    result = build_history(
        found,
        select=lambda rows: select_rows(rows, filters, what="these runs"),
        order=order,
        settings=Settings(penalty=penalty, alpha=alpha, min_step=min_step),
        skipped=skipped,
    )
    failing = gate_steps(result, threshold) if fail_on_step else []
    _show(result, output_format, points, failing, threshold if fail_on_step else None)
    if out is not None:
        from seqbench.output.history import render_history_image

        write_image(out, render_history_image(result, fmt))
    if html_out is not None:
        from seqbench.output.history import format_history_report
        from seqbench.storage import atomic_write

        page = format_history_report(result, _notes(result, failing, fail_on_step, threshold))
        write_file(html_out, lambda: atomic_write(html_out, page), flag="--html")
        stderr().print(f"wrote {html_out}", markup=False)
    if failing:
        raise typer.Exit(1)


def _notes(result, failing, fail_on_step: bool, threshold: float) -> list[str]:
    from seqbench.output.history import format_history_notes

    return format_history_notes(result) + _gate_lines(failing, threshold if fail_on_step else None)


def _gate_lines(failing, threshold: float | None) -> list[str]:
    from seqbench.output.history import cell_labels, format_percent, short_commit

    if threshold is None:
        return []
    if not failing:
        return [f"PASS: no cell's current level began with a slowdown over {threshold:.0%}"]
    labels, _ = cell_labels([s.cell for s, _ in failing])
    return [
        f"FAIL: {label} stepped {format_percent(step.ratio)} at "
        f"{short_commit(s.first_after(step.index).commit)} (over {threshold:.0%})"
        for label, (s, step) in zip(labels, failing, strict=True)
    ]


def _show(result, output_format: str, points: bool, failing, threshold) -> None:
    from seqbench.output.history import (
        format_history_notes,
        format_history_summary,
        format_series,
        format_steps,
    )

    lines = format_history_notes(result) + _gate_lines(failing, threshold)
    if output_format == "json":
        data = dataclasses.asdict(result)
        data["failing"] = [
            {"cell": s.cell.cell_id, "environment": s.environment, "ratio": st.ratio}
            for s, st in failing
        ]
        stdout().print_json(data=data)
        return
    summary, steps = format_history_summary(result), format_steps(result)
    title = f"history of {len(result.series)} cell(s) over {result.runs} runs"
    if output_format == "markdown":
        from seqbench.output.layout import format_markdown

        text = format_markdown(summary, title=title)
        if steps.cells:
            text += "\n" + format_markdown(steps, title="steps")
        print(text + "".join(f"\n- {line}" for line in lines))
        return
    from seqbench.output.terminal import fitted_table

    console = stdout()
    console.print(fitted_table(summary, title, console))
    if steps.cells:
        console.print(fitted_table(steps, "steps: the first commit on each new level", console))
    else:
        console.print("no steps found", markup=False)
    if points or len(result.series) == 1:
        for s in result.series:
            console.print(fitted_table(format_series(s), s.cell.cell_id, console))
    for line in lines:
        stderr().print(line, markup=False)
