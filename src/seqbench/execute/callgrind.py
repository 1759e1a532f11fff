"""Instructions per step beside the timings: one worker process under callgrind for a run.

`CountingExecutor` wraps the executor that times the cells. After a cell's first pass is
timed, the same request goes, as a counting request, to a worker (worker.py) that valgrind
runs under callgrind, and the count joins the row (`instr_per_step`, `instr_steps`, or
`instr_note` saying why there is none). The simulator's start-up is paid once per run: the
worker is started with instrumentation off, imports torch at close to native speed, says it
is ready, and only then is instrumentation switched on (`callgrind_control -i on`), which
made the start-up 4-5x cheaper here (9 s against 70 s to import torch and build a cell).
Where that switch fails, the worker is started again with instrumentation on from the
start: slower, and the counts are the same.

valgrind is optional and found at run time: without it every row says how to install it.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seqbench.core.request import CellRequest
from seqbench.core.schema import Measurement
from seqbench.core.settings import ProcessSettings
from seqbench.execute.isolated import Worker
from seqbench.machine.launch import Launch

# Steps one count spans; the count is per step, so more steps only average the few
# instructions that differ from step to step.
COUNT_STEPS = 5
# Seconds the simulated worker may take to start (import torch) before it is given up, for
# the rest of the run: 9 s here with instrumentation switched on after the import, 70 s
# with it on from the start, each a few times that on a busy machine.
READY_S = 300.0
INSTALL_HINT = "valgrind is not installed: `apt-get install valgrind` (or your system's package)"
OUT_VARIABLE = "SEQBENCH_CALLGRIND_OUT"  # as seqbench.measure.instructions reads it


# Seconds `valgrind --version` may take: it answers at once where valgrind works.
VERSION_S = 10.0


def unavailable_reason() -> str | None:
    """Why instructions cannot be counted on this machine; None if they can."""
    found = shutil.which("valgrind")
    return INSTALL_HINT if found is None else _version_probe(found)[1]


def valgrind_version() -> str | None:
    """valgrind's version line ("valgrind-3.19.0"), or None without it."""
    found = shutil.which("valgrind")
    return None if found is None else _version_probe(found)[0]


@functools.cache
def _version_probe(valgrind: str) -> tuple[str | None, str | None]:
    """valgrind's version line, or why valgrind does not run: asked once per program, so
    that a valgrind that hangs costs VERSION_S once, said before the first cell, rather than
    the simulated worker's start-up wait (READY_S) on top."""
    try:
        done = subprocess.run(
            [valgrind, "--version"], capture_output=True, text=True, timeout=VERSION_S
        )
    except subprocess.TimeoutExpired:
        return None, f"valgrind did not answer `valgrind --version` within {VERSION_S:g} s"
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"valgrind does not run ({exc})"
    said = done.stdout.strip()
    if done.returncode != 0 or not said:
        first = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[0]
        return None, f"valgrind does not run: `valgrind --version` said {first[:200]!r}"
    return said.splitlines()[0], None


def counting_request(request: CellRequest, steps: int = COUNT_STEPS) -> CellRequest:
    """What counting `request` asks of the simulated worker: the same cell and seed, one
    thread, no training, no memory pass."""
    process = ProcessSettings(1, request.process.flush_denormal, request.process.tf32)
    return dataclasses.replace(
        request, count_steps=steps, process=process, accuracy=False, memory=False, round=1
    )


