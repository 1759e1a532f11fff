"""The TCN: weight-normed parameters counted exactly, counted FLOPs, and its receptive field."""

from __future__ import annotations

import pytest
import torch

from seqbench.models import REGISTRY, build_model, count_parameters, forward_flops, normalize_cell
from seqbench.models.base import CoreShape
from seqbench.models.tcn import TCNCore, receptive_field, tcn_params
from tests.helpers import make_cell
from tests.test_flops import _count

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("layers", "input_size", "hidden", "dropout"),
    [(1, 7, 5, 0.0), (2, 5, 5, 0.2), (3, 4, 6, 0.0), (4, 9, 3, 0.1)],
)
@pytest.mark.parametrize("k", [2, 7])
def test_tcn_parameters_equal_the_formula(layers, input_size, hidden, dropout, k):
    shape = CoreShape(input_size=input_size, hidden=hidden, layers=layers, dropout=dropout)
    assert count_parameters(TCNCore(shape, k=k)) == tcn_params(shape, k=k)


def test_weight_norm_trains_a_gain_and_a_direction_per_convolution():
    # 7·H·(I+H) + 4·H at I = H = 32: v is (H, C, 7), g is (H, 1, 1), plus the bias
    core = REGISTRY["tcn"].build(CoreShape(input_size=32, hidden=32))
    assert count_parameters(core) == 7 * 32 * 64 + 4 * 32 == 14_464
    shapes = {n: tuple(p.shape) for n, p in core.named_parameters()}
    assert shapes["blocks.0.conv1.conv.parametrizations.weight.original0"] == (32, 1, 1)
    assert shapes["blocks.0.conv1.conv.parametrizations.weight.original1"] == (32, 32, 7)
    assert "blocks.0.downsample.weight" not in shapes  # equal widths: identity residual


@pytest.mark.parametrize(("layers", "seq_len", "embed"), [(1, 16, 6), (2, 37, 8), (3, 5, 6)])
def test_tcn_forward_flops_equal_the_counted_convolutions(layers, seq_len, embed):
    cell = normalize_cell(
        make_cell(arch="tcn", layers=layers, seq_len=seq_len, hidden=8, embed=embed, batch_size=3)
    )
    model = build_model(cell).eval()
    tokens = torch.randint(0, cell.vocab, (cell.batch_size, cell.seq_len))
    assert _count(lambda: model(tokens)) == forward_flops(cell) * cell.batch_size


def test_receptive_field_formula():
    assert receptive_field(7, 1) == 13
    assert receptive_field(2, 3) == 15
    assert receptive_field(7, 8) == 3_061
    assert TCNCore(CoreShape(input_size=3, hidden=4, layers=5)).receptive_field == 373


@pytest.mark.parametrize(("k", "blocks"), [(7, 2), (3, 3), (2, 4)])
def test_the_last_output_reads_exactly_the_receptive_field(k, blocks):
    torch.manual_seed(0)
    rf = receptive_field(k, blocks)
    core = TCNCore(CoreShape(input_size=3, hidden=6, layers=blocks), k=k).double().eval()
    x = torch.randn(4, rf + 9, 3, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(core(x)[:, -1].sum(), x)
    per_step = grad.abs().sum(dim=(0, 2))  # (T,)
    assert torch.all(per_step[-rf:] > 0)
    assert torch.all(per_step[:-rf] == 0)


def test_tcn_dropout_drops_whole_channels_in_training_only():
    torch.manual_seed(0)
    core = TCNCore(CoreShape(input_size=4, hidden=64, dropout=0.5))
    seen = []
    core.blocks[0].drop.register_forward_hook(lambda m, args, out: seen.append((args[0], out)))
    x = torch.randn(2, 9, 4)
    core.train()(x)
    inp, out = seen[0]  # (B, H, T)
    kept = (out != 0).any(dim=-1, keepdim=True)  # (B, H, 1): a channel is kept or dropped
    torch.testing.assert_close(out, inp * kept / 0.5, rtol=0, atol=0)
    assert 0.2 < kept.float().mean() < 0.8
    core.eval()
    torch.testing.assert_close(core(x), core(x))
