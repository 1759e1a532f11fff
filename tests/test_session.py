"""One owner of a run's life (seqbench.execute.session): every front that measures writes
the same metadata, finishes its run on every way out, and resume and A/B are reachable from
Python as from the command line."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import seqbench
from seqbench.cli import app
from seqbench.execute.session import Session
from seqbench.judge import noise
from seqbench.plan import frontier
from seqbench.plan.suites import resolve_config
from seqbench.storage import list_run_dirs, load_run
from tests.helpers import SMALL_FLAGS

SMALL = {"batch_size": 2, "hidden": 4, "embed": 4, "vocab": 20, "min_time": 0.0,
         "min_repeats": 3, "max_repeats": 3, "warmup_time": 0.0, "warmup_steps": 1,
         "min_sample_s": 0.0, "ceiling": False, "threads": 1, "processes": 1}  # fmt: skip
FRONTIER = ["frontier", "--arch", "gru", "--device", "cpu", "--mem-limit", "2MB", "--no-isolate",
            "--start", "16", "--max-len", "64", "--batch-size", "4", "--hidden", "16",
            "--mode", "infer", "--threads", "1"]  # fmt: skip
# The busy-machine warning (execute.threads.choose_threads, tested in test_noise) is not the
# subject here.
pytestmark = pytest.mark.filterwarnings("ignore:this machine is busy:RuntimeWarning")
# What a front adds to its run's metadata beside what every run has.
OWN = {"frontier", "module", "ceilings", "ceilings_noisy"}


def runs_in(root):
    return [load_run(folder) for folder in list_run_dirs(root)]


def test_every_front_writes_the_same_metadata(cli, tmp_path):
    measured = cli.invoke(app, ["run", "--arch", "rnn", "--seq-len", "16", "--mode", "infer",
                                *SMALL_FLAGS, "--threads", "1", "--out", str(tmp_path / "run")])  # fmt: skip
    assert measured.exit_code == 0, measured.output
    probed = cli.invoke(app, [*FRONTIER, "--out", str(tmp_path / "frontier")])
    assert probed.exit_code == 0, probed.output
    seqbench.run(arch="rnn", seq_len=16, mode="infer", out=tmp_path / "api", **SMALL)
    seqbench.measure_module(nn.Linear(4, 4), torch.zeros(2, 8, 4), out=tmp_path / "module",
                            min_time=0.0, min_repeats=3, max_repeats=3, threads=1, processes=1)  # fmt: skip

    runs = {
        name: load_run("latest", tmp_path / name) for name in ("run", "frontier", "api", "module")
    }
    keys = {name: set(run.meta.to_dict()) - OWN for name, run in runs.items()}
    assert keys["frontier"] == keys["api"] == keys["module"] == keys["run"]
    env_keys = {name: set(run.meta.env) for name, run in runs.items()}
    assert env_keys["frontier"] == env_keys["api"] == env_keys["module"] == env_keys["run"]
    for name, run in runs.items():
        assert run.meta.state == "complete", name
        assert run.meta.finished_at, name
        # The noise summary of its own rows: what `seqbench run` always wrote, and
        # `frontier` never did.
        assert run.meta.noise == noise.summarize(run.rows), name
        assert run.meta.noise["cells"] == sum(r.status == "ok" for r in run.rows) > 0, name
    assert runs["frontier"].meta.frontier["gru"]["largest"] is not None
    assert runs["module"].meta.module["class"] == "torch.nn.modules.linear.Linear"


def test_an_interrupted_frontier_is_marked_interrupted(cli, tmp_path, monkeypatch):
    calls = []

    def stopped_at_the_second_probe(measurement, limit):
        calls.append(measurement.row.seq_len)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return True

    monkeypatch.setattr(frontier, "fits", stopped_at_the_second_probe)
    result = cli.invoke(app, [*FRONTIER, "--out", str(tmp_path)])
    assert result.exit_code == 130
    (run,) = runs_in(tmp_path)
    assert run.meta.state == "interrupted"
    assert [r.seq_len for r in run.rows] == calls == [16, 32]  # every probe measured is kept
    assert run.meta.noise == noise.summarize(run.rows)


class StopsOnTheThirdCall(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 4)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls == 3:
            raise KeyboardInterrupt
        return self.layer(x)


def test_an_interrupted_api_run_is_marked_interrupted_and_the_interrupt_goes_on(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        seqbench.measure_module(StopsOnTheThirdCall(), torch.zeros(2, 8, 4), out=tmp_path,
                                min_time=0.0, min_repeats=3, max_repeats=3, processes=1)  # fmt: skip
    (run,) = runs_in(tmp_path)
    assert run.meta.state == "interrupted" and run.meta.noise == noise.summarize(run.rows)
    run.claim()  # the session let go of the run: another writer may take it
    run.close()


def test_a_run_interrupted_on_the_command_line_is_finished_from_python(cli, tmp_path):
    out = tmp_path / "results"
    first = cli.invoke(app, ["run", "--arch", "rnn,gru", "--seq-len", "16", "--mode", "infer",
                             *SMALL_FLAGS, "--threads", "1", "--out", str(out)])  # fmt: skip
    assert first.exit_code == 0, first.output
    (folder,) = list_run_dirs(out)
    run = load_run(folder)
    complete = {r.cell_id for r in run.rows}
    # As a run stopped after its first cell leaves it: one row, state interrupted.
    run.rows = run.rows[:1]
    run.meta.state = "interrupted"
    run.save()

    frame = seqbench.run(resume="latest", out=out)
    assert set(frame["cell_id"]) == complete and set(frame["status"]) == {"ok"}
    finished = load_run(folder)
    assert finished.meta.state == "complete" and len(finished.meta.resumed_at) == 1
    assert {r.cell_id for r in finished.rows} == complete
    with pytest.raises(seqbench.SeqbenchError, match="the configuration differs \\(seq_len\\)"):
        seqbench.run(resume="latest", out=out, seq_len=32)


def test_a_session_refused_before_measuring_creates_nothing(tmp_path):
    config = resolve_config(None, axes={"arch": ("rnn",)}, settings={"threads": 1})
    with pytest.raises(seqbench.SeqbenchError, match="--csv .*: is a folder; give a file name"):
        Session.start(config, root=tmp_path / "results", csv=tmp_path)
    assert not (tmp_path / "results").exists()


def test_measuring_outside_the_session_is_refused(tmp_path):
    config = resolve_config(None, axes={"arch": ("rnn",)}, settings={"threads": 1})
    session = Session.start(config, root=tmp_path)
    with pytest.raises(AssertionError, match="enter the session first"):
        next(session.measure())


def test_ab_from_python_refuses_what_the_command_line_refuses(tmp_path):
    with pytest.raises(seqbench.SeqbenchError, match="--rounds: expected at least 6"):
        seqbench.ab("base", "slower", repo=tmp_path, arch="rnn", rounds=5)
    with pytest.raises(seqbench.SeqbenchError, match="--threshold: expected a fraction > 0"):
        seqbench.ab("base", "slower", repo=tmp_path, arch="rnn", threshold=0)
    with pytest.raises(seqbench.SeqbenchError, match=r"ab\(\): unknown option 'seqlen'"):
        seqbench.ab("base", "slower", repo=tmp_path, seqlen=64)


@pytest.mark.slow  # two versions, a worker per cell each: 17 s; test_ab covers the same session
def test_ab_from_python_gives_the_verdict_and_both_runs(tmp_path, monkeypatch):
    from benchmarks.gate_error_rates import make_repository

    repo = make_repository(tmp_path / "repo", base=2, slower=8)
    monkeypatch.chdir(repo)
    monkeypatch.syspath_prepend(str(repo))
    frame = seqbench.ab("base", "slower", repo=repo, out=tmp_path / "results",
                        arch="gatepkg.models:make_core", seq_len=32, batch_size=8, hidden=32,
                        mode="infer", min_time=0.6, min_repeats=6, warmup_time=0.05,
                        rounds=6, threads=1)  # fmt: skip
    (cell,) = frame.to_dict("records")
    assert cell["verdict"] == "regression" and cell["ratio"] > 1.5
    assert cell["cell_id"] == load_run(frame.attrs["baseline_path"]).rows[0].cell_id
    assert frame.attrs["exit_code"] == 1
    assert frame.attrs["lines"] == ["FAIL: 1 cell regressed (time, more than 10% and significant)"]
    base, cand = load_run(frame.attrs["baseline_path"]), load_run(frame.attrs["candidate_path"])
    assert (base.meta.ab["version"], cand.meta.ab["version"]) == ("base", "slower")
    assert (
        base.meta.ab["partner"] == cand.run_id and base.meta.state == cand.meta.state == "complete"
    )
    assert base.meta.noise == noise.summarize(base.rows)


def test_a_plan_that_takes_hours_is_announced_before_it_starts():
    from seqbench.execute.session import _notices
    from seqbench.plan.cells import make_plan

    lengths = ",".join(str(8 * k) for k in range(1, 41))
    long = resolve_config(
        axes={"arch": ("rnn", "lstm", "gru", "conv1d"), "seq_len": tuple(int(t) for t in lengths.split(",")),
              "batch_size": (1, 2, 4, 8, 16), "hidden": (8, 16, 32, 64, 128)},
        settings={"min_time": 2.0, "processes": 5},
    )  # fmt: skip
    lines = _notices(long, make_plan(long), "")
    assert lines[-1] == (
        "this plan is 8,000 cells: at least 5.6 hours of timing alone (2 s of samples and 5 "
        "warm-ups of 0.1 s a cell); Ctrl-C keeps what finished, and --resume goes on from there"
    )
    short = resolve_config(axes={"arch": ("rnn",)}, settings={})
    assert not any("hours" in line for line in _notices(short, make_plan(short), ""))
