"""Instructions per step, counted by callgrind: a figure other processes cannot move.

This runs inside a worker that valgrind started (`seqbench.execute.callgrind`), with
collection off. The cell is built and warmed up exactly as the timing path does it, then
collection is switched on for `count_steps` calls of the same step closure and off again,
and callgrind writes that stretch to a dump file, whose total this reads back. A loop of the
same length around an empty callable is counted too, and subtracted, so the figure is what
the step itself executes. Everything else (importing torch, building, warm-up) is never
counted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import torch

from seqbench.core.request import CellRequest
from seqbench.core.schema import Measurement, ResultRow
from seqbench.measure.workload import build_workload
from seqbench.tasks import prepared

# Where callgrind writes its dumps (`--callgrind-out-file`); the worker's launcher sets it.
OUT_VARIABLE = "SEQBENCH_CALLGRIND_OUT"

_TOTALS = re.compile(rb"^(?:totals|summary):\s*(\d+)", re.MULTILINE)
_dumps = 0  # dumps this process has asked for; callgrind numbers them from 1


def counting_reason() -> str | None:
    """Why instructions cannot be counted in this process; None if they can."""
    if not os.environ.get(OUT_VARIABLE):
        return "not running under callgrind"
    if not torch._C._valgrind_supported_platform():
        return "this torch build has no callgrind client requests on this platform"
    return None


def _counted(step: Callable[[], object], steps: int) -> int:
    """Instructions executed by `steps` calls of `step`, collection on only around them."""
    global _dumps
    torch._C._valgrind_toggle()
    for _ in range(steps):
        step()
    torch._C._valgrind_toggle_and_dump_stats()
    _dumps += 1
    dump = Path(f"{os.environ[OUT_VARIABLE]}.{_dumps}")
    text = dump.read_bytes()
    dump.unlink()
    found = _TOTALS.search(text)
    if found is None:
        raise RuntimeError(f"no totals in callgrind's dump {dump}")
    return int(found.group(1))


def _nothing() -> None:
    return None


def count_instructions(request: CellRequest) -> Measurement:
    """The cell's row with `instr_per_step` and `instr_steps`, or `instr_note` saying why
    it could not be counted. The caller (`seqbench.measure.measure`) turns exceptions into
    rows."""
    cell = request.cell
    reason = counting_reason()
    if reason is None and torch.device(cell.device).type != "cpu":
        reason = "only CPU cells can be counted"
    if reason:
        return Measurement(ResultRow.for_cell(cell, instr_note=reason))
    train = request.train
    task = (
        prepared(cell.task, cell.seq_len, cell.vocab, request.seed, train.data)
        if cell.task
        else None
    )
    work = build_workload(cell, request.seed, train, task, request.compile_backend)
    for _ in range(max(2, request.measure.warmup_steps)):
        work.step()
    steps = request.count_steps
    total = _counted(work.step, steps)
    empty = _counted(_nothing, steps)
    row = ResultRow.for_cell(
        cell,
        params=work.params,
        core_params=work.core_params,
        params_keras=work.params_keras,
        instr_per_step=max(0, total - empty) / steps,
        instr_steps=steps,
        threads=torch.get_num_threads(),
    )
    return Measurement(row)
