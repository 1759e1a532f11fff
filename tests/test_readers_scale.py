"""Readers that scale with the rows of a run: `runs` reads a finished run's summary, not its
rows; `show` draws at most --limit cells; rows parse and export without per-value detours.
(The figures: benchmarks/readers_scale.py.)"""

from __future__ import annotations

import json

import pytest

from seqbench.cli import app
from seqbench.core.schema import ResultRow, _coerce
from seqbench.storage import load_run, summarize_runs
from seqbench.storage import summary as listing
from tests.helpers import make_cell, power_rows, save_run


def test_a_finished_run_is_listed_from_its_summary_without_reading_its_rows(tmp_path, monkeypatch):
    run = save_run(tmp_path, power_rows("lstm", [16, 32, 64], 1.0))
    assert run.meta.summary == {"cells": 3, "statuses": {"ok": 3}, "devices": ["cpu"]}

    def no_rows(path):
        raise AssertionError("the rows were read")

    monkeypatch.setattr(listing, "_read_rows", no_rows)
    (summary,) = summarize_runs(tmp_path)
    assert (summary.cells, summary.statuses, summary.devices) == (3, {"ok": 3}, ("cpu",))


def test_a_running_run_and_a_damaged_header_are_read_row_by_row(tmp_path):
    run = save_run(tmp_path, power_rows("lstm", [16, 32], 1.0))
    meta = json.loads((run.path / "meta.json").read_text())
    (run.path / "meta.json").write_text(json.dumps({**meta, "state": "running"}))
    assert summarize_runs(tmp_path)[0].cells == 2  # no summary trusted while it runs
    (run.path / "meta.json").write_text(json.dumps(meta))
    text = (run.path / "results.csv").read_text()
    (run.path / "results.csv").write_text(text.replace("median_s,", "", 1))
    (summary,) = summarize_runs(tmp_path)
    assert summary.state == "damaged" and "damaged results" in summary.problem


def test_show_draws_at_most_limit_cells_and_says_so(cli, tmp_path):
    run = save_run(tmp_path, power_rows("lstm", [16, 32, 64, 128, 256], 1.0))
    shown = cli.invoke(app, ["show", str(run.path), "--limit", "2"])
    assert shown.exit_code == 0, shown.output
    assert "showing the first 2 of 5 cells" in shown.stderr
    assert "320 µs" in shown.stdout and "640 µs" not in shown.stdout  # T = 16 and 32 only
    every = cli.invoke(app, ["show", str(run.path), "--limit", "0"])
    assert "showing" not in every.stderr
    assert "2.56 ms" in every.stdout  # T = 256, the fifth
    wrong = cli.invoke(app, ["show", str(run.path), "--limit", "-1"])
    assert wrong.exit_code == 2
    assert wrong.stderr == "error: --limit: expected a number of cells >= 0 (0: all), got -1\n"


@pytest.mark.parametrize(
    "text",
    ["", "0", "17", "-3", "2.0", "2.5", "1e-3", "nan", "inf", "true", "False", "x"],
)
def test_the_fast_path_reads_every_string_as_the_general_rule_does(text):
    for name in ("repeats", "median_s", "host", "tf32"):  # int, float, str, bool
        try:
            want = _coerce(name, text)
        except ValueError:
            with pytest.raises(ValueError):
                ResultRow.from_dict({**make_cell().__dict__, name: text})
            continue
        got = getattr(ResultRow.from_dict({**make_cell().__dict__, name: text}), name)
        assert got == want or (got != got and want != want), (name, text)  # NaN is NaN


def test_rows_export_as_json_one_a_line_and_read_back(cli, tmp_path):
    run = save_run(tmp_path, power_rows("gru", [16, 32], 1.0))
    done = cli.invoke(app, ["export", str(run.path), "--format", "json"])
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == 4
    assert [row["seq_len"] for row in json.loads(done.stdout)] == [16, 32]
    out = tmp_path / "rows.json"
    cli.invoke(app, ["export", str(run.path), "--out", str(out)])
    assert [r.to_dict() for r in load_run(str(out)).rows] == [r.to_dict() for r in run.rows]


def test_a_report_lists_its_first_cells_and_says_where_the_rest_are(monkeypatch):
    from seqbench.output import report
    from seqbench.storage.meta import RunMeta

    monkeypatch.setattr(report, "REPORT_ROWS", 3)
    rows = power_rows("lstm", [16, 32, 64, 128, 256], 1.0)
    page = report.format_run_report(rows, RunMeta(run_id="r1", label="big"))
    results = page.split("<h2>Results</h2>")[1].split("<h2>")[0]
    assert results.count("<tr") == 1 + 3  # the header and three cells
    assert "The first 3 of 5 cells; seqbench export gives every row" in results


def test_a_long_series_draws_its_points_thinned_and_fits_them_all():
    from seqbench.output import plots

    lengths = list(range(8, 8 + 4 * 500, 4))  # 500 lengths
    chart = plots.build_chart(power_rows("gru", lengths, 1.5), "median_s")
    (series,) = chart.series
    assert len(series.x) == plots.MAX_POINTS and series.x[0] == 8 and series.x[-1] == lengths[-1]
    assert abs(series.fit.exponent - 1.5) < 1e-9  # from every point, exact for a power law
    short = plots.build_chart(power_rows("gru", lengths[:50], 1.5), "median_s")
    assert len(short.series[0].x) == 50
