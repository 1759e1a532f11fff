"""A long run never loses what it measured: each fault is provoked for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqbench.cli import app
from seqbench.execute import isolated
from seqbench.measure.limits import is_out_of_memory
from seqbench.storage import META_FILE, ROWS_FILE, list_run_dirs, load_run
from tests.helpers import SMALL_FLAGS as SMALL
from tests.helpers import wait_for_rows

ROOT = Path(__file__).resolve().parents[1]


def fault_run(cli, tmp_path, arch, *args):
    return cli.invoke(
        app,
        [
            "run",
            "--out",
            str(tmp_path),
            "--arch",
            f"tests.fault_archs:{arch}",
            "--mode",
            "infer",
            *SMALL,
            *args,
        ],
    )


def statuses(tmp_path) -> dict[int, tuple[str, str]]:
    run = load_run("latest", tmp_path)
    return {r.seq_len: (r.status, r.message) for r in run.rows}


# ------------------------------------------------------------------ out of memory


def test_an_oom_cell_is_recorded_and_larger_cells_are_skipped(cli, tmp_path):
    result = fault_run(cli, tmp_path, "oom", "--seq-len", "64,100,200,400")
    assert result.exit_code == 0, result.output
    got = statuses(tmp_path)
    assert got[64][0] == "ok"
    assert got[100] == (
        "oom",
        "OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB (test architecture)",
    )
    skipped = "larger than an OOM cell (tests.fault_archs:oom-T100-B2-H4-L1-uni-do0-rd0-V20-E4-cpu-float32-infer)"
    assert got[200] == got[400] == ("skipped", skipped)
    assert "1 ok, 2 skipped, 1 oom" in result.stderr


def test_no_skip_larger_tries_every_cell(cli, tmp_path):
    result = fault_run(cli, tmp_path, "oom", "--seq-len", "100,200", "--no-skip-larger")
    assert result.exit_code == 0, result.output
    assert [s for s, _ in statuses(tmp_path).values()] == ["oom", "oom"]


def test_host_memory_exhaustion_is_an_oom_too(cli, tmp_path):
    result = fault_run(cli, tmp_path, "host_oom", "--seq-len", "64,100")
    assert result.exit_code == 0, result.output
    status, message = statuses(tmp_path)[100]
    assert status == "oom" and "can't allocate memory" in message


def test_out_of_memory_is_recognised_by_type_and_by_the_allocators_message():
    import torch

    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes")
    )
    assert not is_out_of_memory(RuntimeError("size mismatch"))


# ------------------------------------------------------------------ errors and timeouts


def test_a_failing_cell_is_one_row_and_the_run_goes_on(cli, tmp_path):
    result = fault_run(cli, tmp_path, "broken", "--seq-len", "64,100")
    assert result.exit_code == 1
    got = statuses(tmp_path)
    assert got[64][0] == "ok"
    assert got[100] == ("error", "ValueError: shapes do not line up")


def test_a_cell_past_its_timeout_is_recorded_and_the_run_goes_on(cli, tmp_path):
    started = time.monotonic()
    result = fault_run(cli, tmp_path, "sleepy", "--seq-len", "64,100", "--cell-timeout", "1")
    assert time.monotonic() - started < 30  # not the minute the cell wanted
    assert result.exit_code == 0, result.output
    got = statuses(tmp_path)
    assert got[64][0] == "ok"
    assert got[100] == ("timeout", "the cell ran past its 1 s limit")


# ------------------------------------------------------------------ isolation


def test_isolation_survives_a_segfault_and_measures_host_memory(cli, tmp_path):
    result = fault_run(cli, tmp_path, "crash", "--seq-len", "64,100", "--isolate")
    assert result.exit_code == 1
    run = load_run("latest", tmp_path)
    rows = {r.seq_len: r for r in run.rows}
    assert rows[64].status == "ok" and rows[64].peak_rss_bytes > 0
    assert rows[100].status == "error"
    assert rows[100].message.startswith("the cell's process died (SIGSEGV)")
    assert run.meta.env["isolated"] is True
    assert run.meta.config["isolate"] is True


def test_an_isolated_cell_that_ignores_its_alarm_is_killed(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(isolated, "STARTUP_GRACE_S", 3.0)
    monkeypatch.setenv("FAULT_ARCHS_DEAF_BESIDES", str(os.getpid()))  # the worker: deaf
    result = fault_run(
        cli, tmp_path, "stubborn", "--seq-len", "100", "--isolate", "--cell-timeout", "1"
    )
    assert result.exit_code == 0, result.output
    status, message = statuses(tmp_path)[100]
    assert status == "timeout" and "killed after 4 s" in message


def test_isolated_and_in_process_cells_agree_on_what_they_count(cli, tmp_path):
    args = ["--arch", "gru", "--seq-len", "48", "--mode", "train", *SMALL]
    assert cli.invoke(app, ["run", "--out", str(tmp_path / "a"), *args]).exit_code == 0
    assert cli.invoke(app, ["run", "--out", str(tmp_path / "b"), "--isolate", *args]).exit_code == 0
    (a,), (b,) = load_run("latest", tmp_path / "a").rows, load_run("latest", tmp_path / "b").rows
    assert (a.params, a.core_params, a.flops_per_seq, a.kernel) == (
        b.params,
        b.core_params,
        b.flops_per_seq,
        b.kernel,
    )
    assert a.peak_rss_bytes is None and b.peak_rss_bytes > 0


# ------------------------------------------------------------------ signals and resume

CLI_ARGS = [
    "--arch", "rnn,gru", "--seq-len", "48,96", "--mode", "infer,train",
    "--batch-size", "4", "--hidden", "8", "--embed", "8", "--vocab", "50",
    "--min-time", "0.25", "--warmup-time", "0", "--no-ceiling", "--processes", "1",
]  # fmt: skip


def start_run(tmp_path: Path) -> subprocess.Popen:
    # This checkout's source first: an installed seqbench may be another checkout's.
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "seqbench", "run", "--out", str(tmp_path), *CLI_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_ctrl_c_saves_every_finished_cell_and_says_how_to_resume(tmp_path, cli):
    proc = start_run(tmp_path)
    folder = wait_for_rows(tmp_path, 2, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # stderr says what the run did instead
    run = load_run(folder)
    assert 2 <= len(run.rows) < 8
    assert all(r.status == "ok" for r in run.rows)
    assert set(run.samples) == {r.cell_id for r in run.rows}
    assert run.meta.state == "interrupted"
    assert f"cells are saved in {folder}" in err
    assert f"resume with: seqbench run --resume {folder}" in err
    assert "Traceback" not in err

    resumed = cli.invoke(app, ["run", "--out", str(tmp_path), "--resume", str(folder)])
    assert resumed.exit_code == 0, resumed.output
    final = load_run(folder)
    assert len(final.rows) == 8 and final.meta.state == "complete"
    assert [r.cell_id for r in final.rows[: len(run.rows)]] == [
        r.cell_id for r in run.rows
    ]  # kept, not redone


def test_kill_9_leaves_intact_files_and_resume_finishes_like_a_clean_run(tmp_path, cli):
    proc = start_run(tmp_path / "killed")
    folder = wait_for_rows(tmp_path / "killed", 3, proc)
    proc.kill()
    proc.communicate(timeout=60)
    saved = load_run(folder)  # every file parses: nothing half-written
    assert saved.meta.state == "running"
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # no stray temporary files
    # The dead writer's lock file stays, but the kernel released its lock: the resume may write.

    resumed = cli.invoke(app, ["run", "--out", str(tmp_path / "killed"), "--resume", folder.name])
    assert resumed.exit_code == 0, resumed.output
    clean = cli.invoke(app, ["run", "--out", str(tmp_path / "clean"), *CLI_ARGS, "--min-time", "0"])
    assert clean.exit_code == 0, clean.output
    finished = load_run(folder).rows
    reference = load_run("latest", tmp_path / "clean").rows
    assert sorted(r.cell for r in finished) == sorted(r.cell for r in reference)
    assert len(load_run(folder).meta.resumed_at) == 1


def test_sigterm_stops_a_run_like_ctrl_c(tmp_path):
    proc = start_run(tmp_path)
    folder = wait_for_rows(tmp_path, 1, proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert load_run(folder).meta.state == "interrupted"


SHIM = """
from seqbench.cli import main
from seqbench.cli.app import OneLineErrors

