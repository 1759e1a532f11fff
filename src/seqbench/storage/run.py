"""A run in memory, and how it is saved: appended cell by cell, rewritten whole rarely."""

from __future__ import annotations

import collections
import contextlib
import operator
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqbench.core.schema import Measurement, ResultRow
from seqbench.storage.csvio import render_row, render_rows
from seqbench.storage.csvio import render_samples as render_batch
from seqbench.storage.curves import Point, append_curve
from seqbench.storage.files import (
    ROWS_FILE,
    Rounds,
    append_synced,
    atomic_write,
    by_process,
    machine_by_process,
    new_run_dir,
    now_iso,
    render_meta,
    render_samples,
    saving,
    sidecars,
)
from seqbench.storage.lock import RunLock, WriterLock, copy_lock
from seqbench.storage.meta import RunMeta


@dataclass
class _OnDisk:
    """What a rows file and its samples file hold beyond the run in memory: enough to tell
    whether appending may go on, and whether finishing must rewrite them."""

    row_ids: list[str]  # the cell id of every row line, in file order
    dead_samples: int = 0  # lines of cells whose last row failed: a reader skips them
    # False while the files hold what must go before appending (a torn tail, uncommitted
    # samples, an older format) or during an append that an interrupt may cut short.
    clean: bool = True
    # The rows file's text as read, where the reader asked to keep it (`load_run(keep_text=)`)
    text: str | None = None


