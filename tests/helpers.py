"""Small builders shared by the tests."""

from __future__ import annotations

import dataclasses

from seqbench.core.schema import Cell, Measurement
from seqbench.core.settings import MeasureSettings

# Settings that keep a real measurement to a fraction of a second: one process, in this
# one (fresh worker processes, the default, cost seconds each to start).
FAST = MeasureSettings(
    min_time=0.0, min_repeats=3, max_repeats=3, warmup_time=0.0, warmup_steps=1, min_sample_s=0.0,
    processes=1,
)  # fmt: skip

# Flags for `seqbench run` that do the same from the command line.
FAST_FLAGS = [
    "--min-time",
    "0",
    "--min-repeats",
    "3",
    "--max-repeats",
    "3",
    "--warmup-time",
    "0",
    "--no-ceiling",
    "--processes",
    "1",
]

# ... and the smallest models worth running through the command line.
SMALL_FLAGS = ["--batch-size", "2", "--hidden", "4", "--embed", "4", "--vocab", "20", *FAST_FLAGS]


def make_cell(**overrides) -> Cell:
    base = Cell(
        arch="lstm",
        seq_len=16,
        batch_size=4,
        hidden=8,
        layers=1,
        bidirectional=False,
        dropout=0.0,
        recurrent_dropout=0.0,
        vocab=50,
        embed=6,
        device="cpu",
        dtype="float32",
        mode="infer",
    )
    return dataclasses.replace(base, **overrides)


def power_rows(
    arch: str, lengths, time_k: float, mem_k: float = 1.0, *, scale: float = 1e-5, **cell
):
    """Rows whose cost follows exact power laws: median_s = scale·T^time_k and
    peak_mem_bytes = 1000·T^mem_k, so a fit must recover the exponents to rounding error."""
    from seqbench.core.schema import ResultRow

    cells = [make_cell(arch=arch, seq_len=t, **cell) for t in lengths]
    return [
        ResultRow.for_cell(
            c,
            median_s=scale * c.seq_len**time_k,
            seq_per_s=c.batch_size / (scale * c.seq_len**time_k),
            peak_mem_bytes=round(1000 * c.seq_len**mem_k),
            kernel="aten",
        )
        for c in cells
    ]


def save_run(root, rows, label: str = "synthetic", env: dict | None = None):
    """A saved run folder holding `rows` (one fixed sample each), as `seqbench run` leaves one."""
    from seqbench.storage import create_run

    env = {"cpu": "Test CPU", "threads": 1, "flush_denormal": True, "torch": "x"} | (env or {})
    run = create_run(root, label=label, config={"label": label}, env=env, plan=[])
    run.rows = list(rows)
    run.samples = {r.cell_id: [r.median_s] for r in rows if r.median_s is not None}
    run.finish("complete")  # one save for all the rows: `run.add` would save after each
    return run


def measure_cell(cell: Cell, settings: MeasureSettings = FAST, *, clock=None, **request):
    """Measure one cell in this process (`measure` on a request built from the arguments)."""
    from seqbench.core.request import CellRequest
    from seqbench.measure import measure

    return measure(CellRequest(cell, settings, **request), clock)


def add_in_processes(
    run, row, samples: list[float], processes: int = 3, machine: list[float] | None = None
) -> None:
    """Record a measured cell in `run` as `seqbench run --processes n` records it: its
    samples split between n fresh processes, one pass each, the row pooled after each;
    `machine[k]`, the reference step's time in process k (none by default)."""
    pooled: list[float] = []
    size = -(-len(samples) // processes)  # the first passes take the odd samples
    for k in range(1, processes + 1):
        pooled += samples[(k - 1) * size : k * size]
        row_k = dataclasses.replace(row, rounds=k, processes=k)
        run.add(Measurement(row_k, list(pooled), machine_s=machine and machine[k - 1]))


def wait_for_rows(root, count: int, proc, limit: float = 60):
    """The run folder under `root` once a `seqbench run` subprocess has saved more than
    `count` rows (the header is one); an AssertionError if it exits or `limit` s pass."""
    import time

    from seqbench.storage import ROWS_FILE, list_run_dirs

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for folder in list_run_dirs(root):
            rows = folder / ROWS_FILE  # the folder comes first, its files after
            if rows.exists() and len(rows.read_text().splitlines()) > count:
                return folder
        time.sleep(0.05)
    raise AssertionError(f"the run saved {count} rows or fewer in {limit:g} s")
