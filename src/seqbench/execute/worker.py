"""The child side of the subprocess executor: measure requests in this fresh process.

    python -m seqbench.execute.worker ANSWERS < requests.jsonl

The protocol is strict and small. The parent writes requests to stdin, one JSON object per
line (`CellRequest.to_dict`), and closes it. For each, this process applies the request's
process settings, measures it, and appends one JSON line to the ANSWERS file: the row, the
samples, and the request's round, flushed before the next request starts. stdout and stderr
stay free for whatever a model prints (the parent keeps the end of stderr for its message).
A fresh process also makes the resident-set high-water mark a clean measure of its first
cell's own host memory, so that figure is reported for the first request only. On Linux the
worker dies with its parent, however the parent dies. Under callgrind (the parent sets
SEQBENCH_CALLGRIND_OUT) the worker first imports torch and answers `{"ready": pid}`, so that
the parent can switch instrumentation on once the start-up is over.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import sys
from typing import Any


def serve(request_data: dict[str, Any], *, first: bool = True) -> dict[str, Any]:
    """Measure one request (as JSON data) in this process and return the answer's data."""
    from seqbench.core.request import CellRequest
    from seqbench.core.schema import Measurement
    from seqbench.machine.env import apply_process
    from seqbench.measure import measure
    from seqbench.measure.memory import current_rss_bytes, max_rss_bytes

    request = CellRequest.from_dict(request_data)
    apply_process(request.process)
    before = current_rss_bytes()
    result = measure(request)
    row = result.row
    if first and row.status == "ok" and before:
        row = dataclasses.replace(row, peak_rss_bytes=max(0, max_rss_bytes() - before))
    answer = Measurement(row, result.samples, result.curve, result.machine_s)
    return {**answer.to_dict(), "round": request.round}


def die_with_parent() -> None:
    """Ask Linux to kill this worker the moment its parent dies (even by kill -9), so that a
    cell in the middle of a long step is not left running with no one to report to."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request above
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m seqbench.execute.worker ANSWERS < requests.jsonl", file=sys.stderr)
        return 2
    die_with_parent()
    with open(args[0], "a", encoding="utf-8") as answers:
        # torch and seqbench first, then set aside from the collector: a cell's full
        # collection (measure() runs one after every cell) then walks that cell's objects,
        # not torch's hundreds of thousands, 0.15 s a cell less here (2.4 s of a 7 s pass of
        # the quick suite). Under callgrind, started uninstrumented, this import also runs
        # at native-like speed before the parent switches instrumentation on.
        import seqbench.measure  # noqa: F401

        gc.collect()
        gc.freeze()
        if os.environ.get("SEQBENCH_CALLGRIND_OUT"):
            answers.write(json.dumps({"ready": os.getpid()}) + "\n")
            answers.flush()
        for number, line in enumerate(sys.stdin):
            if not line.strip():
                continue
            answer = serve(json.loads(line), first=number == 0)
            answers.write(json.dumps(answer) + "\n")
            answers.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
