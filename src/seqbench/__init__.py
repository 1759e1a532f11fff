"""seqbench: what each sequence-model architecture costs and what it buys.

From Python: `seqbench.run(...)` measures a matrix and `seqbench.measure_module(...)` your
own module, each returning the rows as a pandas DataFrame (see seqbench.api). They load on
first use, so `import seqbench` stays cheap.
"""

from typing import Any

from seqbench.core.version import __version__

__all__ = ["__version__", "measure_module", "run"]


def __getattr__(name: str) -> Any:
    if name in ("run", "measure_module"):
        from seqbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'seqbench' has no attribute {name!r}")
