"""What an accuracy task is: data, a loss, a metric, and what guessing would score.

A task decides the model's ends: the input adapter (token ids through an embedding, or
dense features fed straight to the core) and the readout (one prediction per sequence from
the core's summary, or one per step). Everything else about the model is the cell's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch


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
