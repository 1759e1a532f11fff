"""The one timing path: a built workload's step timed on a Clock, its memory and its noise,
into a row. seqbench's own models and a user's module (seqbench.api) both end here."""

from __future__ import annotations

import dataclasses
import socket

import torch

from seqbench.core import devices
from seqbench.core.request import CellRequest
from seqbench.core.schema import Measurement, ResultRow
from seqbench.core.timing import Clock, Stopwatch
from seqbench.judge import noise
from seqbench.machine import system
from seqbench.measure import reference
from seqbench.measure.memory import cpu_peak_bytes, cuda_memory, cuda_peak_bytes, minor_faults
from seqbench.measure.sampling import take_samples, timing_fields, warm_up
from seqbench.measure.workload import Workload


def time_workload(
    work: Workload,
    request: CellRequest,
    clock: Clock,
    watch: Stopwatch,
    *,
    flops: int | None,
    kernel: str = "",
    note: str = "",
    scores: dict[str, object] | None = None,
    memory_before: tuple[int, int] | None = None,
    curve: list[tuple[int, float, float]] | None = None,
) -> Measurement:
    """Time a built workload's step and take its memory and noise: the one timing path,
    for seqbench's own models and for a user's module (seqbench.api) alike. Warm-up, the
    stopping rule and the statistics follow `request.measure`; `memory_before` is the CUDA
    allocator's (allocated, reserved) bytes before the workload was built; `curve` is the
    learning curve that training recorded, carried with the measurement."""
    cell = work.cell
    device = torch.device(cell.device)
    scores = dict(scores or {})
    before = memory_before or cuda_memory(device)
    settings = request.measure
    number = warm_up(work.step, clock, settings)
    # The machine's speed on both sides of the samples, for judging across processes.
    probe = settings.processes >= 2 and device.type == "cpu"
    before_ref = reference.block() if probe else []
    faults_before, counters = minor_faults(), system.read_counters()
    samples = take_samples(work.step, clock, settings, number)
    steps = len(samples) * number
    threads = torch.get_num_threads()
    scores.update(
        system.interference(counters, system.read_counters(), threads=threads, steps=steps),
        threads=threads,
        cpus=system.usable_cpus(),
        faults_per_step=(minor_faults() - faults_before) / steps,
        state_bytes=work.state_bytes[0] if work.state_bytes else scores.get("state_bytes"),
    )
    machine = reference.machine_seconds(before_ref, reference.block()) if probe else None
    peak, source = None, ""
    if request.memory and device.type == "cuda":
        peak, scores["peak_reserved_bytes"] = cuda_peak_bytes(work, before)
        source = "cuda_max_allocated"
    elif request.memory and device.type == "cpu":
        peak, source = cpu_peak_bytes(work), "cpu_profiler"
    if device.type == "cuda" and cell.dtype == "float32":
        scores["tf32"] = bool(
            torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        )
    row = ResultRow.for_cell(
        cell,
        params=work.params,
        core_params=work.core_params,
        params_keras=work.params_keras,
        flops_per_seq=flops,
        kernel=kernel,
        kernel_note=note,
        inner_loops=number,
        rounds=1,
        peak_mem_bytes=peak,
        mem_source=source,
        host=socket.gethostname(),
        device_name=devices.device_name(cell.device),
        wall_s=watch.elapsed(),
        **timing_fields(cell, flops, samples),
        **scores,
    )
    return Measurement(
        dataclasses.replace(row, noisy=noise.flag(row)), samples, list(curve or []), machine
    )
