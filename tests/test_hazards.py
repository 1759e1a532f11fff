"""What a careless user, a hostile file or the user's own code can do to a run, each tried
for real: every case ends in one line and a documented exit code, with nothing measured lost."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqbench.cli import app
from seqbench.storage import list_run_dirs, load_run
from tests.helpers import SMALL_FLAGS as SMALL
from tests.helpers import wait_for_rows


def run_cli(cli, tmp_path, *args):
    return cli.invoke(app, ["run", "--out", str(tmp_path / "results"), *SMALL, *args])


def one_line_error(result, code: int = 2) -> str:
    """The error line of a failed command, after checking it is one line and no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


# ----------------------------------------------------------------- values that mean nothing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cell-timeout", "inf"], "--cell-timeout: expected a number of seconds > 0 (a finite number), got inf"),
        (["--warmup-time", "inf"], "--warmup-time: expected a number of seconds >= 0 (a finite number), got inf"),
        (["--min-time", "nan"], "--min-time: expected a number of seconds >= 0 (a finite number), got nan"),
        (["--seq-len", "99999999999999999999"], "--seq-len: expected a positive integer below 2**31, got 99999999999999999999 (too large)"),
        (["--seq-len", "4294967296"], "--seq-len: expected a positive integer below 2**31, got 4294967296"),
        (["--seed", str(2**64)], f"--seed: expected an integer from 0 below 2**63, got {2**64} (too large)"),
        (["--lr", "1e400"], "--lr: expected a learning rate > 0 (a finite number), got inf"),
    ],
)  # fmt: skip
def test_infinite_and_out_of_range_values_are_refused_before_anything_runs(
    cli, tmp_path, args, message
):
    result = run_cli(cli, tmp_path, "--arch", "rnn", *args)
    assert one_line_error(result) == f"error: {message}"
    assert list_run_dirs(tmp_path / "results") == []


def test_an_infinite_value_in_a_suite_file_is_refused(cli, tmp_path):
    suite = tmp_path / "inf.toml"
    suite.write_text("[matrix]\narch = ['rnn']\n\n[run]\ncell_timeout = 1e400\n")
    result = cli.invoke(app, ["run", "--suite", str(suite), "--out", str(tmp_path)])
    assert one_line_error(result) == (
        f"error: {suite}: [run] cell_timeout: expected a number of seconds > 0 (a finite number), got inf"
    )


def test_an_empty_suite_file_is_refused_not_run_as_the_quick_suite(cli, tmp_path):
    suite = tmp_path / "empty.toml"
    suite.write_text("")
    result = run_cli(cli, tmp_path, "--suite", str(suite))
    assert one_line_error(result) == (
        f"error: {suite}: the suite is empty; give at least a [matrix] table"
    )
    assert list_run_dirs(tmp_path / "results") == []


def test_a_suite_saved_with_a_byte_order_mark_and_crlf_reads_as_written(tmp_path):
    from seqbench.plan.suites import read_suite

    suite = tmp_path / "windows.toml"
    suite.write_bytes(b'\xef\xbb\xbf[matrix]\r\narch = ["lstm", "gru"]\r\nseq_len = [32]\r\n')
    (matrix,) = read_suite(suite)["matrices"]
    assert matrix["arch"] == ("lstm", "gru") and matrix["seq_len"] == (32,)


def test_a_current_folder_that_was_deleted_is_one_line(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()

    def enter_and_delete() -> None:
        os.chdir(gone)
        os.rmdir(gone)

    done = subprocess.run(
        [sys.executable, "-m", "seqbench", "runs"], capture_output=True, text=True, timeout=120,
        preexec_fn=enter_and_delete,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (
        2, "error: the current folder no longer exists (deleted or moved): cd to another\n"
    )  # fmt: skip


# ----------------------------------------------------------------- the user's own code


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("crashes_on_build", "importing or building it killed the process (SIGSEGV)"),
        (
            "exits_on_build",
            # built at the run's first cell (run_cli's --embed 4 --hidden 4, T = 64)
            "the factory failed at input_size 4 (--embed), hidden 4, layers 1, T 64: SystemExit: 0",
        ),
    ],
)
def test_a_factory_that_crashes_or_exits_while_built_is_one_line(cli, tmp_path, arch, message):
    result = run_cli(cli, tmp_path, "--arch", f"tests.fault_archs:{arch}")
    assert one_line_error(result) == f"error: tests.fault_archs:{arch}: {message}"
    assert list_run_dirs(tmp_path / "results") == []


