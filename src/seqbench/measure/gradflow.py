"""The vanishing gradient as a number: how far back a loss on the last output can reach.

For a loss on the model's last output, ‖∂loss/∂x_t‖ is the size of the gradient that
reaches the core's input at step t (over the batch and the features together). A simple
RNN's shrinks geometrically with the distance from the end; gated cells keep it up for
longer. The memory horizon is how many steps back, counting the last step as 0, the norm
stays at or above `RELATIVE` (1e-3) of its largest value without a break.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from seqbench.measure.training import train_on_task
from seqbench.measure.workload import Workload, build_workload
from seqbench.schema import Cell
from seqbench.settings import TrainSettings
from seqbench.tasks import Task, prepared

RELATIVE = 1e-3

# Sequences the input-gradient profile is averaged over (the `memory_horizon` column).
GRAD_FLOW_BATCH = 64


def input_gradient_norms(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """‖∂ sum(last output) / ∂ core input at t‖ for t = 0..T-1, as float64."""
    model.eval()  # no dropout: the architecture's gradient, not a mask's
    # cuDNN computes RNN gradients only in training mode; its native fallback needs neither.
    with torch.backends.cudnn.flags(enabled=False):
        h = model.adapter(x).detach().requires_grad_(True)  # (B, T, I)
        y = model.core(h)  # (B, T', F)
        last = model.core.summary(y) if model.readout == "summary" else y[:, -1]
        model.head(last).float().sum().backward()
    return h.grad.double().norm(dim=(0, 2)).cpu().numpy()  # (T,)


def memory_horizon(norms: np.ndarray, relative: float = RELATIVE) -> int:
    """Steps back from the end over which the norm stays >= relative · max (0 for none)."""
    peak = float(np.max(norms)) if len(norms) else 0.0
    if peak <= 0:
        return 0
    from_end = np.asarray(norms)[::-1] >= relative * peak
    below = np.flatnonzero(~from_end)
    return int(below[0]) if below.size else len(from_end)


def gradient_probe(work: Workload, task: Task | None) -> torch.Tensor:
    """The inputs a gradient profile is averaged over: the task's held-out sequences, or
    the cell's own random tokens."""
    probe = task.eval_set().x[:GRAD_FLOW_BATCH] if task is not None else work.inputs[0]
    return probe.to(work.cell.device)


def workload_horizon(work: Workload, task: Task | None) -> int:
    """The memory horizon of a built workload's model, which is left as the step needs it."""
    horizon = memory_horizon(input_gradient_norms(work.model, gradient_probe(work, task)))
    work.model.train(work.cell.mode == "train")
    work.model.zero_grad(set_to_none=True)
    return horizon


@dataclass(frozen=True)
class GradientProfile:
    """Input-gradient norms of one cell (index t = 0..T-1), at initialisation and, with a
    training budget, after training; with the memory horizon of each."""

    cell: Cell
    initial: list[float]
    trained: list[float] | None
    initial_horizon: int
    trained_horizon: int | None
    metric_value: float | None = None


def trace_gradient_flow(
    cell: Cell, train: TrainSettings, seed: int = 0, *, after_training: bool = False
) -> GradientProfile:
    """How far back a loss on the last output reaches, before (and after) training."""
    task = prepared(cell.task, cell.seq_len, cell.vocab, seed, train.data) if cell.task else None
    work = build_workload(cell, seed, train, task)
    probe = gradient_probe(work, task)

    initial = input_gradient_norms(work.model, probe)
    trained, value = None, None
    if after_training:
        if task is None:
            raise ValueError("training needs a task")
        result = train_on_task(work, task, train, seed)
        trained, value = input_gradient_norms(work.model, probe), result.metric_value
    return GradientProfile(
        cell,
        initial.tolist(),
        None if trained is None else trained.tolist(),
        memory_horizon(initial),
        None if trained is None else memory_horizon(trained),
        value,
    )
