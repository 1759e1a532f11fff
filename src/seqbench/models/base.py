"""The pieces every architecture shares: the core's shape, the registry entry, the full model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from seqbench.models.options import (  # noqa: F401  (re-exported: the cores' modules use them)
    CORE_OPTIONS,
    CORE_OPTIONS_DEFAULTS,
    ONE_WAY_NO_RECURRENT_DROPOUT,
)


@dataclass(frozen=True)
class CoreShape:
    """What a sequence core needs to be built: its input width and its own options."""

    input_size: int
    hidden: int
    layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    # The cell's sequence length (0: unknown): presets that size themselves to the sequence
    # read it (tcn-paper chooses its kernel and depth from it).
    seq_len: int = 0


class SequenceCore(nn.Module):
    """Maps inputs (B, T, I) to features (B, T', F); `summary` reduces them to (B, F).

    `out_features` is F. `implementation(...)` names the code path a step takes, so that a
    row can say when a feature forced a slower path than the fused one.
    """

    out_features: int

    def summary(self, y: torch.Tensor) -> torch.Tensor:  # (B, T', F) -> (B, F)
        raise NotImplementedError

    def implementation(self, training: bool, device: str, dtype: str) -> tuple[str, str]:
        """(kernel, note). 'default' is whatever torch dispatches to for these layers; cores
        with fused kernels name them ('cudnn', 'onednn'), and a note says why when a slower
        path ran."""
        return ("default", "")

    # Streaming: one token in, one output out, with carried state (a recurrent state, a KV
    # cache, a window of past inputs). Only causal cores can do this; the others say why not.
    # A step is the inference computation: dropout is never applied in it.

    def step_unsupported(self) -> str | None:
        """Why this core cannot run one token at a time, or None when `step` works."""
        return f"{type(self).__name__} has no streaming step"

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> Any:
        """The state before the first token (what `step` carries from one token to the next)."""
        raise NotImplementedError(self.step_unsupported())

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """One token: x_t (B, I) and the state -> y_t (B, F) and the next state.

        Feeding a sequence token by token from `init_state` gives, at every step t, what
        `forward` gives at position t (tests check this in float64 for every causal core).
        """
        raise NotImplementedError(self.step_unsupported())

    def step_implementation(self, device: str, dtype: str) -> tuple[str, str]:
        """(kernel, note) for `step`, as `implementation` is for `forward`."""
        return ("default", "")


@dataclass(frozen=True)
class ArchSpec:
    """A registry entry: how to build an architecture's core and what it should cost."""

    name: str
    summary: str
    param_formula: str
    build: Callable[[CoreShape], SequenceCore]
    # Formulas; None for architectures that have none (users' own), whose parameters are
    # still counted on the built module.
    count_params: Callable[[CoreShape], int] | None
    forward_flops: Callable[[CoreShape, int], int] | None
    options: frozenset[str] = frozenset()
    fixed: dict[str, object] = field(default_factory=dict)
    min_seq_len: int = 1
    # One output per input step, aligned (recurrences, causal convolutions); a core that
    # pools or strides (the seed's Conv1D stack) cannot serve a per-step task such as copy.
    per_step: bool = True
    # A preset that sizes itself to the sequence: seq_len -> the options it pins (tcn-paper's
    # depth). Applied when a cell is normalised, so the row's columns say what was built.
    sized: Callable[[int], dict[str, object]] | None = None
    # How many inputs the last output can read, for a core with a finite window (a TCN):
    # a cell whose sequence is longer is warned about.
    receptive_field: Callable[[CoreShape], int] | None = None
    # The bytes one sequence carries from token to token when streaming, after seq_len
    # tokens, at `itemsize` bytes a number: (shape, seq_len, itemsize) -> bytes. None for a
    # core that cannot stream. A step-mode row measures it on the live state (`state_bytes`).
    state_bytes: Callable[[CoreShape, int, int], int] | None = None
    # Settings a variant may change, with their defaults (`mamba(d_state=32)`; 0 where the
    # default follows the width, as the LRU's N = H), and `variant(**settings)`, the entry
    # for other values (registry.get_arch names it).
    knobs: dict[str, int] = field(default_factory=dict)
    variant: Callable[..., ArchSpec] | None = None
    # The core's parameters as Keras counts its layer of the same name (the seed's models are
    # written in Keras): one bias vector per gate block in SimpleRNN and LSTM, where PyTorch
    # keeps two. None for an architecture Keras has no layer for.
    keras_params: Callable[[CoreShape], int] | None = None


class SequenceModel(nn.Module):
    """Input adapter -> sequence core -> dense head: the seed's IMDB classifier in general form.

    With the default token adapter this is Embedding(vocab, embed) -> core -> Dense(1), as in
    the seed's Keras models. With readout 'sequence' the head writes one output per step.
    """

    def __init__(
        self, adapter: nn.Module, core: SequenceCore, head: nn.Module, readout: str = "summary"
    ) -> None:
        super().__init__()
        self.adapter = adapter
        self.core = core
        self.head = head
        self.readout = readout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.adapter(x)  # (B, T, I)
        y = self.core(h)  # (B, T', F)
        if self.readout == "sequence":
            return self.head(y)  # (B, T', out)
        return self.head(self.core.summary(y))  # (B, out)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters of a built module: the figure every row reports."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
