"""Accuracy tasks: what an architecture buys, next to what it costs.

`--task` chooses one per cell (the default, no task, measures speed only). Synthetic tasks
feed dense features straight to the core; text tasks feed token ids through the embedding.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from seqbench.core.errors import ConfigError
from seqbench.tasks.base import Batch, Task, split_validation
from seqbench.tasks.mnist1d import Mnist1dTask
from seqbench.tasks.real import DigitsTask, ImdbTask
from seqbench.tasks.synthetic import AddingTask, CopyTask

__all__ = ["Batch", "Task", "TASKS", "new_task"]

TASKS: dict[str, Callable[[], Task]] = {
    "adding": AddingTask,
    "copy": CopyTask,
    "digits": DigitsTask,
    "imdb": ImdbTask,
    "mnist1d": Mnist1dTask,
}


def new_task(name: str) -> Task:
    """A fresh, unprepared task: its class attributes describe it; `prepare` loads its data."""
    try:
        return TASKS[name]()
    except KeyError:
        raise ConfigError(
            f"unknown task {name!r}; choose from: {', '.join(TASKS)}, or none"
        ) from None


@lru_cache(maxsize=8)
def prepared(name: str, seq_len: int, vocab: int, seed: int, data: str | None) -> Task:
    """A task ready to use, with its validation split (see `split_validation`); cached, so
    cells that share data load it once (tasks keep no state after `prepare`: batches come
    from the caller's generator)."""
    task = new_task(name)
    task.prepare(seq_len, vocab, seed, data)
    split_validation(task, seed)
    return task
