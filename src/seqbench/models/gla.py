"""Linear attention with decay: RetNet's retention and Gated Linear Attention (GLA).

Both keep a matrix state per head, S_t = decay ⊙ S_{t-1} + k_t v_tᵀ, and read o_t = S_tᵀ q_t;
`forward` runs the chunked form (kernels.decay_attention, vector_decay_attention), `step`
the recurrence.

RetNet (Sun et al. 2023, "Retentive Network", §2.1-2.3): multi-scale retention with a fixed
decay per head, γ_h = 1 - 2^(-5-h) (h = 0, 1, ...), queries and keys rotated by their
position (the rotary e^{inθ} of eq. 5, θ_i = 10000^(-2i/d), without xPos's extra scaling),
scale d_k^(-½), values twice as wide as keys, a normalisation per head (RMSNorm without
weights here, GroupNorm in the paper), then the swish gate:

    out = W_O (swish(X W_G) ⊙ norm(retention(X)))         8·H² parameters, no biases

GLA (Yang et al. 2024, "Gated Linear Attention Transformers with Hardware-Efficient
Training", §4 and flash-linear-attention's GatedLinearAttention defaults): a decay per key
channel from the input, α_t = σ(W₂ W₁ x_t + b)^(1/16) (rank 16, normaliser 16), keys half
the width (expand_k ½), values the width, a swish output gate and an RMSNorm per head:

    S_t = diag(α_t) S_{t-1} + k_t v_tᵀ;   out = W_O (swish(X W_r) ⊙ RMSNorm(S_tᵀ q_t))

Heads: about one per 64 value channels, as the transformer core chooses them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.kernels import (
    RMSNorm,
    decay_attention,
    decay_attention_step,
    vector_decay_attention,
)
from seqbench.models.mixers import HeadedMixer, headed_spec
from seqbench.models.transformer import HEAD_WIDTH, attention_heads

GLA_RANK = 16
GLA_NORMALISER = 16


def retnet_decays(heads: int) -> torch.Tensor:
    """log γ_h, γ_h = 1 - 2^(-5-h): head 0 remembers ~32 tokens, each next one twice as long."""
    return torch.log1p(-torch.pow(2.0, -5.0 - torch.arange(heads, dtype=torch.float64)))


def rotate(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotary positions on (.., T, d) at `positions` (T,): pairs (x_i, x_{i+d/2}) rotated by
    p·θ_i (the half-split layout of GPT-NeoX and LLaMA). An odd last channel is left as is."""
    d = x.shape[-1] // 2 * 2
    if d == 0:
        return x
    dtype = torch.promote_types(x.dtype, torch.float32)
    theta = 10000.0 ** (-torch.arange(0, d, 2, device=x.device, dtype=dtype) / d)
    angle = positions.to(dtype)[:, None] * theta  # (T, d/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    a, b, rest = x[..., : d // 2], x[..., d // 2 : d], x[..., d:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos, rest], dim=-1)


