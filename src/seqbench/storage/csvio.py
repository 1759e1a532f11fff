"""The CSV codec of results and samples files, on the stdlib `csv` module (no pandas).

A row renders to one line on its own, so that a results file can grow by appending. The
format is the one pandas' `to_csv` wrote for the same rows: the contract's columns in
order, floats as their shortest round-trip `repr`, booleans as True/False, 'not measured'
as an empty field, and quoting only where a field needs it. One difference, on purpose:
an integer column always renders as an integer, where pandas, finding a blank in the same
column of another row, turned the whole column into floats (`1234.0`). A line must not
depend on the other lines of its file; both forms read back to the same rows.

Appended files are read up to their last complete record: a crash in the middle of an
append leaves a torn last line, which is dropped rather than reported as damage.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from typing import Any

from seqbench.core.errors import ResultsError
from seqbench.core.schema import (
    FALSE_TEXT,
    REQUIRED_KEY_COLUMNS,
    RESULT_COLUMNS,
    TRUE_TEXT,
    ResultRow,
    column_type,
)
from seqbench.core.table import collector_paused, columns_of, constant_column

ROWS_HEADER = ",".join(RESULT_COLUMNS) + "\n"  # no column name needs quoting
# `machine_s`, on a batch's first line only (blank on the others): the reference step's
# time in the process that took the batch, just before and after it (seqbench.measure.
# reference); blank where none was timed. Rename the column if that step ever changes.
SAMPLES_COLUMNS = ("cell_id", "sample_s", "round", "machine_s")
# Samples files written before the machine's speed was kept beside them.
ROUND_SAMPLES_COLUMNS = ("cell_id", "sample_s", "round")
# Samples files written before rounds were tagged: every line belongs to the saved row.
OLD_SAMPLES_COLUMNS = ("cell_id", "sample_s")
KNOWN_SAMPLES_COLUMNS = (SAMPLES_COLUMNS, ROUND_SAMPLES_COLUMNS, OLD_SAMPLES_COLUMNS)
SAMPLES_HEADER = ",".join(SAMPLES_COLUMNS) + "\n"

_KINDS = [(name, column_type(name)) for name in RESULT_COLUMNS]
_NEEDS_QUOTES = frozenset(',"\n\r')


def format_value(kind: type, value: Any) -> str:
    """One field as pandas wrote it for a column of type `kind` (see the module docstring)."""
    if value is None:
        return ""
    if kind is str:
        return str(value)
    if kind is bool:
        return str(bool(value))
    if isinstance(value, float) or kind is float:
        number = float(value)
        if math.isnan(number):
            return ""
        if kind is int and number.is_integer():
            return str(int(number))
        return repr(number)
    return str(int(value))


def _line(fields: list[str]) -> str:
    if any(not _NEEDS_QUOTES.isdisjoint(f) for f in fields):
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(fields)
        return buf.getvalue()
    return ",".join(fields) + "\n"


def render_row(row: ResultRow) -> str:
    """One row as one CSV line (with its newline): the unit a results file grows by."""
    return _line([format_value(kind, getattr(row, name)) for name, kind in _KINDS])


def render_rows(rows: Iterable[ResultRow]) -> str:
    """A whole results file: the header, then one line per row, each the line `render_row`
    gives. Rendered a column at a time (a field at a time took 30 s on 200,000 rows)."""
    columns = zip(_KINDS, columns_of(rows), strict=True)
    texts = [_column_texts(kind, values) for (_, kind), values in columns]
    if not texts[0]:
        return ROWS_HEADER
    quoted: set[int] = set()
    for (_, kind), column in zip(_KINDS, texts, strict=True):
        if kind is str and not _NEEDS_QUOTES.isdisjoint("".join(column)):  # a rare comma
            quoted.update(i for i, text in enumerate(column) if not _NEEDS_QUOTES.isdisjoint(text))
    # A column of one text (most of them: the device, the threads, what was not measured)
    # goes into the line's template once; the rest are put in with one % per line.
    count = len(texts[0])
    fixed = [count > 1 and column.count(column[0]) == count for column in texts]
    template = ",".join(
        column[0].replace("%", "%%") if same else "%s"
        for column, same in zip(texts, fixed, strict=True)
    )
    varying = [column for column, same in zip(texts, fixed, strict=True) if not same]
    with collector_paused():
        lines = (
            [template % values for values in zip(*varying, strict=True)]
            if varying
            else [template % ()] * count
        )
    for i in quoted:
        lines[i] = _line([column[i] for column in texts])[:-1]
    # One join, the header and the last newline in it: each `+` on the whole text copies it
    # again (0.3 s a copy at 300 MB).
    lines[0] = ROWS_HEADER + lines[0]
    lines.append("")
    return "\n".join(lines)


_BOOL_TEXT = {True: "True", False: "False"}


def _column_texts(kind: type, values: list[Any]) -> list[str]:
    """`format_value` over a column, with its common cases inline: a column of one value
    (the device, the thread count) formatted once, and a column of plain ints by int's own
    repr in one pass."""
    if values.count(None) == len(values):  # a figure the run did not measure
        return [""] * len(values)
    if len(values) > 1 and constant_column(values):
        return _column_texts(kind, values[:1]) * len(values)
    if kind is str:
        return ["" if v is None else v if type(v) is str else format_value(kind, v) for v in values]
    if kind is float:
        return [
            "" if v is None else repr(v) if type(v) is float and v == v else format_value(kind, v)
            for v in values
        ]
    if kind is int:
        try:  # None, or a value of another type, is left to the general case
            return list(map(int.__repr__, values))
        except TypeError:
            return [
                "" if v is None else str(v) if type(v) is int else format_value(kind, v)
                for v in values
            ]
    return [_BOOL_TEXT[v] if type(v) is bool else format_value(kind, v) for v in values]


def render_samples(
    cell_id: str, samples: Iterable[float], round_no: int, machine_s: float | None = None
) -> str:
    """One cell's samples of one round, a line each, tagged with the round they belong to;
    the first line also carries the machine's reference time for the round, if any."""
    tail = f",{round_no},\n"
    if not _NEEDS_QUOTES.isdisjoint(cell_id):
        cell_id = _line([cell_id])[:-1]
    lines = [f"{cell_id},{float(value)!r}{tail}" for value in samples]
    if lines and machine_s is not None:
        lines[0] = f"{lines[0][:-1]}{float(machine_s)!r}\n"
    return "".join(lines)


