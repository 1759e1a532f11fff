from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqbench.core.errors import ConfigError
from seqbench.core.settings import TrainSettings
from seqbench.core.timing import FakeClock
from seqbench.measure.training import train_task
from seqbench.models import build_model, expected_params, forward_flops, normalize_cell
from seqbench.models.base import count_parameters
from seqbench.tasks import new_task, prepared
from seqbench.tasks.real import OOV, START, pad_sequences, read_acl_imdb, read_imdb_npz, tokenize
from tests.helpers import make_cell


def ready(name, seq_len=64, vocab=10_000, seed=0, data=None):
    task = new_task(name)
    task.prepare(seq_len, vocab, seed, data)
    return task


# --------------------------------------------------------------------------- adding


def test_adding_inputs_mark_one_value_in_each_half_and_the_target_is_their_sum():
    task = ready("adding", seq_len=50)
    batch = task.train_batch(256, torch.Generator().manual_seed(3))
    assert batch.x.shape == (256, 50, 2) and batch.y.shape == (256, 1)
    values, markers = batch.x[..., 0], batch.x[..., 1]
    assert ((values >= 0) & (values <= 1)).all()
    assert (markers.sum(1) == 2).all()
    assert (markers[:, :25].sum(1) == 1).all() and (markers[:, 25:].sum(1) == 1).all()
    torch.testing.assert_close(batch.y.squeeze(1), (values * markers).sum(1))


def test_adding_chance_is_the_eval_sets_constant_guess_beside_a_sixth():
    task = ready("adding", seq_len=40)
    assert task.chance_theory() == pytest.approx(1 / 6)
    ev = task.eval_set()
    best = torch.full((len(ev.y), 1), float(ev.y.mean()))
    assert task.chance() == pytest.approx(task.evaluate(best, ev.y), rel=1e-6)
    constant = torch.ones(len(ev.y), 1)
    assert task.evaluate(constant, ev.y) == pytest.approx(1 / 6, abs=0.015)


def test_the_eval_set_is_fixed_per_seed_and_apart_from_training():
    a, b, c = ready("adding", seed=1), ready("adding", seed=1), ready("adding", seed=2)
    assert torch.equal(a.eval_set().x, b.eval_set().x)
    assert not torch.equal(a.eval_set().x, c.eval_set().x)
    train = a.train_batch(len(a.eval_set().y), torch.Generator().manual_seed(1))
    assert not torch.equal(train.x, a.eval_set().x)


# --------------------------------------------------------------------------- copy


def test_copy_sequences_follow_bai_et_al():
    task = ready("copy", seq_len=40)  # T = 20: ten digits, 19 blanks, eleven 9s
    batch = task.train_batch(8, torch.Generator().manual_seed(0))
    symbols = batch.x.argmax(-1)
    assert batch.x.shape == (8, 40, 10) and batch.y.shape == (8, 40)
    digits = symbols[:, :10]
    assert ((digits >= 1) & (digits <= 8)).all()
    assert (symbols[:, 10:29] == 0).all() and (symbols[:, 29:] == 9).all()
    assert (batch.y[:, :30] == 0).all()
    assert torch.equal(batch.y[:, 30:], digits)


@pytest.mark.parametrize("seq_len", [30, 120, 1020])
def test_copy_chance_is_what_the_memoryless_strategy_scores(seq_len):
    task = ready("copy", seq_len=seq_len)
    ev = task.eval_set()
    logits = torch.full((len(ev.y), seq_len, 10), -1e9)
    logits[:, : seq_len - 10, 0] = 0.0  # certain of a blank...
    logits[:, seq_len - 10 :, 1:9] = 0.0  # ...then a uniform guess among the eight digits
    assert task.chance_theory() == pytest.approx(10 * math.log(8) / seq_len)
    assert task.evaluate(logits, ev.y) == pytest.approx(task.chance_theory(), rel=1e-6)
    # measured: each step's own symbol frequencies, a little below ln 8 on 1,000 sequences
    assert task.chance() == pytest.approx(task.chance_theory(), rel=0.01)
    assert task.chance() < task.chance_theory()


# --------------------------------------------------------------------------- digits


def test_digits_are_64_one_pixel_steps_with_a_fixed_held_out_fifth():
    pytest.importorskip("sklearn")
    task = ready("digits")
    ev = task.eval_set()
    assert ev.x.shape == (359, 64, 1) and task.x_train.shape == (1438, 64, 1)
    assert float(ev.x.min()) >= 0 and float(ev.x.max()) == 1.0
    assert set(ev.y.tolist()) == set(range(10))
    assert task.chance() == pytest.approx(float(torch.bincount(ev.y).max()) / 359)
    again = ready("digits")
    assert torch.equal(again.eval_set().x, ev.x)
    flat_train = {tuple(r) for r in task.x_train.squeeze(-1).tolist()}
    assert (
        sum(tuple(r) in flat_train for r in ev.x.squeeze(-1).tolist()) < 5
    )  # (a few duplicate images exist)


