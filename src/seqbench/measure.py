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
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from seqbench import devices, stats
from seqbench.config import MeasureSettings, TrainSettings
from seqbench.gradflow import input_gradient_norms, memory_horizon
from seqbench.models import build_model, count_parameters, get_arch, step_flops
from seqbench.schema import Cell, Measurement, ResultRow  # Measurement: re-exported
from seqbench.tasks import Task, new_task, prepared
from seqbench.timing import Clock, clock_for
from seqbench.train import train_task

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# Sequences the input-gradient profile is averaged over (the `memory_horizon` column).
GRAD_FLOW_BATCH = 64

# The seed's optimiser: Keras' RMSprop defaults (learning rate 1e-3, rho 0.9, eps 1e-7).
RMSPROP = {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7}


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
    train_step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _autocast(cell: Cell) -> contextlib.AbstractContextManager:
    if cell.dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(cell.device).type, dtype=DTYPES[cell.dtype])


def make_optimizer(kind: str, params, lr: float) -> torch.optim.Optimizer:
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.RMSprop(params, **{**RMSPROP, "lr": lr})


def build_workload(
    cell: Cell,
    seed: int = 0,
    train: TrainSettings | None = None,
    task: Task | None = None,
    compile_backend: str = "inductor",
) -> Workload:
    """Build the cell's model and inputs; the same seed gives the same weights and data.

    Without a task the inputs are random token ids and labels (the seed's classifier, with
    RMSprop); with one, a batch of the task's training data and the task's loss, with Adam
    and gradient clipping for synthetic tasks or RMSprop for IMDB, unless `train` says else.
    """
    train = train or TrainSettings()
    device = torch.device(cell.device)
    torch.manual_seed(seed)
    model = build_model(cell)
    params, core_params = count_parameters(model), count_parameters(model.core)
    model.to(device)
    # Steps call the compiled module; the eager one stays for its parameters and modes.
    forward = torch.compile(model, backend=compile_backend) if cell.compile else model
    gen = torch.Generator().manual_seed(seed)
    if task is None:
        x = torch.randint(1, cell.vocab, (cell.batch_size, cell.seq_len), generator=gen)
        y = torch.randint(0, 2, (cell.batch_size, 1), generator=gen).float()
        loss_fn = _binary_loss
        kind = train.optimizer or "rmsprop"
    else:
        batch = task.train_batch(cell.batch_size, gen)
        x, y = batch.x, batch.y
        loss_fn = task.loss
        kind = train.optimizer or task.optimizer
    # Inputs go to the device once, before any timing: host-to-device copies are not timed.
    x, y = x.to(device), y.to(device)
    optimizer = make_optimizer(kind, model.parameters(), train.lr)
    clip = train.clip if kind == "adam" else 0.0
    scaler = (
        torch.amp.GradScaler(device.type)
        if cell.dtype == "float16" and device.type == "cuda"
        else None
    )

    def train_step(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        # One training step, timed as a whole: zero-grad, forward, loss, backward, update.
        optimizer.zero_grad(set_to_none=True)
        with _autocast(cell):
            loss = loss_fn(forward(xb), yb)
        if scaler is not None:
            loss = scaler.scale(loss)
        loss.backward()
        if scaler is not None:
            scaler.unscale_(optimizer)
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        return loss

    if cell.mode == "step":
        return _streaming(cell, model, forward, optimizer, x, params, core_params, train_step)
    if cell.mode == "infer":
        model.eval()

        def infer() -> object:

            with torch.inference_mode(), _autocast(cell):
                return forward(x)

        return Workload(cell, model, infer, optimizer, [x], params, core_params, train_step)
    model.train()
    return Workload(
        cell, model, lambda: train_step(x, y), optimizer, [x, y], params, core_params, train_step
    )


class CellSkipped(Exception):
    """A cell that cannot run for a reason of the model (raised while building it)."""


def _streaming(cell, model, forward, optimizer, x, params, core_params, train_step) -> Workload:
    """One token of streaming inference: the state after the first T-1 tokens is built once
    (untimed), and each timed step feeds token T from that same state, so every sample costs
    what the T-th token costs; nothing accumulates between samples."""
    core = model.core
    reason = core.step_unsupported()
    if reason:
        raise CellSkipped(f"no streaming step: {reason}")
    model.eval()
    device = torch.device(cell.device)
    inputs = [x]
    carried: list[object] = []
    last = x[:, -1:]  # the T-th token, through the adapter inside the timed step

    def prefill() -> object:
        # On the first call (a warm-up call, after any training): the weights are final.
        with torch.inference_mode(), _autocast(cell):
            h = model.adapter(x)  # (B, T, I)
            state = core.init_state(cell.batch_size, device, h.dtype)
            for t in range(cell.seq_len - 1):
                _, state = core.step(h[:, t], state)
        inputs.extend(_tensors(state))  # the state is memory the step holds
        carried.append(state)
        return state

    def step() -> object:
        state = carried[0] if carried else prefill()
        with torch.inference_mode(), _autocast(cell):
            y, _ = core.step(model.adapter(last)[:, 0], state)  # (B, F)
            return model.head(y)

    return Workload(cell, model, step, optimizer, inputs, params, core_params, train_step)


def _tensors(state: object) -> list[torch.Tensor]:
    """Every tensor inside a (nested) streaming state, for the memory it holds."""
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, (tuple, list)):
        return [t for item in state for t in _tensors(item)]
    return []


