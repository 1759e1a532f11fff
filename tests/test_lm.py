"""The `lm` task: text from a Markov source whose entropy is known, chance and the floor
scored exactly, causal models only, and a model's own language-model head and loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqbench.cli import app
from seqbench.measure.workload import reads_ahead
from seqbench.models import build_model, normalize_cell
from seqbench.storage import load_run
from seqbench.tasks import prepared
from tests.helpers import make_cell

pytestmark = pytest.mark.usefixtures("one_thread")


def _ready(name: str = "lm(vocab=32)", seq_len: int = 24, seed: int = 0):
    return prepared(name, seq_len, 0, seed, None)


def test_every_next_token_is_a_successor_of_the_one_before():
    task = _ready()
    batch = task.eval_set()
    assert batch.x.shape == batch.y.shape == (1000, 24)
    assert torch.equal(batch.x[:, 1:], batch.y[:, :-1])  # y is x moved on by one token
    allowed = task.transition() > 0
    assert bool(allowed[batch.x, batch.y].all())
    # the source is the task's (same seed: same chain), the examples the caller's stream
    again = _ready(seq_len=24, seed=0)
    assert torch.equal(again.successors, task.successors)
    assert not torch.equal(_ready(seed=1).successors, task.successors)


def test_guessing_scores_ln_v_and_the_true_law_scores_the_entropy_floor():
    task = _ready()
    batch = task.eval_set()
    uniform = torch.zeros(*batch.y.shape, 32)
    assert task.evaluate(uniform, batch.y) == pytest.approx(math.log(32), abs=1e-6)
    assert task.chance_theory() == math.log(32)
    assert abs(task.chance() - math.log(32)) < 0.01  # every token equally likely everywhere
    law = task.transition().float().log()[batch.x]  # (B, T, V): log p(next | current)
    assert task.evaluate(law, batch.y) == pytest.approx(task.floor, abs=0.02)
    # 4 successors weighted 1, 1/2, 1/3, 1/4: entropy 1.28 nats, less where two coincide
    weights = torch.tensor([1, 1 / 2, 1 / 3, 1 / 4]) / (25 / 12)
    assert 1.1 < task.floor <= float(-(weights * weights.log()).sum()) + 1e-9


def test_one_branch_is_deterministic_and_a_model_given_the_answer_scores_no_loss():
    task = _ready("lm(vocab=32,branches=1)")
    batch = task.eval_set()
    assert task.floor == 0.0
    assert task.evaluate(F.one_hot(batch.y, 32).float() * 100, batch.y) < 1e-6


@pytest.mark.parametrize(
    ("arch", "bidirectional", "ahead"),
    [("lstm", False, False), ("transformer-causal", False, False), ("lstm", True, True),
     ("transformer", False, True), ("tcn", False, False)],
)  # fmt: skip
def test_a_model_that_reads_ahead_is_found(arch, bidirectional, ahead):
    torch.manual_seed(0)
    cell = normalize_cell(
        make_cell(arch=arch, bidirectional=bidirectional, task="lm(vocab=32)", seq_len=16)
    )
    found = reads_ahead(build_model(cell), cell)
    assert (found is not None) == ahead
    if ahead:
        assert 0 <= found < 8


def test_a_run_trains_causal_models_and_skips_one_that_reads_ahead(cli, tmp_path):
    result = cli.invoke(
        app,
        ["run", "--arch", "lstm,transformer", "--task", "lm(vocab=32)", "--seq-len", "16",
         "--batch-size", "8", "--hidden", "16", "--embed", "16", "--mode", "train",
         "--train-steps", "30", "--processes", "1", "--min-time", "0", "--min-repeats", "3",
         "--threads", "1", "--no-ceiling", "--root", str(tmp_path), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {r.arch: r for r in load_run("latest", tmp_path).rows}
    assert rows["lstm"].status == "ok" and rows["lstm"].metric == "cross_entropy"
    assert rows["lstm"].metric_value < rows["lstm"].chance_value  # 30 steps learn something
    assert rows["lstm"].chance_value == pytest.approx(math.log(32), abs=0.01)
    assert rows["transformer"].status == "skipped"
    assert "transformer reads ahead: its output at step 0 moved" in rows["transformer"].message
