"""Which steps does other work on the CPUs slow down? The fastest tenth, by step length.

Other processes share a CPU in time slices: a step shorter than a slice often runs whole
between two of them, so its fastest tenth keeps its time while its median and slow tail
grow; a step longer than a slice is cut every time. seqbench's `compare` keeps a change
found on one thread beside other work when the fastest tenth of the steps is shorter than
`noise.SLICE_S` (seqbench.judge.noise). This script measures the premise: one-thread steps
of several lengths (chains of 64x64 matrix products), each timed for `--seconds` in a fresh
process, quiet and beside `--busy` spinning processes, in alternating rounds; it prints
each length's fastest tenth, lower quartile and median beside other work over quiet
(medians over the rounds).

    python benchmarks/time_slices.py --busy 2 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PROBE = """
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
depth, seconds = int(sys.argv[1]), float(sys.argv[2])
a, b = torch.randn(64, 64), torch.randn(64, 64) / 8
def step():
    c = a
    for _ in range(depth):
        c = torch.tanh(c @ b)
for _ in range(50):
    step()
times, end = [], time.perf_counter() + seconds
while time.perf_counter() < end:
    start = time.perf_counter(); step(); times.append(time.perf_counter() - start)
print(json.dumps([float(np.percentile(times, q)) for q in (10, 25, 50)]))
"""


def probe(depth: int, seconds: float) -> list[float]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(depth), str(seconds)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def main() -> int:
    from neighbours import busy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=2, help="spinning processes beside")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--depths", default="40,150,400,900", help="products per step")
    args = parser.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    ratios: dict[int, list[list[float]]] = {d: [] for d in depths}
    quiet_median: dict[int, list[float]] = {d: [] for d in depths}
    for _ in range(args.rounds):
        for depth in depths:
            quiet = probe(depth, args.seconds)
            with busy(args.busy):
                loaded = probe(depth, args.seconds)
            ratios[depth].append([x / q for x, q in zip(loaded, quiet, strict=True)])
            quiet_median[depth].append(quiet[2])
    print(f"{args.busy} busy processes beside, {args.rounds} rounds of {args.seconds:g} s")
    print(f"{'step (quiet median)':>20}{'fastest tenth':>15}{'lower quartile':>16}{'median':>9}")
    for depth in depths:
        by_quantile = [statistics.median(r[i] for r in ratios[depth]) for i in range(3)]
        step = statistics.median(quiet_median[depth]) * 1e3
        print(f"{step:>17.2f} ms" + "".join(f"{x:>15.3f}" for x in by_quantile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
