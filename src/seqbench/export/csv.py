"""CSV: the contract's columns in order, floats at full precision, empty for 'not measured'."""

from __future__ import annotations

from seqbench.schema import ResultRow, rows_to_frame


class CsvExporter:
    name = "csv"
    suffixes = (".csv",)
    binary = False

    def render(self, rows: list[ResultRow]) -> str:
        return rows_to_frame(rows).to_csv(index=False, lineterminator="\n")
