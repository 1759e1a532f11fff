"""Measure one cell: `measure(request, clock) -> Measurement`, the only way in.

Nothing here prints. Every outcome is a `Measurement`: a cell that cannot run, fails, runs
out of memory or out of time is a row with a status and a message, not an exception, so one
bad cell never costs the rest of a run. The work is done in small rooms: `workload` builds
the model and its step, `sampling` times it on a Clock, `memory` takes its peak, `training`
trains and scores a task, `gradflow` traces the input gradient, `ceiling` measures the
device's matmul rate.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import torch

from seqbench.core import devices
from seqbench.core.errors import ConfigError
from seqbench.core.request import CellRequest
from seqbench.core.schema import Cell, Measurement, ResultRow
from seqbench.core.timing import Clock, Stopwatch, clock_for
from seqbench.measure.gradflow import workload_horizon
from seqbench.measure.limits import (
    CellSkipped,
    CellTimeout,
    first_line,
    is_out_of_memory,
    time_limit,
)
from seqbench.measure.memory import cuda_memory
from seqbench.measure.timed import time_workload
from seqbench.measure.training import score_longer, train_on_task
from seqbench.measure.workload import build_workload, counted_flops
from seqbench.models import core_shape, get_arch, step_flops
from seqbench.tasks import new_task, prepared

if TYPE_CHECKING:
    from seqbench.measure.module import UserModule

__all__ = ["Measurement", "failure", "measure", "skip_reason", "time_workload"]


def failure(
    cell: Cell, status: str, message: str, wall_s: float | None = None, **columns: object
) -> Measurement:
    """The row of a cell that was not measured (skipped, oom, error, timeout): its key, what
    the formulas say it would cost, and why; `columns` add what the caller knows of where
    it failed (the host of a Ray node). Every executor builds its failure rows here."""
    try:
        flops = step_flops(cell)
    except ConfigError:  # a user's own module (seqbench.api): no architecture, no formula
        flops = None
    row = ResultRow.for_cell(
        cell, flops_per_seq=flops, status=status, message=message, wall_s=wall_s, **columns
    )
    return Measurement(row)


def skip_reason(cell: Cell) -> str | None:
    """Why a cell cannot run here, before anything is built; None if it can."""
    reason = devices.unavailable_reason(cell.device)
    if reason:
        return reason
    spec = get_arch(cell.arch)
    if cell.seq_len < spec.min_seq_len:
        return f"{cell.arch} needs seq_len >= {spec.min_seq_len}"
    if cell.task:
        task = new_task(cell.task)
        if cell.seq_len < task.min_seq_len:
            return f"the {cell.task} task needs seq_len >= {task.min_seq_len}"
        if task.readout == "sequence" and not spec.per_step:
            return (
                f"the {cell.task} task needs one output per step, which {cell.arch} does not give"
            )
    return None


def measure(
    request: CellRequest, clock: Clock | None = None, module: UserModule | None = None
) -> Measurement:
    """Everything seqbench records for one cell. Never raises for a cell that fails, runs
    out of memory or out of time (`request.timeout` seconds for the whole cell); only a
    KeyboardInterrupt gets through.

    A cell with a task is trained and scored first, unless `request.accuracy` is off
    (later rounds only add timing samples); then its speed is measured like any other
    cell's, on the trained model and a batch of the task's data. The process settings in
    the request are the caller's to apply (they are process-wide).

    A user's own module (seqbench.api) is measured instead of seqbench's model when it is
    given live as `module`, or by importable names in `request.module` (a worker process).
    """
    cell = request.cell
    watch = Stopwatch()
    user = module is not None or request.module is not None
    reason = devices.unavailable_reason(cell.device) if user else skip_reason(cell)
    if reason:
        return failure(cell, "skipped", reason)
    device = torch.device(cell.device)
    try:
        with time_limit(request.timeout):
            if user:
                from seqbench.measure.module import measure_user

                return measure_user(request, clock or clock_for(device), watch, module)
            if request.count_steps:
                from seqbench.measure.instructions import count_instructions

                return count_instructions(request)
            return _measure(request, clock or clock_for(device), watch)
    except CellTimeout as exc:
        status, message = "timeout", str(exc)
    except CellSkipped as exc:
        status, message = "skipped", str(exc)
    except SystemExit as exc:  # a model's sys.exit ends its cell, not the run
        status, message = "error", f"the model called sys.exit({exc.code!r})"
    except Exception as exc:  # a cell that fails is recorded, never fatal to the run
        status, message = ("oom" if is_out_of_memory(exc) else "error"), first_line(exc)
    finally:
        # Drop the failed cell's tensors before the next cell runs, and hand cached device
        # memory back, so that one out-of-memory cell does not starve the rest.
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return failure(cell, status, message, wall_s=watch.elapsed())


def _measure(request: CellRequest, clock: Clock, watch: Stopwatch) -> Measurement:
    cell, train = request.cell, request.train
    device = torch.device(cell.device)
    before = cuda_memory(device)
    task = (
        prepared(cell.task, cell.seq_len, cell.vocab, request.seed, train.data)
        if cell.task
        else None
    )
    work = build_workload(cell, request.seed, train, task, request.compile_backend)
    scores: dict[str, object] = {}
    curve: list[tuple[int, float, float]] = []
    if cell.compile:
        # The first call compiles (forward and, in training, backward); it is timed on its
        # own and never enters the samples. Warm-up then runs the compiled code.
        scores["compile_s"] = clock.time(work.step, 1)
    if task is not None and request.accuracy:
        trained = train_on_task(work, task, train, request.seed)
        scores.update(
            metric=task.metric,
            metric_value=trained.metric_value,
            chance_value=task.chance(),
            train_steps=trained.steps,
            train_time_s=trained.time_s,
            time_to_target_s=trained.time_to_target_s,
            validation_value=trained.validation_value,
            steps_to_target=trained.steps_to_target,
            train_budget=trained.budget,
            extrapolation=score_longer(work, task, train, request.seed),
        )
        curve = trained.curve
        # What the model may keep between tokens, beside what it recalls: the formula (held
        # equal to the live state in step mode, where the state itself is read instead), at
        # 4 bytes a number: the state follows the float32 embedding, under autocast too
        spec = get_arch(cell.arch)
        if spec.state_bytes is not None and work.model.core.step_unsupported() is None:
            scores["state_bytes"] = spec.state_bytes(core_shape(cell), cell.seq_len, 4)
        if cell.mode != "train":  # what training left behind is not part of an inference step
            work.optimizer.zero_grad(set_to_none=True)
            work.model.eval()
    if train.grad_flow:
        scores["memory_horizon"] = workload_horizon(work, task)
    if cell.mode == "step":
        kernel, note = work.model.core.step_implementation(cell.device, cell.dtype)
    else:
        kernel, note = work.model.core.implementation(cell.mode == "train", cell.device, cell.dtype)
    if cell.compile:
        compiled = f"compiled ({request.compile_backend})"
        note = f"{note}; {compiled}" if note else compiled
    if get_arch(cell.arch).forward_flops:
        flops = step_flops(cell)
    else:
        flops, uncounted = counted_flops(work)
        note = "; ".join(filter(None, (note, uncounted)))
    return time_workload(
        work, request, clock, watch, flops=flops, kernel=kernel, note=note,
        scores=scores, memory_before=before, curve=curve,
    )  # fmt: skip
