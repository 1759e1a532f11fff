"""Issue 8's axes: streaming steps, equal-parameter comparisons, plugin architectures."""

from __future__ import annotations

import pytest

from seqbench.cli import app
from seqbench.core.errors import ConfigError
from seqbench.core.timing import FakeClock
from seqbench.models import (
    REGISTRY,
    core_param_count,
    custom,
    get_arch,
    matched_width,
    normalize_cell,
)
from seqbench.plan.cells import plan
from seqbench.plan.config import Axes, SuiteConfig
from seqbench.storage import load_run
from tests.helpers import FAST, FAST_FLAGS, make_cell, measure_cell

# --------------------------------------------------------------------------- --mode step


def test_a_streaming_step_is_timed_from_one_prefilled_state(monkeypatch):
    cell = make_cell(arch="gru", mode="step", seq_len=12)
    calls = []
    from seqbench.models import recurrent

    real = recurrent.RecurrentCore.step

    def counting(self, x_t, state):
        calls.append(1)
        return real(self, x_t, state)

    monkeypatch.setattr(recurrent.RecurrentCore, "step", counting)
    row = measure_cell(cell, FAST, clock=FakeClock([1.0] * 10, call=True), memory=False).row
    assert row.status == "ok", row.message
    assert len(calls) == 11 + 1 + 3  # prefill T-1 tokens once; one warm-up step; three samples
    assert row.tokens_per_s == pytest.approx(cell.batch_size / row.median_s)
    assert row.flops_per_seq is None and row.tflops is None


@pytest.mark.parametrize(
    "arch", ["rnn", "lstm", "gru", "tcn", "mingru", "minlstm", "transformer-causal"]
)
def test_every_causal_architecture_streams(arch):
    row = measure_cell(normalize_cell(make_cell(arch=arch, mode="step", seq_len=16)), FAST).row
    assert row.status == "ok", row.message
    assert row.median_s > 0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"arch": "conv1d", "seq_len": 64}, "conv1d reads whole sequences"),
        ({"arch": "transformer"}, "use transformer-causal"),
        ({"arch": "lstm", "bidirectional": True}, "bidirectional"),
    ],
)
def test_cores_that_cannot_stream_are_skipped_with_the_reason(overrides, reason):
    row = measure_cell(normalize_cell(make_cell(mode="step", **overrides)), FAST).row
    assert (
        row.status == "skipped"
        and row.message.startswith("no streaming step")
        and reason in row.message
    )


def test_the_kv_cache_is_memory_the_step_holds():
    short = measure_cell(
        normalize_cell(make_cell(arch="transformer-causal", mode="step", seq_len=16, hidden=64)),
        FAST,
    ).row
    long = measure_cell(
        normalize_cell(make_cell(arch="transformer-causal", mode="step", seq_len=512, hidden=64)),
        FAST,
    ).row
    cache_growth = (
        2 * 2 * 4 * (512 - 16) * 64 * 4
    )  # blocks=layers(1)·(K and V)·B·Δt·H·4 bytes, at least
    assert long.peak_mem_bytes - short.peak_mem_bytes >= cache_growth * 0.5
    assert long.kernel_note.startswith("KV cache")


def test_step_mode_from_the_command_line(cli, tmp_path):
    args = [
        "run",
        "--out",
        str(tmp_path),
        "--arch",
        "rnn,conv1d",
        "--seq-len",
        "48",
        "--mode",
        "step",
        *FAST_FLAGS,
    ]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = {r.arch: r for r in load_run("latest", tmp_path).rows}
    assert rows["rnn"].status == "ok" and rows["rnn"].mode == "step"
    assert rows["conv1d"].status == "skipped"


# --------------------------------------------------------------------------- --match-params


@pytest.mark.parametrize("arch", sorted(REGISTRY))
def test_matched_widths_bring_every_core_near_the_target(arch):
    cell = normalize_cell(make_cell(arch=arch, seq_len=64, match_params=50_000, embed=32))
    count = core_param_count(cell)
    neighbours = [
        core_param_count(normalize_cell(make_cell(arch=arch, seq_len=64, embed=32, hidden=h)))
        for h in (cell.hidden - 1, cell.hidden + 1)
        if h >= 1
    ]
    assert all(abs(count - 50_000) <= abs(n - 50_000) for n in neighbours)  # the nearest width
    assert abs(count - 50_000) / 50_000 < 0.05


