"""How the readers scale with the rows of a run: `runs`, `show`, `export`, `compare`.

    python benchmarks/readers_scale.py                 # 200,000 rows, 10 samples each
    python benchmarks/readers_scale.py --rows 20000 --repeat 3

Fabricates a complete run of N rows (no model is run: the rows and samples are written as
`seqbench run` writes them) in a temporary results root, then times each reading command in
a fresh process, as a user would run it, with its output sent to /dev/null. Prints the
median wall time of each command over --repeat runs, and the sizes of the run's files.
Targets (issue 29): `show` and `export` of 200,000 rows under 5 s on a 2-core machine,
`runs` independent of the rows in a run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def fabricate(root: Path, rows: int, samples: int, label: str = "big") -> Path:
    """A complete run of `rows` cells (distinct lengths), each with `samples` samples."""
    import random

    from seqbench.core.schema import Cell, ResultRow
    from seqbench.storage import create_run

    rng = random.Random(0)
    cells = [
        Cell(arch=("rnn", "lstm", "gru", "conv1d")[i % 4], seq_len=16 + i // 4, batch_size=32,
             hidden=64, layers=1, bidirectional=False, dropout=0.0, recurrent_dropout=0.0,
             vocab=10_000, embed=32, device="cpu", dtype="float32", mode="infer")
        for i in range(rows)
    ]  # fmt: skip
    env = {"cpu": "Test CPU", "threads": 1, "flush_denormal": True, "torch": "x"}
    run = create_run(root, label=label, config={"label": label}, env=env, plan=[])
    run.meta.plan = [c.cell_id for c in cells]
    rows_made, samples_made = [], {}
    for cell in cells:
        base = 1e-4 * cell.seq_len
        drawn = sorted(base * (1 + 0.05 * rng.random()) for _ in range(samples))
        rows_made.append(
            ResultRow.for_cell(
                cell, params=1000, core_params=900, flops_per_seq=1e6, median_s=drawn[len(drawn) // 2],
                iqr_s=base * 0.02, ci_low_s=drawn[0], ci_high_s=drawn[-1], min_s=drawn[0],
                repeats=samples, inner_loops=1, rounds=1, processes=1, seq_per_s=32 / base,
                tokens_per_s=32 * cell.seq_len / base, peak_mem_bytes=1 << 20, kernel="aten",
                threads=1, status="ok",
            )
        )  # fmt: skip
        samples_made[cell.cell_id] = drawn
    run.rows, run.samples = rows_made, samples_made  # one save for all: `add` saves each
    run.finish("complete")
    return run.path


def timed(args: list[str], repeat: int) -> float:
    """The median wall time of a seqbench command in a fresh process (stdout discarded)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "120"}
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "seqbench", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        times.append(time.perf_counter() - start)
        if done.returncode not in (0, 3):
            raise SystemExit(f"seqbench {' '.join(args)}: exit {done.returncode}: {done.stderr}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--skip", default="", help="Commands to leave out, e.g. compare")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seqbench-scale-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        path = fabricate(root, options.rows, options.samples)
        made = time.perf_counter() - start
        small = fabricate(root, 8, options.samples, label="small")
        twin = root / f"{path.name}-copy"  # `compare` refuses a run compared with itself
        shutil.copytree(path, twin)
        sizes = {f.name: f.stat().st_size for f in path.iterdir() if f.is_file()}
        print(f"{options.rows:,} rows x {options.samples} samples written in {made:.1f} s: "
              + ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in sorted(sizes.items())))  # fmt: skip
        commands = {
            "runs (two runs, one of them big)": ["runs", "--root", str(root)],
            "show (big run)": ["show", str(path)],
            "export --format json (big run)": ["export", str(path), "--format", "json"],
            "export --format csv (big run)": ["export", str(path), "--format", "csv"],
            "compare (big run with its copy)": ["compare", str(path), str(twin)],
            "show (8-row run, for scale)": ["show", str(small)],
        }
        for name, args in commands.items():
            if args[0] in options.skip.split(","):
                continue
            print(f"{name:40} {timed(args, options.repeat):7.2f} s")


if __name__ == "__main__":
    main()
