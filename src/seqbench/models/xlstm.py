"""xLSTM's two cells (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory"): the mLSTM
(§2.3; the layer as in xLSTM 7B, Beck et al. 2025) and the sLSTM (§2.2).

mLSTM.

Per head, with q, k of width d_k and v of width d_v, input gate ĩ_t and forget gate f̃_t
(pre-activations, soft-capped at ±15), and a stabiliser m that keeps every exponent ≤ 0:

    m_t = max(log σ(f̃_t) + m_{t-1}, ĩ_t)                                   (m_0 = 0)
    C_t = e^{log σ(f̃_t) + m_{t-1} - m_t} C_{t-1} + e^{ĩ_t - m_t} k_t v_tᵀ
    n_t = e^{log σ(f̃_t) + m_{t-1} - m_t} n_{t-1} + e^{ĩ_t - m_t} k_t
    h_t = C_tᵀ q̂_t / (max(|n_tᵀ q̂_t|, e^{-m_t}) + ε),   q̂ = q / √d_k

`forward` runs the chunked form: unrolled, m_t = G_t + max(0, max_{s≤t} (ĩ_s - G_s)) with G
the running sum of log σ(f̃), a running maximum computed for the whole sequence at once;
inside a chunk the outputs are a decayed, stabilised attention (every weight ≤ 1) and the
chunk states (C, n) are carried in a loop over chunks. This equals the recurrence above
exactly (m included), which `step` runs.

The layer (xLSTM 7B's mLSTM layer, `weight_mode="single"`, no biases but the gates'):
q, k = W x (d_k total H/2), v = W x (H), the gates per head, a LayerNorm per head (weights,
no bias), the output gate σ(W_o x) ⊙ norm(h), and the output projection. Gate biases start
as xLSTM 7B's: the input gate at -10, the forget gates spread over [3, 6].

sLSTM. A scalar memory per channel whose gates also read the previous output through a
recurrent matrix, block-diagonal by head ("memory mixing"), so it has no parallel form:
`forward` makes every input projection at once and then steps through the tokens.

    ĩ, f̃, z̃, õ = W x_t + R y_{t-1} + b        (i and f from the convolved input)
    m_t = max(log σ(f̃_t) + m_{t-1}, ĩ_t)
    c_t = e^{log σ(f̃) + m_{t-1} - m_t} c_{t-1} + e^{ĩ - m_t} tanh(z̃)
    n_t = e^{log σ(f̃) + m_{t-1} - m_t} n_{t-1} + e^{ĩ - m_t}
    y_t = σ(õ) ⊙ c_t / n_t

The layer follows the `xlstm` package's sLSTMLayer: a causal depthwise convolution of width
4 and SiLU feeding the i and f gates, head-wise (block-diagonal) input projections without
bias, the cell's bias, and a LayerNorm per head. As there, R starts at zero; the forget
gates' bias spread over [3, 6] (the package's default is a power law over the same role).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.gla import gla_key_width
from seqbench.models.kernels import (
    CHUNK,
    along,
    causal_conv,
    causal_conv_step,
    conv_window,
    to_chunks,
    work_dtype,
)
from seqbench.models.mixers import HeadedMixer, headed_spec, mixer_spec
from seqbench.models.transformer import HEAD_WIDTH, attention_heads

GATE_CAP = 15.0
EPS = 1e-6


def soft_cap(x: torch.Tensor, cap: float = GATE_CAP) -> torch.Tensor:
    return cap * torch.tanh(x / cap)


def mlstm_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i_pre: torch.Tensor,
    f_pre: torch.Tensor,
    chunk: int = CHUNK,
) -> torch.Tensor:
    """h (B, H, T, d_v) from q, k (B, H, T, d_k), v (B, H, T, d_v), gates (B, H, T), from a
    zero state."""
    dtype, length = v.dtype, v.shape[2]
    work = work_dtype(dtype)
    # The gates' bookkeeping (one number per head and token) in float64: G grows with T, and
    # its differences must stay exact to float32's precision.
    log_f = F.logsigmoid(f_pre.double())
    G = log_f.cumsum(-1)
    m = G + (i_pre.double() - G).cummax(-1).values.clamp_min(0.0)  # (B, H, T)
    chunk = min(chunk, length)
    qc = to_chunks(q.to(work) * q.shape[-1] ** -0.5, chunk)
    kc, vc = to_chunks(k.to(work), chunk), to_chunks(v.to(work), chunk)
    pad = (-length) % chunk
    # padded tokens write nothing (ĩ = -∞ in effect) and forget nothing
    i_c = to_chunks(F.pad(i_pre.double(), (0, pad), value=-1e30), chunk)
    G_c = to_chunks(F.pad(G, (0, pad), mode="replicate") if pad else G, chunk)
    m_c = to_chunks(F.pad(m, (0, pad), mode="replicate") if pad else m, chunk)
    # G and m just before each chunk (0 before the first)
    G_in = F.pad(G_c[..., -1], (1, 0))[..., :-1]  # (B, H, n)
    m_in = F.pad(m_c[..., -1], (1, 0))[..., :-1]
    lower = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    pair = G_c[..., :, None] - G_c[..., None, :] + i_c[..., None, :] - m_c[..., :, None]
    pair = pair.masked_fill(~lower, float("-inf")).exp().to(work)  # (B, H, n, C, C) ≤ 1
    scores = (qc @ kc.transpose(-1, -2)) * pair
    numerator = scores @ vc
    qn = scores.sum(-1)  # Σ_s weight · q̂·k_s
    from_before = (G_c - G_in[..., None] + m_in[..., None] - m_c).exp().to(work)  # (B, H, n, C)
    # the chunk's writes as seen at its end, and how much of the state before it survives
    to_end = (G_c[..., -1:] - G_c + i_c - m_c[..., -1:]).exp().to(work)[..., None]
    keep = (G_c[..., -1] - G_in + m_in - m_c[..., -1]).exp().to(work)  # (B, H, n)
    writes_C = (kc * to_end).transpose(-1, -2) @ vc  # (B, H, n, K, V)
    writes_n = (kc * to_end).sum(-2)  # (B, H, n, K)
    C = q.new_zeros(*q.shape[:2], k.shape[-1], v.shape[-1], dtype=work)
    n = q.new_zeros(*q.shape[:2], k.shape[-1], dtype=work)
    befores_C, befores_n = [], []
    for keep_c, writes_C_c, writes_n_c in along(2, keep, writes_C, writes_n):
        befores_C.append(C)
        befores_n.append(n)
        C = keep_c[:, :, None, None] * C + writes_C_c
        n = keep_c[:, :, None] * n + writes_n_c
    C_in, n_in = torch.stack(befores_C, 2), torch.stack(befores_n, 2)
    numerator = numerator + from_before[..., None] * (qc @ C_in)
    qn = qn + from_before * (qc * n_in[..., None, :]).sum(-1)
    floor = (-m_c).exp().to(work)
    h = numerator / (torch.maximum(qn.abs(), floor) + EPS)[..., None]
    return h.reshape(*h.shape[:2], -1, h.shape[-1])[:, :, :length].to(dtype)


class MLSTM(HeadedMixer):
    form = "chunked"
    step_form = "recurrent"

    def __init__(self, width: int, head_dim: int = HEAD_WIDTH) -> None:
        super().__init__()
        self.heads = attention_heads(width, head_dim)
        keys = gla_key_width(width, head_dim)
        self.q = nn.Linear(width, keys, bias=False)
        self.k = nn.Linear(width, keys, bias=False)
        self.v = nn.Linear(width, width, bias=False)
        self.ogate_preact = nn.Linear(width, width, bias=False)
        self.igate_preact = nn.Linear(width, self.heads)
        self.fgate_preact = nn.Linear(width, self.heads)
        with torch.no_grad():
            self.igate_preact.bias.fill_(-10.0)
            self.fgate_preact.bias.copy_(torch.linspace(3.0, 6.0, self.heads))
        self.norm_weight = nn.Parameter(torch.ones(width))
        self.out_proj = nn.Linear(width, width, bias=False)

    def _gates(self, u: torch.Tensor):
        i = soft_cap(self.igate_preact(u)).transpose(1, 2)  # (B, heads, T)
        f = soft_cap(self.fgate_preact(u)).transpose(1, 2)
        return i, f

    def _out(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:  # h (B, heads, T, dv)
        work = work_dtype(h.dtype)
        x = h.to(work)
        x = (x - x.mean(-1, keepdim=True)) * torch.rsqrt(
            x.var(-1, keepdim=True, unbiased=False) + EPS
        )
        x = x.to(h.dtype).transpose(1, 2).reshape(*u.shape[:2], -1) * self.norm_weight
        return self.out_proj(torch.sigmoid(self.ogate_preact(u)) * x)

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, H)
        i, f = self._gates(u)
        h = mlstm_chunked(
            self._heads(self.q(u)), self._heads(self.k(u)), self._heads(self.v(u)), i, f
        )
        return self._out(h, u)

    def init_state(self, batch: int, device, dtype) -> tuple:
        width, keys = self.v.in_features, self.q.out_features
        dk, dv = keys // self.heads, width // self.heads
        return (
            torch.zeros(batch, self.heads, dk, dv, device=device, dtype=dtype),
            torch.zeros(batch, self.heads, dk, device=device, dtype=dtype),
            torch.zeros(batch, self.heads, device=device, dtype=dtype),
        )

    def step(self, u_t: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        C, n, m = state
        u = u_t[:, None]
        q, k, v = (self._heads(p(u))[:, :, 0] for p in (self.q, self.k, self.v))
        i, f = (g[..., 0] for g in self._gates(u))  # (B, heads)
        log_f = F.logsigmoid(f)
        m_new = torch.maximum(log_f + m, i)
        keep, write = (log_f + m - m_new).exp(), (i - m_new).exp()
        C = keep[..., None, None] * C + write[..., None, None] * k[..., :, None] * v[..., None, :]
        n = keep[..., None] * n + write[..., None] * k
        q = q * q.shape[-1] ** -0.5
        numerator = (q[..., None, :] @ C)[..., 0, :]
        qn = (q * n).sum(-1)
        h = numerator / (torch.maximum(qn.abs(), (-m_new).exp()) + EPS)[..., None]
        return self._out(h[:, :, None], u)[:, 0], (C, n, m_new)


def mlstm_params(h: int, head_dim: int = HEAD_WIDTH) -> int:
    """q, k: 2·H·K; v and the output gate: 2·H²; the gates 2·(H + 1)·heads; the norm H; the
    output projection H². K = H/2."""
    k, heads = gla_key_width(h, head_dim), attention_heads(h, head_dim)
    return 2 * h * k + 3 * h * h + 2 * (h + 1) * heads + h


def mlstm_flops(h: int, seq_len: int, head_dim: int = HEAD_WIDTH) -> int:
    """Per token: the projections 2·(2HK + 3H² + 2H·heads), the recurrence 4·d_k·d_v per head
    (update and readout) plus 4·d_k for the normaliser."""
    k, heads = gla_key_width(h, head_dim), attention_heads(h, head_dim)
    matmuls = 2 * (2 * h * k + 3 * h * h + 2 * h * heads)
    return seq_len * (matmuls + 4 * k * h // heads + 4 * k)


def mlstm_state(h: int, size: int, head_dim: int) -> int:
    """Per head C (d_k × d_v), n (d_k) and m."""
    heads = attention_heads(h, head_dim)
    return (gla_key_width(h, head_dim) * (h // heads + 1) + heads) * size


MLSTM_SPEC = headed_spec(
    "mlstm",
    "xLSTM's mLSTM (Beck et al. 2024): matrix memory, exponential gates with stabiliser, chunked",
    "2HK + 3H² + 2(H+1)·heads + H, K = H/2",
    MLSTM,
    mlstm_params,
    mlstm_flops,
    mlstm_state,
)()


class SLSTM(nn.Module):
    form = "recurrent"
    step_form = "recurrent"

    def __init__(self, width: int) -> None:
        super().__init__()
        self.heads = attention_heads(width)
        size = width // self.heads
        self.conv1d = nn.Conv1d(width, width, 4, groups=width, padding=3)
        # head-wise input projections, (heads, out, in) per gate: i, f, z, o
        self.in_weight = nn.Parameter(
            torch.randn(4, self.heads, size, size) * (2 / 5 / size) ** 0.5
        )
        self.recurrent = nn.Parameter(torch.zeros(self.heads, 4, size, size))  # y -> gates
        bias = torch.zeros(4, width)
        bias[1] = torch.linspace(3.0, 6.0, width)
        self.bias = nn.Parameter(bias)
        self.norm_weight = nn.Parameter(torch.ones(width))

    def _project(self, x: torch.Tensor, gate: int) -> torch.Tensor:  # (.., H) -> (.., H)
        blocks = x.reshape(*x.shape[:-1], self.heads, -1)
        return torch.einsum("...hi,hoi->...ho", blocks, self.in_weight[gate]).flatten(-2)

    def _inputs(self, u: torch.Tensor, conv: torch.Tensor) -> torch.Tensor:
        """W x + b for the four gates: (.., 4, H)."""
        conv = F.silu(conv)
        gates = [self._project(conv, 0), self._project(conv, 1)]
        gates += [self._project(u, 2), self._project(u, 3)]
        return torch.stack(gates, dim=-2) + self.bias

    def _cell(self, pre: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        """One token: pre (B, 4, H) from the input, state (y, c, n, m) each (B, H)."""
        y, c, n, m = state
        blocks = y.reshape(y.shape[0], self.heads, -1)  # (B, heads, d)
        mixed = torch.einsum("bhi,hgij->bghj", blocks, self.recurrent).flatten(-2)  # (B, 4, H)
        i, f, z, o = (pre + mixed).unbind(-2)
        log_f = F.logsigmoid(f) + m
        m_new = torch.maximum(log_f, i)
        keep, write = (log_f - m_new).exp(), (i - m_new).exp()
        c = keep * c + write * torch.tanh(z)
        n = keep * n + write
        y = torch.sigmoid(o) * c / n
        return y, (y, c, n, m_new)

    def _norm(self, y: torch.Tensor) -> torch.Tensor:  # a LayerNorm per head, (.., H)
        blocks = y.reshape(*y.shape[:-1], self.heads, -1)
        work = blocks.to(work_dtype(y.dtype))
        normed = (work - work.mean(-1, keepdim=True)) * torch.rsqrt(
            work.var(-1, keepdim=True, unbiased=False) + 1e-5
        )
        return normed.flatten(-2).to(y.dtype) * self.norm_weight

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, H)
        pre = self._inputs(u, causal_conv(self.conv1d, u))  # (B, T, 4, H)
        state = self.init_state(u.shape[0], u.device, u.dtype)[1]
        ys = []
        for pre_t in pre.unbind(1):  # unbound, not indexed: see kernels.along
            y, state = self._cell(pre_t, state)
            ys.append(y)
        return self._norm(torch.stack(ys, dim=1))

    def init_state(self, batch: int, device, dtype) -> tuple:
        width = self.bias.shape[1]
        zeros = [torch.zeros(batch, width, device=device, dtype=dtype) for _ in range(4)]
        return conv_window(self.conv1d, batch, device, dtype), tuple(zeros)

    def step(self, u_t: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        window, cell = state
        conv, window = causal_conv_step(self.conv1d, u_t, window)
        y, cell = self._cell(self._inputs(u_t, conv), cell)
        return self._norm(y), (window, cell)


def slstm_params(h: int) -> int:
    """The convolution 5H, four head-wise projections and R: 8·H·d (d = H/heads), the bias 4H,
    the norm H."""
    size = h // attention_heads(h)
    return 5 * h + 8 * h * size + 4 * h + h


def slstm_flops(h: int, seq_len: int) -> int:
    """Per token: the head-wise projections and the recurrent matrix, 2·8·H·d; the
    convolution 2·4·H; the gates and the state are elementwise and not counted."""
    size = h // attention_heads(h)
    return seq_len * (16 * h * size + 8 * h)


SLSTM_SPEC = mixer_spec(
    "slstm",
    "xLSTM's sLSTM (Beck et al. 2024): scalar memory, exponential gates, memory mixing; recurrent",
    "8·H·d + 10·H, d = H/heads",
    SLSTM,
    slstm_params,
    slstm_flops,
    # the convolution's last 3 inputs, and y, c, n, m
    lambda h, size: (3 * h + 4 * h) * size,
)
