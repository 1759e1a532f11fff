"""The `seqbench` command: one module per command, each importing what it needs when it runs.

Importing this package loads Typer and the command modules, and nothing heavy: torch,
pandas and SciPy come in only with the commands that use them, so `seqbench --version`,
`runs` and `show` start fast. Commands register with the app as their modules load, in
the order `seqbench --help` lists them.
"""

from __future__ import annotations

# isort: off
# In this order: `seqbench --help` lists the commands as they register.
from seqbench.cli import run, compare, ab, reading, curves, report, history  # noqa: F401
from seqbench.cli import env, check, gradflow, frontier, archs  # noqa: F401

# isort: on
from seqbench.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    import os
    import sys

    from seqbench.cli import streams

    streams.guard()
    try:
        os.getcwd()
    except FileNotFoundError:  # relative paths (results/, suites, --csv) mean nothing now
        print(
            "error: the current folder no longer exists (deleted or moved): cd to another",
            file=sys.stderr,
        )
        sys.exit(2)
    app()
