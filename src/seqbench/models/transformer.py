"""A pre-norm Transformer encoder (Vaswani et al. 2017, "Attention Is All You Need"), with the
layer norm before each sublayer as in GPT-2 and nanoGPT, and a final layer norm.

Input projection I -> H, plus positions; then `layers` blocks of
x + Attention(LN(x)) and x + MLP(LN(x)); then LN. Attention runs through
`torch.nn.functional.scaled_dot_product_attention` (SDPA), which picks a fused kernel.

- Heads: `attention_heads(H)`, the largest divisor of H that is at most max(1, H // 64), so
  that heads are about 64 wide as in BERT and GPT-2 (H = 32 -> 1 head, 256 -> 4, 200 -> 2).
- Positions: sinusoidal by default (Vaswani et al. §3.5; no parameters, any T), or learned
  (`positions="learned"`, `max_len` of them, counted as parameters).
- Non-causal (the `transformer` entry, a classifier): `summary` is the mean over time.
  Causal (`transformer-causal`): output t sees inputs <= t only, `summary` is the last step,
  and `step` streams with a KV cache.
- Dropout (the `dropout` option) after the positions, on the attention weights and on each
  sublayer's output, as in nanoGPT.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend

from seqbench.models.base import (
    ONE_WAY_NO_RECURRENT_DROPOUT,
    ArchSpec,
    CoreShape,
    SequenceCore,
)
from seqbench.models.options import BUILTIN_OPTIONS

HEAD_WIDTH = 64
MLP_RATIO = 4


def attention_heads(hidden: int, head_width: int = HEAD_WIDTH) -> int:
    """About one head per `head_width` units (64), at least one, and always a divisor of the
    width."""
    heads = max(1, hidden // head_width)
    while hidden % heads:
        heads -= 1
    return heads


def sinusoidal_positions(start: int, length: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(p / 10000^(2i/d)): (length, width)."""
    # At least float32: in bfloat16 the positions themselves would round (257 -> 256).
    dtype = torch.promote_types(like.dtype, torch.float32)
    pos = torch.arange(start, start + length, device=like.device, dtype=dtype)  # (T,)
    i = torch.arange(0, width, 2, device=like.device, dtype=dtype)  # (ceil(d/2),)
    angles = pos[:, None] * torch.exp(i * (-math.log(10000.0) / width))  # (T, ceil(d/2))
    pe = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)  # sin, cos interleaved
    return pe[:, :width].to(like.dtype)  # an odd width drops the last cosine


class KVCache(NamedTuple):
    """The streaming state: tokens seen so far, and per block the keys and values (B, nh, t, hd)."""

    seen: int
    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float, causal: bool) -> None:
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.dropout = dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T, H) -> (B, T, H), and the keys and values including `past`'s."""
        batch, steps, hidden = x.shape
        q, k, v = self.qkv(x).split(hidden, dim=2)  # (B, T, H) each
        q, k, v = (
            t.view(batch, steps, self.heads, hidden // self.heads).transpose(1, 2)
            for t in (q, k, v)
        )  # (B, nh, T, hd)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, nh, t + T, hd)
            v = torch.cat([past[1], v], dim=2)
        # With a cache the new token is the latest: every cached key is in its past, no mask.
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=self.causal and past is None,
        )  # (B, nh, T, hd)
        y = y.transpose(1, 2).reshape(batch, steps, hidden)  # (B, T, H)
        return self.drop(self.proj(y)), (k, v)


