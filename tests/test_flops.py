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
