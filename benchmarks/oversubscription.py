"""Why two OpenMP threads under load can cost a thousand times one: measure it.

For each combination of torch threads (1, 2) and OpenMP wait policy (unset, ACTIVE,
PASSIVE), a fresh process times one cell with seqbench (the policy is read when the OpenMP
runtime starts, so it must be in the environment before torch is imported). The
combinations alternate over `--rounds` rounds, while `--busy N` processes spin on the CPU
beside them, and the script prints each combination's median step time and the median
share of its CPU time (user + system over wall x threads):

    python benchmarks/oversubscription.py --busy 0 --rounds 3
    python benchmarks/oversubscription.py --busy 6 --rounds 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys

PROBE = """
import json, os, sys, time
import torch
from seqbench.measure import measure
from seqbench.core.request import CellRequest
from seqbench.core.schema import Cell
from seqbench.core.settings import MeasureSettings
torch.set_num_threads(int(sys.argv[1]))
cell = Cell(sys.argv[2], int(sys.argv[3]), 32, 32, 1, sys.argv[4] == "bi", 0.0, 0.0, 10000, 32,
            "cpu", "float32", sys.argv[5])
settings = MeasureSettings(min_time=float(sys.argv[6]), max_repeats=200)
before, start = os.times(), time.perf_counter()
row = measure(CellRequest(cell, settings, memory=False)).row
wall, after = time.perf_counter() - start, os.times()
cpu = after.user - before.user + after.system - before.system
print(json.dumps({"median_s": row.median_s, "min_s": row.min_s, "share": cpu / wall / int(sys.argv[1])}))
"""

POLICIES = ("unset", "ACTIVE", "PASSIVE")


def measure_once(threads: int, policy: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy != "unset":
        env["OMP_WAIT_POLICY"] = policy
    argv = [
        str(threads),
        args.arch,
        str(args.seq_len),
        args.direction,
        args.mode,
        str(args.min_time),
    ]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], env=env, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> int:
    from neighbours import busy  # beside this script (imported from tests, it is not run)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=0, help="spinning processes beside (default 0)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--arch", default="lstm", help="architecture (default lstm)")
    parser.add_argument("--seq-len", type=int, default=32, help="sequence length (default 32)")
    parser.add_argument("--direction", choices=("bi", "uni"), default="bi", help="default bi")
    parser.add_argument("--mode", default="infer", help="infer or train (default infer)")
    parser.add_argument("--min-time", type=float, default=0.5, help="timed seconds per cell")
    args = parser.parse_args()

    combos = list(itertools.product((1, 2), POLICIES))
    results: dict[tuple[int, str], list[dict]] = {c: [] for c in combos}
    with busy(args.busy):
        for round_no in range(args.rounds):
            for combo in combos if round_no % 2 == 0 else combos[::-1]:
                results[combo].append(measure_once(*combo, args))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"{args.arch} ({args.direction}) T={args.seq_len} {args.mode}, batch 32, hidden 32; "
        f"{cpus} CPUs, {args.busy} busy processes beside; medians of {args.rounds} rounds"
    )
    print(f"{'threads':>7}  {'OMP_WAIT_POLICY':<16}{'median':>12}{'fastest':>12}{'CPU share':>11}")
    for threads, policy in combos:
        runs = results[(threads, policy)]
        median = statistics.median(r["median_s"] for r in runs)
        fastest = min(r["min_s"] for r in runs)
        share = statistics.median(r["share"] for r in runs)
        print(
            f"{threads:>7}  {policy:<16}{median * 1e3:>10.3f}ms{fastest * 1e3:>10.3f}ms{share:>11.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
