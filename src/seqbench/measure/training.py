"""Train a cell's model on its task, score it on the validation split as it learns and on
the test set at the end. Nothing here prints."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from seqbench.core import devices
from seqbench.core.settings import TrainSettings
from seqbench.core.timing import Clock, PerfCounterClock
from seqbench.measure.workload import Workload
from seqbench.tasks import Batch, Task
from seqbench.tasks.base import default_steps, split_validation

EVAL_BATCH = 256


@dataclass(frozen=True)
class Trained:
    metric_value: float  # on the test set, once, after training
    steps: int
    time_s: float  # training only: evaluations (curve points, target checks) are not counted
    time_to_target_s: float | None
    validation_value: float | None = None  # on the validation split, after training
    steps_to_target: int | None = None
    budget: str = "steps"  # what ended training: "steps" or "time"
    # (step, training seconds, validation metric), every `eval_every` steps and at the end
    curve: list[tuple[int, float, float]] = field(default_factory=list)


def evaluate(
    model: torch.nn.Module,
    task: Task,
    device: torch.device,
    autocast,
    batch: Batch | None = None,
    chunk: int = EVAL_BATCH,
) -> float:
    """The task's metric on a whole set (the test set unless `batch` is given), in inference
    mode, `chunk` sequences at a time."""
    batch = task.eval_set() if batch is None else batch
    was_training = model.training
    model.eval()
    outputs = []
    with torch.inference_mode(), autocast():
        for start in range(0, len(batch.y), chunk):
            outputs.append(model(batch.x[start : start + chunk].to(device)).float().cpu())
    model.train(was_training)
    return task.evaluate(torch.cat(outputs), batch.y)


def reached(value: float, target: float, higher_is_better: bool) -> bool:
    return value >= target if higher_is_better else value <= target


def budget_for(settings: TrainSettings, task: Task) -> tuple[int | None, float | None]:
    """(steps, seconds): what the user gave, else the task's default steps, else 200."""
    steps, seconds = settings.budget()
    if settings.train_steps is None and settings.train_time is None:
        steps = default_steps(task) or steps
    return steps, seconds


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

    Every `eval_every` steps the model is scored on the task's validation split (off the
    clock): a point of the learning curve, and the check of --target (the first point that
    meets it gives time- and steps-to-target). The test set is scored once, at the end, so
    nothing chosen or stopped on depends on it. A step's time runs from drawing its batch to
    the device finishing its update (the wall clock, device synchronised at both ends,
    unless another clock is given).
    """
    clock = clock or PerfCounterClock(lambda: devices.synchronize(device))
    max_steps, max_time = budget_for(settings, task)
    gen = torch.Generator().manual_seed(seed + 1)  # not the weights' stream
    if getattr(task, "validation", None) is None:  # prepared by hand, not by tasks.prepared
        split_validation(task, seed)
    validation = task.validation
    model.train()

    def one_step() -> None:
        batch = task.train_batch(batch_size, gen)
        train_step(batch.x.to(device), batch.y.to(device))

    steps, spent, to_target, steps_to = 0, 0.0, None, None
    curve: list[tuple[int, float, float]] = []

    def score() -> float:
        nonlocal to_target, steps_to
        value = evaluate(model, task, device, autocast, validation)
        curve.append((steps, spent, value))
        hit = settings.target is not None and reached(value, settings.target, task.higher_is_better)
        if hit and to_target is None:
            to_target, steps_to = spent, steps
        return value

    while (max_steps is None or steps < max_steps) and (max_time is None or spent < max_time):
        spent += clock.time(one_step, 1)
        steps += 1
        if steps % settings.eval_every == 0:
            score()
    final = curve[-1][2] if curve and curve[-1][0] == steps else score()
    budget = "steps" if max_steps is not None and steps >= max_steps else "time"
    return Trained(
        metric_value=evaluate(model, task, device, autocast),
        steps=steps,
        time_s=spent,
        time_to_target_s=to_target,
        validation_value=final,
        steps_to_target=steps_to,
        budget=budget,
        curve=curve,
    )


def score_longer(work: Workload, task: Task, train: TrainSettings, seed: int) -> str:
    """The trained model's metric at the task's longer lengths ("T:score" pairs), on
    evaluation sets generated there from the same seed; '' for a task without them. Fewer
    sequences go through at once as they grow, so a batch holds about as many tokens."""
    from seqbench.tasks import prepared

    cell = work.cell
    scores = []
    for length in getattr(task, "longer_lengths", lambda _: [])(cell.seq_len):
        longer = prepared(cell.task, length, cell.vocab, seed, train.data)
        chunk = max(1, EVAL_BATCH * cell.seq_len // length)
        value = evaluate(work.model, longer, torch.device(cell.device), work.autocast, chunk=chunk)
        scores.append(f"{length}:{value:.4g}")
    return " ".join(scores)


def train_on_task(work: Workload, task: Task, train: TrainSettings, seed: int) -> Trained:
    """Train the workload's model on its task (see `train_task`)."""
    cell = work.cell
    return train_task(
        work.model, work.train_step, task, train, batch_size=cell.batch_size,
        device=torch.device(cell.device), autocast=work.autocast, seed=seed,
    )  # fmt: skip
