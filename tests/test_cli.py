from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch

from seqbench import __version__
from seqbench.cli import app
from seqbench.storage import list_run_dirs, load_run
from tests.helpers import FAST_FLAGS

TINY = [
    "--seq-len",
    "48",
    "--batch-size",
    "2",
    "--hidden",
    "4",
    "--embed",
    "4",
    "--vocab",
    "20",
    *FAST_FLAGS,
]


def run_cli(cli, tmp_path, *args):
    return cli.invoke(app, ["run", "--out", str(tmp_path / "results"), *TINY, *args])


def test_run_measures_saves_and_shows_every_cell(cli, tmp_path):
    result = run_cli(cli, tmp_path, "--arch", "rnn,lstm,gru,conv1d")
    assert result.exit_code == 0, result.output
    for arch in ("rnn", "lstm", "gru", "conv1d"):
        assert arch in result.stdout
    assert "4.00×" in result.stdout and "3.00×" in result.stdout  # core params against the RNN
    (run_dir,) = list_run_dirs(tmp_path / "results")
    run = load_run(run_dir)
    assert len(run.rows) == 8 and all(r.status == "ok" for r in run.rows)
    assert set(run.samples) == {r.cell_id for r in run.rows}
    assert run.meta.state == "complete"
    env = run.meta.env
    for key in (
        "seqbench",
        "torch",
        "cuda",
        "cudnn",
        "cpu",
        "threads",
        "flush_denormal",
        "host",
        "time",
        "git_commit",
    ):
        assert key in env
    assert env["flush_denormal"] is True
    assert f"saved 8 cells (8 ok) to {run_dir}" in result.stderr


def test_run_with_csv_writes_the_rows_there_too(cli, tmp_path):
    target = tmp_path / "rows.csv"
    result = run_cli(cli, tmp_path, "--arch", "gru", "--mode", "train", "--csv", str(target))
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(target)
    assert list(frame["arch"]) == ["gru"] and list(frame["status"]) == ["ok"]
    assert (tmp_path / "rows.samples.csv").exists()


def test_no_flush_denormal_is_recorded(cli, tmp_path):
    result = run_cli(
        cli, tmp_path, "--arch", "rnn", "--mode", "infer", "--no-flush-denormal", "--threads", "1"
    )
    assert result.exit_code == 0, result.output
    env = load_run("latest", tmp_path / "results").meta.env
    assert env["flush_denormal"] is False and env["threads"] == 1


