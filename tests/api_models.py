"""Models the API tests measure: a factory for `--arch tests.api_models:core`, and a small
module with its inputs by importable name (for `isolate=True`)."""

from __future__ import annotations

import torch
from torch import nn


def core(shape):
    """A GRU core for `seqbench run --arch tests.api_models:core`."""
    return _LastStates(nn.GRU(shape.input_size, shape.hidden, batch_first=True))


class _LastStates(nn.Module):
    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]  # (B, T, H)


def small() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))


def small_inputs(batch_size: int, seq_len: int) -> torch.Tensor:
    return torch.randn(batch_size, seq_len, 8)
