"""The temporal convolutional network of Bai, Kolter & Koltun 2018, "An Empirical Evaluation of
Generic Convolutional and Recurrent Networks for Sequence Modeling" (§3, Figure 1).

`layers` residual blocks; block i has two dilated causal convolutions (kernel k, dilation
2^i), each with weight normalisation, ReLU and spatial dropout (the `dropout` option: whole
channels, as the paper describes), and a residual connection through a 1×1 convolution
where the widths differ (the first block, when I != H): out = ReLU(F(x) + x).

k = 7, the seed's kernel size (the paper tunes k per task; `TCNCore(k=...)`). Output t reads
exactly inputs t - RF + 1 .. t, RF = `receptive_field(k, layers)` = 1 + 2·(k-1)·(2^L - 1)
(each block's two convolutions add (k-1)·2^i steps each); `summary` is the last step.

`tcn` is that block stack at the cell's `layers` (one block by default: RF 13, a warning at
longer sequences). `tcn-paper` is the network the paper evaluated: kernel size and number of
blocks from its appendix table (`PAPER_SETTINGS`) at the lengths it reports, and elsewhere
k = 7 with the fewest blocks whose receptive field covers the sequence.

Initialisation: `tcn` draws the convolutions from N(0, 0.01), as the paper's reference code
means to. That code applies weight normalisation first and then overwrites `weight`, which
weight normalisation recomputes from g and v at every forward pass, so its convolutions in
fact start from PyTorch's default initialisation (only the 1×1 residual convolutions get
N(0, 0.01)). `tcn-paper` starts where the published results started. It matters: from
N(0, 0.01) the dilated path carries about 1/300 of the residual path's gradient per input
step at initialisation, and on the adding problem at T = 200 such a TCN stayed at chance
for 2,000 steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from seqbench.models.base import (
    ONE_WAY_NO_RECURRENT_DROPOUT,
    ArchSpec,
    CoreShape,
    SequenceCore,
)
from seqbench.models.options import BUILTIN_OPTIONS

KERNEL = 7


def receptive_field(k: int, blocks: int) -> int:
    """How many inputs the last output reads: 1 + 2·(k-1)·(2^blocks - 1)."""
    return 1 + 2 * (k - 1) * (2**blocks - 1)


# Bai, Kolter & Koltun 2018, appendix (TCN settings per task), keyed by seqbench's seq_len:
# seq_len -> (kernel k, blocks n, hidden H the paper used for about its parameter budget).
# Copy memory's seq_len is the paper's T + 20; sequential MNIST is 784 pixels.
PAPER_SETTINGS: dict[int, tuple[int, int, int]] = {
    200: (6, 7, 27),  # adding, T = 200
    400: (7, 7, 27),  # adding, T = 400
    600: (8, 8, 24),  # adding, T = 600
    520: (6, 9, 10),  # copy memory, T = 500
    1020: (8, 8, 10),  # copy memory, T = 1000
    2020: (8, 9, 10),  # copy memory, T = 2000
    784: (7, 8, 25),  # sequential MNIST
}


def paper_kernel_and_blocks(seq_len: int) -> tuple[int, int]:
    """tcn-paper's (k, blocks) at this length: the paper's where it reports one, else k = 7
    and the fewest blocks whose receptive field reaches `seq_len` (one for an unknown length)."""
    if seq_len in PAPER_SETTINGS:
        return PAPER_SETTINGS[seq_len][:2]
    blocks = 1
    while receptive_field(KERNEL, blocks) < seq_len:
        blocks += 1
    return KERNEL, blocks


class CausalConv1d(nn.Module):
    """A weight-normalised dilated convolution padded on the left only, so output t reads
    inputs t - (k-1)·d .. t and the output is as long as the input."""

    def __init__(
        self, c_in: int, c_out: int, k: int, dilation: int, small_init: bool = True
    ) -> None:
        super().__init__()
        self.past = (k - 1) * dilation  # inputs before t that output t reads
        conv = nn.Conv1d(c_in, c_out, k, dilation=dilation)
        if small_init:  # N(0, 0.01), what the paper's code means to start from
            nn.init.normal_(conv.weight, 0.0, 0.01)
        # weight = g · v / ||v||, with g and v both trained (Salimans & Kingma 2016)
        self.conv = weight_norm(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C', T)
        return self.conv(F.pad(x, (self.past, 0)))

    def step(self, x_t: torch.Tensor, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x_t (B, C) and the last `past` inputs (B, C, past) -> (B, C'), the next window."""
        seen = torch.cat([window, x_t.unsqueeze(-1)], dim=-1)  # (B, C, past + 1)
        return self.conv(seen).squeeze(-1), seen[..., 1:]


class TemporalBlock(nn.Module):
    def __init__(
        self, c_in: int, c_out: int, k: int, dilation: int, dropout: float, small_init: bool = True
    ) -> None:
        super().__init__()
        self.conv1 = CausalConv1d(c_in, c_out, k, dilation, small_init)
        self.conv2 = CausalConv1d(c_out, c_out, k, dilation, small_init)
        self.drop = nn.Dropout1d(dropout)  # spatial dropout: one mask per channel and sequence
        self.downsample = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else None
        if self.downsample is not None and not small_init:
            nn.init.normal_(self.downsample.weight, 0.0, 0.01)  # as the reference code does

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C', T)
        y = self.drop(F.relu(self.conv1(x)))
        y = self.drop(F.relu(self.conv2(y)))
        return F.relu(y + self._residual(x))

    def step(self, x_t: torch.Tensor, windows: tuple) -> tuple[torch.Tensor, tuple]:
        y, w1 = self.conv1.step(x_t, windows[0])  # (B, C')
        y, w2 = self.conv2.step(F.relu(y), windows[1])
        residual = self._residual(x_t.unsqueeze(-1)).squeeze(-1)
        return F.relu(F.relu(y) + residual), (w1, w2)


