from __future__ import annotations

import itertools

import pytest
import torch

from seqbench.core.errors import ConfigError
from seqbench.models import (
    REGISTRY,
    build_model,
    core_shape,
    count_parameters,
    expected_params,
    get_arch,
    normalize_cell,
)
from seqbench.models import recurrent as rec
from seqbench.models.base import CORE_OPTIONS, CoreShape
from seqbench.models.conv import MIN_SEQ_LEN, conv_lengths
from tests.helpers import make_cell

OPTION_GRID = list(itertools.product([1, 2, 3], [False, True], [0.0, 0.3]))


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("layers", "bidirectional", "dropout"), OPTION_GRID)
def test_recurrent_core_parameters_equal_the_formula(arch, layers, bidirectional, dropout):
    shape = CoreShape(
        input_size=7, hidden=5, layers=layers, bidirectional=bidirectional, dropout=dropout
    )
    core = REGISTRY[arch].build(shape)
    assert count_parameters(core) == REGISTRY[arch].count_params(shape)


@pytest.mark.parametrize(
    ("arch", "layers", "bidirectional", "expected"),
    [
        # G·H·(I+H) + 2·G·H at I = H = 32
        ("rnn", 1, False, 2_112),
        ("lstm", 1, False, 8_448),
        ("gru", 1, False, 6_336),
        # two directions; the second layer reads both (I = 64)
        ("lstm", 2, True, 2 * (4 * 32 * 64 + 256) + 2 * (4 * 32 * 96 + 256)),
        ("gru", 3, False, 6_336 + 2 * (3 * 32 * 64 + 192)),
        # 7·I·H + H + 7·H·H + H
        ("conv1d", 1, False, 14_400),
    ],
)
def test_core_parameter_counts_are_exact(arch, layers, bidirectional, expected):
    cell = normalize_cell(
        make_cell(arch=arch, hidden=32, embed=32, layers=layers, bidirectional=bidirectional)
    )
    assert count_parameters(build_model(cell).core) == expected


def test_lstm_has_four_times_and_gru_three_times_the_simple_rnn_core():
    shape = CoreShape(input_size=32, hidden=32)
    rnn = count_parameters(REGISTRY["rnn"].build(shape))
    assert count_parameters(REGISTRY["lstm"].build(shape)) / rnn == 4.0
    assert count_parameters(REGISTRY["gru"].build(shape)) / rnn == 3.0


@pytest.mark.parametrize(
    ("arch", "gates", "keras"),
    # The seed's layers on 32 inputs as Keras counts them (model.summary()): one bias vector
    # per gate block for SimpleRNN and LSTM, G·H·(I + H) + G·H; two for GRU, whose default
    # reset_after=True keeps the recurrent bias apart, as PyTorch does.
    [("rnn", 1, 2_080), ("lstm", 4, 8_320), ("gru", 3, 6_336)],
)
def test_pytorch_cores_count_one_more_bias_vector_than_keras_simple_rnn_and_lstm(
    arch, gates, keras
):
    ours = count_parameters(REGISTRY[arch].build(CoreShape(input_size=32, hidden=32)))
    assert ours - keras == (0 if arch == "gru" else gates * 32)
    assert (ours, keras) in {(2_112, 2_080), (8_448, 8_320), (6_336, 6_336)}


@pytest.mark.parametrize("arch", list(REGISTRY))
def test_whole_model_parameters_are_embedding_core_and_head(arch):
    cell = normalize_cell(make_cell(arch=arch, seq_len=64, bidirectional=True, layers=2))
    model = build_model(cell)
    assert count_parameters(model) == expected_params(cell)
    assert count_parameters(model.adapter) == cell.vocab * cell.embed


@pytest.mark.parametrize("arch", list(REGISTRY))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_models_map_token_ids_to_one_logit(arch, bidirectional):
    cell = normalize_cell(make_cell(arch=arch, seq_len=MIN_SEQ_LEN, bidirectional=bidirectional))
    tokens = torch.randint(0, cell.vocab, (3, cell.seq_len))
    assert build_model(cell)(tokens).shape == (3, 1)


def test_unknown_architecture_names_the_valid_ones():
    with pytest.raises(
        ConfigError,
        match=r"unknown architecture .transformr.; did you mean .transformer.\? choose from: rnn, lstm, gru, conv1d",
    ):
        get_arch("transformr")


