"""The commands that read saved runs: `runs`, `show`, `export` and `plot`.

None of them imports torch: a saved run is CSV, JSON and text, and reading one should be
instant on a machine that has never measured anything.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from seqbench.cli.app import app
from seqbench.cli.common import (
    FILTER_COLUMNS,
    RUN_ARGUMENT_HELP,
    TABLE_ROWS,
    filter_option,
    load_selected,
    plot_format,
    print_rows,
    root_option,
    show_plot,
    stderr,
    stdout,
    user_errors,
    write_file,
    write_image,
)
from seqbench.cli.options import path_value
from seqbench.core.errors import SeqbenchError, require
from seqbench.core.settings import RESULTS_ROOT


@app.command()
@user_errors
def runs(
    root: Path = typer.Option(
        Path(RESULTS_ROOT), "--root", help="Results root whose runs to list.", parser=path_value
    ),
) -> None:
    """List the saved runs, newest first: id, label, time, devices, cells and their statuses."""
    from seqbench.output.terminal import runs_table
    from seqbench.storage import summarize_runs

    summaries = summarize_runs(root)
    if not summaries:
        stderr().print(f"no saved runs in {root}", markup=False)
        return
    console = stdout()
    console.print(runs_table(summaries, console))


@app.command()
@user_errors
def show(
    run: str = typer.Argument(..., help=RUN_ARGUMENT_HELP),
    arch: str | None = filter_option("arch"),
    mode: str | None = filter_option("mode"),
    device: str | None = filter_option("device"),
    task: str | None = filter_option("task"),
    sort: str | None = typer.Option(
        None,
        help="Order by these result columns, comma-separated (e.g. median_s, or arch,seq_len).",
    ),
    reverse: bool = typer.Option(False, "--reverse", help="With --sort: largest first."),
    limit: int = typer.Option(
        TABLE_ROWS, "--limit", help="Show at most this many cells (0: all); export has every row."
    ),
    root: Path = root_option(),
) -> None:
    """Show a saved run as the results table, with how its cost grows with length.

    With three or more lengths a second table gives each model's fitted exponent k
    (cost ∝ T^k) for time and memory, flags steps far off the fit, and says where two
    models' curves cross.
    """
    from seqbench.cli.select import sort_rows
    from seqbench.output.text import format_env_line

    if limit < 0:
        raise SeqbenchError(f"--limit: expected a number of cells >= 0 (0: all), got {limit}")
    filters = dict(zip(FILTER_COLUMNS, (arch, mode, device, task), strict=True))
    loaded, rows = load_selected(run, root, filters)
    env = loaded.meta.env
    rows = sort_rows(rows, sort, reverse)
    shown = rows[:limit] if limit else rows
    print_rows(loaded, shown, "table", env)
    if len(shown) < len(rows):
        stderr().print(
            f"showing the first {len(shown):,} of {len(rows):,} cells (the table and its length "
            "fits): --limit 0 shows them all, --arch/--mode/--device/--task narrow them, and "
            "`seqbench export` gives every row",
            markup=False,
        )
    stderr().print(format_env_line(env), markup=False)


def _format_of(path: Path | None) -> str | None:
    """The export format a file name implies, if it implies one."""
    from seqbench.export import exporter_for_path

    try:
        return None if path is None else exporter_for_path(path).name
    except SeqbenchError:
        return None


@app.command()
@user_errors
def export(
    run: str = typer.Argument(..., help=RUN_ARGUMENT_HELP),
    output_format: str | None = typer.Option(
        None,
        "--format",
        help="csv, json, parquet or markdown (default: from --out's suffix, else csv).",
    ),
    out: Path | None = typer.Option(
        None,
        help="Write to this file instead of stdout (csv, json and parquet get .samples.csv and .meta.json beside them, so seqbench can read them back).",
        parser=path_value,
    ),
    arch: str | None = filter_option("arch"),
    mode: str | None = filter_option("mode"),
    device: str | None = filter_option("device"),
    task: str | None = filter_option("task"),
    root: Path = root_option(),
) -> None:
    """Write a saved run's rows as CSV, JSON, parquet or markdown."""
    from seqbench.export import exporter_for_path, get_exporter
    from seqbench.storage import ROWS_FORMATS, atomic_write, saved_text, write_rows_file

    if output_format is not None:
        exporter = get_exporter(output_format)
        implied = _format_of(out)
        if implied not in (None, exporter.name):
            # A json file named .csv would not read back: load_run goes by the suffix.
            raise SeqbenchError(
                f"--out {out}: the suffix says {implied}, --format says {exporter.name}"
            )
    else:
        exporter = exporter_for_path(out) if out is not None else get_exporter("csv")
    if exporter.name == "parquet":
        require("pyarrow", "parquet export")
    if exporter.binary and out is None:
        raise SeqbenchError(
            f"--format {exporter.name} is binary: give a file to write it to (--out FILE)"
        )
    filters = dict(zip(FILTER_COLUMNS, (arch, mode, device, task), strict=True))
    csv = exporter.name == "csv"
    loaded, rows = load_selected(run, root, filters, keep_text=csv)
    # A whole run's CSV is its results file as saved, byte for byte: no need to render it.
    data = (csv and saved_text(loaded, rows)) or exporter.render(rows)
    if out is None:
        sys.stdout.write(data)  # the data as it is: echo would scan 65 MB for ANSI codes
        return
    if exporter.name in ("csv", *ROWS_FORMATS.values()):
        kept = {r.cell_id for r in rows}
        samples = {k: v for k, v in loaded.samples.items() if k in kept}
        rounds = loaded.batches
        write_file(out, lambda: write_rows_file(out, data, samples, loaded.meta, rounds))
    else:
        write_file(out, lambda: atomic_write(out, data))
    from seqbench.output.text import format_plural

    stderr().print(f"wrote {format_plural(len(rows), 'row')} to {out}", markup=False)


