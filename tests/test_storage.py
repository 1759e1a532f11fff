from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from seqbench.core.errors import ResultsError
from seqbench.core.schema import RESULT_COLUMNS, Measurement, ResultRow
from seqbench.storage import (
    META_FILE,
    ROWS_FILE,
    SAMPLES_FILE,
    atomic_write,
    create_run,
    list_run_dirs,
    load_run,
    new_run_dir,
    reopen_run,
    summarize_runs,
)
from seqbench.storage import read as read_module
from seqbench.storage.lock import LOCK_FILE
from tests.helpers import make_cell


def ok_row(**overrides) -> ResultRow:
    cell = make_cell(**overrides)
    return ResultRow.for_cell(
        cell,
        params=1234,
        core_params=600,
        flops_per_seq=98_765,
        kernel="onednn",
        median_s=0.001234567891234,
        iqr_s=1e-5,
        ci_low_s=0.00123,
        ci_high_s=0.00124,
        min_s=0.0012,
        repeats=7,
        inner_loops=2,
        seq_per_s=3241.2,
        tokens_per_s=51859.2,
        tflops=1.5e-4,
        peak_mem_bytes=123_456,
        mem_source="cpu_profiler",
        wall_s=0.5,
    )


def _drop_column(path: Path, name: str) -> None:
    table = list(csv.reader(io.StringIO(path.read_text())))
    at = table[0].index(name)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([r[:at] + r[at + 1 :] for r in table])
    path.write_text(buf.getvalue())


def new_run(root: Path, **kw):
    return create_run(
        root, label="t", config={"label": "t"}, env={"torch": "x"}, plan=["a", "b"], **kw
    )


def test_a_saved_run_loads_back_equal(tmp_path):
    run = new_run(tmp_path)
    rows = [
        ok_row(),
        ok_row(arch="gru", bidirectional=True, dropout=0.25),
        ResultRow.for_cell(
            make_cell(device="cuda"), status="skipped", message="cuda is not available, here"
        ),
    ]
    for i, row in enumerate(rows):
        run.add(
            Measurement(row, [0.1 * (i + 1), 0.2, 0.123456789012345] if row.status == "ok" else [])
        )
    run.finish("complete")
    loaded = load_run(run.path)
    assert loaded.rows == rows
    assert loaded.samples == run.samples
    assert loaded.meta.state == "complete"
    assert loaded.meta.plan == ["a", "b"]
    assert loaded.run_id == run.path.name


def test_a_large_run_read_by_pandas_loads_what_the_exact_reader_loads(tmp_path, monkeypatch):
    # Past TYPED_READ_CHARS a run's rows are parsed by pandas, typed column by column: the
    # rows must be equal, value for value and type for type (1 == 1.0 would hide an int
    # read as a float), whatever is empty, quoted or boolean.
    from seqbench.storage import csvio

    run = new_run(tmp_path)
    rows = [
        ok_row(),
        replace(ok_row(arch="gru", bidirectional=True, dropout=0.25), tf32=True, noisy="steal"),
        replace(ok_row(seq_len=7), extrapolation="128:0.5 256:0.25", state_bytes=4096, mfu=None),
        ResultRow.for_cell(
            make_cell(device="cuda"), status="skipped", message='cuda is not, "here", available'
        ),
    ]
    # Columns that hold one value everywhere but its sign (-0.0 == 0.0, yet not the same
    # figure), one value everywhere (a repeated object), or a value and an empty.
    signs = [0.0, -0.0, 0.0, 0.0]
    rows = [
        replace(r, load_before=sign, cpu_share=0.5, cpus=2, steal_frac=None if i else 0.25)
        for i, (r, sign) in enumerate(zip(rows, signs, strict=True))
    ]
    for row in rows:
        run.add(Measurement(row, [0.1, 0.2] if row.status == "ok" else []))
    run.finish("complete")
    exact = load_run(run.path).rows
    used = []
    typed = csvio.read_rows_typed
    monkeypatch.setattr(csvio, "TYPED_READ_CHARS", 0)
    monkeypatch.setattr(read_module, "read_rows_typed", lambda t: used.append(typed(t)) or used[-1])
    fast = load_run(run.path).rows
    assert used and used[0] is not None  # pandas read it
    assert fast == exact == rows
    assert [str(r.load_before) for r in fast] == ["0.0", "-0.0", "0.0", "0.0"]
    assert [r.steal_frac for r in fast] == [0.25, None, None, None]
    for got, want in zip(fast, exact, strict=True):
        assert [type(getattr(got, c)) for c in RESULT_COLUMNS] == [
            type(getattr(want, c)) for c in RESULT_COLUMNS
        ]