class TCNCore(SequenceCore):
    """Streams by keeping, per convolution, a window of the (k-1)·d inputs it last read."""

    def __init__(self, shape: CoreShape, k: int = KERNEL, small_init: bool = True) -> None:
        super().__init__()
        widths = [shape.input_size] + [shape.hidden] * shape.layers
        self.blocks = nn.ModuleList(
            TemporalBlock(widths[i], widths[i + 1], k, 2**i, shape.dropout, small_init)
            for i in range(shape.layers)
        )
        self.receptive_field = receptive_field(k, shape.layers)
        self.out_features = shape.hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, I) -> (B, T, H)
        y = x.transpose(1, 2)  # (B, I, T)
        for block in self.blocks:
            y = block(y)  # (B, H, T)
        return y.transpose(1, 2)

    def summary(self, y: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, H): the last step
        return y[:, -1]

    def step_unsupported(self) -> str | None:
        return None

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> list:
        # Zeros: what the left padding feeds the first outputs of `forward`.
        def window(conv: CausalConv1d) -> torch.Tensor:
            c_in = conv.conv.in_channels
            return torch.zeros(batch, c_in, conv.past, device=device, dtype=dtype)

        return [(window(b.conv1), window(b.conv2)) for b in self.blocks]

    def step(self, x_t: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        carried = []
        for block, windows in zip(self.blocks, state, strict=True):
            x_t, windows = block.step(x_t, windows)
            carried.append(windows)
        return x_t, carried


def tcn_params(shape: CoreShape, k: int = KERNEL) -> int:
    """Per block: two convolutions of H·C·k weights (v) + H gains (g) + H biases, and
    I·H + H for the 1×1 residual convolution of a block whose input width I != H."""
    h, total = shape.hidden, 0
    for i in range(shape.layers):
        c_in = shape.input_size if i == 0 else h
        total += (h * c_in * k + 2 * h) + (h * h * k + 2 * h)
        if c_in != h:
            total += c_in * h + h
    return total


def tcn_flops(shape: CoreShape, seq_len: int, k: int = KERNEL) -> int:
    """2·T·k·H·(C + H) per block (C its input width), plus 2·T·I·H for a 1×1 residual.

    The zero padding is multiplied like any input, as the counter counts it. Weight
    normalisation, ReLU and the residual sum are elementwise and not counted.
    """
    h, total = shape.hidden, 0
    for i in range(shape.layers):
        c_in = shape.input_size if i == 0 else h
        total += 2 * seq_len * k * h * (c_in + h)
        if c_in != h:
            total += 2 * seq_len * c_in * h
    return total


TCN = ArchSpec(
    name="tcn",
    summary=(
        f"TCN (Bai et al. 2018): residual blocks of two dilated causal convs k={KERNEL}, "
        f"dilation 2^i, weight norm; receptive field 1 + {2 * (KERNEL - 1)}·(2^L - 1); last step"
    ),
    param_formula=(f"{KERNEL}·H·(I+H) + 4·H (+ I·H + H if I≠H) + (L-1)·({2 * KERNEL}·H² + 4·H)"),
    build=TCNCore,
    count_params=tcn_params,
    forward_flops=tcn_flops,
    options=BUILTIN_OPTIONS["tcn"],
    fixed=ONE_WAY_NO_RECURRENT_DROPOUT,
    receptive_field=lambda shape: receptive_field(KERNEL, shape.layers),
    state_bytes=lambda shape, seq_len, size: tcn_state_bytes(shape, KERNEL, size),
)


def tcn_state_bytes(shape: CoreShape, k: int, itemsize: int) -> int:
    """Each convolution keeps the (k-1)·2^i inputs before t that its output reads: block i's
    first convolution reads its block's input (I wide for the first block), the second H."""
    numbers = 0
    for i in range(shape.layers):
        width_in = shape.input_size if i == 0 else shape.hidden
        numbers += (width_in + shape.hidden) * (k - 1) * 2**i
    return numbers * itemsize


def _paper_kernel(shape: CoreShape) -> int:
    return paper_kernel_and_blocks(shape.seq_len)[0]


TCN_PAPER = ArchSpec(
    name="tcn-paper",
    summary=(
        "TCN as Bai et al. 2018 configured it: k and blocks from the paper's table at its "
        f"lengths, else k={KERNEL} and blocks enough for a receptive field >= T"
    ),
    param_formula="as tcn, with the preset's k and blocks (layers)",
    build=lambda shape: TCNCore(shape, k=_paper_kernel(shape), small_init=False),
    count_params=lambda shape: tcn_params(shape, k=_paper_kernel(shape)),
    forward_flops=lambda shape, seq_len: tcn_flops(shape, seq_len, k=_paper_kernel(shape)),
    options=BUILTIN_OPTIONS["tcn-paper"],
    fixed=ONE_WAY_NO_RECURRENT_DROPOUT,
    sized=lambda seq_len: {"layers": paper_kernel_and_blocks(seq_len)[1]},
    receptive_field=lambda shape: receptive_field(_paper_kernel(shape), shape.layers),
    state_bytes=lambda shape, seq_len, size: tcn_state_bytes(shape, _paper_kernel(shape), size),
)
