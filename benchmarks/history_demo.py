"""A synthetic history of 50 runs with two known steps, and what `seqbench history` finds.

It writes 50 real run folders through seqbench's storage, one per fake commit (a day or so
apart), each measuring three cells. The lstm cell's cost steps +15% at run 20 and -10% at
run 35 (1-based: the 20th and 35th commits are the first on each new level); the gru and
conv1d cells stay flat, as controls. Every run median carries multiplicative noise like
this machine's between-run noise: its standard deviation is drawn per run between 1% and
3.5% (--noise; 30 runs of one unchanged model beside two busy processes scattered 1.1% in
inference and 3.3% in training), and one run in 25 is an outlier, 20-60% slower
(interference only ever adds time). `--noise 0.03,0.08` is a far busier machine.
Each run keeps 15 raw samples around its median, so the per-run intervals are real.

Then it runs `seqbench history --fail-on-step` over the folders, prints its output, and
says whether it found both steps at the right commits and no other.

With --trials N it also repeats the experiment on N seeds (in memory, the same generator)
and prints how often both steps were found at exactly the right runs, within one run, and
how often a step was reported in a flat control cell.

    python benchmarks/history_demo.py
    python benchmarks/history_demo.py --seed 3 --out /tmp/history.png --trials 200

With the busier --noise 0.03,0.08 the run where a 10% step happened is often ambiguous by
a run or two, and `history` says so ("run (could be)"). --trials gives the rates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from seqbench.core.schema import Cell, ResultRow
from seqbench.judge.changepoints import find_change_points
from seqbench.judge.stats import summarize
from seqbench.storage import create_run

RUNS = 50
STEPS = {20: 1.15, 35: 0.90}  # 1-based run number -> factor from that run on
CELLS = {
    ("lstm", "infer"): (2.1e-3, True),  # (base median in seconds, stepped?)
    ("gru", "train"): (6.0e-3, False),
    ("conv1d", "infer"): (2.2e-4, False),
}


def cell(arch: str, mode: str) -> Cell:
    return Cell(arch, 64, 16, 32, 1, False, 0.0, 0.0, 10000, 32, "cpu", "float32", mode)


NOISE = (0.01, 0.035)  # the range of each run median's noise (standard deviation, log scale)


def medians(rng: np.random.Generator, base: float, stepped: bool) -> np.ndarray:
    """One cell's 50 run medians: the level (with the steps), noise, and a few outliers."""
    level = np.full(RUNS, base)
    if stepped:
        for run, factor in STEPS.items():
            level[run - 1 :] *= factor
    noise = np.exp(rng.normal(0.0, rng.uniform(*NOISE, RUNS)))
    outliers = np.where(rng.random(RUNS) < 0.04, rng.uniform(1.2, 1.6, RUNS), 1.0)
    return level * noise * outliers


def commit_of(i: int) -> str:
    return hashlib.sha1(f"demo commit {i}".encode()).hexdigest()