@app.command()
@user_errors
def plot(
    run: str = typer.Argument(..., help=RUN_ARGUMENT_HELP),
    metric: str | None = typer.Option(
        None,
        help="seq_per_s, median_s, peak_mem_bytes, tflops or state_bytes (step mode) against length; metric_value against cost (default: metric_value when the run has a task, else median_s).",
    ),
    against: str = typer.Option(
        "median_s",
        help="What accuracy is drawn against: median_s (the step's time) or state_bytes (what the model may keep between tokens: a recall task's cost).",
    ),
    out: Path | None = typer.Option(
        None,
        help="Write a .png or .svg file instead of drawing in the terminal.",
        parser=path_value,
    ),
    arch: str | None = filter_option("arch"),
    mode: str | None = filter_option("mode"),
    device: str | None = filter_option("device"),
    task: str | None = filter_option("task"),
    root: Path = root_option(),
) -> None:
    """Plot a saved run: a cost against length (log–log), or accuracy against cost.

    A cost is drawn per model against sequence length on log–log axes, where c·T^k is a
    straight line; the legend gives each model's fitted k. A run with a task plots accuracy
    against step time instead (or, with --against state_bytes, against the state each model
    may keep between tokens), with the Pareto frontier (nothing both cheaper and better)
    marked. Without --out the plot is drawn in the terminal (plotext); with it, a PNG or
    SVG file (matplotlib).
    """
    from seqbench.output.plots import build_chart, check_metric, render_image, render_text

    if metric is not None:
        check_metric(metric)
    fmt = plot_format(out)
    filters = dict(zip(FILTER_COLUMNS, (arch, mode, device, task), strict=True))
    loaded, rows = load_selected(run, root, filters)
    if metric is None:
        metric = "metric_value" if any(r.metric_value is not None for r in rows) else "median_s"
        if against != "median_s":
            metric = "metric_value"
    chart = build_chart(rows, metric, loaded.run_id, against)
    if out is None:
        show_plot(lambda w, h: render_text(chart, w, h))
    else:
        write_image(out, render_image(chart, fmt))
