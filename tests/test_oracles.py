"""The modern cores against implementations seqbench did not write, weights copied across.

Oracles: `transformers`' pure-PyTorch paths (Mamba's mixer, Mamba-2's, RecurrentGemma's
recurrent block, xLSTM's mLSTM layer, Qwen3-Next's chunked gated delta rule),
flash-linear-attention's naive references (retention, GLA, the delta rules, RWKV-7's
diagonal-plus-low-rank recurrence) and the
`xlstm` package's sLSTM layer, all from
the dev extra. A test whose oracle cannot be imported skips and says why. S4D and LRU have
no oracle that installs from a package registry: they are checked against two steps worked
by hand.
"""

from __future__ import annotations

import math

import pytest
import torch

from seqbench.models import REGISTRY
from seqbench.models.base import CoreShape
from seqbench.models.gla import GatedLinearAttention, Retention, retnet_decays
from seqbench.models.griffin import RecurrentBlock
from seqbench.models.kernels import (
    decay_attention,
    delta_rule,
    dplr_attention,
    vector_decay_attention,
)
from seqbench.models.mamba import MAMBA2_HEAD, MAMBA2_STATE, MAMBA_STATE, Mamba, Mamba2, dt_rank
from seqbench.models.ssm import LRU, S4D
from seqbench.models.xlstm import MLSTM, SLSTM

pytestmark = pytest.mark.usefixtures("one_thread")

MODERN = [
    "mamba",
    "mamba2",
    "hawk",
    "retnet",
    "gla",
    "deltanet",
    "gated-deltanet",
    "mlstm",
    "slstm",
    "rwkv7",
    "s4d",
    "lru",
]

# Lengths that are not whole chunks (64) and one that is shorter than a chunk.
LENGTHS = [5, 100]


def _oracle(module: str):
    return pytest.importorskip(module, reason=f"{module} is the oracle (pip install -e '.[dev]')")


def _copy_into(oracle: torch.nn.Module, ours: torch.nn.Module) -> None:
    missing, unexpected = oracle.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected, unexpected
    assert not [m for m in missing if not m.endswith("inv_freq")], missing


def _close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    torch.testing.assert_close(ours, theirs, rtol=2e-4, atol=2e-5)


# The defaults, and a variant with every setting changed (`mamba(expand=1,d_state=8,d_conv=2)`).
MAMBA_SETTINGS = [
    {"expand": 2, "d_state": MAMBA_STATE, "d_conv": 4},
    {"expand": 1, "d_state": 8, "d_conv": 2},
]


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("settings", MAMBA_SETTINGS, ids=str)
def test_mamba_equals_transformers_mamba_mixer(length, settings):
    _oracle("transformers")
    from transformers import MambaConfig
    from transformers.models.mamba.modeling_mamba import MambaMixer

    torch.manual_seed(0)
    width = 24
    ours = Mamba(width, **settings).eval()
    config = MambaConfig(
        hidden_size=width,
        state_size=settings["d_state"],
        expand=settings["expand"],
        conv_kernel=settings["d_conv"],
        time_step_rank=dt_rank(width),
        use_bias=False,
        use_conv_bias=True,
        hidden_act="silu",
        num_hidden_layers=1,
    )
    theirs = MambaMixer(config, layer_idx=0).eval()
    _copy_into(theirs, ours)
    x = torch.randn(2, length, width)
    with torch.no_grad():
        _close(ours(x), theirs(x))


MAMBA2_SETTINGS = [
    {"expand": 2, "d_state": MAMBA2_STATE, "d_conv": 4, "head_dim": MAMBA2_HEAD},
    {"expand": 1, "d_state": 16, "d_conv": 3, "head_dim": 16},
]


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("settings", MAMBA2_SETTINGS, ids=str)
def test_mamba2_equals_transformers_mamba2_mixer(length, settings):
    _oracle("transformers")
    from transformers import Mamba2Config
    from transformers.models.mamba2.modeling_mamba2 import Mamba2Mixer

    torch.manual_seed(0)
    width = 64  # E = 128: two heads of 64 (defaults); E = 64: four heads of 16 (the variant)
    ours = Mamba2(width, **settings).eval()
    inner = settings["expand"] * width
    config = Mamba2Config(
        hidden_size=width,
        state_size=settings["d_state"],
        expand=settings["expand"],
        head_dim=settings["head_dim"],
        num_heads=inner // settings["head_dim"],
        n_groups=1,
        conv_kernel=settings["d_conv"],
        use_bias=False,
        use_conv_bias=True,
        hidden_act="silu",
        layer_norm_epsilon=1e-6,
        chunk_size=32,
        num_hidden_layers=1,
    )
    theirs = Mamba2Mixer(config, layer_idx=0).eval()
    _copy_into(theirs, ours)
    x = torch.randn(2, length, width)
    with torch.no_grad():
        _close(ours(x), theirs(x))


