"""A suite of a million cells: how long until its first row is saved, the size of its
`meta.json`, the memory the run holds, and what it says before it starts.

    python benchmarks/plan_scale.py                    # 1,000,000 cells
    python benchmarks/plan_scale.py --cells 100000 --repeat 3

Writes a suite of N tiny cells (a one-unit RNN at N lengths and batch sizes: the cells cost
nothing, the plan is what is measured), starts `seqbench run --suite` on it in a fresh
process, and polls the run's folder until `results.csv` holds its first row. Then it reads
the process's peak memory (VmHWM) and the size of `meta.json`, stops the run with Ctrl-C
(SIGINT, which keeps what finished), and prints the figures and the run's first line on
stderr. Targets (issue 29): the first row in under 3 s, and a `meta.json` whose size does
not grow with the cells.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SUITE = """\
label = "plan-scale"
[matrix]
arch = ["rnn"]
seq_len = {lengths}
batch_size = {batches}
hidden = [1]
embed = [1]
vocab = [4]
mode = ["infer"]
[measure]
min_time = 0.0001
min_repeats = 1
warmup_time = 0.0
warmup_steps = 0
"""


def peak_memory(pid: int) -> int:
    """The process's peak resident memory in bytes (0 where /proc cannot tell)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def first_row(folder: Path, cells: int, timeout: float) -> dict[str, object]:
    """One run of the suite, stopped after its first row."""
    side = math.isqrt(cells)
    lengths, batches = list(range(1, side + 1)), list(range(1, -(-cells // side) + 1))
    suite = folder / "suite.toml"
    suite.write_text(SUITE.format(lengths=lengths, batches=batches))
    out = folder / "results"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "120"}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "seqbench", "run", "--suite", str(suite), "--out", str(out),
         "--threads", "1", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    elapsed, peak = math.nan, 0
    while time.perf_counter() - start < timeout and process.poll() is None:
        rows = list(out.glob("*/results.csv"))
        if rows and rows[0].read_text().count("\n") >= 2:
            elapsed = time.perf_counter() - start
            break
        peak = max(peak, peak_memory(process.pid))
        time.sleep(0.02)
    peak = max(peak, peak_memory(process.pid))
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    metas = list(out.glob("*/meta.json"))
    return {
        "first_row_s": elapsed,
        "meta_bytes": metas[0].stat().st_size if metas else 0,
        "peak_bytes": peak,
        "said": next((line for line in err.splitlines() if line.strip()), ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0)
    options = parser.parse_args()
    found = []
    for _ in range(options.repeat):
        with tempfile.TemporaryDirectory(prefix="seqbench-plan-") as tmp:
            found.append(first_row(Path(tmp), options.cells, options.timeout))
    median = statistics.median(f["first_row_s"] for f in found)
    print(f"{options.cells:,} cells, {options.repeat} run(s)")
    print(f"first row saved after   {median:7.2f} s (median; each: "
          + ", ".join(f"{f['first_row_s']:.2f}" for f in found) + ")")  # fmt: skip
    print(f"meta.json               {found[-1]['meta_bytes'] / 2**20:7.2f} MiB")
    print(f"peak memory             {max(f['peak_bytes'] for f in found) / 2**20:7.0f} MiB")
    print(f"first line on stderr:   {found[-1]['said']}")


if __name__ == "__main__":
    main()
