"""Accuracy tasks: what an architecture buys, next to what it costs.

`--task` chooses one per cell (the default, no task, measures speed only). Synthetic tasks
feed dense features straight to the core; text tasks feed token ids through the embedding.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from seqbench.core.errors import ConfigError
from seqbench.models.options import canonical_name, did_you_mean, variant_settings
from seqbench.tasks.base import Batch, Task, split_validation
from seqbench.tasks.listops import ListOpsTask
from seqbench.tasks.lm import LanguageModelTask
from seqbench.tasks.mnist1d import Mnist1dTask
from seqbench.tasks.real import DigitsTask, ImdbTask
from seqbench.tasks.recall import InductionTask, MqarTask, SelectiveCopyTask
from seqbench.tasks.synthetic import AddingTask, CopyTask

__all__ = ["Batch", "Task", "TASKS", "new_task", "task_name"]

TASKS: dict[str, Callable[[], Task]] = {
    "adding": AddingTask,
    "copy": CopyTask,
    "digits": DigitsTask,
    "imdb": ImdbTask,
    "mnist1d": Mnist1dTask,
    "mqar": MqarTask,
    "selective-copy": SelectiveCopyTask,
    "induction": InductionTask,
    "listops": ListOpsTask,
    "lm": LanguageModelTask,
}


def new_task(name: str) -> Task:
    """A fresh, unprepared task: its class attributes describe it; `prepare` loads its data.
    A variant sets the sizes the task declares in `settings`: 'mqar(pairs=16,vocab=256)'."""
    base = name.partition("(")[0].strip()
    if base not in TASKS:
        raise ConfigError(
            f"unknown task {base!r}; {did_you_mean(base, list(TASKS))}choose from: "
            f"{', '.join(TASKS)}, or none"
        )
    settings: dict[str, int] = getattr(TASKS[base], "settings", {})
    try:
        _, values = variant_settings(name, f"the {base} task", settings)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return TASKS[base](**values) if values else TASKS[base]()


def task_name(name: str) -> str:
    """A task's canonical name: its settings in the task's order, those at their default
    left out ('mqar(vocab=256, pairs=8)' is 'mqar(vocab=256)')."""
    base = name.partition("(")[0].strip()
    settings: dict[str, int] = getattr(TASKS[base], "settings", {})
    return canonical_name(base, settings, variant_settings(name, base, settings)[1])


@lru_cache(maxsize=8)
def prepared(name: str, seq_len: int, vocab: int, seed: int, data: str | None) -> Task:
    """A task ready to use, with its validation split (see `split_validation`); cached, so
    cells that share data load it once (tasks keep no state after `prepare`: batches come
    from the caller's generator)."""
    task = new_task(name)
    if task.fixed_seq_len is None and seq_len < task.min_seq_len:  # its data cannot exist
        raise ConfigError(f"the {name} task needs seq_len >= {task.min_seq_len}")
    task.prepare(seq_len, vocab, seed, data)
    split_validation(task, seed)
    return task
