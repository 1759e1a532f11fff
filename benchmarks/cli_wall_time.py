"""Wall time of seqbench commands from two source trees, measured in alternating rounds.

Each round runs the command once from each tree, in the order A B then B A (so that drift
in the machine's load hits both alike), in a fresh process with `PYTHONPATH` set to the
tree's `src/`. It prints the median of each tree and the ratio of the medians. Use it to
check that a change keeps start-up and the default run as fast as before:

    python benchmarks/cli_wall_time.py --tree old=/path/to/old/checkout --tree new=. \\
        --rounds 7 -- --version
    python benchmarks/cli_wall_time.py --tree old=../old --tree new=. --rounds 3 --cwd /tmp/x -- run -q

`--bare` adds a third command to every round, `python -c "import typer, rich"` (what any
Typer and Rich program pays to start), and prints each tree's median over it: a start-up
figure that the machine's speed at the moment cancels out of.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_once(src: Path, argv: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "seqbench", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(
            f"{src}: seqbench {' '.join(argv)} exited {done.returncode}: {done.stderr}"
        )
    return elapsed


def run_bare(cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import typer, rich"], cwd=cwd, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tree", action="append", required=True, help="NAME=PATH of a checkout (give two)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="A B / B A rounds (default 5)")
    parser.add_argument("--cwd", type=Path, default=Path.cwd(), help="where the command runs")
    parser.add_argument(
        "--bare", action="store_true", help='also time python -c "import typer, rich" each round'
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then seqbench's arguments")
    args = parser.parse_args()
    if len(args.tree) != 2:
        parser.error("give exactly two --tree NAME=PATH")
    trees = []
    for spec in args.tree:
        name, _, path = spec.partition("=")
        src = Path(path).resolve() / "src"
        if not (src / "seqbench").is_dir():
            parser.error(f"--tree {spec}: no src/seqbench under {path}")
        trees.append((name, src))
    argv = args.command[1:] if args.command[:1] == ["--"] else args.command
    args.cwd.mkdir(parents=True, exist_ok=True)
    times: dict[str, list[float]] = {name: [] for name, _ in trees}
    bare: list[float] = []
    for round_no in range(args.rounds):
        order = trees if round_no % 2 == 0 else trees[::-1]
        for name, src in order:
            times[name].append(run_once(src, argv, args.cwd))
        if args.bare:
            bare.append(run_bare(args.cwd))
    (a, _), (b, _) = trees
    print(f"seqbench {' '.join(argv)}: {args.rounds} alternating rounds")
    for name, values in times.items():
        spread = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {name:>8}: median {statistics.median(values):.3f} s  ({spread})")
    ratio = statistics.median(times[b]) / statistics.median(times[a])
    print(f"  {b}/{a}: {ratio:.3f}")
    if bare:
        floor = statistics.median(bare)
        print(f"  {'bare':>8}: median {floor:.3f} s  (python -c 'import typer, rich')")
        for name, values in times.items():
            print(f"  {name}/bare: {statistics.median(values) / floor:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
