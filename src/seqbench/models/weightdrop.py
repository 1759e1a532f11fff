"""LSTM with DropConnect on the recurrent weights (Merity et al. 2017, "Regularizing and
Optimizing LSTM Language Models", the AWD-LSTM's weight-dropped LSTM; DropConnect is Wan et
al. 2013).

Variational recurrent dropout (recurrent.py) masks the state at every step, which no fused
kernel takes, so it runs a Python loop. DropConnect instead drops entries of the
hidden-to-hidden matrices U: one dropped matrix per forward pass (so per batch, shared by
every sequence and step), which is just another weight for the fused kernel. The fused path
is kept in training and the `kernel` column says so.

- `recurrent_dropout` is the DropConnect rate on every U (each layer and direction drawn
  separately; kept entries scaled by 1 / (1 - p), as `F.dropout` does).
- `dropout` is input dropout, one mask per sequence and layer, as in recurrent.py.
- At inference U is used as it is. Parameters and FLOPs are the plain LSTM's.

The dropped weights go to `torch._VF.lstm`, the op `nn.LSTM.forward` itself calls, with the
module's own weights for the rest. Neither the module nor its parameters are modified, so
nothing has to be restored and `flatten_parameters` never sees a non-parameter. On CUDA the
dropped weights are not in cuDNN's packed buffer, so cuDNN packs them on each call (a copy of
the weights, small beside a sequence's activations; PyTorch may warn once about it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.base import ArchSpec, CoreShape
from seqbench.models.options import BUILTIN_OPTIONS
from seqbench.models.recurrent import (
    RecurrentCore,
    fused_kernel,
    recurrent_flops,
    recurrent_params,
    recurrent_state_bytes,
    weight_names,
)


def dropped_weights(block: nn.LSTM, p: float) -> list[torch.Tensor]:
    """The block's weights in the fused kernel's order, each U replaced by a DropConnect draw."""
    weights = []
    for layer in range(block.num_layers):
        for direction in range(2 if block.bidirectional else 1):
            w_ih, w_hh, b_ih, b_hh = (getattr(block, n) for n in weight_names(layer, direction))
            weights += [w_ih, F.dropout(w_hh, p, training=True), b_ih, b_hh]
    return weights


class WeightDropLSTMCore(RecurrentCore):
    def __init__(self, shape: CoreShape) -> None:
        super().__init__("lstm", shape)

    def _loops(self) -> bool:
        return False  # the point of DropConnect: the fused kernel takes the dropped weights

    def _run_block(self, block: nn.RNNBase, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.recurrent_dropout > 0):
            return block(x)[0]
        layers = block.num_layers * self.directions
        h0 = x.new_zeros(layers, x.shape[0], self.hidden)  # (L·D, B, H)
        y, _, _ = torch._VF.lstm(
            x,
            (h0, h0),
            dropped_weights(block, self.recurrent_dropout),
            True,  # biases
            block.num_layers,
            0.0,  # no dropout between the layers inside the kernel
            True,  # training
            block.bidirectional,
            True,  # batch first
        )
        return y  # (B, T, D·H)

    def implementation(self, training: bool, device: str, dtype: str) -> tuple[str, str]:
        kernel, note = fused_kernel("lstm", device, dtype, training)
        if training and self.recurrent_dropout > 0:
            note = "; ".join(filter(None, [note, "DropConnect: one dropped U per batch"]))
        return kernel, note


LSTM_WEIGHTDROP = ArchSpec(
    name="lstm-weightdrop",
    summary=(
        "LSTM with DropConnect on U (Merity et al. 2017): recurrent_dropout is the rate, "
        "one draw per batch, fused kernel kept"
    ),
    param_formula="4·H·(I+H) + 2·4·H per layer and direction",
    build=WeightDropLSTMCore,
    count_params=lambda shape: recurrent_params("lstm", shape),
    forward_flops=lambda shape, seq_len: recurrent_flops("lstm", shape, seq_len),
    options=BUILTIN_OPTIONS["lstm-weightdrop"],
    state_bytes=lambda shape, seq_len, size: recurrent_state_bytes("lstm", shape, size),
)