def complete_part(text: str) -> tuple[str, bool]:
    """The text up to the end of its last complete record, and whether a torn tail was cut.

    A newline ends a record only outside quotes, that is after an even number of quote
    characters (a quoted field doubles the quotes inside it).
    """
    end = len(text)
    while True:
        newline = text.rfind("\n", 0, end)
        if newline < 0:
            return "", bool(text)
        if text.count('"', 0, newline) % 2 == 0:
            return text[: newline + 1], newline + 1 != len(text)
        end = newline


def _records(text: str) -> list[list[str]]:
    # strict: an unterminated quote is an error here, not a field that swallows the file.
    return [r for r in csv.reader(io.StringIO(text, newline=""), strict=True) if r]


def read_rows_table(text: str, source: str, *, appended: bool) -> tuple[list[dict], bool]:
    """The records of a results CSV, as {column: text}, and whether a torn tail was dropped
    (see `read_rows_columns`)."""
    columns, count, torn = read_rows_columns(text, source, appended=appended)
    names = list(columns)
    records = zip(*columns.values(), strict=True)
    return [dict(zip(names, fields, strict=True)) for fields in records], torn


def read_rows_columns(
    text: str, source: str, *, appended: bool
) -> tuple[dict[str, list[str]], int, bool]:
    """A results CSV column by column ({column: every record's text}), its number of
    records, and whether a torn tail was dropped.

    `appended`: the file grows by appends, so an incomplete last record is a crash's torn
    line and is dropped; otherwise it is read, and is damage if it does not parse.
    """
    text = text.removeprefix("\ufeff")  # a spreadsheet's byte-order mark
    torn = False
    if appended:
        body, torn = complete_part(text)
        if not body:  # not even a complete header: read what there is, to say what is wrong
            body, torn = text, False
        text = body
    try:
        records = _records(text)
    except csv.Error as exc:
        raise ResultsError(f"{source}: cannot read results ({exc})") from None
    if not records:
        raise ResultsError(f"{source}: results file is empty")
    header, *lines = records
    check_columns(header, source)
    width = len(header)
    for i, fields in enumerate(lines, start=1):
        if len(fields) != width:
            if len(fields) > width:
                raise ResultsError(
                    f"{source}: damaged results (row {i}: {len(fields)} fields, the header has {width})"
                )
            # A short record's missing fields are empty, as pandas read them: a row cut
            # short loses its status and is reported, rather than loading as `ok`.
            lines[i - 1] = fields + [""] * (width - len(fields))
    if lines:
        columns = dict(zip(header, map(list, zip(*lines, strict=True)), strict=True))
    else:
        columns = {name: [] for name in header}
    return columns, len(lines), torn


