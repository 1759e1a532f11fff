"""`seqbench runs`: a line per saved run, from its metadata where it is finished (its rows
file checked by its header only) and from its rows otherwise; a damaged run is listed with
its problem rather than hiding the others."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqbench.core.errors import ResultsError
from seqbench.storage.csvio import KNOWN_SAMPLES_COLUMNS, header_of
from seqbench.storage.files import sidecars
from seqbench.storage.meta import RunMeta
from seqbench.storage.read import (
    _exists,
    _read_meta,
    _read_rows,
    list_run_dirs,
    resolve_run_path,
)
from seqbench.storage.run import Run


@dataclass(frozen=True)
class RunSummary:
    """One line of `seqbench runs`: what a saved run is, without its samples."""

    run_id: str
    label: str = ""
    created_at: str = ""
    state: str = ""
    devices: tuple[str, ...] = ()
    cells: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    problem: str = ""  # why the run could not be read, if it could not


def _summarize(folder: Path, root: Path) -> RunSummary:
    """A run's summary from its metadata and rows; of the samples only the header is read."""
    rows_path = resolve_run_path(folder, root)
    samples_path, meta_path = sidecars(rows_path)
    meta = _read_meta(meta_path)
    summary = _finished_summary(meta, rows_path)
    if summary is None:  # still running (or killed while it ran): count its rows
        rows = Run(folder, meta, _read_rows(rows_path)[0]).rows
        summary = {
            "cells": len(rows),
            "statuses": dict(collections.Counter(r.status for r in rows)),
            "devices": list(dict.fromkeys(r.device for r in rows)),
        }
    if _exists(samples_path):
        try:
            with open(samples_path, encoding="utf-8", errors="replace") as fh:
                columns = tuple(header_of(fh.readline()))
        except OSError as exc:
            raise ResultsError(
                f"{samples_path}: cannot read samples ({exc.strerror or exc})"
            ) from None
        if columns not in KNOWN_SAMPLES_COLUMNS:
            raise ResultsError(f"{samples_path}: not a seqbench samples file")
    return RunSummary(
        run_id=meta.run_id or folder.name,
        label=meta.label,
        created_at=meta.created_at,
        state=meta.state,
        devices=tuple(summary["devices"]),
        cells=summary["cells"],
        statuses=dict(summary["statuses"]),
    )


def _finished_summary(meta: RunMeta, rows_path: Path) -> dict[str, Any] | None:
    """A finished run's summary from its metadata, its rows file checked by its header only
    (a file that lost a column a verdict needs is damaged, as when its rows are read); None
    when the run has no summary (still running, killed, or written before there was one)."""
    summary = meta.summary
    if meta.state not in ("complete", "interrupted") or not summary or rows_path.suffix != ".csv":
        return None
    try:
        with open(rows_path, encoding="utf-8", errors="replace") as fh:
            columns = header_of(fh.readline())
    except OSError as exc:
        raise ResultsError(f"{rows_path}: cannot read it ({exc.strerror or exc})") from None
    if "cell_id" not in columns or (
        summary.get("statuses", {}).get("ok") and "median_s" not in columns
    ):
        return None  # read the rows, which says what is wrong with them
    return summary


def summarize_runs(root: Path) -> list[RunSummary]:
    """Every run folder under `root`, newest first; a damaged one is listed with its problem
    rather than hiding the others."""
    summaries = []
    for folder in list_run_dirs(root):
        try:
            summaries.append(_summarize(folder, root))
        except ResultsError as exc:
            summaries.append(RunSummary(folder.name, state="damaged", problem=str(exc)))
    return summaries
