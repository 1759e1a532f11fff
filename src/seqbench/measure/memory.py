"""Peak memory of one step: the CPU allocator's running sum, or CUDA's allocator peaks; and
what the operating system says of this process (resident set, page faults)."""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

from seqbench.measure.workload import Workload


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


def owned_bytes(work: Workload) -> int:
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
    # The autograd profiler that torch.profiler.profile wraps: the wrapper's start asks
    # hasattr(torch, "_inductor"), which imports the compiler (1.3 s of a worker's first
    # cell); the allocation events are the same.
    from torch.autograd.profiler import profile

    gc.collect()  # garbage freed (or collected) mid-step would blur the running sum
    resident = owned_bytes(work)

    with _quiet_stderr(), profile(use_cpu=True, profile_memory=True) as prof:
        work.step()
    events = [e for e in prof.kineto_results.events() if e.name() == "[memory]"]
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


def minor_faults() -> int:
    """Minor page faults of this process so far (all threads)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def current_rss_bytes() -> int:
    """Resident set size now (Linux); 0 where /proc is missing."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def max_rss_bytes() -> int:
    """This process's resident-set high-water mark (kilobytes on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
