"""The reading side of the CLI: runs, show, export, plot, env, and run's --format/--quiet."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET

import pytest

from seqbench.cli import app
from seqbench.export import EXPORTERS
from seqbench.storage import load_run
from tests.helpers import FAST_FLAGS, power_rows, save_run

LENGTHS = [32, 64, 128, 256]


@pytest.fixture
def root(tmp_path):
    """A results root with two saved runs; the newer one has rnn and lstm in two modes."""
    root = tmp_path / "results"
    save_run(root, power_rows("gru", [64, 128], 1.0), label="older")
    rows = [
        *power_rows("rnn", LENGTHS, 1.0),
        *power_rows("lstm", LENGTHS, 2.0, scale=1e-7),
        *power_rows("lstm", LENGTHS, 1.0, mode="train"),
    ]
    save_run(root, rows, label="newer")
    return root


def invoke(cli, root, *args):
    return cli.invoke(app, [*args, "--root", str(root)])


def one_error_line(result, message):
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_runs_lists_the_saved_runs_newest_first(cli, root):
    result = invoke(cli, root, "runs")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "-newer" in line or "-older" in line]
    assert len(lines) == 2
    assert "-newer" in lines[0] and "12 ok" in lines[0]
    assert "-older" in lines[1] and "2 ok" in lines[1]
    assert "device cpu, state complete" in result.stdout  # the same for both: in the caption


def test_runs_lists_a_damaged_run_with_its_problem(cli, root):
    damaged = save_run(root, power_rows("rnn", [64], 1.0), label="broken").path
    (damaged / "results.csv").write_text("name,price\nfoo,3\n")
    result = invoke(cli, root, "runs")
    assert result.exit_code == 0
    assert "damaged [1]" in result.stdout
    assert "results.csv: not a seqbench results file (missing columns:" in result.stdout


def test_runs_in_an_empty_root_says_so(cli, tmp_path):
    result = invoke(cli, tmp_path / "none", "runs")
    assert result.exit_code == 0
    assert result.stderr == f"no saved runs in {tmp_path / 'none'}\n"


def test_show_renders_the_latest_run_with_its_scaling_table(cli, root):
    result = invoke(cli, root, "show", "latest")
    assert result.exit_code == 0, result.output
    assert "seqbench newer (" in result.stdout
    assert "How cost grows with T" in result.stdout
    scaling = [
        line.split() for line in result.stdout.split("How cost grows with T")[1].splitlines()
    ]
    assert ["rnn", "infer", "32–256", "(4)", "1.00", "1.00"] in scaling
    assert ["lstm", "infer", "32–256", "(4)", "2.00", "[1]", "1.00"] in scaling
    assert ["lstm", "train", "32–256", "(4)", "1.00", "1.00"] in scaling
    assert "lstm is faster than rnn below T≈100, rnn above (infer)" in result.stdout
    assert "Test CPU · 1 thread · subnormals flushed to zero" in result.stderr


def test_show_filters_and_sorts(cli, root):
    result = invoke(
        cli,
        root,
        "show",
        "latest",
        "--arch",
        "lstm",
        "--mode",
        "infer",
        "--sort",
        "median_s",
        "--reverse",
    )
    assert result.exit_code == 0, result.output
    assert "arch lstm" in result.stdout and "mode infer" in result.stdout  # constant: captioned
    times = ["6.55 ms", "1.64 ms", "410 µs", "102 µs"]  # 1e-7·T² at T = 256, 128, 64, 32
    positions = [result.stdout.index(t) for t in times]
    assert positions == sorted(positions)
    assert "rnn" not in result.stdout.split("How cost grows")[0]


def test_export_csv_to_stdout_is_the_exporter_text(cli, root):
    result = invoke(cli, root, "export", "latest")
    assert result.exit_code == 0
    assert result.stdout == EXPORTERS["csv"].render(load_run("latest", root).rows)


def test_a_whole_runs_csv_export_is_its_results_file_and_a_part_is_rendered(cli, root, monkeypatch):
    from seqbench.export import csv as csv_export
    from seqbench.storage import resolve_run_path

    saved = resolve_run_path("latest", root).read_text()
    rendered = EXPORTERS["csv"].render(load_run("latest", root).rows)
    assert saved == rendered  # what makes the file a whole run's export
    # A whole run: the file itself, not rendered again.
    monkeypatch.setattr(csv_export, "render_rows", lambda rows: pytest.fail("rendered"))
    assert invoke(cli, root, "export", "latest").stdout == saved
    # Some of its rows: rendered.
    monkeypatch.undo()
    part = invoke(cli, root, "export", "latest", "--mode", "train").stdout
    rows = [r for r in load_run("latest", root).rows if r.mode == "train"]
    assert part == EXPORTERS["csv"].render(rows) != saved


def test_a_csv_export_after_a_retried_cell_renders_each_cells_last_line(cli, root):
    from seqbench.storage import resolve_run_path

    path = resolve_run_path("latest", root)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([*lines, lines[1]]))  # the first cell again: a resume's retry
    rows = load_run("latest", root).rows
    assert len(rows) == len(lines) - 1
    result = invoke(cli, root, "export", "latest")
    assert result.exit_code == 0, result.output
    assert result.stdout == EXPORTERS["csv"].render(rows) != path.read_text()


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_an_exported_file_reads_back_as_the_same_rows(cli, root, tmp_path, suffix):
    target = tmp_path / "out" / f"rows{suffix}"
    result = invoke(cli, root, "export", "latest", "--out", str(target), "--mode", "train")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"wrote 4 rows to {target}\n"
    loaded = load_run(target)
    assert loaded.rows == [r for r in load_run("latest", root).rows if r.mode == "train"]
    assert set(loaded.samples) == {r.cell_id for r in loaded.rows}


def test_export_markdown_has_the_scaling_section(cli, root):
    result = invoke(cli, root, "export", "latest", "--format", "markdown")
    assert result.exit_code == 0
    assert "### How cost grows with T" in result.stdout


def test_plot_writes_a_png_and_an_svg(cli, root, tmp_path):
    png, svg = tmp_path / "p.png", tmp_path / "p.svg"
    assert invoke(cli, root, "plot", "latest", "--out", str(png)).exit_code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        invoke(cli, root, "plot", "latest", "--metric", "seq_per_s", "--out", str(svg)).exit_code
        == 0
    )
    assert ET.parse(svg).getroot().tag.endswith("}svg")


def test_plot_in_the_terminal_prints_the_chart(cli, root):
    result = invoke(cli, root, "plot", "latest", "--mode", "infer")
    assert result.exit_code == 0, result.output
    assert "step time against sequence length" in result.stdout
    assert "• rnn  k=1.00" in result.stdout and "+ lstm  k=2.00" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nope"], "nope: no such run or results file"),
        (
            ["show", "latest", "--arch", "lstn"],
            "--arch: this run has no cells with arch 'lstn'; it has: rnn, lstm",
        ),
        (
            ["show", "latest", "--mode", "eval"],
            "--mode: this run has no cells with mode 'eval'; it has: infer, train",
        ),
        (
            ["show", "latest", "--sort", "speed"],
            "--sort: unknown column 'speed'; choose from: arch, seq_len,",
        ),
        (["show", "latest", "--arch", "rnn", "--mode", "train"], "no cells of "),
        (
            ["export", "latest", "--format", "xml"],
            "unknown format 'xml'; choose from: csv, json, parquet, markdown",
        ),
        (
            ["export", "latest", "--format", "parquet"],
            "--format parquet is binary: give a file to write it to (--out FILE)",
        ),
        (
            ["export", "latest", "--format", "json", "--out", "rows.csv"],
            "--out rows.csv: the suffix says csv, --format says json",
        ),
        (
            ["plot", "latest", "--metric", "speed"],
            "--metric: expected one of seq_per_s, median_s, peak_mem_bytes, tflops, state_bytes, metric_value; got 'speed'",
        ),
        (
            ["plot", "latest", "--metric", "metric_value"],
            "nothing to plot: no cell of this run has an accuracy figure",
        ),
        (
            ["plot", "latest", "--out", "plot.jpg"],
            "--out plot.jpg: cannot draw a '.jpg' file; use .png or .svg",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, root, args, message):
    one_error_line(invoke(cli, root, *args), message)


@pytest.mark.parametrize("command", [["show", "latest"], ["export", "latest"]])
def test_a_run_with_no_rows_yet_says_so(cli, root, command):
    from seqbench.storage import create_run

    started = create_run(root, label="started", config={"label": "started"}, env={}, plan=[])
    one_error_line(
        invoke(cli, root, *command), f"{started.run_id} has no measured cells yet (it is running)"
    )


@pytest.mark.parametrize("command", [["export", "latest"], ["plot", "latest"]])
def test_an_unwritable_out_is_one_line_and_exit_2(cli, root, tmp_path, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = blocker / ("x.csv" if command[0] == "export" else "x.png")  # a file's child
    one_error_line(
        invoke(cli, root, *command, "--out", str(target)), f"--out {target}: cannot write it"
    )


def test_a_missing_optional_library_is_one_line_with_the_install_command(cli, root, monkeypatch):
    monkeypatch.setitem(sys.modules, "plotext", None)
    one_error_line(
        invoke(cli, root, "plot", "latest"),
        "plot needs plotext, which is not installed: pip install 'seqbench[report]'",
    )


def test_env_prints_what_a_run_would_record(cli):
    result = cli.invoke(app, ["env", "--format", "json", "--threads", "1", "--no-flush-denormal"])
    assert result.exit_code == 0, result.output
    env = json.loads(result.stdout)
    assert env["threads"] == 1 and env["flush_denormal"] is False
    assert "cpu" in env["device_names"]
    table = cli.invoke(app, ["env"])
    assert table.exit_code == 0 and "flush_denormal" in table.stdout and "torch" in table.stdout


def test_env_refuses_a_bad_format(cli):
    one_error_line(
        cli.invoke(app, ["env", "--format", "yaml"]), "--format: expected table or json; got 'yaml'"
    )


TINY = ["--arch", "rnn", "--mode", "infer", "--seq-len", "48", "--batch-size", "2", "--hidden", "4",
        "--embed", "4", "--vocab", "20", *FAST_FLAGS]  # fmt: skip


def test_run_format_json_prints_the_saved_rows_for_a_pipe(cli, tmp_path):
    result = cli.invoke(app, ["run", "--out", str(tmp_path), *TINY, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [r.to_dict() for r in load_run("latest", tmp_path).rows]
    assert "saved 1 cell (1 ok)" in result.stderr


def test_run_quiet_prints_only_warnings_and_the_saved_line(cli, tmp_path):
    result = cli.invoke(app, ["run", "--out", str(tmp_path), *TINY, "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    (run_dir,) = tmp_path.iterdir()
    lines = result.stderr.splitlines()
    # A busy machine's warning may come first; every other line is a warning.
    assert [line for line in lines if not line.startswith("warning: ")] == [
        f"saved 1 cell (1 ok) to {run_dir}"
    ]


def test_run_refuses_a_bad_format_before_measuring(cli, tmp_path):
    one_error_line(
        cli.invoke(app, ["run", "--out", str(tmp_path / "r"), *TINY, "--format", "xml"]),
        "--format: expected one of table, csv, json, markdown; got 'xml'",
    )
    assert not (tmp_path / "r").exists()


def test_every_command_has_a_docstring_and_every_parameter_help():
    import typer.main

    command = typer.main.get_command(app)
    assert {"runs", "show", "export", "plot", "env"} <= set(command.commands)
    for name, sub in command.commands.items():
        assert sub.help, f"{name} has no docstring"
        for param in sub.params:
            assert param.help, f"{name} {param.name} has no help"
