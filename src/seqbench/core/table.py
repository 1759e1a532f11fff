"""Result rows from a table given column by column (a CSV's text, or typed columns that
pandas read): what `ResultRow.from_dict` does for each row, done a column at a time."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import operator
from collections.abc import Iterable, Iterator
from typing import Any

from seqbench.core.errors import ResultsError
from seqbench.core.schema import (
    _BOOL,
    _COERCE,
    _COLUMNS,
    _INT,
    _STR,
    REQUIRED_KEY_COLUMNS,
    STATUSES,
    ResultRow,
    _coerce,
)

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ResultRow)}


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while hundreds of thousands of rows, tuples or dicts
    are made, none of them in a cycle: it would scan the growing heap again and again (half
    of turning 200,000 rows into columns, a fifth of reading them)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _coerce_column(name: str, values: list[Any]) -> list[Any]:
    """`_COERCE[name]` over a whole column, with the same fast paths inline."""
    if name in _STR:
        return [v if type(v) is str else _coerce(name, v) for v in values]
    if name in _INT:
        return [int(v) if type(v) is str and v.isdigit() else _coerce(name, v) for v in values]
    if name in _BOOL:
        return [_coerce(name, v) for v in values]
    return [(float(v) if v else None) if type(v) is str else _coerce(name, v) for v in values]


class RowError(ValueError):
    """A row of a table that cannot be a result row: `index` (from 0) and why."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index


def rows_from_columns(
    columns: dict[str, list[Any]], count: int, *, typed: bool = False
) -> list[ResultRow]:
    """`count` rows from a table given column by column: what `ResultRow.from_dict` does for
    each row, done a column at a time (five times faster on 200,000 rows of a CSV's text).
    Unknown columns are ignored; a missing one takes its default. A row that cannot be a
    result row raises RowError naming it, with from_dict's reason. `typed`: the columns
    hold their types already (None where empty)."""
    typed_columns: dict[str, list[Any]] = {}
    for name in _COLUMNS:
        if name in columns and typed:  # already each column's type (csvio.read_rows_typed)
            typed_columns[name] = columns[name]
        elif name in columns:
            try:
                typed_columns[name] = _coerce_column(name, columns[name])
            except (ValueError, TypeError):
                for i, value in enumerate(columns[name]):
                    try:
                        _COERCE[name](value)
                    except (ValueError, TypeError) as exc:
                        raise RowError(i, str(exc)) from None
                raise
    for name in REQUIRED_KEY_COLUMNS:
        found = typed_columns.get(name)
        if found is None or None in found:
            i = 0 if found is None else found.index(None)
            missing = [
                n
                for n in REQUIRED_KEY_COLUMNS
                if n not in typed_columns or typed_columns[n][i] is None
            ]
            raise RowError(i, f"missing key columns: {', '.join(missing)}")
    statuses = typed_columns.get("status", [""] * count)
    unknown = next((i for i, status in enumerate(statuses) if status not in STATUSES), None)
    if unknown is not None:
        raise RowError(unknown, f"unknown status {statuses[unknown]!r}; expected one of {STATUSES}")
    names = [f.name for f in dataclasses.fields(ResultRow)]
    # A column with one value in every row (most of them: the device, the dtype, every figure
    # a run did not measure) goes into a template that each row's dict copies; only the
    # varying columns are set row by row (a dict of 90 keys built per row was most of the
    # time of reading 200,000 rows).
    template: dict[str, Any] = {}
    varying: list[str] = []
    for name in names:
        column = typed_columns.get(name)
        if column is None:
            template[name] = _DEFAULTS[name]
        elif count and constant_column(column):
            template[name] = column[0]
        else:
            template[name] = None  # its place in the dict, so that the fields keep their order
            varying.append(name)
    columns_varying = [typed_columns[n] for n in varying]
    # What ResultRow(*values) makes, without its frozen __init__'s setattr per field (five
    # of the eight seconds of reading 200,000 rows); __post_init__'s checks are done above
    # for the whole column, and below for an empty cell_id.
    # The columns are of one length (checked here) and each row's values are the varying
    # names' in order, so the loop below zips without checking again (an eighth of it).
    if any(len(column) != count for column in columns_varying):
        raise ValueError("the table's columns differ in length")
    rows: list[ResultRow] = []
    add, blank, set_dict, copy = rows.append, object.__new__, object.__setattr__, template.copy
    with collector_paused():
        by_row = zip(*columns_varying, strict=False) if varying else itertools.repeat((), count)
        for values in by_row:
            fields = copy()
            fields.update(zip(varying, values, strict=False))
            row = blank(ResultRow)
            set_dict(row, "__dict__", fields)
            add(row)
        ids = typed_columns.get("cell_id")
        if ids is None or not all(ids):  # an id left empty (or no column): the cell's own
            for row in rows:
                if not row.cell_id:
                    set_dict(row, "cell_id", row.cell.cell_id)
    if count >= _REMEMBER_FROM:
        global _last_table
        _last_table = (tuple(rows), template, dict(zip(varying, columns_varying, strict=True)), [])
    return rows