class Run:
    """A run in memory: its metadata, its rows (one per cell) and their raw samples.

    `rows` come in the plan's order, whatever order cells finished in (Ray runs finish out
    of order); cells outside the plan follow, in the order they came. Assigning `rows` or
    `samples` whole is allowed and makes the next save rewrite the files; change them
    otherwise only through `add`.
    """

    def __init__(
        self,
        path: Path,
        meta: RunMeta,
        rows: Iterable[ResultRow] = (),
        samples: dict[str, list[float]] | None = None,
        extra_csv: Path | None = None,
    ) -> None:
        self.path = path
        self.meta = meta
        self.extra_csv = extra_csv
        self._rows: dict[str, ResultRow] = {}
        self._ordered: list[ResultRow] | None = None
        self._samples: dict[str, list[float]] = {}
        self.curves: dict[str, list[Point]] = {}  # learning curves of task cells, by cell id
        self.curves_problem = ""  # why the curves file could not be read, if it could not
        self.batches: Rounds = {}
        self._disk: dict[Path, _OnDisk] = {}  # the files that are known to match memory
        self._meta_pending = False  # a resume's new state, saved with the first write
        self._lock = RunLock(path)  # held while this process may write the run
        self._copy_lock: WriterLock | None = None  # and the --csv copy, while it has one
        self._order: tuple[int, int, dict[str, int]] = (0, -1, {})
        # Reads the samples file when they are first needed (load_run(samples=False)): a
        # table of a run's rows never needs its samples, which are most of its bytes.
        self._pending: tuple[Callable[[], tuple[dict, Rounds, int, bool]], Path] | None = None
        self.rows = rows
        self.samples = samples or {}

    @classmethod
    def _loaded(
        cls,
        rows_path: Path,
        meta: RunMeta,
        lines: list[ResultRow],
        samples: dict[str, list[float]],
        rounds: Rounds,
        on_disk: _OnDisk,
        read_samples: Callable[[], tuple[dict, Rounds, int, bool]] | None = None,
    ) -> Run:
        """A run as `load_run` read it: every row line, the committed samples, and what the
        files hold beyond them (so that saving knows whether it may append). With
        `read_samples`, the samples are read on first use: it gives them, their rounds, the
        dead sample lines and whether the samples file may take appends."""
        folder = rows_path.parent if rows_path.name == ROWS_FILE else rows_path
        run = cls(folder, meta, lines)
        run._samples, run.batches = samples, rounds
        run._disk[rows_path] = on_disk
        if read_samples is not None:
            run._pending = (read_samples, rows_path)
        return run

    def _load_pending(self) -> None:
        if self._pending is None:
            return
        (read_samples, rows_path), self._pending = self._pending, None
        samples, rounds, dead, clean = read_samples()
        self._samples_store, self._rounds_store = samples, rounds
        disk = self._disk.get(rows_path)
        if disk is not None:
            disk.dead_samples += dead
            disk.clean = disk.clean and clean

    # The samples and their rounds, read first if they are still on disk only.
    @property
    def _samples(self) -> dict[str, list[float]]:
        self._load_pending()
        return self._samples_store

    @_samples.setter
    def _samples(self, samples: dict[str, list[float]]) -> None:
        self._samples_store = samples

    @property
    def batches(self) -> Rounds:
        """Each cell's samples as (round, count, machine_s) batches: their passes and processes."""
        self._load_pending()
        return self._rounds_store

    @batches.setter
    def batches(self, rounds: Rounds) -> None:
        self._rounds_store = rounds

    @property
    def run_id(self) -> str:
        return self.meta.run_id or self.path.name

    @property
    def rows(self) -> list[ResultRow]:
        if self._ordered is None:  # cached: sorting is the one cost here that grows
            plan, ids = self.meta.plan, list(self._rows)
            self._ordered = list(self._rows.values())
            if len(ids) > len(plan) or not all(map(operator.eq, ids, plan)):  # not in order
                order = self._plan_index()
                key = len(order)
                self._ordered.sort(key=lambda r: order.get(r.cell_id, key))
        return list(self._ordered)

    @rows.setter
    def rows(self, rows: Iterable[ResultRow]) -> None:
        rows = rows if isinstance(rows, list) else list(rows)
        self._rows = dict(zip(map(operator.attrgetter("cell_id"), rows), rows, strict=True))
        if len(self._rows) != len(rows):  # a cell's last row wins, and takes its last place
            last = {row.cell_id: i for i, row in enumerate(rows)}
            self._rows = {rows[i].cell_id: rows[i] for i in sorted(last.values())}
        self._ordered = None
        self._disk.clear()

    @property
    def samples(self) -> dict[str, list[float]]:
        return self._samples

    @samples.setter
    def samples(self, samples: dict[str, list[float]]) -> None:
        self._pending = None  # replaced whole: what the file holds no longer matters
        self._samples = {k: [float(v) for v in vs] for k, vs in samples.items()}
        self.batches = {}
        self._disk.clear()

    def _plan_index(self) -> dict[str, int]:
        plan = self.meta.plan
        if self._order[:2] != (id(plan), len(plan)):
            self._order = (id(plan), len(plan), {c: i for i, c in enumerate(plan)})
        return self._order[2]

    def sample_groups(self, cell_id: str, per_process: int | None = None) -> list[list[float]]:
        """A cell's samples split by the fresh process they came from (`by_process`); without
        `per_process`, one group (one process)."""
        samples, batches = self._samples.get(cell_id, []), self.batches.get(cell_id, [])
        groups = by_process(batches, per_process, samples) if per_process else []
        return groups or ([samples] if samples else [])

    def machine_times(self, cell_id: str, per_process: int | None = None) -> list[float] | None:
        """Each process's machine time, ordered as `sample_groups` (None: one process)."""
        batches = self.batches.get(cell_id, [])
        return machine_by_process(batches, per_process) if per_process else None

    def rounds_per_process(self, row: ResultRow) -> int | None:
        """How many passes each of a row's processes ran (None: one process): the run's
        configured rounds, or, for a file without them, the row's passes over its processes."""
        if not row.processes or row.processes < 2:
            return None
        measure = self.meta.config.get("measure") if isinstance(self.meta.config, dict) else None
        rounds = measure.get("rounds") if isinstance(measure, dict) else None
        if isinstance(rounds, int) and rounds >= 1:
            return rounds
        return -(-(row.rounds or row.processes) // row.processes)

    def row(self, cell_id: str) -> ResultRow | None:
        """The saved row of a cell, if any."""
        return self._rows.get(cell_id)

    def forget_failures(self, statuses: Iterable[str]) -> list[str]:
        """Drop the rows of cells that ended in these statuses, so that they are measured
        again (`--retry-errors`); their rows stay on disk until a new row supersedes them."""
        wanted = set(statuses)
        dropped = [cell_id for cell_id, row in self._rows.items() if row.status in wanted]
        for cell_id in dropped:
            del self._rows[cell_id]
        self._ordered = None
        return dropped

    def _targets(self) -> list[Path]:
        extra = [self.extra_csv] if self.extra_csv is not None else []
        return [self.path / ROWS_FILE, *extra]

    def add(self, measurement: Measurement) -> None:
        """Record a finished cell, or a later round of one, and save it by appending.

        A later round's measurement holds the cell's pooled samples (see `merge_rounds`):
        only those past the ones already saved are appended, tagged with the row's round.
        Anything else that replaces a saved cell rewrites the files, as every save did once.
        """
        self._sync()
        row, cell_id = measurement.row, measurement.row.cell_id
        if measurement.curve and row.status == "ok":  # before the row that names it
            with saving(self.path / ROWS_FILE):
                append_curve(self.path / ROWS_FILE, cell_id, measurement.curve)
            self.curves[cell_id] = list(measurement.curve)
        round_no, machine = row.rounds or 1, measurement.machine_s
        earlier = self._rows.get(cell_id)
        kept = self._samples.get(cell_id, [])
        samples = [float(s) for s in measurement.samples] if row.status == "ok" else []
        appendable = (
            row.status != "ok"
            or earlier is None
            or (
                earlier.status == "ok"
                and round_no == (earlier.rounds or 1) + 1
                and samples[: len(kept)] == kept
            )
        )
        new = samples[len(kept) :] if appendable and earlier is not None else samples
        dead = len(kept) if row.status != "ok" else 0

        self._rows.pop(cell_id, None)
        self._rows[cell_id] = row
        self._ordered = None
        if row.status != "ok":
            self._samples.pop(cell_id, None)
            self.batches.pop(cell_id, None)
        elif not appendable:
            self._samples[cell_id] = samples
            self.batches[cell_id] = [(round_no, len(samples), machine)]
        elif new:
            self._samples[cell_id] = kept + new
            self.batches[cell_id] = [*self.batches.get(cell_id, []), (round_no, len(new), machine)]
        if not appendable:
            self.save()
            return

        line = render_row(row)
        batch = render_batch(cell_id, new, round_no, machine) if new else ""
        for rows_path in self._targets():
            disk = self._disk[rows_path]
            disk.clean = False  # an interrupt from here on leaves what `finish` must redo
            with saving(rows_path):
                if batch:
                    append_synced(sidecars(rows_path)[0], batch)
                append_synced(rows_path, line)
            disk.row_ids.append(cell_id)
            disk.dead_samples += dead
            disk.clean = True

    def _sync(self) -> None:
        """Make the files fit for appending: a file not written yet (a new --csv target) or
        holding what must not stay (see `_OnDisk.clean`) is rewritten whole, once; a resumed
        run's metadata says it is running again."""
        self._load_pending()  # what the samples file holds decides whether it takes appends
        for rows_path in self._targets():
            disk = self._disk.get(rows_path)
            if disk is None or not disk.clean:
                self._write_whole(rows_path)
        if self._meta_pending:
            self.save_meta()

    def save_meta(self) -> None:
        """Replace meta.json (and the --csv target's): for what changes rarely, such as the
        state or a measured ceiling, never for each cell."""
        text = render_meta(self.meta)
        for rows_path in self._targets():
            with saving(rows_path):
                atomic_write(sidecars(rows_path)[1], text)
        self._meta_pending = False

    def claim(self) -> None:
        """Become the only writer of the run and of its --csv copy (see storage/lock.py), or
        raise one line naming the process that is."""
        if not self._lock.held:
            with saving(self.path / ROWS_FILE):
                self._lock.acquire()
        if self.extra_csv is not None and self._copy_lock is None:
            lock = copy_lock(self.extra_csv)
            with saving(self.extra_csv):
                lock.path.parent.mkdir(parents=True, exist_ok=True)
                lock.acquire()
            self._copy_lock = lock

    def close(self) -> None:
        """Stop writing the run without finishing it, as a process that died would: another
        process may resume it."""
        self._lock.release()
        if self._copy_lock is not None:
            self._copy_lock.release()
            self._copy_lock = None

    def finish(self, state: str) -> None:
        """Mark the run complete or interrupted; compact files that need it, once; and let
        another writer have it."""
        self.meta.state = state
        self.meta.finished_at = now_iso()
        self.meta.summary = {
            "cells": len(self.rows),
            "statuses": dict(collections.Counter(r.status for r in self.rows)),
            "devices": list(dict.fromkeys(r.device for r in self.rows)),
        }
        order = [r.cell_id for r in self.rows]
        self._load_pending()
        try:
            try:
                for rows_path in self._targets():
                    disk = self._disk.get(rows_path)
                    if disk is None or not disk.clean or disk.dead_samples or disk.row_ids != order:
                        self._write_whole(rows_path, meta=False)
            except OSError:
                # Every cell is on disk already (appended): only tidying the files failed, a
                # rewrite that needs room for a second copy of them. The state says so where
                # there is room for that, and a resume tidies them.
                self.meta.state = "interrupted"
                with contextlib.suppress(OSError):
                    self.save_meta()
                raise
            self.save_meta()
        finally:
            self.close()

    def save(self) -> None:
        """Rewrite every file whole, from memory."""
        for rows_path in self._targets():
            self._write_whole(rows_path)
        self._meta_pending = False

    def _write_whole(self, rows_path: Path, *, meta: bool = True) -> None:
        # Until the last file is down, the target counts as unknown: an interrupt in between
        # leaves it to be written whole again, not appended to.
        self._disk.pop(rows_path, None)
        rows = self.rows
        live = {r.cell_id: self._samples[r.cell_id] for r in rows if r.cell_id in self._samples}
        samples_path, meta_path = sidecars(rows_path)
        with saving(rows_path):
            # Samples first: a row never commits samples that are not there yet.
            atomic_write(samples_path, render_samples(live, self.batches))
            if meta:
                atomic_write(meta_path, render_meta(self.meta))
            atomic_write(rows_path, render_rows(rows))
        self._disk[rows_path] = _OnDisk([r.cell_id for r in rows])


def create_run(
    root: Path,
    *,
    label: str,
    config: dict[str, Any],
    env: dict[str, Any],
    plan: list[str] | dict[str, Any],  # the ids in run order; or a size and digest (LongPlan)
    extra_csv: Path | None = None,
) -> Run:
    path = new_run_dir(root, label)
    listed = isinstance(plan, list)
    meta = RunMeta(run_id=path.name, label=label, state="running", created_at=now_iso(),
                   created_ns=time.time_ns(), env=env, config=config,
                   plan=plan if listed else [], plan_stored=None if listed else plan)  # fmt: skip
    run = Run(path, meta, extra_csv=extra_csv)
    try:
        run.claim()
        run.save()
    except BaseException:  # refused, or no room: no empty run is left behind
        run.close()
        shutil.rmtree(path, ignore_errors=True)
        raise
    return run
