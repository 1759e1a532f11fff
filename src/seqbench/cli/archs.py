"""`seqbench archs`: the architectures, their parameter formulas and an example size."""

from __future__ import annotations

import typer

from seqbench.cli.app import app
from seqbench.cli.common import stdout


@app.command()
def archs(
    hidden: int = typer.Option(32, min=1, help="Hidden units for the example column."),
    embed: int = typer.Option(32, min=1, help="Input width for the example column."),
) -> None:
    """List the architectures, their parameter formulas and an example size."""
    from seqbench.output.terminal import archs_table

    stdout().print(archs_table(hidden=hidden, embed=embed))
