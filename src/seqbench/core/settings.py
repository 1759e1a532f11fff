"""How a cell is timed and how it is trained: plain frozen settings, importing nothing.

They travel inside a `CellRequest` (to a worker process, a Ray task or a user's API call)
and inside a run's saved configuration, so they stay plain data: numbers, strings, None.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MeasureSettings:
    """How one cell is timed: warm-up, then samples until a time budget or a precision target."""

    min_time: float = 0.5  # seconds of timed steps per cell, at least
    min_repeats: int = 5  # samples per cell, at least
    max_repeats: int = 1000  # samples per cell, at most
    precision: float = (
        0.0  # stop early once the median's 95% CI half-width is this fraction (0: off)
    )
    warmup_time: float = 0.1  # seconds of untimed steps first, at least
    warmup_steps: int = 2  # untimed steps first, at least
    min_sample_s: float = 0.001  # each sample runs enough steps to last this long
    rounds: int = 1  # passes over the whole plan; each takes 1/rounds of every budget above

    def per_round(self) -> MeasureSettings:
        """The budget of one pass: time and sample counts split evenly between rounds."""
        if self.rounds == 1:
            return self
        return dataclasses.replace(
            self,
            min_time=self.min_time / self.rounds,
            min_repeats=max(1, math.ceil(self.min_repeats / self.rounds)),
            max_repeats=max(1, math.ceil(self.max_repeats / self.rounds)),
        )


@dataclass(frozen=True)
class TrainSettings:
    """How a cell with a task is trained and scored (see seqbench.tasks)."""

    # optimiser steps; with neither this nor train_time: the task's default_steps, else 200
    train_steps: int | None = None
    train_time: float | None = None  # seconds of training, at most
    target: float | None = None  # record the training time until the metric first meets this
    eval_every: int = 100  # steps between evaluations while chasing a target
    optimizer: str | None = None  # adam or rmsprop; None: the task's own choice
    lr: float = 1e-3  # a speed cell's rate; task cells take theirs from the lr axis
    clip: float = 1.0  # gradient-norm clipping for Adam (0: off)
    data: str | None = None  # a local dataset (imdb)
    grad_flow: bool = False  # also measure the input-gradient memory horizon
    # The LSTM forget gate's initial bias (Gers et al. 2000; Jozefowicz et al. 2015 advise
    # 1.0); None keeps PyTorch's uniform initialisation. See models.recurrent.set_forget_bias.
    forget_bias: float | None = None

    DEFAULT_STEPS = 200

    def budget(self) -> tuple[int | None, float | None]:
        """(steps, seconds): the default is 200 steps when neither is given."""
        if self.train_steps is None and self.train_time is None:
            return self.DEFAULT_STEPS, None
        return self.train_steps, self.train_time


@dataclass(frozen=True)
class ProcessSettings:
    """What a measuring process sets before its first cell: torch's CPU threads (None:
    torch's choice), subnormal flushing, and TensorFloat-32 on CUDA."""

    threads: int | None = None
    flush_denormal: bool = True
    tf32: bool = True
