"""lstm-weightdrop: DropConnect on U, one draw per forward pass, through the fused kernel."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

from seqbench.models import REGISTRY, count_parameters
from seqbench.models import weightdrop as wd
from seqbench.models.base import CoreShape
from seqbench.models.recurrent import RecurrentCore, fused_kernel

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("layers", "bidirectional", "dropout"),
    list(itertools.product([1, 2], [False, True], [0.0, 0.3])),
)
def test_weight_drop_has_exactly_the_plain_lstms_parameters(layers, bidirectional, dropout):
    shape = CoreShape(7, 5, layers, bidirectional, dropout, recurrent_dropout=0.4)
    core = REGISTRY["lstm-weightdrop"].build(shape)
    assert count_parameters(core) == count_parameters(RecurrentCore("lstm", shape))
    assert count_parameters(core) == REGISTRY["lstm-weightdrop"].count_params(shape)


@pytest.fixture
def draws(monkeypatch):
    """Every list of weights handed to the fused kernel, as drawn."""
    seen: list[list[torch.Tensor]] = []
    real = wd.dropped_weights

    def spy(block, p):
        weights = real(block, p)
        seen.append([w.detach().clone() for w in weights])
        return weights

    monkeypatch.setattr(wd, "dropped_weights", spy)
    return seen


def test_each_training_forward_draws_a_new_u_and_eval_uses_none(draws):
    torch.manual_seed(0)
    core = wd.WeightDropLSTMCore(CoreShape(4, 16, recurrent_dropout=0.5)).train()
    x = torch.randn(2, 5, 4)
    core(x)
    core(x)
    (first, second) = draws
    w_ih, w_hh = core.blocks[0].weight_ih_l0, core.blocks[0].weight_hh_l0
    assert not torch.equal(first[1], second[1])  # U is drawn again for each batch
    torch.testing.assert_close(first[0], w_ih.detach(), rtol=0, atol=0)  # W is never dropped
    kept = first[1] != 0
    assert 0.3 < kept.float().mean() < 0.7
    torch.testing.assert_close(first[1][kept], w_hh.detach()[kept] * 2, rtol=0, atol=0)
    core.eval()(x)
    assert len(draws) == 2


def test_one_dropped_u_serves_every_step_and_sequence_of_a_forward(draws):
    # The whole batch's output is what a plain LSTM gives with the drawn U as its weight.
    torch.manual_seed(0)
    core = wd.WeightDropLSTMCore(CoreShape(4, 6, recurrent_dropout=0.5)).double().train()
    x = torch.randn(3, 11, 4, dtype=torch.float64)
    y = core(x)
    plain = copy.deepcopy(core.blocks[0])
    with torch.no_grad():
        plain.weight_hh_l0.copy_(draws[0][1])
    torch.testing.assert_close(y, plain(x)[0], rtol=1e-12, atol=1e-12)


def test_eval_uses_the_undropped_weights():
    torch.manual_seed(0)
    shape = CoreShape(4, 6, layers=2, bidirectional=True, recurrent_dropout=0.5)
    core = wd.WeightDropLSTMCore(shape).eval()
    plain = RecurrentCore("lstm", shape).eval()
    plain.load_state_dict(core.state_dict())
    x = torch.randn(3, 7, 4)
    torch.testing.assert_close(core(x), plain(x), rtol=0, atol=0)


def test_every_layer_and_direction_draws_its_own_u(draws):
    shape = CoreShape(4, 32, layers=2, bidirectional=True, recurrent_dropout=0.5)
    wd.WeightDropLSTMCore(shape).train()(torch.randn(2, 5, 4))
    (weights,) = draws
    masks = [(u != 0) for u in weights[1::4]]  # U of l0, l0_reverse, l1, l1_reverse
    assert len(masks) == 4
    assert all(not torch.equal(a, b) for a, b in itertools.combinations(masks, 2))


def test_gradients_reach_only_the_kept_entries_of_u(draws):
    torch.manual_seed(0)
    core = wd.WeightDropLSTMCore(CoreShape(4, 8, recurrent_dropout=0.5)).train()
    core(torch.randn(2, 6, 4)).sum().backward()
    grad = core.blocks[0].weight_hh_l0.grad
    dropped = draws[0][1] == 0
    assert torch.all(grad[dropped] == 0)
    assert torch.all(grad[~dropped] != 0)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="needs oneDNN")
def test_training_with_dropconnect_keeps_the_fused_onednn_kernel():
    core = wd.WeightDropLSTMCore(CoreShape(4, 8, recurrent_dropout=0.3)).train()
    with torch.profiler.profile() as prof:
        core(torch.randn(2, 6, 4)).sum().backward()
    ran = {event.name for event in prof.events()}
    assert "aten::mkldnn_rnn_layer" in ran and "aten::mkldnn_rnn_layer_backward" in ran
    kernel, note = core.implementation(True, "cpu", "float32")
    assert (kernel, note) == ("onednn", "DropConnect: one dropped U per batch")
    assert fused_kernel("lstm", "cpu", "float32", True)[0] == "onednn"
