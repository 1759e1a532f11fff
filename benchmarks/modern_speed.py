"""Is each modern core's parallel form as fast as the reference it is checked against?

For every core with an oracle (tests/test_oracles.py), the script builds seqbench's block
and the oracle's, copies the weights across, and times one forward pass of each on the
same input (inference mode, one thread), at T = 256, 1024 and 4096. The two run in
alternating rounds (ours first in odd rounds, theirs first in even ones), each round timing
a few calls of each, so that whatever the machine does meanwhile falls on both; the figure
per length is the median over rounds of the ratio ours / theirs (below 1: ours is faster).

Where the oracle is a kernel rather than a block (flash-linear-attention's references,
Qwen3-Next's gated delta rule, RWKV-7's diagonal-plus-low-rank recurrence), both sides are
the kernel alone, on the same q, k, v and gates. S4D and LRU have no oracle: their FFT form is timed against their own recurrence.

    python benchmarks/modern_speed.py [--lengths 256,1024,4096] [--rounds 7] [--width 64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch

from seqbench.models import kernels
from seqbench.models.gla import retnet_decays
from seqbench.models.griffin import RecurrentBlock
from seqbench.models.mamba import MAMBA2_HEAD, MAMBA2_STATE, MAMBA_STATE, Mamba, Mamba2, dt_rank
from seqbench.models.ssm import LRU, S4D
from seqbench.models.xlstm import MLSTM, SLSTM

Pair = tuple[str, Callable[[], object], Callable[[], object]]


def _load(oracle: torch.nn.Module, ours: torch.nn.Module, rename: dict[str, str] | None = None):
    weights = dict(ours.state_dict())
    for old, new in (rename or {}).items():
        weights[new] = weights.pop(old)
    oracle.load_state_dict(weights, strict=False)
    return oracle.eval()


def _recurrence(block: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run():
        state = block.init_state(x.shape[0], x.device, x.dtype)
        for t in range(x.shape[1]):
            _, state = block.step(x[:, t], state)

    return run


def _mlstm_oracle(width: int, heads: int) -> torch.nn.Module:
    """The xlstm package's mLSTM layer (transformers' own copy when the package is absent)."""
    layer = dict(
        num_heads=heads, qk_dim_factor=0.5, v_dim_factor=1.0, use_bias=False,
        gate_soft_cap=15.0, weight_mode="single", norm_eps=1e-6,
    )  # fmt: skip
    backend = dict(
        mode="inference", eps=1e-6, inference_state_dtype="float32",
        autocast_kernel_dtype="float32",
    )  # fmt: skip
    try:
        from mlstm_kernels.torch.backend_module import mLSTMBackendConfig
        from xlstm.xlstm_large.model import mLSTMLayer, mLSTMLayerConfig
    except ImportError:
        from transformers import xLSTMConfig
        from transformers.models.xlstm.modeling_xlstm import xLSTMLayer

        return xLSTMLayer(xLSTMConfig(hidden_size=width, num_hidden_layers=1, **layer, **backend))
    config = mLSTMLayerConfig(
        embedding_dim=width, mlstm_backend=mLSTMBackendConfig(**backend), **layer
    )
    return mLSTMLayer(config)


def _slstm_oracle(ours: SLSTM) -> torch.nn.Module:
    """The xlstm package's sLSTM layer on its vanilla backend, with ours's weights."""
    from xlstm.blocks.slstm.layer import sLSTMLayer, sLSTMLayerConfig

    width, size = ours.bias.shape[1], ours.bias.shape[1] // ours.heads
    dtypes = {f"dtype{s}": "float32" for s in ("", "_b", "_r", "_w", "_g", "_s")}
    theirs = sLSTMLayer(
        sLSTMLayerConfig(
            embedding_dim=width, num_heads=ours.heads, conv1d_kernel_size=4,
            backend="vanilla", **dtypes,
        )
    )  # fmt: skip
    with torch.no_grad():
        theirs.conv1d.conv.weight.copy_(ours.conv1d.weight)
        theirs.conv1d.conv.bias.copy_(ours.conv1d.bias)
        for name, gate in (("fgate", 0), ("igate", 1), ("zgate", 2), ("ogate", 3)):
            getattr(theirs, name).weight.copy_(ours.in_weight[gate])
        kernel = ours.recurrent.permute(0, 1, 3, 2).reshape(ours.heads, 4 * size, size)
        theirs.slstm_cell._recurrent_kernel_.copy_(kernel)
        theirs.slstm_cell._bias_.copy_(ours.bias.reshape(-1))
        theirs.group_norm.weight.copy_(ours.norm_weight - 1)
    return theirs.eval()


def pairs(width: int, batch: int, length: int) -> list[Pair]:
    """(name, ours, theirs) for one length; a missing oracle leaves its core out."""
    from transformers import Mamba2Config, MambaConfig, RecurrentGemmaConfig
    from transformers.models.mamba.modeling_mamba import MambaMixer
    from transformers.models.mamba2.modeling_mamba2 import Mamba2Mixer
    from transformers.models.qwen3_next.modeling_qwen3_next import torch_chunk_gated_delta_rule
    from transformers.models.recurrent_gemma.modeling_recurrent_gemma import (
        RecurrentGemmaRecurrentBlock,
    )

    torch.manual_seed(0)
    x = torch.randn(batch, length, width)
    out: list[Pair] = []

    mamba = Mamba(width).eval()
    config = MambaConfig(
        hidden_size=width, state_size=MAMBA_STATE, expand=2, conv_kernel=4,
        time_step_rank=dt_rank(width), use_bias=False, use_conv_bias=True,
        num_hidden_layers=1,
    )  # fmt: skip
    theirs = _load(MambaMixer(config, layer_idx=0), mamba)
    out.append(("mamba (transformers MambaMixer)", lambda: mamba(x), lambda: theirs(x)))

    mamba2 = Mamba2(width).eval()
    config2 = Mamba2Config(
        hidden_size=width, state_size=MAMBA2_STATE, expand=2, head_dim=MAMBA2_HEAD,
        num_heads=mamba2.heads, n_groups=1, conv_kernel=4, use_bias=False,
        use_conv_bias=True, layer_norm_epsilon=1e-6, num_hidden_layers=1,
    )  # fmt: skip
    theirs2 = _load(Mamba2Mixer(config2, layer_idx=0), mamba2)
    out.append(("mamba2 (transformers Mamba2Mixer)", lambda: mamba2(x), lambda: theirs2(x)))

    hawk = RecurrentBlock(width).eval()
    config3 = RecurrentGemmaConfig(
        hidden_size=width, lru_width=width, num_attention_heads=hawk.rg_lru.blocks,
        conv1d_width=4, hidden_activation="gelu_pytorch_tanh", num_hidden_layers=1,
    )  # fmt: skip
    theirs3 = _load(RecurrentGemmaRecurrentBlock(config3, layer_idx=0), hawk)
    positions = torch.arange(length)[None].expand(batch, -1)
    out.append((
        "hawk (transformers RecurrentGemma block)",
        lambda: hawk(x),
        lambda: theirs3(x, positions, None, use_cache=False),
    ))  # fmt: skip

    mlstm = MLSTM(width).eval()
    theirs4 = _load(
        _mlstm_oracle(width, mlstm.heads), mlstm, {"norm_weight": "multihead_norm.weight"}
    )
    out.append(("mlstm (xlstm mLSTMLayer)", lambda: mlstm(x), lambda: theirs4(x)[0]))

    slstm = SLSTM(width).eval()
    theirs5 = _slstm_oracle(slstm)
    out.append(("slstm (xlstm sLSTMLayer, vanilla)", lambda: slstm(x), lambda: theirs5(x)))

    # Kernels: heads of 64 key channels at this width, as the blocks use.
    heads = max(1, width // 64)
    dk = width // heads
    q = torch.randn(batch, heads, length, dk)
    k = torch.nn.functional.normalize(torch.randn(batch, heads, length, dk), dim=-1)
    v = torch.randn(batch, heads, length, dk)
    beta = torch.rand(batch, heads, length)
    log_g = torch.nn.functional.logsigmoid(torch.randn(batch, heads, length)) / 16
    scale = dk**-0.5
    out.append((
        "gated delta rule (Qwen3-Next torch chunked)",
        lambda: kernels.delta_rule(q, k, v, beta, log_g, scale=scale),
        lambda: torch_chunk_gated_delta_rule(
            *(t.transpose(1, 2) for t in (q, k, v, log_g, beta))
        ),
    ))  # fmt: skip
    try:
        from fla.ops.delta_rule.naive import delta_rule_chunkwise
        from fla.ops.gla.naive import naive_recurrent_gla
        from fla.ops.retention.naive import naive_retention
    except ImportError:
        print("flash-linear-attention not importable: its kernels are left out", file=sys.stderr)
    else:
        if length % 32 == 0:
            out.append((
                "delta rule (fla naive chunkwise)",
                lambda: kernels.delta_rule(q, k, v, beta, scale=scale),
                lambda: delta_rule_chunkwise(q, k, v, beta, chunk_size=32),
            ))  # fmt: skip
        decays = retnet_decays(heads).float()[None, :, None].expand(batch, -1, length)
        out.append((
            "retention (fla naive, parallel)",
            lambda: kernels.decay_attention(q, k, v, decays, scale=scale),
            lambda: naive_retention(q, k, v),
        ))  # fmt: skip
        from fla.ops.generalized_delta_rule.dplr.naive import dplr_chunkwise

        removal = torch.nn.functional.normalize(torch.randn(batch, heads, length, dk), dim=-1)
        rate = torch.rand(batch, heads, length, dk)
        log_w = -(0.5**0.5) * torch.rand(batch, heads, length, dk)
        if length % 32 == 0:
            out.append((
                "rwkv7 dplr (fla naive chunkwise)",
                lambda: kernels.dplr_attention(q, k, v, -removal, removal * rate, log_w),
                lambda: dplr_chunkwise(q * dk**0.5, k, v, -removal, removal * rate, log_w),
            ))  # fmt: skip
        gk = torch.nn.functional.logsigmoid(torch.randn(batch, heads, length, dk)) / 16
        out.append((
            "gla (fla naive recurrent)",
            lambda: kernels.vector_decay_attention(q, k, v, gk, scale=scale),
            lambda: naive_recurrent_gla(*(t.transpose(1, 2) for t in (q, k, v, gk))),
        ))  # fmt: skip

    s4d, lru = S4D(width).eval(), LRU(width).eval()
    out.append(("s4d (its own recurrence)", lambda: s4d(x), _recurrence(s4d, x)))
    out.append(("lru (its own recurrence)", lambda: lru(x), _recurrence(lru, x)))
    return out


def _per_call(fn: Callable[[], object], budget: float) -> float:
    """Seconds per call, over enough calls to fill `budget` seconds (at least one)."""
    start, calls = time.perf_counter(), 0
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            return elapsed / calls


def compare(ours: Callable[[], object], theirs: Callable[[], object], rounds: int, budget: float):
    """(median ours s, median theirs s, median over rounds of ours/theirs)."""
    ours(), theirs()  # warm-up: allocator, oneDNN and lazy imports
    mine, other, ratios = [], [], []
    for r in range(rounds):
        order = [("ours", ours), ("theirs", theirs)]
        if r % 2:
            order.reverse()
        times = {name: _per_call(fn, budget) for name, fn in order}
        mine.append(times["ours"])
        other.append(times["theirs"])
        ratios.append(times["ours"] / times["theirs"])
    return statistics.median(mine), statistics.median(other), statistics.median(ratios)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default="256,1024,4096")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per side per round")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    lengths = [int(t) for t in args.lengths.split(",")]
    print(
        f"width {args.width}, batch {args.batch}, one thread, {args.rounds} alternating rounds; "
        "ratio = median over rounds of ours/theirs (< 1: ours faster)"
    )
    header = f"{'core (reference)':46}" + "".join(f"{'T=' + str(t):>22}" for t in lengths)
    print(header)
    results: dict[str, dict[int, str]] = {}
    with torch.inference_mode():
        for length in lengths:
            for name, ours, theirs in pairs(args.width, args.batch, length):
                mine, other, ratio = compare(ours, theirs, args.rounds, args.budget)
                cell = f"{ratio:.2f} ({mine * 1e3:.3g}/{other * 1e3:.3g} ms)"
                results.setdefault(name, {})[length] = cell
    for name, cells in results.items():
        print(f"{name:46}" + "".join(f"{cells.get(t, '-'):>22}" for t in lengths))


if __name__ == "__main__":
    main()