def test_the_lstm_gets_half_the_width_of_the_rnn_at_equal_parameters():
    # G·H·(I+H) + 2·G·H: at equal counts the LSTM (G=4) is narrower than the simple RNN (G=1)
    rnn = normalize_cell(make_cell(arch="rnn", match_params=20_000, embed=32)).hidden
    lstm = normalize_cell(make_cell(arch="lstm", match_params=20_000, embed=32)).hidden
    assert lstm < rnn
    assert (rnn, lstm) == (
        matched_width(make_cell(arch="rnn", embed=32), 20_000),
        matched_width(make_cell(arch="lstm", embed=32), 20_000),
    )


def test_match_params_replaces_the_hidden_axis_and_keys_the_cell():
    config = SuiteConfig(
        matrices=(
            Axes(
                arch=("rnn", "gru"),
                hidden=(8, 16),
                match_params=(10_000,),
                seq_len=(64,),
                mode=("infer",),
            ),
        )
    )
    cells = plan(config)
    assert len(cells) == 2  # both hidden values map to the same matched width
    assert all(c.cell_id.endswith("-P10000") for c in cells)


def test_an_unreachable_target_is_one_line():
    with pytest.raises(ConfigError, match="stays below it even at width"):
        matched_width(make_cell(arch="rnn"), 10**13)


def test_match_params_from_the_command_line(cli, tmp_path):
    args = ["run", "--out", str(tmp_path), "--arch", "rnn,lstm", "--seq-len", "16", "--mode", "infer",
            "--match-params", "5000", *FAST_FLAGS]  # fmt: skip
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = load_run("latest", tmp_path).rows
    assert all(abs(r.core_params - 5000) < 300 for r in rows)
    assert {r.match_params for r in rows} == {5000}


# --------------------------------------------------------------------------- plugins


class FakeEntryPoint:
    def __init__(self, name, value, target):
        self.name, self.value, self.group, self._target = (
            name,
            value,
            custom.ENTRY_POINT_GROUP,
            target,
        )

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


@pytest.fixture
def plugins(monkeypatch):
    from tests import fault_archs

    points = [
        FakeEntryPoint("acme-rnn", "acme.models:core", fault_archs.broken),
        FakeEntryPoint(
            "acme-broken", "acme.missing:core", ImportError("No module named 'acme.missing'")
        ),
    ]
    monkeypatch.setattr(
        custom.importlib.metadata,
        "entry_points",
        lambda group=None: [p for p in points if p.group == group],
    )
    custom.load_plugin.cache_clear()
    yield
    custom.load_plugin.cache_clear()


def test_an_installed_package_can_register_an_architecture_by_name(plugins):
    spec = get_arch("acme-rnn")
    assert spec.name == "acme-rnn" and spec.count_params is None
    row = measure_cell(make_cell(arch="acme-rnn", seq_len=32), FAST).row
    assert row.status == "ok", row.message


def test_plugin_names_are_offered_and_a_broken_plugin_is_one_line(plugins):
    with pytest.raises(
        ConfigError,
        match=r"choose from: .*acme-broken, acme-rnn, hf:<model_type> \(transformers\), or "
        "package.module:factory",
    ):
        get_arch("nope")
    with pytest.raises(
        ConfigError,
        match="acme-broken: its entry point 'acme.missing:core' fails to load: ImportError",
    ):
        get_arch("acme-broken")


def test_plugins_are_looked_up_in_the_seqbench_architectures_group(monkeypatch):
    asked = []

    def entry_points(group=None):
        asked.append(group)
        return [FakeEntryPoint("acme-rnn", "acme.models:core", lambda shape: None)]

    monkeypatch.setattr(custom.importlib.metadata, "entry_points", entry_points)
    custom.load_plugin.cache_clear()
    try:
        assert custom.plugin_names() == ["acme-rnn"]
        assert custom.load_plugin("other") is None
    finally:
        custom.load_plugin.cache_clear()
    assert asked == ["seqbench.architectures", "seqbench.architectures"]
