"""FLOP formulas against torch.utils.flop_counter, which counts matmuls and convolutions.

The counter sees 0 FLOPs inside a fused CPU RNN kernel, so the recurrent formulas are checked
on the step loop (the same weights and equations), where every matmul is visible.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from seqbench.models import build_model, forward_flops, normalize_cell, step_flops
from seqbench.models import recurrent as rec
from tests.helpers import make_cell


def _count(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


@pytest.fixture
def loop_path(monkeypatch):
    """Recurrent dropout with all-ones masks: the loop runs, the arithmetic is unchanged."""
    monkeypatch.setattr(
        rec, "variational_mask", lambda like, shape, p: torch.ones(shape, dtype=like.dtype)
    )


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(
    ("layers", "bidirectional"), [(1, False), (1, True), (3, False), (2, True)]
)
def test_recurrent_forward_flops_equal_the_counted_matmuls(arch, layers, bidirectional, loop_path):
    cell = make_cell(
        arch=arch, layers=layers, bidirectional=bidirectional, recurrent_dropout=0.5, batch_size=3
    )
    model = build_model(cell).train()
    tokens = torch.randint(0, cell.vocab, (cell.batch_size, cell.seq_len))
    assert _count(lambda: model(tokens)) == forward_flops(cell) * cell.batch_size


def test_the_fused_cpu_kernel_hides_its_flops_from_the_counter():
    # Why the recurrent formulas are checked on the loop: the counter knows no fused RNN op.
    cell = make_cell(arch="lstm")
    model = build_model(cell).eval()
    tokens = torch.randint(0, cell.vocab, (cell.batch_size, cell.seq_len))
    head_only = 2 * cell.hidden * cell.batch_size
    assert _count(lambda: model(tokens)) == head_only


@pytest.mark.parametrize("seq_len", [41, 64, 500])
def test_conv1d_forward_flops_equal_the_counted_convolutions(seq_len):
    cell = normalize_cell(make_cell(arch="conv1d", seq_len=seq_len, hidden=16, embed=8))
    model = build_model(cell)
    tokens = torch.randint(0, cell.vocab, (cell.batch_size, cell.seq_len))
    assert _count(lambda: model(tokens)) == forward_flops(cell) * cell.batch_size


@pytest.mark.parametrize("arch", ["lstm", "gru", "conv1d"])
def test_a_training_step_counts_about_three_forward_passes(arch, loop_path):
    cell = normalize_cell(
        make_cell(arch=arch, seq_len=64, mode="train", recurrent_dropout=0.5, batch_size=3)
    )
    model = build_model(cell).train()
    tokens = torch.randint(0, cell.vocab, (cell.batch_size, cell.seq_len))

    def step():
        model(tokens).sum().backward()

    counted = _count(step) / cell.batch_size
    # The convention is exactly 3x; autograd skips a few gradients nobody needs (the zero
    # initial state's, the first convolution's input), so the count is a little lower.
    assert step_flops(cell) == 3 * forward_flops(cell)
    assert 0.95 * step_flops(cell) <= counted <= step_flops(cell)


def test_inference_step_flops_are_the_forward_pass():
    cell = make_cell(mode="infer")
    assert step_flops(cell) == forward_flops(cell)


# ----------------------------------------------- a user's module: counted as it runs


def _inference(fn):
    def step():
        with torch.inference_mode():
            fn()

    return step


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, True)])
def test_seqbenchs_counter_sees_the_fused_cpu_kernels_the_formulas_count(
    arch, layers, bidirectional
):
    # The fused oneDNN LSTM the counter above cannot see, counted by seqbench's formula for
    # it, equals seqbench's own FLOP formula exactly: two independent paths, one figure.
    from seqbench.measure.flops import count_step

    cell = make_cell(arch=arch, layers=layers, bidirectional=bidirectional, batch_size=3)
    model = build_model(cell).eval()
    tokens = torch.randint(0, cell.vocab, (cell.batch_size, cell.seq_len))
    assert count_step(_inference(lambda: model(tokens)), cell.batch_size) == (
        forward_flops(cell),
        "",
    )


def test_attentions_cpu_kernel_is_counted_by_the_sdpa_formula():
    from seqbench.measure.flops import count_step

    q = torch.randn(2, 4, 12, 8)  # batch 2, 4 heads, 12 positions, head width 8
    attend = lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)  # noqa: E731
    assert _count(attend) == 0  # torch's counter: the CPU kernel has no formula there
    assert count_step(_inference(attend), 2) == (2 * 2 * 4 * 12 * 12 * 8, "")  # QK^T and AV


class _Inner(torch.nn.Module):
    def forward(self, x, w):
        return x @ w


class _Outer(torch.nn.Module):
    """A submodule called with a parameter, as transformers' Mamba does."""

    def __init__(self):
        super().__init__()
        self.inner, self.w = _Inner(), torch.nn.Parameter(torch.randn(8, 8))

    def forward(self, x):
        return self.inner(x, self.w)


def test_a_parameter_passed_to_a_submodule_is_counted_under_inference_mode():
    from seqbench.measure.flops import count_step

    model, x = _Outer(), torch.randn(2, 8)
    with pytest.raises(AttributeError, match="next_functions"):  # what cost users the cell
        _count(_inference(lambda: model(x)))
    assert count_step(_inference(lambda: model(x)), 2) == (2 * 8 * 8, "")


def test_a_heavy_kernel_without_a_formula_leaves_no_figure_and_names_it():
    from seqbench.measure.flops import count_step

    library = torch.library.Library("seqbench_flops_test", "DEF")  # noqa: F841 (kept alive)
    library.define("opaque_rnn(Tensor x) -> Tensor")
    library.impl("opaque_rnn", lambda x: x * 2, "CPU")
    step = _inference(lambda: torch.ops.seqbench_flops_test.opaque_rnn(torch.randn(2, 3)))
    assert count_step(step, 2) == (
        None, "FLOPs not counted: no formula for opaque_rnn (the count would be a lower bound)",
    )  # fmt: skip


def test_a_count_that_fails_costs_the_figure_not_the_cell(monkeypatch):
    from seqbench.measure import flops

    def broken(self, func, types, args=(), kwargs=None):
        raise RuntimeError("the counter broke\nsecond line")

    monkeypatch.setattr(flops._Counter, "__torch_dispatch__", broken)
    assert flops.count_step(lambda: torch.ones(2) @ torch.ones(2), 2) == (
        None, "FLOPs not counted: counting failed (RuntimeError: the counter broke)",
    )  # fmt: skip


@pytest.mark.filterwarnings("ignore:this machine is busy:RuntimeWarning")
def test_measure_module_measures_and_counts_a_module_torchs_counter_fails_on(one_thread):
    import seqbench

    quick = {"min_time": 0.0, "min_repeats": 3, "warmup_time": 0.0, "warmup_steps": 1,
             "threads": 1, "processes": 1}  # fmt: skip
    frame = seqbench.measure_module(
        _Outer(), lambda b, t: torch.randn(b, t, 8), seq_len=[4], batch_size=[2],
        mode=["infer"], label="outer", **quick,
    )  # fmt: skip
    assert list(frame.status) == ["ok"] and list(frame.flops_per_seq) == [4 * 2 * 8 * 8]
    assert list(frame.kernel_note) == [""]
