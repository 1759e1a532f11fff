"""The results/ layout: one folder per run, written after every cell, never half-written.

    results/<run-id>/
        results.csv        one row per finished cell (the contract in schema.py)
        samples.csv        raw per-step timing samples: cell_id, sample_s
        meta.json          schema version, state, environment, resolved configuration, plan

A rows file written elsewhere (`--csv out.csv`, `seqbench export`) carries the same
sidecars beside it: `out.samples.csv` and `out.meta.json`. Every write goes to a temporary
file in the same folder and is renamed over the old one, so a crash or `kill -9` leaves
either the previous complete file or the new complete file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from seqbench.errors import ResultsError, require
from seqbench.export.csv import CsvExporter
from seqbench.schema import REQUIRED_KEY_COLUMNS, SCHEMA_VERSION, Measurement, ResultRow

ROWS_FILE = "results.csv"
SAMPLES_FILE = "samples.csv"
META_FILE = "meta.json"
META_FORMAT = "seqbench-run"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes its file private (0600); a results file or a plot is for sharing, so it gets
# the mode an ordinary open() would give it.
FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(
            fd, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8", "newline": ""})
        ) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def sidecars(rows_path: Path) -> tuple[Path, Path]:
    """(samples, meta) paths for a rows file: run folders use fixed names, others a prefix."""
    if rows_path.name == ROWS_FILE:
        return rows_path.with_name(SAMPLES_FILE), rows_path.with_name(META_FILE)
    stem = rows_path.with_suffix("")
    return Path(f"{stem}.samples.csv"), Path(f"{stem}.meta.json")


def render_samples(samples: dict[str, list[float]]) -> str:
    buf = io.StringIO()
    buf.write("cell_id,sample_s\n")
    for cell_id, values in samples.items():
        for value in values:
            buf.write(f"{cell_id},{float(value)!r}\n")
    return buf.getvalue()


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def new_run_dir(root: Path, label: str) -> Path:
    """A fresh folder named <UTC time>-<label>; a suffix keeps two runs in one second apart."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}"
    for attempt in range(1, 1000):
        path = root / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise ResultsError(f"{root}: could not create a unique run folder for {base}")


@dataclass
class Run:
    """A run in memory: its metadata, its rows and their raw samples."""

    path: Path
    meta: dict[str, Any]
    rows: list[ResultRow] = field(default_factory=list)
    samples: dict[str, list[float]] = field(default_factory=dict)
    extra_csv: Path | None = None

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id", self.path.name))

    def row(self, cell_id: str) -> ResultRow | None:
        """The saved row of a cell, if any."""
        return next((r for r in self.rows if r.cell_id == cell_id), None)

    def add(self, measurement: Measurement) -> None:
        """Record a finished cell (or a later round of one) and save everything at once.

        Rows are kept in the plan's order, whatever order cells finish in (Ray runs finish
        out of order); cells outside the plan follow, in the order they came.
        """
        row = measurement.row
        self.rows = [r for r in self.rows if r.cell_id != row.cell_id] + [row]
        order = {cell_id: i for i, cell_id in enumerate(self.meta.get("plan") or [])}
        self.rows.sort(key=lambda r: order.get(r.cell_id, len(order)))

        if measurement.samples:
            self.samples[measurement.row.cell_id] = [float(s) for s in measurement.samples]
        self.save()

    def finish(self, state: str) -> None:
        self.meta["state"] = state
        self.meta["finished_at"] = now_iso()
        self.save()

    def save(self) -> None:
        rows_text = CsvExporter().render(self.rows)
        targets = [self.path / ROWS_FILE]
        if self.extra_csv is not None:
            targets.append(self.extra_csv)
        for rows_path in targets:
            write_rows_file(rows_path, rows_text, self.samples, self.meta)


def write_rows_file(
    rows_path: Path, rows: str | bytes, samples: dict[str, list[float]], meta: dict[str, Any]
) -> None:
    """Write a rendered rows file with its sidecars, so that `load_run` can read it back."""
    samples_path, meta_path = sidecars(rows_path)
    # Samples and metadata first: a rows file never names a cell its samples lack.
    atomic_write(samples_path, render_samples(samples))
    atomic_write(meta_path, json.dumps(meta, indent=2, default=str) + "\n")
    atomic_write(rows_path, rows)


