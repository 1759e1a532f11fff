"""The Ray executor on a local cluster on this machine: CPU cells, two workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqbench.cli import app
from seqbench.core.errors import SeqbenchError
from seqbench.plan.config import SuiteConfig
from seqbench.storage import create_run, list_run_dirs, load_run
from tests.helpers import SMALL_FLAGS as SMALL
from tests.helpers import wait_for_rows

ray = pytest.importorskip("ray")

RAY = ["--executor", "ray", "--cpu-cells-per-node", "2"]
ROOT = Path(__file__).resolve().parents[1]
TEST_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


@pytest.fixture(scope="module", autouse=True)
def local_cluster():
    """One local cluster for the module (two CPUs: two workers at once)."""
    import os

    ray.init(
        address="local",  # a cluster of the test's own, whatever else runs on the machine
        num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}},
    )  # fmt: skip
    yield
    ray.shutdown()


def run_cli(cli, root, *args):
    return cli.invoke(app, ["run", "--out", str(root), *args])


def test_ray_gives_the_same_cells_and_columns_as_the_local_executor(cli, tmp_path):
    matrix = ["--arch", "rnn,gru,conv1d", "--seq-len", "48", "--mode", "infer,train", *SMALL]
    assert run_cli(cli, tmp_path / "local", *matrix).exit_code == 0
    result = run_cli(cli, tmp_path / "ray", *matrix, *RAY)
    assert result.exit_code == 0, result.output
    local, remote = load_run("latest", tmp_path / "local"), load_run("latest", tmp_path / "ray")
    assert [r.cell for r in remote.rows] == [r.cell for r in local.rows]  # same keys, plan order
    assert all(r.status == "ok" and r.host and r.device_name for r in remote.rows)
    assert set(remote.samples) == {r.cell_id for r in remote.rows}
    assert remote.meta.env["executor"] == "ray" and remote.meta.env["isolated"] is True
    assert remote.meta.env["threads"] == 1  # two CPUs shared by two cells at once
    assert (tmp_path / "ray").joinpath(remote.path.name, "results.csv").read_text().splitlines()[
        0
    ] == ((tmp_path / "local").joinpath(local.path.name, "results.csv").read_text().splitlines()[0])


def test_rows_are_saved_as_ray_cells_finish(tmp_path):
    from seqbench.execute import CellFinished, Scheduler, make_executor
    from seqbench.plan.cells import plan as make_plan
    from seqbench.plan.suites import resolve_config

    config = resolve_config(None, axes={"arch": ("rnn", "gru"), "seq_len": (48,), "mode": ("infer",), "hidden": (4,), "embed": (4,), "vocab": (20,), "batch_size": (2,)},
                            settings={"executor": "ray", "cpu_cells_per_node": 2, "min_time": 0.0, "min_repeats": 3, "max_repeats": 3, "warmup_time": 0.0, "ceiling": False, "processes": 1})  # fmt: skip
    cells = make_plan(config)
    run = create_run(
        tmp_path, label="r", config=config.to_dict(), env={}, plan=[c.cell_id for c in cells]
    )
    saved = []
    with make_executor(config) as executor:
        assert executor.name == "ray"
        for event in Scheduler(config, executor, run).iter_plan(cells):
            if isinstance(event, CellFinished):
                saved.append(len(load_run(run.path).rows))
    assert saved == [1, 2]


def test_a_worker_killed_mid_run_marks_its_cell_error_and_the_run_goes_on(cli, tmp_path):
    result = run_cli(
        cli,
        tmp_path,
        "--arch",
        "tests.fault_archs:crash",
        "--seq-len",
        "64,100",
        "--mode",
        "infer",
        *SMALL,
        *RAY,
    )
    assert result.exit_code == 1, result.output
    rows = {(r.arch, r.seq_len): r for r in load_run("latest", tmp_path).rows}
    assert rows[("tests.fault_archs:crash", 100)].status == "error"
    assert (
        rows[("tests.fault_archs:crash", 100)].message
        == "the Ray worker died while measuring the cell"
    )
    assert rows[("tests.fault_archs:crash", 64)].status == "ok"


@pytest.mark.slow  # keeps the default run under CI's 10 minutes
def test_a_hung_ray_cell_is_killed_at_its_limit_and_the_run_goes_on(cli, tmp_path, monkeypatch):
    from seqbench.execute import ray as ray_executor

    monkeypatch.setattr(ray_executor, "STARTUP_GRACE_S", 5.0)
    args = ["--arch", "tests.fault_archs:stubborn", "--seq-len", "64,100", "--mode", "infer"]
    result = run_cli(cli, tmp_path, *args, "--cell-timeout", "20", *SMALL, *RAY)
    assert result.exit_code == 0, result.output
    rows = {r.seq_len: r for r in load_run("latest", tmp_path).rows}
    assert rows[64].status == "ok", rows[64].message
    assert rows[100].status == "timeout"
    assert rows[100].message == "the cell's Ray task stopped answering; killed after 25 s"


@pytest.mark.slow  # keeps the default run under CI's 10 minutes
def test_a_ray_run_resumes(cli, tmp_path):
    args = ["--arch", "rnn,gru", "--seq-len", "48", "--mode", "infer", *SMALL, *RAY]
    assert run_cli(cli, tmp_path, *args).exit_code == 0
    (folder,) = list_run_dirs(tmp_path)
    lines = (folder / "results.csv").read_text().splitlines()
    (folder / "results.csv").write_text(
        "\n".join(lines[:-1]) + "\n"
    )  # as if killed before the last cell
    resumed = cli.invoke(app, ["run", "--out", str(tmp_path), "--resume", str(folder)])
    assert resumed.exit_code == 0, resumed.output
    assert [r.arch for r in load_run(folder).rows] == ["rnn", "gru"]


def test_a_ray_run_compares_with_a_local_one(cli, tmp_path):
    args = ["--arch", "lstm", "--seq-len", "48", "--mode", "infer", "--threads", "1", *SMALL]
    assert run_cli(cli, tmp_path / "a", *args).exit_code == 0
    assert run_cli(cli, tmp_path / "b", *args, *RAY).exit_code == 0
    a, b = list_run_dirs(tmp_path / "a")[0], list_run_dirs(tmp_path / "b")[0]
    # Comparable (no environment refusal), and the same model: its memory is identical.
    result = cli.invoke(app, ["compare", str(a), str(b), "--metric", "memory"])
    assert result.exit_code == 0, result.output
    assert "memory: 1 unchanged" in result.stderr


def test_without_ray_installed_the_executor_is_one_line(monkeypatch):
    from seqbench.execute import ray as ray_executor

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(
        SeqbenchError, match=r"--executor ray needs Ray: pip install 'seqbench\[ray\]'"
    ):
        ray_executor.require_ray()


def test_ray_settings_are_checked(cli, tmp_path):
    result = run_cli(cli, tmp_path, "--executor", "dask")
    assert (
        result.exit_code == 2 and "--executor: expected local or ray, got 'dask'" in result.stderr
    )
    result = run_cli(cli, tmp_path, "--executor", "ray", "--cpu-cells-per-node", "0")
    assert (
        result.exit_code == 2
        and "--cpu-cells-per-node: expected a positive integer, got 0" in result.stderr
    )
    assert SuiteConfig().executor == "local"


def test_ray_messages_never_reach_stdout(tmp_path):
    """A worker that dies makes Ray report it; with --format csv, stdout must stay CSV."""
    args = ["--arch", "tests.fault_archs:crash", "--seq-len", "64,100", "--mode", "infer"]
    done = subprocess.run(
        [sys.executable, "-m", "seqbench", "run", "--out", str(tmp_path), *args, *SMALL, *RAY,
         "--format", "csv"],
        capture_output=True, text=True, timeout=300, env=TEST_ENV,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("arch,seq_len,") and len(lines) == 3, done.stdout[:500]
    rows = {r.seq_len: r for r in load_run("latest", tmp_path).rows}
    assert rows[100].status == "error" and rows[100].host  # where it died, even so


@pytest.mark.slow  # keeps the default run under CI's 10 minutes
def test_sigterm_stops_a_ray_run_like_a_local_one(tmp_path):
    args = ["--arch", "tests.fault_archs:sleepy", "--seq-len", "64,100", "--mode", "infer"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqbench", "run", "--out", str(tmp_path), *args, *SMALL, *RAY],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=TEST_ENV,
    )  # fmt: skip
    folder = wait_for_rows(tmp_path, 1, proc, limit=120)
    proc.terminate()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert load_run(folder).meta.state == "interrupted"
    assert "resume with: seqbench run --resume" in err and "Traceback" not in err


@pytest.fixture
def ray_cli(tmp_path):
    """The `ray` command of this environment, and a clean stop of what it started."""
    command = Path(sys.executable).with_name("ray")
    yield lambda *args, env=None: subprocess.run(
        [str(command), *args], capture_output=True, text=True, timeout=180,
        env={**TEST_ENV, **(env or {})},
    )  # fmt: skip
    subprocess.run([str(command), "stop", "--force"], capture_output=True, timeout=120)


@pytest.mark.slow
def test_nodes_of_different_sizes_each_give_a_cell_all_their_cpus(ray_cli, tmp_path):
    open_ = {"RAY_AUTH_MODE": "disabled"}
    assert (
        ray_cli(
            "start",
            "--head",
            "--num-cpus",
            "2",
            "--port",
            "6391",
            "--include-dashboard",
            "false",
            env=open_,
        ).returncode
        == 0
    )
    assert (
        ray_cli("start", "--address", "127.0.0.1:6391", "--num-cpus", "4", env=open_).returncode
        == 0
    )
    args = ["--arch", "rnn,gru", "--seq-len", "48", "--mode", "infer,train", *SMALL]
    done = subprocess.run(
        [sys.executable, "-m", "seqbench", "run", "--out", str(tmp_path), *args, "--executor",
         "ray", "--ray-address", "127.0.0.1:6391"],
        capture_output=True, text=True, timeout=300, env={**TEST_ENV, **open_},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = load_run("latest", tmp_path)
    assert run.meta.env["threads"] == [2, 4] and run.meta.env["ray_nodes"] == 2
    assert run.meta.env["ray_address"] == "127.0.0.1:6391"
    assert {r.threads for r in run.rows} <= {2, 4} and all(r.status == "ok" for r in run.rows)


@pytest.mark.slow
def test_a_cluster_that_wants_a_token_is_one_line_and_no_run(ray_cli, tmp_path):
    assert (
        ray_cli(
            "start", "--head", "--num-cpus", "1", "--port", "6392", "--include-dashboard", "false"
        ).returncode
        == 0
    )
    done = subprocess.run(
        [sys.executable, "-m", "seqbench", "run", "--out", str(tmp_path), "--arch", "rnn",
         *SMALL, "--executor", "ray", "--ray-address", "127.0.0.1:6392"],
        capture_output=True, text=True, timeout=300, env=TEST_ENV,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: cannot join Ray at 127.0.0.1:6392: the cluster asks for an authentication token "
        "that this process does not have (set RAY_AUTH_TOKEN, or see `ray get-auth-token`)"
    )
    assert list_run_dirs(tmp_path) == []
