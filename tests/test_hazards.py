"""What a careless user, a hostile file or the user's own code can do to a run, each tried
for real: every case ends in one line and a documented exit code, with nothing measured lost."""

from __future__ import annotations

import pytest

from seqbench.cli import app
from seqbench.storage import list_run_dirs, load_run
from tests.helpers import FAST_FLAGS

SMALL = ["--batch-size", "2", "--hidden", "4", "--embed", "4", "--vocab", "20", *FAST_FLAGS]


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


# ----------------------------------------------------------------- the user's own code


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("crashes_on_build", "importing or building it killed the process (SIGSEGV)"),
        ("exits_on_build", "the factory failed: SystemExit: 0"),
    ],
)
def test_a_factory_that_crashes_or_exits_while_built_is_one_line(cli, tmp_path, arch, message):
    result = run_cli(cli, tmp_path, "--arch", f"tests.fault_archs:{arch}")
    assert one_line_error(result) == f"error: --arch: tests.fault_archs:{arch}: {message}"
    assert list_run_dirs(tmp_path / "results") == []


def test_a_factory_that_hangs_while_built_is_stopped(cli, tmp_path, monkeypatch):
    from seqbench.models import custom

    monkeypatch.setattr(custom, "PROBE_TIMEOUT_S", 8.0)
    custom.probe_factory.cache_clear()
    result = run_cli(cli, tmp_path, "--arch", "tests.fault_archs:hangs_on_build")
    assert one_line_error(result) == (
        "error: --arch: tests.fault_archs:hangs_on_build: importing and building it took over "
        "8 s (does its module wait for something?)"
    )


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
    assert run.meta["state"] == "complete"
    got = {r.seq_len: (r.status, r.message) for r in run.rows}
    assert got[64][0] == "ok"
    assert got[100] == got[120] == ("error", "the model called sys.exit(3)")