def test_conv1d_pins_the_options_it_does_not_take():
    cell = normalize_cell(
        make_cell(arch="conv1d", layers=3, bidirectional=True, dropout=0.2, recurrent_dropout=0.1)
    )
    assert (cell.layers, cell.bidirectional, cell.dropout, cell.recurrent_dropout) == (
        2,
        False,
        0.0,
        0.0,
    )
    lstm = make_cell(arch="lstm", layers=3, bidirectional=True)
    assert normalize_cell(lstm) == lstm


@pytest.mark.parametrize("arch", list(REGISTRY))
def test_a_matrix_over_options_an_arch_does_not_take_measures_it_once(arch):
    cells = {
        normalize_cell(make_cell(arch=arch, **dict(zip(CORE_OPTIONS, values, strict=True))))
        for values in itertools.product([1, 2], [False, True], [0.0, 0.2], [0.0, 0.3])
    }
    assert len(cells) == 2 ** len(REGISTRY[arch].options)  # two values of each option it takes


def test_conv1d_lengths_follow_valid_padding():
    assert conv_lengths(500) == (494, 98, 92)
    assert conv_lengths(MIN_SEQ_LEN)[2] == 1
    assert conv_lengths(MIN_SEQ_LEN - 1)[2] == 0


def _ones_mask(like, shape, p):
    return torch.ones(shape, dtype=like.dtype, device=like.device)


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, True)])
def test_the_step_loop_computes_what_the_fused_kernel_computes(
    arch, layers, bidirectional, monkeypatch
):
    # With the dropout masks forced to ones, training with recurrent dropout takes the Python
    # loop and must give the fused kernel's output to rounding.
    monkeypatch.setattr(rec, "variational_mask", _ones_mask)
    torch.manual_seed(0)
    shape = CoreShape(
        input_size=5, hidden=6, layers=layers, bidirectional=bidirectional, recurrent_dropout=0.5
    )
    core = rec.RecurrentCore(arch, shape).double()
    x = torch.randn(3, 11, 5, dtype=torch.float64)
    fused = core.eval()(x)
    looped = core.train()(x)
    torch.testing.assert_close(looped, fused, rtol=1e-10, atol=1e-12)


def test_recurrent_dropout_uses_one_mask_per_sequence_for_every_step(monkeypatch):
    seen = []
    real = rec.recurrent_scan

    def spy(kind, x, *weights, reverse=False, h_mask=None):
        seen.append(h_mask)
        return real(kind, x, *weights, reverse=reverse, h_mask=h_mask)

    monkeypatch.setattr(rec, "recurrent_scan", spy)
    core = rec.RecurrentCore(
        "gru", CoreShape(input_size=4, hidden=200, recurrent_dropout=0.25)
    ).train()
    core(torch.randn(3, 9, 4))
    (mask,) = seen
    assert mask.shape == (3, 200)  # (B, H): no time axis, so the same mask at every step
    assert mask.unique().tolist() == [0.0, pytest.approx(1 / 0.75)]


def test_input_dropout_drops_the_same_features_at_every_step():
    torch.manual_seed(1)
    core = rec.RecurrentCore(
        "lstm", CoreShape(input_size=64, hidden=4, layers=2, dropout=0.5)
    ).train()
    inputs = []
    for block in core.blocks:
        block.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach()))
    core(torch.ones(2, 7, 64))
    assert len(inputs) == 2  # every layer's input gets its own mask
    first = inputs[0]
    assert torch.equal(first, first[:, :1, :].expand_as(first))  # constant along time
    assert 0 < (first == 0).float().mean() < 1


def test_dropout_is_off_at_inference():
    core = rec.RecurrentCore(
        "gru", CoreShape(input_size=4, hidden=5, dropout=0.5, recurrent_dropout=0.5)
    ).eval()
    x = torch.randn(2, 6, 4)
    torch.testing.assert_close(core(x), core(x))


def test_bidirectional_summary_reads_each_direction_where_it_has_seen_everything():
    core = rec.RecurrentCore("rnn", CoreShape(input_size=2, hidden=3, bidirectional=True))
    y = torch.arange(2 * 5 * 6, dtype=torch.float32).reshape(2, 5, 6)
    summary = core.summary(y)
    torch.testing.assert_close(summary[:, :3], y[:, -1, :3])
    torch.testing.assert_close(summary[:, 3:], y[:, 0, 3:])


