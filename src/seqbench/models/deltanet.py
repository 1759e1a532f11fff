"""DeltaNet and Gated DeltaNet: linear attention whose state is corrected, not only added to.

DeltaNet (Schlag, Irie & Schmidhuber 2021, "Linear Transformers Are Secretly Fast Weight
Programmers"; trained in parallel by Yang et al. 2024, "Parallelizing Linear Transformers
with the Delta Rule over Sequence Length"): the state S (d_k × d_v per head) learns to map
keys to values, one delta-rule step per token,

    S_t = (I - β_t k_t k_tᵀ) S_{t-1} + β_t k_t v_tᵀ,   o_t = S_tᵀ q_t / √d_k

Gated DeltaNet (Yang, Kautz & Hatamizadeh 2025, "Gated Delta Networks", eq. 10) adds
Mamba-2's scalar forgetting gate: S_t = α_t (I - β_t k_t k_tᵀ) S_{t-1} + β_t k_t v_tᵀ, with
α_t = exp(-exp(A) · softplus(W_a x_t + b)).

The blocks follow flash-linear-attention's layers (DeltaNet and GatedDeltaNet defaults):
q, k, v projections each through a causal depthwise convolution of width 4 (no bias) and
SiLU; q and k L2-normalised; β_t = σ(W_β x_t); an RMSNorm per head on the output (for Gated
DeltaNet gated by SiLU(W_g x) after the norm); the output projection. Keys are H wide;
values H (DeltaNet) or 2H (Gated DeltaNet, expand_v 2); heads of about 64 key channels.
`forward` runs the chunked WY form (kernels.delta_rule), `step` the recurrence.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.kernels import (
    RMSNorm,
    causal_conv,
    causal_conv_step,
    conv_window,
    delta_rule,
    delta_rule_step,
)
from seqbench.models.mamba import inverse_softplus_dt
from seqbench.models.mixers import HeadedMixer, headed_spec
from seqbench.models.transformer import HEAD_WIDTH, attention_heads

CONV = 4


def _short_conv(width: int) -> nn.Conv1d:
    return nn.Conv1d(width, width, CONV, groups=width, padding=CONV - 1, bias=False)


class DeltaNet(HeadedMixer):
    form = "chunked-wy"
    step_form = "recurrent"

    def __init__(self, width: int, gated: bool = False, head_dim: int = HEAD_WIDTH) -> None:
        super().__init__()
        self.gated = gated
        self.heads = attention_heads(width, head_dim)
        values = 2 * width if gated else width
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, values, bias=False)
        self.b_proj = nn.Linear(width, self.heads, bias=False)
        self.q_conv1d, self.k_conv1d = _short_conv(width), _short_conv(width)
        self.v_conv1d = _short_conv(values)
        if gated:
            self.a_proj = nn.Linear(width, self.heads, bias=False)
            self.A_log = nn.Parameter(torch.empty(self.heads).uniform_(1, 16).log())
            self.dt_bias = nn.Parameter(inverse_softplus_dt(self.heads))
            self.g_proj = nn.Linear(width, values, bias=False)
        self.o_norm = RMSNorm(values // self.heads)
        self.o_proj = nn.Linear(values, width, bias=False)

    def _gates(self, u: torch.Tensor):
        """β and log α (B, T, heads) for u (B, T, H); log α is None without the gate."""
        beta = torch.sigmoid(self.b_proj(u))
        if not self.gated:
            return beta, None
        return beta, -self.A_log.exp() * F.softplus(self.a_proj(u) + self.dt_bias)

    def _qkv(self, q, k, v):
        q, k, v = (self._heads(F.silu(t)) for t in (q, k, v))
        return F.normalize(q, dim=-1, eps=1e-6), F.normalize(k, dim=-1, eps=1e-6), v

    def _out(self, o: torch.Tensor, u: torch.Tensor) -> torch.Tensor:  # o (B, heads, T, dv)
        o = self.o_norm(o)
        o = o.transpose(1, 2).reshape(*u.shape[:2], -1)
        if self.gated:
            o = o * F.silu(self.g_proj(u))
        return self.o_proj(o)

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, H)
        q, k, v = self._qkv(
            causal_conv(self.q_conv1d, self.q_proj(u)),
            causal_conv(self.k_conv1d, self.k_proj(u)),
            causal_conv(self.v_conv1d, self.v_proj(u)),
        )
        beta, log_g = self._gates(u)
        o, _ = delta_rule(
            q,
            k,
            v,
            beta.transpose(1, 2),
            log_g.transpose(1, 2) if log_g is not None else None,
            scale=q.shape[-1] ** -0.5,
        )
        return self._out(o, u)

    def init_state(self, batch: int, device, dtype) -> tuple:
        keys, values = self.k_proj.out_features, self.v_proj.out_features
        return (
            conv_window(self.q_conv1d, batch, device, dtype),
            conv_window(self.k_conv1d, batch, device, dtype),
            conv_window(self.v_conv1d, batch, device, dtype),
            torch.zeros(
                batch,
                self.heads,
                keys // self.heads,
                values // self.heads,
                device=device,
                dtype=dtype,
            ),
        )

    def step(self, u_t: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        wq, wk, wv, s = state
        q, wq = causal_conv_step(self.q_conv1d, self.q_proj(u_t), wq)
        k, wk = causal_conv_step(self.k_conv1d, self.k_proj(u_t), wk)
        v, wv = causal_conv_step(self.v_conv1d, self.v_proj(u_t), wv)
        q, k, v = (t[:, :, 0] for t in self._qkv(q[:, None], k[:, None], v[:, None]))
        beta, log_g = self._gates(u_t[:, None])
        o, s = delta_rule_step(
            q,
            k,
            v,
            beta[:, 0],
            log_g[:, 0] if log_g is not None else None,
            s,
            scale=q.shape[-1] ** -0.5,
        )
        return self._out(o[:, :, None], u_t[:, None])[:, 0], (wq, wk, wv, s)


def deltanet_params(h: int, gated: bool = False, head_dim: int = HEAD_WIDTH) -> int:
    """q, k: 2H²; v: H·V; β: H·heads; the convolutions 4·(2H + V); the norm V/heads; out V·H;
    gated, also a: H·heads, A and its bias 2·heads, and the output gate H·V. V = H, or 2H gated."""
    heads = attention_heads(h, head_dim)
    values = 2 * h if gated else h
    count = 2 * h * h + h * values + h * heads + CONV * (2 * h + values) + values // heads
    count += values * h
    if gated:
        count += h * heads + 2 * heads + h * values
    return count


def deltanet_flops(h: int, seq_len: int, gated: bool = False, head_dim: int = HEAD_WIDTH) -> int:
    """Per token: the projections (2 per multiply-add), the convolutions 2·4 per channel, and
    the delta rule's 6·d_k·d_v per head (the prediction Sᵀk, the rank-one update, the
    readout Sᵀq)."""
    heads = attention_heads(h, head_dim)
    values = 2 * h if gated else h
    matmuls = 2 * h * h + h * values + h * heads + values * h
    if gated:
        matmuls += h * heads + h * values
    recurrence = 6 * (h // heads) * (values // heads) * heads
    return seq_len * (2 * matmuls + 2 * CONV * (2 * h + values) + recurrence)


def deltanet_state_bytes(
    h: int, itemsize: int, gated: bool = False, head_dim: int = HEAD_WIDTH
) -> int:
    """The three convolutions' last K-1 inputs, and d_k × d_v per head."""
    values = 2 * h if gated else h
    heads = attention_heads(h, head_dim)
    return ((2 * h + values) * (CONV - 1) + h * values // heads) * itemsize


DELTANET_SPEC = headed_spec(
    "deltanet",
    "DeltaNet (Schlag et al. 2021; Yang et al. 2024): delta-rule fast weights, chunked WY form",
    "4H² + H·heads + 12H + H/heads",
    DeltaNet,
    deltanet_params,
    deltanet_flops,
    lambda h, size, hd: deltanet_state_bytes(h, size, head_dim=hd),
)()

GATED_DELTANET_SPEC = headed_spec(
    "gated-deltanet",
    "Gated DeltaNet (Yang et al. 2025): delta rule with Mamba-2's decay gate, chunked WY form",
    "8H² + 2H·heads + 2·heads + 16H + 2H/heads",
    functools.partial(DeltaNet, gated=True),
    functools.partial(deltanet_params, gated=True),
    functools.partial(deltanet_flops, gated=True),
    lambda h, size, hd: deltanet_state_bytes(h, size, gated=True, head_dim=hd),
)()
