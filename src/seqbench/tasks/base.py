"""What an accuracy task is: data, a loss, a metric, and what guessing would score.

A task decides the model's ends: the input adapter (token ids through an embedding, or
dense features fed straight to the core) and the readout (one prediction per sequence from
the core's summary, or one per step). Everything else about the model is the cell's.

Three disjoint sets score a model: batches to train on, a validation split (which chooses
the learning rate, judges --target and draws the learning curve) and the test set (what the
tables report). `split_validation` gives every task its validation split, generically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from seqbench.core.errors import ConfigError


@dataclass(frozen=True)
class Batch:
    x: torch.Tensor  # (B, T) token ids, or (B, T, C) dense features
    y: torch.Tensor  # targets: (B, 1) floats, (B,) class ids, or (B, T) class ids per step


class Task(Protocol):
    name: str
    summary: str
    inputs: str  # "tokens" or "dense"
    channels: int  # dense input width (0 for token tasks)
    outputs: int  # head width: 1 for regression or binary, K for K classes
    readout: str  # "summary" (one output per sequence) or "sequence" (one per step)
    metric: str  # the name of what `evaluate` returns
    higher_is_better: bool
    optimizer: str  # "adam" (with gradient clipping) or "rmsprop"
    fixed_seq_len: int | None  # a length the data dictates, else None
    # Does `prepare` read `data` (a local dataset)? Absent: no, and giving one is refused.
    reads_data: bool
    min_seq_len: int

    def prepare(self, seq_len: int, vocab: int, seed: int, data: str | None) -> None:
        """Load or generate what the task needs; raise ConfigError with one line if it can't."""

    def train_batch(self, batch_size: int, generator: torch.Generator) -> Batch: ...

    def eval_set(self) -> Batch:
        """A fixed held-out set: the same for every cell with the same seed."""

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...

    def evaluate(self, output: torch.Tensor, y: torch.Tensor) -> float: ...

    def chance(self) -> float:
        """The metric of the best guess that ignores the input, measured on the eval set."""

    def chance_theory(self) -> float:
        """What that guess scores in expectation, from the task's definition."""

    # What a run uses without --lr and without a budget (see benchmarks/tune_defaults.py);
    # a task without them gets DEFAULT_LR and TrainSettings' default steps.
    default_lr: float
    default_steps: int

    # Set by `split_validation` after `prepare` (a task may set its own in `prepare`).
    validation: Batch


DEFAULT_LR = 1e-3


def set_sizes(task: object, values: dict[str, int]) -> None:
    """Give a task with `settings` (its sizes and their defaults) the values a variant
    chose, the defaults for the rest: `mqar(pairs=16)`."""
    for key, value in {**task.settings, **values}.items():
        setattr(task, key, value)


def default_lr(task: Task) -> float:
    """The task's default learning rate (Adam's customary 1e-3 when it names none)."""
    return float(getattr(task, "default_lr", DEFAULT_LR))


def default_steps(task: Task) -> int | None:
    """The task's default training budget in steps, if it names one."""
    return getattr(task, "default_steps", None)


# Examples a generated task's validation split holds; a fixed data set gives up this share
# of its training examples instead.
VALIDATION_SIZE = 500
VALIDATION_SHARE = 0.15
# The validation stream of a generated task: apart from the training batches (seed + 1) and
# from the test set (the task's own offset).
VALIDATION_SEED_OFFSET = 2_000_029


def split_validation(task: Task, seed: int) -> None:
    """Give a prepared task its validation split, held apart from training and from test.

    A task that set `validation` itself keeps it. A task with a fixed training set
    (`x_train`, `y_train`) gives up a seeded `VALIDATION_SHARE` of it, and trains on the rest
    from then on. A task that generates its data draws `VALIDATION_SIZE` fresh examples from
    a stream of their own. Every task, present or future, gets one this way.
    """
    if getattr(task, "validation", None) is not None:
        return
    gen = torch.Generator().manual_seed(seed + VALIDATION_SEED_OFFSET)
    x_train, y_train = getattr(task, "x_train", None), getattr(task, "y_train", None)
    if isinstance(x_train, torch.Tensor) and isinstance(y_train, torch.Tensor):
        n = len(y_train)
        held = max(1, round(n * VALIDATION_SHARE))
        if n - held < 1:
            raise ConfigError(f"the {task.name} task has too few training examples to split")
        order = torch.randperm(n, generator=gen)
        task.validation = Batch(x_train[order[:held]], y_train[order[:held]])
        task.x_train, task.y_train = x_train[order[held:]], y_train[order[held:]]
        return
    task.validation = task.train_batch(VALIDATION_SIZE, gen)