def test_digits_pins_the_length_to_64_pixels():
    cell = normalize_cell(make_cell(task="digits", seq_len=500, vocab=10_000, embed=32))
    assert (cell.seq_len, cell.vocab, cell.embed) == (64, 0, 1)


# --------------------------------------------------------------------------- imdb


def write_npz(path, x_train, y_train, x_test, y_test):
    def obj(rows):
        arr = np.empty(len(rows), dtype=object)
        arr[:] = rows
        return arr

    np.savez(
        path,
        x_train=obj(x_train),
        y_train=np.array(y_train),
        x_test=obj(x_test),
        y_test=np.array(y_test),
    )


@pytest.fixture
def imdb_npz(tmp_path):
    path = tmp_path / "imdb.npz"
    rng = np.random.default_rng(0)
    reviews = [list(rng.integers(1, 40, size=rng.integers(3, 30))) for _ in range(60)]
    labels = [i % 2 for i in range(60)]
    write_npz(path, reviews[:40], labels[:40], reviews[40:], labels[40:])
    return path


def test_the_npz_reader_maps_ranks_as_keras_load_data_does(tmp_path):
    path = tmp_path / "tiny.npz"
    write_npz(path, [[1, 2, 30]], [1], [[5, 40]], [0])
    x_train, y_train, x_test, y_test = read_imdb_npz(path, vocab=35)
    assert x_train == [[START, 4, 5, 33]]  # ranks + 3, below the vocabulary of 35
    assert x_test == [[START, 8, OOV]]  # 40 + 3 = 43 >= 35: out of vocabulary
    assert list(y_train) == [1] and list(y_test) == [0]


def test_padding_and_truncation_keep_the_end_of_a_review():
    out = pad_sequences([[1, 2, 3], [1, 2, 3, 4, 5, 6]], 4)
    assert out.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6]]


def test_the_aclimdb_folder_reads_like_the_npz(tmp_path):
    for split in ("train", "test"):
        for sub, text in (("pos", "A great film.<br />Great!"), ("neg", "a dull, dull film")):
            folder = tmp_path / "aclImdb" / split / sub
            folder.mkdir(parents=True)
            (folder / "0_1.txt").write_text(text)
    x_train, y_train, _, y_test = read_acl_imdb(tmp_path / "aclImdb", vocab=100)
    # word ranks in training: film 1, great 2 (twice), dull 3 (twice)... ties keep first-seen order
    assert tokenize("A great film.<br />Great!") == ["a", "great", "film", "great"]
    assert x_train[0][0] == START and list(y_train) == [1, 0] and list(y_test) == [1, 0]
    assert len(x_train[0]) == 5


