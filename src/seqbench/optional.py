"""The optional packages of the reading side, imported only by the commands that need them.

pyarrow (parquet export), matplotlib (plot files) and plotext (plots in the terminal) are
the `report` extra: measuring needs none of them, so a CI runner that only gates on
performance does not install them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from seqbench.errors import MissingDependency

INSTALL_HINT = "pip install 'seqbench[report]'"


def require(module: str, purpose: str) -> ModuleType:
    """Import `module`, or raise one line that says what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise MissingDependency(
            f"{purpose} needs {package}, which is not installed: {INSTALL_HINT}"
        ) from None