def _binary_loss(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(output.float(), y)


def sample_times(
    step: Callable[[], object], clock: Clock, settings: MeasureSettings
) -> tuple[list[float], int]:
    """Warm up, choose how many steps one sample spans, then collect per-step samples."""
    number = warm_up(step, clock, settings)
    return take_samples(step, clock, settings, number), number


def warm_up(step: Callable[[], object], clock: Clock, settings: MeasureSettings) -> int:
    """Run untimed steps for at least `warmup_steps` steps and `warmup_time` seconds (cuDNN
    and oneDNN choose their algorithms on the first calls); return how many back-to-back
    steps one sample should span to last `min_sample_s`, so clock overhead stays negligible."""
    warm_steps, warm_time, last = 0, 0.0, 0.0
    while warm_steps < max(settings.warmup_steps, 1) or warm_time < settings.warmup_time:
        last = clock.time(step, 1)
        warm_steps += 1
        warm_time += last
    return max(1, math.ceil(settings.min_sample_s / last)) if last > 0 else 1


def take_samples(
    step: Callable[[], object], clock: Clock, settings: MeasureSettings, number: int
) -> list[float]:
    """Per-step samples of `number` steps each, until there are `min_repeats` of them and
    either `min_time` seconds were timed or the median's confidence interval is within
    `precision`; never more than `max_repeats`."""
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
    return samples


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
    training = work.cell.mode == "train"
    for p in work.model.parameters():
        tensors.append(p)
        if p.grad is not None and training:
            tensors.append(p.grad)
    if work.optimizer is not None and training:
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

    gc.collect()  # garbage freed (or collected) mid-step would blur the running sum
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


def cuda_memory(device: torch.device) -> tuple[int, int]:
    """(allocated, reserved) bytes on a CUDA device now; zeros elsewhere."""
    if device.type != "cuda":
        return 0, 0
    return torch.cuda.memory_allocated(device), torch.cuda.memory_reserved(device)


def cuda_peak_bytes(work: Workload, before: tuple[int, int]) -> tuple[int, int]:
    """Peak allocated and reserved device memory during one step, net of what was allocated
    (reserved) before the cell was built: weights, optimiser state, inputs, activations and
    workspaces, but not what earlier cells or other code left on the device."""
    device = torch.device(work.cell.device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    work.step()
    torch.cuda.synchronize(device)
    allocated = torch.cuda.max_memory_allocated(device) - before[0]
    reserved = torch.cuda.max_memory_reserved(device) - before[1]
    return allocated, reserved


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
    if cell.task:
        task = new_task(cell.task)
        if cell.seq_len < task.min_seq_len:
            return f"the {cell.task} task needs seq_len >= {task.min_seq_len}"
        if task.readout == "sequence" and not spec.per_step:
            return (
                f"the {cell.task} task needs one output per step, which {cell.arch} does not give"
            )
    return None


def measure_cell(
    cell: Cell,
    settings: MeasureSettings,
    *,
    seed: int = 0,
    clock: Clock | None = None,
    memory: bool = True,
    timeout: float | None = None,
    train: TrainSettings | None = None,
    accuracy: bool = True,
    compile_backend: str = "inductor",
) -> Measurement:
    """Everything seqbench records for one cell. Never raises for a cell that fails, runs
    out of memory or out of time (`timeout` seconds for the whole cell); only a
    KeyboardInterrupt gets through.

    A cell with a task is trained (`train` settings) and scored first, unless `accuracy`
    is off (later rounds only add timing samples); then its speed is measured like any
    other cell's, on the trained model and a batch of the task's data."""
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
                cell,
                settings,
                seed,
                clock or clock_for(device),
                memory,
                flops,
                started,
                train or TrainSettings(),
                accuracy,
                compile_backend,
            )

    except CellTimeout as exc:
        status, message = "timeout", str(exc)
    except CellSkipped as exc:
        status, message = "skipped", str(exc)

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
    train: TrainSettings,
    accuracy: bool,
    compile_backend: str,
) -> Measurement:
    device = torch.device(cell.device)
    before = cuda_memory(device)
    task = prepared(cell.task, cell.seq_len, cell.vocab, seed, train.data) if cell.task else None
    work = build_workload(cell, seed, train, task, compile_backend)
    scores: dict[str, object] = {}
    if cell.compile:
        # The first call compiles (forward and, in training, backward); it is timed on its
        # own and never enters the samples. Warm-up then runs the compiled code.
        devices.synchronize(device)
        start = time.perf_counter()
        work.step()
        devices.synchronize(device)
        scores["compile_s"] = time.perf_counter() - start
    if task is not None and accuracy:
        trained = train_on_task(work, task, train, seed)
        scores = {
            "metric": task.metric,
            "metric_value": trained.metric_value,
            "chance_value": task.chance(),
            "train_steps": trained.steps,
            "train_time_s": trained.time_s,
            "time_to_target_s": trained.time_to_target_s,
        }
        if cell.mode != "train":  # what training left behind is not part of an inference step
            work.optimizer.zero_grad(set_to_none=True)
            work.model.eval()
    if train.grad_flow:
        scores["memory_horizon"] = memory_horizon(
            input_gradient_norms(work.model, gradient_probe(work, task))
        )
        work.model.train(cell.mode == "train")
        work.model.zero_grad(set_to_none=True)
    if cell.mode == "step":
        kernel, note = work.model.core.step_implementation(cell.device, cell.dtype)
    else:
        kernel, note = work.model.core.implementation(cell.mode == "train", cell.device, cell.dtype)
    if cell.compile:
        note = f"{note}; compiled ({compile_backend})" if note else f"compiled ({compile_backend})"
    number = warm_up(work.step, clock, settings)
    faults_before = _minor_faults()
    samples = take_samples(work.step, clock, settings, number)
    if faults_before is not None:
        scores["faults_per_step"] = (_minor_faults() - faults_before) / (len(samples) * number)
    peak, source = None, ""
    if memory and device.type == "cuda":
        peak, scores["peak_reserved_bytes"] = cuda_peak_bytes(work, before)
        source = "cuda_max_allocated"
    elif memory and device.type == "cpu":
        peak, source = cpu_peak_bytes(work), "cpu_profiler"
    if device.type == "cuda" and cell.dtype == "float32":
        scores["tf32"] = bool(
            torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        )
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
        host=socket.gethostname(),
        device_name=devices.device_name(cell.device),
        wall_s=time.perf_counter() - started,
        **timing_fields(cell, flops, samples),
        **scores,
    )

    return Measurement(row, samples)