class CountingWorker:
    """One worker process under callgrind, started on first use and kept for the run."""

    def __init__(self, launch: Launch | None = None, instrument_at_start: bool = False) -> None:
        self._base = launch or Launch()
        self._instrument_at_start = instrument_at_start
        self._folder: str | None = None
        self._worker: Worker | None = None
        self.startup_s: float | None = None  # what starting the simulated worker took
        # Why the worker could not start: then it is not tried again in this run (a valgrind
        # that hangs at start-up would cost READY_S for every cell).
        self.broken: str | None = None

    def _launch(self, out: str) -> Launch:
        prefix = (
            "valgrind",
            "-q",
            "--tool=callgrind",
            "--collect-atstart=no",
            f"--instr-atstart={'yes' if self._instrument_at_start else 'no'}",
            f"--callgrind-out-file={out}",
        )
        # One thread for the OpenMP pool too, and a fixed hash seed, so that nothing but the
        # code decides the count.
        variables = (
            *self._base.variables,
            (OUT_VARIABLE, out),
            ("OMP_NUM_THREADS", "1"),
            ("PYTHONHASHSEED", "0"),
        )
        return dataclasses.replace(self._base, prefix=prefix, variables=variables)

    def _start(self) -> str | None:
        """Start the simulated worker; a reason if it cannot count."""
        from seqbench.core.timing import Stopwatch

        watch = Stopwatch()
        self._folder = tempfile.mkdtemp(prefix="seqbench-callgrind-")
        self._worker = Worker(self._launch(str(Path(self._folder) / "callgrind.out")))
        ready = self._worker.wait_ready(READY_S)
        if not ready:
            if self._worker._proc.poll() is not None:
                said = self._worker._death()
                reason = f"the callgrind worker did not start: {said}"
            else:
                reason = f"the callgrind worker did not start within {READY_S:g} s"
            self.close(kill=True)
            self.broken = reason
            return reason
        if not self._instrument_at_start and not _instrument_on(ready["ready"]):
            self.close()
            self._instrument_at_start = True
            return self._start()
        self.startup_s = watch.elapsed()
        return None

    def count(self, request: CellRequest, steps: int = COUNT_STEPS) -> Measurement | str:
        """The counting row of `request`'s cell, or why it could not be counted."""
        if self.broken:
            return self.broken
        if self._worker is None or not self._worker.alive:
            self.close()
            reason = self._start()
            if reason:
                return reason
        return self._worker.measure(counting_request(request, steps))

    def close(self, *, kill: bool = False) -> None:
        if self._worker is not None:
            self._worker.close(kill=kill)
            self._worker = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _instrument_on(pid: int) -> bool:
    """Switch callgrind's instrumentation on in process `pid` (through vgdb)."""
    try:
        done = subprocess.run(
            ["callgrind_control", "-i", "on", str(pid)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and "OK" in done.stdout


def with_count(measurement: Measurement, counted: Measurement | str) -> Measurement:
    """The timed row with the count (or the reason there is none) added."""
    row = measurement.row
    if isinstance(counted, str):
        row = dataclasses.replace(row, instr_note=counted)
    elif counted.row.status != "ok":
        note = f"counting failed ({counted.row.status}): {counted.row.message}".rstrip(": ")
        row = dataclasses.replace(row, instr_note=note)
    elif counted.row.instr_per_step is None:
        row = dataclasses.replace(row, instr_note=counted.row.instr_note)
    else:
        row = dataclasses.replace(
            row,
            instr_per_step=counted.row.instr_per_step,
            instr_steps=counted.row.instr_steps,
            instr_note="",
        )
    return dataclasses.replace(measurement, row=row, curve=[])


class CountingExecutor:
    """Another executor's timings, with each cell's instructions counted once (its first
    pass) in the run's one simulated worker."""

    def __init__(self, inner: Any, launch: Launch | None = None, steps: int = COUNT_STEPS):
        self.inner = inner
        self.name = f"{inner.name}+callgrind"
        self.capacity = inner.capacity
        self.same_machine = inner.same_machine
        self.separate_processes = getattr(inner, "separate_processes", False)
        self.steps = steps
        self.reason = unavailable_reason()
        self._counter = CountingWorker(launch)
        self._interrupted = False

    def __enter__(self) -> CountingExecutor:
        self.inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._counter.close()
        finally:
            self.inner.__exit__(*exc)

    def describe(self) -> dict[str, Any]:
        return {
            **self.inner.describe(),
            "count_instructions": True,
            "valgrind": None if self.reason else valgrind_version(),
        }

    def submit(self, request: CellRequest) -> None:
        self.inner.submit(request)

    def next_finished(self) -> tuple[CellRequest, Measurement]:
        if self._interrupted:  # the cell whose count was interrupted has been handed over
            raise KeyboardInterrupt
        request, measurement = self.inner.next_finished()
        if request.round != 1 or measurement.row.status != "ok":
            return request, measurement
        if request.cell.device.split(":")[0] != "cpu":
            return request, with_count(measurement, "only CPU cells can be counted")
        if self.reason:
            return request, with_count(measurement, self.reason)
        try:
            counted = self._counter.count(request, self.steps)
        except KeyboardInterrupt:
            # The cell is timed: hand it over to be saved, and stop at the next call.
            self._interrupted = True
            counted = "counting was interrupted"
        return request, with_count(measurement, counted)

    def cancel(self, which: Callable[[CellRequest], bool], reason: str) -> None:
        self.inner.cancel(which, reason)

    def close_worker(self) -> None:
        """A new cell (`seqbench ab`): the timing side's worker goes; the simulated one stays."""
        close = getattr(self.inner, "close_worker", None)
        if close is not None:
            close()

    @property
    def startup_s(self) -> float | None:
        return self._counter.startup_s