def test_the_imdb_task_trains_on_the_fixture(imdb_npz):
    task = prepared("imdb", 16, 50, 0, str(imdb_npz))
    assert task.eval_set().x.shape == (20, 16)
    assert task.chance() == 0.5
    cell = make_cell(task="imdb", vocab=50, seq_len=16, arch="gru", mode="train")
    model = build_model(cell)
    assert count_parameters(model) == expected_params(cell)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p: p.write_text("not an archive"),
            "cannot read as a Keras imdb.npz (not a zip archive)",
        ),
        (lambda p: np.savez(p, a=np.arange(3)), "not a Keras imdb.npz (missing array 'x_train')"),
        (lambda p: write_npz(p, [[1, 2]], [3], [[1]], [0]), "labels must be 0 or 1"),
        (lambda p: write_npz(p, [[1, 2]], [1, 0], [[1]], [0]), "reviews and labels do not pair up"),
    ],
)
def test_a_malformed_imdb_file_is_one_clear_line(tmp_path, make, message):
    path = tmp_path / "bad.npz"
    make(path)
    if not path.exists():  # np.savez adds the suffix itself
        path = tmp_path / "bad.npz"
    with pytest.raises(ConfigError) as info:
        ready("imdb", data=str(path))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_imdb_needs_data_and_never_downloads(tmp_path):
    with pytest.raises(ConfigError, match="give --data PATH"):
        ready("imdb")
    with pytest.raises(ConfigError, match="no such file or folder"):
        ready("imdb", data=str(tmp_path / "nope.npz"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not an aclImdb folder"):
        ready("imdb", data=str(tmp_path / "empty"))


# --------------------------------------------------------------------------- models and training


@pytest.mark.parametrize("name", ["adding", "copy", "digits"])
@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
def test_task_models_count_and_shape_as_the_formulas_say(name, arch):
    cell = normalize_cell(make_cell(task=name, arch=arch, seq_len=30, bidirectional=True))
    model = build_model(cell)
    assert count_parameters(model) == expected_params(cell)
    task = ready(name, seq_len=cell.seq_len)
    out = model(task.train_batch(3, torch.Generator().manual_seed(0)).x)
    expected = (3, cell.seq_len, 10) if name == "copy" else (3, task.outputs)
    assert out.shape == expected


def test_a_per_step_head_counts_its_flops_at_every_step():
    plain = make_cell(task="adding", seq_len=30)
    copy = make_cell(task="copy", seq_len=30)
    core = forward_flops(normalize_cell(plain)) - 2 * 8  # head: F=8 -> 1 output, once
    assert forward_flops(normalize_cell(copy)) - 2 * 8 * 10 * 30 != core  # different input width...
    assert normalize_cell(copy).embed == 10 and normalize_cell(plain).embed == 2


def test_training_stops_at_its_step_budget_and_records_when_it_first_met_the_target(
    monkeypatch,
):
    from seqbench.measure import training

    cell = normalize_cell(make_cell(task="adding", seq_len=20, arch="lstm", mode="train"))
    task = ready("adding", seq_len=20)
    model = build_model(cell)
    # Validation scored every 10 steps (the curve; the target, mse <= 0.2, is met at the
    # third), then the test set once at the end.
    scores = iter([0.5, 0.3, 0.1, 0.05, 0.07])
    monkeypatch.setattr(training, "evaluate", lambda *args: next(scores))
    steps = []
    settings = TrainSettings(train_steps=40, target=0.2, eval_every=10)
    result = train_task(
        model, lambda x, y: steps.append(x.shape), task, settings, batch_size=16,
        device=torch.device("cpu"), autocast=_null, seed=0, clock=FakeClock([0.01] * 40, call=True),
    )  # fmt: skip
    assert (result.steps, len(steps), steps[0]) == (40, 40, (16, 20, 2))
    assert result.time_s == pytest.approx(0.4)
    assert result.time_to_target_s == pytest.approx(0.3)  # met at the third evaluation
    assert result.steps_to_target == 30
    assert result.validation_value == 0.05  # the last curve point, after all 40 steps
    assert result.metric_value == 0.07  # the test set, scored once at the end
    assert [p[0] for p in result.curve] == [10, 20, 30, 40]
    assert result.budget == "steps"
    assert next(scores, None) is None


def test_a_target_never_met_has_no_time_to_target(monkeypatch):
    from seqbench.measure import training

    task = ready("adding", seq_len=20)
    model = build_model(normalize_cell(make_cell(task="adding", seq_len=20)))
    monkeypatch.setattr(training, "evaluate", lambda *args: 0.5)
    result = train_task(
        model, lambda x, y: None, task, TrainSettings(train_steps=20, target=0.2, eval_every=10),
        batch_size=4, device=torch.device("cpu"), autocast=_null, seed=0,
        clock=FakeClock([0.01] * 20),
    )  # fmt: skip
    assert (result.steps, result.metric_value, result.time_to_target_s) == (20, 0.5, None)


def test_a_time_budget_stops_training():
    task = ready("adding", seq_len=20)
    model = build_model(normalize_cell(make_cell(task="adding", seq_len=20)))
    result = train_task(
        model, lambda x, y: model(x), task, TrainSettings(train_time=0.05), batch_size=4,
        device=torch.device("cpu"), autocast=_null, seed=0,
    )  # fmt: skip
    assert result.time_s >= 0.05 and result.steps >= 1 and result.time_to_target_s is None
    assert result.budget == "time"


def _null():
    import contextlib

    return contextlib.nullcontext()


# --------------------------------------------------------------------------- gradient flow


# The horizon on recurrences of known decay: tests/test_baselines.py.


def test_gated_cells_keep_the_gradient_longer_than_the_simple_rnn_at_init():
    from seqbench.measure.gradflow import trace_gradient_flow

    profiles = {
        arch: trace_gradient_flow(
            make_cell(arch=arch, seq_len=120, hidden=32, mode="train"), TrainSettings()
        )
        for arch in ("rnn", "lstm", "gru")
    }
    far = {arch: p.initial[0] / max(p.initial) for arch, p in profiles.items()}  # 119 steps back
    assert far["rnn"] < far["lstm"] and far["rnn"] < far["gru"]


# --------------------------------------------------------------------------- from the command line


def test_run_with_a_task_reports_score_chance_and_speed(cli, tmp_path):
    from seqbench.cli import app
    from seqbench.storage import load_run

    args = ["run", "--out", str(tmp_path), "--task", "adding", "--arch", "rnn,conv1d", "--seq-len", "48",
            "--batch-size", "8", "--hidden", "8", "--train-steps", "20", "--grad-flow",
            "--min-time", "0", "--min-repeats", "3", "--max-repeats", "3", "--warmup-time", "0"]  # fmt: skip
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    chance = ready("adding", seq_len=48).chance()  # the eval set's constant guess
    assert "score (chance)" in result.stdout and f"({chance:.3f})" in result.stdout
    for row in load_run("latest", tmp_path).rows:
        assert (row.task, row.metric, row.train_steps, row.chance_value) == (
            "adding",
            "mse",
            20,
            pytest.approx(chance),
        )
        assert (
            row.metric_value is not None
            and row.median_s is not None
            and row.memory_horizon is not None
        )
        assert (row.vocab, row.embed) == (0, 2)  # dense inputs: no vocabulary, two channels


def test_an_isolated_task_cell_is_trained_in_its_worker(cli, tmp_path):
    from seqbench.cli import app
    from seqbench.storage import load_run

    args = ["run", "--out", str(tmp_path), "--task", "copy", "--arch", "gru", "--seq-len", "30", "--mode", "infer",
            "--batch-size", "4", "--hidden", "8", "--train-steps", "5", "--isolate",
            "--min-time", "0", "--min-repeats", "3", "--max-repeats", "3", "--warmup-time", "0"]  # fmt: skip
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    loaded = load_run("latest", tmp_path)
    (row,) = loaded.rows
    assert row.train_steps == 5 and row.metric == "cross_entropy" and row.peak_rss_bytes > 0
    assert [p[0] for p in loaded.curves[row.cell_id]] == [5]  # the curve came over the pipe


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--task", "mnist"],
            "error: --task: unknown task 'mnist'; did you mean 'mnist1d'? choose from: adding, copy, digits, imdb, mnist1d, mqar, selective-copy, induction, listops, lm, or none",
        ),
        (["--task", "imdb"], "the imdb task reads a local copy: give --data PATH"),
        (
            ["--task", "imdb", "--data", "/nowhere/imdb.npz"],
            "/nowhere/imdb.npz: no such file or folder (--data)",
        ),
        (
            ["--task", "adding", "--train-steps", "0"],
            "--train-steps: expected a positive integer, got 0",
        ),
        (
            ["--task", "adding", "--optimizer", "sgd"],
            "--optimizer: expected adam or rmsprop, got 'sgd'",
        ),
    ],
)
def test_bad_task_options_are_one_line(cli, tmp_path, args, message):
    from seqbench.cli import app

    result = cli.invoke(app, ["run", "--out", str(tmp_path), "--arch", "rnn", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert not list(tmp_path.glob("*/results.csv"))  # nothing was started


def test_gradflow_shows_the_rnn_forgetting_first(cli):
    from seqbench.cli import app

    result = cli.invoke(
        app,
        ["gradflow", "--seq-len", "60", "--hidden", "16", "--batch-size", "4", "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    import json

    profiles = {p["cell"]["arch"]: p for p in json.loads(result.stdout)}
    assert set(profiles) == {"rnn", "lstm", "gru"}
    assert all(len(p["initial"]) == 60 for p in profiles.values())
    assert profiles["rnn"]["initial_horizon"] <= profiles["lstm"]["initial_horizon"]


def test_gradflow_after_training_needs_a_task(cli):
    from seqbench.cli import app

    result = cli.invoke(app, ["gradflow", "--train-steps", "10"])
    assert result.exit_code == 2 and "--train-steps needs a --task" in result.stderr


def test_gradflow_draws_its_profile_to_a_file_and_the_terminal(cli, tmp_path):
    from seqbench.cli import app

    pytest.importorskip("matplotlib")
    pytest.importorskip("plotext")
    out = tmp_path / "flow.png"
    args = [
        "gradflow",
        "--arch",
        "rnn,gru",
        "--seq-len",
        "40",
        "--hidden",
        "8",
        "--batch-size",
        "2",
        "--plot",
        "--out",
        str(out),
    ]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        "steps back from the end" in result.stdout and "memory horizon threshold" in result.stdout
    )
    bad = cli.invoke(app, ["gradflow", "--out", str(tmp_path / "flow.gif")])
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1


@pytest.mark.parametrize(("task", "length", "least"), [("adding", 1, 2), ("copy", 20, 21)])
def test_a_length_a_task_cannot_have_is_one_line_before_anything_runs(
    cli, tmp_path, task, length, least
):
    # The adding problem at T = 1 made its data with randint(0, 0): a RuntimeError traceback.
    from seqbench.cli import app

    result = cli.invoke(app, ["run", "--task", task, "--arch", "lstm", "--seq-len", str(length),
                              "--root", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: the {task} task needs seq_len >= {least}\n"
    assert list(tmp_path.iterdir()) == []
