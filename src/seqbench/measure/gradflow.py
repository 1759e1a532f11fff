"""The vanishing gradient as a number: how far back the task's loss reaches into the input.

g_t = ‖∂L/∂x_t‖ is the size of the gradient of the task's loss L (on the cell's batch of
held-out sequences; for a per-step task, the loss at the last step) that reaches the core's
input at step t, over the batch and the features together. A simple RNN's shrinks
geometrically with the distance from the end; gated cells keep it up for longer.

The memory horizon at cut-off c is the fewest steps back from the end (the last step
counting as the first) that hold all but a fraction c of the gradient's mass Σ_t g_t. It
needs no reference step: a gradient that grows going back is long memory (the mass sits
far back), one that stays level covers the sequence (⌈(1 - c)·T⌉ steps), and a direct
path to the last input (a TCN's residual, a Transformer's) does not hide a small gradient
spread over the whole window. For a decay g_d = a^d on a long sequence, the mass beyond n
steps is a fraction a^n, so the horizon is ⌈ln c / ln a⌉ and moves with ln c: from
c = 1e-2 to 1e-3 it grows by half, which is why both are reported (`HORIZON_CUTOFFS`) and
the row keeps 1e-3.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np
import torch

from seqbench.core.schema import Cell
from seqbench.core.settings import TrainSettings
from seqbench.measure.training import train_on_task
from seqbench.measure.workload import Workload, build_workload
from seqbench.tasks import Task, prepared
from seqbench.tasks.recall import IGNORE

RELATIVE = 1e-3  # the row's cut-off (`memory_horizon`): the gradient mass left beyond it
HORIZON_CUTOFFS = (1e-3, 1e-2)  # what `seqbench gradflow` reports


def _loss(model: torch.nn.Module, h: torch.Tensor, y: torch.Tensor | None, task: Task | None):
    y_hat = model.core(h)  # (B, T', F)
    if task is None:  # the seed's classifier without a task: its summed output
        return model.head(model.core.summary(y_hat)).float().sum()
    if model.readout == "summary":
        return task.loss(model.head(model.core.summary(y_hat)), y)
    # the loss at each sequence's last scored step: the last step, except in a task that
    # scores only some steps (mqar asks its last query anywhere after the pairs)
    steps = torch.arange(y.shape[1], device=y.device)
    last = ((y != IGNORE) * steps).argmax(dim=1)
    rows = torch.arange(y.shape[0], device=y.device)
    return task.loss(model.head(y_hat[rows, last][:, None]), y[rows, last][:, None])


def input_gradient_norms(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    task: Task | None = None,
) -> np.ndarray:
    """‖∂L/∂(core input at t)‖ over the batch and features, t = 0..T-1, as float64.

    L is the task's loss on (x, y), or without a task the summed last output."""
    model.eval()  # no dropout: the architecture's gradient, not a mask's
    # cuDNN computes RNN gradients only in training mode; its native fallback needs neither.
    with torch.backends.cudnn.flags(enabled=False):
        h = model.adapter(x).detach().requires_grad_(True)  # (B, T, I)
        _loss(model, h, y, task).backward()
    return h.grad.double().norm(dim=(0, 2)).cpu().numpy()  # (T,)


def memory_horizon(norms: np.ndarray, relative: float = RELATIVE) -> int:
    """The fewest steps back from the end holding all but `relative` of the norms' sum
    (0 when no step gets any gradient)."""
    from_end = np.asarray(norms, dtype=np.float64)[::-1]
    total = float(from_end.sum())
    if not total > 0 or not np.isfinite(total):
        return 0
    held = np.cumsum(from_end)
    return min(int(np.searchsorted(held, (1.0 - relative) * total)) + 1, len(from_end))


def gradient_probe(work: Workload, task: Task | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The batch a gradient profile is taken on: the cell's batch size of the task's
    held-out sequences with their targets, or the cell's own random tokens."""
    if task is None:
        return work.inputs[0].to(work.cell.device), None
    held_out = task.eval_set()
    size = work.cell.batch_size
    return held_out.x[:size].to(work.cell.device), held_out.y[:size].to(work.cell.device)


def workload_horizon(work: Workload, task: Task | None) -> int:
    """The memory horizon of a built workload's model, which is left as the step needs it."""
    x, y = gradient_probe(work, task)
    horizon = memory_horizon(input_gradient_norms(work.model, x, y, task))
    work.model.train(work.cell.mode == "train")
    work.model.zero_grad(set_to_none=True)
    return horizon


@dataclass(frozen=True)
class GradientProfile:
    """Input-gradient norms of one cell and seed (index t = 0..T-1), at initialisation and,
    with a training budget, after training; with the memory horizon of each at every cut-off
    in `HORIZON_CUTOFFS` (the first is the row's)."""

    cell: Cell
    initial: list[float]
    trained: list[float] | None
    initial_horizon: int
    trained_horizon: int | None
    metric_value: float | None = None
    seed: int = 0
    initial_horizons: tuple[int, ...] = ()
    trained_horizons: tuple[int, ...] | None = None


def _horizons(norms: np.ndarray) -> tuple[int, ...]:
    return tuple(memory_horizon(norms, c) for c in HORIZON_CUTOFFS)


def trace_gradient_flow(
    cell: Cell, train: TrainSettings, seed: int = 0, *, after_training: bool = False
) -> GradientProfile:
    """How far back the task's loss reaches, before (and after) training."""
    task = prepared(cell.task, cell.seq_len, cell.vocab, seed, train.data) if cell.task else None
    work = build_workload(cell, seed, train, task)
    x, y = gradient_probe(work, task)

    initial = input_gradient_norms(work.model, x, y, task)
    trained, value = None, None
    if after_training:
        if task is None:
            raise ValueError("training needs a task")
        result = train_on_task(work, task, train, seed)
        work.model.zero_grad(set_to_none=True)
        trained, value = input_gradient_norms(work.model, x, y, task), result.metric_value
    return GradientProfile(
        cell,
        initial.tolist(),
        None if trained is None else trained.tolist(),
        memory_horizon(initial),
        None if trained is None else memory_horizon(trained),
        value,
        seed,
        _horizons(initial),
        None if trained is None else _horizons(trained),
    )


@dataclass(frozen=True)
class HorizonSpread:
    """One cell's horizon (at the row's cut-off) over seeds: median, range, every value."""

    cell: Cell
    seeds: tuple[int, ...]
    initial: tuple[int, ...]
    trained: tuple[int, ...] | None

    @property
    def initial_median(self) -> float:
        return statistics.median(self.initial)

    @property
    def trained_median(self) -> float | None:
        return None if self.trained is None else statistics.median(self.trained)


def horizon_spread(profiles: list[GradientProfile]) -> list[HorizonSpread]:
    """Group profiles by cell (in first-seen order) and gather their horizons over seeds."""
    groups: dict[Cell, list[GradientProfile]] = {}
    for p in profiles:
        groups.setdefault(p.cell, []).append(p)
    spreads = []
    for cell, group in groups.items():
        trained = [p.trained_horizon for p in group]
        spreads.append(
            HorizonSpread(
                cell,
                tuple(p.seed for p in group),
                tuple(p.initial_horizon for p in group),
                None if any(t is None for t in trained) else tuple(trained),
            )
        )
    return spreads