def create_run(
    root: Path,
    *,
    label: str,
    config: dict[str, Any],
    env: dict[str, Any],
    plan: list[str],
    extra_csv: Path | None = None,
) -> Run:
    path = new_run_dir(root, label)
    meta = {
        "format": META_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "run_id": path.name,
        "label": label,
        "state": "running",
        "created_at": now_iso(),
        # Orders runs started within one second (their folder names tie on the time).
        "created_ns": time.time_ns(),
        "finished_at": None,
        "env": env,
        "config": config,
        "plan": plan,
    }
    run = Run(path, meta, extra_csv=extra_csv)
    run.save()
    return run


# ----------------------------------------------------------------------------- loading


def resolve_run_path(ref: str | Path, root: Path) -> Path:
    """A run id under `root`, 'latest', a run folder, or a rows CSV: the rows file's path."""
    text = str(ref)
    if text == "latest":
        runs = list_run_dirs(root)
        if not runs:
            raise ResultsError(f"{root}: no saved runs")
        return runs[0] / ROWS_FILE
    path = Path(ref)
    if not path.exists() and (root / text).exists():
        path = root / text
    if path.is_dir():
        rows = path / ROWS_FILE
        if not rows.exists():
            raise ResultsError(f"{path}: not a seqbench run folder (no {ROWS_FILE})")
        return rows
    if path.is_file():
        return path
    raise ResultsError(f"{text}: no such run or results file (looked in {root} too)")


def list_run_dirs(root: Path) -> list[Path]:
    """Run folders under `root`, newest first: by the time in their name, then by the
    nanosecond creation time in their metadata (runs started within one second), then name."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and (p / META_FILE).is_file()]
    return sorted(found, key=lambda p: (p.name[:15], _created_ns(p), p.name), reverse=True)


def _created_ns(folder: Path) -> int:
    """The run's creation time in ns from its metadata; 0 if unreadable or older than it."""
    try:
        value = json.loads((folder / META_FILE).read_text(encoding="utf-8")).get("created_ns")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return 0
    return value if isinstance(value, int) else 0


def _read_meta(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ResultsError(f"{path}: metadata file is missing")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read metadata ({exc})") from None
    if not text.strip():
        raise ResultsError(f"{path}: metadata file is empty")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(
            f"{path}: metadata is damaged or truncated ({exc.msg} at line {exc.lineno})"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        raise ResultsError(f"{path}: not seqbench metadata")
    version = meta.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ResultsError(
            f"{path}: written by a newer seqbench (schema {version}, this one reads up to {SCHEMA_VERSION})"
        )
    return meta


# Rows files `load_run` reads, by suffix (anything else is read as CSV).
ROWS_FORMATS = {".json": "json", ".parquet": "parquet"}


def _read_rows(path: Path) -> list[ResultRow]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read results ({exc.strerror or exc})") from None
    return parse_rows(data, ROWS_FORMATS.get(path.suffix.lower(), "csv"), str(path))


def parse_rows(data: str | bytes, fmt: str, source: str) -> list[ResultRow]:
    """Rows from an exported file's contents (csv, json or parquet): the exporters' inverse.

    Anything that is not such a file raises one `ResultsError` naming `source`.
    """
    if not data:
        raise ResultsError(f"{source}: results file is empty")
    readers = {"csv": _csv_records, "json": _json_records, "parquet": _parquet_records}
    if fmt not in readers:
        raise ResultsError(f"{source}: cannot read {fmt!r} back; readable: {', '.join(readers)}")
    rows = []
    for i, record in enumerate(readers[fmt](data, source)):
        try:
            rows.append(ResultRow.from_dict(record))
        except (ValueError, TypeError) as exc:
            raise ResultsError(f"{source}: damaged results (row {i + 1}: {exc})") from None
    return rows


def _check_columns(columns: Any, source: str, where: str = "") -> None:
    missing = [c for c in (*REQUIRED_KEY_COLUMNS, "status") if c not in columns]
    if missing:
        raise ResultsError(
            f"{source}: not a seqbench results file{where} (missing columns: {', '.join(missing)})"
        )


def _csv_records(data: str | bytes, source: str) -> list[dict[str, Any]]:
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        frame = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""], dtype=str)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ResultsError(f"{source}: cannot read results ({str(exc).splitlines()[0]})") from None
    _check_columns(frame.columns, source)
    return frame.to_dict(orient="records")


