"""The subprocess executor (`--isolate`): every cell in a fresh Python process.

A crash, a leak or a hang there costs one cell: a worker that dies becomes an `error` row
saying how (the signal, or its exit code and last line of stderr), and one that stops
answering is killed once the cell's time limit and a start-up grace have passed, and
becomes a `timeout` row. The child side and the protocol are in worker.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from seqbench.execute.base import OneAtATime
from seqbench.request import CellRequest
from seqbench.schema import Measurement, ResultRow
from seqbench.timing import Stopwatch

# Importing torch in the fresh process takes seconds; the parent's hard limit allows this
# much beyond the cell's own timeout before it kills a worker that stopped answering.
STARTUP_GRACE_S = 30.0


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def worker_command() -> list[str]:
    return [sys.executable, "-m", "seqbench.execute.worker"]


def import_path() -> str:
    """This process's import path as PYTHONPATH, so that a worker imports what this process
    can (seqbench from a source tree, a user's own architectures)."""
    return os.pathsep.join(p for p in sys.path if p)


def worker_environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": import_path()}


def run_in_fresh_process(request: CellRequest, grace_s: float | None = None) -> Measurement:
    """Measure `request` in a new worker process; a dead or hung worker becomes a row."""
    from seqbench.measure import failure

    watch = Stopwatch()
    grace = STARTUP_GRACE_S if grace_s is None else grace_s
    limit = None if request.timeout is None else request.timeout + grace
    with tempfile.TemporaryDirectory(prefix="seqbench-cell-") as tmp:
        answers = Path(tmp) / "answers.jsonl"
        proc = subprocess.Popen(
            [*worker_command(), str(answers)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=worker_environment(),
        )
        try:
            _, err = proc.communicate(json.dumps(request.to_dict()) + "\n", timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            message = f"the cell's process stopped answering; killed after {limit:g} s"
            return failure(request.cell, "timeout", message, wall_s=watch.elapsed())
        except BaseException:  # Ctrl-C: do not leave the worker behind
            proc.kill()
            proc.communicate()
            raise
        lines = answers.read_text(encoding="utf-8").splitlines() if answers.exists() else []
        if proc.returncode != 0 or not lines:
            how = (
                _signal_name(proc.returncode)
                if proc.returncode < 0
                else f"exit code {proc.returncode}"
            )
            last = next((line for line in reversed(err.splitlines()) if line.strip()), "")
            message = f"the cell's process died ({how}){': ' + last if last else ''}"
            return failure(request.cell, "error", message, wall_s=watch.elapsed())
        answer = json.loads(lines[0])
    return Measurement(ResultRow.from_dict(answer["row"]), answer["samples"])


class SubprocessExecutor(OneAtATime):
    name = "subprocess"

    def __init__(self, grace_s: float | None = None) -> None:
        super().__init__()
        self._grace = grace_s

    def run(self, request: CellRequest) -> Measurement:
        return run_in_fresh_process(request, self._grace)