def write_history(root: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    series = {key: medians(rng, base, stepped) for key, (base, stepped) in CELLS.items()}
    start = dt.datetime(2026, 9, 1, 9, 0, tzinfo=dt.timezone.utc)
    for i in range(RUNS):
        committed = start + dt.timedelta(days=i, hours=float(rng.uniform(0, 8)))
        env = {
            "cpu": "Demo CPU",
            "torch": "2.13.0",
            "threads": 2,
            "flush_denormal": True,
            "tf32": True,
            "device_names": {"cpu": "Demo CPU"},
            "git_commit": commit_of(i + 1),
            "git_dirty": False,
            "git_commit_time": committed.isoformat(timespec="seconds"),
            "time": (committed + dt.timedelta(minutes=20)).isoformat(timespec="seconds"),
        }
        run = create_run(root, label="demo", config={"label": "demo"}, env=env, plan=[])
        rows, samples = [], {}
        for (arch, mode), values in series.items():
            # 15 samples spread 2% around this run's median (the within-run noise).
            drawn = values[i] * np.exp(rng.normal(0.0, 0.02, 15))
            drawn *= values[i] / np.median(drawn)
            s = summarize(drawn.tolist())
            c = cell(arch, mode)
            rows.append(
                ResultRow.for_cell(
                    c, params=10_000, median_s=s.median, iqr_s=s.iqr, ci_low_s=s.ci_low,
                    ci_high_s=s.ci_high, kernel="aten", status="ok",
                )
            )  # fmt: skip
            samples[c.cell_id] = drawn.tolist()
        run.rows, run.samples = rows, samples
        run.finish("complete")


def expected(stepped: bool) -> list[int]:
    return [run - 1 for run in STEPS] if stepped else []


def trials(count: int) -> str:
    exact = within_one = both = false_alarms = 0
    for seed in range(count):
        rng = np.random.default_rng(seed)
        found = {
            key: [s.index for s in find_change_points(medians(rng, base, stepped)).steps]
            for key, (base, stepped) in CELLS.items()
        }
        lstm = found[("lstm", "infer")]
        exact += lstm == expected(True)
        both += len(lstm) == 2
        within_one += len(lstm) == 2 and all(
            abs(a - b) <= 1 for a, b in zip(lstm, expected(True), strict=True)
        )
        false_alarms += sum(bool(v) for k, v in found.items() if not CELLS[k][1])
    controls = count * sum(not stepped for _, stepped in CELLS.values())
    return (
        f"{count} seeds: both steps at exactly the right commits in {exact} ({exact / count:.0%}), "
        f"within one run in {within_one} ({within_one / count:.0%}); two steps found (anywhere) "
        f"in {both} ({both / count:.0%}); "
        f"a step reported in a flat control cell in {false_alarms} of {controls}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seed", type=int, default=0, help="Noise seed (default 0; see --trials for all)."
    )
    parser.add_argument(
        "--noise",
        default="0.01,0.035",
        help="LOW,HIGH: each run median's noise (its standard deviation) is drawn between "
        "these (default 0.01,0.035, this machine's between-run scatter).",
    )
    parser.add_argument("--dir", type=Path, help="Write the runs here (default: a temp folder).")
    parser.add_argument("--out", type=Path, help="Also draw the history to this .png/.svg.")
    parser.add_argument("--trials", type=int, default=0, help="Also repeat on this many seeds.")
    args = parser.parse_args()
    global NOISE
    try:
        low, high = (float(v) for v in args.noise.split(","))
    except ValueError:
        parser.error(f"--noise: expected LOW,HIGH fractions, got {args.noise!r}")
    if not 0 <= low <= high < 1:
        parser.error(f"--noise: expected 0 <= LOW <= HIGH < 1, got {args.noise!r}")
    NOISE = (low, high)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.dir or Path(scratch) / "results"
        write_history(root, args.seed)
        argv = ["history", "--root", str(root), "--fail-on-step"]
        argv += ["--out", str(args.out)] if args.out else []
        print("$ seqbench " + " ".join(argv).replace(str(root), "demo-results"))
        env = {**os.environ, "COLUMNS": "120"}
        done = subprocess.run(
            [sys.executable, "-m", "seqbench", *argv], capture_output=True, text=True, env=env
        )
        print((done.stdout + done.stderr).replace(str(root), "demo-results").rstrip())
        print(f"(exit {done.returncode})")

        from seqbench.judge.history import build_history, gather_runs

        history = build_history(gather_runs([], root)[0])
        ok = True
        for s in history.series:
            stepped = CELLS[(s.cell.arch, s.cell.mode)][1]
            commits = [s.first_after(st.index).commit for st in s.changes.steps]
            ok &= commits == [commit_of(run) for run in STEPS] if stepped else not commits
    print(
        f"\nexpected: lstm steps at commits {', '.join(commit_of(r)[:8] for r in STEPS)} "
        f"(runs {', '.join(map(str, STEPS))}), none elsewhere: {'found' if ok else 'NOT found'}"
    )
    if args.trials:
        print(trials(args.trials))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
