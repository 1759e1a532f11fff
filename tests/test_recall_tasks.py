"""The recall tasks and ListOps: data laid out as their papers lay it out, chance measured,
perfect answers scoring 100%, and sizes set by variants (`mqar(pairs=16,vocab=256)`)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqbench.core.errors import ConfigError
from seqbench.measure import skip_reason
from seqbench.models import normalize_cell
from seqbench.tasks import new_task, prepared, task_name
from seqbench.tasks.recall import IGNORE
from tests.helpers import make_cell

RECALL = ["mqar(pairs=4,vocab=64)", "selective-copy(tokens=4)", "induction"]
LISTOPS = "listops(examples=300)"


def _ready(name: str, seq_len: int = 64, seed: int = 0):
    return prepared(name, seq_len, 0, seed, None)


def _one_hot_answers(task, y: torch.Tensor) -> torch.Tensor:
    """Logits that give every scored target (and token 0 where nothing is scored)."""
    return F.one_hot(y.clamp_min(0), task.outputs).float() * 10


@pytest.mark.parametrize("name", [*RECALL, LISTOPS])
def test_a_model_given_the_answers_scores_100_percent_and_no_loss(name):
    task = _ready(name)
    batch = task.eval_set()
    assert task.evaluate(_one_hot_answers(task, batch.y), batch.y) == 1.0
    assert float(task.loss(_one_hot_answers(task, batch.y) * 10, batch.y)) < 1e-6


@pytest.mark.parametrize("name", [*RECALL, LISTOPS])
def test_always_answering_the_most_frequent_token_scores_chance(name):
    task = _ready(name)
    batch = task.eval_set()
    scored = batch.y[batch.y != IGNORE]
    guess = torch.zeros(*batch.y.shape, task.outputs)
    guess[..., torch.bincount(scored).argmax()] = 1.0
    assert task.evaluate(guess, batch.y) == pytest.approx(task.chance())
    if name != LISTOPS:  # on 1,000 examples the measured chance is near the theory's
        assert abs(task.chance() - task.chance_theory()) < 0.02


@pytest.mark.parametrize("name", ["mqar(pairs=4,vocab=64)", "selective-copy(tokens=4)"])
def test_the_loss_and_the_metric_skip_the_tokens_that_are_not_scored(name):
    task = _ready(name)
    batch = task.eval_set()
    logits = _one_hot_answers(task, batch.y)
    noisy = logits + torch.where(batch.y[..., None] == IGNORE, torch.randn_like(logits) * 50, 0.0)
    assert task.evaluate(noisy, batch.y) == 1.0
    assert float(task.loss(noisy * 10, batch.y)) < 1e-6


def test_mqar_asks_every_key_once_more_and_scores_its_value():
    task = _ready("mqar(pairs=8,vocab=64)", seq_len=96)
    x, y = task.eval_set().x, task.eval_set().y
    for row in range(20):
        keys, values = x[row, 0:16:2], x[row, 1:16:2]
        assert len(set(keys.tolist())) == 8 and all(1 <= k < 32 for k in keys.tolist())
        assert all(32 <= v < 64 for v in values.tolist())
        asked = (y[row] != IGNORE).nonzero().flatten()
        assert len(asked) == 8 and all(p >= 16 and p % 2 == 0 for p in asked.tolist())
        answer = dict(zip(keys.tolist(), values.tolist(), strict=True))
        assert {int(x[row, p]): int(y[row, p]) for p in asked} == answer
    # Zoology's power law: most queries soon after the pairs
    asked = (y != IGNORE).nonzero()[:, 1]
    assert (asked < 16 + 40).float().mean() > 0.5


def test_selective_copying_repeats_the_scattered_tokens_in_order_at_the_cues():
    task = _ready("selective-copy(tokens=4)", seq_len=40)
    x, y = task.eval_set().x, task.eval_set().y
    assert (x[:, -4:] == 1).all() and (y[:, :-4] == IGNORE).all()
    for row in range(20):
        scattered = x[row, :-4][x[row, :-4] != 0]
        assert scattered.tolist() == y[row, -4:].tolist()
        assert all(2 <= t < 16 for t in scattered.tolist())


def test_induction_answers_the_token_after_the_triggers_first_appearance():
    task = _ready("induction", seq_len=32)
    x, y = task.eval_set().x, task.eval_set().y
    assert y.shape == (1000,) and (x[:, -1] == 0).all()
    for row in range(20):
        (first, last) = (x[row] == 0).nonzero().flatten().tolist()
        assert last == 31 and first < 15 and y[row] == x[row, first + 1] != 0


def test_the_same_seed_gives_the_same_sets_and_training_never_sees_them():
    a, b = _ready("mqar(pairs=4,vocab=64)", seed=3), new_task("mqar(pairs=4,vocab=64)")
    b.prepare(64, 0, 3, None)
    assert torch.equal(a.eval_set().x, b.eval_set().x)
    train = a.train_batch(64, torch.Generator().manual_seed(4))
    assert not torch.equal(train.x, a.eval_set().x[:64])
    assert not torch.equal(a.eval_set().x, _ready("mqar(pairs=4,vocab=64)", seed=4).eval_set().x)


def test_a_recall_cell_reads_the_tasks_own_vocabulary_named_canonically():
    cell = normalize_cell(make_cell(task="mqar(vocab=256, pairs=8)", vocab=50, seq_len=64))
    assert (cell.task, cell.vocab) == ("mqar(vocab=256)", 256)
    assert normalize_cell(make_cell(task="mqar(pairs=8)", seq_len=64)).task == "mqar"
    assert task_name("selective-copy(vocab=16,tokens=8)") == "selective-copy(tokens=8)"


def test_a_sequence_too_short_or_an_architecture_without_per_step_outputs_is_skipped():
    short = make_cell(task="mqar(pairs=8)", seq_len=16, vocab=8192)
    assert skip_reason(short) == "the mqar(pairs=8) task needs seq_len >= 32"
    conv = make_cell(arch="conv1d", task="selective-copy", seq_len=64)
    assert "needs one output per step, which conv1d does not give" in skip_reason(conv)
    assert skip_reason(make_cell(arch="conv1d", task="induction", seq_len=64)) is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("mqar(pair=3)", "'mqar(pair=3)': the mqar task has no setting 'pair'; did you mean "
         "'pairs'? it takes pairs (default 8), vocab (default 8192)"),
        ("selectivecopy", "unknown task 'selectivecopy'; did you mean 'selective-copy'? choose "
         "from:"),
        ("mqar(pairs=0)", "pairs must be a whole number above 0, got '0'"),
        ("mqar(pairs=x)", "pairs must be a whole number above 0, got 'x'"),
        ("mqar(pairs=40,vocab=64)", "mqar: vocab 64 leaves too few keys and values for 40 pairs"),
        ("induction(vocab=2)", "induction: vocab must be at least 3, got 2"),
        ("adding(x=1)", "the adding task has no setting 'x'"),
        ("recall(x=1)", "unknown task 'recall'; choose from:"),
    ],
)  # fmt: skip
def test_a_wrong_task_variant_is_one_clear_error(name, message):
    with pytest.raises(ConfigError) as caught:
        new_task(name)
    assert message in str(caught.value)


def test_recall_tasks_run_and_save_from_the_command_line(cli, tmp_path):
    from seqbench.cli import app
    from seqbench.storage import load_run
    from tests.helpers import FAST_FLAGS

    result = cli.invoke(
        app,
        ["run", "--out", str(tmp_path), "--arch", "gru", "--task",
         "mqar(pairs=2,vocab=16),selective-copy(tokens=2,vocab=8),induction(vocab=8),"
         "listops(examples=40)",
         "--seq-len", "16", "--hidden", "8", "--batch-size", "4", "--mode", "train",
         "--train-steps", "3", *FAST_FLAGS],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {r.task: r for r in load_run("latest", tmp_path).rows}
    assert set(rows) == {"mqar(pairs=2,vocab=16)", "selective-copy(tokens=2,vocab=8)",
                         "induction(vocab=8)", "listops(examples=40)"}  # fmt: skip
    for name, row in rows.items():
        assert (
            row.status == "ok"
            and row.metric == "accuracy"
            and row.vocab == new_task(name).vocab_size
        )
        assert row.chance_value == pytest.approx(_ready(name, 16).chance())
        assert 0.0 <= row.metric_value <= 1.0


# --------------------------------------------------------------------------- ListOps


def _tokens(text: str) -> list[int]:
    from seqbench.tasks.listops import SYMBOLS

    return [SYMBOLS.index(symbol) for symbol in text.split()]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),
        ("[MED 1 2 3 4 ]", 2),  # the mean of the middle two, truncated: LRA's int(np.median)
        ("[MED 8 1 5 ]", 5),
        ("[SM 5 7 [MAX 1 3 ] ]", 5),  # (5 + 7 + 3) mod 10
        ("[MIN [SM 9 9 ] [MED 7 6 ] ]", 6),
    ],
)
def test_listops_values_by_hand(text, value):
    from seqbench.tasks.listops import evaluate_tokens

    assert evaluate_tokens([0, 0, *_tokens(text)]) == value


def test_listops_examples_are_padded_in_front_sized_and_labelled_by_their_value():
    from seqbench.tasks.listops import evaluate_tokens

    task = _ready(LISTOPS, seq_len=48)
    x, y = task.eval_set().x, task.eval_set().y
    assert x.shape == (1000, 48) and y.shape == (1000,)
    lengths = (x != 0).sum(dim=1)
    assert ((lengths > 12) & (lengths < 48)).all()
    assert all(x[i, 48 - lengths[i] :].ne(0).all() for i in range(100))  # padding only in front
    assert [evaluate_tokens(row.tolist()) for row in x] == y.tolist()
    assert set(y.tolist()) == set(range(10))
    train = {tuple(row.tolist()) for row in task.x_train} | {
        tuple(row.tolist()) for row in task.validation.x
    }
    assert len(train) == 300 and not train & {tuple(row.tolist()) for row in x}


def test_listops_depth_and_arguments_bound_the_trees():
    task = _ready("listops(depth=2,args=3,examples=50)", seq_len=16)
    x = task.eval_set().x
    # depth 2: one operator over 2 or 3 digits (4 or 5 tokens); more than 16/4 = 4 tokens kept
    assert ((x != 0).sum(dim=1) == 5).all()
    assert ((x[:, -5] >= 11) & (x[:, -5] <= 14) & (x[:, -1] == 15)).all()


def test_listops_says_when_no_expression_can_have_the_length_asked():
    with pytest.raises(ConfigError, match=r"^listops: almost no expression of depth <= 2 with <= "
                       r"3 arguments is between 8 and 32 tokens$"):  # fmt: skip
        _ready("listops(depth=2,args=3,examples=50)", seq_len=32)


def test_recall_is_drawn_against_the_state_each_model_may_keep(cli, tmp_path):
    from seqbench.cli import app
    from seqbench.models import REGISTRY, core_shape
    from seqbench.output.plots import build_chart
    from seqbench.storage import load_run
    from tests.helpers import FAST_FLAGS

    result = cli.invoke(
        app,
        ["run", "--out", str(tmp_path), "--arch", "lstm,mamba,transformer-causal,transformer",
         "--task", "induction(vocab=8)", "--seq-len", "16", "--hidden", "8", "--batch-size",
         "4", "--mode", "train", "--train-steps", "2", *FAST_FLAGS],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {r.arch: r for r in load_run("latest", tmp_path).rows}
    for arch in ("lstm", "mamba", "transformer-causal"):  # the formula, as step mode measures
        cell = rows[arch].cell
        assert rows[arch].state_bytes == REGISTRY[arch].state_bytes(core_shape(cell), 16, 4) > 0
    assert rows["transformer"].state_bytes is None  # it cannot stream: no state to keep
    chart = build_chart(list(rows.values()), "metric_value", against="state_bytes")
    assert chart.title == "accuracy against state per sequence"
    drawn = {s.label: (s.x[0], s.y[0]) for s in chart.series}
    assert set(drawn) == {"lstm", "mamba", "transformer-causal"}
    assert drawn["lstm"][1] == rows["lstm"].metric_value
    assert drawn["mamba"][0] / drawn["lstm"][0] == pytest.approx(
        rows["mamba"].state_bytes / rows["lstm"].state_bytes
    )
    svg = tmp_path / "recall.svg"
    plotted = cli.invoke(
        app, ["plot", "latest", "--root", str(tmp_path), "--against", "state_bytes", "--out",
              str(svg)],
    )  # fmt: skip
    assert plotted.exit_code == 0, plotted.output
    assert svg.read_text().startswith("<?xml")
    wrong = cli.invoke(app, ["plot", "latest", "--root", str(tmp_path), "--against", "flops"])
    assert wrong.exit_code == 2
    assert wrong.stderr == "error: --against: expected one of median_s, state_bytes; got 'flops'\n"


@pytest.mark.parametrize(
    ("name", "lengths"),
    [
        ("induction", [512, 1024, 2048, 4096]),  # Mamba's: trained at 256, scored to 16×
        ("induction(extrapolate=3)", [512]),
        ("induction(extrapolate=1)", []),
    ],
)
def test_induction_is_scored_at_doubled_lengths_up_to_its_limit(name, lengths):
    assert new_task(name).longer_lengths(256) == lengths


class _Blind(torch.nn.Module):
    """Always answers token 0: the trigger, which is never an answer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.one_hot(torch.zeros(len(x), dtype=torch.long), 8).float()


