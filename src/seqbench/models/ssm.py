"""The two time-invariant baselines: S4D and LRU, as a convolution by FFT and as a recurrence.

Both are linear recurrences whose coefficients do not depend on the input, so a whole
sequence is one causal convolution with a kernel as long as the sequence, computed by FFT
in O(T log T) (`forward`, kernel form `fft-conv`); `step` runs the recurrence itself.

S4D (Gu, Gupta, Goel & Ré 2022, "On the Parameterization and Initialization of Diagonal
State Space Models", §3 and the paper's s4d.py): per channel, N/2 complex modes
A_n = -½ + iπn (S4D-Lin), a step Δ = exp(log Δ) with log Δ uniform in [log 0.001, log 0.1],
B = 1, C complex normal, zero-order hold:

    Ā = exp(ΔA),  B̄ = (exp(ΔA) - 1) / A,  K_l = 2·Re Σ_n C_n B̄_n Ā_n^l          (§3, eq. 5)
    y = K ∗ u + D ⊙ u,  then GELU and Linear(H, 2H) + GLU as the paper's layer.

All of log Δ, C, log(-Re A), Im A and D are trained (2H² + 2HN + 4H parameters; N = 64 as
s4d.py's default, so 32 complex modes per channel; `s4d(d_state=16)` sets it).

LRU (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for Long Sequences", §3
and Appendix A): N complex states shared by the H channels, λ = exp(-exp(ν) + i·exp(θ)),
|λ| initialised uniformly on the ring [0.9, 0.999] and its phase in [0, π/10] (the paper's
long-range settings), γ = sqrt(1 - |λ|²) normalising the input:

    x_t = λ ⊙ x_{t-1} + γ ⊙ (B u_t),   y_t = Re(C x_t) + D ⊙ u_t

with B (N×H) and C (H×N) complex: 4NH + 3N + H parameters, N = H by default
(`lru(d_state=256)` sets it). The sequence form
convolves each state channel with λⁿ by FFT; the paper computes it with a parallel scan.

Neither has a reference implementation that installs from a package registry (the authors'
code lives in research repositories), so tests hold each form against a two-step case
worked by hand and against the other form.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.core.errors import ConfigError
from seqbench.models.base import ArchSpec
from seqbench.models.kernels import causal_fft_conv, work_dtype
from seqbench.models.mixers import mixer_spec

S4D_STATE = 64  # N: real numbers per channel's state, N/2 complex modes (s4d.py's d_state)
S4D_DT = (0.001, 0.1)
LRU_RADIUS = (0.9, 0.999)
LRU_PHASE = math.pi / 10


class S4D(nn.Module):
    form = "fft-conv"
    step_form = "recurrent"

    def __init__(self, width: int, d_state: int = S4D_STATE) -> None:
        super().__init__()
        modes = d_state // 2
        low, high = (math.log(v) for v in S4D_DT)
        self.log_dt = nn.Parameter(torch.rand(width) * (high - low) + low)
        self.C = nn.Parameter(torch.randn(width, modes, 2) * math.sqrt(0.5))  # complex, as reals
        self.log_A_real = nn.Parameter(torch.full((width, modes), math.log(0.5)))
        self.A_imag = nn.Parameter(math.pi * torch.arange(modes).float().repeat(width, 1))
        self.D = nn.Parameter(torch.randn(width))
        self.out = nn.Linear(width, 2 * width)

    def _discrete(self, dtype: torch.dtype):
        """(Ā, C·B̄) per channel and mode, complex, in at least double-float precision."""
        real = work_dtype(dtype)
        A = torch.complex(-self.log_A_real.to(real).exp(), self.A_imag.to(real))
        dtA = A * self.log_dt.to(real).exp()[:, None]
        C = torch.view_as_complex(self.C.to(real).contiguous())
        return dtA, C * (dtA.exp() - 1) / A

    def _readout(self, y: torch.Tensor) -> torch.Tensor:
        return F.glu(self.out(F.gelu(y)), dim=-1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, H)
        length = u.shape[1]
        dtA, CB = self._discrete(u.dtype)
        powers = torch.arange(length, device=u.device, dtype=dtA.real.dtype)
        kernel = 2 * torch.einsum("hn,hnl->lh", CB, (dtA[:, :, None] * powers).exp()).real
        y = causal_fft_conv(u.to(kernel.dtype), kernel).to(u.dtype) + u * self.D
        return self._readout(y)

    def init_state(self, batch: int, device, dtype) -> torch.Tensor:
        modes = self.C.shape[1]
        complex_dtype = (torch.zeros((), dtype=work_dtype(dtype)) * 1j).dtype
        return torch.zeros(batch, self.C.shape[0], modes, device=device, dtype=complex_dtype)

    def step(self, u_t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dtA, CB = self._discrete(u_t.dtype)
        # x carries B̄-weighted inputs with C folded in: x_n = Σ Ā_n^(t-s) C_n B̄_n u_s
        x = dtA.exp() * x + CB * u_t.to(x.real.dtype)[:, :, None]
        y = 2 * x.sum(-1).real.to(u_t.dtype) + u_t * self.D
        return self._readout(y), x


def s4d_params(h: int, d_state: int = S4D_STATE) -> int:
    return 2 * h * h + 2 * h * d_state + 4 * h


def s4d_flops(h: int, seq_len: int, d_state: int = S4D_STATE) -> int:
    """Linear(H, 2H): 4·H² per token; the recurrence: 8 per complex mode per channel and token
    (a complex multiply-add is 4 multiplies and 4 adds; state update and readout), 4·H·N."""
    return seq_len * (4 * h * h + 4 * h * d_state)


class LRU(nn.Module):
    form = "fft-conv"
    step_form = "recurrent"

    def __init__(self, width: int, d_state: int = 0) -> None:
        super().__init__()
        n = d_state or width  # 0: N = H
        r_min, r_max = LRU_RADIUS
        radius_sq = torch.rand(n) * (r_max**2 - r_min**2) + r_min**2
        self.nu_log = nn.Parameter((-0.5 * radius_sq.log()).log())
        self.theta_log = nn.Parameter((LRU_PHASE * torch.rand(n)).clamp_min(1e-4).log())
        lam_abs = (-self.nu_log.detach().exp()).exp()
        self.gamma_log = nn.Parameter((1 - lam_abs**2).sqrt().log())
        self.B_re = nn.Parameter(torch.randn(n, width) / math.sqrt(2 * width))
        self.B_im = nn.Parameter(torch.randn(n, width) / math.sqrt(2 * width))
        self.C_re = nn.Parameter(torch.randn(width, n) / math.sqrt(n))
        self.C_im = nn.Parameter(torch.randn(width, n) / math.sqrt(n))
        self.D = nn.Parameter(torch.randn(width))

    def _complex(self, dtype: torch.dtype):
        real = work_dtype(dtype)
        log_lam = torch.complex(-self.nu_log.to(real).exp(), self.theta_log.to(real).exp())
        B = (
            torch.complex(self.B_re.to(real), self.B_im.to(real))
            * self.gamma_log.to(real).exp()[:, None]
        )
        C = torch.complex(self.C_re.to(real), self.C_im.to(real))
        return log_lam, B, C

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, H)
        log_lam, B, C = self._complex(u.dtype)
        bu = u.to(B.dtype) @ B.T  # (B, T, N)
        powers = torch.arange(u.shape[1], device=u.device, dtype=log_lam.real.dtype)
        x = causal_fft_conv(bu, (powers[:, None] * log_lam).exp())  # (B, T, N)
        return (x @ C.T).real.to(u.dtype) + u * self.D

    def init_state(self, batch: int, device, dtype) -> torch.Tensor:
        complex_dtype = (torch.zeros((), dtype=work_dtype(dtype)) * 1j).dtype
        return torch.zeros(batch, self.nu_log.shape[0], device=device, dtype=complex_dtype)

    def step(self, u_t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_lam, B, C = self._complex(u_t.dtype)
        x = log_lam.exp() * x + u_t.to(B.dtype) @ B.T
        return (x @ C.T).real.to(u_t.dtype) + u_t * self.D, x


def lru_params(h: int, d_state: int = 0) -> int:
    n = d_state or h
    return 4 * n * h + 3 * n + h


def lru_flops(h: int, seq_len: int, d_state: int = 0) -> int:
    """B u and C x: two complex N×H matrix-vector products per token, 4 real ones each
    (16·N·H); the diagonal recurrence, 8·N."""
    n = d_state or h
    return seq_len * (16 * n * h + 8 * n)


def s4d_spec(d_state: int = S4D_STATE) -> ArchSpec:
    if d_state % 2:
        raise ConfigError(f"d_state counts real numbers (N/2 complex modes): {d_state} is odd")
    return mixer_spec(
        "s4d",
        f"S4D (Gu et al. 2022): diagonal state space, S4D-Lin, ZOH, N = {d_state}, kernel by "
        "FFT; GELU + GLU",
        f"2·H² + 2·H·N + 4·H, N = {d_state}",
        S4D,
        s4d_params,
        s4d_flops,
        # N/2 complex modes per channel, complex in at least float32
        lambda h, size: h * d_state * max(size, 4),
        knobs={"d_state": d_state},
        variant=s4d_spec,
    )


def lru_spec(d_state: int = 0) -> ArchSpec:
    n = f"N = {d_state}" if d_state else "N = H"
    return mixer_spec(
        "lru",
        f"LRU (Orvieto et al. 2023): complex diagonal linear recurrence, γ-normalised, {n}",
        f"4·N·H + 3·N + H, {n}",
        LRU,
        lru_params,
        lru_flops,
        # N complex states, in at least float32
        lambda h, size: 2 * (d_state or h) * max(size, 4),
        knobs={"d_state": d_state},
        variant=lru_spec,
    )


S4D_SPEC = s4d_spec()
LRU_SPEC = lru_spec()
