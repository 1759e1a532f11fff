"""Pool the task cells of several saved runs and apply the rate rule to them together.

A rate grid is one run (`--lr 2e-3,4e-3`), but a long grid is often measured in parts: one
run per rate, or a second rate added after the first was read. This script reads the
runs' rows, refuses a cell measured twice (the same model, seed and rate), and prints
every rate's validation and test scores per seed, then the rate seqbench's rule picks
(seqbench.judge.accuracy: best mean validation score over the seeds, test scores reported):
exactly what `seqbench show` would print had the grid been one run.

    PYTHONPATH=src python benchmarks/pool_runs.py RUN [RUN ...] [--root results]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from seqbench.judge.accuracy import summarize_accuracy
from seqbench.storage import load_run


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run ids or folders")
    parser.add_argument("--root", type=Path, default=Path("results"))
    args = parser.parse_args()

    rows, seen = [], {}
    for ref in args.runs:
        run = load_run(ref, args.root)
        for row in run.rows:
            if not row.task:
                continue
            if row.cell_id in seen:
                raise SystemExit(f"{row.cell_id} is in both {seen[row.cell_id]} and {ref}")
            seen[row.cell_id] = ref
            rows.append(row)
    if not rows:
        raise SystemExit("no task cells in these runs")
    for group in summarize_accuracy(rows):
        cell = group.cell
        params = group.rows[0].params if group.rows else None
        print(f"\n{cell.arch} (hidden {cell.hidden}, {params} parameters), {group.metric}:")
        for rate in group.rates:
            mark = "  <- chosen" if rate.lr == group.lr else ""
            print(
                f"  lr {rate.lr:<7g} validation {' / '.join(map(_fmt, rate.validation))}"
                f"  (mean {_fmt(rate.mean_validation)})  test {' / '.join(map(_fmt, rate.test))}"
                f"{mark}"
            )
        if group.test is None:
            print(f"  no rate chosen: {group.note}")
            continue
        spread = group.test
        times = [r.train_time_s for r in group.rows if r.train_time_s is not None]
        steps = [r.steps_to_target for r in group.rows]
        chance = group.chance
        print(
            f"  test {_fmt(spread.mean)} [{_fmt(spread.low)}, {_fmt(spread.high)}] n={spread.n};"
            f" chance {_fmt(chance)}; steps to target {' / '.join(map(_fmt, steps))};"
            f" training {min(times):.0f}-{max(times):.0f} s per seed"
            + (f"; {group.note}" if group.note else "")
        )


if __name__ == "__main__":
    main()