@pytest.mark.parametrize("length", LENGTHS)
def test_hawk_block_equals_recurrentgemma_recurrent_block(length):
    _oracle("transformers")
    from transformers import RecurrentGemmaConfig
    from transformers.models.recurrent_gemma.modeling_recurrent_gemma import (
        RecurrentGemmaRecurrentBlock,
    )

    torch.manual_seed(0)
    width = 128  # two gate blocks of 64
    ours = RecurrentBlock(width).eval()
    config = RecurrentGemmaConfig(
        hidden_size=width,
        lru_width=width,
        num_attention_heads=ours.rg_lru.blocks,
        conv1d_width=4,
        hidden_activation="gelu_pytorch_tanh",
        num_hidden_layers=1,
        intermediate_size=2 * width,
    )
    theirs = RecurrentGemmaRecurrentBlock(config, layer_idx=0).eval()
    _copy_into(theirs, ours)
    x = torch.randn(2, length, width)
    positions = torch.arange(length)[None].expand(2, -1)
    with torch.no_grad():
        expected, _ = theirs(x, positions, None, use_cache=False)
        _close(ours(x), expected)


@pytest.mark.parametrize("length", LENGTHS)
def test_retention_equals_flash_linear_attention_naive_retention(length):
    _oracle("fla")
    from fla.ops.retention.naive import naive_retention

    torch.manual_seed(0)
    batch, heads, dk, dv = 2, 4, 8, 16
    q, k = torch.randn(batch, heads, length, dk), torch.randn(batch, heads, length, dk)
    v = torch.randn(batch, heads, length, dv)
    log_g = retnet_decays(heads).float()[None, :, None].expand(batch, -1, length)
    ours, _ = decay_attention(q, k, v, log_g, scale=dk**-0.5)
    _close(ours, naive_retention(q, k, v))


@pytest.mark.parametrize("length", LENGTHS)
def test_gla_equals_flash_linear_attention_naive_recurrent_gla(length):
    _oracle("fla")
    from fla.ops.gla.naive import naive_recurrent_gla

    torch.manual_seed(0)
    batch, heads, dk, dv = 2, 3, 8, 16
    q, k = torch.randn(batch, length, heads, dk), torch.randn(batch, length, heads, dk)
    v = torch.randn(batch, length, heads, dv)
    gk = torch.nn.functional.logsigmoid(torch.randn(batch, length, heads, dk)) / 16
    expected, _ = naive_recurrent_gla(q, k, v, gk)
    heads_first = [t.transpose(1, 2) for t in (q, k, v, gk)]
    ours, _ = vector_decay_attention(*heads_first, scale=dk**-0.5)
    _close(ours.transpose(1, 2), expected)


MLSTM_CASES = [("inference", 5), ("inference", 100), ("train", 96)]


def _mlstm_pair(mode: str, build_oracle) -> tuple[MLSTM, torch.nn.Module]:
    torch.manual_seed(0)
    width = 128  # two heads
    ours = MLSTM(width).eval()
    backend = dict(
        mode=mode,
        chunk_size=16,
        eps=1e-6,
        inference_state_dtype="float32",
        autocast_kernel_dtype="float32",
    )
    layer = dict(
        num_heads=ours.heads,
        qk_dim_factor=0.5,
        v_dim_factor=1.0,
        use_bias=False,
        gate_soft_cap=15.0,
        weight_mode="single",
        norm_eps=1e-6,
    )
    theirs = build_oracle(width, layer, backend).eval()
    weights = dict(ours.state_dict())
    weights["multihead_norm.weight"] = weights.pop("norm_weight")
    theirs.load_state_dict(weights, strict=True)
    return ours, theirs


# 'inference' runs the reference's chunkwise kernel, then its recurrent step for the tail;
# 'train' the chunkwise kernel alone (whole chunks only).


@pytest.mark.parametrize(("mode", "length"), MLSTM_CASES)
def test_mlstm_equals_the_xlstm_package_mlstm_layer(mode, length):
    _oracle("xlstm")
    from mlstm_kernels.torch.backend_module import mLSTMBackendConfig
    from xlstm.xlstm_large.model import mLSTMLayer, mLSTMLayerConfig

    def build(width, layer, backend):
        config = mLSTMLayerConfig(
            embedding_dim=width, mlstm_backend=mLSTMBackendConfig(**backend), **layer
        )
        return mLSTMLayer(config)

    ours, theirs = _mlstm_pair(mode, build)
    x = torch.randn(2, length, ours.v.in_features)
    with torch.no_grad():
        _close(ours(x), theirs(x)[0])


