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


def streaming_core(shape):
    """A GRU core that streams: `init_state` and `step` beside its forward pass."""
    return _StreamingGRU(shape.input_size, shape.hidden)


class _StreamingGRU(nn.Module):
    def __init__(self, inputs: int, hidden: int) -> None:
        super().__init__()
        self.cell = nn.GRUCell(inputs, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.init_state(x.shape[0], x.device, x.dtype)
        out = []
        for x_t in x.unbind(1):
            y, h = self.step(x_t, h)
            out.append(y)
        return torch.stack(out, 1)

    def init_state(self, batch: int, device, dtype) -> torch.Tensor:
        return torch.zeros(batch, self.cell.hidden_size, device=device, dtype=dtype)

    def step(self, x_t: torch.Tensor, h: torch.Tensor):
        h = self.cell(x_t, h)
        return h, h
