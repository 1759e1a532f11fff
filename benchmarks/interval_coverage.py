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
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

CELLS = ["--arch", "rnn,lstm", "--seq-len", "256", "--batch-size", "32", "--hidden", "64",
         "--mode", "infer,train", "--threads", "1"]  # fmt: skip


@contextlib.contextmanager
def busy(n: int) -> Iterator[None]:
    """`n` CPU-bound processes beside the runs."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def one_run(root: Path, label: str, extra: list[str]) -> dict[str, tuple[float, float, float]]:
    """cell id -> (median, CI low, CI high) of one separate `seqbench run`."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from seqbench.storage import load_run

    command = [sys.executable, "-m", "seqbench", "run", *CELLS, *extra, "--root", str(root),
               "--label", label, "-q"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"seqbench run failed ({done.returncode}): {done.stderr}")
    run = load_run("latest", root)
    return {
        r.cell_id: (r.median_s, r.ci_low_s, r.ci_high_s)
        for r in run.rows
        if r.status == "ok" and r.ci_low_s is not None
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="separate runs (default 10)")
    parser.add_argument("--busy", type=int, default=0, help="busy processes beside (default 0)")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="-- then more run flags")
    args = parser.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    runs: list[dict[str, tuple[float, float, float]]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, busy(args.busy):
        for k in range(args.runs):
            runs.append(one_run(Path(tmp), f"coverage-{k}", extra))
    cells = sorted(set.intersection(*(set(r) for r in runs)))
    covered = total = 0
    print(f"{args.runs} runs, {args.busy} busy process(es) beside, flags: {' '.join(extra) or '-'}"
          f" ({time.perf_counter() - started:.0f} s)")  # fmt: skip
    for cell in cells:
        hits = 0
        medians = [run[cell][0] for run in runs]
        for k, run in enumerate(runs):
            others = statistics.median(medians[:k] + medians[k + 1 :])
            _, low, high = run[cell]
            hits += low <= others <= high
        spread = (max(medians) - min(medians)) / statistics.median(medians)
        widths = [(run[cell][2] - run[cell][1]) / 2 / run[cell][0] for run in runs]
        print(f"  {cell}: {hits}/{len(runs)} covered; medians {min(medians) * 1e3:.3g}-"
              f"{max(medians) * 1e3:.3g} ms (spread {spread:.0%}), interval ±"
              f"{statistics.median(widths):.1%} (median half-width)")  # fmt: skip
        covered += hits
        total += len(runs)
    print(f"total: {covered}/{total} intervals contained the other runs' median "
          f"({covered / total:.0%})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
