"""Simple RNN, LSTM and GRU: stacked, bidirectional, with input and variational recurrent dropout.

The default path is PyTorch's fused kernel (cuDNN on CUDA, ATen/oneDNN on CPU). Variational
recurrent dropout (Gal & Ghahramani 2016, "A Theoretically Grounded Application of Dropout in
Recurrent Neural Networks") puts one mask per sequence on the recurrent state and reuses it at
every step; no fused kernel takes such a mask, so training with it runs `recurrent_scan`, a
per-step loop over the same weights. Rows say so in their `kernel` column.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.base import ArchSpec, CoreShape, SequenceCore
from seqbench.models.options import BUILTIN_OPTIONS

# Gate blocks per cell: the LSTM has 4 (i, f, g, o), the GRU 3 (r, z, n), the simple RNN 1.
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
_MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def variational_mask(like: torch.Tensor, shape: tuple[int, ...], p: float) -> torch.Tensor:
    """A dropout mask drawn once per sequence, scaled so that its mean is 1."""
    keep = 1.0 - p
    return torch.empty(shape, device=like.device, dtype=like.dtype).bernoulli_(keep) / keep


def recurrent_scan(
    kind: str,
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    *,
    reverse: bool = False,
    h_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """One direction of one layer, step by step, with PyTorch's gate equations and weight layout.

    x: (B, T, I) -> (B, T, H). `h_mask` (B, H) multiplies the state fed to the recurrent
    weights at every step (variational recurrent dropout); the carried state is not masked.
    """
    batch, steps, _ = x.shape
    hidden = w_hh.shape[1]
    xw = F.linear(x, w_ih, b_ih)  # (B, T, G*H): every input projection in one matmul
    h = x.new_zeros(batch, hidden)
    c = x.new_zeros(batch, hidden)
    out: list[torch.Tensor] = [h] * steps
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    xws = xw.unbind(1)  # unbound, not indexed: see kernels.along
    for t in order:
        hw = F.linear(h if h_mask is None else h * h_mask, w_hh, b_hh)  # (B, G*H)
        if kind == "rnn":
            h = torch.tanh(xws[t] + hw)
        elif kind == "lstm":
            i, f, g, o = (xws[t] + hw).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:  # gru; PyTorch keeps b_hn inside the reset gate's product
            xr, xz, xn = xws[t].chunk(3, dim=1)
            hr, hz, hn = hw.chunk(3, dim=1)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
        out[t] = h
    return torch.stack(out, dim=1)


def weight_names(layer: int, direction: int) -> tuple[str, str, str, str]:
    """The names of one layer's and direction's parameters in `nn.RNN/LSTM/GRU`, in the order
    their fused kernels take them: input weights, recurrent weights, the two biases."""
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    return tuple(name + suffix for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


class RecurrentCore(SequenceCore):
    """A stack of `layers` recurrent layers; every layer but the last feeds the next its sequence."""

    def __init__(self, kind: str, shape: CoreShape) -> None:
        super().__init__()
        self.kind = kind
        self.hidden = shape.hidden
        self.directions = 2 if shape.bidirectional else 1
        self.dropout = shape.dropout
        self.recurrent_dropout = shape.recurrent_dropout
        self.out_features = shape.hidden * self.directions
        module = _MODULES[kind]
        common = {"batch_first": True, "bidirectional": shape.bidirectional}
        if shape.dropout > 0 and shape.layers > 1:
            # Input dropout applies to every layer's input (as Keras' per-layer `dropout` does),
            # so each layer is its own fused call with a mask in between.
            sizes = [shape.input_size] + [self.out_features] * (shape.layers - 1)
            blocks = [module(size, shape.hidden, num_layers=1, **common) for size in sizes]
        else:
            blocks = [module(shape.input_size, shape.hidden, num_layers=shape.layers, **common)]
        self.blocks = nn.ModuleList(blocks)

    def _loops(self) -> bool:
        return self.training and self.recurrent_dropout > 0

    def implementation(self, training: bool, device: str, dtype: str) -> tuple[str, str]:
        if training and self.recurrent_dropout > 0:
            return (
                "python-loop",
                "recurrent dropout needs a per-step mask that no fused kernel takes",
            )
        return fused_kernel(self.kind, device, dtype, training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, I) -> (B, T, D*H)
        for block in self.blocks:
            if self.training and self.dropout > 0:
                x = x * variational_mask(x, (x.shape[0], 1, x.shape[2]), self.dropout)
            x = self._run_block(block, x)
        return x

    def _run_block(self, block: nn.RNNBase, x: torch.Tensor) -> torch.Tensor:
        return self._scan_block(block, x) if self._loops() else block(x)[0]

    def _scan_block(self, block: nn.RNNBase, x: torch.Tensor) -> torch.Tensor:
        for layer in range(block.num_layers):
            outputs = []
            for direction in range(self.directions):
                weights = [getattr(block, name) for name in weight_names(layer, direction)]
                mask = variational_mask(x, (x.shape[0], self.hidden), self.recurrent_dropout)
                outputs.append(
                    recurrent_scan(self.kind, x, *weights, reverse=bool(direction), h_mask=mask)
                )
            x = torch.cat(outputs, dim=-1)  # (B, T, D*H)
        return x

    def step_unsupported(self) -> str | None:
        if self.directions == 2:
            return "a bidirectional layer's backward direction starts from the sequence's end"
        return None

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> list:
        """Per block, the fused module's own state: h, or (h, c) for the LSTM, (L, B, H) each."""
        if reason := self.step_unsupported():
            raise NotImplementedError(reason)
        states = []
        for block in self.blocks:
            h = torch.zeros(block.num_layers, batch, self.hidden, device=device, dtype=dtype)
            states.append((h, torch.zeros_like(h)) if self.kind == "lstm" else h)
        return states

    def step(self, x_t: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        # The fused module on a one-step sequence, carrying its state: the same kernel and
        # weights as `forward`, and the same equations by construction.
        y = x_t.unsqueeze(1)  # (B, 1, I)
        carried = []
        for block, hx in zip(self.blocks, state, strict=True):
            y, hx = block(y, hx)  # (B, 1, H)
            carried.append(hx)
        return y.squeeze(1), carried  # (B, H)

    def step_implementation(self, device: str, dtype: str) -> tuple[str, str]:
        return fused_kernel(self.kind, device, dtype, training=False)

    def summary(self, y: torch.Tensor) -> torch.Tensor:  # (B, T, D*H) -> (B, D*H)
        if self.directions == 1:
            return y[:, -1]
        # The backward direction has read the whole sequence at t=0, as in Keras' Bidirectional.
        return torch.cat([y[:, -1, : self.hidden], y[:, 0, self.hidden :]], dim=-1)


def fused_kernel(kind: str, device: str, dtype: str, training: bool) -> tuple[str, str]:
    """Which library kernel `nn.RNN/LSTM/GRU` dispatches to, following ATen's own tests.

    On CUDA it is cuDNN when cuDNN is enabled. On the CPU, ATen hands the LSTM (and only the
    LSTM) to oneDNN when oneDNN is enabled and supports the dtype; the simple RNN and the GRU
    run ATen's own C++ step loop. That difference is large (about 5x for the LSTM here), so
    the row names it.
    """
    if device.startswith("cuda"):
        if torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled:
            return ("cudnn", "")
        return ("aten", "cuDNN is disabled or missing")
    if (
        device == "cpu"
        and kind == "lstm"
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
    ):
        mkldnn = torch.ops.mkldnn
        supported = {
            "float32": True,
            "bfloat16": mkldnn._is_mkldnn_bf16_supported(),
            "float16": mkldnn._is_mkldnn_fp16_supported() and not training,
        }
        if supported.get(dtype, False):
            return ("onednn", "")
        return ("aten", f"oneDNN does not run this LSTM in {dtype} here")
    return ("aten", "")


def set_forget_bias(model: nn.Module, value: float) -> int:
    """Start every LSTM layer's forget gate at bias `value`; returns the layers changed.

    `nn.LSTM` keeps two bias vectors whose sum the gate sees; its gates are ordered
    (i, f, g, o), so the forget gate is the second block of H. `bias_ih` gets `value` and
    `bias_hh` 0, so that the sum is exactly `value` (Keras' unit_forget_bias sets its single
    bias to 1 the same way). Other gates keep their initialisation; cores without an LSTM
    (and minLSTM, whose gates are normalised against each other) are left alone.
    """
    changed = 0
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, nn.LSTM):
                continue
            h = module.hidden_size
            for name, param in module.named_parameters():
                if name.startswith("bias_ih"):
                    param[h : 2 * h] = value
                    changed += 1
                elif name.startswith("bias_hh"):
                    param[h : 2 * h] = 0.0
    return changed


