"""FLOPs of a step seqbench has no formula for (a user's module), counted as it runs.

The count follows `torch.utils.flop_counter`: 2 per multiply-add of every matmul and
convolution, with torch's own formulas for them, and the real backward pass. It runs its
own dispatch mode rather than `FlopCounterMode`, whose module tracking fails under
`torch.inference_mode` on a submodule called with a parameter (`self.inner(x, self.w)`,
as transformers' Mamba does): a figure that is nice to have must never cost the cell.

On a CPU the fused kernels that torch's formulas do not know carry much of the work: the
oneDNN LSTM layer (`mkldnn_rnn_layer`, what `nn.LSTM` runs) and scaled-dot-product
attention's CPU kernel. Their formulas are here, in the same convention. A kernel that
still has none (a name with rnn, lstm, gru, attention or conv in it: `_cudnn_rnn`, ...)
makes the count a lower bound, which is not reported: the FLOPs stay empty and the note
names the kernels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

aten = torch.ops.aten
# Names of kernels that do a model's heavy work: one without a formula is a gap in the count.
HEAVY = ("rnn", "lstm", "gru", "attention", "conv", "mm", "matmul", "linear")


def _rnn_layer(*args: Any, **_: Any) -> int:
    """mkldnn_rnn_layer(input, w_ih, w_hh, b_ih, b_hh, ...): one layer, one direction; every
    token multiplies [x, h] by the gates' weights."""
    x, w_ih, w_hh = args[0], args[1], args[2]
    tokens = x.numel() // x.shape[-1]
    return 2 * tokens * (w_ih.numel() + w_hh.numel())


def _rnn_layer_backward(*args: Any, **_: Any) -> int:
    """Its backward: the gradients of the inputs and of the weights, two of the forward."""
    x, w_ih, w_hh = args[0], args[1], args[2]
    tokens = x.numel() // x.shape[-1]
    return 4 * tokens * (w_ih.numel() + w_hh.numel())


def _sdpa(query: Any, key: Any, value: Any, *_: Any, **__: Any) -> int:
    return sdpa_flop_count(query.shape, key.shape, value.shape)


def _sdpa_backward(grad_out: Any, query: Any, key: Any, value: Any, *_: Any, **__: Any) -> int:
    return sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape)


def _formulas() -> dict[Any, Callable[..., int]]:
    """torch's formulas, and seqbench's for the CPU kernels they miss."""
    registry = dict(FlopCounterMode(display=False).flop_registry)
    extra = {
        "mkldnn_rnn_layer": _rnn_layer,
        "mkldnn_rnn_layer_backward": _rnn_layer_backward,
        "_scaled_dot_product_flash_attention_for_cpu": _sdpa,
        "_scaled_dot_product_flash_attention_for_cpu_backward": _sdpa_backward,
    }
    for name, formula in extra.items():
        packet = getattr(aten, name, None)
        if packet is not None:
            registry.setdefault(packet, formula)
    return registry


class _Counter(TorchDispatchMode):
    """Adds each op's FLOPs by its formula, and notes the heavy ops that have none."""

    def __init__(self, formulas: dict[Any, Callable[..., int]]) -> None:
        super().__init__()
        self.formulas, self.total, self.opaque = formulas, 0, set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None):
        kwargs = kwargs or {}
        packet = func._overloadpacket
        formula = self.formulas.get(packet)
        if formula is None:
            # A composite op (under inference_mode `aten.lstm`, `aten.matmul` reach the mode
            # whole): counted by what it decomposes into, as FlopCounterMode does.
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        out = func(*args, **kwargs)
        if formula is not None:
            self.total += int(formula(*args, **kwargs, out_val=out))
        elif any(word in packet.__name__.lower() for word in HEAVY):
            self.opaque.add(packet.__name__)
        return out


def count_step(step: Callable[[], object], batch_size: int) -> tuple[int | None, str]:
    """FLOPs per sequence of one call of `step`, and a note when there is no figure: the
    kernels the count could not see, or why counting failed. (None, "") when it saw none."""
    counter = _Counter(_formulas())
    try:
        with counter:
            step()
    except Exception as exc:  # the count, not the cell: say so, and measure the cell
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return None, f"FLOPs not counted: counting failed ({type(exc).__name__}: {first})"
    if counter.opaque:
        kernels = ", ".join(sorted(counter.opaque))
        return (
            None,
            f"FLOPs not counted: no formula for {kernels} (the count would be a lower bound)",
        )
    if counter.total <= 0:
        return None, ""
    return math.floor(counter.total / batch_size + 0.5), ""
