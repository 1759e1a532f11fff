"""Train a cell's model on its task and score it on the held-out set. Nothing here prints."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seqbench import devices
from seqbench.measure.workload import Workload
from seqbench.settings import TrainSettings
from seqbench.tasks import Task
from seqbench.timing import Clock, PerfCounterClock

EVAL_BATCH = 256


@dataclass(frozen=True)
class Trained:
    metric_value: float
    steps: int
    time_s: float  # training only: evaluations while chasing a target are not counted
    time_to_target_s: float | None


def evaluate(model: torch.nn.Module, task: Task, device: torch.device, autocast) -> float:
    """The task's metric on its whole evaluation set, in inference mode."""
    batch = task.eval_set()
    was_training = model.training
    model.eval()
    outputs = []
    with torch.inference_mode(), autocast():
        for start in range(0, len(batch.y), EVAL_BATCH):
            outputs.append(model(batch.x[start : start + EVAL_BATCH].to(device)).float().cpu())
    model.train(was_training)
    return task.evaluate(torch.cat(outputs), batch.y)


def reached(value: float, target: float, higher_is_better: bool) -> bool:
    return value >= target if higher_is_better else value <= target


def train_task(
    model: torch.nn.Module,
    train_step,
    task: Task,
    settings: TrainSettings,
    *,
    batch_size: int,
    device: torch.device,
    autocast,
    seed: int,
    clock: Clock | None = None,
) -> Trained:
    """Run `train_step(x, y)` on fresh batches until the step or time budget is spent.

    With a target, the model is scored every `eval_every` steps (off the clock), and the
    training time when the metric first meets the target is recorded. A step's time runs
    from drawing its batch to the device finishing its update (the wall clock, device
    synchronised at both ends, unless another clock is given).
    """
    clock = clock or PerfCounterClock(lambda: devices.synchronize(device))
    max_steps, max_time = settings.budget()
    gen = torch.Generator().manual_seed(seed + 1)  # not the weights' stream
    model.train()

    def one_step() -> None:
        batch = task.train_batch(batch_size, gen)
        train_step(batch.x.to(device), batch.y.to(device))

    steps, spent, to_target = 0, 0.0, None
    while (max_steps is None or steps < max_steps) and (max_time is None or spent < max_time):
        spent += clock.time(one_step, 1)
        steps += 1
        due = settings.target is not None and to_target is None and steps % settings.eval_every == 0
        if due and reached(
            evaluate(model, task, device, autocast), settings.target, task.higher_is_better
        ):
            to_target = spent
    value = evaluate(model, task, device, autocast)
    if (
        settings.target is not None
        and to_target is None
        and reached(value, settings.target, task.higher_is_better)
    ):
        to_target = spent
    return Trained(value, steps, spent, to_target)


def train_on_task(work: Workload, task: Task, train: TrainSettings, seed: int) -> Trained:
    """Train the workload's model on its task (see `train_task`)."""
    cell = work.cell
    return train_task(
        work.model, work.train_step, task, train, batch_size=cell.batch_size,
        device=torch.device(cell.device), autocast=work.autocast, seed=seed,
    )  # fmt: skip
