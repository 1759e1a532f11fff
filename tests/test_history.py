"""`seqbench history`: runs lined up by commit, environments kept apart, steps named, the gate."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys

import pytest

from seqbench.cli import app
from seqbench.core.schema import ResultRow
from seqbench.judge.history import build_history, gate_steps, gather_runs
from tests.helpers import make_cell, save_run

START = dt.datetime(2026, 10, 1, 9, 0, tzinfo=dt.timezone.utc)
# A deterministic wobble of about ±2%, so that the series is not flat to the last bit.
WOBBLE = [1.0, 1.02, 0.99, 1.01, 0.98, 1.015, 0.995, 1.005]


def commit(i: int) -> str:
    return f"{i:02d}" + "c" * 38


def save_history(root, factors, *, env=None, commit_times=True, cells=("lstm", "gru"), start=0):
    """One run per factor, commit i made on day i; lstm's median is 1 ms × factor, the
    other cells' stay flat. Runs are saved newest commit first, so that run order and commit
    order disagree."""
    for i in reversed(range(len(factors))):
        n = start + i
        when = START + dt.timedelta(days=n)
        rows = [
            ResultRow.for_cell(
                make_cell(arch=arch),
                median_s=1e-3 * WOBBLE[n % len(WOBBLE)] * (factors[i] if arch == "lstm" else 1),
                params=100,
                status="ok",
            )
            for arch in cells
        ]
        run_env = {
            "git_commit": commit(n),
            "git_dirty": False,
            "time": (START + dt.timedelta(days=60 - n)).isoformat(),  # reversed on purpose
            **({"git_commit_time": when.isoformat()} if commit_times else {}),
            **(env or {}),
        }
        save_run(root, rows, label=f"c{n}", env=run_env)


def invoke(cli, root, *args):
    return cli.invoke(app, ["history", *args, "--root", str(root)])


def one_error_line(result, message):
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


STEP_UP = [1.0] * 12 + [1.3] * 8


@pytest.fixture(scope="module")
def stepped(tmp_path_factory):
    """Twenty runs, lstm 30% slower from commit 12 on; shared: no test may change it."""
    root = tmp_path_factory.mktemp("history") / "results"
    save_history(root, STEP_UP)
    return root


def test_history_lines_runs_up_by_commit_time_and_finds_the_step(stepped):
    runs, skipped = gather_runs([], stepped)
    history = build_history(runs)
    assert history.order == "commit" and skipped == []
    lstm, gru = sorted(history.series, key=lambda s: s.cell.arch != "lstm")
    assert [p.commit for p in lstm.points] == [commit(i) for i in range(20)]
    (step,) = lstm.changes.steps
    assert lstm.first_after(step.index).commit == commit(12)
    assert step.ratio == pytest.approx(1.3, abs=0.02) and step.slower
    assert gru.changes.steps == []
    assert [s.cell.arch for s, _ in gate_steps(history, 0.10)] == ["lstm"]
    assert gate_steps(history, 0.40) == []


def test_run_order_follows_when_the_runs_were_made(stepped):
    history = build_history(gather_runs([], stepped)[0], order="run")
    assert history.order == "run"
    lstm = next(s for s in history.series if s.cell.arch == "lstm")
    assert [p.commit for p in lstm.points] == [commit(i) for i in reversed(range(20))]
    (step,) = lstm.changes.steps
    assert step.ratio < 1 and lstm.first_after(step.index).commit == commit(11)


def test_runs_from_different_environments_are_separate_series(tmp_path):
    root = tmp_path / "results"
    save_history(root, [1.0] * 10, env={"threads": 1})
    save_history(root, [1.5] * 10, env={"threads": 2}, start=10)  # later commits, 2 threads
    history = build_history(gather_runs([], root)[0])
    assert [(e.number, e.runs) for e in history.environments] == [(1, 10), (2, 10)]
    assert history.environments[1].differences == [("threads", 1, 2)]
    lstm = [s for s in history.series if s.cell.arch == "lstm"]
    assert [(s.environment, len(s.points)) for s in lstm] == [(1, 10), (2, 10)]
    # Never mixed: no step from 1 ms (1 thread) to 1.5 ms (2 threads).
    assert all(s.changes.steps == [] for s in history.series)
    assert history.latest_environment == 2


def test_the_cli_names_the_first_commit_after_the_step(cli, stepped):
    result = invoke(cli, stepped, "--arch", "lstm")
    assert result.exit_code == 0, result.output
    assert "+30.0% at 12cccccc" in result.stdout  # the summary line
    assert "▁" * 12 + "█" * 8 in result.stdout  # its level, run by run
    assert "12cccccc" in result.stdout and "12 | 8" in result.stdout  # the steps table
    assert " 20   19cccccc " in result.stdout  # one cell: its every run is listed
    assert "gru" not in result.stdout


def test_fail_on_step_exits_1_on_a_slowdown_into_the_current_level(cli, stepped):
    result = invoke(cli, stepped, "--fail-on-step")
    assert result.exit_code == 1, result.output
    assert "FAIL: lstm stepped +30.0% at 12cccccc (over 10%)" in result.stderr
    assert invoke(cli, stepped, "--fail-on-step", "--threshold", "0.5").exit_code == 0


def test_fail_on_step_passes_when_the_latest_step_is_a_speedup(cli, tmp_path):
    root = tmp_path / "results"
    save_history(root, [1.0] * 6 + [1.3] * 6 + [1.0] * 6)
    result = invoke(cli, root, "--fail-on-step")
    assert result.exit_code == 0, result.output
    assert "PASS: no cell's current level began with a slowdown over 10%" in result.stderr
    assert "+30.0% at 06cccccc, -23.1% at 12cccccc" in result.stdout


def test_history_reads_exported_rows_files(cli, tmp_path):
    root = tmp_path / "results"
    save_history(root, STEP_UP[:6])
    files = []
    for i, run in enumerate(sorted(p.name for p in root.iterdir())):
        out = tmp_path / f"run{i}.json"
        assert (
            cli.invoke(app, ["export", run, "--out", str(out), "--root", str(root)]).exit_code == 0
        )
        files.append(str(out))
    result = cli.invoke(app, ["history", *files, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["runs"] == 6 and data["order"] == "commit"
    assert {len(s["points"]) for s in data["series"]} == {6}


def test_history_writes_a_plot_file_and_markdown(cli, stepped, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "history.svg"
    result = invoke(cli, stepped, "--out", str(out), "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert out.read_text().count("<svg") == 1 and "12cccccc" in out.read_text()
    assert "| lstm | 20 |" in result.stdout and "### steps" in result.stdout


def test_history_writes_a_self_contained_html_page(cli, stepped, tmp_path):
    pytest.importorskip("matplotlib")
    page = tmp_path / "history.html"
    result = invoke(cli, stepped, "--html", str(page), "--fail-on-step")
    assert result.exit_code == 1, result.output  # the gate still decides the exit code
    text = page.read_text()
    assert text.count("<svg") == 1 and "<table" in text and "12cccccc" in text
    assert "FAIL: lstm stepped +30.0% at 12cccccc" in text  # the verdict is on the page
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing fetched at view time


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--arch", "lstn"],
            "--arch: these runs have no cells with arch 'lstn'; they have: lstm, gru",
        ),
        (["--order", "git"], "--order: expected one of auto, commit, run, got 'git'"),
        (["--threshold", "0"], "--threshold: expected a number between 0 and inf, got 0.0"),
        (["--alpha", "2"], "--alpha: expected a number between 0 and 1, got 2.0"),
        (["--out", "h.pdf"], "--out h.pdf: cannot draw a '.pdf' file; use .png or .svg"),
        (["--format", "html"], "--format: expected table, markdown or json, got 'html'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, stepped, args, message):
    one_error_line(invoke(cli, stepped, *args), message)


def test_commit_order_needs_commit_times_and_an_empty_root_is_an_error(cli, tmp_path):
    root = tmp_path / "results"
    one_error_line(invoke(cli, root), f"{root}: no saved runs")
    save_history(root, [1.0] * 4, commit_times=False)
    one_error_line(
        invoke(cli, root, "--order", "commit"),
        "--order commit: 4 run(s) do not record their commit's time",
    )
    assert invoke(cli, root).exit_code == 0  # auto: by run time


def test_a_damaged_run_is_skipped_and_named(cli, tmp_path):
    root = tmp_path / "results"
    save_history(root, [1.0] * 3)
    bad = save_run(root, [], label="broken").path
    (bad / "results.csv").write_text("name,price\nfoo,3\n")
    result = invoke(cli, root)
    assert result.exit_code == 0, result.output
    assert f"skipped {bad.name}: " in result.stderr


def test_when_every_run_is_damaged_the_error_says_why_not_that_there_are_none(cli, tmp_path):
    root = tmp_path / "results"
    for label in ("broken", "other"):
        (save_run(root, [], label=label).path / "meta.json").write_text("[]")
    result = invoke(cli, root)
    one_error_line(result, f"no readable runs to make a history of: {root}")
    assert result.stderr.endswith("/meta.json: not seqbench metadata (and 1 more)\n")


def test_history_never_imports_torch(stepped):
    code = (
        "import sys\nfrom seqbench.cli import app\n"
        f"try:\n    app(['history', '--root', {str(stepped)!r}])\nexcept SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "assert 'torch' not in sys.modules and 'pandas' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, capture_output=True)


def test_a_run_records_when_its_commit_was_made():
    from seqbench.machine.env import git_commit, git_commit_time

    head, _ = git_commit()
    if head is None:
        pytest.skip("not in a git checkout")
    stamp = git_commit_time(head)
    assert dt.datetime.fromisoformat(stamp).tzinfo is not None
    assert git_commit_time(None) is None and git_commit_time("0" * 40) is None


def test_an_output_that_is_a_runs_own_file_is_refused(cli, stepped):
    pytest.importorskip("matplotlib")
    (folder, *_) = sorted(p for p in stepped.iterdir() if p.is_dir())
    meta = folder / "meta.json"
    before = meta.read_bytes()
    result = invoke(cli, stepped, "--html", str(meta))
    assert result.exit_code == 2
    assert f"--html {meta}: that is the run {folder.name}'s own file" in result.stderr
    assert meta.read_bytes() == before
    assert result.stdout == ""  # refused before the history table, not after it
    results = folder / "results.csv"
    result = invoke(cli, stepped, "--out", str(results))
    assert result.exit_code == 2 and result.stdout == ""
    assert f"--out {results}: that is the run {folder.name}'s own file" in result.stderr


def save_machine_history(root, code, machine, *, timed=True):
    """One run per commit, each measured in 3 processes that timed the machine's reference
    step: the cell's samples are code[i] x machine[i] ms (with a small wobble), the
    reference machine[i] x 10 ms; `timed` False leaves the last run without the reference."""
    from seqbench.storage import create_run
    from tests.helpers import add_in_processes

    for i, (c, m) in enumerate(zip(code, machine, strict=True)):
        when = START + dt.timedelta(days=i)
        env = {"cpu": "Test CPU", "threads": 1, "flush_denormal": True, "torch": "x",
               "git_commit": commit(i), "git_dirty": False, "time": when.isoformat(),
               "git_commit_time": when.isoformat()}  # fmt: skip
        run = create_run(root, label=f"m{i}", config={"label": f"m{i}"}, env=env, plan=[])
        wobble = WOBBLE[i % len(WOBBLE)]
        samples = [1e-3 * c * m * wobble * (1 + 0.001 * k) for k in range(9)]
        row = ResultRow.for_cell(make_cell(arch="lstm"), median_s=samples[4], params=100)
        last = i == len(code) - 1
        reference = None if last and not timed else [1e-2 * m * wobble] * 3
        add_in_processes(run, row, samples, processes=3, machine=reference)
        run.finish("complete")


def test_history_judges_each_run_relative_to_its_machines_speed(tmp_path):
    # Six runs on a machine running at its usual speed, then six on one 1.5x slower (a busy
    # host), the code unchanged: relative to the reference step timed in each run's
    # processes there is no step, as compare would judge it. A real 30% slowdown of the
    # code on a steady machine is still a step of x1.3.
    slower_machine = tmp_path / "machine"
    save_machine_history(slower_machine, [1.0] * 12, [1.0] * 6 + [1.5] * 6)
    runs, _ = gather_runs([], slower_machine)
    history = build_history(runs)
    (series,) = history.series
    assert series.relative and not series.changes.steps and not gate_steps(history, 0.1)
    assert series.points[-1].machine_s == pytest.approx(1.5e-2 * WOBBLE[11 % len(WOBBLE)])
    medians = [p.median_s for p in series.points]  # the medians as measured did move 1.5x
    assert max(medians) / min(medians) > 1.4

    slower_code = tmp_path / "code"
    save_machine_history(slower_code, [1.0] * 6 + [1.3] * 6, [1.0, 1.04, 0.97, 1.02] * 3)
    history = build_history(gather_runs([], slower_code)[0])
    (step,) = history.series[0].changes.steps
    assert history.series[0].relative and step.ratio == pytest.approx(1.3, rel=0.03)
    assert [s for s, _ in gate_steps(history, 0.1)] == history.series

    untimed = tmp_path / "untimed"  # one run without the reference: the medians as measured
    save_machine_history(untimed, [1.0] * 12, [1.0] * 6 + [1.5] * 6, timed=False)
    history = build_history(gather_runs([], untimed)[0])
    assert not history.series[0].relative and history.series[0].changes.steps


def test_the_history_says_its_steps_are_relative_to_the_machine(cli, tmp_path):
    save_machine_history(tmp_path, [1.0] * 12, [1.0] * 6 + [1.5] * 6)
    result = invoke(cli, tmp_path, "--fail-on-step")
    assert result.exit_code == 0, result.output
    assert "relative to the machine's speed in each run" in " ".join(result.output.split())
    assert "PASS" in result.output
