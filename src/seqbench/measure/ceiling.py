"""The device's matmul ceiling: the FLOP/s that `mfu` divides by."""

from __future__ import annotations

import torch

from seqbench.core.settings import MeasureSettings
from seqbench.core.timing import Clock, clock_for
from seqbench.judge import noise
from seqbench.machine import system
from seqbench.measure.sampling import sample_times
from seqbench.measure.workload import DTYPES

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


def measure_ceiling_with_noise(device: str, dtype: str) -> tuple[float, str]:
    """The ceiling, and why other work makes it untrustworthy ('' when it does not): the
    same interference rule as a cell's (seqbench.judge.noise)."""
    from types import SimpleNamespace

    before = system.read_counters()
    tflops = measure_ceiling(device, dtype)
    threads = torch.get_num_threads()
    seen = system.interference(before, system.read_counters(), threads=threads, steps=1)
    row = SimpleNamespace(
        median_s=None, device=device, threads=threads, cpus=system.usable_cpus(), **seen
    )
    return tflops, noise.flag(row)
