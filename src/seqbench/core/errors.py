"""Errors a user can cause. The CLI prints their message as one line and exits 2."""

from __future__ import annotations

import importlib
from types import ModuleType


class SeqbenchError(Exception):
    """Base class: the message is written for the person at the terminal."""


class ConfigError(SeqbenchError):
    """A suite file or a flag holds a value seqbench cannot use."""


class ResultsError(SeqbenchError):
    """A results file or run directory is missing, damaged or not seqbench's."""


class MissingDependency(SeqbenchError):
    """An optional package a command needs (pyarrow, matplotlib, plotext) is not installed."""


# pyarrow (parquet export), matplotlib (plot files) and plotext (plots in the terminal) are
# the `report` extra: measuring needs none of them, so a CI runner that only gates on
# performance does not install them.
INSTALL_HINT = "pip install 'seqbench[report]'"


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional package, or raise one line that says what needs it and how to
    install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise MissingDependency(
            f"{purpose} needs {package}, which is not installed: {INSTALL_HINT}"
        ) from None