def test_kernel_provenance_names_the_path_that_ran():
    plain = rec.RecurrentCore("gru", CoreShape(input_size=2, hidden=3))
    dropped = rec.RecurrentCore("gru", CoreShape(input_size=2, hidden=3, recurrent_dropout=0.2))
    assert plain.implementation(True, "cpu", "float32") == ("aten", "")
    kernel, note = dropped.implementation(True, "cpu", "float32")
    assert kernel == "python-loop" and "recurrent dropout" in note
    # at inference the mask is off and the fused kernel runs again
    assert dropped.implementation(False, "cpu", "float32")[0] == "aten"
    if torch.backends.mkldnn.is_available():
        lstm = rec.RecurrentCore("lstm", CoreShape(input_size=2, hidden=3))
        assert lstm.implementation(False, "cpu", "float32") == ("onednn", "")
        with torch.backends.mkldnn.flags(enabled=False):
            assert lstm.implementation(False, "cpu", "float32")[0] == "aten"


def test_core_shape_carries_the_cell_options():
    cell = make_cell(
        embed=9, hidden=4, layers=2, bidirectional=True, dropout=0.1, recurrent_dropout=0.2
    )
    assert core_shape(cell) == CoreShape(9, 4, 2, True, 0.1, 0.2, seq_len=cell.seq_len)


# Keras 3.15.1's count_params() of the seed's models (KERAS_BACKEND=torch; the embedding of
# 10,000 words is 32 wide, 128 for the Conv1D stack): (arch, layers, bidirectional,
# dropout) -> parameters. SimpleRNN and LSTM keep one bias per gate block there, PyTorch two.
SEED_IN_KERAS = {
    ("rnn", 1, False, 0.0): 322_113,  # SimpleRNN(32): 2,080
    ("lstm", 1, False, 0.0): 328_353,  # LSTM(32): 8,320
    ("gru", 1, False, 0.0): 326_369,  # GRU(32), reset_after: 6,336, as PyTorch
    ("gru", 1, False, 0.2): 326_369,  # with dropout and recurrent_dropout
    ("lstm", 2, False, 0.0): 336_673,  # two stacked LSTM(32)
    ("lstm", 1, True, 0.0): 336_705,  # Bidirectional(LSTM(32))
    ("conv1d", 2, False, 0.0): 1_315_937,  # Conv1D(32, 7) -> MaxPool(5) -> Conv1D(32, 7)
}


def _seed_cells():
    from seqbench.plan.cells import plan
    from seqbench.plan.suites import resolve_config

    return plan(resolve_config("seed"))


def test_the_seed_suites_models_count_as_keras_counts_them():
    from seqbench.measure.workload import build_workload

    found = {}
    for cell in _seed_cells():
        if cell.mode != "infer":
            continue
        work = build_workload(cell)
        key = (cell.arch, cell.layers, cell.bidirectional, cell.dropout)
        found[key] = work.params_keras
        biases = {"rnn": 1, "lstm": 4}.get(cell.arch, 0)  # PyTorch's second bias vectors
        directions = 2 if cell.bidirectional else 1
        assert work.params - work.params_keras == biases * cell.hidden * cell.layers * directions
    assert found == SEED_IN_KERAS
    transformer = build_workload(make_cell(arch="transformer"))
    assert transformer.params_keras is None  # no Keras layer to count it as


def test_the_keras_counts_are_keras_own(monkeypatch):
    # Where Keras is installed (not a dependency): each seed model built in Keras itself.
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    from keras import layers

    def built(arch, stacked, bidirectional, dropout):
        drop = {"dropout": dropout, "recurrent_dropout": dropout} if dropout else {}
        if arch == "conv1d":
            core = [layers.Conv1D(32, 7, activation="relu"), layers.MaxPooling1D(5),
                    layers.Conv1D(32, 7, activation="relu"), layers.GlobalMaxPooling1D()]  # fmt: skip
        else:
            kind = {"rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}[arch]
            core = [kind(32, return_sequences=True, **drop) for _ in range(stacked - 1)]
            last = kind(32, **drop)
            core.append(layers.Bidirectional(last) if bidirectional else last)
        embed = layers.Embedding(10_000, 128 if arch == "conv1d" else 32)
        model = keras.Sequential([keras.Input(shape=(500,)), embed, *core, layers.Dense(1)])
        return model.count_params()

    assert {key: built(*key) for key in SEED_IN_KERAS} == SEED_IN_KERAS
