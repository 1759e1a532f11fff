"""Exporters and their readers: rows survive csv, json and parquet unchanged, and bad input
is one clear line."""

from __future__ import annotations

import sys

import pytest

from seqbench.core.errors import MissingDependency, ResultsError, SeqbenchError
from seqbench.core.schema import RESULT_COLUMNS, ResultRow
from seqbench.export import EXPORTERS, exporter_for_path, get_exporter
from seqbench.storage import parse_rows
from tests.helpers import make_cell


def varied_rows() -> list[ResultRow]:
    """Rows that exercise every kind of value: full-precision floats, big integers, booleans,
    empty fields, a task's accuracy, and a message with commas, quotes and a newline-free
    unicode arrow."""
    return [
        ResultRow.for_cell(
            make_cell(arch="lstm", bidirectional=True, dropout=0.25),
            params=1234,
            core_params=600,
            flops_per_seq=2**52 + 1,
            kernel="onednn",
            median_s=0.001234567891234567,
            iqr_s=1e-5,
            seq_per_s=3241.2,
            peak_mem_bytes=123_456_789,
            mem_source="cpu_profiler",
        ),
        ResultRow.for_cell(
            make_cell(arch="gru", task="copy"),
            median_s=2.5e-4,
            metric="accuracy",
            metric_value=0.875,
            chance_value=0.1,
            train_steps=200,
            memory_horizon=12,
        ),
        ResultRow.for_cell(
            make_cell(device="cuda"),
            status="skipped",
            message='cuda is not available here (a "CPU-only" build, sorry → skipped)',
        ),
    ]


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_rows_come_back_equal_after_export(fmt):
    rows = varied_rows()
    assert parse_rows(EXPORTERS[fmt].render(rows), fmt, f"rows.{fmt}") == rows


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_an_export_of_no_rows_reads_back_as_no_rows(fmt):
    assert parse_rows(EXPORTERS[fmt].render([]), fmt, "empty") == []


def test_parquet_columns_are_typed_from_the_schema_even_when_empty():
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = EXPORTERS["parquet"].render(varied_rows()[:1])
    schema = pq.read_table(pa.BufferReader(data)).schema
    assert schema.names == list(RESULT_COLUMNS)
    assert str(schema.field("seq_len").type) == "int64"
    assert str(schema.field("peak_rss_bytes").type) == "int64"  # empty in every row
    assert str(schema.field("bidirectional").type) == "bool"
    assert str(schema.field("median_s").type) == "double"
    assert str(schema.field("task").type) == "string"


def test_exporters_are_found_by_name_and_by_file_suffix():
    assert [e.name for e in EXPORTERS.values()] == ["csv", "json", "parquet", "markdown"]
    assert exporter_for_path("out/run.parquet").name == "parquet"
    assert exporter_for_path("RUN.MD").name == "markdown"
    assert EXPORTERS["parquet"].binary and not EXPORTERS["csv"].binary
    with pytest.raises(
        SeqbenchError, match="unknown format 'xml'; choose from: csv, json, parquet, markdown"
    ):
        get_exporter("xml")


@pytest.mark.parametrize(
    ("fmt", "data", "message"),
    [
        ("json", "", "rows.json: results file is empty"),
        (
            "json",
            "[{",
            "rows.json: not valid JSON (Expecting property name enclosed in double quotes at line 1, column 3)",
        ),
        ("json", '{"arch": "lstm"}', "rows.json: expected a JSON list of row objects"),
        ("json", "[1, 2]", "rows.json: expected a JSON list of row objects"),
        (
            "json",
            '[{"arch": "lstm"}]',
            "rows.json: not a seqbench results file (row 1) (missing columns: seq_len",
        ),
        (
            "csv",
            "name,price\nfoo,3\n",
            "rows.csv: not a seqbench results file (missing columns: arch",
        ),
        ("parquet", b"PAR1 but not really", "rows.parquet: not a parquet file ("),
        ("xml", "<rows/>", "rows.xml: cannot read 'xml' back; readable: csv, json, parquet"),
    ],
)
def test_malformed_input_is_one_clear_line(fmt, data, message):
    with pytest.raises(ResultsError) as info:
        parse_rows(data, fmt, f"rows.{fmt}")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_a_damaged_value_names_its_row():
    text = EXPORTERS["json"].render(varied_rows()).replace('"seq_len": 16', '"seq_len": "long"', 1)
    with pytest.raises(ResultsError, match=r"rows.json: damaged results \(row 1: "):
        parse_rows(text, "json", "rows.json")


def test_parquet_without_pyarrow_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    with pytest.raises(MissingDependency) as info:
        EXPORTERS["parquet"].render(varied_rows())
    assert str(info.value) == (
        "parquet export needs pyarrow, which is not installed: pip install 'seqbench[report]'"
    )


def pandas_csv(rows: list[ResultRow]) -> str:
    """What `seqbench export --format csv` wrote before it dropped pandas: the reference."""
    from seqbench.core.schema import rows_to_frame

    return rows_to_frame(rows).to_csv(index=False, lineterminator="\n")


