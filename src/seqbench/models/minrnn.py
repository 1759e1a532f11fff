"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"), trained in parallel.

Their gates read only the input x_t, never h_{t-1}, so the recurrence is linear in h:

    minGRU   z_t = σ(W_z x_t),  h̃_t = g(W_h x_t)
             h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t
    minLSTM  f_t = σ(W_f x_t),  i_t = σ(W_i x_t),  h̃_t = g(W_h x_t)
             f'_t, i'_t = f_t / (f_t + i_t), i_t / (f_t + i_t)
             h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h̃_t

with g(x) = x + 0.5 for x >= 0 and σ(x) below, which keeps h̃ (and so h) positive. A
recurrence h_t = a_t ⊙ h_{t-1} + b_t with a, b > 0 and h_0 = 0 is a scan (Heinsen 2023,
"Efficient Parallelization of a Ubiquitous Sequential Computation"):

    log h_t = a*_t + logcumsumexp_t(log b - a*),  a*_t = Σ_{s<=t} log a_s

which `log_scan` computes for all t at once; every log comes straight from the
pre-activations through softplus, as in the paper's log-space versions. `forward` (training
and inference) runs the scan; `step` runs the recurrence itself, one token at a time.

Layers are stacked as `nn.GRU` stacks them (each layer's h sequence is the next layer's
input), with no residual, norm or MLP, so that these are the paper's minimal cells compared
at the structure of the seed's GRU. The `dropout` option is input dropout with one mask per
sequence and layer, as in recurrent.py. The linear maps have biases: G·H·(I + 1) parameters
per layer (G = 2 for minGRU, 3 for minLSTM): at I = H about 1/3 of a GRU's and 3/8 of an
LSTM's.

`mingru-paper` and `minlstm-paper` fix the depth at the paper's: three layers, the depth at
which both cells solve its selective-copying task (Feng et al. 2024, Table 1: one layer
scores about 37%, three 97-99.5%). The paper's blocks also wrap each cell in a residual
connection and normalisation, which these minimal stacks leave out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.base import (
    ONE_WAY_NO_RECURRENT_DROPOUT,
    ArchSpec,
    CoreShape,
    SequenceCore,
)
from seqbench.models.options import BUILTIN_OPTIONS
from seqbench.models.recurrent import variational_mask

# Linear maps of the input per cell: (z, h̃) for minGRU, (f, i, h̃) for minLSTM.
GATES = {"mingru": 2, "minlstm": 3}


def g(x: torch.Tensor) -> torch.Tensor:
    """The paper's positive activation for h̃: x + 0.5 for x >= 0, σ(x) below (continuous)."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: torch.Tensor) -> torch.Tensor:
    # log σ(x) = -softplus(-x); relu keeps the untaken branch's log finite for autograd
    return torch.where(x >= 0, (F.relu(x) + 0.5).log(), -F.softplus(-x))


def log_scan(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t from h_0 = 0, for all t at once: (B, T, H) -> (B, T, H).

    Runs in at least float32: in bfloat16 the running sums would lose the sequence's end.
    """
    dtype = log_b.dtype
    work = torch.promote_types(dtype, torch.float32)
    a_star = log_a.to(work).cumsum(dim=1)  # (B, T, H)
    log_h = a_star + torch.logcumsumexp(log_b.to(work) - a_star, dim=1)
    return log_h.exp().to(dtype)


