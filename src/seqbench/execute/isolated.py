"""Cells in other Python processes: the parent side of the worker protocol (worker.py).

A `Worker` is one child process that measures the requests it is sent, one at a time: a
request goes down its stdin as a JSON line, the answer comes back as a JSON line on a pipe
of its own (stdout and stderr stay free for whatever a model prints; the last line of
stderr is kept for the message if the child dies). A crash, a leak or a hang there costs
one cell: a worker that dies becomes an `error` row saying how (the signal, or its exit
code and last words), and one that stops answering is killed once the cell's time limit
and a start-up grace have passed, and becomes a `timeout` row.

`SubprocessExecutor` (`--isolate`) gives every cell a fresh worker. A worker can also run
another interpreter or another version of the user's code (`machine.launch.Launch`), which is how
`seqbench ab` measures two versions side by side.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from seqbench.core.request import CellRequest
from seqbench.core.schema import Measurement
from seqbench.core.timing import Stopwatch
from seqbench.execute.base import OneAtATime, process_index
from seqbench.machine.launch import Launch

# Importing torch in the fresh process takes seconds; the parent's hard limit allows this
# much beyond the cell's own timeout before it kills a worker that stopped answering.
STARTUP_GRACE_S = 30.0


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


@dataclass
class Worker:
    """One worker process, started on first use; `measure` never raises for a cell."""

    launch: Launch = field(default_factory=Launch)
    grace_s: float = STARTUP_GRACE_S
    _proc: subprocess.Popen | None = None
    _answers: int | None = None  # read end of the answers pipe
    _stderr: object = None  # a temporary file holding the worker's stderr
    _buffer: bytes = b""
    started_with: dict[str, str] | None = None  # the environment it was started in

    def start(self) -> None:
        self.started_with = self.launch.environment()
        read, write = os.pipe()
        # Kept open for the worker's life (closed in `close`), read if it dies.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc = subprocess.Popen(
            [
                *self.launch.prefix,
                self.launch.python,
                "-m",
                "seqbench.execute.worker",
                f"/dev/fd/{write}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            pass_fds=(write,),
            env=self.started_with,
            cwd=self.launch.cwd,
        )
        os.close(write)
        self._answers = read

    def wait_ready(self, limit: float) -> dict | None:
        """Start the worker and wait for its first line (`{"ready": pid}`, from a worker
        that announces itself); None if it died or said nothing within `limit` seconds."""
        if self._proc is None:
            self.start()
        line = self._read_line(limit, Stopwatch())
        return json.loads(line) if line else None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def measure(self, request: CellRequest) -> Measurement:
        from seqbench.measure import failure

        watch = Stopwatch()
        if self._proc is None:
            self.start()
        limit = None if request.timeout is None else request.timeout + self.grace_s
        try:
            self._proc.stdin.write((json.dumps(request.to_dict()) + "\n").encode())
            self._proc.stdin.flush()
            line = self._read_line(limit, watch)
        except BrokenPipeError:  # it died before reading the request
            line = b""
        except BaseException:  # Ctrl-C: do not leave the worker behind
            self.close(kill=True)
            raise
        if line is None:  # no answer in time: stop it for good
            self.close(kill=True)
            message = f"the cell's process stopped answering; killed after {limit:g} s"
            return failure(request.cell, "timeout", message, wall_s=watch.elapsed())
        if not line:
            message = self._death()
            self.close()
            return failure(request.cell, "error", message, wall_s=watch.elapsed())
        return Measurement.from_dict(json.loads(line))

    def _read_line(self, limit: float | None, watch: Stopwatch) -> bytes | None:
        """The next answer line; b"" if the worker closed its end (it died), None if it ran
        out of time."""
        while b"\n" not in self._buffer:
            left = None if limit is None else max(0.0, limit - watch.elapsed())
            ready, _, _ = select.select([self._answers], [], [], left)
            if not ready:
                return None
            chunk = os.read(self._answers, 1 << 16)
            if not chunk:
                return b""
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _death(self) -> str:
        """How the worker died, and its last words on stderr."""
        returncode = self._proc.wait()
        how = _signal_name(returncode) if returncode < 0 else f"exit code {returncode}"
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace")
        last = next((line for line in reversed(err.splitlines()) if line.strip()), "")
        return f"the cell's process died ({how}){': ' + last if last else ''}"

    def close(self, *, kill: bool = False) -> None:
        """End the worker: it exits when its stdin closes, or is killed (`kill`, or if it
        does not exit within a few seconds)."""
        if self._proc is not None:
            if kill:
                self._proc.kill()
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._answers is not None:
            os.close(self._answers)
            self._answers = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._buffer = b""


def run_in_fresh_process(request: CellRequest, grace_s: float | None = None) -> Measurement:
    """Measure `request` in a new worker process; a dead or hung worker becomes a row."""
    worker = Worker(grace_s=STARTUP_GRACE_S if grace_s is None else grace_s)
    try:
        return worker.measure(request)
    finally:
        worker.close()


class SubprocessExecutor(OneAtATime):
    """`--isolate`: every cell in a fresh worker process."""

    name = "subprocess"
    separate_processes = True

    def __init__(self, grace_s: float | None = None) -> None:
        super().__init__()
        self._grace = grace_s

    def run(self, request: CellRequest) -> Measurement:
        return run_in_fresh_process(request, self._grace)


class ProcessWorkerExecutor(OneAtATime):
    """`--processes N`: each of a cell's processes is a fresh worker, and one worker serves
    every cell of its turn. The scheduler's passes go process by process (process 1 of every
    cell, then process 2, ...), so the n-th worker measures every cell's n-th process; it
    runs the request's `rounds` passes before the next one starts (`process_index`). N cells in P processes cost
    P worker start-ups, not N x P, and each cell's processes are apart in time. With `keep`,
    the P workers stay up for requests that come in several plans (the pytest plugin's calls),
    worker k serving every plan's k-th process."""

    name = "worker-per-process"
    separate_processes = True

    def __init__(
        self,
        launch: Launch | None = None,
        grace_s: float | None = None,
        *,
        keep: bool = False,
        ready: Worker | None = None,
    ) -> None:
        super().__init__()
        self._launch = launch or Launch()
        self._grace = STARTUP_GRACE_S if grace_s is None else grace_s
        self._keep = keep
        self._workers: dict[int, Worker] = {}
        # A worker started ahead (`start_ahead`), importing torch while the run was planned:
        # the first process to start is this one, if it is still alive and of this launch.
        self._ready = ready if ready is not None and ready.launch == self._launch else None
        if ready is not None and self._ready is None:
            ready.close(kill=True)

    def run(self, request: CellRequest) -> Measurement:
        index = process_index(request)
        worker = self._workers.get(index)
        if worker is None or not worker.alive:
            # A new process; a worker that died took only its cell, and the next one starts.
            if worker is not None:
                worker.close()
            if not self._keep:
                self.close_workers()
            worker = self._workers[index] = self._take_ready() or Worker(self._launch, self._grace)
        return worker.measure(request)

    def _take_ready(self) -> Worker | None:
        """The worker started ahead, if it can serve as one started now would: alive, and
        in the environment a worker gets now (planning may have put a user's folder on the
        import path, for their own architectures)."""
        ready, self._ready = self._ready, None
        if ready is None:
            return None
        if not ready.alive or ready.started_with != self._launch.environment():
            ready.close(kill=True)
            return None
        ready.grace_s = self._grace
        return ready

    def close_workers(self) -> None:
        for worker in self._workers.values():
            worker.close()
        self._workers.clear()

    def __exit__(self, *exc: object) -> None:
        self.close_workers()
        if self._ready is not None:  # never needed: no cell ran
            self._ready.close(kill=True)
            self._ready = None
        super().__exit__(*exc)


def start_ahead() -> Worker:
    """A worker started now, to import torch while this process imports it and plans the
    run (on two cores, the two imports take the time of one): a `ProcessWorkerExecutor`
    given it as `ready` measures its first process there. Whoever starts it closes it
    (`close(kill=True)`) once the run is over; a worker the executor already closed is
    closed twice harmlessly."""
    worker = Worker()
    worker.start()
    return worker


class CellWorkerExecutor(OneAtATime):
    """One worker per cell, kept across the cell's rounds: a fresh process for every cell,
    started once however many passes it gets (how `seqbench ab` runs each version)."""

    name = "worker-per-cell"

    def __init__(self, launch: Launch, grace_s: float | None = None) -> None:
        super().__init__()
        self._launch = launch
        self._grace = STARTUP_GRACE_S if grace_s is None else grace_s
        self._worker: Worker | None = None
        self._cell_id = ""

    def run(self, request: CellRequest) -> Measurement:
        if self._worker is None or self._cell_id != request.cell.cell_id or not self._worker.alive:
            self.close_worker()
            self._worker = Worker(self._launch, self._grace)
            self._cell_id = request.cell.cell_id
        return self._worker.measure(request)

    def close_worker(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def __exit__(self, *exc: object) -> None:
        self.close_worker()
        super().__exit__(*exc)


def worker_command() -> list[str]:
    return [sys.executable, "-m", "seqbench.execute.worker"]


def worker_environment() -> dict[str, str]:
    return Launch().environment()


__all__ = [
    "STARTUP_GRACE_S",
    "CellWorkerExecutor",
    "ProcessWorkerExecutor",
    "SubprocessExecutor",
    "Worker",
    "run_in_fresh_process",
    "start_ahead",
    "worker_command",
    "worker_environment",
]
