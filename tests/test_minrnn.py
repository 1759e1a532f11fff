"""minGRU and minLSTM: the log-space scan is the recurrence; parameters and FLOPs are exact."""

from __future__ import annotations

import pytest
import torch

from seqbench.models import REGISTRY, build_model, count_parameters, forward_flops, normalize_cell
from seqbench.models.base import CoreShape
from seqbench.models.minrnn import g, log_g, log_scan, minrnn_params
from tests.helpers import make_cell
from tests.test_flops import _count

pytestmark = pytest.mark.usefixtures("one_thread")


def _sequential(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    h, out = torch.zeros_like(b[:, 0]), []
    for t in range(b.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("steps", [1, 2, 17, 300])
def test_the_log_space_scan_is_the_sequential_recurrence(steps):
    gen = torch.Generator().manual_seed(steps)
    a = torch.rand(3, steps, 5, generator=gen, dtype=torch.float64)  # (0, 1): forgetting
    b = torch.rand(3, steps, 5, generator=gen, dtype=torch.float64) * 2 + 1e-3
    torch.testing.assert_close(log_scan(a.log(), b.log()), _sequential(a, b), rtol=1e-10, atol=0)


def test_the_scan_keeps_float32_precision_for_bfloat16_inputs():
    # In bfloat16 the running sum of log a (about -350 here) would round by whole units.
    gen = torch.Generator().manual_seed(0)
    log_a = (torch.rand(2, 512, 4, generator=gen) * -1.4).bfloat16()
    log_b = torch.randn(2, 512, 4, generator=gen).bfloat16()
    exact = _sequential(log_a.double().exp(), log_b.double().exp())
    got = log_scan(log_a, log_b)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.double(), exact, rtol=1e-2, atol=0)


@pytest.mark.parametrize("arch", ["mingru", "minlstm"])
@pytest.mark.parametrize("steps", [1, 9, 64])
def test_the_parallel_forward_equals_stepping_the_recurrence(arch, steps):
    torch.manual_seed(0)
    core = REGISTRY[arch].build(CoreShape(input_size=4, hidden=6, layers=2)).double().eval()
    x = torch.randn(2, steps, 4, dtype=torch.float64) * 3  # both branches of g
    state = core.init_state(2, "cpu", torch.float64)
    stepped = []
    for t in range(steps):
        y_t, state = core.step(x[:, t], state)
        stepped.append(y_t)
    torch.testing.assert_close(core(x), torch.stack(stepped, dim=1), rtol=1e-10, atol=0)


def test_g_is_positive_continuous_and_log_g_is_its_log():
    x = torch.tensor([-30.0, -1.0, -1e-9, 0.0, 1e-9, 2.0], dtype=torch.float64)
    assert torch.all(g(x) > 0)
    assert g(torch.tensor(0.0)).item() == 0.5 == torch.sigmoid(torch.tensor(0.0)).item()
    torch.testing.assert_close(log_g(x), g(x).log(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("arch", ["mingru", "minlstm"])
@pytest.mark.parametrize(("layers", "input_size"), [(1, 7), (2, 5), (3, 6)])
def test_min_rnn_parameters_equal_the_formula(arch, layers, input_size):
    shape = CoreShape(input_size=input_size, hidden=6, layers=layers, dropout=0.2)
    core = REGISTRY[arch].build(shape)
    assert count_parameters(core) == REGISTRY[arch].count_params(shape)


def test_min_rnn_parameter_counts_are_exact_at_the_seed_width():
    # G·H·(I + 1) at I = H = 32: a third of the GRU's 6,336, 3/8 of the LSTM's 8,448
    shape = CoreShape(input_size=32, hidden=32)
    assert minrnn_params("mingru", shape) == 2_112
    assert minrnn_params("minlstm", shape) == 3_168


@pytest.mark.parametrize("arch", ["mingru", "minlstm"])
@pytest.mark.parametrize("layers", [1, 3])
def test_min_rnn_forward_flops_equal_the_counted_matmuls(arch, layers):
    cell = normalize_cell(make_cell(arch=arch, layers=layers, seq_len=23, batch_size=3))
    model = build_model(cell).eval()
    tokens = torch.randint(0, cell.vocab, (cell.batch_size, cell.seq_len))
    assert _count(lambda: model(tokens)) == forward_flops(cell) * cell.batch_size


def test_min_rnn_kernel_is_the_scan_and_stepping_is_sequential():
    core = REGISTRY["mingru"].build(CoreShape(input_size=3, hidden=4))
    assert core.implementation(True, "cpu", "float32") == ("log-scan", "")
    assert core.step_implementation("cpu", "float32") == ("sequential", "")