# The size from which a results CSV is worth pandas' import (about half a second): some
# 3,000 rows. A smaller run loads without pandas, and `runs`, `show` start quickly.
TYPED_READ_CHARS = 1_000_000


def _column_values(series: Any, kind: type) -> list[Any] | None:
    """A pandas column as the Python values seqbench's own reader gives (None where empty),
    or None when a boolean column holds a text that is not one."""
    import numpy as np
    import pandas as pd

    count = len(series)
    if kind is float or kind is int:
        empty = series.isna().to_numpy()
        if empty.all():  # a figure the run did not measure: most columns of most runs
            return [None] * count
        if empty.any():
            numbers = series.to_numpy(dtype=object, na_value=None)
        else:
            numbers = series.to_numpy(dtype=np.float64 if kind is float else np.int64)
        if kind is float and np.isinf(numbers[~empty].astype(np.float64)).any():
            return None  # an infinity written out: the exact reader says what it makes of it
        if not empty.any():
            # One value in every row (bit for bit: -0.0 is not 0.0) is one Python object,
            # repeated: making 200,000 of them was most of this reader's column work.
            bits = numbers.view(np.uint64 if kind is float else np.int64)
            if (bits == bits[0]).all():
                return [numbers[0].item()] * count
        return numbers.tolist()
    # Text columns repeat a few values (arch, mode, status): map each distinct one once.
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    if kind is bool:
        words = [str(u).strip().lower() for u in uniques]
        if any(w not in ("", *TRUE_TEXT, *FALSE_TEXT) for w in words):
            return None
        mapped = [None if w == "" else w in TRUE_TEXT for w in words]
    else:
        mapped = list(uniques)
    if len(mapped) == 1 and codes.min() == 0:  # the device, the dtype, the status ...
        return [mapped[0]] * count
    table = np.array([*mapped, None if kind is bool else ""], dtype=object)  # -1: empty
    return table[codes].tolist()


