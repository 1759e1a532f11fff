"""Mamba's selective SSM block and Mamba-2's SSD block, laid out as the reference code lays
them out (the parameter names follow `mamba_ssm` and `transformers`, so weights copy across).

Mamba (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
§3 and Algorithm 2), width H, E = 2H inner channels, N = 16 states per channel,
R = ⌈H/16⌉ (dt_rank), a causal depthwise convolution of width 4:

    x, z = in_proj(u)                        (no bias)
    x = SiLU(conv(x));  Δ, B, C = x_proj(x) split (R, N, N);  Δ = softplus(dt_proj(Δ))
    h_t = exp(Δ_t A) ⊙ h_{t-1} + (Δ_t x_t) Bᵀ_t     A = -exp(A_log), (E, N) per token
    y_t = h_t C_t + D ⊙ x_t;   out = out_proj(y ⊙ SiLU(z))

The selective scan (kernels.linear_scan) runs a token at a time over chunks of 64 tokens,
whose decays exp(ΔA) and inputs ΔxB are made at once and whose outputs are read out with one
einsum: a decay per channel and state has no matmul form (the reason for Mamba-2), and on a
CPU the recurrence was measured faster than a parallel log-space scan (docs/architectures.md).
In inference only one chunk's (E, N) states exist at a time. Initialisation as the paper's: A =
1..N per channel (S4D-Real), D = 1, Δ's bias the inverse softplus of Δ log-uniform in
[0.001, 0.1].

Mamba-2 (Dao & Gu 2024, "Transformers are SSMs", §7 and Listing 1): the same block with a
scalar decay per head, the projections of x, B, C and Δ made at once from the input, a
gated RMSNorm before the output projection. E = 2H channels in heads of P = 64 (fewer,
wider heads when E is not a multiple), N = 128 states (`mamba_ssm`'s Mamba2 defaults), one
group:

    z, xBC, Δ = in_proj(u);  x, B, C = SiLU(conv(xBC));  Δ = softplus(Δ + dt_bias)
    H_t = exp(Δ_t A_h) H_{t-1} + Δ_t x_t B_tᵀ  (P×N per head);  y_t = H_t C_t + D_h x_t
    out = out_proj(RMSNorm(y ⊙ SiLU(z)))

which is `decay_attention` with q = C, k = B, v = Δx: the chunked SSD form.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.base import ArchSpec
from seqbench.models.kernels import (
    CHUNK,
    RMSNorm,
    causal_conv,
    causal_conv_step,
    conv_window,
    decay_attention,
    decay_attention_step,
    linear_scan,
)
from seqbench.models.mixers import mixer_spec
from seqbench.models.transformer import attention_heads

EXPAND = 2
CONV = 4
MAMBA_STATE = 16
MAMBA2_STATE = 128
MAMBA2_HEAD = 64  # the head width attention_heads aims at, as mamba_ssm's headdim
DT_RANGE = (0.001, 0.1)


def dt_rank(h: int) -> int:
    return math.ceil(h / 16)


def inverse_softplus_dt(size: int) -> torch.Tensor:
    """Biases whose softplus is Δ log-uniform in DT_RANGE (the papers' initialisation)."""
    low, high = (math.log(v) for v in DT_RANGE)
    dt = (torch.rand(size) * (high - low) + low).exp().clamp_min(1e-4)
    return dt + torch.log(-torch.expm1(-dt))


class Mamba(nn.Module):
    form = "sequential-scan"
    step_form = "recurrent"

    def __init__(
        self, width: int, expand: int = EXPAND, d_state: int = MAMBA_STATE, d_conv: int = CONV
    ) -> None:
        super().__init__()
        inner, rank = expand * width, dt_rank(width)
        self.d_state = d_state
        self.in_proj = nn.Linear(width, 2 * inner, bias=False)
        self.conv1d = nn.Conv1d(inner, inner, d_conv, groups=inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(inner, rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(rank, inner)
        with torch.no_grad():
            bound = rank**-0.5
            self.dt_proj.weight.uniform_(-bound, bound)
            self.dt_proj.bias.copy_(inverse_softplus_dt(inner))
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(inner, 1)
        self.A_log = nn.Parameter(a.log())
        self.D = nn.Parameter(torch.ones(inner))
        self.out_proj = nn.Linear(inner, width, bias=False)

    def _selective(self, x: torch.Tensor):
        """Δ (.., E), B and C (.., N) from the convolved x."""
        rank = self.dt_proj.in_features
        dt, B, C = self.x_proj(x).split([rank, self.d_state, self.d_state], dim=-1)
        return F.softplus(self.dt_proj(dt)), B, C

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, H)
        x, z = self.in_proj(u).chunk(2, dim=-1)
        x = F.silu(causal_conv(self.conv1d, x))
        dt, B, C = self._selective(x)
        A = -self.A_log.exp()  # (E, N)
        h, ys = None, []
        for start in range(0, u.shape[1], CHUNK):
            part = slice(start, start + CHUNK)
            decay = (dt[:, part, :, None] * A).exp()  # (B, C, E, N)
            write = (dt[:, part] * x[:, part])[..., None] * B[:, part, None, :]
            states, h = linear_scan(decay, write, h)
            ys.append(torch.einsum("bten,btn->bte", states, C[:, part].to(states.dtype)))
        y = torch.cat(ys, dim=1).to(u.dtype) + x * self.D
        return self.out_proj(y * F.silu(z))

    def init_state(self, batch: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            conv_window(self.conv1d, batch, device, dtype),
            torch.zeros(batch, *self.A_log.shape, device=device, dtype=dtype),
        )

    def step(self, u_t: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        window, h = state
        x, z = self.in_proj(u_t).chunk(2, dim=-1)
        x, window = causal_conv_step(self.conv1d, x, window)
        x = F.silu(x)
        dt, B, C = self._selective(x)
        A = -self.A_log.exp()
        h = (dt[..., None] * A).exp() * h + (dt * x)[..., None] * B[:, None, :]
        y = (h @ C[..., None])[..., 0] + x * self.D
        return self.out_proj(y * F.silu(z)), (window, h)


def mamba_params(h: int, expand: int, d_state: int, d_conv: int) -> int:
    """in_proj 2EH, conv EK + E, x_proj E(R + 2N), dt_proj RE + E, A_log EN, D E, out_proj EH."""
    e, r, n = expand * h, dt_rank(h), d_state
    return 2 * e * h + e * d_conv + e + e * (r + 2 * n) + r * e + e + e * n + e + e * h


def mamba_flops(h: int, seq_len: int, expand: int, d_state: int, d_conv: int) -> int:
    """Per token: the projections 2·(2EH + E(R+2N) + RE + EH), the convolution 2·E·K, and the
    scan 6·E·N (update Δx·B and readout C·h, 2 per multiply-add, plus the decay multiply)."""
    e, r, n = expand * h, dt_rank(h), d_state
    matmuls = 2 * (2 * e * h + e * (r + 2 * n) + r * e + e * h)
    return seq_len * (matmuls + 2 * e * d_conv + 6 * e * n)


class Mamba2(nn.Module):
    form = "chunked"
    step_form = "recurrent"

    def __init__(
        self,
        width: int,
        expand: int = EXPAND,
        d_state: int = MAMBA2_STATE,
        d_conv: int = CONV,
        head_dim: int = MAMBA2_HEAD,
    ) -> None:
        super().__init__()
        inner = expand * width
        self.heads = attention_heads(inner, head_dim)
        self.inner, self.d_state = inner, d_state
        conv_dim = inner + 2 * d_state
        self.in_proj = nn.Linear(width, inner + conv_dim + self.heads, bias=False)
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, d_conv, groups=conv_dim, padding=d_conv - 1)
        self.dt_bias = nn.Parameter(inverse_softplus_dt(self.heads))
        self.A_log = nn.Parameter(torch.arange(1, self.heads + 1, dtype=torch.float32).log())
        self.D = nn.Parameter(torch.ones(self.heads))
        self.norm = RMSNorm(inner)
        self.out_proj = nn.Linear(inner, width, bias=False)

    def _split(self, projected: torch.Tensor):
        conv_dim = self.inner + 2 * self.d_state
        return projected.split([self.inner, conv_dim, self.heads], dim=-1)

    def _out(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.norm(y * F.silu(z)))

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, H)
        batch, length, _ = u.shape
        z, xbc, dt = self._split(self.in_proj(u))
        xbc = F.silu(causal_conv(self.conv1d, xbc))
        x, B, C = xbc.split([self.inner, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(dt + self.dt_bias)  # (B, T, heads)
        A = -self.A_log.exp()
        xh = x.reshape(batch, length, self.heads, -1).transpose(1, 2)  # (B, heads, T, P)
        q = C[:, None].expand(-1, self.heads, -1, -1)
        k = B[:, None].expand(-1, self.heads, -1, -1)
        dt_h = dt.transpose(1, 2)  # (B, heads, T)
        y, _ = decay_attention(q, k, xh * dt_h[..., None], dt_h * A[:, None])
        y = y + xh * self.D[:, None, None]
        return self._out(y.transpose(1, 2).reshape(batch, length, self.inner), z)

    def init_state(self, batch: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        head = self.inner // self.heads
        return (
            conv_window(self.conv1d, batch, device, dtype),
            torch.zeros(batch, self.heads, self.d_state, head, device=device, dtype=dtype),
        )

    def step(self, u_t: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        window, s = state
        batch = u_t.shape[0]
        z, xbc, dt = self._split(self.in_proj(u_t))
        xbc, window = causal_conv_step(self.conv1d, xbc, window)
        x, B, C = F.silu(xbc).split([self.inner, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(dt + self.dt_bias)  # (B, heads)
        xh = x.reshape(batch, self.heads, -1)  # (B, heads, P)
        q = C[:, None].expand(-1, self.heads, -1)
        k = B[:, None].expand(-1, self.heads, -1)
        y, s = decay_attention_step(q, k, xh * dt[..., None], dt * -self.A_log.exp(), s)
        y = y + xh * self.D[:, None]
        return self._out(y.reshape(batch, self.inner), z), (window, s)


def mamba2_params(h: int, expand: int, d_state: int, d_conv: int, head_dim: int) -> int:
    """in_proj H(2E + 2N + heads), conv (E+2N)(K+1), dt_bias, A_log, D per head, norm E,
    out_proj EH."""
    e, n = expand * h, d_state
    heads = attention_heads(e, head_dim)
    return h * (2 * e + 2 * n + heads) + (e + 2 * n) * (d_conv + 1) + 3 * heads + e + e * h


def mamba2_flops(
    h: int, seq_len: int, expand: int, d_state: int, d_conv: int, head_dim: int
) -> int:
    """Per token: the projections 2·H(3E + 2N + heads), the convolution 2·(E+2N)·K, and the
    recurrence 4·E·N (state update Δx·Bᵀ and readout H·C, 2 per multiply-add)."""
    e, n = expand * h, d_state
    heads = attention_heads(e, head_dim)
    matmuls = 2 * h * (2 * e + 2 * n + heads) + 2 * e * h
    return seq_len * (matmuls + 2 * (e + 2 * n) * d_conv + 4 * e * n)


def mamba_spec(expand: int = EXPAND, d_state: int = MAMBA_STATE, d_conv: int = CONV) -> ArchSpec:
    knobs = {"expand": expand, "d_state": d_state, "d_conv": d_conv}
    return mixer_spec(
        "mamba",
        f"Mamba (Gu & Dao 2023): selective SSM block, expand {expand}, N = {d_state}, "
        f"conv {d_conv}, sequential scan",
        "2EH + EK + E + E(R+2N) + RE + E + EN + E + EH, "
        f"E = {expand}H, N = {d_state}, K = {d_conv}, R = ⌈H/16⌉",
        Mamba,
        mamba_params,
        mamba_flops,
        # the convolution's last K-1 inputs and the (E, N) state
        lambda h, size: expand * h * (d_conv - 1 + d_state) * size,
        knobs=knobs,
        variant=mamba_spec,
    )


def mamba2_spec(
    expand: int = EXPAND,
    d_state: int = MAMBA2_STATE,
    d_conv: int = CONV,
    head_dim: int = MAMBA2_HEAD,
) -> ArchSpec:
    knobs = {"expand": expand, "d_state": d_state, "d_conv": d_conv, "head_dim": head_dim}

    def state(h: int, size: int) -> int:
        # the convolution's last K-1 inputs (x, B and C) and the (P, N) state of every head
        e = expand * h
        return ((e + 2 * d_state) * (d_conv - 1) + e * d_state) * size

    return mixer_spec(
        "mamba2",
        f"Mamba-2 (Dao & Gu 2024): SSD block, scalar decay per head, N = {d_state}, "
        f"heads of {head_dim}, chunked",
        "H(2E+2N+h) + (E+2N)(K+1) + 3h + E + EH, "
        f"E = {expand}H, N = {d_state}, K = {d_conv}, h = E/{head_dim} heads",
        Mamba2,
        mamba2_params,
        mamba2_flops,
        state,
        knobs=knobs,
        variant=mamba2_spec,
    )


MAMBA_SPEC = mamba_spec()
MAMBA2_SPEC = mamba2_spec()