class _Induction(torch.nn.Module):
    """Solves induction exactly, at any length: the token after the trigger's first place."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = (x == 0).int().argmax(dim=1)
        answer = x[torch.arange(len(x)), first + 1]
        return F.one_hot(answer, 8).float()


def test_a_model_that_can_recall_at_any_length_scores_100_percent_at_every_longer_length():
    import contextlib
    from types import SimpleNamespace

    from seqbench.core.settings import TrainSettings
    from seqbench.measure.training import score_longer

    cell = make_cell(task="induction(vocab=8,extrapolate=8)", seq_len=16, vocab=8)
    work = SimpleNamespace(cell=cell, model=_Induction(), autocast=contextlib.nullcontext)
    task = new_task(cell.task)
    assert score_longer(work, task, TrainSettings(), 0) == "32:1 64:1 128:1"
    blind = SimpleNamespace(cell=cell, model=_Blind(), autocast=work.autocast)
    scores = score_longer(blind, task, TrainSettings(), 0).split()
    assert [s.split(":")[0] for s in scores] == ["32", "64", "128"]
    assert all(float(s.split(":")[1]) == 0 for s in scores)
    assert score_longer(work, new_task("mqar(pairs=2,vocab=16)"), TrainSettings(), 0) == ""


def test_a_trained_induction_row_carries_its_scores_at_longer_lengths(cli, tmp_path):
    from seqbench.cli import app
    from seqbench.storage import load_run
    from tests.helpers import FAST_FLAGS

    result = cli.invoke(
        app,
        ["run", "--out", str(tmp_path), "--arch", "gru", "--task",
         "induction(vocab=8,extrapolate=4),mqar(pairs=2,vocab=16)", "--seq-len", "16",
         "--hidden", "8", "--batch-size", "4", "--mode", "train", "--train-steps", "3",
         *FAST_FLAGS],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {r.task: r for r in load_run("latest", tmp_path).rows}
    longer = rows["induction(vocab=8,extrapolate=4)"].extrapolation.split()
    assert [s.split(":")[0] for s in longer] == ["32", "64"]
    assert all(0 <= float(s.split(":")[1]) <= 1 for s in longer)
    assert rows["mqar(pairs=2,vocab=16)"].extrapolation == ""


def test_gradient_flow_takes_the_loss_at_the_last_scored_step():
    import math

    from seqbench.core.settings import TrainSettings
    from seqbench.measure.gradflow import trace_gradient_flow

    # mqar's last step is not a query: its loss there would be empty (NaN, no gradient)
    cell = normalize_cell(
        make_cell(arch="lstm", task="mqar(pairs=2,vocab=16)", seq_len=32, mode="train")
    )
    profile = trace_gradient_flow(cell, TrainSettings())
    assert all(math.isfinite(v) for v in profile.initial) and sum(profile.initial) > 0
    assert profile.initial_horizon > 0
