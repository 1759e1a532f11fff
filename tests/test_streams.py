"""The terminal's streams: a stdout that refuses writes is exit 74 and one line, never a
verdict's exit code or a traceback; a terminal that cannot encode "±" gets ASCII. Real
processes, real devices (/dev/full) and real pipes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SMALL_FLAGS, power_rows, save_run

ROOT = Path(__file__).resolve().parents[1]
FULL = Path("/dev/full")
needs_full = pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full (Linux)")


def seqbench(*args: str, stdout=subprocess.PIPE, **env: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    return subprocess.run(
        [sys.executable, "-m", "seqbench", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": path, "COLUMNS": "120", **env},
        timeout=300,
    )


@pytest.fixture
def saved(tmp_path) -> str:
    return str(save_run(tmp_path, power_rows("lstm", [16, 32], 1.0)).path)


@pytest.fixture
def twin(saved, tmp_path) -> str:
    """A copy of the saved run under another root: something to compare it with."""
    copy = tmp_path / "twin" / Path(saved).name
    shutil.copytree(saved, copy)
    return str(copy)


@needs_full
@pytest.mark.parametrize(
    "command",
    [
        ["show", "{run}"],
        ["export", "{run}", "--format", "json"],
        ["compare", "{run}", "{twin}"],
        ["compare", "{run}", "{twin}", "--format", "json"],
        ["runs", "--root", "{root}"],
    ],
)
def test_a_full_stdout_is_exit_74_and_one_line(saved, twin, command):
    args = [part.format(run=saved, twin=twin, root=str(Path(saved).parent)) for part in command]
    with FULL.open("w") as full:
        done = seqbench(*args, stdout=full)
    assert done.returncode == 74, done.stderr
    assert done.stderr == "error: could not write to standard output: No space left on device\n"


@needs_full
def test_a_run_whose_stdout_is_full_keeps_its_rows_and_exits_74(tmp_path):
    with FULL.open("w") as full:
        done = seqbench(
            "run", "--arch", "rnn", "--seq-len", "8", "--mode", "infer", "--format", "json",
            "--out", str(tmp_path), *SMALL_FLAGS, stdout=full,
        )  # fmt: skip
    assert done.returncode == 74, done.stderr
    assert done.stderr.endswith(
        "error: could not write to standard output: No space left on device\n"
    )
    assert "Traceback" not in done.stderr
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len((folder / "results.csv").read_text().splitlines()) == 2  # header and the cell


def test_a_closed_pipe_is_exit_74_without_a_word(saved, twin):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first write: every write is EPIPE
    with os.fdopen(write, "w") as pipe:
        done = seqbench("compare", saved, twin, stdout=pipe)
    assert (done.returncode, done.stderr) == (74, "")


def test_an_ascii_terminal_gets_ascii(saved):
    done = seqbench("show", saved, PYTHONIOENCODING="ascii")
    assert done.returncode == 0, done.stderr
    assert "median +/- IQR/2" in done.stdout
    assert all(ord(char) < 128 for char in done.stdout)
    exported = seqbench("export", saved, "--format", "json", PYTHONIOENCODING="ascii")
    assert exported.returncode == 0 and len(json.loads(exported.stdout)) == 2


def test_a_torch_that_cannot_load_under_a_memory_limit_is_one_line(tmp_path):
    import resource

    def limit_address_space() -> None:  # `ulimit -v 400000`: torch's libraries do not fit
        resource.setrlimit(resource.RLIMIT_AS, (400_000 * 1024, resource.RLIM_INFINITY))

    path = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    done = subprocess.run(
        [sys.executable, "-m", "seqbench", "run", "--arch", "rnn", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, preexec_fn=limit_address_space,
        env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: torch could not be loaded: ")
    assert line.endswith("(this process may map at most 391 MiB: ulimit -v)")
    assert list(tmp_path.iterdir()) == []  # no run was begun
