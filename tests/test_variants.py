"""Variants: a built-in core with its defaults changed, `mamba(d_state=32,expand=1)`.

A variant is a whole architecture: its parameters, FLOPs and state follow its settings
(formulas held exact against the built module and the counter), its two forms stay equal,
and the name is canonical so that equal models get equal keys in saved runs.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from seqbench.cli import app
from seqbench.core.errors import ConfigError
from seqbench.core.timing import FakeClock
from seqbench.models import REGISTRY, core_shape, count_parameters, get_arch, normalize_cell
from seqbench.models.base import CoreShape
from seqbench.models.options import arch_options, split_list, split_variant
from seqbench.plan.suites import parse_list
from seqbench.storage import load_run
from tests.helpers import FAST, SMALL_FLAGS, make_cell, measure_cell

pytestmark = pytest.mark.usefixtures("one_thread")

VARIANTS = [
    "mamba(expand=1,d_state=8,d_conv=2)",
    "mamba2(d_state=16,head_dim=16)",
    "s4d(d_state=16)",
    "lru(d_state=24)",
    # heads of 8 channels: 4 heads at H = 32, 6 at 48, where the default has one
    "retnet(head_dim=8)",
    "gla(head_dim=8)",
    "deltanet(head_dim=8)",
    "gated-deltanet(head_dim=8)",
    "mlstm(head_dim=8)",
    "rwkv7(head_dim=8)",
]


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize(("hidden", "layers"), [(8, 1), (48, 2)])
def test_a_variants_parameters_equal_its_formula(name, hidden, layers):
    spec = get_arch(name)
    shape = CoreShape(input_size=5, hidden=hidden, layers=layers)
    assert count_parameters(spec.build(shape)) == spec.count_params(shape)


@pytest.mark.parametrize("name", VARIANTS)
def test_a_variants_formulas_follow_its_settings(name):
    spec, base = get_arch(name), REGISTRY[name.split("(")[0]]
    shape = CoreShape(input_size=5, hidden=48, layers=2)

    def formulas(s):
        return (s.count_params(shape), s.forward_flops(shape, 10), s.state_bytes(shape, 10, 4))

    assert formulas(spec) != formulas(base)  # the settings took effect


@pytest.mark.parametrize("name", [v for v in VARIANTS if "head_dim=8" in v])
def test_heads_follow_head_dim(name):
    assert get_arch(name).build(CoreShape(5, 48)).mixers[0].heads == 6


def test_the_settings_reach_the_built_modules():
    mixer = get_arch("mamba(expand=1,d_state=8,d_conv=2)").build(CoreShape(5, 16)).mixers[0]
    assert mixer.A_log.shape == (16, 8) and mixer.conv1d.kernel_size == (2,)
    mixer = get_arch("mamba2(d_state=16,head_dim=16)").build(CoreShape(5, 16)).mixers[0]
    assert mixer.heads == 2 and mixer.d_state == 16  # E = 32 in heads of 16
    assert get_arch("s4d(d_state=16)").build(CoreShape(5, 4)).mixers[0].C.shape == (4, 8, 2)
    assert get_arch("lru(d_state=24)").build(CoreShape(5, 4)).mixers[0].B_re.shape == (24, 4)


@pytest.mark.parametrize("name", VARIANTS)
def test_a_variant_steps_as_its_whole_sequence_form_computes(name):
    torch.manual_seed(0)
    core = get_arch(name).build(CoreShape(input_size=5, hidden=16, layers=2)).double().eval()
    x = torch.randn(2, 70, 5, dtype=torch.float64)  # past one chunk of 64
    with torch.no_grad():
        full = core(x)
        state = core.init_state(2, "cpu", torch.float64)
        for t in range(x.shape[1]):
            y_t, state = core.step(x[:, t], state)
            torch.testing.assert_close(y_t, full[:, t], rtol=1e-10, atol=1e-12)


# What the FLOP formula counts per token beyond the counter's view of one step, as in
# test_oracles.UNSEEN_BY_THE_COUNTER, at these variants' settings (E = expand·H).
UNSEEN = {
    "mamba(expand=1,d_state=8,d_conv=2)": lambda h: 4 * h * 8,
    "mamba2(d_state=16,head_dim=16)": lambda h: 2 * (2 * h) * 16,
    "s4d(d_state=16)": lambda h: 4 * h * 16,
    "lru(d_state=24)": lambda h: 12 * 24 * h + 8 * 24,
    # as test_oracles' table, with h // 8 heads
    "retnet(head_dim=8)": lambda h: 2 * h * (2 * h) // (h // 8),
    "gla(head_dim=8)": lambda h: 2 * (h // 2) * h // (h // 8),
    "deltanet(head_dim=8)": lambda h: 2 * h * h // (h // 8),
    "gated-deltanet(head_dim=8)": lambda h: 2 * h * (2 * h) // (h // 8),
    "mlstm(head_dim=8)": lambda h: 2 * (h // 2) * h // (h // 8) + 4 * (h // 2),
    "rwkv7(head_dim=8)": lambda h: 6 * h * (h // (h // 8)),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_a_variants_flops_are_what_the_counter_sees_plus_the_state_updates(name):
    from torch.utils.flop_counter import FlopCounterMode

    spec, hidden = get_arch(name), 32
    shape = CoreShape(input_size=5, hidden=hidden, layers=2)
    core = spec.build(shape).eval()
    state = core.init_state(1, "cpu", torch.float32)
    with torch.no_grad():
        _, state = core.step(torch.randn(1, 5), state)
        with FlopCounterMode(display=False) as counter:
            core.step(torch.randn(1, 5), state)
    unseen = 2 * UNSEEN[name](hidden)  # per layer
    assert counter.get_total_flops() + unseen == spec.forward_flops(shape, 1)


@pytest.mark.parametrize("name", VARIANTS)
def test_a_variants_step_row_carries_the_state_its_formula_gives(name):
    cell = normalize_cell(make_cell(arch=name, mode="step", seq_len=12, embed=5, hidden=16))
    row = measure_cell(cell, FAST, clock=FakeClock([1.0] * 10, call=True), memory=False).row
    assert row.status == "ok", row.message
    assert row.arch == cell.arch
    assert row.state_bytes == get_arch(name).state_bytes(core_shape(cell), 12, 4) > 0
    default = dataclasses.replace(cell, arch=name.split("(")[0])
    assert row.state_bytes != REGISTRY[default.arch].state_bytes(core_shape(default), 12, 4)


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("mamba(d_state=32)", "mamba(d_state=32)"),
        ("mamba( d_conv = 2 , expand=1 )", "mamba(expand=1,d_conv=2)"),  # the arch's order
        ("mamba(expand=2,d_state=32)", "mamba(d_state=32)"),  # a default is left out
        ("mamba(d_state=16)", "mamba"),  # all defaults: the architecture itself
        ("lru(d_state=24)", "lru(d_state=24)"),
    ],
)
def test_a_variant_is_named_canonically_so_equal_models_get_equal_keys(given, canonical):
    cell = normalize_cell(make_cell(arch=given))
    assert cell.arch == get_arch(given).name == canonical
    assert cell == normalize_cell(make_cell(arch=canonical))


def test_a_variant_takes_its_architectures_options():
    assert arch_options("mamba(d_state=32)") == arch_options("mamba") == {"layers", "dropout"}
    cell = normalize_cell(make_cell(arch="mamba(d_state=32)", bidirectional=True, layers=2))
    assert (cell.bidirectional, cell.layers) == (False, 2)


def test_commas_inside_brackets_do_not_split_a_list():
    assert split_list("mamba(d_state=32, expand=1),lstm") == ["mamba(d_state=32, expand=1)", "lstm"]
    assert parse_list("lstm, s4d(d_state=16)", "arch", "--arch") == ("lstm", "s4d(d_state=16)")
    assert split_variant("s4d(d_state=16)") == ("s4d", {"d_state": "16"})


def test_matching_parameters_sizes_a_variant_by_its_own_formula():
    small = normalize_cell(make_cell(arch="mamba(d_state=4)", match_params=20_000))
    large = normalize_cell(make_cell(arch="mamba(d_state=64)", match_params=20_000))
    assert small.hidden > large.hidden
    for cell in (small, large):
        count = get_arch(cell.arch).count_params(core_shape(cell))
        assert abs(count - 20_000) / 20_000 < 0.05


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("mamba(d_stat=32)", "mamba has no setting 'd_stat'; did you mean 'd_state'? it takes "
         "expand (default 2), d_state (default 16), d_conv (default 4)"),
        ("lru(N=3)", "it takes d_state (default H)"),
        ("lstm(hidden=3)", "lstm has no settings to change; these take (setting=value): mamba, "
         "mamba2, retnet, gla, s4d, lru, deltanet, gated-deltanet, mlstm, rwkv7 (seqbench "
         "archs lists their settings)"),
        ("mamba(d_state=0)", "d_state must be a whole number above 0, got '0'"),
        ("mamba(d_state=1.5)", "d_state must be a whole number above 0, got '1.5'"),
        ("mamba(d_state)", "expected setting=value in the parentheses, got 'd_state'"),
        ("mamba(d_state=2,d_state=3)", "d_state is set twice"),
        ("mamba(d_state=2", "write a variant as name(setting=value,...)"),
        ("s4d(d_state=15)", "d_state counts real numbers (N/2 complex modes): 15 is odd"),
    ],
)  # fmt: skip
def test_a_wrong_variant_is_one_clear_error(name, message):
    with pytest.raises(ConfigError, match=None) as caught:
        get_arch(name)
    assert message in str(caught.value)


def test_a_wrong_variant_on_the_command_line_is_one_line_and_exit_2(cli, tmp_path):
    result = cli.invoke(app, ["run", "--out", str(tmp_path), "--arch", "lstm,mamba(d_stat=3)"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --arch: 'mamba(d_stat=3)': mamba has no setting 'd_stat'; did you mean "
        "'d_state'? it takes expand (default 2), d_state (default 16), d_conv (default 4)\n"
    )
    assert not list(tmp_path.iterdir())  # nothing was started


def test_variants_run_save_filter_and_list_from_the_command_line(cli, tmp_path):
    out = str(tmp_path / "results")
    result = cli.invoke(
        app,
        ["run", "--out", out, "--arch", "mamba,mamba(d_state=4,expand=1)", "--seq-len", "8",
         "--mode", "infer,step", *SMALL_FLAGS],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = load_run("latest", tmp_path / "results").rows
    assert {r.arch for r in rows} == {"mamba", "mamba(expand=1,d_state=4)"}
    assert len({r.cell_id for r in rows}) == 4 and all(r.status == "ok" for r in rows)
    by_arch = {(r.arch, r.mode): r for r in rows}
    assert by_arch["mamba(expand=1,d_state=4)", "infer"].params < by_arch["mamba", "infer"].params
    shown = cli.invoke(
        app, ["show", "latest", "--root", out, "--arch", "mamba(expand=1,d_state=4)"]
    )
    assert shown.exit_code == 0, shown.output
    assert "mamba(expand=1,d_state=4)" in shown.stdout and "\n mamba " not in shown.stdout
    listing = cli.invoke(app, ["archs"])
    assert "(expand=2,d_state=16,d_conv=4)" in listing.stdout


def test_a_suite_file_names_variants_in_its_arch_list(tmp_path):
    from seqbench.plan.suites import resolve_config

    suite = tmp_path / "s.toml"
    suite.write_text('[matrix]\narch = ["mamba(d_state=32)", "s4d(d_state=8)"]\nseq_len = [16]\n')
    config = resolve_config(suite)
    assert config.matrices[0].arch == ("mamba(d_state=32)", "s4d(d_state=8)")
    suite.write_text('[matrix]\narch = ["mamba(d_state=-1)"]\n')
    with pytest.raises(ConfigError, match=r"d_state must be a whole number above 0"):
        resolve_config(suite)