@pytest.mark.parametrize(
    ("column", "text", "typed"),
    [
        ("median_s", "nan", False),  # pandas would read it as a number; seqbench refuses it
        ("median_s", "-Infinity", False),
        ("mfu", "inf", False),
        ("bidirectional", "maybe", False),
        ("bidirectional", " Yes ", True),  # a boolean seqbench's reader takes
        ("arch", "nan", True),  # a text column may hold any word
    ],
)
def test_pandas_reads_only_what_the_exact_reader_reads_alike(
    tmp_path, monkeypatch, column, text, typed
):
    from seqbench.storage import csvio

    run = new_run(tmp_path)
    run.add(Measurement(replace(ok_row(), mfu=0.5), [0.1]))
    header, line = (run.path / ROWS_FILE).read_text().splitlines()
    fields = next(csv.reader([line]))
    fields[header.split(",").index(column)] = text
    monkeypatch.setattr(csvio, "TYPED_READ_CHARS", 0)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    read = csvio.read_rows_typed(f"{header}\n{buffer.getvalue()}")
    assert (read is not None) == typed
    if typed:
        assert read[0]["bidirectional"] == [column == "bidirectional"]


def test_rows_come_in_the_plans_order_and_a_cells_last_row_wins(tmp_path):
    run = new_run(tmp_path)
    a, b, c, d = (ok_row(seq_len=t) for t in (8, 16, 32, 64))
    run.meta.plan = [a.cell_id, b.cell_id, c.cell_id]
    run.rows = [a, b]  # a prefix of the plan, in its order
    assert run.rows == [a, b]
    run.rows = [c, d, a]  # out of order, and a cell the plan does not hold (it follows)
    assert run.rows == [a, c, d]
    newer = replace(a, median_s=0.5)
    run.meta.plan = []
    run.rows = [a, b, newer]  # a repeated cell: its last row, in its last place
    assert run.rows == [b, newer]
    assert run.row(a.cell_id).median_s == 0.5


def test_the_csv_has_the_contract_columns_in_order(tmp_path):
    run = new_run(tmp_path)
    run.add(Measurement(ok_row(), [0.1]))
    header = (run.path / ROWS_FILE).read_text().splitlines()[0].split(",")
    assert header == list(RESULT_COLUMNS)
    for name in (
        "arch",
        "seq_len",
        "batch_size",
        "hidden",
        "layers",
        "bidirectional",
        "device",
        "dtype",
        "mode",
        "params",
        "core_params",
        "flops_per_seq",
        "median_s",
        "iqr_s",
        "ci_low_s",
        "ci_high_s",
        "repeats",
        "seq_per_s",
        "tokens_per_s",
        "tflops",
        "peak_mem_bytes",
        "status",
        "message",
    ):
        assert name in header


def test_every_cell_is_saved_as_it_finishes(tmp_path):
    run = new_run(tmp_path)
    run.add(Measurement(ok_row(seq_len=8), [0.1]))
    assert len(load_run(run.path).rows) == 1
    run.add(Measurement(ok_row(seq_len=16), [0.1]))
    assert len(load_run(run.path).rows) == 2
    assert load_run(run.path).meta.state == "running"


