from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqbench.errors import ResultsError
from seqbench.schema import RESULT_COLUMNS, Measurement, ResultRow
from seqbench.storage import (
    META_FILE,
    ROWS_FILE,
    SAMPLES_FILE,
    atomic_write,
    create_run,
    list_run_dirs,
    load_run,
    new_run_dir,
)
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
    assert loaded.meta["state"] == "complete"
    assert loaded.meta["plan"] == ["a", "b"]
    assert loaded.run_id == run.path.name


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
    assert load_run(run.path).meta["state"] == "running"


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
            lambda p: (p / ROWS_FILE).write_text((p / ROWS_FILE).read_text()[:-120]),
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
