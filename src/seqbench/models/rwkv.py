"""RWKV-7's time mixing (Peng et al. 2025, "RWKV-7 'Goose' with Expressive Dynamic State
Evolution", §4 and the RWKV-LM v7 reference code).

A matrix state per head (N × N, N = H/heads) that evolves by a diagonal decay plus a
rank-one correction, a generalised delta rule with an in-context learning rate a_t:

    S_t = S_{t-1} (diag(w_t) - κ̂_tᵀ (a_t ⊙ κ̂_t)) + v_tᵀ k̃_t,   o_t = S_t r_t

with, from the token-shifted input (x_t mixed with x_{t-1} by a learned lerp per branch):
r, k, v linear maps; w_t = exp(-e^{-½} σ(w₀ + tanh(x W₁) W₂)) (a decay in [e^{-0.61}, 1]);
a_t = σ(a₀ + x A₁ A₂); the removal key κ̂ = normalise(k ⊙ k_k) per head; the written key
k̃ = k ⊙ (1 + (a - 1) ⊙ k_a). The output: GroupNorm per head, plus the "bonus" Σ(r ⊙ k̃ ⊙
r_k) v per head, gated by g = σ(x G₁) G₂, through W_o. Low-rank widths as the reference
code chooses them: max(32, round(1.8√H/32)·32) for the decay and a, max(32,
round(0.6·H^0.8/32)·32) for the gate. Left out: the value residual that later layers take
from the first (it crosses layers, which this stack keeps independent), and the channel
mixing (an MLP), as for every core here.

In flash-linear-attention's notation (state K × V, the transpose of the paper's) this is
`dplr_attention` with α = -κ̂, β = κ̂ ⊙ a and log g = log w: chunked, with the WY form of the
delta rule and a decay per channel; `step` runs the recurrence.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.kernels import dplr_attention, dplr_step
from seqbench.models.mixers import HeadedMixer, headed_spec
from seqbench.models.transformer import HEAD_WIDTH, attention_heads

DECAY_SCALE = math.exp(-0.5)  # w = exp(-e^{-1/2} σ(·)) ≥ e^{-0.61}
BRANCHES = ("r", "w", "k", "v", "a", "g")


def lora_width(h: int, factor: float, power: float) -> int:
    return max(32, round(factor * h**power / 32) * 32)


def decay_rank(h: int) -> int:
    return lora_width(h, 1.8, 0.5)


def gate_rank(h: int) -> int:
    return lora_width(h, 0.6, 0.8)


class RWKV7(HeadedMixer):
    form = "chunked-dplr"
    step_form = "recurrent"

    def __init__(self, width: int, head_dim: int = HEAD_WIDTH) -> None:
        super().__init__()
        self.heads = attention_heads(width, head_dim)
        d_w, d_g = decay_rank(width), gate_rank(width)
        self.mix = nn.Parameter(torch.rand(len(BRANCHES), width))  # x + (x_{t-1} - x) ⊙ mix
        self.w0 = nn.Parameter(torch.linspace(-6.0, 1.0, width))  # slow to fast channels
        self.w1 = nn.Parameter(torch.zeros(width, d_w))
        self.w2 = nn.Parameter(torch.randn(d_w, width) * 0.1)
        self.a0 = nn.Parameter(torch.zeros(width))
        self.a1 = nn.Parameter(torch.zeros(width, d_w))
        self.a2 = nn.Parameter(torch.randn(d_w, width) * 0.1)
        self.g1 = nn.Parameter(torch.zeros(width, d_g))
        self.g2 = nn.Parameter(torch.randn(d_g, width) * 0.1)
        self.k_k = nn.Parameter(torch.full((width,), 0.85))
        self.k_a = nn.Parameter(torch.ones(width))
        self.r_k = nn.Parameter(torch.randn(width) * 0.1)
        self.receptance = nn.Linear(width, width, bias=False)
        self.key = nn.Linear(width, width, bias=False)
        self.value = nn.Linear(width, width, bias=False)
        self.output = nn.Linear(width, width, bias=False)
        self.ln_x = nn.GroupNorm(self.heads, width, eps=64e-5)

    def _branches(self, x: torch.Tensor, previous: torch.Tensor):
        """The kernel's inputs per head, and what the output needs: x, x_{t-1} (B, T, H)."""
        shifted = previous - x
        xr, xw, xk, xv, xa, xg = (x + shifted * m for m in self.mix)
        r, k, v = self.receptance(xr), self.key(xk), self.value(xv)
        log_w = -DECAY_SCALE * torch.sigmoid(self.w0 + torch.tanh(xw @ self.w1) @ self.w2)
        a = torch.sigmoid(self.a0 + xa @ self.a1 @ self.a2)
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        kk = F.normalize(self._heads(k * self.k_k), dim=-1)  # the removal key
        k = k * (1 + (a - 1) * self.k_a)  # the written key
        heads = [self._heads(t) for t in (r, k, v, a, log_w)]
        return heads[0], heads[1], heads[2], -kk, kk * heads[3], heads[4], g

    def _out(self, o: torch.Tensor, r, k, v, g, shape) -> torch.Tensor:
        batch, length, width = shape
        o = o.transpose(1, 2).reshape(batch * length, width)
        o = self.ln_x(o).reshape(batch, length, width)
        bonus = (r * k * self._heads(self.r_k[None, None])).sum(-1, keepdim=True) * v
        o = o + bonus.transpose(1, 2).reshape(batch, length, width)
        return self.output(o * g)

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, H)
        previous = F.pad(u, (0, 0, 1, 0))[:, :-1]  # x_{t-1}, zero before the first token
        r, k, v, alpha, beta, log_w, g = self._branches(u, previous)
        o, _ = dplr_attention(r, k, v, alpha, beta, log_w)
        return self._out(o, r, k, v, g, u.shape)

    def init_state(self, batch: int, device, dtype) -> tuple:
        width = self.key.in_features
        size = width // self.heads
        return (
            torch.zeros(batch, width, device=device, dtype=dtype),  # the last token's x
            torch.zeros(batch, self.heads, size, size, device=device, dtype=dtype),
        )

    def step(self, u_t: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        previous, s = state
        r, k, v, alpha, beta, log_w, g = self._branches(u_t[:, None], previous[:, None])
        o, s = dplr_step(*(t[:, :, 0] for t in (r, k, v, alpha, beta, log_w)), s)
        return self._out(o[:, :, None], r, k, v, g, (u_t.shape[0], 1, u_t.shape[1]))[:, 0], (
            u_t,
            s,
        )


def rwkv7_params(h: int, head_dim: int = HEAD_WIDTH) -> int:
    """r, k, v, o: 4H²; the lerps 6H; decay and a: 2·(H + 2·H·D_w); the gate 2·H·D_g; k_k, k_a,
    r_k: 3H; the GroupNorm 2H."""
    d_w, d_g = decay_rank(h), gate_rank(h)
    return 4 * h * h + 6 * h + 2 * (h + 2 * h * d_w) + 2 * h * d_g + 3 * h + 2 * h


def rwkv7_flops(h: int, seq_len: int, head_dim: int = HEAD_WIDTH) -> int:
    """Per token: r, k, v, o 8H², the low-rank maps 2·(4·H·D_w + 2·H·D_g), the state's read
    αᵀS and readout Sᵀr (counted by the counter), and its decay, rank-one correction and
    write, 2 per multiply-add: 10·N² per head in all (N = H/heads)."""
    d_w, d_g = decay_rank(h), gate_rank(h)
    size = h // attention_heads(h, head_dim)
    return seq_len * (8 * h * h + 2 * (4 * h * d_w + 2 * h * d_g) + 10 * size * h)


RWKV7_SPEC = headed_spec(
    "rwkv7",
    "RWKV-7 (Peng et al. 2025): time mixing, decay plus rank-one correction per head, chunked",
    "4H² + 17H + 4H·D_w + 2H·D_g, D_w = max(32, 1.8√H), D_g = max(32, 0.6·H^0.8)",
    RWKV7,
    rwkv7_params,
    rwkv7_flops,
    # the last token's x, and N × N per head
    lambda h, size, hd: (h + h * (h // attention_heads(h, hd))) * size,
)()