@pytest.mark.parametrize(("mode", "length"), MLSTM_CASES)
def test_mlstm_equals_transformers_own_xlstm_layer(mode, length):
    _oracle("transformers")
    from transformers.models.xlstm import modeling_xlstm

    if not hasattr(modeling_xlstm, "xLSTMLayer"):
        pytest.skip("transformers uses the xlstm package's layer when it is installed")
    from transformers import xLSTMConfig

    def build(width, layer, backend):
        config = xLSTMConfig(hidden_size=width, num_hidden_layers=1, **layer, **backend)
        return modeling_xlstm.xLSTMLayer(config)

    ours, theirs = _mlstm_pair(mode, build)
    x = torch.randn(2, length, ours.v.in_features)
    with torch.no_grad():
        _close(ours(x), theirs(x)[0])


def _mixing_slstm(width: int) -> SLSTM:
    """An sLSTM whose recurrent matrix is not its initial zeros, so memory mixing is tested."""
    torch.manual_seed(0)
    core = SLSTM(width).eval()
    with torch.no_grad():
        core.recurrent.normal_(0.0, 0.3)
        core.bias.normal_(0.0, 1.0)
        core.norm_weight.uniform_(0.5, 1.5)
    return core


@pytest.mark.parametrize("length", LENGTHS)
def test_slstm_equals_the_xlstm_package_slstm_layer(length):
    _oracle("xlstm")
    from xlstm.blocks.slstm.layer import sLSTMLayer, sLSTMLayerConfig

    width = 128  # two heads
    ours = _mixing_slstm(width)
    dtypes = {f"dtype{s}": "float32" for s in ("", "_b", "_r", "_w", "_g", "_s")}
    config = sLSTMLayerConfig(
        embedding_dim=width, num_heads=ours.heads, conv1d_kernel_size=4, backend="vanilla", **dtypes
    )
    theirs = sLSTMLayer(config).eval()
    size = width // ours.heads
    with torch.no_grad():
        theirs.conv1d.conv.weight.copy_(ours.conv1d.weight)
        theirs.conv1d.conv.bias.copy_(ours.conv1d.bias)
        # the package's layer feeds its `fgate` projection to the input gate and `igate` to
        # the forget gate (layer.py: `i, f, z, o = self.fgate(...), self.igate(...), ...`)
        theirs.fgate.weight.copy_(ours.in_weight[0])
        theirs.igate.weight.copy_(ours.in_weight[1])
        theirs.zgate.weight.copy_(ours.in_weight[2])
        theirs.ogate.weight.copy_(ours.in_weight[3])
        # its kernel is (heads, gate·out, in); ours (heads, gate, in, out)
        kernel = ours.recurrent.permute(0, 1, 3, 2).reshape(ours.heads, 4 * size, size)
        theirs.slstm_cell._recurrent_kernel_.copy_(kernel)
        theirs.slstm_cell._bias_.copy_(ours.bias.reshape(-1))  # gate-major, as ours
        theirs.group_norm.weight.copy_(ours.norm_weight - 1)  # its norm scales by 1 + weight
    x = torch.randn(2, length, width)
    with torch.no_grad():
        _close(ours(x), theirs(x))