def recurrent_params(kind: str, shape: CoreShape, biases: int = 2) -> int:
    """G·H·(I+H) + 2·G·H per layer and direction (PyTorch keeps two bias vectors per gate
    block); `biases` 1 counts as Keras' SimpleRNN and LSTM do."""
    gates, hidden = GATES[kind], shape.hidden
    directions = 2 if shape.bidirectional else 1
    total = 0
    for layer in range(shape.layers):
        inputs = shape.input_size if layer == 0 else hidden * directions
        total += directions * (gates * hidden * (inputs + hidden) + biases * gates * hidden)
    return total


# Bias vectors per gate block in Keras' layer of the same name: SimpleRNN and LSTM keep one
# (b), GRU two (reset_after=True, its default since TensorFlow 2: the recurrent bias apart).
KERAS_BIASES = {"rnn": 1, "lstm": 1, "gru": 2}


def recurrent_flops(kind: str, shape: CoreShape, seq_len: int) -> int:
    """Forward matmul FLOPs per sequence: 2·G·H·(I+H) per step, layer and direction."""
    gates, hidden = GATES[kind], shape.hidden
    directions = 2 if shape.bidirectional else 1
    total = 0
    for layer in range(shape.layers):
        inputs = shape.input_size if layer == 0 else hidden * directions
        total += directions * seq_len * 2 * gates * hidden * (inputs + hidden)
    return total