def test_a_factory_is_first_built_at_the_shape_the_run_asks_for(cli, tmp_path):
    # Not at a made-up one-layer shape: a factory that needs two layers (RWKV's divides by
    # layers - 1) runs with --layers 2, and with one layer the line names the shape it got.
    arch = "tests.fault_archs:needs_two_layers"
    result = run_cli(cli, tmp_path, "--arch", arch, "--layers", "2", "--seq-len", "32",
                     "--embed", "6", "--mode", "infer")  # fmt: skip
    assert result.exit_code == 0, result.output
    row = load_run("latest", tmp_path / "results").rows[0]
    assert (row.status, row.layers, row.embed) == ("ok", 2, 6)
    result = run_cli(cli, tmp_path, "--arch", arch, "--layers", "1,2", "--seq-len", "32,64",
                     "--embed", "6")  # fmt: skip
    assert one_line_error(result) == (
        f"error: {arch}: the factory failed at input_size 6 (--embed), hidden 4, layers 1, "
        "T 32: ZeroDivisionError: float division by zero"
    )


def test_a_factory_that_hangs_while_built_is_stopped(cli, tmp_path, monkeypatch):
    from seqbench.models import custom

    monkeypatch.setattr(custom, "BUILD_TIMEOUT_S", 5.0)  # from the factory's start
    custom.probe_factory.cache_clear()
    result = run_cli(cli, tmp_path, "--arch", "tests.fault_archs:hangs_on_build")
    assert one_line_error(result) == (
        "error: tests.fault_archs:hangs_on_build: its factory did not return within "
        "5 s (does it wait for something?)"
    )


def test_a_module_that_hangs_on_import_is_stopped_at_the_import(cli, tmp_path, monkeypatch):
    from seqbench.models import custom

    (tmp_path / "waits.py").write_text("import time\ntime.sleep(600)\ndef factory(shape): pass\n")
    monkeypatch.chdir(tmp_path)  # a user's models live in the current folder
    monkeypatch.setattr(custom, "IMPORT_TIMEOUT_S", 5.0)
    custom.probe_factory.cache_clear()
    result = run_cli(cli, tmp_path, "--arch", "waits:factory")
    assert one_line_error(result) == (
        "error: waits:factory: importing its module did not finish within 5 s "
        "(does it wait for something?)"
    )


def test_a_forward_pass_that_never_returns_is_stopped_at_the_cell_timeout(cli, tmp_path):
    # Not after the probe's two minutes: the run said how long a cell may take (and a first
    # call in a fresh process gets a grace on a busy machine).
    from seqbench.models import custom

    custom.probe_factory.cache_clear()
    arch = "tests.fault_archs:hangs_on_forward"
    result = run_cli(cli, tmp_path, "--arch", arch, "--cell-timeout", "2")
    assert one_line_error(result) == (
        f"error: {arch}: its forward pass on a (1, 64, 4) probe input did not return "
        "within 12 s (--cell-timeout 2 s, and 10 s for a first call)"
    )
    assert list_run_dirs(tmp_path / "results") == []


def test_a_model_calling_sys_exit_ends_its_cell_not_the_run(cli, tmp_path):
    result = run_cli(
        cli,
        tmp_path,
        "--arch",
        "tests.fault_archs:exits",
        "--seq-len",
        "64,100,120",
        "--mode",
        "infer",
    )
    assert result.exit_code == 1, result.output  # an error row: exit 1, the run complete
    run = load_run("latest", tmp_path / "results")
    assert run.meta.state == "complete"
    got = {r.seq_len: (r.status, r.message) for r in run.rows}
    assert got[64][0] == "ok"
    assert got[100] == got[120] == ("error", "the model called sys.exit(3)")


# ----------------------------------------------------------------- one writer per run

ROOT = Path(__file__).resolve().parents[1]


