"""The Typer application every command module registers with.

Exit codes: 0 success; 1 the run finished but some cells could not be measured (an error,
or a device that is not here), or a comparison found a regression; 2 bad input (flags,
suite files, result files); 130 interrupted (Ctrl-C, SIGTERM), with every finished cell
saved.
"""

from __future__ import annotations

import typer

from seqbench import __version__

app = typer.Typer(
    help="Benchmark sequence-model architectures: what each one costs and what it buys.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"seqbench {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """seqbench: a terminal benchmark for sequence-model architectures."""
