"""Accuracy you can cite: seeds and rates as axes, the validation split, the rate chosen on
it, scores over seeds with their interval, the seed-aware gate, and learning curves."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from scipy import stats as sps

from seqbench.core.errors import ConfigError
from seqbench.core.schema import Measurement, ResultRow, metric_range
from seqbench.judge.accuracy import compare_groups, select_rate, summarize_accuracy
from seqbench.judge.stats import seed_spread, welch_difference
from seqbench.plan.cells import plan
from seqbench.plan.suites import resolve_config
from seqbench.storage import create_run, load_run
from seqbench.tasks.base import Batch, split_validation
from tests.helpers import make_cell

# --------------------------------------------------------------------------- aggregation


def test_a_seed_spread_is_the_mean_with_a_student_t_interval():
    spread = seed_spread([0.1, 0.2, 0.3])
    # s = 0.1, t(0.975, 2) = 4.302653: half-width 4.302653 * 0.1 / sqrt(3) = 0.248414
    assert spread.n == 3 and spread.mean == pytest.approx(0.2)
    assert (spread.low, spread.high) == (
        pytest.approx(-0.048414, abs=1e-6),
        pytest.approx(0.448414, abs=1e-6),
    )
    assert spread.values == (0.1, 0.2, 0.3)
    one = seed_spread([0.5])
    assert (one.n, one.mean, one.low, one.high) == (1, 0.5, None, None)


def test_a_seed_interval_stops_where_the_metric_does():
    # mean 0.0089667, s 0.0051733, half-width 4.302653 * s / sqrt(3) = 0.012851: the uncut
    # interval is [-0.003885, 0.021818], and an MSE below 0 is no model's.
    mse = seed_spread([0.0149, 0.0066, 0.0054], bounds=metric_range("mse"))
    assert mse.low == 0.0 and mse.high == pytest.approx(0.021818, abs=1e-6)
    assert mse.mean == pytest.approx(0.0269 / 3)  # the mean is not moved
    # mean 0.863, s 0.1481131, half-width 0.3679292: [0.4950708, 1.2309292] uncut.
    acc = seed_spread([0.946, 0.692, 0.951], bounds=metric_range("accuracy"))
    assert acc.low == pytest.approx(0.4950708, abs=1e-7) and acc.high == 1.0
    assert seed_spread([0.1, 0.2, 0.3], bounds=metric_range("accuracy")).low == 0.0
    assert metric_range("perplexity") == (1.0, math.inf)
    assert metric_range("someone's own metric") == (-math.inf, math.inf)
    # Through the rule: a group's reported test interval is cut the same way.
    rows = [scored(seed=s, test=v) for s, v in enumerate((0.0149, 0.0066, 0.0054))]
    (group,) = summarize_accuracy(rows)
    assert group.metric == "mse" and group.test.low == 0.0


def test_welch_difference_agrees_with_scipy():
    base, cand = [0.90, 0.92, 0.91, 0.89], [0.80, 0.86, 0.83]
    diff = welch_difference(base, cand)
    expected = sps.ttest_ind(cand, base, equal_var=False)
    assert diff.difference == pytest.approx(sum(cand) / 3 - sum(base) / 4)
    assert diff.p_value == pytest.approx(expected.pvalue)
    assert diff.low < diff.difference < diff.high < 0
    with pytest.raises(ValueError):
        welch_difference([0.9], cand)


def scored(arch="gru", task="adding", seed=0, lr=1e-3, validation=0.1, test=0.1, **values):
    metric = {"adding": "mse", "digits": "accuracy"}[task]
    cell = make_cell(arch=arch, task=task, seed=seed, lr=lr)
    return ResultRow.for_cell(
        cell, metric=metric, metric_value=test, validation_value=validation, **values
    )


def test_the_rate_is_chosen_on_validation_and_the_test_score_reported():
    # Validation prefers 1e-3 (lower mse); the test set would prefer 3e-3: the choice must
    # follow validation, and the figure reported is 1e-3's TEST score.
    rows = [
        scored(seed=s, lr=lr, validation=v + s * 1e-3, test=t + s * 1e-3)
        for s in (0, 1, 2)
        for lr, v, t in ((1e-3, 0.010, 0.050), (3e-3, 0.020, 0.001))
    ]
    (group,) = summarize_accuracy(rows)
    assert group.lr == 1e-3
    assert group.test.mean == pytest.approx(0.051) and group.test.n == 3
    assert [r.lr for r in group.rates] == [1e-3, 3e-3]  # the whole grid kept
    assert group.rates[1].mean_validation == pytest.approx(0.021)


def test_accuracy_is_chosen_upwards_and_ties_go_to_the_smaller_rate():
    rows = [
        scored(task="digits", seed=s, lr=lr, validation=v, test=0.5)
        for s in (0, 1)
        for lr, v in ((1e-3, 0.8), (2e-3, 0.9), (4e-3, 0.9))
    ]
    (group,) = summarize_accuracy(rows)
    assert group.lr == 2e-3


def test_a_rate_that_failed_or_diverged_on_any_seed_is_not_chosen():
    rows = [
        scored(seed=0, lr=1e-3, validation=0.05),
        scored(seed=1, lr=1e-3, validation=0.05),
        scored(seed=0, lr=3e-3, validation=0.001),
        scored(seed=1, lr=3e-3, validation=math.nan),  # diverged
        scored(seed=0, lr=9e-3, validation=0.0001),
        dataclasses.replace(scored(seed=1, lr=9e-3), status="error", message="boom"),
    ]
    (group,) = summarize_accuracy(rows)
    assert group.lr == 1e-3
    assert [r.eligible for r in group.rates] == [True, False, False]


def test_no_rate_finished_on_every_seed_is_said():
    rows = [scored(seed=0, lr=1e-3, validation=math.nan), scored(seed=0, lr=2e-3, validation=None)]
    (group,) = summarize_accuracy(rows)
    assert group.lr is None and group.test is None and "no rate finished" in group.note
    assert select_rate(list(group.rates), higher=False) is None


def test_a_single_rate_from_an_older_run_is_taken_without_a_validation_score():
    old = ResultRow.from_dict(
        {**make_cell(task="adding").__dict__, "metric": "mse", "metric_value": 0.2}
    )
    (group,) = summarize_accuracy([old])
    assert group.lr == 0.0 and group.test.mean == 0.2 and group.test.n == 1


def groups(base_scores, cand_scores, task="adding"):
    def one(scores):
        rows = [scored(task=task, seed=s, validation=v, test=v) for s, v in enumerate(scores)]
        return summarize_accuracy(rows)[0]

    return one(base_scores), one(cand_scores)


def test_the_gate_compares_seed_distributions():
    worse = compare_groups(*groups([0.010, 0.011, 0.012], [0.020, 0.021, 0.022]), 0.10)
    assert worse.verdict == "regression" and worse.p_value < 0.05
    assert (worse.n_baseline, worse.n_candidate) == (3, 3)
    better = compare_groups(*groups([0.80, 0.81, 0.82], [0.90, 0.91, 0.92], "digits"), 0.10)
    assert better.verdict == "improvement"
    # Means 10% apart, but the seeds overlap widely: not a verdict.
    noisy = compare_groups(*groups([0.010, 0.020, 0.030], [0.012, 0.032, 0.022]), 0.10)
    assert noisy.verdict == "inconclusive" and noisy.undecided


def test_one_seed_a_side_cannot_be_decided():
    result = compare_groups(*groups([0.010], [0.020]), 0.10)
    assert (result.verdict, result.undecided) == ("inconclusive", True)
    assert "one seed on a side" in result.note


def test_compare_accuracy_with_one_seed_exits_undecided(cli, tmp_path):
    from seqbench.cli import app

    for value in (0.010, 0.030):
        run = create_run(tmp_path, label="a", config={}, env={}, plan=[])
        run.add(Measurement(scored(test=value, validation=value, params=10)))
        run.finish("complete")
    runs = sorted(p.name for p in tmp_path.iterdir())
    result = cli.invoke(app, ["compare", *runs, "--metric", "accuracy", "--root", str(tmp_path)])
    assert result.exit_code == 3, result.output
    assert "undecided over seeds" in result.output


# --------------------------------------------------------------------------- the validation split


class _Fixed:
    """A task with a fixed training set whose examples are numbered, to see where each went."""

    name = "fixed"

    def __init__(self, n=100):
        self.x_train = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1)
        self.y_train = torch.arange(n)
        self.x_eval = torch.arange(n, n + 20, dtype=torch.float32).reshape(20, 1, 1)

    def train_batch(self, batch_size, generator):
        idx = torch.randint(0, len(self.y_train), (batch_size,), generator=generator)
        return Batch(self.x_train[idx], self.y_train[idx])


def test_a_fixed_training_set_gives_up_a_seeded_share_that_training_never_sees():
    a, b, c = _Fixed(), _Fixed(), _Fixed()
    for task, seed in ((a, 0), (b, 0), (c, 1)):
        split_validation(task, seed)
    held = set(a.validation.y.tolist())
    assert len(held) == 15 and len(a.y_train) == 85
    assert held.isdisjoint(a.y_train.tolist())  # apart from training
    assert held == set(b.validation.y.tolist()) and held != set(c.validation.y.tolist())
    drawn = a.train_batch(10_000, torch.Generator().manual_seed(0)).y.tolist()
    assert held.isdisjoint(drawn)


def test_a_generated_task_draws_its_validation_from_a_stream_of_its_own():
    from seqbench.tasks import prepared

    task = prepared("adding", 20, 0, 3, None)
    val, test = task.validation, task.eval_set()
    train = task.train_batch(len(val.y), torch.Generator().manual_seed(3 + 1))
    assert len(val.y) == 500
    assert not torch.equal(val.x[:10], test.x[:10]) and not torch.equal(val.x[:10], train.x[:10])
    assert torch.equal(prepared("adding", 20, 0, 3, None).validation.x, val.x)


def test_a_task_with_its_own_validation_keeps_it():
    task = _Fixed()
    task.validation = own = Batch(torch.zeros(2, 1, 1), torch.zeros(2, dtype=torch.long))
    split_validation(task, 0)
    assert task.validation is own and len(task.y_train) == 100


def test_the_target_is_judged_on_validation_and_the_test_set_scored_once(monkeypatch):
    from seqbench.core.settings import TrainSettings
    from seqbench.measure import training
    from seqbench.models import build_model, normalize_cell
    from seqbench.tasks import prepared

    task = prepared("adding", 20, 0, 0, None)
    seen = []

    def fake(model, task_, device, autocast, batch=None):
        seen.append("validation" if batch is task.validation else "test")
        return 0.1 if batch is task.validation else 0.9  # validation and test disagree

    monkeypatch.setattr(training, "evaluate", fake)
    model = build_model(normalize_cell(make_cell(task="adding", seq_len=20)))
    result = training.train_task(
        model, lambda x, y: None, task, TrainSettings(train_steps=30, target=0.2, eval_every=10),
        batch_size=4, device=torch.device("cpu"), autocast=_null, seed=0,
    )  # fmt: skip
    assert seen == ["validation"] * 3 + ["test"]
    assert (result.steps_to_target, result.validation_value, result.metric_value) == (10, 0.1, 0.9)


def _null():
    import contextlib

    return contextlib.nullcontext()


# --------------------------------------------------------------------------- the axes


def test_seeds_and_rates_multiply_task_cells_only():
    config = resolve_config(
        axes={"arch": ("gru",), "seq_len": (20,), "mode": ("train",), "task": ("", "adding"),
              "seed": (0, 1, 2), "lr": (1e-3, 2e-3)},
    )  # fmt: skip
    cells = plan(config)
    speed = [c for c in cells if not c.task]
    task = [c for c in cells if c.task]
    assert [(c.seed, c.lr) for c in speed] == [(0, 0.0)]
    assert len(task) == 6 and {(c.seed, c.lr) for c in task} == {
        (s, lr) for s in (0, 1, 2) for lr in (1e-3, 2e-3)
    }
    assert len({c.cell_id for c in cells}) == 7
    assert task[0].cell_id.endswith("-adding-s0-lr0.001")


def test_without_lr_a_task_cell_trains_at_the_tasks_default_rate():
    from seqbench.tasks import new_task

    config = resolve_config(axes={"arch": ("gru",), "seq_len": (20,), "task": ("adding",)})
    assert {c.lr for c in plan(config)} == {new_task("adding").default_lr}


def test_a_suites_single_seed_and_rate_read_as_axes(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text('[matrix]\narch = ["gru"]\ntask = ["adding"]\nseq_len = [20]\n'
                     "[train]\nlr = 0.004\n[run]\nseed = 7\n")  # fmt: skip
    assert {(c.seed, c.lr) for c in plan(resolve_config(suite))} == {(7, 0.004)}


def test_seeds_flag_gives_a_range_and_refuses_seed_beside_it(cli, tmp_path):
    from seqbench.cli import app

    both = ["run", "--out", str(tmp_path), "--task", "adding", "--seed", "1", "--seeds", "3"]
    result = cli.invoke(app, both)
    assert result.exit_code == 2 and "--seed and --seeds: give one of them" in result.output
    bad = cli.invoke(app, ["run", "--out", str(tmp_path), "--lr", "0.001,-1"])
    assert bad.exit_code == 2 and "--lr: expected a learning rate > 0, got -1.0" in bad.output


def test_an_older_row_reads_as_seed_0_and_lr_0():
    data = {k: v for k, v in scored().to_dict().items() if k not in ("seed", "lr", "cell_id")}
    row = ResultRow.from_dict(data)
    assert (row.seed, row.lr) == (0, 0.0)
    with pytest.raises(ConfigError):
        split_validation(_Fixed(n=1), 0)


# --------------------------------------------------------------------------- learning curves


def test_curves_are_saved_beside_the_rows_and_read_back(tmp_path):
    from seqbench.output.curves import compute_curves

    run = create_run(tmp_path, label="c", config={}, env={}, plan=[])
    a, b = scored(seed=0), scored(seed=1)
    run.add(Measurement(a, [], [(10, 0.5, 0.30), (20, 1.0, 0.20)]))
    run.add(Measurement(b, [], [(10, 0.7, 0.10), (20, 1.2, 0.05)]))
    run.add(Measurement(a, [], [(10, 0.4, 0.25), (20, 0.9, 0.15)]))  # measured again: replaces
    run.finish("complete")
    with open(run.path / "curves.csv", "a") as fh:
        fh.write(f"{b.cell_id},30,1.")  # torn by a crash: dropped
    loaded = load_run(run.path)
    assert loaded.curves == {
        a.cell_id: [(10, 0.4, 0.25), (20, 0.9, 0.15)],
        b.cell_id: [(10, 0.7, 0.10), (20, 1.2, 0.05)],
    }
    (curve,) = compute_curves(loaded.rows, loaded.curves)
    assert curve.x == (10.0, 20.0) and curve.seeds == 2
    assert curve.y == pytest.approx((0.175, 0.1)) and curve.low == (0.10, 0.05)
    (by_time,) = compute_curves(loaded.rows, loaded.curves, x="time")
    assert by_time.x == pytest.approx((0.55, 1.05))


def test_a_damaged_curves_file_costs_the_curves_not_the_rows(cli, tmp_path):
    from seqbench.cli import app

    run = create_run(tmp_path, label="c", config={}, env={}, plan=[])
    run.add(Measurement(scored(), [], [(10, 0.5, 0.3)]))
    run.finish("complete")
    (run.path / "curves.csv").write_text("cell_id,step,train_time_s,value\nx,ten,1,2\n")
    loaded = load_run(run.path)
    assert len(loaded.rows) == 1 and loaded.curves == {}
    result = cli.invoke(app, ["curves", run.path.name, "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().endswith("curves.csv: line 2 is not a curve point")


def test_a_task_run_records_budget_threads_and_curves(cli, tmp_path):
    from seqbench.cli import app

    args = ["run", "--out", str(tmp_path), "--task", "adding", "--arch", "gru", "--seq-len", "12",
            "--batch-size", "4", "--hidden", "4", "--mode", "train", "--seeds", "2",
            "--lr", "0.001,0.01", "--train-steps", "6", "--eval-every", "3", "--threads", "1",
            "--min-time", "0", "--min-repeats", "2", "--max-repeats", "2", "--warmup-time", "0"]  # fmt: skip
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Accuracy over seeds" in result.stdout
    loaded = load_run("latest", tmp_path)
    assert len(loaded.rows) == 4
    for row in loaded.rows:
        assert (row.train_budget, row.threads, row.train_steps) == ("steps", 1, 6)
        assert row.validation_value is not None
        assert [p[0] for p in loaded.curves[row.cell_id]] == [3, 6]
    drawn = cli.invoke(
        app, ["curves", "latest", "--root", str(tmp_path), "--out", str(tmp_path / "c.svg")]
    )
    assert drawn.exit_code == 0, drawn.output
    svg = (tmp_path / "c.svg").read_text()
    assert svg.lstrip().startswith("<?xml")
    again = cli.invoke(
        app, ["curves", "latest", "--root", str(tmp_path), "--out", str(tmp_path / "d.svg")]
    )
    assert again.exit_code == 0 and (tmp_path / "d.svg").read_text() == svg  # no date inside
    text = cli.invoke(app, ["curves", "latest", "--root", str(tmp_path)])
    assert text.exit_code == 0, text.output
    legend = [line for line in text.stdout.splitlines() if "seed(s), mean)" in line]
    assert len(legend) == 2 and all("gru" in line and "(2 seed(s)" in line for line in legend)


# --------------------------------------------------------------------------- pooled grids


def test_pool_runs_applies_the_rule_to_a_grid_split_over_runs(tmp_path):
    # benchmarks/pool_runs.py: one rate per run, pooled; the rule picks on validation.
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    folders = []
    for label, lr, validation, test in (("a", 1e-3, 0.05, 0.06), ("b", 3e-3, 0.01, 0.02)):
        run = create_run(tmp_path, label=label, config={}, env={}, plan=[])
        for s in (0, 1, 2):
            row = scored(seed=s, lr=lr, validation=validation + s * 1e-3, test=test + s * 1e-3)
            run.add(Measurement(dataclasses.replace(row, train_time_s=10.0 + s)))
        run.finish("complete")
        folders.append(str(run.path))
    script = [sys.executable, str(root / "benchmarks" / "pool_runs.py")]
    env = {"PYTHONPATH": str(root / "src"), "PATH": ""}
    done = subprocess.run([*script, *folders], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.strip().startswith("lr ")] == [
        "0.001",
        "0.003",
    ]
    assert lines[3].endswith("<- chosen") and "lr 0.003" in lines[3]
    assert "test 0.021 [" in done.stdout and "n=3" in done.stdout  # 3e-3's test scores
    twice = subprocess.run(
        [*script, folders[0], folders[0]], capture_output=True, text=True, env=env
    )
    assert twice.returncode == 1 and "is in both" in twice.stderr
