"""Does one run's interval hold for the next run? Coverage of seqbench's intervals, measured.

Runs `seqbench run` K times, each a separate process one after another (optionally with
busy processes beside them), on the same few cells, and asks of every run's interval: does
it contain the median of the other K-1 runs' medians? A 95% interval that describes only
its own process contains it far less often than 95% on a machine where one process's speed
differs from the next one's.

    python benchmarks/interval_coverage.py --runs 10                 # quiet
    python benchmarks/interval_coverage.py --runs 10 --busy 1        # one busy process beside
    python benchmarks/interval_coverage.py --runs 10 -- --processes 1   # extra run flags

Prints, per cell, the runs' medians and intervals and how many intervals covered the
others' median, then the total. Nothing is asserted: the figures are for the docs.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CELLS = ["--arch", "rnn,lstm", "--seq-len", "256", "--batch-size", "32", "--hidden", "64",
         "--mode", "infer,train", "--threads", "1"]  # fmt: skip


def one_run(root: Path, label: str, extra: list[str]) -> dict[str, tuple[float, ...]]:
    """cell id -> (median, CI low, CI high, process spread, processes) of one separate
    `seqbench run`."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from seqbench.storage import load_run

    command = [sys.executable, "-m", "seqbench", "run", *CELLS, *extra, "--root", str(root),
               "--label", label, "-q"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"seqbench run failed ({done.returncode}): {done.stderr}")
    run = load_run("latest", root)
    return {
        r.cell_id: (r.median_s, r.ci_low_s, r.ci_high_s, r.process_spread or 0.0, r.processes or 1)
        for r in run.rows
        if r.status == "ok" and r.ci_low_s is not None
    }


def main() -> int:
    from neighbours import busy  # beside this script (imported from tests, it is not run)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="separate runs (default 10)")
    parser.add_argument("--busy", type=int, default=0, help="busy processes beside (default 0)")
    parser.add_argument("--dump", type=Path, help="also write the runs' figures to this JSON file")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="-- then more run flags")
    args = parser.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    runs: list[dict[str, tuple[float, ...]]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, busy(args.busy):
        for k in range(args.runs):
            runs.append(one_run(Path(tmp), f"coverage-{k}", extra))
    if args.dump:
        args.dump.write_text(json.dumps(runs), encoding="utf-8")
    cells = sorted(set.intersection(*(set(r) for r in runs)))
    covered = total = 0
    alternative: dict[float, int] = {}
    print(f"{args.runs} runs, {args.busy} busy process(es) beside, flags: {' '.join(extra) or '-'}"
          f" ({time.perf_counter() - started:.0f} s)")  # fmt: skip
    for cell in cells:
        hits = 0
        medians = [run[cell][0] for run in runs]
        for k, run in enumerate(runs):
            others = statistics.median(medians[:k] + medians[k + 1 :])
            _, low, high, *_ = run[cell]
            hits += low <= others <= high
        spread = (max(medians) - min(medians)) / statistics.median(medians)
        widths = [(run[cell][2] - run[cell][1]) / 2 / run[cell][0] for run in runs]
        print(f"  {cell}: {hits}/{len(runs)} covered; medians {min(medians) * 1e3:.3g}-"
              f"{max(medians) * 1e3:.3g} ms (spread {spread:.0%}), interval ±"
              f"{statistics.median(widths):.1%} (median half-width)")  # fmt: skip
        covered += hits
        total += len(runs)
        if runs[0][cell][4] > 1:
            print("    " + run_term(medians, [run[cell] for run in runs]))
            for c in RUN_TERMS:
                held = sum(within_term(run[cell], c, statistics.median(medians[:k] + medians[k + 1 :]))
                           for k, run in enumerate(runs))  # fmt: skip
                alternative[c] = alternative.get(c, 0) + held
    print(f"total: {covered}/{total} intervals contained the other runs' median "
          f"({covered / total:.0%})")  # fmt: skip
    for c, held in alternative.items():
        print(f"  with a run term of {c:g} s^2 instead: {held}/{total}")
    return 0


# Run terms to try: how many of the intervals would have held had a run's figure been given
# the variance s^2 (c + 1/n) instead of seqbench's.
RUN_TERMS = (1.0, 0.5, 0.25, 0.0)


def within_term(row: tuple[float, ...], c: float, other: float) -> bool:
    """Whether `other` lies in the interval of `row` recomputed with a run term of c s^2."""
    from seqbench.judge.stats import prediction_half_width

    center, s, n = row[0], row[3], int(row[4])
    return abs(math.log(other / center)) <= prediction_half_width(s, n, run_term=c)


def run_term(medians: list[float], rows: list[tuple[float, ...]]) -> str:
    """How much the runs' figures spread beyond what their processes' spread explains.

    A run's figure is the mean of its n processes' log medians: if runs differed only by
    which processes they drew, its standard deviation would be s/sqrt(n) (s: one run's
    spread across its processes). What the runs spread beyond that is the run's own moment,
    tau, shared by its processes; seqbench's intervals allow for tau² = RUN_TERM·s²
    (judge/stats.py).
    """
    logs = [math.log(m) for m in medians]
    between = statistics.stdev(logs)
    s = math.sqrt(statistics.fmean(row[3] ** 2 for row in rows))
    n = statistics.fmean(row[4] for row in rows)
    tau = math.sqrt(max(0.0, between**2 - s**2 / n))
    return (f"between runs SD {between:.1%}; one run's processes SD {s:.1%} (over sqrt(n): "
            f"{s / math.sqrt(n):.1%}); run term {tau:.1%} = {tau / s:.2f} s")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