def start_slow_run(root: Path) -> subprocess.Popen:
    """A real `seqbench run` whose second cell sleeps a minute, holding its run."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    args = ["--arch", "tests.fault_archs:sleepy", "--seq-len", "64,100", "--mode", "infer"]
    return subprocess.Popen(
        [sys.executable, "-m", "seqbench", "run", "--out", str(root), *args, *SMALL],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def wait_for_first_row(root: Path, proc: subprocess.Popen) -> Path:
    return wait_for_rows(root, 1, proc, limit=120)


def test_a_run_whose_process_lives_cannot_be_resumed_until_it_dies(cli, tmp_path):
    proc = start_slow_run(tmp_path)
    try:
        folder = wait_for_first_row(tmp_path, proc)
        before = (folder / "results.csv").read_bytes()
        refused = cli.invoke(app, ["run", "--out", str(tmp_path), "--resume", str(folder)])
        line = one_line_error(refused)
        assert f"another seqbench is writing this run (pid {proc.pid} on " in line
        assert (folder / "results.csv").read_bytes() == before  # nothing written by the refusal
    finally:
        proc.kill()
        proc.communicate()
    # kill -9: the kernel dropped its lock; the resume may write now.
    resumed = cli.invoke(
        app, ["run", "--out", str(tmp_path), "--resume", str(folder), "--cell-timeout", "2"]
    )
    assert resumed.exit_code == 0, resumed.output
    rows = {r.seq_len: r for r in load_run(folder).rows}
    assert rows[64].status == "ok" and rows[100].status == "timeout"


def test_two_resumes_of_one_run_cannot_both_write(cli, tmp_path):
    from seqbench.storage import reopen_run

    assert run_cli(cli, tmp_path, "--arch", "rnn,gru", "--seq-len", "48").exit_code == 0
    (folder,) = list_run_dirs(tmp_path / "results")
    first = reopen_run(folder, tmp_path / "results")  # one resume, still writing
    try:
        line = one_line_error(
            cli.invoke(app, ["run", "--out", str(tmp_path / "results"), "--resume", "latest"])
        )
        assert f"another seqbench is writing this run (pid {os.getpid()} on " in line
    finally:
        first.close()
    again = cli.invoke(app, ["run", "--out", str(tmp_path / "results"), "--resume", "latest"])
    assert again.exit_code == 0, again.output


# ----------------------------------------------------------------- finishing a broken run


def test_retry_errors_measures_the_failed_cells_again(cli, tmp_path, monkeypatch):
    marker = tmp_path / "fail-now"
    marker.write_text("")
    monkeypatch.setenv("SEQBENCH_TEST_FLAKY", str(marker))
    args = ["--arch", "tests.fault_archs:flaky", "--seq-len", "64,100", "--mode", "infer"]
    assert run_cli(cli, tmp_path, *args).exit_code == 1  # an error row
    folder = list_run_dirs(tmp_path / "results")[0]
    assert [r.status for r in load_run(folder).rows] == ["ok", "error"]

    marker.unlink()  # whatever broke the cell is fixed
    plain = cli.invoke(app, ["run", "--out", str(tmp_path / "results"), "--resume", str(folder)])
    assert plain.exit_code == 1  # a plain resume keeps the error: the run was finished
    retried = cli.invoke(
        app, ["run", "--out", str(tmp_path / "results"), "--resume", str(folder), "--retry-errors"]
    )
    assert retried.exit_code == 0, retried.output
    run = load_run(folder)
    assert [r.status for r in run.rows] == ["ok", "ok"]
    assert run.meta.retried[-1] == [run.rows[1].cell_id]
    assert (folder / "results.csv").read_text().count("\n") == 3  # compacted: one row per cell


def test_retry_errors_needs_a_resume(cli, tmp_path):
    line = one_line_error(run_cli(cli, tmp_path, "--arch", "rnn", "--retry-errors"))
    assert (
        line == "error: --retry-errors measures a resumed run's failed cells again: give --resume"
    )


def test_a_resume_may_change_how_cells_are_protected_and_says_so(cli, tmp_path):
    assert run_cli(cli, tmp_path, "--arch", "rnn,gru", "--seq-len", "48").exit_code == 0
    (folder,) = list_run_dirs(tmp_path / "results")
    lines = (folder / "results.csv").read_text().splitlines()
    (folder / "results.csv").write_text("\n".join(lines[:-1]) + "\n")  # as if it had crashed
    resumed = cli.invoke(
        app,
        ["run", "--out", str(tmp_path / "results"), "--resume", str(folder), "--isolate",
         "--cell-timeout", "30"],
    )  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    run = load_run(folder)
    assert len(run.rows) == 4 and run.rows[-1].peak_rss_bytes  # measured in a process of its own
    assert run.rows[0].peak_rss_bytes is None  # as the run began: in its own process
    assert run.meta.protection_changes == [{"isolate": True, "cell_timeout": 30.0}]
    assert run.meta.config["isolate"] is False  # what the run was started with stays


# ----------------------------------------------------------------- files that cannot be written


def test_export_over_a_runs_own_results_is_refused(cli, tmp_path):
    assert run_cli(cli, tmp_path, "--arch", "rnn", "--seq-len", "48").exit_code == 0
    (folder,) = list_run_dirs(tmp_path / "results")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for target in ("results.csv", "samples.csv", "meta.json"):
        result = cli.invoke(app, ["export", str(folder), "--out", str(folder / target)])
        line = one_line_error(result)
        assert f"that is the run {folder.name}'s own file" in line, target
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_csv_aimed_at_another_runs_results_is_refused_before_measuring(cli, tmp_path):
    assert run_cli(cli, tmp_path, "--arch", "rnn", "--seq-len", "48").exit_code == 0
    (other,) = list_run_dirs(tmp_path / "results")
    before = {p.name: p.read_bytes() for p in other.iterdir()}
    result = run_cli(cli, tmp_path, "--arch", "gru", "--csv", str(other / "results.csv"))
    assert f"that is the run {other.name}'s own file" in one_line_error(result)
    assert list_run_dirs(tmp_path / "results") == [other]  # no empty run left behind
    assert {p.name: p.read_bytes() for p in other.iterdir()} == before


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("a-folder", "is a folder; give a file name"),
        ("a-file/rows.csv", "cannot write it"),
        ("/proc/seqbench/rows.csv", "cannot write it"),
    ],
)
def test_a_csv_that_cannot_be_written_is_one_line_and_no_run_is_left(
    cli, tmp_path, target, message
):
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("")
    path = target if target.startswith("/") else str(tmp_path / target)
    result = run_cli(cli, tmp_path, "--arch", "rnn", "--csv", path)
    assert message in one_line_error(result)
    assert list_run_dirs(tmp_path / "results") == []


def test_a_results_root_that_cannot_be_created_is_one_line(cli, tmp_path):
    (tmp_path / "a-file").write_text("")
    result = cli.invoke(
        app, ["run", "--out", str(tmp_path / "a-file" / "results"), "--arch", "rnn", *SMALL]
    )
    assert "cannot create the results root" in one_line_error(result)


def test_a_results_root_the_system_refuses_is_one_line(cli, tmp_path):
    result = cli.invoke(app, ["run", "--out", "/proc/seqbench-results", "--arch", "rnn", *SMALL])
    assert "--out /proc/seqbench-results: cannot create the results root" in one_line_error(result)


def test_a_full_disk_mid_run_is_one_line_exit_74_and_the_run_resumes(cli, tmp_path, monkeypatch):
    import errno

    import seqbench.storage.run as storage_run

    real_append, real_write, appends = storage_run.append_synced, storage_run.atomic_write, []

    def full() -> OSError:
        return OSError(errno.ENOSPC, "No space left on device")

    def fills_up(path, text):
        appends.append(path)
        if len(appends) > 2:  # one cell (samples, then its row) fits, then the disk is full
            raise full()
        real_append(path, text)

    def writes_if_room(path, data):
        if len(appends) > 2:
            raise full()
        real_write(path, data)

    monkeypatch.setattr(storage_run, "append_synced", fills_up)
    monkeypatch.setattr(storage_run, "atomic_write", writes_if_room)
    root = tmp_path / "my results"  # a space: the hint must still paste into a shell
    args = [
        "run",
        "--out",
        str(root),
        "--arch",
        "rnn,gru",
        "--seq-len",
        "48",
        "--mode",
        "infer",
        *SMALL,
    ]
    result = cli.invoke(app, args)
    line = one_line_error(result, code=74)
    (folder,) = list_run_dirs(root)
    assert "No space left on device" in line
    assert f"resume with: seqbench run --resume '{folder}'" in line
    assert len(load_run(folder).rows) == 1  # the cell saved before the disk filled up
    monkeypatch.setattr(storage_run, "append_synced", real_append)
    monkeypatch.setattr(storage_run, "atomic_write", real_write)
    resumed = cli.invoke(app, ["run", "--out", str(root), "--resume", str(folder)])
    assert resumed.exit_code == 0, resumed.output
    assert [r.status for r in load_run(folder).rows] == ["ok", "ok"]


# ----------------------------------------------------------------- damaged metadata


@pytest.mark.parametrize("key", ["config", "env", "plan"])
def test_a_resume_of_metadata_without_its_config_env_or_plan_is_one_line(cli, tmp_path, key):
    import json

    assert run_cli(cli, tmp_path, "--arch", "rnn", "--seq-len", "48").exit_code == 0
    (folder,) = list_run_dirs(tmp_path / "results")
    meta = json.loads((folder / "meta.json").read_text())
    del meta[key]
    (folder / "meta.json").write_text(json.dumps(meta))
    result = cli.invoke(app, ["run", "--out", str(tmp_path / "results"), "--resume", str(folder)])
    assert f"it lacks {key} (damaged, or edited by hand)" in one_line_error(result)


def test_deeply_nested_metadata_is_a_damaged_run_not_a_crash(cli, tmp_path):
    assert run_cli(cli, tmp_path, "--arch", "rnn", "--seq-len", "48").exit_code == 0
    assert run_cli(cli, tmp_path, "--arch", "gru", "--seq-len", "48").exit_code == 0
    damaged, healthy = list_run_dirs(tmp_path / "results")
    (damaged / "meta.json").write_text("[" * 100_000 + "]" * 100_000)
    listing = cli.invoke(app, ["runs", "--root", str(tmp_path / "results")])
    assert listing.exit_code == 0, listing.output
    assert "damaged" in listing.stdout and healthy.name in listing.stdout
    shown = cli.invoke(app, ["show", str(damaged)])
    assert "metadata is damaged (nested too deeply to read)" in one_line_error(shown)


# ----------------------------------------------------------------- usage mistakes


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--nope"], "error: No such option: --nope"),
        (["run", "--sequence-len", "3"], "error: No such option: --sequence-len (Possible options: --seq-len)"),
        (["compare"], "error: Missing argument 'baseline'. (see root compare --help)"),
        (["nosuch"], "error: No such command 'nosuch'. (see root --help)"),
    ],
)  # fmt: skip
def test_usage_mistakes_are_one_line_and_exit_2(cli, argv, message):
    result = cli.invoke(app, argv)
    assert one_line_error(result).startswith(message)
    assert "╭" not in result.output  # no boxed panel


def test_a_misspelt_architecture_gets_a_suggestion(cli, tmp_path):
    line = one_line_error(run_cli(cli, tmp_path, "--arch", "LSTM"))
    assert line.startswith("error: --arch: unknown architecture 'LSTM'; did you mean 'lstm'?")


# ----------------------------------------------------------------- signals


def workers_of(pid: int) -> list[int]:
    """The seqbench worker processes a process started (not its other children)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found += [int(c) for c in text.split()]
    commands = {
        c: Path(f"/proc/{c}/cmdline").read_bytes() for c in found if Path(f"/proc/{c}").exists()
    }
    return [c for c, command in commands.items() if b"seqbench.execute.worker" in command]


