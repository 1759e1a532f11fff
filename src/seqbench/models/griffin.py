"""Griffin's and Hawk's recurrent block with the RG-LRU (De et al. 2024, "Griffin: Mixing Gated
Linear Recurrences with Local Attention for Efficient Language Models", §2.4 and Figure 2).

Two branches of width W = H: GELU(Linear(x)), and Linear(x) -> causal depthwise Conv1D of
width 4 -> RG-LRU; their product -> Linear(W, H). The Real-Gated Linear Recurrent Unit:

    r_t = σ(W_a x_t + b_a),  i_t = σ(W_x x_t + b_x)              (block-diagonal gates)
    log a_t = -c · r_t · softplus(Λ)   (a_t = σ(-Λ)^(c r_t), c = 8)                   (eq. 4-6)
    h_t = a_t ⊙ h_{t-1} + sqrt(1 - a_t²) ⊙ (i_t ⊙ x_t)

The gates are block-diagonal with one block per head (about 64 channels), as in Google's
RecurrentGemma; as there, the first token enters without the sqrt(1 - a²) factor (the
state is reset at the start of a sequence). Λ is initialised so that a^c is uniform in
[0.9, 0.999] (§2.4). `forward` runs the recurrence a token at a time (kernels.linear_scan:
on a CPU a fused multiply-add per token was measured faster than a parallel log-space
scan); `step` does the same for one token. Griffin's local-attention blocks and the MLP
blocks are not part of this core: it is Hawk's temporal mixing alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.kernels import causal_conv, causal_conv_step, conv_window, linear_scan
from seqbench.models.mixers import mixer_spec
from seqbench.models.transformer import attention_heads

CONV = 4
C_FACTOR = 8.0
A_RANGE = (0.9, 0.999)


class RGLRU(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.blocks = attention_heads(width)
        size = width // self.blocks
        bound = 1 / math.sqrt(size)
        self.input_gate_weight = nn.Parameter(
            torch.empty(self.blocks, size, size).uniform_(-bound, bound)
        )
        self.input_gate_bias = nn.Parameter(torch.zeros(self.blocks, size))
        self.recurrent_gate_weight = nn.Parameter(
            torch.empty(self.blocks, size, size).uniform_(-bound, bound)
        )
        self.recurrent_gate_bias = nn.Parameter(torch.zeros(self.blocks, size))
        low, high = A_RANGE
        a = (torch.rand(width) * (high - low) + low) ** (1 / C_FACTOR)  # a^c uniform
        self.recurrent_param = nn.Parameter(torch.log(1 / a - 1))  # σ(-Λ) = a

    def _gate(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        blocks = x.reshape(*x.shape[:-1], self.blocks, -1)
        return torch.sigmoid(torch.einsum("...bi,bij->...bj", blocks, weight) + bias).flatten(-2)

    def coefficients(self, x: torch.Tensor):
        """(log a_t, the gated input i_t ⊙ x_t, its normaliser √(1-a_t²)) for x (.., W)."""
        i = self._gate(x, self.input_gate_weight, self.input_gate_bias)
        r = self._gate(x, self.recurrent_gate_weight, self.recurrent_gate_bias)
        log_a = -C_FACTOR * r * F.softplus(self.recurrent_param)
        # 1 - a² = -expm1(2 log a), accurate when a is near 1
        return log_a, i * x, (-torch.expm1(2 * log_a)).sqrt()


class RecurrentBlock(nn.Module):
    form = "sequential-scan"
    step_form = "recurrent"

    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear_y = nn.Linear(width, width)
        self.linear_x = nn.Linear(width, width)
        self.linear_out = nn.Linear(width, width)
        self.conv_1d = nn.Conv1d(width, width, CONV, groups=width, padding=CONV - 1)
        self.rg_lru = RGLRU(width)

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, H)
        y = F.gelu(self.linear_y(u), approximate="tanh")
        x = causal_conv(self.conv_1d, self.linear_x(u))
        log_a, gated, norm = self.rg_lru.coefficients(x)
        norm = torch.cat([torch.ones_like(norm[:, :1]), norm[:, 1:]], dim=1)  # the reset
        h, _ = linear_scan(log_a.exp(), gated * norm)
        return self.linear_out(h.to(u.dtype) * y)

    def init_state(self, batch: int, device, dtype) -> tuple:
        width = self.linear_x.out_features
        h = torch.zeros(batch, width, device=device, dtype=dtype)
        return conv_window(self.conv_1d, batch, device, dtype), h, True

    def step(self, u_t: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        window, h, first = state
        y = F.gelu(self.linear_y(u_t), approximate="tanh")
        x, window = causal_conv_step(self.conv_1d, self.linear_x(u_t), window)
        log_a, gated, norm = self.rg_lru.coefficients(x)
        # the first token meets a reset state and enters unnormalised
        h = gated if first else log_a.exp() * h + norm * gated
        return self.linear_out(h * y), (window, h, False)


def hawk_params(h: int) -> int:
    """Three H×H linears with biases, the conv 5H, the gates 2·(H·H/blocks + H), Λ: H."""
    size = h // attention_heads(h)
    return 3 * (h * h + h) + h * (CONV + 1) + 2 * (h * size + h) + h


def hawk_flops(h: int, seq_len: int) -> int:
    """Per token: the three linears 6·H², the conv 2·4·H, the gates 4·H·H/blocks; the
    recurrence is elementwise and not counted."""
    size = h // attention_heads(h)
    return seq_len * (6 * h * h + 2 * CONV * h + 4 * h * size)


HAWK_SPEC = mixer_spec(
    "hawk",
    "Hawk/Griffin recurrent block (De et al. 2024): RG-LRU with conv 4 and GELU gate, sequential scan",
    "3(H² + H) + 5H + 2(H·H/blocks + H) + H",
    RecurrentBlock,
    hawk_params,
    hawk_flops,
    lambda h, size: h * (CONV - 1 + 1) * size,  # the convolution's last K-1 inputs, and h
)