class Retention(HeadedMixer):
    form = "chunked"
    step_form = "recurrent"

    def __init__(self, width: int, head_dim: int = HEAD_WIDTH) -> None:
        super().__init__()
        self.heads = attention_heads(width, head_dim)
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, 2 * width, bias=False)
        self.g_proj = nn.Linear(width, 2 * width, bias=False)
        self.o_proj = nn.Linear(2 * width, width, bias=False)
        self.norm = RMSNorm(2 * width // self.heads, affine=False)
        self.register_buffer("log_decay", retnet_decays(self.heads), persistent=False)

    def _out(self, o: torch.Tensor, u: torch.Tensor) -> torch.Tensor:  # o (B, heads, T, dv)
        o = self.norm(o).transpose(1, 2).reshape(*u.shape[:2], -1)
        return self.o_proj(F.silu(self.g_proj(u)) * o)

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, H)
        positions = torch.arange(u.shape[1], device=u.device)
        q = rotate(self._heads(self.q_proj(u)), positions)
        k = rotate(self._heads(self.k_proj(u)), positions)
        v = self._heads(self.v_proj(u))
        log_g = self.log_decay.to(u.device, torch.promote_types(u.dtype, torch.float32))
        log_g = log_g[None, :, None].expand(u.shape[0], -1, u.shape[1])
        o, _ = decay_attention(q, k, v, log_g, scale=q.shape[-1] ** -0.5)
        return self._out(o, u)

    def init_state(self, batch: int, device, dtype) -> tuple[torch.Tensor, int]:
        width = self.q_proj.in_features
        dk, dv = width // self.heads, 2 * width // self.heads
        return torch.zeros(batch, self.heads, dk, dv, device=device, dtype=dtype), 0

    def step(self, u_t: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        s, position = state
        at = torch.tensor([position], device=u_t.device)
        u = u_t[:, None]  # (B, 1, H)
        q = rotate(self._heads(self.q_proj(u)), at)[:, :, 0]
        k = rotate(self._heads(self.k_proj(u)), at)[:, :, 0]
        v = self._heads(self.v_proj(u))[:, :, 0]
        log_g = self.log_decay.to(u_t.device, s.dtype)[None].expand(u_t.shape[0], -1)
        o, s = decay_attention_step(q, k, v, log_g, s, scale=q.shape[-1] ** -0.5)
        return self._out(o[:, :, None], u)[:, 0], (s, position + 1)


def retnet_params(h: int, head_dim: int = HEAD_WIDTH) -> int:
    return 8 * h * h


def retnet_flops(h: int, seq_len: int, head_dim: int = HEAD_WIDTH) -> int:
    """Per token: projections 2·8H², the recurrence 4·d_k·d_v per head (update and readout,
    2 per multiply-add): 8·H²/heads."""
    heads = attention_heads(h, head_dim)
    return seq_len * (16 * h * h + 4 * h * (2 * h) // heads)


def gla_key_width(h: int, head_dim: int = HEAD_WIDTH) -> int:
    """Keys are half the width (expand_k ½), at least one channel per head."""
    heads = attention_heads(h, head_dim)
    return heads * max(1, h // (2 * heads))


class GatedLinearAttention(HeadedMixer):
    form = "chunked"
    step_form = "recurrent"

    def __init__(self, width: int, head_dim: int = HEAD_WIDTH) -> None:
        super().__init__()
        self.heads = attention_heads(width, head_dim)
        keys = gla_key_width(width, head_dim)
        self.q_proj = nn.Linear(width, keys, bias=False)
        self.k_proj = nn.Linear(width, keys, bias=False)
        self.v_proj = nn.Linear(width, width, bias=False)
        self.gk_proj = nn.Sequential(
            nn.Linear(width, GLA_RANK, bias=False), nn.Linear(GLA_RANK, keys, bias=True)
        )
        self.g_proj = nn.Linear(width, width, bias=False)
        self.g_norm = RMSNorm(width // self.heads)
        self.o_proj = nn.Linear(width, width, bias=False)

    def _qkvg(self, u: torch.Tensor):
        log_g = F.logsigmoid(self.gk_proj(u)) / GLA_NORMALISER
        return (self._heads(t) for t in (self.q_proj(u), self.k_proj(u), self.v_proj(u), log_g))

    def _out(self, o: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        o = self.g_norm(o).transpose(1, 2).reshape(*u.shape[:2], -1)
        return self.o_proj(F.silu(self.g_proj(u)) * o)

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, H)
        q, k, v, log_g = self._qkvg(u)
        o, _ = vector_decay_attention(q, k, v, log_g, scale=q.shape[-1] ** -0.5)
        return self._out(o, u)

    def init_state(self, batch: int, device, dtype) -> torch.Tensor:
        width = self.v_proj.in_features
        dk = self.q_proj.out_features // self.heads
        return torch.zeros(batch, self.heads, dk, width // self.heads, device=device, dtype=dtype)

    def step(self, u_t: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = u_t[:, None]
        q, k, v, log_g = (t[:, :, 0] for t in self._qkvg(u))
        o, s = decay_attention_step(q, k, v, log_g, s, scale=q.shape[-1] ** -0.5)
        return self._out(o[:, :, None], u)[:, 0], s


def gla_params(h: int, head_dim: int = HEAD_WIDTH) -> int:
    """q, k: 2·H·K; v, output gate, out: 3·H²; the gate's low rank: 16·H + 16·K + K; the
    norm's weights: H/heads. K = gla_key_width(H)."""
    k, heads = gla_key_width(h, head_dim), attention_heads(h, head_dim)
    return 2 * h * k + 3 * h * h + GLA_RANK * h + GLA_RANK * k + k + h // heads


def gla_flops(h: int, seq_len: int, head_dim: int = HEAD_WIDTH) -> int:
    """Per token: the projections 2·(2HK + 3H² + 16H + 16K), the recurrence 4·d_k·d_v per
    head (update and readout; the decay's multiply is elementwise and not counted)."""
    k, heads = gla_key_width(h, head_dim), attention_heads(h, head_dim)
    matmuls = 2 * (2 * h * k + 3 * h * h + GLA_RANK * h + GLA_RANK * k)
    return seq_len * (matmuls + 4 * k * h // heads)


RETNET_SPEC = headed_spec(
    "retnet",
    "RetNet (Sun et al. 2023): multi-scale retention, fixed decay per head, rotary, chunked",
    "8·H²",
    Retention,
    retnet_params,
    retnet_flops,
    lambda h, size, hd: h * 2 * h // attention_heads(h, hd) * size,  # d_k × d_v per head
)()

GLA_SPEC = headed_spec(
    "gla",
    "GLA (Yang et al. 2024): gated linear attention, decay per key channel, chunked",
    "2HK + 3H² + 16H + 17K + H/heads, K = H/2",
    GatedLinearAttention,
    gla_params,
    gla_flops,
    # d_k × d_v per head
    lambda h, size, hd: gla_key_width(h, hd) * h // attention_heads(h, hd) * size,
)()