# A table read column by column is remembered (the last one only, and only a big one) with
# the rows made from it, so that writing those same rows out again (export, a whole run's
# rewrite) starts from its columns instead of taking the rows apart (a second of the five
# it took to export 200,000 rows): the rows, the template of the constant columns, and the
# varying ones, made into whole columns (kept) only when those rows are first written.
_REMEMBER_FROM = 10_000
_last_table: (
    tuple[tuple[ResultRow, ...], dict[str, Any], dict[str, list[Any]], list[list[list[Any]]]] | None
) = None


def _remembered_columns(rows: list[ResultRow] | tuple[ResultRow, ...]) -> list[list[Any]] | None:
    """The remembered table's columns, if `rows` are the very rows made from it."""
    if _last_table is None:
        return None
    known, template, varying, made = _last_table
    if len(known) != len(rows) or not all(map(operator.is_, known, rows)):
        return None
    if not made:
        count = len(rows)
        columns = {n: varying[n] if n in varying else [template[n]] * count for n in _COLUMNS}
        columns["cell_id"] = [row.cell_id for row in rows]  # some made as the rows were
        made.append([columns[n] for n in _COLUMNS])
    return made[0]


def columns_of(rows: Iterable[ResultRow]) -> list[list[Any]]:
    """The rows' values a column at a time, in the order of the result columns: what a
    writer that works by column (CSV, JSON) starts from. Read them, never change them: the
    lists may be the remembered table's own."""
    rows = rows if isinstance(rows, (list, tuple)) else list(rows)
    remembered = _remembered_columns(rows)  # the very rows of the table last read
    if remembered is not None:
        return remembered
    whole = len(_COLUMNS)
    # A row's dict holds its fields in order (ResultRow.to_dict): transposed in one step.
    with collector_paused():
        values = [
            tuple(row.__dict__.values())
            if len(row.__dict__) == whole
            else tuple(getattr(row, name) for name in _COLUMNS)
            for row in rows
        ]
        return [list(column) for column in zip(*values, strict=True)] or [[] for _ in _COLUMNS]


def constant_column(column: list[Any]) -> bool:
    """Whether every value of a column is its first: equal and, for a zero, of one sign (a
    column holds one type, or None, so equality cannot confuse 1 with 1.0 or True)."""
    first = column[0]
    if column.count(first) != len(column):
        return False
    if type(first) is not float or first != 0:
        return True
    import numpy as np  # a column of zeros: -0.0 == 0.0, their sign bits tell them apart

    signs = np.signbit(np.asarray(column, dtype=float))
    return bool(signs.all() or not signs.any())


def rows_of_table(
    columns: dict[str, list[Any]], count: int, source: str, typed: bool = False
) -> list[ResultRow]:
    """The rows of a results table read column by column (a run's own CSV), or one
    ResultsError naming `source` and the row that is damaged."""
    try:
        rows = rows_from_columns(columns, count, typed=typed)
    except RowError as exc:
        raise ResultsError(f"{source}: damaged results (row {exc.index + 1}: {exc})") from None
    if "median_s" not in columns and any(r.status == "ok" for r in rows):
        raise ResultsError(
            f"{source}: damaged results (no median_s column: the measured cells' times are lost)"
        )
    return rows
