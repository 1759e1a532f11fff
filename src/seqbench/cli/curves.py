"""`seqbench curves`: a saved run's learning curves (validation metric against steps or time)."""

from __future__ import annotations

from pathlib import Path

import typer

from seqbench.cli.app import app
from seqbench.cli.common import (
    FILTER_COLUMNS,
    RUN_ARGUMENT_HELP,
    filter_option,
    load_selected,
    plot_format,
    root_option,
    show_plot,
    user_errors,
    write_image,
)
from seqbench.cli.options import path_value


@app.command()
@user_errors
def curves(
    run: str = typer.Argument(..., help=RUN_ARGUMENT_HELP),
    x: str = typer.Option("step", "--x", help="step (training steps) or time (training seconds)."),
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
    """Plot a run's learning curves: the validation metric every --eval-every steps.

    One line per model and learning rate, the mean over its seeds (in a file, with the band
    between the lowest and the highest seed). The points are kept in the run's curves.csv.
    """
    from seqbench.output.curves import compute_curves, render_curves_image, render_curves_text

    fmt = plot_format(out)
    filters = dict(zip(FILTER_COLUMNS, (arch, mode, device, task), strict=True))
    loaded, rows = load_selected(run, root, filters)
    found = compute_curves(rows, loaded.curves, x, loaded.curves_problem)
    if out is None:
        show_plot(lambda w, h: render_curves_text(found, rows, loaded.run_id, x, w, h))
    else:
        write_image(out, render_curves_image(found, rows, loaded.run_id, x, fmt))
