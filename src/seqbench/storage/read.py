"""Reading runs back: finding them, loading them (whatever a crash left), summarizing them."""

from __future__ import annotations

import collections
import json
import operator
import os
import re
import stat
from pathlib import Path
from typing import Any

from seqbench.core.errors import ResultsError, require
from seqbench.core.schema import SCHEMA_VERSION, ResultRow
from seqbench.core.settings import RESULTS_ROOT
from seqbench.core.table import rows_of_table
from seqbench.storage.csvio import (
    ROWS_HEADER,
    check_columns,
    read_rows_columns,
    read_rows_table,
    read_rows_typed,
    read_samples_table,
)
from seqbench.storage.curves import read_curves
from seqbench.storage.files import META_FILE, ROWS_FILE, Rounds, now_iso, sidecars
from seqbench.storage.meta import META_FORMAT, RunMeta
from seqbench.storage.run import Run, _OnDisk


def resolve_run_path(ref: str | Path, root: Path) -> Path:
    """A run id under `root`, 'latest', a run folder, or a rows CSV: the rows file's path."""
    text = str(ref)
    if text == "latest":
        runs = list_run_dirs(root)
        if not runs:
            raise ResultsError(f"{root}: no saved runs")
        return runs[0] / ROWS_FILE
    path = Path(ref)
    if not _exists(path) and _exists(root / text):
        path = root / text
    if path.is_dir():
        rows = path / ROWS_FILE
        if not _exists(rows, f"{path}: cannot read the run folder"):
            raise ResultsError(f"{path}: not a seqbench run folder (no {ROWS_FILE})")
        return rows
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".md", ".markdown"):
            raise ResultsError(
                f"{path}: a markdown export is for people, and cannot be read back; export the "
                "run as csv, json or parquet to read it again"
            )
        if suffix == ".toml":
            raise ResultsError(
                f"{path}: that is a suite file, not a run: measure it with `seqbench run --suite {path}`"
            )
        return path
    raise ResultsError(f"{text}: no such run or results file (looked in {root} too)")


def _exists(path: Path, what: str = "") -> bool:
    """Whether `path` is there; a folder on the way that cannot be looked into (mode 000) is
    one line, `what` or the path, with the reason."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        where = what or f"{path}: cannot read it"
        raise ResultsError(f"{where} ({exc.strerror or exc})") from None
    return True


# How `new_run_dir` names a run folder: <UTC time>-<label>.
RUN_NAME = re.compile(r"\d{8}-\d{6}-")


def _is_run_dir(entry: os.DirEntry) -> bool:
    """A folder holding metadata, or named like a run that cannot be looked into: listed
    (and, when read, reported) rather than left out as if it were not there."""
    try:
        if not entry.is_dir():
            return False
        return stat.S_ISREG(os.stat(os.path.join(entry.path, META_FILE)).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:  # mode 000, say
        return bool(RUN_NAME.match(entry.name))


def list_run_dirs(root: Path) -> list[Path]:
    """Run folders under `root`, newest first: by the time in their name, then by the
    nanosecond creation time in their metadata (runs started within one second), then name.
    A folder named like a run that cannot be read is among them (reading it says why)."""
    try:
        if not root.is_dir():
            if root.exists():  # a file where the results folder should be: say so
                raise ResultsError(f"{root}: not a folder (the results root holds run folders)")
            return []
        with os.scandir(root) as entries:
            found = [Path(e.path) for e in entries if _is_run_dir(e)]
    except OSError as exc:
        raise ResultsError(f"{root}: cannot list its runs ({exc.strerror or exc})") from None
    # Only runs that tie on the second need their metadata read.
    ties = collections.Counter(p.name[:15] for p in found)
    return sorted(
        found,
        key=lambda p: (p.name[:15], _created_ns(p) if ties[p.name[:15]] > 1 else 0, p.name),
        reverse=True,
    )


def _created_ns(folder: Path) -> int:
    """The run's creation time in ns from its metadata; 0 if unreadable or older than it."""
    try:
        value = json.loads((folder / META_FILE).read_text(encoding="utf-8")).get("created_ns")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return 0
    return value if isinstance(value, int) else 0