def test_an_extra_csv_gets_its_sidecars_and_loads_like_a_run(tmp_path):
    extra = tmp_path / "out" / "mine.csv"
    run = new_run(tmp_path / "results", extra_csv=extra)
    run.add(Measurement(ok_row(), [0.5, 0.25]))
    assert (tmp_path / "out" / "mine.samples.csv").exists()
    assert (tmp_path / "out" / "mine.meta.json").exists()
    loaded = load_run(extra)
    assert loaded.rows == [ok_row()]
    assert loaded.samples == {ok_row().cell_id: [0.5, 0.25]}


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write(target, "one")
    atomic_write(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_write_gives_the_file_the_mode_an_ordinary_open_would(tmp_path):
    import os

    atomic_write(tmp_path / "a.txt", "x")
    (tmp_path / "b.txt").write_text("x")
    assert os.stat(tmp_path / "a.txt").st_mode == os.stat(tmp_path / "b.txt").st_mode


def test_run_folders_are_unique_even_within_one_second(tmp_path):
    paths = {new_run_dir(tmp_path, "same") for _ in range(5)}
    assert len(paths) == 5


def test_runs_are_listed_newest_first_and_latest_resolves(tmp_path):
    first = new_run(tmp_path)
    second = new_run(tmp_path)
    assert list_run_dirs(tmp_path)[:2] == [second.path, first.path]
    assert load_run("latest", tmp_path).path == second.path
    assert load_run(second.path.name, tmp_path).path == second.path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / ROWS_FILE).write_text(""), "results file is empty"),
        (
            lambda p: (p / ROWS_FILE).write_text("name,price\nfoo,3\n"),
            "not a seqbench results file (missing columns: arch",
        ),
        (
            lambda p: (p / ROWS_FILE).write_text((p / ROWS_FILE).read_text()[:40]),
            "not a seqbench results file",
        ),
        (
            lambda p: (p / ROWS_FILE).write_text(
                (p / ROWS_FILE).read_text().replace(",16,", ",sixteen,")
            ),
            "damaged results",
        ),
        (
            # A row cut short, then a newline: damage. (Cut short at the very end of the file,
            # with no newline, it is a crash's torn last line and is skipped: see below.)
            lambda p: (p / ROWS_FILE).write_text((p / ROWS_FILE).read_text()[:-120] + "\n"),
            "damaged results",
        ),
        (lambda p: (p / META_FILE).unlink(), "metadata file is missing"),
        (
            lambda p: (p / META_FILE).write_text('{"format": "seqbench-run", "sch'),
            "metadata is damaged or truncated",
        ),
        (lambda p: (p / META_FILE).write_text("[1, 2]"), "not seqbench metadata"),
        (lambda p: (p / META_FILE).write_text(""), "metadata file is empty"),
        (lambda p: (p / SAMPLES_FILE).write_text("a,b,c\n1,2,3\n"), "not a seqbench samples file"),
        # What a verdict needs: the measured cells' times, and samples that are times.
        (
            lambda p: _drop_column(p / ROWS_FILE, "median_s"),
            "damaged results (no median_s column: the measured cells' times are lost)",
        ),
        *(
            (
                lambda p, bad=bad: (p / SAMPLES_FILE).write_text(
                    (p / SAMPLES_FILE).read_text().replace(",0.1,", f",{bad},")
                ),
                f"damaged samples (line 2: {bad} is not a time in seconds)",
            )
            for bad in ("nan", "-0.1", "0.0", "inf")
        ),
    ],
)
def test_damaged_files_give_one_clear_line(tmp_path, damage, message):
    run = new_run(tmp_path)
    run.add(Measurement(ok_row(), [0.1]))
    damage(run.path)
    with pytest.raises(ResultsError) as info:
        load_run(run.path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_newer_schema_is_refused(tmp_path):
    run = new_run(tmp_path)
    meta = json.loads((run.path / META_FILE).read_text())
    meta["schema_version"] = 999
    (run.path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ResultsError, match="newer seqbench"):
        load_run(run.path)


def test_missing_runs_and_folders(tmp_path):
    with pytest.raises(ResultsError, match="no such run or results file"):
        load_run("20990101-000000-nope", tmp_path)
    with pytest.raises(ResultsError, match="no saved runs"):
        load_run("latest", tmp_path / "empty")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ResultsError, match="not a seqbench run folder"):
        load_run(tmp_path / "folder")


def test_a_file_from_an_older_schema_loads_with_defaults_for_newer_columns(tmp_path):
    run = new_run(tmp_path)
    run.add(Measurement(ok_row(), [0.1, 0.2]))
    rows_csv = run.path / ROWS_FILE
    frame = __import__("pandas").read_csv(rows_csv)
    frame.drop(columns=["task", "rounds", "peak_rss_bytes", "metric", "metric_value"]).to_csv(
        rows_csv, index=False
    )
    (row,) = load_run(run.path).rows
    assert row.task == "" and row.rounds is None and row.metric_value is None
    assert row.cell == ok_row().cell


def test_runs_started_within_one_second_are_ordered_by_creation_not_label(tmp_path):
    first = create_run(tmp_path, label="zeta", config={}, env={}, plan=[]).path
    second = create_run(tmp_path, label="alpha", config={}, env={}, plan=[]).path
    # The same second in both names: only the creation time in the metadata tells them apart.
    first = first.rename(tmp_path / "20990101-000000-zeta")
    second = second.rename(tmp_path / "20990101-000000-alpha")
    assert list_run_dirs(tmp_path) == [second, first]
    assert load_run("latest", tmp_path).path == second


# ----------------------------------------------------------------- appending and crashes

ROOT = Path(__file__).resolve().parents[1]


class Killed(BaseException):
    """Stands for kill -9 in the middle of a save: nothing after it runs."""


def die_before_the_row(monkeypatch) -> None:
    """Make the next save stop after its samples are appended and before its row is."""
    import seqbench.storage.run as run_module

    real = run_module.append_synced

    def append(path: Path, text: str) -> None:
        if path.suffix == ".csv" and not path.name.endswith(SAMPLES_FILE):
            raise Killed
        real(path, text)

    monkeypatch.setattr(run_module, "append_synced", append)


def planned(root: Path, rows: list[ResultRow], **kw):
    """A run whose plan is these rows' cells, in this order."""
    plan = [r.cell_id for r in rows]
    return create_run(root, label="t", config={}, env={}, plan=plan, **kw)


