"""How long the matmul ceiling (the rate `mfu` divides by) needs to be measured for.

    python benchmarks/ceiling_budget.py                       # 10 rounds, 0.3 s against 0.1 s
    python benchmarks/ceiling_budget.py --rounds 20 --threads 1 --budgets 0.3,0.1,0.05

A run measures the ceiling once, before its first row is saved: its budget is start-up time
every run pays. Each round measures it once with each budget (`min_time` seconds of samples
a product, a third of that warming up), each in a fresh process, in alternating order, so
that the machine's drift weighs on every budget alike. Prints, per budget, the median
ceiling, its spread over the rounds, the median time it took, and its ratio to the first
budget's ceiling: a shorter budget is as good where the ratio stays within the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import dataclasses, json, sys, time
import torch
from seqbench.measure import ceiling
threads, budget = int(sys.argv[1]), float(sys.argv[2])
if threads:
    torch.set_num_threads(threads)
torch.set_flush_denormal(True)
ceiling.CEILING_BUDGET = dataclasses.replace(
    ceiling.CEILING_BUDGET, min_time=budget, warmup_time=budget / 3
)
start = time.perf_counter()
tflops = ceiling.measure_ceiling("cpu", "float32")
print(json.dumps({"tflops": tflops, "s": time.perf_counter() - start}))
"""


def one(threads: int, budget: float) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(threads), str(budget)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--budgets", default="0.3,0.1")
    options = parser.parse_args()
    budgets = [float(b) for b in options.budgets.split(",")]
    found: dict[float, list[dict[str, float]]] = {b: [] for b in budgets}
    started = time.perf_counter()
    for number in range(options.rounds):
        order = budgets if number % 2 == 0 else budgets[::-1]
        for budget in order:
            found[budget].append(one(options.threads, budget))
    first = statistics.median(f["tflops"] for f in found[budgets[0]])
    print(f"{options.rounds} rounds, threads {options.threads or 'default'}, "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    print(
        f"{'budget':>8} {'ceiling GFLOP/s (median)':>25} {'min-max':>17} {'took':>7} {'ratio':>7}"
    )
    for budget in budgets:
        rates = [f["tflops"] * 1e3 for f in found[budget]]
        took = statistics.median(f["s"] for f in found[budget])
        median = statistics.median(rates)
        print(f"{budget:>7g}s {median:>25.1f} {min(rates):>8.1f}-{max(rates):<8.1f} "
              f"{took:>6.2f}s {median / 1e3 / first:>7.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
