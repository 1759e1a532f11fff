"""One cell in a fresh process (`--isolate`): a crash, a leak or a hang there costs one cell.

The parent writes a JSON request to this process's stdin and names a file for the answer;
stdout and stderr stay free for whatever the model prints. A fresh process also makes the
resident-set high-water mark a clean measure of the cell's own host memory.

    python -m seqbench.worker < request.json
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from seqbench.config import MeasureSettings, SuiteConfig, TrainSettings
from seqbench.measure import Measurement
from seqbench.schema import Cell, ResultRow

# Importing torch in the fresh process takes seconds; the parent's hard limit allows this
# much beyond the cell's own timeout before it kills a worker that stopped answering.
STARTUP_GRACE_S = 30.0


def current_rss_bytes() -> int:
    """Resident set size now (Linux); 0 where /proc is missing."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def max_rss_bytes() -> int:
    """This process's resident-set high-water mark (kilobytes on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def request_for(
    cell: Cell,
    config: SuiteConfig,
    settings: MeasureSettings,
    out: Path | None = None,
    accuracy: bool = True,
) -> dict[str, Any]:

    return {
        "cell": dataclasses.asdict(cell),
        "measure": dataclasses.asdict(settings),
        "train": dataclasses.asdict(config.train),
        "accuracy": accuracy,
        "tf32": config.tf32,
        "compile_backend": config.compile_backend,
        "seed": config.seed,
        "threads": config.threads,
        "flush_denormal": config.flush_denormal,
        "timeout": config.cell_timeout,
        "out": None if out is None else str(out),
    }


def serve(request: dict[str, Any]) -> dict[str, Any]:
    """Measure the requested cell in this process and return the answer's JSON."""
    from seqbench.env import apply_process_settings
    from seqbench.measure import measure_cell

    apply_process_settings(request["threads"], request["flush_denormal"], request["tf32"])
    before = current_rss_bytes()
    result = measure_cell(
        Cell(**request["cell"]),
        MeasureSettings(**request["measure"]),
        seed=request["seed"],
        timeout=request["timeout"],
        train=TrainSettings(**request["train"]),
        accuracy=request["accuracy"],
        compile_backend=request["compile_backend"],
    )
    row = result.row
    if row.status == "ok" and before:
        row = dataclasses.replace(row, peak_rss_bytes=max(0, max_rss_bytes() - before))
    return {"row": row.to_dict(), "samples": result.samples}


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def measure_isolated(
    cell: Cell,
    config: SuiteConfig,
    settings: MeasureSettings | None = None,
    *,
    accuracy: bool = True,
) -> Measurement:
    """Run `cell` in a fresh Python process (with `settings`, default the config's); a dead
    or hung worker becomes a row too."""
    started = time.perf_counter()
    limit = None if config.cell_timeout is None else config.cell_timeout + STARTUP_GRACE_S
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with tempfile.TemporaryDirectory(prefix="seqbench-cell-") as tmp:
        out = Path(tmp) / "answer.json"
        proc = subprocess.Popen(
            [sys.executable, "-m", "seqbench.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            _, err = proc.communicate(
                json.dumps(request_for(cell, config, settings or config.measure, out, accuracy)),
                timeout=limit,
            )
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return _failed(
                cell,
                "timeout",
                f"the cell's process stopped answering; killed after {limit:g} s",
                started,
            )
        except BaseException:  # Ctrl-C: do not leave the worker behind
            proc.kill()
            proc.communicate()
            raise
        if proc.returncode != 0 or not out.exists():
            how = (
                _signal_name(proc.returncode)
                if proc.returncode < 0
                else f"exit code {proc.returncode}"
            )
            last = next((line for line in reversed(err.splitlines()) if line.strip()), "")
            return _failed(
                cell,
                "error",
                f"the cell's process died ({how}){': ' + last if last else ''}",
                started,
            )
        answer = json.loads(out.read_text())
    return Measurement(ResultRow.from_dict(answer["row"]), answer["samples"])


def _failed(cell: Cell, status: str, message: str, started: float) -> Measurement:
    from seqbench.models import step_flops

    row = ResultRow.for_cell(
        cell,
        flops_per_seq=step_flops(cell),
        status=status,
        message=message,
        wall_s=time.perf_counter() - started,
    )
    return Measurement(row)


def main() -> None:
    request = json.loads(sys.stdin.read())
    answer = serve(request)
    from seqbench.storage import atomic_write

    atomic_write(Path(request["out"]), json.dumps(answer))


if __name__ == "__main__":
    main()
