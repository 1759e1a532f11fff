"""How a seqbench worker process is started: which interpreter, what goes first on its
import path, where it starts, and what it runs under (valgrind).

Every process seqbench starts to measure or probe something (an isolated cell's worker, the
probe of a user's factory, a version of the code under `seqbench ab`, the simulated worker
that counts instructions) is described by one `Launch`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass


def import_path() -> str:
    """This process's import path as PYTHONPATH, so that a worker imports what this process
    can (seqbench from a source tree, a user's own architectures)."""
    return os.pathsep.join(p for p in sys.path if p)


@dataclass(frozen=True)
class Launch:
    """How a worker is started: which interpreter, and what goes first on its import path.

    The default is this interpreter with this process's import path. Another interpreter
    (a torch upgrade, say) keeps its own packages: only `path` is put before them.
    """

    python: str = sys.executable
    path: tuple[str, ...] = ()
    inherit_path: bool = True  # append this process's import path (same interpreter only)
    # Where the worker starts: `python -m` puts it first on the import path, before `path`.
    cwd: str | None = None
    # A command the interpreter runs under (valgrind), and variables set for the worker.
    prefix: tuple[str, ...] = ()
    variables: tuple[tuple[str, str], ...] = ()

    def environment(self) -> dict[str, str]:
        parts = list(self.path) + ([import_path()] if self.inherit_path else [])
        env = {
            **os.environ,
            **dict(self.variables),
            "PYTHONPATH": os.pathsep.join(p for p in parts if p),
        }
        if not env["PYTHONPATH"]:
            del env["PYTHONPATH"]
        return env