def _read_meta(path: Path) -> RunMeta:
    if not _exists(path, f"{path.parent}: cannot read the run folder"):
        raise ResultsError(f"{path}: metadata file is missing")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ResultsError(f"{path}: cannot read metadata ({reason})") from None
    if not text.strip():
        raise ResultsError(f"{path}: metadata file is empty")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(
            f"{path}: metadata is damaged or truncated ({exc.msg} at line {exc.lineno})"
        ) from None
    except RecursionError:
        raise ResultsError(f"{path}: metadata is damaged (nested too deeply to read)") from None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        raise ResultsError(f"{path}: not seqbench metadata")
    version = meta.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ResultsError(
            f"{path}: written by a newer seqbench (schema {version}, this one reads up to {SCHEMA_VERSION})"
        )
    return RunMeta.from_dict(meta)


# Rows files `load_run` reads, by suffix (anything else is read as CSV).
ROWS_FORMATS = {".json": "json", ".parquet": "parquet"}


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ResultsError(f"{path}: cannot read {what} ({reason})") from None


def parse_rows(data: str | bytes, fmt: str, source: str) -> list[ResultRow]:
    """Rows from an exported file's contents (csv, json or parquet): the exporters' inverse.

    Anything that is not such a file raises one `ResultsError` naming `source`.
    """
    if not data:
        raise ResultsError(f"{source}: results file is empty")
    readers = {"csv": _csv_records, "json": _json_records, "parquet": _parquet_records}
    if fmt not in readers:
        raise ResultsError(f"{source}: cannot read {fmt!r} back; readable: {', '.join(readers)}")
    return _to_rows(readers[fmt](data, source), source)


def _to_rows(records: list[dict[str, Any]], source: str) -> list[ResultRow]:
    rows = []
    for i, record in enumerate(records):
        try:
            rows.append(ResultRow.from_dict(record))
        except (ValueError, TypeError) as exc:
            raise ResultsError(f"{source}: damaged results (row {i + 1}: {exc})") from None
        # Every seqbench since the first wrote `median_s`: a measured row without the column
        # lost its time, and a comparison or a table would pass over it in silence.
        if "median_s" not in record and rows[-1].status == "ok":
            raise ResultsError(
                f"{source}: damaged results (no median_s column: the measured cells' times are lost)"
            )
    return rows


def _csv_records(data: str | bytes, source: str) -> list[dict[str, Any]]:
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{source}: cannot read results ({exc})") from None
    return read_rows_table(text, source, appended=False)[0]


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
        check_columns(record, source, f" (row {i + 1})")
    return records


def _parquet_records(data: str | bytes, source: str) -> list[dict[str, Any]]:
    pq = require("pyarrow.parquet", "reading parquet")
    pa = require("pyarrow", "reading parquet")
    raw = data.encode() if isinstance(data, str) else data
    try:
        table = pq.read_table(pa.BufferReader(raw))
    except (pa.ArrowException, OSError) as exc:
        raise ResultsError(f"{source}: not a parquet file ({str(exc).splitlines()[0]})") from None
    check_columns(table.column_names, source)
    return table.to_pylist()


def _read_rows(rows_path: Path) -> tuple[list[ResultRow], bool, str | None]:
    """A rows file's rows, every line of them, whether it can take appends as it is (a
    CSV of the current columns, with no torn tail), and its text when it is CSV."""
    fmt = ROWS_FORMATS.get(rows_path.suffix.lower(), "csv")
    if fmt != "csv":
        try:
            data = rows_path.read_bytes()
        except OSError as exc:
            reason = exc.strerror or exc
            raise ResultsError(f"{rows_path}: cannot read results ({reason})") from None
        return parse_rows(data, fmt, str(rows_path)), False, None
    text = _read_text(rows_path, "results")
    if not text:
        raise ResultsError(f"{rows_path}: results file is empty")
    current = text.startswith(ROWS_HEADER)
    typed = read_rows_typed(text)
    if typed is not None:
        columns, count, torn = typed
    else:  # anything unusual: the reader that says what is wrong, and where
        columns, count, torn = read_rows_columns(text, str(rows_path), appended=True)
    rows = rows_of_table(columns, count, str(rows_path), typed is not None)
    return rows, current and not torn, text