def file_ids(path: Path) -> list[str]:
    """The cell id of each row line of a rows file, in file order."""
    return [line.rsplit(",", 1)[1] for line in path.read_text().splitlines()[1:]]


def sample_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()[1:]


def test_saving_a_cell_appends_and_leaves_every_earlier_byte_alone(tmp_path):
    run = new_run(tmp_path)
    files = [run.path / name for name in (ROWS_FILE, SAMPLES_FILE, META_FILE)]
    before = [f.read_bytes() for f in files]
    inodes = [f.stat().st_ino for f in files]
    for i, seq_len in enumerate((8, 16, 32)):
        run.add(Measurement(ok_row(seq_len=seq_len), [0.1 * (i + 1), 0.2]))
        after = [f.read_bytes() for f in files]
        for old, new in zip(before[:2], after[:2], strict=True):
            assert new.startswith(old) and len(new) > len(old)  # the file only grows
        assert after[2] == before[2]  # metadata is not rewritten per cell
        assert [f.stat().st_ino for f in files] == inodes  # appended in place, not replaced
        before = after
    assert sample_lines(files[1])[-2:] == [
        f"{ok_row(seq_len=32).cell_id},0.30000000000000004,1,",  # no machine time: blank
        f"{ok_row(seq_len=32).cell_id},0.2,1,",
    ]


def test_a_torn_last_row_is_skipped_and_a_resume_appends_cleanly_after_it(tmp_path):
    first, second = ok_row(seq_len=8), ok_row(seq_len=16)
    run = new_run(tmp_path)
    run.add(Measurement(first, [0.1]))
    run.add(Measurement(second, [0.2, 0.3]))
    rows_csv = run.path / ROWS_FILE
    rows_csv.write_text(rows_csv.read_text()[:-40])  # the last append, torn by a crash
    run.close()  # the crashed writer is gone
    loaded = load_run(run.path)
    assert loaded.rows == [first]
    assert loaded.samples == {first.cell_id: [0.1]}  # the torn row committed nothing

    resumed = reopen_run(run.path, tmp_path)
    resumed.add(Measurement(second, [0.4]))
    final = load_run(run.path)
    assert final.rows == [first, second]
    assert final.samples == {first.cell_id: [0.1], second.cell_id: [0.4]}
    assert file_ids(rows_csv) == [first.cell_id, second.cell_id]  # no fragment left behind


def test_a_row_torn_inside_a_quoted_multiline_message_is_still_torn(tmp_path):
    first = ok_row(seq_len=8)
    second = ResultRow.for_cell(make_cell(), status="error", message='line one\nline "two", end')
    run = new_run(tmp_path)
    run.add(Measurement(first, [0.1]))
    run.add(Measurement(second))
    rows_csv = run.path / ROWS_FILE
    assert load_run(run.path).rows == [first, second]  # the message's newline is quoted
    text = rows_csv.read_text()
    rows_csv.write_text(text[: text.index("line one\n") + len("line one\n")])  # ends in a newline
    assert load_run(run.path).rows == [first]


def test_a_torn_last_sample_line_is_skipped(tmp_path):
    run = new_run(tmp_path)
    run.add(Measurement(ok_row(), [0.1, 0.2]))
    with (run.path / SAMPLES_FILE).open("a") as fh:
        fh.write(f"{ok_row(seq_len=32).cell_id},0.12")  # a crash mid-append, before its row
    loaded = load_run(run.path)
    assert loaded.rows == [ok_row()]
    assert loaded.samples == {ok_row().cell_id: [0.1, 0.2]}


def test_samples_whose_row_never_came_are_ignored_then_removed_before_a_rerun(
    tmp_path, monkeypatch
):
    import dataclasses

    cell, other = ok_row(), ok_row(seq_len=8)
    run = planned(tmp_path, [cell, other])
    run.add(Measurement(dataclasses.replace(cell, rounds=1), [0.1, 0.2]))
    with monkeypatch.context() as m:
        die_before_the_row(m)
        with pytest.raises(Killed):  # round 2 of `cell`: samples down, row not
            run.add(Measurement(dataclasses.replace(cell, rounds=2), [0.1, 0.2, 0.3, 0.4]))
    run.close()  # the crashed writer is gone
    orphans = [line for line in sample_lines(run.path / SAMPLES_FILE) if line.endswith(",2,")]
    assert len(orphans) == 2  # they are on disk...
    loaded = load_run(run.path)  # ...but a reader does not count them
    assert loaded.rows == [dataclasses.replace(cell, rounds=1)]
    assert loaded.samples == {cell.cell_id: [0.1, 0.2]}

    with monkeypatch.context() as m:  # the same fate for a first round, after a resume
        die_before_the_row(m)
        crashing = reopen_run(run.path, tmp_path)
        with pytest.raises(Killed):
            crashing.add(Measurement(other, [0.5]))
        crashing.close()
    assert load_run(run.path).samples == {cell.cell_id: [0.1, 0.2]}

    resumed = reopen_run(run.path, tmp_path)
    resumed.add(Measurement(dataclasses.replace(cell, rounds=2), [0.1, 0.2, 0.7, 0.8]))
    resumed.add(Measurement(other, [0.9]))
    final = load_run(run.path)
    assert final.rows == [dataclasses.replace(cell, rounds=2), other]
    assert final.samples == {cell.cell_id: [0.1, 0.2, 0.7, 0.8], other.cell_id: [0.9]}
    assert sample_lines(run.path / SAMPLES_FILE) == [
        f"{cell.cell_id},0.1,1,",
        f"{cell.cell_id},0.2,1,",
        f"{cell.cell_id},0.7,2,",
        f"{cell.cell_id},0.8,2,",
        f"{other.cell_id},0.9,1,",
    ]  # the orphans went before anything new was appended: nothing counted twice


