"""Faithful baselines, the memory horizon on recurrences of known decay, MNIST-1D and chance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqbench.measure.gradflow import input_gradient_norms, memory_horizon
from seqbench.models import (
    REGISTRY,
    SequenceModel,
    build_model,
    core_shape,
    count_parameters,
    expected_params,
    normalize_cell,
    short_sight,
)
from seqbench.models.base import SequenceCore
from seqbench.models.recurrent import set_forget_bias
from seqbench.models.tcn import PAPER_SETTINGS, receptive_field
from tests.helpers import FAST_FLAGS, make_cell

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- presets


@pytest.mark.parametrize(
    ("task", "seq_len", "kernel", "blocks", "reach"),
    [
        ("adding", 200, 6, 7, 1_271),  # Bai et al.'s table, adding T = 200
        ("adding", 600, 8, 8, 3_571),  # adding T = 600
        ("copy", 1020, 8, 8, 3_571),  # copy memory T = 1000 (+ 20)
        ("digits", 64, 7, 3, 85),  # not in the table: k = 7, fewest blocks covering 64
        ("mnist1d", 40, 7, 3, 85),
    ],
)
def test_tcn_paper_takes_the_papers_kernel_and_depth_and_covers_the_sequence(
    task, seq_len, kernel, blocks, reach
):
    cell = normalize_cell(make_cell(arch="tcn-paper", task=task, seq_len=seq_len, hidden=8))
    assert cell.layers == blocks and cell.seq_len == seq_len
    assert REGISTRY["tcn-paper"].receptive_field(core_shape(cell)) == reach
    assert receptive_field(kernel, blocks) == reach >= seq_len
    core = build_model(cell).core
    assert core.receptive_field == reach
    assert core.blocks[0].conv1.conv.kernel_size == (kernel,)
    assert count_parameters(build_model(cell)) == expected_params(cell)
    assert short_sight(cell) is None


def test_every_paper_setting_covers_its_sequence():
    assert all(receptive_field(k, n) >= t for t, (k, n, _) in PAPER_SETTINGS.items())


def test_matching_the_papers_budget_gives_the_papers_width_at_adding_600():
    # Bai et al. size every model to about 70K parameters; their TCN at T = 600 has H = 24.
    cell = normalize_cell(
        make_cell(arch="tcn-paper", task="adding", seq_len=600, match_params=70_000)
    )
    assert (cell.hidden, cell.layers) == (24, 8)


@pytest.mark.parametrize("arch", ["mingru-paper", "minlstm-paper"])
def test_the_minimal_rnn_presets_have_the_papers_three_layers(arch):
    cell = normalize_cell(make_cell(arch=arch, layers=1, task="adding", seq_len=30))
    assert cell.layers == 3
    assert len(build_model(cell).core.cells) == 3


def test_a_tcn_shorter_than_its_sequence_is_warned_about():
    cell = normalize_cell(make_cell(arch="tcn", task="adding", seq_len=200, layers=2))
    assert short_sight(cell) == (
        "tcn with 2 block(s) sees only the last 37 of 200 steps (its receptive field): "
        "more --layers, or --arch tcn-paper, covers the sequence"
    )
    assert short_sight(normalize_cell(make_cell(arch="tcn", seq_len=37, layers=2))) is None
    assert short_sight(normalize_cell(make_cell(arch="lstm", seq_len=5000))) is None


def test_run_prints_the_receptive_field_warning_once(cli, tmp_path):
    from seqbench.cli import app

    args = ["run", "--out", str(tmp_path), "--arch", "tcn,tcn-paper", "--seq-len", "40",
            "--batch-size", "2,3", "--hidden", "4", "--mode", "infer", *FAST_FLAGS]  # fmt: skip
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "receptive field" in line]
    assert warnings == [
        "warning: tcn with 1 block(s) sees only the last 13 of 40 steps (its receptive "
        "field): more --layers, or --arch tcn-paper, covers the sequence"
    ]


# --------------------------------------------------------------------------- forget bias


def test_forget_bias_sets_the_forget_gate_and_nothing_else():
    torch.manual_seed(0)
    model = build_model(normalize_cell(make_cell(arch="lstm", layers=2, hidden=5, embed=3)))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert set_forget_bias(model, 1.0) == 2  # two layers
    for layer in (0, 1):
        b_ih = model.core.blocks[0].get_parameter(f"bias_ih_l{layer}")
        b_hh = model.core.blocks[0].get_parameter(f"bias_hh_l{layer}")
        assert b_ih[5:10].tolist() == [1.0] * 5 and b_hh[5:10].tolist() == [0.0] * 5
        # i, g and o keep their initialisation
        for name, bias in ((f"bias_ih_l{layer}", b_ih), (f"bias_hh_l{layer}", b_hh)):
            full = before[f"core.blocks.0.{name}"]
            assert torch.equal(bias[:5], full[:5]) and torch.equal(bias[10:], full[10:])
    weights = [n for n in before if "weight" in n]
    assert all(torch.equal(before[n], model.get_parameter(n)) for n in weights)


def test_forget_bias_reaches_the_built_workload_and_leaves_a_gru_alone():
    from seqbench.core.settings import TrainSettings
    from seqbench.measure.workload import build_workload

    cell = normalize_cell(make_cell(arch="lstm-weightdrop", hidden=4))
    work = build_workload(cell, 0, TrainSettings(forget_bias=1.0))
    assert work.model.core.blocks[0].bias_ih_l0[4:8].tolist() == [1.0] * 4
    gru = build_model(normalize_cell(make_cell(arch="gru", hidden=4)))
    assert set_forget_bias(gru, 1.0) == 0


def test_forget_bias_is_a_run_option(cli, tmp_path):
    from seqbench.cli import app
    from seqbench.storage import load_run

    args = ["run", "--out", str(tmp_path), "--arch", "lstm", "--seq-len", "8", "--hidden", "4",
            "--batch-size", "2", "--forget-bias", "1.0", *FAST_FLAGS]  # fmt: skip
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert load_run("latest", tmp_path).meta.config["train"]["forget_bias"] == 1.0


# --------------------------------------------------------------------------- the memory horizon


class LinearRecurrence(SequenceCore):
    """h_t = a·h_{t-1} + x_t: the gradient of h_T reaching x_t is exactly a^(T-t)."""

    def __init__(self, a: float, width: int) -> None:
        super().__init__()
        self.a = a
        self.out_features = width

    def forward(self, x):  # (B, T, I) -> (B, T, I)
        h, out = torch.zeros_like(x[:, 0]), []
        for t in range(x.shape[1]):
            h = self.a * h + x[:, t]
            out.append(h)
        return torch.stack(out, 1)

    def summary(self, y):
        return y[:, -1]


def _norms(a: float, steps: int) -> np.ndarray:
    model = SequenceModel(torch.nn.Identity(), LinearRecurrence(a, 3), torch.nn.Identity())
    norms = input_gradient_norms(model, torch.randn(4, steps, 3, dtype=torch.float64))
    expected = np.array([abs(a) ** (steps - 1 - t) for t in range(steps)]) * np.sqrt(4 * 3)
    np.testing.assert_allclose(norms, expected, rtol=1e-9)
    return norms


@pytest.mark.parametrize(
    ("a", "steps", "at_1e3", "at_1e2"),
    [(0.9, 300, 66, 44), (0.5, 60, 10, 7), (-0.8, 100, 31, 21), (0.99, 1000, 684, 458)],
)
def test_a_shrinking_recurrence_has_its_known_horizon_at_both_cutoffs(a, steps, at_1e3, at_1e2):
    # The mass beyond n steps is (|a|^n - |a|^T) / (1 - |a|^T) of the whole: the horizon is
    # the least n bringing it to c, ceil(ln(c·(1 - |a|^T) + |a|^T) / ln |a|), about ln c / ln |a|
    norms = _norms(a, steps)
    far = abs(a) ** steps
    for cutoff, horizon in ((1e-3, at_1e3), (1e-2, at_1e2)):
        assert horizon == math.ceil(math.log(cutoff * (1 - far) + far) / math.log(abs(a)))
        assert memory_horizon(norms, cutoff) == horizon
    # the cut-off moves a geometric decay's horizon by ln 1e-3 / ln 1e-2 = 1.5, no more
    assert at_1e3 / at_1e2 == pytest.approx(1.5, abs=0.1)


@pytest.mark.parametrize("a", [1.0, 1.05, -1.2])
def test_a_constant_or_growing_gradient_covers_the_whole_sequence(a):
    # The old peak-relative horizon scored a growing gradient 0: the peak is at the start.
    norms = _norms(a, 80)
    assert memory_horizon(norms, 1e-3) == memory_horizon(norms, 1e-2) == 80


def test_a_level_gradient_over_a_long_sequence_holds_all_but_the_cutoff():
    assert memory_horizon(np.ones(1000), 1e-2) == 990
    assert memory_horizon(np.ones(1000), 1e-3) == 999


def test_a_strong_last_step_does_not_hide_a_gradient_spread_over_the_window():
    # A TCN at initialisation: the residual path gives the last input about 300x the
    # gradient of each earlier one, which together still carry 40% of the mass.
    norms = np.array([0.003] * 199 + [1.0])
    # the sum is 1.597: 1% of it is 5 earlier steps, 0.1% less than one
    assert memory_horizon(norms, 1e-2) == 195 and memory_horizon(norms, 1e-3) == 200


def test_memory_horizon_edge_cases():
    assert memory_horizon(np.array([0.0, 0.0])) == 0
    assert memory_horizon(np.array([1.0, 1e-9, 1.0])) == 3  # a dip does not end the count
    assert memory_horizon(np.array([5.0, 1.0, 0.0]), 1e-2) == 3  # the mass is at the start
    assert memory_horizon(np.array([1e-4, 1.0, 1.0]), 1e-3) == 2
    assert memory_horizon(np.array([np.nan, 1.0])) == 0  # a broken gradient says nothing


def test_the_horizon_is_taken_on_the_task_loss_over_the_cells_batch():
    from seqbench.measure.gradflow import gradient_probe, workload_horizon
    from seqbench.measure.workload import build_workload
    from seqbench.tasks import prepared

    cell = normalize_cell(make_cell(arch="gru", task="adding", seq_len=30, batch_size=5))
    task = prepared("adding", 30, cell.vocab, 0, None)
    work = build_workload(cell, 0, None, task)
    x, y = gradient_probe(work, task)
    assert x.shape == (5, 30, 2) and torch.equal(y, task.eval_set().y[:5])
    model = work.model
    h = model.adapter(x).detach().requires_grad_(True)
    task.loss(model.head(model.core.summary(model.core(h))), y).backward()
    by_hand = h.grad.double().norm(dim=(0, 2)).numpy()
    np.testing.assert_allclose(input_gradient_norms(model, x, y, task), by_hand, rtol=1e-6)
    assert workload_horizon(work, task) == memory_horizon(by_hand)


def test_gradflow_reports_both_cutoffs_and_the_spread_over_seeds(cli):
    import json

    from seqbench.cli import app

    args = ["gradflow", "--arch", "rnn", "--seq-len", "40", "--hidden", "8", "--batch-size",
            "4", "--task", "adding", "--seed", "0,1,2"]  # fmt: skip
    result = cli.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    profiles = json.loads(result.stdout)
    assert [p["seed"] for p in profiles] == [0, 1, 2]
    for p in profiles:
        assert p["initial_horizons"][0] == p["initial_horizon"] >= p["initial_horizons"][1]
    table = cli.invoke(app, args)
    horizons = sorted(p["initial_horizon"] for p in profiles)
    assert f"rnn T=40: horizon median {horizons[1]}, range {horizons[0]}-{horizons[2]}" in (
        table.stdout
    )


# --------------------------------------------------------------------------- MNIST-1D and chance


def test_mnist1d_is_generated_offline_and_leaves_the_global_generators_alone(monkeypatch):
    import random
    import socket

    from seqbench.tasks import mnist1d, new_task

    def no_network(*args, **kwargs):
        raise AssertionError("MNIST-1D must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    mnist1d.generate.cache_clear()
    np.random.seed(7)
    random.seed(7)
    task = new_task("mnist1d")
    task.prepare(40, 0, 0, None)
    assert (np.random.rand(), random.random()) == (
        np.random.RandomState(7).rand(),
        random.Random(7).random(),
    )
    assert task.x_train.shape == (4000, 40, 1) and task.x_eval.shape == (1000, 40, 1)
    assert torch.bincount(task.y_eval).tolist() == [102, 104, 89, 106, 106, 98, 99, 96, 98, 102]
    assert task.chance() == 0.106 and task.chance_theory() == 0.1
    assert normalize_cell(make_cell(arch="gru", task="mnist1d", seq_len=999)).seq_len == 40


@pytest.mark.parametrize(
    ("name", "seq_len", "measured", "theory"),
    [
        ("adding", 200, 0.1637, 1 / 6),  # the MSE of the evaluation set's mean target
        ("adding", 50, 0.1703, 1 / 6),
        ("copy", 1020, 0.0203, 10 * math.log(8) / 1020),  # each step's symbol entropy
        ("digits", 64, 0.1421, 0.1),  # the majority class
    ],
)
def test_chance_is_measured_on_the_evaluation_set_beside_the_theory(
    name, seq_len, measured, theory
):
    from seqbench.tasks import prepared

    task = prepared(name, seq_len, 0, 0, None)
    assert task.chance() == pytest.approx(measured, abs=5e-5)
    assert task.chance_theory() == pytest.approx(theory)


def test_the_tasks_command_lists_both_chances(cli):
    from seqbench.cli import app

    result = cli.invoke(app, ["tasks", "--seq-len", "200"])
    assert result.exit_code == 0, result.output
    adding = next(line for line in result.stdout.splitlines() if line.strip().startswith("adding"))
    assert adding.split()[-3:] == ["200", "0.1667", "0.1637"]
    assert "mnist1d" in result.stdout


def _std(module) -> float:
    return float(module.weight.detach().std())


def test_tcn_paper_starts_where_the_reference_code_started():
    # The reference code's N(0, 0.01) on weight-normed convolutions is overwritten by weight
    # normalisation: they start from PyTorch's default; only the 1x1 residual gets N(0, 0.01).
    torch.manual_seed(0)
    cell = normalize_cell(make_cell(arch="tcn-paper", task="adding", seq_len=200, hidden=30))
    block = build_model(cell).core.blocks[0]
    assert _std(block.conv2.conv) > 0.03  # default: U(±1/sqrt(30·6)), std 0.043
    assert 0.008 < _std(block.downsample) < 0.012
    plain = build_model(normalize_cell(make_cell(arch="tcn", task="adding", hidden=30)))
    assert 0.008 < _std(plain.core.blocks[0].conv2.conv) < 0.012
