"""The machine's speed at the moment a cell was timed: a fixed reference step, timed in the
cell's own process just before and just after its samples.

On a shared virtual machine a process sometimes runs its whole window in a slow mode: beside
one busy process on this project's 2-core machine, one process in 24 took every step of a
small inference cell 1.51x slower than the others, its fastest steps too, and one run in
three had one to three such processes of five; two runs made minutes apart differed by up to
37%. None of it is the code's doing, and none of it is visible from inside, except by timing
something that never changes. The reference step here slowed with the cell (x1.67 in that
process, and a pure-Python loop x1.67 too), so a cell's time relative to the reference
keeps what the code did and loses most of what the machine did: across those 24 processes
the cell's lower quartile spread by 8.7% (standard deviation of its log), its ratio to the
reference by 2.4% (`benchmarks/machine_reference.py` measures it again).

`compare` judges two runs on those ratios where both timed the reference and their
environments match (a different torch, CPU or kernel setting would change the reference
as well as the cell); the raw times stay what every table shows.

The step is small matrix products and tanh (ATen's CPU kernels, as a model's step uses
them, at the cell's thread count), about 80 µs here; two blocks of `BLOCK_S` each cost
about 20 ms a pass, taken only where a cell is measured in two or more processes on a CPU.
The blocks stand outside the samples, so the cell's own figures are untouched. Change the
step and the samples file's column name together (storage.csvio.SAMPLES_COLUMNS): times of
two different steps are not comparable.
"""

from __future__ import annotations

import time

import numpy as np
import torch

BLOCK_S = 0.01  # seconds of reference steps before, and again after, a pass's samples
MIN_STEPS = 20  # at least this many in a block, however slow the machine
QUANTILE = 25  # the machine's time is the lower quartile of its steps, as a process's speed
SIZE, DEPTH = 96, 4

_inputs: tuple[torch.Tensor, torch.Tensor] | None = None


def _step() -> None:
    global _inputs
    if _inputs is None:
        generator = torch.Generator().manual_seed(0)
        _inputs = (
            torch.randn(SIZE, SIZE, generator=generator),
            torch.randn(SIZE, SIZE, generator=generator) / SIZE**0.5,
        )
    x, w = _inputs
    with torch.no_grad():
        for _ in range(DEPTH):
            x = torch.tanh(x @ w)


def block(seconds: float = BLOCK_S, min_steps: int = MIN_STEPS) -> list[float]:
    """Time the reference step back to back for `seconds` (at least `min_steps` times)."""
    times: list[float] = []
    clock = time.perf_counter
    end = clock() + seconds
    while len(times) < min_steps or clock() < end:
        start = clock()
        _step()
        times.append(clock() - start)
    return times


def machine_seconds(*blocks: list[float]) -> float:
    """The machine's reference time from blocks of steps: their pooled lower quartile."""
    pooled = [t for b in blocks for t in b]
    return float(np.percentile(pooled, QUANTILE))
