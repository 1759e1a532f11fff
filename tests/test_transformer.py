"""The transformer: exact parameters, counted FLOPs, the causal mask, the SDPA kernel it names."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from seqbench.models import REGISTRY, build_model, count_parameters, forward_flops, normalize_cell
from seqbench.models.base import CoreShape
from seqbench.models.transformer import (
    TransformerCore,
    attention_heads,
    sinusoidal_positions,
    transformer_params,
)
from tests.helpers import make_cell
from tests.test_flops import _count

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("hidden", "heads"), [(8, 1), (32, 1), (64, 1), (128, 2), (200, 2), (256, 4), (768, 12)]
)
def test_heads_are_about_64_wide_and_divide_the_width(hidden, heads):
    assert attention_heads(hidden) == heads


@pytest.mark.parametrize(("layers", "hidden"), [(1, 8), (2, 16), (3, 130)])
@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_transformer_parameters_equal_the_formula(layers, hidden, positions):
    shape = CoreShape(input_size=7, hidden=hidden, layers=layers, dropout=0.1)
    core = TransformerCore(shape, positions=positions, max_len=50)
    assert count_parameters(core) == transformer_params(shape, positions, max_len=50)


def test_transformer_parameter_count_is_exact_at_the_seed_width():
    # I·H + H + 12·H² + 13·H + 2·H at I = H = 32
    shape = CoreShape(input_size=32, hidden=32)
    assert count_parameters(REGISTRY["transformer"].build(shape)) == 1_056 + 12_704 + 64


@pytest.mark.parametrize("arch", ["transformer", "transformer-causal"])
@pytest.mark.parametrize(("layers", "seq_len"), [(1, 16), (2, 37)])
def test_transformer_forward_flops_equal_the_counted_matmuls(arch, layers, seq_len):
    # The counter has no formula for ATen's CPU flash kernel (it sees 0 there); on the math
    # path it sees every matmul, the full T×T scores included.
    cell = normalize_cell(
        make_cell(arch=arch, layers=layers, seq_len=seq_len, hidden=16, batch_size=3)
    )
    model = build_model(cell).eval()
    tokens = torch.randint(0, cell.vocab, (cell.batch_size, cell.seq_len))
    with sdpa_kernel(SDPBackend.MATH):
        counted = _count(lambda: model(tokens))
    assert counted == forward_flops(cell) * cell.batch_size


def test_the_causal_mask_keeps_every_output_from_later_inputs():
    torch.manual_seed(0)
    core = TransformerCore(CoreShape(input_size=4, hidden=8, layers=2), causal=True).double()
    x = torch.randn(2, 9, 4, dtype=torch.float64, requires_grad=True)
    # A random read-out: a plain sum of a layer norm's output is constant, its gradient zero.
    y = core(x) @ torch.randn(8, dtype=torch.float64)  # (B, T)
    for t in range(9):
        (grad,) = torch.autograd.grad(y[:, t].sum(), x, retain_graph=True)
        per_step = grad.abs().sum(dim=(0, 2))  # (T,)
        assert torch.all(per_step[t + 1 :] == 0), t
        assert torch.all(per_step[: t + 1] > 0), t


def test_without_the_mask_every_output_reads_every_input():
    torch.manual_seed(0)
    core = TransformerCore(CoreShape(input_size=4, hidden=8)).double()
    x = torch.randn(2, 9, 4, dtype=torch.float64, requires_grad=True)
    y = core(x) @ torch.randn(8, dtype=torch.float64)  # (B, T)
    (grad,) = torch.autograd.grad(y[:, 0].sum(), x)
    assert torch.all(grad.abs().sum(dim=(0, 2)) > 0)


def test_summary_is_the_mean_without_the_mask_and_the_last_step_with_it():
    y = torch.arange(24.0).reshape(2, 3, 4)
    shape = CoreShape(input_size=4, hidden=4)
    torch.testing.assert_close(TransformerCore(shape).summary(y), y.mean(dim=1))
    torch.testing.assert_close(TransformerCore(shape, causal=True).summary(y), y[:, -1])


def test_sinusoidal_positions_follow_vaswani_et_al():
    like = torch.zeros((), dtype=torch.float64)
    pe = sinusoidal_positions(0, 6, 5, like)
    assert pe.shape == (6, 5)
    p, i = 3, 1  # PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = the cosine
    assert pe[p, 2 * i].item() == pytest.approx(torch.sin(torch.tensor(p / 10000 ** (2 * i / 5))))
    assert pe[p, 2 * i + 1].item() == pytest.approx(torch.cos(torch.tensor(p / 10000 ** (2 / 5))))
    torch.testing.assert_close(sinusoidal_positions(4, 2, 5, like), pe[4:])


def test_learned_positions_stop_at_their_table():
    core = TransformerCore(CoreShape(input_size=3, hidden=4), positions="learned", max_len=5)
    assert core(torch.randn(1, 5, 3)).shape == (1, 5, 4)
    with pytest.raises(IndexError):
        core(torch.randn(1, 6, 3))


def test_kernel_names_the_sdpa_backend_aten_would_pick_on_the_cpu():
    core = REGISTRY["transformer"].build(CoreShape(input_size=4, hidden=8, dropout=0.1))
    # ATen's CPU flash-attention kernel, except where attention dropout forces the math path
    assert core.implementation(False, "cpu", "float32") == ("sdpa-flash", "")
    kernel, note = core.implementation(True, "cpu", "float32")
    assert kernel == "sdpa-math" and "dropout" in note
    with sdpa_kernel(SDPBackend.MATH):
        assert core.implementation(False, "cpu", "float32")[0] == "sdpa-math"
    causal = REGISTRY["transformer-causal"].build(CoreShape(input_size=4, hidden=8))
    assert causal.step_implementation("cpu", "float32") == ("sdpa-flash", "KV cache")


def test_only_the_causal_transformer_streams():
    core = REGISTRY["transformer"].build(CoreShape(input_size=4, hidden=8))
    with pytest.raises(NotImplementedError, match="attends to later tokens"):
        core.init_state(1, "cpu", torch.float32)
