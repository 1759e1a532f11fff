"""What saving one more finished cell costs, as a run grows.

For each size it builds a run folder that already holds that many cells, then times
`Run.add` saving one more cell (its samples appended, then its row, each fsynced), several
times, and prints the median. For contrast it times the save as seqbench did it up to
commit 63d4233, where every cell rewrote results.csv, samples.csv and meta.json whole,
each through a temporary file, fsync and rename; that rewrite is reimplemented below in a
few lines (`old_save`) with pandas, as it was.

Runs of 50 and 800 cells hold 1,000 samples a cell; a run of 80,000 cells holds 10 a cell
by default (1,000 would be about 7 GB of samples.csv, and minutes per save the old way).
The plan in meta.json lists every cell, as `seqbench run` writes it.

    python benchmarks/save_cost.py
    python benchmarks/save_cost.py --sizes 50,800 --saves 9 --dir /tmp
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from seqbench.core.schema import Cell, Measurement, ResultRow
from seqbench.storage import (
    META_FILE,
    ROWS_FILE,
    SAMPLES_FILE,
    atomic_write,
    create_run,
    reopen_run,
)
from seqbench.storage.csvio import render_row
from seqbench.storage.csvio import render_samples as render_batch

DEFAULT_SIZES = "50:1000,800:1000,80000:10"


def make_row(i: int) -> ResultRow:
    """A measured row with every usual column filled; cells differ by length."""
    cell = Cell("lstm", i + 1, 32, 128, 1, False, 0.0, 0.0, 1000, 64, "cpu", "float32", "infer")
    return ResultRow.for_cell(
        cell, params=200_000, core_params=131_584, flops_per_seq=4_200_000 * (i + 1),
        kernel="onednn", median_s=0.0012345678 * (i + 1), iqr_s=1.2e-5, ci_low_s=0.00123,
        ci_high_s=0.00124, min_s=0.0012, repeats=1000, inner_loops=1, rounds=1,
        seq_per_s=25_000.123, tokens_per_s=800_000.5, tflops=0.42, peak_mem_bytes=12_345_678,
        mem_source="cpu_profiler", wall_s=1.5, host="bench", device_name="Test CPU",
    )  # fmt: skip


def samples_for(rng: random.Random, n: int) -> list[float]:
    return [rng.uniform(1e-3, 2e-3) for _ in range(n)]


def build(root: Path, cells: int, per_cell: int, extra: int, rng: random.Random):
    """A run folder holding `cells` finished cells, planned for `extra` more; and the same
    rows and samples in memory, for the old way's rewrite."""
    rows = [make_row(i) for i in range(cells + extra)]
    run = create_run(root, label=f"n{cells}", config={}, env={}, plan=[r.cell_id for r in rows])
    samples = {r.cell_id: samples_for(rng, per_cell) for r in rows[:cells]}
    with open(run.path / ROWS_FILE, "a", encoding="utf-8") as fh:
        fh.writelines(render_row(r) for r in rows[:cells])
    with open(run.path / SAMPLES_FILE, "a", encoding="utf-8") as fh:
        fh.writelines(render_batch(r.cell_id, samples[r.cell_id], 1) for r in rows[:cells])
    return run.path, rows, samples


def old_save(folder: Path, rows: list[ResultRow], samples: dict, meta: dict) -> None:
    """OLD (63d4233): the whole run, three files, each rewritten through a temporary file."""
    from seqbench.core.schema import rows_to_frame  # pandas, as the old CsvExporter used it

    lines = ["cell_id,sample_s\n"]
    lines += [f"{cid},{float(v)!r}\n" for cid, values in samples.items() for v in values]
    atomic_write(folder / SAMPLES_FILE, "".join(lines))
    atomic_write(folder / META_FILE, json.dumps(meta, indent=2, default=str) + "\n")
    atomic_write(folder / ROWS_FILE, rows_to_frame(rows).to_csv(index=False, lineterminator="\n"))


def measure(cells: int, per_cell: int, saves: int, old_saves: int, base: Path) -> dict:
    rng = random.Random(cells)
    root = Path(tempfile.mkdtemp(prefix=f"save_cost_{cells}_", dir=base))
    try:
        folder, rows, samples = build(root, cells, per_cell, saves + 1, rng)
        sizes = {name: (folder / name).stat().st_size for name in (ROWS_FILE, SAMPLES_FILE)}
        sizes[META_FILE] = (folder / META_FILE).stat().st_size

        started = time.perf_counter()
        run = reopen_run(folder, root)
        load_s = time.perf_counter() - started
        # The first save after a resume also writes meta.json (the run is running again):
        # once per resume, not per cell, so it is left out of the median.
        run.add(Measurement(rows[cells], samples_for(rng, per_cell)))
        new = []
        for row in rows[cells + 1 : cells + 1 + saves]:
            measurement = Measurement(row, samples_for(rng, per_cell))
            started = time.perf_counter()
            run.add(measurement)
            new.append(time.perf_counter() - started)

        old_rows, old_samples, meta = list(rows[:cells]), dict(samples), run.meta.to_dict()
        old = []
        for row in rows[cells : cells + old_saves]:
            old_rows.append(row)
            old_samples[row.cell_id] = samples_for(rng, per_cell)
            started = time.perf_counter()
            old_save(folder, old_rows, old_samples, meta)
            old.append(time.perf_counter() - started)
        return {"sizes": sizes, "load_s": load_s, "new": new, "old": old}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def human(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        cells, _, per_cell = part.partition(":")
        out.append((int(cells), int(per_cell or 1000)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Time saving one more cell into runs of growing size: appending "
        "(this seqbench) against rewriting every file (seqbench up to 63d4233).",
    )
    parser.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help=f"cells:samples-per-cell pairs, comma-separated (default {DEFAULT_SIZES})",
    )
    parser.add_argument("--saves", type=int, default=9, help="appends timed per size")
    parser.add_argument(
        "--old-saves", type=int, default=5, help="old-way rewrites timed per size (slow)"
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to build the runs (default: $TMPDIR)"
    )
    args = parser.parse_args()

    print(f"median of {args.saves} appends / {args.old_saves} rewrites; each save is fsynced")
    header = (
        f"{'cells':>7} {'samples':>8} {'results.csv':>12} {'samples.csv':>12} {'meta.json':>10}"
        f" {'load':>8} {'append (new)':>13} {'rewrite (OLD)':>14} {'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for cells, per_cell in parse_sizes(args.sizes):
        got = measure(cells, per_cell, args.saves, args.old_saves, args.dir)
        new, old = statistics.median(got["new"]), statistics.median(got["old"])
        mb = {k: human(v) for k, v in got["sizes"].items()}
        print(
            f"{cells:>7} {per_cell:>8} {mb[ROWS_FILE]:>12} {mb[SAMPLES_FILE]:>12}"
            f" {mb[META_FILE]:>10} {got['load_s']:>7.2f}s {new * 1e3:>10.1f} ms"
            f" {old * 1e3:>11.1f} ms {old / new:>6.0f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