class MLP(nn.Module):
    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(hidden, MLP_RATIO * hidden)
        self.proj = nn.Linear(MLP_RATIO * hidden, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, H)
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float, causal: bool) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = SelfAttention(hidden, heads, dropout, causal)
        self.ln2 = nn.LayerNorm(hidden)
        self.mlp = MLP(hidden, dropout)

    def forward(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        a, kv = self.attn(self.ln1(x), past)
        x = x + a
        return x + self.mlp(self.ln2(x)), kv


class TransformerCore(SequenceCore):
    def __init__(
        self,
        shape: CoreShape,
        *,
        causal: bool = False,
        positions: str = "sinusoidal",
        max_len: int = 4096,
    ) -> None:
        super().__init__()
        if positions not in ("sinusoidal", "learned"):
            raise ValueError(f"positions must be 'sinusoidal' or 'learned', got {positions!r}")
        hidden = shape.hidden
        self.causal = causal
        self.heads = attention_heads(hidden)
        self.dropout = shape.dropout
        self.out_features = hidden
        self.inp = nn.Linear(shape.input_size, hidden)
        self.pos = nn.Embedding(max_len, hidden) if positions == "learned" else None
        self.drop = nn.Dropout(shape.dropout)
        self.blocks = nn.ModuleList(
            Block(hidden, self.heads, shape.dropout, causal) for _ in range(shape.layers)
        )
        self.ln_f = nn.LayerNorm(hidden)

    def _embed(self, x: torch.Tensor, start: int) -> torch.Tensor:  # (B, T, I) -> (B, T, H)
        h = self.inp(x)
        if self.pos is None:
            pe = sinusoidal_positions(start, x.shape[1], h.shape[-1], h)
        else:
            pe = self.pos(torch.arange(start, start + x.shape[1], device=x.device))
        return self.drop(h + pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, I) -> (B, T, H)
        h = self._embed(x, 0)
        for block in self.blocks:
            h, _ = block(h)
        return self.ln_f(h)

    def summary(self, y: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, H)
        # A causal model's last step is the only one that has seen the whole sequence.
        return y[:, -1] if self.causal else y.mean(dim=1)

    def implementation(self, training: bool, device: str, dtype: str) -> tuple[str, str]:
        dropout = self.dropout if training else 0.0
        return sdpa_backend(device, dtype, self._head_shape(), dropout, self.causal, training)

    def _head_shape(self) -> tuple[int, int]:
        return self.heads, self.out_features // self.heads

    # --- streaming (causal only): one token attends to the cached keys and values

    def step_unsupported(self) -> str | None:
        if not self.causal:
            return "a non-causal transformer attends to later tokens (use transformer-causal)"
        return None

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> KVCache:
        if reason := self.step_unsupported():
            raise NotImplementedError(reason)
        hd = self.out_features // self.heads
        empty = torch.zeros(batch, self.heads, 0, hd, device=device, dtype=dtype)
        return KVCache(0, (empty,) * len(self.blocks), (empty,) * len(self.blocks))

    def step(self, x_t: torch.Tensor, state: KVCache) -> tuple[torch.Tensor, KVCache]:
        # The cache grows by concatenation: simple, and O(t) per token like the attention.
        h = self._embed(x_t.unsqueeze(1), state.seen)  # (B, 1, H)
        keys, values = [], []
        for block, k, v in zip(self.blocks, state.keys, state.values, strict=True):
            h, (k, v) = block(h, (k, v))
            keys.append(k)
            values.append(v)
        y = self.ln_f(h).squeeze(1)  # (B, H)
        return y, KVCache(state.seen + 1, tuple(keys), tuple(values))

    def step_implementation(self, device: str, dtype: str) -> tuple[str, str]:
        # A step's single query attends without a mask (see SelfAttention.forward).
        kernel, note = sdpa_backend(device, dtype, self._head_shape(), 0.0, False, False)
        return kernel, "; ".join(filter(None, ["KV cache", note]))


_BACKENDS = {
    SDPBackend.MATH: "sdpa-math",
    SDPBackend.FLASH_ATTENTION: "sdpa-flash",
    SDPBackend.EFFICIENT_ATTENTION: "sdpa-efficient",
    SDPBackend.CUDNN_ATTENTION: "sdpa-cudnn",
}
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def sdpa_backend(
    device: str,
    dtype: str,
    head_shape: tuple[int, int],
    dropout: float,
    causal: bool,
    training: bool,
) -> tuple[str, str]:
    """Which SDPA kernel runs, asked of ATen's own dispatcher (best effort).

    `torch._fused_sdp_choice` applies the same checks as `scaled_dot_product_attention` itself
    (enabled backends from `torch.backends.cuda`, dtype, head width, dropout, hardware) to a
    tiny query of this model's head shape. Sequence length and batch do not change the
    answer for these shapes. On the CPU, ATen runs its own flash-attention kernel unless
    dropout is on (then the math path). If the private call fails, the answer is 'sdpa'
    with the reason.
    """
    heads, hd = head_shape
    try:
        q = torch.zeros(
            1,
            heads,
            8,
            hd,
            device=device,
            dtype=_DTYPES.get(dtype, torch.float32),
            requires_grad=training,  # some kernels have no backward for some shapes
        )
        choice = SDPBackend(torch._fused_sdp_choice(q, q, q, None, dropout, causal))
    except Exception as exc:  # a private API: never let it fail a measurement
        return ("sdpa", f"backend unknown: {type(exc).__name__}")
    kernel = _BACKENDS.get(choice, f"sdpa-{choice.name.lower()}")
    if choice == SDPBackend.MATH and dropout > 0 and device == "cpu":
        return (kernel, "attention dropout: the CPU flash kernel takes none")
    return (kernel, "")


def transformer_params(shape: CoreShape, positions: str = "sinusoidal", max_len: int = 4096) -> int:
    """I·H + H (input projection) + L·(12·H² + 13·H) + 2·H (final norm) [+ max_len·H learned].

    Per block: two layer norms 4·H, QKV 3·H² + 3·H, output 1·H² + H, MLP 8·H² + 5·H.
    """
    h = shape.hidden
    learned = max_len * h if positions == "learned" else 0
    return shape.input_size * h + h + shape.layers * (12 * h * h + 13 * h) + 2 * h + learned


def transformer_flops(shape: CoreShape, seq_len: int) -> int:
    """2·T·I·H + L·(24·T·H² + 4·T²·H): projections and MLP, then QKᵀ and AV (2·T²·H each).

    The causal mask does not change the count: SDPA's kernels compute the full T×T scores
    (flash kernels on CUDA skip masked blocks, which this convention ignores). Softmax,
    layer norms, GELU and positions are elementwise and not counted.
    """
    h, t = shape.hidden, seq_len
    return 2 * t * shape.input_size * h + shape.layers * (24 * t * h * h + 4 * t * t * h)


_FORMULA = "I·H + H + L·(12·H² + 13·H) + 2·H"
_ABOUT = (
    "pre-norm Transformer encoder (SDPA, MLP 4×, sinusoidal positions), "
    "heads = max(1, H//64) down to a divisor of H"
)

TRANSFORMER = ArchSpec(
    name="transformer",
    summary=f"{_ABOUT}; mean over time",
    param_formula=_FORMULA,
    build=TransformerCore,
    count_params=transformer_params,
    forward_flops=transformer_flops,
    options=BUILTIN_OPTIONS["transformer"],
    fixed=ONE_WAY_NO_RECURRENT_DROPOUT,
)

TRANSFORMER_CAUSAL = ArchSpec(
    name="transformer-causal",
    summary=f"{_ABOUT}; causal, last step, KV-cache step",
    param_formula=_FORMULA,
    build=lambda shape: TransformerCore(shape, causal=True),
    count_params=transformer_params,
    forward_flops=transformer_flops,
    options=BUILTIN_OPTIONS["transformer-causal"],
    fixed=ONE_WAY_NO_RECURRENT_DROPOUT,
    # the KV cache: a key and a value of width H per token and block
    state_bytes=lambda shape, seq_len, size: 2 * shape.layers * seq_len * shape.hidden * size,
)