def _minor_faults() -> int | None:
    """Minor page faults of this process so far (all threads); None where unknown."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


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


def train_on_task(work: Workload, task: Task, train: TrainSettings, seed: int):
    """Train the workload's model on its task (see train.train_task)."""
    cell = work.cell
    return train_task(
        work.model, work.train_step, task, train, batch_size=cell.batch_size,
        device=torch.device(cell.device), autocast=lambda: _autocast(cell), seed=seed,
    )  # fmt: skip


def gradient_probe(work: Workload, task: Task | None) -> torch.Tensor:
    """The inputs a gradient profile is averaged over: the task's held-out sequences, or
    the cell's own random tokens."""
    probe = task.eval_set().x[:GRAD_FLOW_BATCH] if task is not None else work.inputs[0]
    return probe.to(work.cell.device)


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


# Square matmul sizes for the ceiling: large enough to reach the device's peak rate.
CEILING_SIZE = {"cuda": 8192, "mps": 4096, "cpu": 1024}
CEILING_BUDGET = MeasureSettings(min_time=0.3, min_repeats=5, max_repeats=200, warmup_time=0.1)


def measure_ceiling(
    device: str, dtype: str, *, clock: Clock | None = None, size: int | None = None
) -> float:
    """TFLOP/s of a large square matrix product in `dtype` on `device`: the rate the device
    reaches on the most favourable work there is, which `mfu` divides by. Float32 on CUDA
    follows the TF32 setting in effect, as the cells do."""
    dev = torch.device(device)
    n = size or CEILING_SIZE.get(dev.type, 1024)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dev, DTYPES[dtype])
    b = torch.randn(n, n, generator=gen).to(dev, DTYPES[dtype])
    products = [lambda: a @ b]
    if dev.type == "cpu" and torch.backends.mkldnn.is_available() and dtype != "float16":
        # On the CPU the fastest product may be oneDNN's, not the BLAS behind torch.mm (on
        # this project's AMD machine: 475 against 206 GFLOP/s in float32), and oneDNN is
        # what the fused LSTM and the convolutions run on: take the better of the two.
        am, bm = a.to_mkldnn(), b.to_mkldnn()
        products.append(lambda: torch.nn.functional.linear(am, bm))
    clock = clock or clock_for(dev)
    # The fastest sample: a ceiling is the best the device did, not its typical moment.
    best = min(min(sample_times(product, clock, CEILING_BUDGET)[0]) for product in products)
    return 2 * n**3 / best / 1e12
