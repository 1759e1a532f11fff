"""Does a gate on instructions per step hold on a loaded machine? Spread, detection, cost.

The script builds a small git repository holding a user factory in three versions with the
same parameters (so the same cells and keys): `base`, `slower` (about 30% more work per
step) and `slightly` (about 3% more). While `--busy` processes spin on the CPUs the whole
time, each trial runs `seqbench run --count-instructions` on each version, and then:

- the spread of the base counts over all trials (max/min - 1, per cell);
- `compare --metric instructions` (default threshold) of base against slower and against
  slightly (a catch is exit 1), and of each base run against the next one, the last
  against the first (identical code: any exit 1 is a false alarm);
- the same pairs through plain `compare` (time, with the count gated beside it), for
  contrast;
- first, once: the wall time of the ci-instructions suite with and without counting, and
  so the simulator's cost per cell.

    python benchmarks/instruction_gate.py --trials 10 --busy 2
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

# The same user factory and repository, with one more tag.
from gate_error_rates import git, make_repository, seqbench

VERSIONS = {"base": 30, "slower": 40, "slightly": 31}
CELLS = ["--arch", "gatepkg.models:make_core", "--seq-len", "32", "--batch-size", "8",
         "--hidden", "32", "--mode", "infer,train", "--min-time", "0.3", "--threads", "1",
         "--count-instructions"]  # fmt: skip


def counted_run(repo: Path, out: Path, version: str) -> Path:
    git(repo, "checkout", "-q", version)
    csv = out / f"{version}-{time.time_ns()}.csv"
    done = seqbench(repo, "run", *CELLS, "--out", str(out), "--csv", str(csv), "-q")
    if done.returncode not in (0, 1):
        raise SystemExit(done.stderr)
    return csv


def counts(csv: Path) -> dict[str, float]:
    import pandas as pd

    frame = pd.read_csv(csv)
    return dict(zip(frame["cell_id"], frame["instr_per_step"], strict=True))


def gate_exit(a: Path, b: Path, metric: str) -> int:
    """The exit code `seqbench compare A B --metric METRIC` gives (its default threshold),
    computed in this process: the same functions, without a fresh interpreter each time."""
    from seqbench.judge.compare import compare_runs, default_threshold
    from seqbench.judge.gate import gate
    from seqbench.storage import load_run

    runs = load_run(str(a), a.parent), load_run(str(b), b.parent)
    result = compare_runs(*runs, metric=metric, threshold=default_threshold(metric))
    return gate(result).exit_code


def suite_cost(cwd: Path, out: Path) -> None:
    """The ci-instructions suite's wall time, counted and timed only."""
    walls = {}
    for name, extra in (("counted", []), ("timed only", ["--no-count-instructions"])):
        started = time.time()
        done = seqbench(cwd, "run", "--suite", "ci-instructions", *extra, "--out", str(out), "-q")
        walls[name] = time.time() - started
        print(f"ci-instructions suite, {name}: {walls[name]:.0f} s (exit {done.returncode})")
    extra = (walls["counted"] - walls["timed only"]) / 8
    print(f"the simulator's cost: {extra:.1f} s per cell on average (8 cells, start-up included)")


def summary(runs: dict[str, list[Path]], outcomes: dict, started: float) -> None:
    minutes = (time.time() - started) / 60
    print(f"-- after {len(runs['base'])} trials, {minutes:.0f} min")
    per_cell: dict[str, list[float]] = collections.defaultdict(list)
    for csv in runs["base"]:
        for cell, value in counts(csv).items():
            per_cell[cell].append(value)
    for cell, values in per_cell.items():
        spread = max(values) / min(values) - 1
        print(f"base counts {cell.split('-')[-1]:<6} min {min(values):,.0f} max {max(values):,.0f} "
              f"spread {spread:.3%} over {len(values)} runs")  # fmt: skip
    for name, counter in sorted(outcomes.items()):
        print(f"compare {name}: exit codes {dict(sorted(counter.items()))}", flush=True)


def main() -> int:
    from neighbours import busy  # beside this script (imported from tests, it is not run)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="runs of each version")
    parser.add_argument("--busy", type=int, default=2, help="spinning processes beside")
    parser.add_argument("--suite", action="store_true", help="measure the suite's wall time only")
    parser.add_argument("--modes", default="infer,train", help="the factory's modes (--mode)")
    args = parser.parse_args()
    CELLS[CELLS.index("--mode") + 1] = args.modes

    scratch = Path(tempfile.mkdtemp(prefix="seqbench-instr-"))
    repo = make_repository(scratch / "repo", **VERSIONS)
    out = scratch / "results"
    out.mkdir()
    started = time.time()
    runs: dict[str, list[Path]] = collections.defaultdict(list)
    outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    with busy(args.busy):
        if args.suite:
            suite_cost(Path.cwd(), out)
            return 0
        for trial in range(args.trials):
            for version in VERSIONS:
                runs[version].append(counted_run(repo, out, version))
            base = runs["base"][-1]
            for version in ("slower", "slightly"):
                found = counts(runs[version][-1])
                ratios = {k.split("-")[-1]: round(v / counts(base)[k], 4) for k, v in found.items()}
                for metric in ("instructions", "time"):
                    outcomes[f"{version:<9} {metric}"][
                        gate_exit(base, runs[version][-1], metric)
                    ] += 1
                print(f"trial {trial + 1} {version}: count ratios {ratios}", flush=True)
            pairs = [(runs["base"][-2], base)] if trial else []
            if trial == args.trials - 1 and trial > 1:  # close the circle: last against first
                pairs.append((base, runs["base"][0]))
            for a, b in pairs:
                for metric in ("instructions", "time"):
                    outcomes[f"identical {metric}"][gate_exit(a, b, metric)] += 1
            summary(runs, outcomes, started)
    print(f"\n{args.trials} trials, {args.busy} busy processes beside")
    return 0


if __name__ == "__main__":
    sys.exit(main())
