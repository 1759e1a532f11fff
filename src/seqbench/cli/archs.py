"""`seqbench archs` and `seqbench tasks`: what can be measured, and on what."""

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


@app.command()
def tasks(
    seq_len: int = typer.Option(200, min=1, help="Sequence length for the chance columns."),
) -> None:
    """List the accuracy tasks, their metric, and chance: in theory and on the evaluation set.

    Chance is the score of the best guess that ignores the input (the majority class, the
    mean target, each step's symbol frequencies); 'measured' is that guess on the task's
    own evaluation set at --seq-len with seed 0. A task whose data must be given (imdb) or
    whose package is missing shows '-'.
    """
    from seqbench.output.terminal import tasks_table

    stdout().print(tasks_table(seq_len))