def test_recurrent_dropout_rows_say_the_loop_ran(cli, tmp_path):
    result = run_cli(cli, tmp_path, "--arch", "lstm", "--recurrent-dropout", "0.2")
    assert result.exit_code == 0, result.output
    rows = {r.mode: r for r in load_run("latest", tmp_path / "results").rows}
    assert rows["train"].kernel == "python-loop"
    assert "recurrent dropout" in rows["train"].kernel_note
    assert rows["infer"].kernel != "python-loop"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--arch", "lstm,transformr"],
            "error: --arch: unknown architecture 'transformr'; did you mean 'transformer'? choose from: rnn, lstm, gru, conv1d",
        ),
        (["--seq-len", "0"], "error: --seq-len: expected a positive integer below 2**31, got 0"),
        (
            ["--batch-size", "-3"],
            "error: --batch-size: expected a positive integer below 2**31, got -3",
        ),
        (["--dropout", "1.5"], "error: --dropout: expected a number in [0, 1), got 1.5"),
        (["--min-time", "-1"], "error: --min-time: expected a number of seconds >= 0, got -1.0"),
        (["--threads", "0"], "error: --threads: expected a positive integer, got 0"),
        (["--suite", "missing.toml"], "error: missing.toml: no such suite file"),
        (["--suite", "nosuchsuite"], "error: suite 'nosuchsuite' not found; known suites:"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(cli, tmp_path, args, message):
    result = run_cli(cli, tmp_path, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
    assert not (tmp_path / "results").exists()  # nothing was started


def test_an_unreadable_suite_file_is_one_line(cli, tmp_path):
    suite = tmp_path / "bad.toml"
    suite.write_text("[matrix]\nseq_len = [64\n")
    result = cli.invoke(app, ["run", "--suite", str(suite)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {suite}: not valid TOML")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_one_skips_those_cells_and_says_so(cli, tmp_path):
    result = run_cli(cli, tmp_path, "--arch", "rnn", "--device", "cpu,cuda", "--mode", "infer")
    assert result.exit_code == 1
    assert "warning: cuda is not available here" in result.stderr
    assert "skipping its 1 cell" in result.stderr
    rows = {r.device: r for r in load_run("latest", tmp_path / "results").rows}
    assert rows["cpu"].status == "ok"
    assert rows["cuda"].status == "skipped" and "not available" in rows["cuda"].message


def test_archs_lists_the_formulas(cli):
    result = cli.invoke(app, ["archs"])
    assert result.exit_code == 0
    for text in ("rnn", "lstm", "gru", "conv1d", "4·H·(I+H) + 2·4·H", "(4.00× rnn)", "(3.00× rnn)"):
        assert text in result.stdout


def test_archs_lists_every_registered_architecture_with_its_example_size(cli):
    result = cli.invoke(app, ["archs"])
    assert result.exit_code == 0
    for text in ("transformer-causal", "tcn", "mingru", "minlstm", "lstm-weightdrop"):
        assert text in result.stdout
    assert "(1.00× rnn)" in result.stdout.split("mingru")[1].splitlines()[0]  # 2·H·(I+1) = 2,112


def test_version(cli):
    result = cli.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"seqbench {__version__}"


def test_the_console_script_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "seqbench", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert done.stdout.startswith("seqbench ")


def test_every_command_and_option_has_help(cli):
    import typer

    group = typer.main.get_command(app)
    assert list(group.commands) == [
        "run", "compare", "ab", "runs", "show", "export", "plot", "curves", "report", "history",
        "env", "check", "gradflow", "frontier", "archs", "tasks",
    ]  # fmt: skip
    for name, command in group.commands.items():
        assert command.help and command.help.strip(), name
        undocumented = [
            p.name for p in command.params if not (getattr(p, "help", "") or "").strip()
        ]
        assert undocumented == [], name
        result = cli.invoke(app, [name, "--help"])
        assert result.exit_code == 0, name
        assert f"Usage: root {name} " in result.output  # CliRunner names the program "root"


def test_rounds_pass_over_the_matrix_and_pool_samples(cli, tmp_path):
    result = run_cli(
        cli,
        tmp_path,
        "--arch",
        "rnn,gru",
        "--mode",
        "infer",
        "--rounds",
        "3",
        "--min-repeats",
        "6",
        "--max-repeats",
        "6",
    )
    assert result.exit_code == 0, result.output
    run = load_run("latest", tmp_path / "results")
    assert [r.rounds for r in run.rows] == [3, 3]
    assert [r.repeats for r in run.rows] == [6, 6]  # two per round
    assert all(len(run.samples[r.cell_id]) == 6 for r in run.rows)
    assert [r.arch for r in run.rows] == ["rnn", "gru"]  # one row per cell, in plan order


def test_resume_finishes_the_rounds_a_cell_had_left(cli, tmp_path):
    import json

    args = [
        "--arch",
        "rnn",
        "--mode",
        "infer",
        "--rounds",
        "2",
        "--min-repeats",
        "4",
        "--max-repeats",
        "4",
    ]
    assert run_cli(cli, tmp_path, *args).exit_code == 0
    folder = list_run_dirs(tmp_path / "results")[0]
    # Pretend the run was killed after round 1: one round's samples and row.
    run = load_run(folder)
    (row,) = run.rows
    half = run.samples[row.cell_id][:2]
    frame = pd.read_csv(folder / "results.csv")
    frame.loc[0, ["rounds", "repeats"]] = [1, 2]
    frame.to_csv(folder / "results.csv", index=False)
    (folder / "samples.csv").write_text(
        "cell_id,sample_s\n" + "".join(f"{row.cell_id},{s!r}\n" for s in half)
    )
    meta = json.loads((folder / "meta.json").read_text())
    meta["state"] = "running"
    (folder / "meta.json").write_text(json.dumps(meta))
    resumed = cli.invoke(app, ["run", "--out", str(tmp_path / "results"), "--resume", str(folder)])
    assert resumed.exit_code == 0, resumed.output
    (final,) = load_run(folder).rows
    assert (final.rounds, final.repeats) == (2, 4)
    assert load_run(folder).samples[row.cell_id][:2] == half


def test_noisy_cells_end_the_run_with_one_warning_and_its_advice(cli, tmp_path, monkeypatch):
    monkeypatch.setattr("seqbench.judge.noise.flag", lambda row: "its interval is ±30%")
    # Which advice fits depends on the row as measured (tests/test_noise.py holds that); here,
    # that the run ends with one warning carrying the advice the noise module gives.
    advised = []

    def advice(rows):
        advised.append(len(rows))
        return ["fewer neighbours", "patience"]

    monkeypatch.setattr("seqbench.judge.noise.noise_advice", advice)
    result = run_cli(cli, tmp_path, "--arch", "rnn", "--mode", "infer")
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.stderr.splitlines() if "measured cell is noisy" in x]
    assert line.startswith("warning: 1 of 1 measured cell is noisy (")
    assert line.endswith("see the noise column); what helps: fewer neighbours; patience")
    assert advised == [1]


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--root", "", "--arch", "rnn"],
        ["run", "--csv", "", "--arch", "rnn"],
        ["runs", "--root", ""],
        ["show", "latest", "--root", ""],
        ["export", "latest", "--out", ""],
        ["report", "latest", "--html", ""],
    ],
)
def test_an_empty_path_is_refused_not_taken_for_the_current_folder(
    cli, tmp_path, args, monkeypatch
):
    # `--root ''` was Path(''), the current folder: a whole run saved among the user's files.
    monkeypatch.chdir(tmp_path)
    result = cli.invoke(app, args)
    assert result.exit_code != 0
    assert "expected a path, got ''" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
