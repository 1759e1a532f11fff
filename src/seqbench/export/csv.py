"""CSV: the contract's columns in order, floats at full precision, empty for 'not measured'.

The same lines a run's results.csv is appended with (see seqbench.storage.csvio), so an export and
a saved run agree byte for byte.
"""

from __future__ import annotations

from seqbench.core.schema import ResultRow
from seqbench.storage.csvio import render_rows


class CsvExporter:
    name = "csv"
    suffixes = (".csv",)
    binary = False

    def render(self, rows: list[ResultRow]) -> str:
        return render_rows(rows)
