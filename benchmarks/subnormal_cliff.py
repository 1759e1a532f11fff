"""Does this CPU slow down on subnormal floats, and does it show in a training step?

When gradients vanish (the seed's subject) they pass through the subnormal range on their
way to zero, and on many x86 CPUs arithmetic on subnormals takes a slow microcode path.
seqbench flushes them to zero by default (as Keras on TensorFlow does); this script shows
what that buys on the machine it runs on:

1. an elementwise product of subnormal vs normal floats, flush on and off;
2. an LSTM training step (hidden 128, batch 32, loss on the last output) at growing
   lengths, flush on and off, measured by seqbench itself.

    python benchmarks/subnormal_cliff.py
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from seqbench.core.devices import cpu_name
from seqbench.core.request import CellRequest
from seqbench.core.schema import Cell
from seqbench.core.settings import MeasureSettings
from seqbench.measure import measure


def elementwise_us(x: torch.Tensor, y: torch.Tensor, repeats: int = 50) -> float:
    for _ in range(3):
        x * y
    start = time.perf_counter()
    for _ in range(repeats):
        x * y
    return (time.perf_counter() - start) / repeats * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lengths", default="64,128,160,192,256", help="LSTM lengths to time, comma-separated"
    )
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of samples per cell")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    normal = torch.full((1 << 20,), 0.5)
    subnormal = torch.full((1 << 20,), 1e-39)
    print("\nelementwise product of 2^20 floats (mean of 50):")
    for flush in (False, True):
        torch.set_flush_denormal(flush)
        a, b = elementwise_us(normal, normal), elementwise_us(subnormal, normal)
        print(
            f"  flush={flush!s:<5}  normal {a:7.0f} µs   subnormal {b:7.0f} µs   ratio {b / a:5.2f}"
        )

    base = Cell("lstm", 64, 32, 128, 1, False, 0.0, 0.0, 10_000, 32, "cpu", "float32", "train")
    settings = MeasureSettings(min_time=args.min_time)
    print("\nLSTM training step, hidden 128, batch 32 (seqbench medians):")
    print(f"  {'T':>5}  {'flushed':>10}  {'kept':>10}  kept/flushed")
    for seq_len in (int(t) for t in args.lengths.split(",")):
        cell = dataclasses.replace(base, seq_len=seq_len)
        times = {}
        for flush in (True, False):
            torch.set_flush_denormal(flush)
            times[flush] = measure(CellRequest(cell, settings, memory=False)).row.median_s
        print(
            f"  {seq_len:>5}  {times[True] * 1e3:8.2f}ms  {times[False] * 1e3:8.2f}ms  {times[False] / times[True]:8.2f}"
        )
    torch.set_flush_denormal(True)


if __name__ == "__main__":
    main()