class MinGRU(nn.Module):
    def __init__(self, input_size: int, hidden: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_size, 2 * hidden)  # z and h̃ in one matmul

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, I) -> (B, T, H)
        k, pre = self.linear(x).chunk(2, dim=-1)  # (B, T, H) each
        log_z = -F.softplus(-k)  # log σ(k)
        log_keep = -F.softplus(k)  # log(1 - σ(k))
        return log_scan(log_keep, log_z + log_g(pre))

    def step(self, x_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:  # (B, I), (B, H)
        k, pre = self.linear(x_t).chunk(2, dim=-1)
        z = torch.sigmoid(k)
        return (1 - z) * h + z * g(pre)


class MinLSTM(nn.Module):
    def __init__(self, input_size: int, hidden: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_size, 3 * hidden)  # f, i and h̃ in one matmul

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, I) -> (B, T, H)
        kf, ki, pre = self.linear(x).chunk(3, dim=-1)  # (B, T, H) each
        # log f' = log f - log(f + i) = -softplus(log i - log f), with log σ(k) = -softplus(-k)
        diff = F.softplus(-kf) - F.softplus(-ki)  # log i - log f
        log_f = -F.softplus(diff)
        log_i = -F.softplus(-diff)
        return log_scan(log_f, log_i + log_g(pre))

    def step(self, x_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:  # (B, I), (B, H)
        kf, ki, pre = self.linear(x_t).chunk(3, dim=-1)
        f, i = torch.sigmoid(kf), torch.sigmoid(ki)
        return (f * h + i * g(pre)) / (f + i)


_CELLS = {"mingru": MinGRU, "minlstm": MinLSTM}


class MinRNNCore(SequenceCore):
    def __init__(self, kind: str, shape: CoreShape) -> None:
        super().__init__()
        self.hidden = shape.hidden
        self.dropout = shape.dropout
        self.out_features = shape.hidden
        sizes = [shape.input_size] + [shape.hidden] * (shape.layers - 1)
        self.cells = nn.ModuleList(_CELLS[kind](size, shape.hidden) for size in sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, I) -> (B, T, H)
        for cell in self.cells:
            if self.training and self.dropout > 0:
                x = x * variational_mask(x, (x.shape[0], 1, x.shape[2]), self.dropout)
            x = cell(x)
        return x

    def summary(self, y: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, H): the last step
        return y[:, -1]

    def implementation(self, training: bool, device: str, dtype: str) -> tuple[str, str]:
        return ("log-scan", "")

    def step_unsupported(self) -> str | None:
        return None

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> list:
        return [torch.zeros(batch, self.hidden, device=device, dtype=dtype) for _ in self.cells]

    def step(self, x_t: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        carried = []
        for cell, h in zip(self.cells, state, strict=True):
            x_t = cell.step(x_t, h)  # (B, H)
            carried.append(x_t)
        return x_t, carried

    def step_implementation(self, device: str, dtype: str) -> tuple[str, str]:
        return ("sequential", "")


def _layer_inputs(shape: CoreShape) -> list[int]:
    return [shape.input_size] + [shape.hidden] * (shape.layers - 1)


def minrnn_params(kind: str, shape: CoreShape) -> int:
    """G·H·(I + 1) per layer, I its input width."""
    return sum(GATES[kind] * shape.hidden * (i + 1) for i in _layer_inputs(shape))


def minrnn_flops(kind: str, shape: CoreShape, seq_len: int) -> int:
    """2·G·H·I per step and layer: the one input matmul. The scan (cumsum, logcumsumexp,
    exp) and the gates are elementwise and not counted; there is no H×H matmul at all."""
    return sum(2 * GATES[kind] * shape.hidden * i * seq_len for i in _layer_inputs(shape))


_SUMMARIES = {
    "mingru": "minGRU (Feng et al. 2024): gates from x_t only, h by a parallel log-space scan",
    "minlstm": "minLSTM (Feng et al. 2024): normalised forget/input gates from x_t, log-space scan",
}


# Feng et al. 2024, Table 1: the depth at which both cells learn selective copying.
PAPER_LAYERS = 3


def minrnn_spec(kind: str, paper: bool = False) -> ArchSpec:
    """The cell at the cell's depth, or (paper) the preset at the paper's depth."""
    gates = GATES[kind]
    name = f"{kind}-paper" if paper else kind
    summary = _SUMMARIES[kind]
    if paper:
        summary = f"{summary}; {PAPER_LAYERS} layers, as the paper's selective-copying models"
    return ArchSpec(
        name=name,
        summary=summary,
        param_formula=f"{gates}·H·(I+1) per layer",
        build=lambda shape: MinRNNCore(kind, shape),
        count_params=lambda shape: minrnn_params(kind, shape),
        forward_flops=lambda shape, seq_len: minrnn_flops(kind, shape, seq_len),
        options=BUILTIN_OPTIONS[name],
        state_bytes=lambda shape, seq_len, size: shape.layers * shape.hidden * size,
        fixed={**ONE_WAY_NO_RECURRENT_DROPOUT, "layers": PAPER_LAYERS}
        if paper
        else ONE_WAY_NO_RECURRENT_DROPOUT,
    )
