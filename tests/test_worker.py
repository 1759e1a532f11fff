"""The subprocess worker on its own: its protocol (JSON lines in, JSON lines out), and the
parent side that turns a dead or silent worker into a row."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest
import torch

from seqbench.core.request import CellRequest
from seqbench.core.schema import ResultRow
from seqbench.execute.isolated import run_in_fresh_process, worker_command, worker_environment
from tests.helpers import FAST, make_cell

TINY = dict(arch="rnn", seq_len=8, batch_size=2, hidden=4, embed=4, vocab=20)


def test_a_worker_answers_each_request_on_its_own_line(tmp_path):
    answers = tmp_path / "answers.jsonl"
    first = CellRequest(make_cell(**TINY), FAST, round=1)
    across = dataclasses.replace(FAST, processes=2)  # judged across processes: the machine too
    second = CellRequest(make_cell(**TINY, mode="train"), across, round=2, memory=False)
    lines = "".join(json.dumps(r.to_dict()) + "\n" for r in (first, second))
    done = subprocess.run(
        [*worker_command(), str(answers)],
        input=lines,
        capture_output=True,
        text=True,
        env=worker_environment(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    one, two = (json.loads(line) for line in answers.read_text().splitlines())
    rows = [ResultRow.from_dict(a["row"]) for a in (one, two)]
    assert [r.cell for r in rows] == [first.cell, second.cell]
    assert [r.status for r in rows] == ["ok", "ok"]
    assert [a["round"] for a in (one, two)] == [1, 2]
    assert [len(a["samples"]) for a in (one, two)] == [3, 3]  # FAST: three samples
    assert one["machine_s"] is None and 0 < two["machine_s"] < 0.1  # the reference step's time
    # The process's high-water mark is the first cell's alone; the second did not ask for memory.
    assert rows[0].peak_rss_bytes > 0 and rows[1].peak_rss_bytes is None
    assert rows[1].peak_mem_bytes is None and rows[0].peak_mem_bytes > 0


def test_a_worker_without_an_answers_file_says_how_to_call_it():
    done = subprocess.run(
        worker_command(), input="", capture_output=True, text=True, env=worker_environment()
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "usage: python -m seqbench.execute.worker ANSWERS < requests.jsonl"
    )


def test_a_worker_that_dies_becomes_an_error_row_with_its_last_words():
    request = CellRequest(make_cell(arch="tests.fault_archs:crash", seq_len=100), FAST)
    measurement = run_in_fresh_process(request)
    assert measurement.row.status == "error"
    assert measurement.row.message.startswith("the cell's process died (SIGSEGV)")
    assert measurement.row.wall_s > 0 and measurement.samples == []


def test_a_silent_worker_is_killed_after_its_limit_and_grace():
    # The model blocks the in-process alarm (3 s) at its first step: only the kill at
    # limit + grace stops it.
    request = CellRequest(
        make_cell(arch="tests.fault_archs:stubborn", seq_len=100), FAST, timeout=3.0
    )
    measurement = run_in_fresh_process(request, grace_s=1.5)
    assert measurement.row.status == "timeout"
    assert measurement.row.message == "the cell's process stopped answering; killed after 4.5 s"
    assert 4.5 <= measurement.row.wall_s < 10


def test_one_worker_serves_a_cells_rounds_and_a_new_cell_gets_a_fresh_one():
    from seqbench.execute.isolated import CellWorkerExecutor
    from seqbench.machine.launch import Launch

    first, second = make_cell(**TINY), make_cell(**TINY, mode="train")
    with CellWorkerExecutor(Launch()) as executor:
        pids = []
        for request in (CellRequest(first, FAST, round=1), CellRequest(first, FAST, round=2),
                        CellRequest(second, FAST, round=1)):  # fmt: skip
            executor.submit(request)
            _, measurement = executor.next_finished()
            assert measurement.row.status == "ok"
            pids.append(executor._worker._proc.pid)
        assert pids[0] == pids[1] != pids[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_cell_that_cannot_run_here_is_skipped_in_the_worker_too():
    request = CellRequest(make_cell(**TINY, device="cuda"), FAST)
    row = run_in_fresh_process(request).row
    assert row.status == "skipped" and row.message.startswith("cuda is not available here")


class FakeWorker:
    """Stands in for a worker process: records which requests each one served."""

    started: list[FakeWorker] = []

    def __init__(self, launch, grace_s) -> None:
        self.served: list[tuple[str, int]] = []
        self.alive = True
        FakeWorker.started.append(self)

    def measure(self, request):
        from seqbench.measure import failure

        self.served.append((request.cell.arch, request.round))
        return failure(request.cell, "ok", "")

    def close(self) -> None:
        self.alive = False


@pytest.mark.parametrize("keep", [False, True])
def test_each_process_is_a_fresh_worker_serving_every_cell_of_its_turn(monkeypatch, keep):
    """Two processes of two rounds each: the first worker serves every cell's rounds 1-2,
    the second every cell's rounds 3-4; kept, the same two serve a second plan too."""
    import dataclasses

    from seqbench.core.settings import MeasureSettings
    from seqbench.execute import isolated

    monkeypatch.setattr(isolated, "Worker", FakeWorker)
    FakeWorker.started = []
    settings = MeasureSettings(rounds=2, processes=2)
    cells = [make_cell(**{**TINY, "arch": a}) for a in ("rnn", "gru")]
    plans = 2 if keep else 1
    with isolated.ProcessWorkerExecutor(keep=keep) as executor:
        for _ in range(plans):
            for round_no in (1, 2, 3, 4):
                for cell in cells:
                    executor.submit(
                        dataclasses.replace(CellRequest(cell, settings), round=round_no)
                    )
                    executor.next_finished()
    first, second = FakeWorker.started
    per_plan = [("rnn", 1), ("gru", 1), ("rnn", 2), ("gru", 2)]
    assert first.served == per_plan * plans
    assert second.served == [(a, r + 2) for a, r in per_plan] * plans
    assert not first.alive and not second.alive  # every worker ends with the executor


