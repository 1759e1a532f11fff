"""Choosing and ordering a saved run's rows for `show`, `export` and `plot`.

A filter value must name something the run has: a typo (`--arch lstn`) is an error that
lists what is there, never an empty table that looks like a result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from seqbench.core.errors import SeqbenchError
from seqbench.core.schema import RESULT_COLUMNS, ResultRow
from seqbench.models.options import split_list


def _values(text: str, flag: str) -> list[str]:
    values = split_list(text)
    if not text.strip() or not all(values):
        raise SeqbenchError(f"{flag}: expected a comma-separated list, got {text!r}")
    return values


def select_rows(
    rows: Sequence[ResultRow], filters: Mapping[str, str | None], what: str = "this run"
) -> list[ResultRow]:
    """The rows whose column values are among those asked for (None: no filter on it);
    `what` names where the rows come from, in the error for a value none of them has."""
    chosen = list(rows)
    for column, text in filters.items():
        if text is None:
            continue
        flag = "--" + column.replace("_", "-")
        present = list(dict.fromkeys(getattr(r, column) for r in rows))
        wanted = _values(text, flag)
        unknown = [v for v in wanted if v not in present]
        if unknown:
            has = ", ".join(str(v) or "(none)" for v in present) or "no cells"
            verb = "has" if what == "this run" else "have"
            raise SeqbenchError(
                f"{flag}: {what} {verb} no cells with {column} "
                f"{', '.join(map(repr, unknown))}; {'it' if verb == 'has' else 'they'} "
                f"{verb}: {has}"
            )
        chosen = [r for r in chosen if getattr(r, column) in wanted]
    return chosen


def sort_rows(
    rows: Sequence[ResultRow], spec: str | None, reverse: bool = False
) -> list[ResultRow]:
    """Rows ordered by comma-separated columns (the first decides, later ones break ties).

    Cells without a value (not measured) go last either way.
    """
    if spec is None:
        return list(rows)
    columns = _values(spec, "--sort")
    unknown = [c for c in columns if c not in RESULT_COLUMNS]
    if unknown:
        raise SeqbenchError(
            f"--sort: unknown column {unknown[0]!r}; choose from: {', '.join(RESULT_COLUMNS)}"
        )
    ordered = list(rows)
    # Stable sorts from the last key to the first: the first key has the final say.
    for column in reversed(columns):
        measured = [r for r in ordered if getattr(r, column) is not None]
        missing = [r for r in ordered if getattr(r, column) is None]
        ordered = sorted(measured, key=lambda r: getattr(r, column), reverse=reverse) + missing
    return ordered
