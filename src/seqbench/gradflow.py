"""The vanishing gradient as a number: how far back a loss on the last output can reach.

For a loss on the model's last output, ‖∂loss/∂x_t‖ is the size of the gradient that
reaches the core's input at step t (over the batch and the features together). A simple
RNN's shrinks geometrically with the distance from the end; gated cells keep it up for
longer. The memory horizon is how many steps back, counting the last step as 0, the norm
stays at or above `RELATIVE` (1e-3) of its largest value without a break.
"""

from __future__ import annotations

import numpy as np
import torch

RELATIVE = 1e-3


def input_gradient_norms(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """‖∂ sum(last output) / ∂ core input at t‖ for t = 0..T-1, as float64."""
    model.eval()  # no dropout: the architecture's gradient, not a mask's
    # cuDNN computes RNN gradients only in training mode; its native fallback needs neither.
    with torch.backends.cudnn.flags(enabled=False):
        h = model.adapter(x).detach().requires_grad_(True)  # (B, T, I)
        y = model.core(h)  # (B, T', F)
        last = model.core.summary(y) if model.readout == "summary" else y[:, -1]
        model.head(last).float().sum().backward()
    return h.grad.double().norm(dim=(0, 2)).cpu().numpy()  # (T,)


def memory_horizon(norms: np.ndarray, relative: float = RELATIVE) -> int:
    """Steps back from the end over which the norm stays >= relative · max (0 for none)."""
    peak = float(np.max(norms)) if len(norms) else 0.0
    if peak <= 0:
        return 0
    from_end = np.asarray(norms)[::-1] >= relative * peak
    below = np.flatnonzero(~from_end)
    return int(below[0]) if below.size else len(from_end)
