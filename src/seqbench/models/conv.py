"""The seed's 1D convolution stack, for sequences whose global order matters little.

Conv1D(k=7) -> ReLU -> MaxPool(5) -> Conv1D(k=7) -> ReLU -> global max-pool, with `hidden`
filters in both convolutions and 'valid' padding, as in the seed's Keras model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.base import ArchSpec, CoreShape, SequenceCore
from seqbench.models.options import BUILTIN_OPTIONS

KERNEL = 7
POOL = 5


def conv_lengths(seq_len: int) -> tuple[int, int, int]:
    """Sequence length after the first conv, the pool and the second conv ('valid' padding)."""
    first = seq_len - (KERNEL - 1)
    pooled = first // POOL
    return first, pooled, pooled - (KERNEL - 1)


# The shortest input that leaves at least one step after the second convolution.
MIN_SEQ_LEN = (KERNEL - 1) + POOL * KERNEL


class Conv1dCore(SequenceCore):
    def __init__(self, shape: CoreShape) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(shape.input_size, shape.hidden, KERNEL)
        self.conv2 = nn.Conv1d(shape.hidden, shape.hidden, KERNEL)
        self.out_features = shape.hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, I) -> (B, T', H)
        y = x.transpose(1, 2)  # (B, I, T)
        y = F.relu(self.conv1(y))  # (B, H, T-6)
        y = F.max_pool1d(y, POOL)  # (B, H, (T-6)//5)
        y = F.relu(self.conv2(y))  # (B, H, (T-6)//5 - 6)
        return y.transpose(1, 2)

    def step_unsupported(self) -> str | None:
        # There is no output per token to stream: 'valid' convolutions drop steps, the pool
        # emits one output per 5 inputs, and the summary is a max over the whole sequence.
        return "conv1d reads whole sequences: its outputs are not one per input token"

    def summary(self, y: torch.Tensor) -> torch.Tensor:  # global max-pool: (B, T', H) -> (B, H)
        return y.amax(dim=1)


def conv_params(shape: CoreShape) -> int:
    """7·I·H + H for the first convolution, 7·H·H + H for the second."""
    h = shape.hidden
    return KERNEL * shape.input_size * h + h + KERNEL * h * h + h


def conv_flops(shape: CoreShape, seq_len: int) -> int:
    """2·7·I·H per output step of the first convolution, 2·7·H·H per step of the second."""
    first, _, second = conv_lengths(seq_len)
    h = shape.hidden
    return 2 * KERNEL * shape.input_size * h * first + 2 * KERNEL * h * h * max(second, 0)


CONV1D = ArchSpec(
    name="conv1d",
    summary="the seed's stack: Conv1D k=7 -> MaxPool 5 -> Conv1D k=7 -> global max-pool",
    param_formula="7·I·H + H + 7·H·H + H (Keras: the same)",
    build=Conv1dCore,
    count_params=conv_params,
    keras_params=conv_params,
    forward_flops=conv_flops,
    options=BUILTIN_OPTIONS["conv1d"],
    # Two convolutions, one direction, no dropout: whatever the matrix says about these.
    fixed={"layers": 2, "bidirectional": False, "dropout": 0.0, "recurrent_dropout": 0.0},
    min_seq_len=MIN_SEQ_LEN,
    per_step=False,
)