def test_csv_is_byte_for_byte_what_pandas_wrote():
    # Every integer column is filled in every row or in none (see the next test for why).
    full = dict(params=1234, core_params=600, flops_per_seq=2**40 + 1, repeats=7)
    rows = [
        ResultRow.for_cell(
            make_cell(arch="lstm", bidirectional=True, dropout=0.25),
            kernel="onednn",
            median_s=0.001234567891234567,
            iqr_s=1e-5,
            ci_low_s=1.5e-4,
            tflops=1e16,
            seq_per_s=3241.2,
            mem_source="cpu_profiler",
            tf32=True,
            **full,
        ),
        ResultRow.for_cell(
            make_cell(arch="gru", task="copy"),
            median_s=2.5e-4,
            metric="accuracy",
            metric_value=0.875,
            chance_value=0.1,
            tf32=None,
            **full,
        ),
        ResultRow.for_cell(
            make_cell(device="cuda", compile=True),
            status="skipped",
            message='cuda is not available here (a "CPU-only" build, sorry → skipped)',
            median_s=float("inf"),
            **full,
        ),
        ResultRow.for_cell(
            make_cell(seq_len=7), status="error", message="two\nlines, quoted", **full
        ),
    ]
    assert EXPORTERS["csv"].render(rows) == pandas_csv(rows)
    assert EXPORTERS["csv"].render([]) == pandas_csv([])


def test_an_integer_column_with_a_blank_stays_integer_and_reads_back_the_same():
    measured = ResultRow.for_cell(make_cell(), params=1234, repeats=7, median_s=0.5)
    skipped = ResultRow.for_cell(make_cell(seq_len=32), status="skipped")
    ours, theirs = EXPORTERS["csv"].render([measured, skipped]), pandas_csv([measured, skipped])
    # pandas made the whole column float64 because of the blank; one line cannot know that.
    assert ",1234,,,,,,0.5,,,,,7," in ours and ",1234.0,,,,,,0.5,,,,,7.0," in theirs
    assert parse_rows(ours, "csv", "ours") == parse_rows(theirs, "csv", "theirs")


def test_the_writers_by_column_give_the_text_a_writer_by_row_gives():
    # csv and json render a column at a time: each line must be what one row alone renders
    # to (results.csv's appended line; json.dumps of the row's dict), quoting, unicode, an
    # empty float, an infinity, a bool in an int column and a row built by the reader
    # (seqbench.core.table) included.
    import json
    from dataclasses import replace

    from seqbench.core.table import rows_from_columns
    from seqbench.storage.csvio import ROWS_HEADER, render_row

    rows = varied_rows()
    rows += [
        replace(rows[0], message="a\nnewline, a comma", mfu=float("inf"), noisy="steal"),
        replace(rows[1], kernel="µ-kernel", seq_len=True, cell_id=rows[1].cell_id),
    ]
    columns = {name: [getattr(r, name) for r in rows] for name in RESULT_COLUMNS}
    rows += rows_from_columns(columns, len(rows), typed=True)
    assert EXPORTERS["csv"].render(rows) == ROWS_HEADER + "".join(map(render_row, rows))
    by_row = "[\n" + ",\n".join("  " + json.dumps(r.to_dict()) for r in rows) + "\n]\n"
    assert EXPORTERS["json"].render(rows) == by_row
    assert [r.to_dict() for r in rows[-5:]] == [r.to_dict() for r in rows[:5]]
    assert list(rows[-1].to_dict()) == list(RESULT_COLUMNS)
    # A column of one value is formatted once: -0.0 and 0.0 are equal but written apart, and
    # an int column with a blank, or all one value, is written as a row alone writes it.
    first = rows[0]
    for values in ([-0.0, 0.0, 0.0], [-0.0, -0.0, -0.0], [0.0, 0.0, 0.0]):
        for params in ([7, 7, 7], [7, None, 7], [True, 7, 7]):
            some = [replace(first, mfu=m, params=p) for m, p in zip(values, params, strict=True)]
            assert EXPORTERS["csv"].render(some) == ROWS_HEADER + "".join(map(render_row, some))
            assert (
                EXPORTERS["json"].render(some)
                == "[\n" + ",\n".join("  " + json.dumps(r.to_dict()) for r in some) + "\n]\n"
            )
    # JSON puts the columns of one value into each line's template, and the rest in with %:
    # a % in either, a NaN, one row, and rows of nothing but constant columns.
    for some in (
        [replace(r, message="100% of it") for r in rows],
        [replace(r, message=f"{i}%s", mfu=float("nan")) for i, r in enumerate(rows)],
        rows[:1],
        [first, first],
    ):
        by_row = "[\n" + ",\n".join("  " + json.dumps(r.to_dict()) for r in some) + "\n]\n"
        assert EXPORTERS["json"].render(some) == by_row


def test_the_columns_of_rows_read_from_a_table_are_the_tables_only_for_those_rows(monkeypatch):
    # A big table read by column is remembered with its rows, and writing those very rows
    # starts from its columns; any other rows (reordered, fewer, a copy) are taken apart.
    from dataclasses import replace

    from seqbench.core import table

    monkeypatch.setattr(table, "_REMEMBER_FROM", 1)
    made = varied_rows()
    columns = {name: [getattr(r, name) for r in made] for name in RESULT_COLUMNS}
    rows = table.rows_from_columns(columns, len(made), typed=True)

    def by_hand(some):
        return [[getattr(r, name) for r in some] for name in RESULT_COLUMNS]

    remembered = table.columns_of(rows)
    assert remembered == by_hand(rows)
    assert table.columns_of(list(rows)) is remembered  # the same rows in a new list
    changed = [*rows[:-1], replace(rows[-1], median_s=9.0)]
    for others in (rows[::-1], rows[1:], changed):
        assert table.columns_of(others) is not remembered
        assert table.columns_of(others) == by_hand(others)