def invoke(self, ctx, original=OneLineErrors.invoke):
    try:
        return original(self, ctx)
    finally:  # a KeyboardInterrupt leaves an exec of source text, and is handled
        try:
            exec("raise KeyboardInterrupt")
        except KeyboardInterrupt:
            pass

OneLineErrors.invoke = invoke
main()
"""


@pytest.mark.parametrize(("command", "code"), [("runs", 0), ("show", 2)])
def test_an_interrupt_handled_inside_an_exec_leaves_the_exit_code_alone(tmp_path, command, code):
    # CPython ends a `python -m` process by SIGINT at exit once a KeyboardInterrupt has left
    # an exec of source text, however it was handled after: a SIGTERM that landed while a
    # lazy import made a dataclass turned the run's 130 into -2 (about one run in ten).
    (tmp_path / "interrupted_in_exec.py").write_text(SHIM)
    args = ["runs"] if command == "runs" else ["show", "nope"]
    proc = subprocess.run(
        [sys.executable, "-m", "interrupted_in_exec", *args, "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "src")])},
        timeout=120,
    )
    assert proc.returncode == code, proc.stderr


def make_partial_run(cli, tmp_path) -> Path:
    args = [
        "run",
        "--out",
        str(tmp_path),
        "--arch",
        "rnn,gru",
        "--seq-len",
        "48",
        "--mode",
        "infer",
        *SMALL,
    ]
    assert cli.invoke(app, args).exit_code == 0
    (folder,) = list_run_dirs(tmp_path)
    # Forget the last cell, as if the run had been killed before it.
    lines = (folder / ROWS_FILE).read_text().splitlines()
    (folder / ROWS_FILE).write_text("\n".join(lines[:-1]) + "\n")
    return folder


def test_a_long_plan_is_stored_as_its_size_and_digest_and_still_resumes(cli, tmp_path, monkeypatch):
    # Past PLAN_INLINE_MAX cell ids, meta.json holds the plan's size and the SHA-256 of its
    # ids (a million ids made it 60 MB); a loaded run reads its rows in file order, and a
    # resume plans the remaining cells from the configuration.
    import hashlib
    import json

    from seqbench.storage import meta as meta_module

    monkeypatch.setattr(meta_module, "PLAN_INLINE_MAX", 1)
    folder = make_partial_run(cli, tmp_path)
    stored = json.loads((folder / "meta.json").read_text())["plan"]
    ids = [r.cell_id for r in load_run(folder).rows]
    assert len(ids) == 1 and stored["cells"] == 2
    resumed = cli.invoke(app, ["run", "--out", str(tmp_path), "--resume", str(folder)])
    assert resumed.exit_code == 0, resumed.output
    final = load_run(folder)
    assert [r.cell.arch for r in final.rows] == ["rnn", "gru"] and final.meta.state == "complete"
    plan = "\n".join(r.cell_id for r in final.rows)
    expected = {"cells": 2, "sha256": hashlib.sha256(plan.encode()).hexdigest()}
    assert json.loads((folder / "meta.json").read_text())["plan"] == stored == expected
    assert final.meta.plan == [] and final.meta.plan_stored == expected and not final.meta.missing
    monkeypatch.setattr(meta_module, "PLAN_INLINE_MAX", 10_000)  # a short plan: ids, as before
    again = cli.invoke(app, ["run", "--out", str(tmp_path / "short"), "--arch", "rnn",
                             "--seq-len", "48", "--mode", "infer", *SMALL])  # fmt: skip
    assert again.exit_code == 0, again.output
    short = json.loads(next((tmp_path / "short").glob("*/meta.json")).read_text())["plan"]
    assert short == [load_run("latest", tmp_path / "short").rows[0].cell_id]


def test_a_plan_made_as_it_runs_is_saved_as_its_size_and_resumes(cli, tmp_path, monkeypatch):
    # A long one-matrix plan (LongPlan) is never listed: the run stores its size and digest
    # from the start, its rows come in plan order, and a resume of it (after the last row
    # was lost) measures what is missing and finishes with the plan's cells in order.
    import json

    from seqbench.plan import cells as cells_module

    monkeypatch.setattr(cells_module, "LONG_PLAN", 2)
    args = ["run", "--out", str(tmp_path), "--arch", "rnn,gru", "--seq-len", "48,32",
            "--mode", "infer", *SMALL]  # fmt: skip
    assert cli.invoke(app, args).exit_code == 0
    (folder,) = list_run_dirs(tmp_path)
    stored = json.loads((folder / "meta.json").read_text())["plan"]
    assert stored["cells"] == 4 and len(stored["sha256"]) == 64
    order = [(r.cell.arch, r.cell.seq_len) for r in load_run(folder).rows]
    assert order == [("rnn", 32), ("rnn", 48), ("gru", 32), ("gru", 48)]
    lines = (folder / ROWS_FILE).read_text().splitlines()
    (folder / ROWS_FILE).write_text("\n".join(lines[:-1]) + "\n")
    resumed = cli.invoke(app, ["run", "--out", str(tmp_path), "--resume", str(folder)])
    assert resumed.exit_code == 0, resumed.output
    final = load_run(folder)
    assert [(r.cell.arch, r.cell.seq_len) for r in final.rows] == order
    assert final.meta.state == "complete" and final.meta.plan_size == 4
    assert json.loads((folder / "meta.json").read_text())["plan"] == stored


def test_resume_refuses_a_different_configuration(cli, tmp_path):
    folder = make_partial_run(cli, tmp_path)
    result = cli.invoke(
        app, ["run", "--out", str(tmp_path), "--resume", str(folder), "--seq-len", "99"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: cannot resume {folder.name}: the configuration differs (seq_len)"
    )
    same = cli.invoke(app, ["run", "--out", str(tmp_path), "--resume", "latest", "--seq-len", "48"])
    assert same.exit_code == 0, same.output  # repeating the run's own values is fine
    assert len(load_run(folder).rows) == 2


def test_resume_refuses_a_different_environment(cli, tmp_path):
    folder = make_partial_run(cli, tmp_path)
    meta = json.loads((folder / META_FILE).read_text())
    meta["env"]["torch"] = "1.0.0"
    meta["env"]["flush_denormal"] = False
    (folder / META_FILE).write_text(json.dumps(meta))
    result = cli.invoke(app, ["run", "--out", str(tmp_path), "--resume", str(folder)])
    assert result.exit_code == 2
    assert "the environment differs (torch, flush_denormal)" in result.stderr
    assert len(load_run(folder).rows) == 1  # nothing was touched


def test_a_resume_measures_with_the_threads_the_run_began_with(cli, tmp_path):
    folder = make_partial_run(cli, tmp_path)
    threads = load_run(folder).meta.env["threads"]
    result = cli.invoke(app, ["run", "--out", str(tmp_path), "--resume", str(folder)])
    assert result.exit_code == 0, result.output
    assert [r.threads for r in load_run(folder).rows] == [threads, threads]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nowhere", "nowhere: no such run or results file"),
        ("rows.csv", "--resume needs a run folder"),
        ("empty", "not a seqbench run folder"),
    ],
)
def test_resume_of_something_that_is_not_a_run_is_one_line(cli, tmp_path, target, message):
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    (tmp_path / "empty").mkdir()
    result = cli.invoke(app, ["run", "--out", str(tmp_path), "--resume", str(tmp_path / target)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


# ------------------------------------------------------------------ users' factories


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("tests.nowhere:f", "cannot import 'tests.nowhere': ModuleNotFoundError"),
        ("tests.fault_archs:missing", "module 'tests.fault_archs' has no attribute 'missing'"),
        ("tests.fault_archs:FAULT_FROM", "'FAULT_FROM' is not callable"),
        ("tests.fault_archs:not_a_module", "the factory returned str, not a torch.nn.Module"),
        ("tests.fault_archs:fails_to_build", "RuntimeError: cannot build"),
    ],
)
def test_a_broken_user_architecture_is_one_line(cli, tmp_path, arch, message):
    result = cli.invoke(app, ["run", "--out", str(tmp_path), "--arch", arch])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {arch}: " if ":" in arch else "error: --arch: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
