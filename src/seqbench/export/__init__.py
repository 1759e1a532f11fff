"""Exporters turn rows into text or bytes; a registry maps names and file suffixes to them.

Each exporter has one method, `render(rows)`. Writing files is the caller's business
(storage writes atomically), so an exporter can also feed stdout or a test's golden file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from seqbench.core.errors import SeqbenchError
from seqbench.core.schema import ResultRow
from seqbench.export.csv import CsvExporter
from seqbench.export.json import JsonExporter
from seqbench.export.markdown import MarkdownExporter
from seqbench.export.parquet import ParquetExporter


class Exporter(Protocol):
    name: str
    suffixes: tuple[str, ...]
    binary: bool

    def render(self, rows: list[ResultRow]) -> str | bytes: ...


EXPORTERS: dict[str, Exporter] = {
    e.name: e for e in (CsvExporter(), JsonExporter(), ParquetExporter(), MarkdownExporter())
}


def get_exporter(name: str) -> Exporter:
    try:
        return EXPORTERS[name]
    except KeyError:
        raise SeqbenchError(
            f"unknown format {name!r}; choose from: {', '.join(EXPORTERS)}"
        ) from None


def exporter_for_path(path: str | Path) -> Exporter:
    suffix = Path(path).suffix.lower()
    for exporter in EXPORTERS.values():
        if suffix in exporter.suffixes:
            return exporter
    known = ", ".join(s for e in EXPORTERS.values() for s in e.suffixes)
    raise SeqbenchError(
        f"{path}: cannot tell the format from {suffix or 'no suffix'!r}; use one of {known}"
    )
