"""Does judging relative to the machine's speed help two runs made apart decide?

Makes `--runs` separate `seqbench run`s of identical code (the two cells of
`gate_error_rates.py`, in 5 processes each) while `--busy` processes spin beside them, then
judges every ordered pair of runs twice: on the processes' raw speeds, and on their speeds
relative to the reference step timed in each process (seqbench.measure.reference), as
`seqbench compare` now does. For each pair it also judges a slowdown: the candidate's
samples multiplied by `--slowdown` (its machine times left as measured, as a slower
version of the code would leave them). A gate should call every identical pair unchanged
and every slowed one a regression. It also prints how far each run's processes spread, raw
and relative to the machine.

The verdicts come from seqbench.judge (process_ratio, then classify); what `compare` adds
for cells that other work disturbed (it only ever turns a verdict into `inconclusive`) is
left out here: `gate_error_rates.py` measures the whole gate.

    python benchmarks/machine_reference.py --runs 8 --busy 1
    python benchmarks/machine_reference.py --reuse /tmp/seqbench-machine-XXXX/results
"""

from __future__ import annotations

import argparse
import collections
import itertools
import math
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gate_error_rates import CELLS, make_repository, seqbench  # noqa: E402

from seqbench.judge.stats import process_ratio, process_speeds  # noqa: E402
from seqbench.judge.verdicts import classify, judged  # noqa: E402
from seqbench.storage import list_run_dirs, load_run  # noqa: E402


def measure(runs: int, busy_count: int, out: Path) -> None:
    from neighbours import busy

    repo = make_repository(out.parent / "repo", 3, 4)
    with busy(busy_count):
        for k in range(runs):
            done = seqbench(repo, "run", *CELLS, "--processes", "5", "--root", str(out), "-q")
            if done.returncode not in (0, 1):
                raise SystemExit(done.stderr)
            print(f"run {k + 1} of {runs} saved", flush=True)


def verdict(base, cand, machine, threshold: float = 0.10) -> str:
    est = process_ratio(base, cand, machine=machine)
    name, _ = classify(est, threshold)
    undecided = judged(None, name, "", est, None, None, 0, 0, threshold).undecided
    return "undecided" if undecided else name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--busy", type=int, default=1, help="spinning processes beside")
    parser.add_argument("--slowdown", type=float, default=1.3)
    parser.add_argument("--reuse", type=Path, help="judge the runs saved in this results root")
    args = parser.parse_args()
    out = args.reuse
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="seqbench-machine-")) / "results"
        measure(args.runs, args.busy, out)
    runs = [load_run(d) for d in sorted(list_run_dirs(out))]
    print(f"{len(runs)} runs in {out}")
    cells = [r.cell_id for r in runs[0].rows if r.status == "ok"]
    for cell_id in cells:
        data = []
        for run in runs:
            row = run.row(cell_id)
            per = run.rounds_per_process(row)
            data.append((run.sample_groups(cell_id, per), run.machine_times(cell_id, per)))
        if any(m is None for _, m in data):
            print(f"{cell_id}: a run without machine times; nothing to adjust")
            continue
        raw_sd = [statistics.stdev(process_speeds(g)) for g, _ in data]
        adj_sd = [statistics.stdev(process_speeds(g) - [math.log(x) for x in m]) for g, m in data]
        print(f"\n{cell_id}")
        print(
            "  processes' spread in a run (SD of log speed), median over runs: "
            f"raw {statistics.median(raw_sd):.1%}, relative to the machine "
            f"{statistics.median(adj_sd):.1%}"
        )
        figures = [statistics.fmean(process_speeds(g)) for g, _ in data]
        machines = [statistics.fmean(math.log(x) for x in m) for _, m in data]
        adjusted = [f - m for f, m in zip(figures, machines, strict=True)]
        print(
            "  runs' figures, largest over smallest: "
            f"raw x{math.exp(max(figures) - min(figures)):.2f}, relative to the machine "
            f"x{math.exp(max(adjusted) - min(adjusted)):.2f}"
        )
        counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for (bg, bm), (cg, cm) in itertools.permutations(data, 2):
            slowed = [[s * args.slowdown for s in g] for g in cg]
            for label, machine in (("raw", None), ("machine", (bm, cm))):
                counts[f"{label:<8} identical"][verdict(bg, cg, machine)] += 1
                counts[f"{label:<8} x{args.slowdown:g}"][verdict(bg, slowed, machine)] += 1
        names = ("unchanged", "regression", "improvement", "undecided", "inconclusive")
        print(f"  {'judged on / case':<22}" + "".join(f"{n:>13}" for n in names))
        for key in sorted(counts):
            print(f"  {key:<22}" + "".join(f"{counts[key][n]:>13}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