def load_run(
    ref: str | Path, root: str | Path = RESULTS_ROOT, *, samples: bool = True,
    keep_text: bool = False,
) -> Run:  # fmt: skip
    """Load a saved run (see `resolve_run_path`); damaged files raise one clear `ResultsError`.

    `samples=False` leaves the samples file to be read when the run's samples are first
    needed (a table of the rows never needs them; at 200,000 rows they were a third of the
    time `show` took), and its damage to be found then. `keep_text` keeps the rows file's
    text for `saved_text`."""
    rows_path = resolve_run_path(ref, Path(root))
    samples_path, meta_path = sidecars(rows_path)
    meta = _read_meta(meta_path)
    lines, clean, text = _read_rows(rows_path)
    line_ids = list(map(operator.attrgetter("cell_id"), lines))
    latest = dict(zip(line_ids, lines, strict=True))  # a cell's last line is its row

    def read_samples() -> tuple[dict[str, list[float]], Rounds, int, bool]:
        found: dict[str, list[float]] = {}
        rounds: Rounds = {}
        dead, fits = 0, True
        if _exists(samples_path):
            text = _read_text(samples_path, "samples")
            batches, torn, old = read_samples_table(text, str(samples_path))
            fits = not (torn or old)
            for cell_id, round_no, values, machine in batches:
                row = latest.get(cell_id)
                if row is None or round_no > (row.rounds or 1):
                    fits = False  # measured, never committed: gone before the next append
                elif row.status != "ok":
                    dead += len(values)
                else:
                    found.setdefault(cell_id, []).extend(values)
                    rounds.setdefault(cell_id, []).append((round_no, len(values), machine))
        return found, rounds, dead, fits

    kept = text if keep_text and clean else None
    if samples:
        found, rounds, dead, fits = read_samples()
        on_disk = _OnDisk(line_ids, dead, clean and fits, kept)
        run = Run._loaded(rows_path, meta, lines, found, rounds, on_disk)
    else:
        on_disk = _OnDisk(line_ids, 0, clean, kept)
        run = Run._loaded(rows_path, meta, lines, {}, {}, on_disk, read_samples)
    try:
        run.curves = read_curves(rows_path)
    except ResultsError as exc:  # the rows are still good: the curves alone are lost
        run.curves_problem = str(exc)
    return run


def saved_text(run: Run, rows: list[ResultRow]) -> str | None:
    """The rows file's text, where it is exactly what `render_rows(rows)` writes: a run read
    with `keep_text` from a CSV of the current columns, no torn tail, and `rows` its lines,
    one per cell, in file order (no line repeated by a resume, nothing filtered out, nothing
    reordered). None otherwise. A CSV export of a whole run is then the file itself
    (the rows are still read whole first, so a damaged file is refused as before)."""
    disk = next(iter(run._disk.values()), None)  # as loaded: the one rows file read
    if disk is None or disk.text is None:
        return None
    return disk.text if disk.row_ids == [r.cell_id for r in rows] else None


def reopen_run(ref: str | Path, root: Path) -> Run:
    """A saved run, ready to take more cells (`seqbench run --resume`). Nothing on disk
    changes until the run saves something: a refused resume leaves the run as it was."""
    rows_path = resolve_run_path(ref, root)
    if rows_path.name != ROWS_FILE:
        raise ResultsError(f"{ref}: --resume needs a run folder (or its id), not a CSV file")
    run = load_run(rows_path.parent, root)
    missing = [key for key in ("config", "env", "plan") if key in run.meta.missing]
    if missing:
        raise ResultsError(
            f"{rows_path.parent / META_FILE}: it lacks {', '.join(missing)} (damaged, or edited by "
            "hand), so the run cannot be resumed; start a new run"
        )
    run.claim()  # one writer: not while the run's own process (or another resume) lives
    run.meta.state = "running"
    run.meta.resumed_at.append(now_iso())
    run._meta_pending = True
    return run
