"""seqbench: what each sequence-model architecture costs and what it buys.

From Python: `seqbench.run(...)` measures a matrix (or, with `resume=`, finishes one),
`seqbench.ab(...)` compares two versions of your code side by side, and
`seqbench.measure_module(...)` measures your own module, each returning a pandas DataFrame
(see seqbench.api). They load on first use, so `import seqbench` stays cheap. A mistake of
the caller's raises `seqbench.SeqbenchError` with a one-line message.
"""

from typing import Any

from seqbench.core.errors import SeqbenchError
from seqbench.core.version import __version__

__all__ = ["SeqbenchError", "__version__", "ab", "measure_module", "run"]


def __getattr__(name: str) -> Any:
    if name in ("run", "ab", "measure_module"):
        from seqbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'seqbench' has no attribute {name!r}")
