"""Files that cannot be read or written, and two writers of one `--csv` copy, each tried for
real: a reader that mode 000 stops, a disk that fills at a chosen write, a second process."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import seqbench.storage.run as storage_run
from seqbench.cli import app
from seqbench.storage import create_run, list_run_dirs, load_run
from tests.helpers import SMALL_FLAGS as SMALL
from tests.helpers import power_rows, save_run, wait_for_rows

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    "COLUMNS": "400",  # long temporary paths stay on one line
}

# Runs what follows it on the command line as a process that mode 000 stops. Root reads any
# file by two capabilities; dropped from the bounding set, the interpreter exec'd next does
# not get them (another user needs nothing dropped). Exits 99 where they cannot be dropped.
UNPRIVILEGED = """
import ctypes, os, sys
if os.geteuid() == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            sys.exit(99)
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    """Runs `seqbench ARGS` as a reader that mode 000 stops (skips where there is none)."""
    secret = tmp_path_factory.mktemp("probe") / "secret"
    secret.write_text("x")
    secret.chmod(0)
    probe = subprocess.run(
        [sys.executable, "-c", UNPRIVILEGED, "-c", f"open({str(secret)!r})"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if "PermissionError" not in probe.stderr:
        pytest.skip(
            "no reader here that a mode 000 file stops (root that cannot drop its override)"
        )

    def read(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", UNPRIVILEGED, "-m", "seqbench", *args],
            capture_output=True, text=True, env=ENV, timeout=120,
        )  # fmt: skip

    return read


@pytest.fixture
def three_runs(tmp_path):
    """Runs a, b and c under one root, b's folder and a's samples.csv mode 000."""
    root = tmp_path / "results"
    runs = [save_run(root, power_rows("lstm", [16, 32], 1.0), label=x).path for x in "abc"]
    runs[1].chmod(0)
    (runs[0] / "samples.csv").chmod(0)
    yield root, runs
    runs[1].chmod(0o755)
    (runs[0] / "samples.csv").chmod(0o644)


def test_runs_and_history_list_unreadable_runs_as_damaged_and_go_on(reader, three_runs):
    root, (a, b, c) = three_runs
    listed = reader("runs", "--root", str(root))
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    assert c.name in listed.stdout
    assert f"{b}: cannot read the run folder (Permission denied)" in listed.stdout
    assert f"{a}/samples.csv: cannot read samples (Permission denied)" in listed.stdout
    assert listed.stdout.count("damaged") == 2

    history = reader("history", "--root", str(root))
    assert history.returncode == 0, history.stderr
    assert "history of 2 cell(s) over 1 runs" in history.stdout
    assert f"skipped {b.name}: {b}: cannot read the run folder (Permission denied)\n" in (
        history.stderr
    )
    assert f"skipped {a.name}: {a}/samples.csv: cannot read samples (Permission denied)\n" in (
        history.stderr
    )


@pytest.mark.parametrize(
    ("unreadable", "message"),
    [
        ("", "{run}: cannot read the run folder (Permission denied)"),
        ("meta.json", "{run}/meta.json: cannot read metadata (Permission denied)"),
    ],
)
def test_show_of_an_unreadable_run_is_one_line(reader, tmp_path, unreadable, message):
    run = save_run(tmp_path, power_rows("lstm", [16, 32], 1.0)).path
    (run / unreadable).chmod(0)
    try:
        shown = reader("show", str(run))
    finally:
        (run / unreadable).chmod(0o755 if not unreadable else 0o644)
    assert (shown.returncode, shown.stderr) == (2, f"error: {message.format(run=run)}\n")


# ----------------------------------------------------------------- a disk that fills


def no_space() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def one_line_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def small_run(cli, root: Path, *args: str):
    return cli.invoke(
        app, ["run", "--out", str(root), "--arch", "rnn,gru", "--seq-len", "48", "--mode",
              "infer", *SMALL, *args],
    )  # fmt: skip


def test_a_disk_that_fills_during_the_final_rewrite_of_rounds_is_74(cli, tmp_path, monkeypatch):
    """Two rounds leave two rows per cell, tidied into one when the run finishes: a rewrite
    that needs room for a second copy of the files. Here that room is gone (meta.json, small,
    still fits)."""
    real_finish, real_write, finishing = storage_run.Run.finish, storage_run.atomic_write, []

    def finish(run, state):
        finishing.append(state)
        return real_finish(run, state)

    def write(path, data):
        if finishing and Path(path).name in ("results.csv", "samples.csv"):
            raise no_space()
        real_write(path, data)

    monkeypatch.setattr(storage_run.Run, "finish", finish)
    monkeypatch.setattr(storage_run, "atomic_write", write)
    root = tmp_path / "results"
    line = one_line_error(small_run(cli, root, "--rounds", "2"), 74)
    (folder,) = list_run_dirs(root)
    assert line == (
        f"error: cannot save the results in {folder} (No space left on device); the cells "
        f"finished before are kept there: make room and resume with: seqbench run --resume {folder}"
    )
    saved = load_run(folder)
    assert saved.meta.state == "interrupted"
    assert [(r.status, r.rounds) for r in saved.rows] == [("ok", 2), ("ok", 2)]

    monkeypatch.undo()
    resumed = cli.invoke(app, ["run", "--out", str(root), "--resume", str(folder)])
    assert resumed.exit_code == 0, resumed.output
    assert load_run(folder).meta.state == "complete"
    assert len((folder / "results.csv").read_text().splitlines()) == 3  # tidied: a row a cell


def test_a_full_disk_under_the_csv_copy_names_the_copy(cli, tmp_path, monkeypatch):
    copies = tmp_path / "copies"
    csv = copies / "out.csv"
    real_append = storage_run.append_synced

    def append(path, text):
        if Path(path).parent == copies:
            raise no_space()
        real_append(path, text)

    monkeypatch.setattr(storage_run, "append_synced", append)
    root = tmp_path / "results"
    line = one_line_error(small_run(cli, root, "--csv", str(csv)), 74)
    (folder,) = list_run_dirs(root)
    assert line == (
        f"error: cannot write the rows to --csv {csv} (No space left on device); the cells "
        f"finished before are kept in {folder}: make room and resume with: seqbench run "
        f"--resume {folder} --csv {csv}"
    )
    assert len(load_run(folder).rows) == 1  # the results folder had room for the first cell

    monkeypatch.undo()
    resumed = cli.invoke(app, ["run", "--resume", str(folder), "--csv", str(csv)])
    assert resumed.exit_code == 0, resumed.output
    assert load_run(csv).rows == load_run(folder).rows and len(load_run(csv).rows) == 2


@pytest.mark.parametrize("full", ["results", "copies"])
def test_a_full_disk_before_any_cell_is_74_and_leaves_no_run(cli, tmp_path, monkeypatch, full):
    real_write = storage_run.atomic_write

    def write(path, data):
        if (tmp_path / full) in Path(path).parents:
            raise no_space()
        real_write(path, data)

    monkeypatch.setattr(storage_run, "atomic_write", write)
    root, csv = tmp_path / "results", tmp_path / "copies" / "out.csv"
    line = one_line_error(small_run(cli, root, "--csv", str(csv)), 74)
    where = root if full == "results" else f"--csv {csv}"
    assert (
        line
        == f"error: cannot save the results in {where} (No space left on device); nothing was measured"
    )
    assert list_run_dirs(root) == []
    assert list(csv.parent.iterdir()) == []  # no copy, and no lock file left beside it


# ----------------------------------------------------------------- two writers, one --csv


def test_two_runs_cannot_write_one_csv_and_replacing_a_copy_is_said(cli, tmp_path):
    csv = tmp_path / "out.csv"
    args = ["--arch", "tests.fault_archs:sleepy", "--seq-len", "64,100", "--mode", "infer"]
    first = subprocess.Popen(  # its second cell sleeps a minute, holding the run and the copy
        [sys.executable, "-m", "seqbench", "run", "--out", str(tmp_path / "a"), *args, *SMALL,
         "--csv", str(csv)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    try:
        folder = wait_for_rows(tmp_path / "a", 1, first, limit=120)
        while len(csv.read_text().splitlines()) < 2:  # the copy gets the row just after
            assert first.poll() is None, first.communicate()
            time.sleep(0.05)
        before = csv.read_bytes()
        refused = small_run(cli, tmp_path / "b", "--csv", str(csv))
        line = one_line_error(refused, 2)
        assert line.startswith(
            f"error: --csv {csv}: another seqbench is writing it (pid {first.pid} on "
        )
        assert line.endswith("; wait for it to finish, or choose another file")
        assert csv.read_bytes() == before
        assert list_run_dirs(tmp_path / "b") == []  # nothing left by the refusal
    finally:
        first.kill()
        first.communicate()

    # One after the other: the second replaces the first's copy, and says so.
    second = small_run(cli, tmp_path / "b", "--csv", str(csv))
    assert second.exit_code == 0, second.output
    assert f"warning: --csv {csv} holds the rows of run {folder.name}; this run replaces them" in (
        second.stderr
    )
    (mine,) = list_run_dirs(tmp_path / "b")
    copy = load_run(csv)
    assert copy.meta.run_id == mine.name and copy.rows == load_run(mine).rows
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "out.csv", "out.meta.json", "out.samples.csv",
    ]  # fmt: skip


def test_a_resume_cannot_take_a_csv_another_run_is_writing(cli, tmp_path):
    csv = tmp_path / "out.csv"
    assert small_run(cli, tmp_path / "results").exit_code == 0
    (folder,) = list_run_dirs(tmp_path / "results")
    holder = create_run(tmp_path / "other", label="x", config={}, env={}, plan=[], extra_csv=csv)
    try:
        refused = cli.invoke(app, ["run", "--resume", str(folder), "--csv", str(csv)])
        line = one_line_error(refused, 2)
        assert f"--csv {csv}: another seqbench is writing it (pid {os.getpid()} on " in line
    finally:
        holder.close()
    again = cli.invoke(app, ["run", "--resume", str(folder), "--csv", str(csv)])
    assert again.exit_code == 0, again.output
    assert load_run(csv).meta.run_id == folder.name
