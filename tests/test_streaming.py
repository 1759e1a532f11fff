"""Streaming: a causal core fed one token at a time gives what it gives on the whole sequence."""

from __future__ import annotations

import pytest
import torch

from seqbench.core.timing import FakeClock
from seqbench.models import REGISTRY, core_shape, normalize_cell
from seqbench.models.base import CoreShape
from tests.helpers import FAST, make_cell, measure_cell

pytestmark = pytest.mark.usefixtures("one_thread")

# Every causal architecture, with options that exercise its state (stacked layers, and the
# separate per-layer blocks that input dropout makes).
CAUSAL = [
    ("rnn", {"layers": 2}),
    ("lstm", {"layers": 2}),
    ("lstm", {"layers": 2, "dropout": 0.3}),  # one fused module per layer
    ("gru", {"layers": 3}),
    ("transformer-causal", {"layers": 2}),
    ("transformer-causal", {"hidden": 128}),  # two heads
    ("tcn", {"layers": 3}),  # I != H: a 1×1 residual in the first block
    ("tcn", {"input_size": 8, "layers": 2}),  # identity residuals
    ("mingru", {"layers": 2}),
    ("minlstm", {"layers": 2}),
    ("lstm-weightdrop", {"layers": 2, "recurrent_dropout": 0.5}),
    ("mamba", {"layers": 2}),
    ("mamba2", {"layers": 2}),
    ("hawk", {"layers": 2}),
    ("hawk", {"hidden": 128}),  # two gate blocks
    ("retnet", {"layers": 2}),
    ("retnet", {"hidden": 128}),  # two heads, two decays
    ("gla", {"layers": 2}),
    ("gla", {"hidden": 128}),
    ("deltanet", {"layers": 2}),
    ("gated-deltanet", {"layers": 2}),
    ("gated-deltanet", {"hidden": 128}),
    ("mlstm", {"layers": 2}),
    ("mlstm", {"hidden": 128}),
    ("slstm", {"layers": 2}),
    ("rwkv7", {"layers": 2}),
    ("rwkv7", {"hidden": 128}),
    ("s4d", {"layers": 2}),
    ("lru", {"layers": 2}),
]


@pytest.mark.parametrize(("arch", "options"), CAUSAL, ids=lambda v: str(v))
def test_training_gradients_of_the_whole_sequence_equal_those_of_stepping(arch, options):
    # What a training step differentiates: the parallel, chunked or looped form that train
    # cells time must give the gradients the token-by-token form gives (a separate code
    # path), past one chunk (64 tokens), for the input and every parameter.
    torch.manual_seed(0)
    shape = CoreShape(**{"input_size": 5, "hidden": 8, **options})
    core = REGISTRY[arch].build(shape).double().eval()
    x = torch.randn(2, 70, shape.input_size, dtype=torch.float64, requires_grad=True)
    params = [p for p in core.parameters() if p.requires_grad]
    full = core(x)
    weights = torch.randn(full.shape, dtype=torch.float64)
    want = torch.autograd.grad((full * weights).sum(), [x, *params], allow_unused=True)
    state = core.init_state(2, x.device, x.dtype)
    steps = []
    for x_t in x.unbind(1):
        y_t, state = core.step(x_t, state)
        steps.append(y_t)
    got = torch.autograd.grad(
        (torch.stack(steps, 1) * weights).sum(), [x, *params], allow_unused=True
    )
    for g_want, g_got in zip(want, got, strict=True):
        if g_want is None or g_got is None:
            assert g_want is None and g_got is None
            continue
        torch.testing.assert_close(g_got, g_want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize(("arch", "options"), CAUSAL, ids=lambda v: str(v))
def test_stepping_token_by_token_equals_the_whole_sequence(arch, options):
    torch.manual_seed(0)
    shape = CoreShape(**{"input_size": 5, "hidden": 8, **options})
    core = REGISTRY[arch].build(shape).double().eval()
    x = torch.randn(3, 13, shape.input_size, dtype=torch.float64)
    with torch.no_grad():
        full = core(x)  # (B, T, F)
        state = core.init_state(3, x.device, x.dtype)
        for t in range(x.shape[1]):
            y_t, state = core.step(x[:, t], state)
            torch.testing.assert_close(y_t, full[:, t], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("arch", "options", "reason"),
    [
        ("conv1d", {}, "not one per input token"),
        ("gru", {"bidirectional": True}, "backward direction"),
    ],
)
def test_cores_that_cannot_stream_say_why(arch, options, reason):
    core = REGISTRY[arch].build(CoreShape(input_size=5, hidden=8, **options))
    assert reason in core.step_unsupported()
    with pytest.raises(NotImplementedError, match=reason):
        core.init_state(2, "cpu", torch.float32)


# --------------------------------------------------------------------------- state_bytes


def _state_bytes(arch: str, seq_len: int, **options) -> tuple[int | None, int]:
    """(measured on the live state by a step-mode cell, the architecture's formula)."""
    options = {"hidden": 8, **options}
    cell = normalize_cell(make_cell(arch=arch, mode="step", seq_len=seq_len, embed=5, **options))
    row = measure_cell(cell, FAST, clock=FakeClock([1.0] * 10, call=True), memory=False).row
    assert row.status == "ok", row.message
    return row.state_bytes, REGISTRY[arch].state_bytes(core_shape(cell), seq_len, 4)


@pytest.mark.parametrize(("arch", "options"), CAUSAL, ids=lambda v: str(v))
def test_a_step_row_carries_the_state_bytes_its_formula_gives(arch, options):
    options = {k: v for k, v in options.items() if k not in ("input_size",)}
    measured, formula = _state_bytes(arch, 12, **options)
    assert measured == formula > 0


@pytest.mark.parametrize("arch", ["lstm", "mamba", "gated-deltanet", "mlstm", "s4d", "tcn"])
def test_a_recurrent_state_stays_flat_in_length(arch):
    assert _state_bytes(arch, 8)[0] == _state_bytes(arch, 64)[0]


def test_a_causal_transformer_carries_a_kv_cache_that_grows_linearly_in_length():
    sizes = [_state_bytes("transformer-causal", t)[0] for t in (8, 16, 64)]
    # two blocks' worth of nothing else: keys and values of width H per token
    assert sizes == [2 * t * 8 * 4 for t in (8, 16, 64)]


def test_other_modes_have_no_state_bytes():
    row = measure_cell(
        normalize_cell(make_cell(arch="mamba", mode="infer")),
        FAST,
        clock=FakeClock([1.0] * 10, call=True),
        memory=False,
    ).row
    assert row.status == "ok" and row.state_bytes is None