def running(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text().lower()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_kill_9_of_the_parent_takes_its_isolated_worker_with_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    args = [
        "--arch",
        "tests.fault_archs:sleepy",
        "--seq-len",
        "100",
        "--mode",
        "infer",
        "--isolate",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqbench", "run", "--out", str(tmp_path), *args, *SMALL],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    deadline, workers = time.monotonic() + 60, []
    while time.monotonic() < deadline and not workers:
        workers = workers_of(proc.pid)
        time.sleep(0.2)
    assert workers, "the worker never started"
    time.sleep(3)  # into its minute-long step
    assert all(running(w) for w in workers)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(running(w) for w in workers):
        time.sleep(0.1)
    assert [w for w in workers if running(w)] == []


def test_a_hangup_stops_a_run_as_ctrl_c_does(tmp_path):
    # (SIGTERM: tests/test_faults.py)
    proc = start_slow_run(tmp_path)
    folder = wait_for_first_row(tmp_path, proc)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert load_run(folder).meta.state == "interrupted"
    assert f"resume with: seqbench run --resume {folder}" in err
    assert "Traceback" not in err


# ----------------------------------------------------------------- messages that mislead


def test_show_of_a_markdown_export_or_a_suite_file_says_what_it_is(cli, tmp_path):
    assert run_cli(cli, tmp_path, "--arch", "rnn", "--seq-len", "48").exit_code == 0
    markdown = tmp_path / "table.md"
    assert (
        cli.invoke(
            app, ["export", "latest", "--root", str(tmp_path / "results"), "--out", str(markdown)]
        ).exit_code
        == 0
    )
    line = one_line_error(cli.invoke(app, ["show", str(markdown)]))
    assert "a markdown export is for people, and cannot be read back" in line
    suite = ROOT / "benchmarks" / "ci.toml"
    line = one_line_error(cli.invoke(app, ["show", str(suite)]))
    assert line.endswith(
        f"that is a suite file, not a run: measure it with `seqbench run --suite {suite}`"
    )


def test_run_help_names_every_suite(cli):
    from seqbench.plan.suites import suite_names

    help_text = " ".join(cli.invoke(app, ["run", "--help"]).output.split())
    assert {"quick", "seed", "ci", "gpu"} <= set(suite_names())
    assert ", ".join(suite_names()) in help_text


def test_frontier_takes_threads(cli, tmp_path):
    result = cli.invoke(
        app,
        ["frontier", "--arch", "rnn", "--device", "cpu", "--mem-limit", "1MB", "--start", "256",
         "--batch-size", "2", "--hidden", "4", "--threads", "1", "--no-isolate", "--tolerance",
         "0.5", "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = load_run("latest", tmp_path)
    assert run.meta.env["threads"] == 1 and {r.threads for r in run.rows} == {1}


@pytest.mark.parametrize("script", sorted((ROOT / "benchmarks").glob("*.py")), ids=lambda p: p.name)
def test_every_benchmark_script_answers_help_without_running(script):
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:")


def test_a_device_is_written_to_never_replaced(cli, tmp_path):
    """Through links in the test's own folder, so a regression replaces a link, not /dev."""
    assert run_cli(cli, tmp_path, "--arch", "rnn", "--seq-len", "48").exit_code == 0
    run = list_run_dirs(tmp_path / "results")[0]
    null, full = tmp_path / "null.csv", tmp_path / "full.csv"
    null.symlink_to("/dev/null")
    full.symlink_to("/dev/full")
    written = cli.invoke(app, ["export", str(run), "--out", str(null)])
    assert written.exit_code == 0, written.output
    assert null.is_symlink() and Path("/dev/null").is_char_device()
    assert not list(tmp_path.glob("null.*.*")) and not Path("/dev/null.meta.json").exists()
    assert "No space left on device" in one_line_error(
        cli.invoke(app, ["export", str(run), "--out", str(full)])
    )
    assert full.is_symlink() and Path("/dev/full").is_char_device()
    refused = run_cli(cli, tmp_path, "--arch", "gru", "--csv", str(null))
    assert "not a regular file" in one_line_error(refused)


def test_an_export_through_a_link_keeps_the_link(cli, tmp_path):
    assert run_cli(cli, tmp_path, "--arch", "rnn", "--seq-len", "48").exit_code == 0
    run = list_run_dirs(tmp_path / "results")[0]
    (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
    assert cli.invoke(app, ["export", str(run), "--out", str(tmp_path / "link.csv")]).exit_code == 0
    assert (tmp_path / "link.csv").is_symlink()
    assert load_run(tmp_path / "link.csv").rows == load_run(run).rows


def test_ctrl_c_before_anything_is_measured_is_one_word(cli, tmp_path, monkeypatch):
    from seqbench.execute import session

    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "make_plan", interrupted)
    result = run_cli(cli, tmp_path, "--arch", "rnn")
    assert result.exit_code == 130
    assert result.stderr.strip() == "interrupted" and "Traceback" not in result.output


def test_help_piped_into_a_reader_that_stops_early_is_no_traceback():
    """`seqbench run --help | head -1`: the reader closes the pipe while help is printed."""
    done = subprocess.run(
        f"{shlex.quote(sys.executable)} -m seqbench run --help | head -1",
        shell=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr


def test_an_interrupt_swallowed_by_a_finaliser_still_stops_the_run_at_the_next_cell():
    """Python prints and drops a KeyboardInterrupt raised inside __del__ (garbage collection
    runs after every cell): the signal is remembered, and the check between cells raises."""
    import contextlib

    from seqbench.cli.common import sigterm_as_interrupt

    before = signal.getsignal(signal.SIGINT)
    with sigterm_as_interrupt() as stopped:
        stopped()  # nothing received: no effect
        with contextlib.suppress(KeyboardInterrupt):  # as the interpreter does in a finaliser
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        with pytest.raises(KeyboardInterrupt):
            stopped()
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("command", [["runs"], ["show", "latest"], ["history"]])
def test_a_results_root_that_is_a_file_is_one_line(cli, tmp_path, command):
    afile = tmp_path / "results"
    afile.write_text("not a folder")
    result = cli.invoke(app, [*command, "--root", str(afile)])
    assert one_line_error(result) == (
        f"error: {afile}: not a folder (the results root holds run folders)"
    )