_SUMMARIES = {
    "rnn": "simple tanh RNN: h = tanh(W x + U h + b)",
    "lstm": "LSTM (Hochreiter & Schmidhuber 1997): input, forget, cell and output gates",
    "gru": "GRU (Cho et al. 2014): reset and update gates, no separate cell state",
}


_KERAS_TEXT = {
    "rnn": "Keras: H·(I+H) + H",
    "lstm": "Keras: 4·H·(I+H) + 4·H",
    "gru": "Keras: the same",
}


def recurrent_spec(kind: str) -> ArchSpec:
    gates = GATES[kind]
    g = "" if gates == 1 else f"{gates}·"
    return ArchSpec(
        name=kind,
        summary=_SUMMARIES[kind],
        param_formula=f"{g}H·(I+H) + 2·{g}H per layer and direction ({_KERAS_TEXT[kind]})",
        build=lambda shape: RecurrentCore(kind, shape),
        count_params=lambda shape: recurrent_params(kind, shape),
        keras_params=lambda shape: recurrent_params(kind, shape, KERAS_BIASES[kind]),
        forward_flops=lambda shape, seq_len: recurrent_flops(kind, shape, seq_len),
        options=BUILTIN_OPTIONS[kind],
        state_bytes=lambda shape, seq_len, size: recurrent_state_bytes(kind, shape, size),
    )


def recurrent_state_bytes(kind: str, shape: CoreShape, itemsize: int) -> int:
    """h per layer, and c too for the LSTM: one direction (a bidirectional core cannot stream)."""
    return (2 if kind == "lstm" else 1) * shape.layers * shape.hidden * itemsize