def test_a_worker_measures_a_cell_without_importing_scipy():
    """scipy.stats takes 0.7 s to import, which every worker process of a run would pay
    before its first cell: a worker's summary (the median's interval ranks) needs none of
    it (judge.stats.half_binomial_cdf)."""
    request = CellRequest(make_cell(**TINY), FAST, round=1)
    script = (
        "import json, sys\n"
        "from seqbench.execute.worker import serve\n"
        "answer = serve(json.loads(sys.stdin.read()))\n"
        "print(answer['row']['status'], 'scipy' in sys.modules)\n"
    )
    done = subprocess.run(
        [*worker_command()[:1], "-c", script],
        input=json.dumps(request.to_dict()),
        capture_output=True,
        text=True,
        env=worker_environment(),
        timeout=300,
    )
    assert done.stdout.split() == ["ok", "False"], done.stderr


def test_a_worker_started_ahead_measures_the_first_process_and_no_other(monkeypatch):
    """`seqbench run` starts the first worker while it imports torch and plans: the
    executor measures the first process there (a real measurement), and starts the
    second process's worker fresh."""
    from seqbench.execute import isolated

    ready = isolated.start_ahead()
    monkeypatch.setattr(isolated, "Worker", FakeWorker)
    FakeWorker.started = []
    settings = dataclasses.replace(FAST, processes=2)
    request = CellRequest(make_cell(**TINY), settings)
    with isolated.ProcessWorkerExecutor(ready=ready) as executor:
        executor.submit(request)
        _, first = executor.next_finished()
        assert first.row.status == "ok" and first.row.median_s > 0  # measured there
        assert FakeWorker.started == [] and ready.alive
        executor.submit(dataclasses.replace(request, round=2))  # the second process
        executor.next_finished()
        assert len(FakeWorker.started) == 1 and not ready.alive
    ready.close(kill=True)  # the starter's close, after the executor's: harmless


@pytest.mark.parametrize("why", ["died", "moved"])
def test_a_worker_started_ahead_that_cannot_serve_is_replaced(monkeypatch, why):
    """A worker started ahead that died, or that was started before planning changed what
    a worker gets (a user's folder put on the import path for their architectures), is
    stopped, and a fresh worker measures the first process."""
    import sys

    from seqbench.execute import isolated

    ready = isolated.start_ahead()
    if why == "died":
        ready._proc.kill()
        ready._proc.wait()
    else:
        monkeypatch.setattr(sys, "path", [*sys.path, "/a/users/own/models"])
    monkeypatch.setattr(isolated, "Worker", FakeWorker)
    FakeWorker.started = []
    settings = dataclasses.replace(FAST, processes=2)
    with isolated.ProcessWorkerExecutor(ready=ready) as executor:
        executor.submit(CellRequest(make_cell(**TINY), settings))
        _, measurement = executor.next_finished()
    assert measurement.row.status == "ok" and len(FakeWorker.started) == 1
    assert not ready.alive and ready.pid is None  # stopped, and its pipes closed


def test_a_run_that_measures_elsewhere_stops_the_worker_started_ahead():
    from seqbench.execute import isolated
    from seqbench.execute.factory import make_executor
    from seqbench.execute.local import InProcessExecutor
    from seqbench.plan.config import SuiteConfig

    ready = isolated.start_ahead()
    config = SuiteConfig()
    config = dataclasses.replace(config, measure=dataclasses.replace(config.measure, processes=1))
    assert isinstance(make_executor(config, ready), InProcessExecutor)
    assert not ready.alive