def _json_records(data: str | bytes, source: str) -> list[dict[str, Any]]:
    try:
        records = json.loads(data)
    except UnicodeDecodeError:
        raise ResultsError(f"{source}: not valid JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(
            f"{source}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ResultsError(f"{source}: expected a JSON list of row objects")
    for i, record in enumerate(records):
        _check_columns(record, source, f" (row {i + 1})")
    return records


def _parquet_records(data: str | bytes, source: str) -> list[dict[str, Any]]:
    pq = require("pyarrow.parquet", "reading parquet")
    pa = require("pyarrow", "reading parquet")
    raw = data.encode() if isinstance(data, str) else data
    try:
        table = pq.read_table(pa.BufferReader(raw))
    except (pa.ArrowException, OSError) as exc:
        raise ResultsError(f"{source}: not a parquet file ({str(exc).splitlines()[0]})") from None
    _check_columns(table.column_names, source)
    return table.to_pylist()


def _read_samples(path: Path) -> dict[str, list[float]]:
    if not path.exists():
        return {}
    try:
        frame = pd.read_csv(path, dtype={"cell_id": str, "sample_s": float})
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ResultsError(f"{path}: cannot read samples ({str(exc).splitlines()[0]})") from None
    if list(frame.columns) != ["cell_id", "sample_s"]:
        raise ResultsError(f"{path}: not a seqbench samples file")
    return {cid: group["sample_s"].tolist() for cid, group in frame.groupby("cell_id", sort=False)}


def load_run(ref: str | Path, root: str | Path = Path("results")) -> Run:
    """Load a saved run (see `resolve_run_path`); damaged files raise one clear `ResultsError`."""
    rows_path = resolve_run_path(ref, Path(root))
    samples_path, meta_path = sidecars(rows_path)
    meta = _read_meta(meta_path)
    rows = _read_rows(rows_path)
    samples = _read_samples(samples_path)
    folder = rows_path.parent if rows_path.name == ROWS_FILE else rows_path
    return Run(folder, meta, rows, samples)


def reopen_run(ref: str | Path, root: Path) -> Run:
    """A saved run, ready to take more cells (`seqbench run --resume`)."""
    rows_path = resolve_run_path(ref, root)
    if rows_path.name != ROWS_FILE:
        raise ResultsError(f"{ref}: --resume needs a run folder (or its id), not a CSV file")
    run = load_run(rows_path.parent, root)
    run.meta["state"] = "running"
    run.meta.setdefault("resumed_at", []).append(now_iso())
    return run


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


def summarize_runs(root: Path) -> list[RunSummary]:
    """Every run folder under `root`, newest first; a damaged one is listed with its problem
    rather than hiding the others."""
    summaries = []
    for folder in list_run_dirs(root):
        try:
            run = load_run(folder, root)
        except ResultsError as exc:
            summaries.append(RunSummary(folder.name, state="damaged", problem=str(exc)))
            continue
        statuses: dict[str, int] = {}
        for row in run.rows:
            statuses[row.status] = statuses.get(row.status, 0) + 1
        summaries.append(
            RunSummary(
                run_id=run.run_id,
                label=str(run.meta.get("label", "")),
                created_at=str(run.meta.get("created_at", "")),
                state=str(run.meta.get("state", "")),
                devices=tuple(dict.fromkeys(r.device for r in run.rows)),
                cells=len(run.rows),
                statuses=statuses,
            )
        )
    return summaries