def test_a_refused_resume_changes_nothing_on_disk(tmp_path, monkeypatch):
    run = new_run(tmp_path)
    run.add(Measurement(ok_row(), [0.1]))
    with monkeypatch.context() as m:
        die_before_the_row(m)
        with pytest.raises(Killed):
            run.add(Measurement(ok_row(seq_len=8), [0.5]))
    run.close()

    def files() -> dict[str, bytes]:
        # The lock file says who holds the run and since when (a second later, when the
        # clock ticks over between the two reads): it is not the run's data.
        return {p.name: p.read_bytes() for p in run.path.iterdir() if p.name != LOCK_FILE}

    before = files()
    reopen_run(run.path, tmp_path)  # and then not used: the CLI refused to go on
    assert files() == before


def test_an_interrupt_inside_a_save_is_repaired_when_the_run_finishes(tmp_path, monkeypatch):
    import seqbench.storage.run as run_module

    real = run_module.append_synced

    def interrupted(path: Path, text: str) -> None:
        if path.name == ROWS_FILE:
            raise KeyboardInterrupt  # Ctrl-C between the samples and the row
        real(path, text)

    run = new_run(tmp_path)
    run.add(Measurement(ok_row(seq_len=8), [0.1]))
    monkeypatch.setattr(run_module, "append_synced", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run.add(Measurement(ok_row(), [0.2, 0.3]))
    monkeypatch.undo()
    run.finish("interrupted")  # what the CLI does on Ctrl-C
    loaded = load_run(run.path)
    assert loaded.rows == run.rows
    assert loaded.samples == run.samples
    assert len(sample_lines(run.path / SAMPLES_FILE)) == sum(map(len, run.samples.values()))


# ----------------------------------------------------------------- rounds and compaction


def test_rounds_load_as_one_row_per_cell_with_every_rounds_samples_pooled(tmp_path):
    import dataclasses

    from seqbench.export.csv import CsvExporter

    a, b = ok_row(seq_len=8), ok_row(seq_len=16)
    run = planned(tmp_path, [a, b])
    pooled: dict[str, list[float]] = {a.cell_id: [], b.cell_id: []}
    for round_no in (1, 2, 3):
        for row in (a, b):
            pooled[row.cell_id] = [*pooled[row.cell_id], round_no + 0.25, round_no + 0.5]
            run.add(Measurement(dataclasses.replace(row, rounds=round_no), pooled[row.cell_id]))
    rows_csv = run.path / ROWS_FILE
    assert len(file_ids(rows_csv)) == 6  # a row per round, appended; the last one counts
    merged = [dataclasses.replace(a, rounds=3), dataclasses.replace(b, rounds=3)]
    loaded = load_run(run.path)
    assert loaded.rows == merged
    assert loaded.samples == pooled
    tags = [line.split(",")[2] for line in sample_lines(run.path / SAMPLES_FILE)]
    assert tags == ["1", "1", "1", "1", "2", "2", "2", "2", "3", "3", "3", "3"]

    run.finish("complete")
    assert rows_csv.read_text() == CsvExporter().render(merged)  # one row per cell, plan order
    assert load_run(run.path).samples == pooled


def test_a_later_round_that_fails_drops_the_cells_samples(tmp_path):
    import dataclasses

    run = new_run(tmp_path)
    run.add(Measurement(dataclasses.replace(ok_row(), rounds=1), [0.1, 0.2]))
    failed = ResultRow.for_cell(ok_row().cell, status="timeout", message="too slow", rounds=2)
    run.add(Measurement(failed))
    assert run.samples == {}
    loaded = load_run(run.path)
    assert loaded.rows == [failed]
    assert loaded.samples == {}
    run.finish("complete")
    assert (run.path / SAMPLES_FILE).read_text() == "cell_id,sample_s,round,machine_s\n"
    assert file_ids(run.path / ROWS_FILE) == [failed.cell_id]


def test_each_processs_machine_time_is_saved_with_its_batch_and_read_back(tmp_path):
    from tests.helpers import add_in_processes

    a, b = ok_row(seq_len=8), ok_row(seq_len=16)
    run = planned(tmp_path, [a, b])
    add_in_processes(run, a, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 3, machine=[8e-5, 9e-5, 1.25e-4])
    add_in_processes(run, b, [0.1, 0.2, 0.3], 3)  # no reference timed: blanks
    lines = sample_lines(run.path / SAMPLES_FILE)
    assert lines[:3] == [
        f"{a.cell_id},0.1,1,8e-05",
        f"{a.cell_id},0.2,1,",
        f"{a.cell_id},0.3,2,9e-05",
    ]
    run.finish("complete")  # rewritten whole: the same batches, the same machine times
    loaded = load_run(run.path)
    assert sample_lines(run.path / SAMPLES_FILE)[:3] == lines[:3]
    row = loaded.row(a.cell_id)
    times = loaded.machine_times(a.cell_id, loaded.rounds_per_process(row))
    assert times == pytest.approx([8e-5, 9e-5, 1.25e-4], rel=1e-12)
    assert loaded.sample_groups(a.cell_id, 1) == [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]
    assert loaded.machine_times(b.cell_id, 1) is None
    assert loaded.machine_times(a.cell_id, None) is None  # one process: nothing across


def test_a_samples_file_from_before_machine_times_loads_and_resumes_into_the_new_form(tmp_path):
    a, b = ok_row(seq_len=8), ok_row(seq_len=16)
    run = planned(tmp_path, [a, b])
    run.add(Measurement(a, [0.1, 0.2], machine_s=8e-5))
    run.close()
    samples = run.path / SAMPLES_FILE
    older = "".join(line.rsplit(",", 1)[0] + "\n" for line in samples.read_text().splitlines())
    samples.write_text(older)
    assert older.startswith("cell_id,sample_s,round\n")
    loaded = load_run(run.path)
    assert loaded.samples == {a.cell_id: [0.1, 0.2]}
    assert loaded.machine_times(a.cell_id, 1) is None
    resumed = reopen_run(run.path, tmp_path)
    resumed.add(Measurement(b, [0.3], machine_s=9e-5))
    assert samples.read_text() == (
        f"cell_id,sample_s,round,machine_s\n{a.cell_id},0.1,1,\n{a.cell_id},0.2,1,\n"
        f"{b.cell_id},0.3,1,9e-05\n"
    )  # rewritten in the new form before appending, never two forms in one file


def test_finishing_puts_rows_that_came_out_of_order_into_plan_order(tmp_path):
    from seqbench.export.csv import CsvExporter

    a, b, c = ok_row(seq_len=8), ok_row(seq_len=16), ok_row(seq_len=32)
    run = planned(tmp_path, [a, b, c])
    for row in (c, a, b):  # as a Ray run finishes them
        run.add(Measurement(row, [0.1]))
    assert file_ids(run.path / ROWS_FILE) == [c.cell_id, a.cell_id, b.cell_id]
    assert load_run(run.path).rows == [a, b, c]
    run.finish("complete")
    assert (run.path / ROWS_FILE).read_text() == CsvExporter().render([a, b, c])


def test_finishing_a_tidy_one_round_run_rewrites_nothing(tmp_path):
    a, b = ok_row(seq_len=8), ok_row(seq_len=16)
    run = planned(tmp_path, [a, b])
    run.add(Measurement(a, [0.1]))
    run.add(Measurement(b, [0.2]))
    files = [run.path / ROWS_FILE, run.path / SAMPLES_FILE]
    before = [(f.stat().st_ino, f.read_bytes()) for f in files]
    run.finish("complete")
    assert [(f.stat().st_ino, f.read_bytes()) for f in files] == before


def test_adding_a_cell_again_in_the_same_round_replaces_it(tmp_path):
    import dataclasses

    run = new_run(tmp_path)
    run.add(Measurement(ok_row(), [0.1]))
    again = dataclasses.replace(ok_row(), median_s=0.5)
    run.add(Measurement(again, [0.5, 0.6]))
    loaded = load_run(run.path)
    assert loaded.rows == [again]
    assert loaded.samples == {again.cell_id: [0.5, 0.6]}


def test_rows_come_in_plan_order_then_the_rest_as_they_came(tmp_path):
    a, b = ok_row(seq_len=8), ok_row(seq_len=16)
    x, y = ok_row(seq_len=99), ok_row(seq_len=3)
    run = planned(tmp_path, [a, b])
    for row in (x, b, y, a):
        run.add(Measurement(row, [0.1]))
    assert run.rows == [a, b, x, y]
    assert run.row(y.cell_id) == y and run.row("nothing") is None
    assert load_run(run.path).rows == [a, b, x, y]


def test_an_extra_csv_gets_the_same_appends_and_the_same_compaction(tmp_path):
    import dataclasses

    extra = tmp_path / "out" / "mine.csv"
    a, b = ok_row(seq_len=8), ok_row(seq_len=16)
    run = planned(tmp_path / "results", [a, b], extra_csv=extra)
    run.add(Measurement(dataclasses.replace(b, rounds=1), [0.1]))
    run.add(Measurement(dataclasses.replace(a, rounds=1), [0.2]))
    run.add(Measurement(dataclasses.replace(b, rounds=2), [0.1, 0.3]))
    pairs = [
        (run.path / ROWS_FILE, extra),
        (run.path / SAMPLES_FILE, tmp_path / "out" / "mine.samples.csv"),
        (run.path / META_FILE, tmp_path / "out" / "mine.meta.json"),
    ]
    assert all(ours.read_bytes() == theirs.read_bytes() for ours, theirs in pairs)
    run.finish("complete")
    assert all(ours.read_bytes() == theirs.read_bytes() for ours, theirs in pairs)
    assert load_run(extra).rows == load_run(run.path).rows
    assert load_run(extra).samples == {a.cell_id: [0.2], b.cell_id: [0.1, 0.3]}


def test_a_csv_named_on_resume_gets_the_whole_run(tmp_path):
    extra = tmp_path / "mine.csv"
    run = new_run(tmp_path / "results")
    run.add(Measurement(ok_row(seq_len=8), [0.1]))
    run.close()
    resumed = reopen_run(run.path, tmp_path / "results")
    resumed.extra_csv = extra  # as `seqbench run --resume ... --csv` sets it
    resumed.add(Measurement(ok_row(seq_len=16), [0.2]))
    loaded = load_run(extra)
    assert loaded.rows == [ok_row(seq_len=8), ok_row(seq_len=16)]
    assert loaded.samples == load_run(run.path).samples
    assert loaded.meta.resumed_at == resumed.meta.resumed_at


def test_a_measured_ceiling_is_saved_when_it_is_measured(tmp_path):
    from seqbench.execute import Scheduler
    from seqbench.execute.local import InProcessExecutor
    from seqbench.plan.config import SuiteConfig

    run = new_run(tmp_path)
    scheduler = Scheduler(SuiteConfig(), InProcessExecutor(), run, ceiling=lambda d, t: (12.5, ""))
    scheduler.record(Measurement(ok_row(), [0.1]))  # tflops 1.5e-4: an MFU to compute
    assert json.loads((run.path / META_FILE).read_text())["ceilings"] == {"cpu/float32": 12.5}
    assert load_run(run.path).rows[0].mfu == pytest.approx(1.5e-4 / 12.5)


# ----------------------------------------------------------------- files from before

A = "lstm-T8-B4-H8-L1-uni-do0-rd0-V50-E6-cpu-float32-infer"
B = "lstm-T16-B4-H8-L1-uni-do0.25-rd0-V50-E6-cpu-float32-infer"
C = "lstm-T16-B4-H8-L1-uni-do0-rd0-V50-E6-cuda-float32-infer"
# Written by seqbench at 63d4233 (pandas' to_csv, which turned integer columns with a blank
# into floats), for the rows in `old_rows`.
# The columns of schema 7, the last the pandas-era code wrote.
SCHEMA_7_COLUMNS = (
    "arch,seq_len,batch_size,hidden,layers,bidirectional,dropout,recurrent_dropout,vocab,embed,"
    "device,dtype,mode,task,compile,match_params,params,core_params,flops_per_seq,kernel,"
    "kernel_note,median_s,iqr_s,ci_low_s,ci_high_s,min_s,repeats,inner_loops,rounds,seq_per_s,"
    "tokens_per_s,tflops,peak_mem_bytes,mem_source,peak_rss_bytes,peak_reserved_bytes,"
    "faults_per_step,tf32,compile_s,mfu,metric,metric_value,chance_value,train_steps,"
    "train_time_s,time_to_target_s,memory_horizon,host,device_name,wall_s,status,message,cell_id"
)
OLD_ROWS = (
    SCHEMA_7_COLUMNS
    + f"""
lstm,8,4,8,1,False,0.0,0.0,50,6,cpu,float32,infer,,False,0,99.0,,,,,2.5e-05,,,,,3.0,,1.0,,,,123456.0,,,,,,,,,,,,,,,,,,ok,,{A}
lstm,16,4,8,1,False,0.25,0.0,50,6,cpu,float32,infer,,False,0,1234.0,,,,,0.001234567891234,,,,,7.0,,2.0,3241.2,,,,,,,,False,,,,,,,,,,,,,ok,"a ""quoted"", message",{B}
lstm,16,4,8,1,False,0.0,0.0,50,6,cuda,float32,infer,,False,0,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,skipped,cuda is not available here,{C}
"""
)
OLD_SAMPLES = f"""cell_id,sample_s
{B},0.0012
{B},0.00125
{B},1e-05
{A},2.5e-05
{A},2.6e-05
"""
OLD_META = {
    "format": "seqbench-run",
    "schema_version": 7,
    "run_id": "20261128-053955-old",
    "label": "old",
    "state": "complete",
    "created_at": "2026-11-28T05:39:55+00:00",
    "created_ns": 1795844395475380703,
    "finished_at": "2026-11-28T05:39:55+00:00",
    "env": {"torch": "x"},
    "config": {"label": "old"},
    "plan": [A, B, C],
}


def old_rows() -> list[ResultRow]:
    return [
        ResultRow.for_cell(
            make_cell(seq_len=8),
            params=99,
            median_s=2.5e-05,
            repeats=3,
            rounds=1,
            peak_mem_bytes=123456,
        ),
        ResultRow.for_cell(
            make_cell(dropout=0.25),
            params=1234,
            median_s=0.001234567891234,
            repeats=7,
            rounds=2,
            tf32=False,
            seq_per_s=3241.2,
            message='a "quoted", message',
        ),
        ResultRow.for_cell(
            make_cell(device="cuda"), status="skipped", message="cuda is not available here"
        ),
    ]


def write_old_run(root: Path) -> Path:
    folder = root / "20261128-053955-old"
    folder.mkdir(parents=True)
    (folder / ROWS_FILE).write_text(OLD_ROWS)
    (folder / SAMPLES_FILE).write_text(OLD_SAMPLES)
    (folder / META_FILE).write_text(json.dumps(OLD_META, indent=2) + "\n")
    return folder


def test_a_run_saved_by_the_pandas_era_code_loads_equal(tmp_path):
    run = load_run(write_old_run(tmp_path))
    assert run.rows == old_rows()
    assert run.samples == {B: [0.0012, 0.00125, 1e-05], A: [2.5e-05, 2.6e-05]}
    assert run.meta.to_dict() == OLD_META
    assert [(s.cells, s.statuses) for s in summarize_runs(tmp_path)] == [
        (3, {"ok": 2, "skipped": 1})
    ]


def test_a_run_saved_by_the_pandas_era_code_resumes_into_the_new_format(tmp_path):
    folder = write_old_run(tmp_path)
    extra = ok_row(seq_len=99)
    resumed = reopen_run(folder, tmp_path)
    resumed.add(Measurement(extra, [0.5]))
    resumed.finish("complete")
    loaded = load_run(folder)
    assert loaded.rows == [*old_rows(), extra]
    assert loaded.samples == {
        B: [0.0012, 0.00125, 1e-05],
        A: [2.5e-05, 2.6e-05],
        extra.cell_id: [0.5],
    }
    assert (folder / SAMPLES_FILE).read_text().startswith("cell_id,sample_s,round,machine_s\n")


# ----------------------------------------------------------------- the reading side


def test_listing_and_loading_runs_imports_neither_pandas_nor_torch(tmp_path):
    import os
    import subprocess
    import sys

    run = new_run(tmp_path)
    run.add(Measurement(ok_row(), [0.1]))
    run.finish("complete")
    code = f"""
import sys
from pathlib import Path
from seqbench.storage import load_run, summarize_runs
(summary,) = summarize_runs(Path({str(tmp_path)!r}))
assert summary.cells == 1 and not summary.problem, summary
assert load_run(Path({str(run.path)!r})).samples
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "pandas"))
assert not heavy, heavy
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_cells_id_is_kept_once_built_and_never_outlives_its_fields():
    # Cell.cell_id is kept in the instance once built (a million-cell plan asked for it
    # millions of times): a changed copy, a pickled copy and equality must not see it.
    import pickle

    cell = make_cell(arch="gru", seq_len=64)
    assert cell.cell_id == cell.cell_id == "gru-T64-B4-H8-L1-uni-do0-rd0-V50-E6-cpu-float32-infer"
    longer = replace(cell, seq_len=128)
    assert longer.cell_id.startswith("gru-T128-") and cell.cell_id.startswith("gru-T64-")
    copied = pickle.loads(pickle.dumps(cell))
    assert copied == cell and copied.cell_id == cell.cell_id
    assert make_cell(arch="gru", seq_len=64) == cell and hash(copied) == hash(cell)