def test_slstm_steps_equal_its_forward_with_memory_mixing():
    core = _mixing_slstm(128).double()
    x = torch.randn(2, 9, 128, dtype=torch.float64)
    with torch.no_grad():
        full = core(x)
        state = core.init_state(2, "cpu", torch.float64)
        for t in range(9):
            y, state = core.step(x[:, t], state)
            torch.testing.assert_close(y, full[:, t], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("length", LENGTHS)
def test_rwkv7_kernel_equals_flash_linear_attention_dplr_recurrence(length):
    # RWKV-7 as fla runs it: α = -κ̂, β = κ̂ ⊙ a, decays in [e^-0.61, 1]. fla's RWKV-7 layer
    # itself runs Triton kernels only, so the block around the kernel is ours alone.
    _oracle("fla")
    from fla.ops.generalized_delta_rule.dplr.naive import dplr_recurrence

    torch.manual_seed(0)
    batch, heads, dk, dv = 2, 3, 8, 8
    r, k = torch.randn(batch, heads, length, dk), torch.randn(batch, heads, length, dk)
    v = torch.randn(batch, heads, length, dv)
    removal = torch.nn.functional.normalize(torch.randn(batch, heads, length, dk), dim=-1)
    rate = torch.rand(batch, heads, length, dk)
    log_w = -math.exp(-0.5) * torch.rand(batch, heads, length, dk)
    expected, _ = dplr_recurrence(r * dk**0.5, k, v, -removal, removal * rate, log_w)
    ours, _ = dplr_attention(r, k, v, -removal, removal * rate, log_w)
    _close(ours, expected)


def _delta_inputs(length: int, heads: int = 3, dk: int = 8, dv: int = 16):
    torch.manual_seed(0)
    batch = 2
    q = torch.randn(batch, heads, length, dk)
    k = torch.nn.functional.normalize(torch.randn(batch, heads, length, dk), dim=-1)
    v = torch.randn(batch, heads, length, dv)
    beta = torch.rand(batch, heads, length)
    log_g = torch.nn.functional.logsigmoid(torch.randn(batch, heads, length))
    return q, k, v, beta, log_g


@pytest.mark.parametrize("length", LENGTHS)
def test_deltanet_equals_flash_linear_attention_delta_rule_recurrence(length):
    _oracle("fla")
    from fla.ops.delta_rule.naive import delta_rule_recurrence

    q, k, v, beta, _ = _delta_inputs(length)
    expected, _ = delta_rule_recurrence(q, k, v, beta)
    ours, _ = delta_rule(q, k, v, beta, scale=q.shape[-1] ** -0.5)
    _close(ours, expected)


@pytest.mark.parametrize("length", LENGTHS)
def test_gated_deltanet_equals_qwen3_next_chunked_gated_delta_rule(length):
    _oracle("transformers")
    from transformers.models.qwen3_next.modeling_qwen3_next import torch_chunk_gated_delta_rule

    q, k, v, beta, log_g = _delta_inputs(length)
    expected, _ = torch_chunk_gated_delta_rule(
        *(t.transpose(1, 2) for t in (q, k, v, log_g, beta)), chunk_size=32
    )
    ours, _ = delta_rule(q, k, v, beta, log_g, scale=q.shape[-1] ** -0.5)
    _close(ours.transpose(1, 2), expected)


@pytest.mark.parametrize("length", LENGTHS)
def test_gated_deltanet_equals_flash_linear_attention_naive_recurrence(length):
    _oracle("fla")
    from fla.ops.gated_delta_rule.naive import naive_recurrent_gated_delta_rule

    q, k, v, beta, log_g = _delta_inputs(length)
    expected, _ = naive_recurrent_gated_delta_rule(
        *(t.transpose(1, 2) for t in (q, k, v, beta, log_g))
    )
    ours, _ = delta_rule(q, k, v, beta, log_g, scale=q.shape[-1] ** -0.5)
    _close(ours.transpose(1, 2), expected)


def test_the_retention_and_gla_blocks_use_the_checked_kernels():
    # The blocks around the kernels are ours; they at least run the kernels the oracles check.
    assert Retention.form == GatedLinearAttention.form == "chunked"


# --------------------------------------------------------------------------- by hand


def test_s4d_two_steps_by_hand():
    torch.manual_seed(0)
    width = 1
    s4d = S4D(width, d_state=2).double()  # one complex mode
    with torch.no_grad():
        s4d.log_dt.fill_(math.log(0.5))
        s4d.log_A_real.fill_(math.log(0.5))
        s4d.A_imag.fill_(0.0)  # A = -0.5, real
        s4d.C.copy_(torch.tensor([[[1.0, 0.0]]]))
        s4d.D.fill_(0.25)
        s4d.out.weight.copy_(torch.tensor([[1.0], [0.0]]))
        s4d.out.bias.copy_(torch.tensor([0.0, 50.0]))  # GLU's gate σ(50) = 1
    # Δ = 0.5, A = -0.5: Ā = e^(-0.25), B̄ = (e^(-0.25) - 1) / -0.5; K_l = 2·B̄·Ā^l
    a_bar = math.exp(-0.25)
    b_bar = (a_bar - 1) / -0.5
    u = [1.0, 2.0]
    y0 = 2 * b_bar * u[0] + 0.25 * u[0]
    y1 = 2 * b_bar * (a_bar * u[0] + u[1]) + 0.25 * u[1]
    gelu = torch.nn.functional.gelu
    expected = gelu(torch.tensor([y0, y1], dtype=torch.float64)) * torch.sigmoid(
        torch.tensor(50.0, dtype=torch.float64)
    )
    x = torch.tensor(u, dtype=torch.float64)[None, :, None]
    with torch.no_grad():
        torch.testing.assert_close(s4d(x)[0, :, 0], expected)


def test_lru_two_steps_by_hand():
    lru = LRU(1, d_state=1).double()
    with torch.no_grad():
        # λ = exp(-exp(ν) + i·exp(θ)) = 0.5·e^{iπ/2} = 0.5i; γ = exp(γ_log) = 2 (by hand)
        lru.nu_log.fill_(math.log(math.log(2.0)))
        lru.theta_log.fill_(math.log(math.pi / 2))
        lru.gamma_log.fill_(math.log(2.0))
        lru.B_re.fill_(1.0)
        lru.B_im.fill_(0.0)
        lru.C_re.fill_(0.0)
        lru.C_im.fill_(1.0)  # C = i: y = Re(i·x) = -Im(x)
        lru.D.fill_(0.0)
    # x0 = γ·u0 = 2, x1 = λ·x0 + γ·u1 = 0.5i·2 + 6 = 6 + i: y = (-Im 2, -Im(6 + i)) = (0, -1)
    x = torch.tensor([1.0, 3.0], dtype=torch.float64)[None, :, None]
    with torch.no_grad():
        torch.testing.assert_close(lru(x)[0, :, 0], torch.tensor([0.0, -1.0], dtype=torch.float64))


@pytest.mark.parametrize("arch", MODERN)
def test_the_parallel_form_holds_at_lengths_that_are_not_whole_chunks(arch):
    torch.manual_seed(0)
    core = REGISTRY[arch].build(CoreShape(input_size=3, hidden=8)).double().eval()
    x = torch.randn(2, 70, 3, dtype=torch.float64)
    with torch.no_grad():
        full = core(x)
        # the first 33 tokens alone give what the whole sequence gives at those positions
        torch.testing.assert_close(core(x[:, :33]), full[:, :33], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("arch", MODERN)
def test_every_modern_core_trains_in_bfloat16(arch):
    torch.manual_seed(0)
    core = REGISTRY[arch].build(CoreShape(input_size=3, hidden=16)).to(torch.bfloat16)
    x = torch.randn(2, 70, 3, dtype=torch.bfloat16)
    y = core(x)
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()
    y.float().square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in core.parameters() if p.grad is not None)


# --------------------------------------------------------------------------- FLOPs


def _heads(h: int) -> int:
    return max(1, h // 64)  # at the widths below, 64 divides H whenever H >= 64


# What a core's FLOP formula counts per token beyond what torch.utils.flop_counter sees in
# its recurrent step (which counts matmuls, einsums and the convolutions' windows): the
# state's elementwise multiply-adds, 2 per multiply-add, as each family's docstring says.
UNSEEN_BY_THE_COUNTER = {
    "mamba": lambda h: 4 * (2 * h) * 16,  # decay and ΔxB update of the (E, N) state
    "mamba2": lambda h: 2 * (2 * h) * 128,  # the rank-one update of the (N, P) states
    "hawk": lambda h: 0,  # the formula counts no elementwise work
    "retnet": lambda h: 2 * h * (2 * h) // _heads(h),  # rank-one update, d_k × d_v per head
    "gla": lambda h: 2 * (h // 2) * h // _heads(h),
    "deltanet": lambda h: 2 * h * h // _heads(h),
    "gated-deltanet": lambda h: 2 * h * (2 * h) // _heads(h),
    "mlstm": lambda h: 2 * (h // 2) * h // _heads(h) + 4 * (h // 2),  # C, and n and n·q
    "slstm": lambda h: 0,
    "rwkv7": lambda h: 6 * h * (h // _heads(h)),  # decay, rank-one correction and write
    "s4d": lambda h: 4 * h * 64,  # N/2 complex modes: 8 per mode and channel
    # the counter takes a complex matmul for a real one: B u and C x are 4× what it sees
    "lru": lambda h: 12 * h * h + 8 * h,
}


@pytest.mark.parametrize("arch", MODERN)
@pytest.mark.parametrize("hidden", [16, 128])
def test_flop_formulas_are_what_the_counter_sees_in_a_step_plus_the_state_updates(arch, hidden):
    from torch.utils.flop_counter import FlopCounterMode

    shape = CoreShape(input_size=5, hidden=hidden, layers=2)
    core = REGISTRY[arch].build(shape).eval()
    state = core.init_state(1, "cpu", torch.float32)
    with torch.no_grad():
        _, state = core.step(torch.randn(1, 5), state)  # past the first token's special case
        with FlopCounterMode(display=False) as counter:
            core.step(torch.randn(1, 5), state)
    counted = counter.get_total_flops() + 2 * UNSEEN_BY_THE_COUNTER[arch](hidden)
    assert counted == REGISTRY[arch].forward_flops(shape, 1)
