"""The stack every linear-recurrent and state-space core shares: a residual pre-norm tower.

A core here is Linear(I, H), then `layers` blocks x + Dropout(Mixer(RMSNorm(x))), then a
final RMSNorm: the layout of Mamba's and Mamba-2's language models (Gu & Dao 2023, §3.4),
Griffin's residual blocks (De et al. 2024, §2) and the transformer core (transformer.py),
with the time-mixing block alone in each layer. The MLP that Griffin, xLSTM, RetNet and the
transformer put beside it is left out, so that what differs between two cores is how they
mix the sequence; `--match-params` still compares them at equal size.

A mixer is an nn.Module of width H with `forward` (B, T, H) -> (B, T, H), `init_state`,
`step` (one token, state carried) and `form` / `step_form`, the names the `kernel` column
shows. Its parameter count is a formula in mixer_params (tests hold it exact).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.base import ONE_WAY_NO_RECURRENT_DROPOUT, ArchSpec, CoreShape, SequenceCore
from seqbench.models.kernels import RMSNorm
from seqbench.models.options import BUILTIN_OPTIONS
from seqbench.models.transformer import HEAD_WIDTH


class MixerStack(SequenceCore):
    def __init__(self, shape: CoreShape, make_mixer: Callable[[int], nn.Module]) -> None:
        super().__init__()
        self.out_features = shape.hidden
        self.dropout = shape.dropout
        self.proj = nn.Linear(shape.input_size, shape.hidden)
        self.norms = nn.ModuleList(RMSNorm(shape.hidden) for _ in range(shape.layers))
        self.mixers = nn.ModuleList(make_mixer(shape.hidden) for _ in range(shape.layers))
        self.norm_out = RMSNorm(shape.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, I) -> (B, T, H)
        x = self.proj(x)
        for norm, mixer in zip(self.norms, self.mixers, strict=True):
            x = x + F.dropout(mixer(norm(x)), self.dropout, self.training)
        return self.norm_out(x)

    def summary(self, y: torch.Tensor) -> torch.Tensor:  # the last step: what a causal core read
        return y[:, -1]

    def implementation(self, training: bool, device: str, dtype: str) -> tuple[str, str]:
        return (self.mixers[0].form, "")

    def step_unsupported(self) -> str | None:
        return None

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> list:
        return [mixer.init_state(batch, device, dtype) for mixer in self.mixers]

    def step(self, x_t: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        x_t = self.proj(x_t)
        carried = []
        for norm, mixer, s in zip(self.norms, self.mixers, state, strict=True):
            y_t, s = mixer.step(norm(x_t), s)
            x_t = x_t + y_t
            carried.append(s)
        return self.norm_out(x_t), carried

    def step_implementation(self, device: str, dtype: str) -> tuple[str, str]:
        return (self.mixers[0].step_form, "")


def stack_params(shape: CoreShape, mixer_params: Callable[[int], int]) -> int:
    """I·H + H (input projection), H per layer for its norm, the mixers, H for the last norm."""
    h = shape.hidden
    return shape.input_size * h + h + shape.layers * (h + mixer_params(h)) + h


def stack_flops(shape: CoreShape, seq_len: int, mixer_flops: Callable[[int, int], int]) -> int:
    """2·I·H per token for the input projection, then the mixers' own (see each family)."""
    return 2 * shape.input_size * shape.hidden * seq_len + shape.layers * mixer_flops(
        shape.hidden, seq_len
    )


def mixer_spec(
    name: str,
    summary: str,
    param_formula: str,
    make_mixer: Callable[[int], nn.Module],
    mixer_params: Callable[[int], int],
    mixer_flops: Callable[[int, int], int],
    mixer_state: Callable[[int, int], int],
    knobs: dict[str, int] | None = None,
    **extra: Any,
) -> ArchSpec:
    """`mixer_state(H, itemsize)`: the bytes one layer's mixer carries per sequence. With
    `knobs` (a variant's settings), the mixer, its parameter and FLOP formulas take them as
    keywords; `extra["variant"]` makes the entry for other settings."""
    if knobs:
        make_mixer, mixer_params, mixer_flops = (
            functools.partial(f, **knobs) for f in (make_mixer, mixer_params, mixer_flops)
        )
    return ArchSpec(
        name=name,
        summary=summary,
        param_formula=f"I·H + H + layers·(H + {param_formula}) + H",
        build=lambda shape: MixerStack(shape, make_mixer),
        count_params=lambda shape: stack_params(shape, mixer_params),
        forward_flops=lambda shape, seq_len: stack_flops(shape, seq_len, mixer_flops),
        options=BUILTIN_OPTIONS[name],
        fixed=ONE_WAY_NO_RECURRENT_DROPOUT,
        state_bytes=lambda shape, seq_len, size: shape.layers * mixer_state(shape.hidden, size),
        knobs=knobs or {},
        **extra,
    )


def headed_spec(
    name: str,
    summary: str,
    param_formula: str,
    make_mixer: Callable[..., nn.Module],
    mixer_params: Callable[..., int],
    mixer_flops: Callable[..., int],
    mixer_state: Callable[[int, int, int], int],
) -> Callable[..., ArchSpec]:
    """`mixer_spec` for a mixer whose heads are `head_dim` channels wide (64: about one per
    64 channels, down to a divisor of H, as the transformer's): (head_dim) -> its entry, the
    variant `name(head_dim=N)` included. `mixer_state(H, itemsize, head_dim)`."""

    def spec(head_dim: int = HEAD_WIDTH) -> ArchSpec:
        return mixer_spec(
            name,
            f"{summary}; heads of {head_dim}",
            param_formula,
            make_mixer,
            mixer_params,
            mixer_flops,
            lambda h, size: mixer_state(h, size, head_dim),
            knobs={"head_dim": head_dim},
            variant=spec,
        )

    return spec


class HeadedMixer(nn.Module):
    """A mixer whose projections split into `self.heads` heads along the last dimension."""

    heads: int

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, W) -> (B, heads, T, W/heads)
        return x.reshape(*x.shape[:2], self.heads, -1).transpose(1, 2)