def read_rows_typed(text: str) -> tuple[dict[str, list[Any]], int, bool] | None:
    """`read_rows_columns` done by pandas' C parser, each result column typed as seqbench
    writes it (int, float, bool or str; None where empty): on 200,000 rows, under a second
    where the csv module and Python's own coercion took eight. None when the text is
    anything but a clean table of known columns (a damaged record, a duplicate column, a
    value of the wrong type, NaN or an infinity written out, which pandas reads as a number
    where seqbench's reader refuses it): the caller then reads it the slow way, which
    says what is wrong and where."""
    if len(text) < TYPED_READ_CHARS:
        return None
    text = text.removeprefix("\ufeff")
    body, torn = complete_part(text)
    header = header_of(body)
    required = (*REQUIRED_KEY_COLUMNS, "status")
    if len(set(header)) != len(header) or any(c not in header for c in required):
        return None
    import pandas as pd  # only here: a small run loads without it

    known = [c for c in header if c in RESULT_COLUMNS]
    kinds = {c: column_type(c) for c in known}
    dtypes = {
        c: {int: "Int64", float: "float64", bool: object, str: object}[k] for c, k in kinds.items()
    }
    try:
        frame = pd.read_csv(
            io.StringIO(body), dtype=dtypes, keep_default_na=False, na_values=[""],
            usecols=known, engine="c",
        )  # fmt: skip
    except (ValueError, TypeError, pd.errors.ParserError):
        return None
    columns: dict[str, list[Any]] = {}
    for name, kind in kinds.items():
        values = _column_values(frame[name], kind)
        if values is None:
            return None
        columns[name] = values
    return columns, len(frame), torn


def check_columns(columns: Any, source: str, where: str = "") -> None:
    missing = [c for c in (*REQUIRED_KEY_COLUMNS, "status") if c not in columns]
    if missing:
        raise ResultsError(
            f"{source}: not a seqbench results file{where} (missing columns: {', '.join(missing)})"
        )


def header_of(text: str) -> list[str]:
    """The column names on a CSV text's first line."""
    first = text.split("\n", 1)[0].removeprefix("\ufeff").rstrip("\r")
    return next(csv.reader([first]), [])


# A batch: one cell's samples from one round, in the order they were written, and the
# machine's reference time for that round (None: not timed).
Batch = tuple[str, int, list[float], float | None]


def read_samples_table(text: str, source: str) -> tuple[list[Batch], bool, bool]:
    """A samples CSV as batches, whether a torn tail was dropped, and whether it is in an
    older form (the two-column one's lines count as round 1: all of them belong to the row;
    appending to either would mix forms). A sample or a machine time that is not a positive,
    finite number of seconds makes the file damaged."""
    if not text:
        raise ResultsError(f"{source}: cannot read samples (the file is empty)")
    body, torn = complete_part(text)
    if not body:
        body, torn = text + "\n", False
    columns = tuple(header_of(body))
    if columns not in KNOWN_SAMPLES_COLUMNS:
        raise ResultsError(f"{source}: not a seqbench samples file")
    old = columns != SAMPLES_COLUMNS
    two = columns == OLD_SAMPLES_COLUMNS
    if '"' in body or "\r" in body:  # rare: a quoted cell id, or CRLF line ends
        try:
            records: Iterable[list[str]] = _records(body)[1:]
        except csv.Error as exc:
            raise ResultsError(f"{source}: cannot read samples ({exc})") from None
    else:  # the usual file, split directly: several times faster than csv.reader
        records = (line.split(",") for line in body.split("\n")[1:] if line)
    batches: list[Batch] = []
    key: tuple[str, str] | None = None
    values: list[float] = []
    width = len(columns)
    try:
        for n, fields in enumerate(records, start=2):
            if len(fields) != width:
                raise ValueError(f"line {n}: {len(fields)} fields, expected {width}")
            this = (fields[0], "1" if two else fields[2])
            if this != key:
                key, values = this, []
                machine = float(fields[3]) if width == 4 and fields[3] else None
                if machine is not None and not 0.0 < machine < math.inf:
                    raise ResultsError(
                        f"{source}: damaged samples (line {n}: machine time {fields[3]} is not "
                        "a time in seconds)"
                    )
                batches.append((this[0], int(this[1]), values, machine))
            value = float(fields[1])
            if not 0.0 < value < math.inf:  # NaN, zero, negative or infinite: not a time
                raise ResultsError(
                    f"{source}: damaged samples (line {n}: {fields[1]} is not a time in seconds)"
                )
            values.append(value)
    except ValueError as exc:
        raise ResultsError(f"{source}: cannot read samples ({exc})") from None
    return batches, torn, old
