"""`seqbench report`: a saved run, or two compared, as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path

import typer

from seqbench.cli.app import app
from seqbench.cli.common import (
    FILTER_COLUMNS,
    RUN_ARGUMENT_HELP,
    filter_option,
    load_selected,
    root_option,
    stderr,
    user_errors,
    write_file,
)
from seqbench.cli.options import path_value
from seqbench.core.errors import SeqbenchError, require


@app.command()
@user_errors
def report(
    run: str = typer.Argument(..., help=RUN_ARGUMENT_HELP),
    candidate: str | None = typer.Argument(
        None, help="A second run: the report compares RUN (the baseline) with it."
    ),
    html: Path = typer.Option(..., "--html", help="The HTML file to write.", parser=path_value),
    arch: str | None = filter_option("arch"),
    mode: str | None = filter_option("mode"),
    device: str | None = filter_option("device"),
    task: str | None = filter_option("task"),
    metric: str = typer.Option(
        "time", help="With two runs: what to compare, time, memory or accuracy."
    ),
    threshold: float = typer.Option(
        0.10, help="With two runs: the change below which a cell is unchanged (0.10 = 10%)."
    ),
    allow_env_mismatch: bool = typer.Option(
        False,
        "--allow-env-mismatch",
        help="With two runs: compare them although their environments differ.",
    ),
    root: Path = root_option(),
) -> None:
    """Write a saved run, or two compared, as one self-contained HTML file.

    One run: its environment, the results table (click a header to sort), the scaling
    plots with each point's interval, accuracy against cost when a task scored the cells,
    how cost grows with length, and the cells that failed or were flagged noisy. Two runs
    (baseline, then candidate): the comparison table and a plot of each cell's ratio
    with its interval, beside both runs' scaling plots. The file fetches nothing when
    opened: plots are inline SVG, styles inline, and a few lines of script sort tables.
    """
    from seqbench.storage import atomic_write

    if html.suffix.lower() not in (".html", ".htm"):
        raise SeqbenchError(f"--html {html}: give a file name ending in .html")
    require("matplotlib", "an HTML report")
    filters = dict(zip(FILTER_COLUMNS, (arch, mode, device, task), strict=True))
    if candidate is None:
        page = _run_page(run, root, filters)
    else:
        page = _comparison_page(
            run, candidate, root, filters, metric, threshold, allow_env_mismatch
        )
    data = page.encode()
    write_file(html, lambda: atomic_write(html, data), flag="--html")
    stderr().print(f"wrote {html} ({len(data) / 1024:.0f} KiB)", markup=False)


def _run_page(run: str, root: Path, filters: dict[str, str | None]) -> str:
    from seqbench.output.report import format_run_report

    loaded, rows = load_selected(run, root, filters)
    return format_run_report(rows, loaded.meta.replace(run_id=loaded.run_id))


def _comparison_page(
    baseline: str,
    candidate: str,
    root: Path,
    filters: dict[str, str | None],
    metric: str,
    threshold: float,
    allow_env_mismatch: bool,
) -> str:
    from seqbench.cli.select import select_rows
    from seqbench.judge.compare import compare_runs
    from seqbench.output.report import format_comparison_report
    from seqbench.output.text import format_env_differences

    sides = []
    for ref in (baseline, candidate):
        loaded, rows = load_selected(ref, root, filters)
        sides.append((loaded, rows))
    (base, base_rows), (cand, cand_rows) = sides
    if any(v is not None for v in filters.values()):
        # Compare only the cells the filters keep: the rest are not in the report.
        _keep_only(base, select_rows(base.rows, filters))
        _keep_only(cand, select_rows(cand.rows, filters))
    result = compare_runs(base, cand, metric=metric, threshold=threshold, allow_missing=True)
    if result.env_differences and not allow_env_mismatch:
        raise SeqbenchError(
            "the runs come from different environments: "
            + format_env_differences(result.env_differences)
            + "; pass --allow-env-mismatch to compare them anyway"
        )
    return format_comparison_report(
        result,
        (base_rows, base.meta.replace(run_id=base.run_id)),
        (cand_rows, cand.meta.replace(run_id=cand.run_id)),
    )


def _keep_only(loaded, rows) -> None:
    """Narrow a loaded run (in memory: it is never saved here) to some of its rows."""
    kept = {r.cell_id for r in rows}
    samples = {k: v for k, v in loaded.samples.items() if k in kept}
    loaded.rows, loaded.samples = rows, samples
