"""Measure one cell: build, warm up, time until the budget or precision is met, take memory.

Nothing here prints. `measure_cell` returns a `Measurement` (the row and its raw samples)
for every outcome: a cell that cannot run is a row with a status and a message, not an
exception, so one bad cell never costs the rest of a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from seqbench import devices, stats
from seqbench.config import MeasureSettings
from seqbench.models import build_model, count_parameters, get_arch, step_flops
from seqbench.schema import Cell, ResultRow
from seqbench.timing import Clock, clock_for

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# The seed's optimiser: Keras' RMSprop defaults (learning rate 1e-3, rho 0.9, eps 1e-7).
RMSPROP = {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7}


@dataclass
class Measurement:
    row: ResultRow
    samples: list[float] = field(default_factory=list)


class CellTimeout(BaseException):
    """Raised inside a cell that ran past its time limit. A BaseException, so that a model's
    own `except Exception` cannot swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise CellTimeout in this thread after `seconds` (SIGALRM; main thread, Unix only).

    Python checks for signals between bytecodes, so a cell stuck inside one long C++ call is
    stopped when that call returns; `--isolate` kills such a cell's process instead.
    """
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise CellTimeout(f"the cell ran past its {seconds:g} s limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def is_out_of_memory(exc: BaseException) -> bool:
    """Device OOM, or host memory exhaustion where torch or Python report it."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


@dataclass
class Workload:
    """A built model with its inputs, on its device, and the step that the clock times."""

    cell: Cell
    model: nn.Module
    step: Callable[[], object]
    optimizer: torch.optim.Optimizer | None
    inputs: list[torch.Tensor]
    params: int
    core_params: int


def _autocast(cell: Cell) -> contextlib.AbstractContextManager:
    if cell.dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(cell.device).type, dtype=DTYPES[cell.dtype])


def build_workload(cell: Cell, seed: int = 0) -> Workload:
    """Build the cell's model and inputs; the same seed gives the same weights and data."""
    device = torch.device(cell.device)
    torch.manual_seed(seed)
    model = build_model(cell)
    params, core_params = count_parameters(model), count_parameters(model.core)
    model.to(device)
    gen = torch.Generator().manual_seed(seed)
    # Inputs go to the device once, before any timing: host-to-device copies are not timed.
    tokens = torch.randint(1, cell.vocab, (cell.batch_size, cell.seq_len), generator=gen).to(device)
    labels = torch.randint(0, 2, (cell.batch_size, 1), generator=gen).float().to(device)

    if cell.mode == "infer":
        model.eval()

        def infer() -> object:
            with torch.inference_mode(), _autocast(cell):
                return model(tokens)

        return Workload(cell, model, infer, None, [tokens], params, core_params)

    model.train()
    optimizer = torch.optim.RMSprop(model.parameters(), **RMSPROP)
    loss_fn = nn.BCEWithLogitsLoss()
    scaler = (
        torch.amp.GradScaler(device.type)
        if cell.dtype == "float16" and device.type == "cuda"
        else None
    )

    def train() -> object:
        # One training step, timed as a whole: zero-grad, forward, loss, backward, update.
        optimizer.zero_grad(set_to_none=True)
        with _autocast(cell):
            loss = loss_fn(model(tokens).float(), labels)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return loss

    return Workload(cell, model, train, optimizer, [tokens, labels], params, core_params)


def sample_times(
    step: Callable[[], object], clock: Clock, settings: MeasureSettings
) -> tuple[list[float], int]:
    """Warm up, choose how many steps one sample spans, then collect per-step samples.

    Warm-up lasts at least `warmup_steps` steps and `warmup_time` seconds (cuDNN and oneDNN
    choose their algorithms on the first calls). Each sample then times `number` back-to-back
    steps, enough to last `min_sample_s`, so that clock overhead stays negligible. Sampling
    stops once there are `min_repeats` samples and either `min_time` seconds were timed or
    the median's confidence interval is within `precision`; never after `max_repeats`.
    """
    warm_steps, warm_time, last = 0, 0.0, 0.0
    while warm_steps < max(settings.warmup_steps, 1) or warm_time < settings.warmup_time:
        last = clock.time(step, 1)
        warm_steps += 1
        warm_time += last
    number = max(1, math.ceil(settings.min_sample_s / last)) if last > 0 else 1
    samples: list[float] = []
    timed = 0.0
    while len(samples) < settings.max_repeats:
        elapsed = clock.time(step, number)
        samples.append(elapsed / number)
        timed += elapsed
        if len(samples) < settings.min_repeats:
            continue
        if timed >= settings.min_time:
            break
        if settings.precision > 0 and stats.relative_ci_halfwidth(samples) <= settings.precision:
            break
    return samples, number


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2: the profiler's C++ side logs start/stop lines there."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _owned_bytes(work: Workload) -> int:
    """Bytes held by the cell between steps: weights, gradients, optimiser state, inputs."""
    tensors: list[torch.Tensor] = list(work.inputs)
    for p in work.model.parameters():
        tensors.append(p)
        if p.grad is not None:
            tensors.append(p.grad)
    if work.optimizer is not None:
        for state in work.optimizer.state.values():
            tensors.extend(v for v in state.values() if isinstance(v, torch.Tensor))
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def cpu_peak_bytes(work: Workload) -> int:
    """Peak bytes of live tensors during one step on the CPU.

    The bytes the cell holds between steps, plus the highest point of the running sum of
    every allocation and free that torch's CPU allocator reports to the profiler during one
    more step. Memory a library allocates behind torch's back (oneDNN scratch space) is not
    seen; neither is the Python interpreter's own.
    """
    from torch.profiler import ProfilerActivity, profile

    resident = _owned_bytes(work)
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        work.step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    running = peak = 0
    for event in events:
        running += event.nbytes()
        peak = max(peak, running)
    return resident + peak


