"""The architectures: a registry of sequence cores, and the model every cell measures.

A model is the seed's IMDB classifier in general form: token ids -> Embedding(vocab, embed)
-> sequence core -> Dense(1); only the core changes from one architecture to the next. The
registry and the model builders (registry.py) import torch; this package resolves their
names on first use, so that `seqbench.models.options` (which option each architecture
takes) is readable without it.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    # import_module, not `from seqbench.models import registry`: that would ask this very
    # function for the attribute `registry` before the submodule is loaded.
    registry = importlib.import_module("seqbench.models.registry")
    try:
        return getattr(registry, name)
    except AttributeError:
        raise AttributeError(f"module 'seqbench.models' has no attribute {name!r}") from None
