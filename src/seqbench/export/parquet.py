"""Parquet: the contract's columns with their types (int64, float64, bool, string), for pandas,
polars, DuckDB and Spark. Needs pyarrow (the `report` extra)."""

from __future__ import annotations

from seqbench.core.errors import require
from seqbench.core.schema import RESULT_COLUMNS, ResultRow, column_type


class ParquetExporter:
    name = "parquet"
    suffixes = (".parquet",)
    binary = True

    def render(self, rows: list[ResultRow]) -> bytes:
        pa = require("pyarrow", "parquet export")
        pq = require("pyarrow.parquet", "parquet export")
        # Typed from the schema, not inferred: a column that is empty in every row (no task)
        # keeps its type, so files from different runs concatenate.
        arrow = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}
        schema = pa.schema([(name, arrow[column_type(name)]) for name in RESULT_COLUMNS])
        table = pa.Table.from_pylist([r.to_dict() for r in rows], schema=schema)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return sink.getvalue().to_pybytes()