def cuda_peak_bytes(work: Workload, before_cell: int) -> int:
    """Peak allocated device memory during one step, net of what was allocated before the cell."""
    device = torch.device(work.cell.device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    work.step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before_cell


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def skip_reason(cell: Cell) -> str | None:
    """Why a cell cannot run here, before anything is built; None if it can."""
    reason = devices.unavailable_reason(cell.device)
    if reason:
        return reason
    spec = get_arch(cell.arch)
    if cell.seq_len < spec.min_seq_len:
        return f"{cell.arch} needs seq_len >= {spec.min_seq_len}"
    return None


def measure_cell(
    cell: Cell,
    settings: MeasureSettings,
    *,
    seed: int = 0,
    clock: Clock | None = None,
    memory: bool = True,
    timeout: float | None = None,
) -> Measurement:
    """Everything seqbench records for one cell. Never raises for a cell that fails, runs
    out of memory or out of time (`timeout` seconds for the whole cell); only a
    KeyboardInterrupt gets through."""
    started = time.perf_counter()
    flops = step_flops(cell)
    reason = skip_reason(cell)
    if reason:
        return Measurement(
            ResultRow.for_cell(cell, flops_per_seq=flops, status="skipped", message=reason)
        )
    device = torch.device(cell.device)
    try:
        with time_limit(timeout):
            return _measure(
                cell, settings, seed, clock or clock_for(device), memory, flops, started
            )
    except CellTimeout as exc:
        status, message = "timeout", str(exc)
    except Exception as exc:  # a cell that fails is recorded, never fatal to the run
        status, message = ("oom" if is_out_of_memory(exc) else "error"), _first_line(exc)
    finally:
        # Drop the failed cell's tensors before the next cell runs, and hand cached device
        # memory back, so that one out-of-memory cell does not starve the rest.
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    row = ResultRow.for_cell(
        cell,
        flops_per_seq=flops,
        status=status,
        message=message,
        wall_s=time.perf_counter() - started,
    )
    return Measurement(row)


def _measure(
    cell: Cell,
    settings: MeasureSettings,
    seed: int,
    clock: Clock,
    memory: bool,
    flops: int | None,
    started: float,
) -> Measurement:
    device = torch.device(cell.device)
    before_cell = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    work = build_workload(cell, seed)
    kernel, note = work.model.core.implementation(cell.mode == "train", cell.device, cell.dtype)
    samples, number = sample_times(work.step, clock, settings)
    peak, source = None, ""
    if memory and device.type == "cuda":
        peak, source = cuda_peak_bytes(work, before_cell), "cuda_max_allocated"
    elif memory and device.type == "cpu":
        peak, source = cpu_peak_bytes(work), "cpu_profiler"
    row = ResultRow.for_cell(
        cell,
        params=work.params,
        core_params=work.core_params,
        flops_per_seq=flops,
        kernel=kernel,
        kernel_note=note,
        inner_loops=number,
        rounds=1,
        peak_mem_bytes=peak,
        mem_source=source,
        wall_s=time.perf_counter() - started,
        **timing_fields(cell, flops, samples),
    )
    return Measurement(row, samples)


def timing_fields(
    cell: Cell, flops: int | None, samples: list[float]
) -> dict[str, float | int | None]:
    """The row's timing statistics and throughput, from its per-step samples."""
    summary = stats.summarize(samples)
    per_step = summary.median
    return {
        "median_s": summary.median,
        "iqr_s": summary.iqr,
        "ci_low_s": summary.ci_low,
        "ci_high_s": summary.ci_high,
        "min_s": summary.minimum,
        "repeats": summary.n,
        "seq_per_s": cell.batch_size / per_step,
        "tokens_per_s": cell.tokens / per_step,
        "tflops": None if flops is None else flops * cell.batch_size / per_step / 1e12,
    }


def _larger(a: int | None, b: int | None) -> int | None:
    return max(a, b) if a is not None and b is not None else (a if b is None else b)


def merge_rounds(earlier: Measurement, later: Measurement) -> Measurement:
    """One cell measured in two passes, as one row: samples pooled, statistics recomputed.

    A pass that fails makes the cell fail: its row (status and message) replaces the rest.
    """
    rounds = (earlier.row.rounds or 1) + 1
    if later.row.status != "ok":
        return Measurement(dataclasses.replace(later.row, rounds=rounds))
    samples = [*earlier.samples, *later.samples]
    row = dataclasses.replace(
        earlier.row,
        rounds=rounds,
        inner_loops=_larger(earlier.row.inner_loops, later.row.inner_loops),
        peak_mem_bytes=_larger(earlier.row.peak_mem_bytes, later.row.peak_mem_bytes),
        peak_rss_bytes=_larger(earlier.row.peak_rss_bytes, later.row.peak_rss_bytes),
        wall_s=(earlier.row.wall_s or 0.0) + (later.row.wall_s or 0.0),
        **timing_fields(earlier.row.cell, earlier.row.flops_per_seq, samples),
    )
    return Measurement(row, samples)
