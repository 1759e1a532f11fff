from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from seqbench.core.errors import ConfigError
from seqbench.plan.cells import plan
from seqbench.plan.config import Axes, SuiteConfig
from seqbench.plan.suites import parse_list, resolve_config

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return path


def test_quick_toml_is_the_built_in_default():
    from_file = resolve_config(BENCHMARKS / "quick.toml")
    built_in = resolve_config(None)
    assert dataclasses.replace(from_file, source="") == dataclasses.replace(built_in, source="")


def test_the_default_run_covers_every_seed_architecture_in_both_modes():
    cells = plan(resolve_config(None))
    assert {c.arch for c in cells} == {"rnn", "lstm", "gru", "conv1d"}
    assert {c.mode for c in cells} == {"infer", "train"}
    assert len(cells) == 16


def test_seed_suite_holds_the_seed_models():
    config = resolve_config(BENCHMARKS / "seed.toml")
    cells = plan(config)
    assert {(c.seq_len, c.batch_size, c.hidden, c.embed, c.vocab) for c in cells} == {
        (500, 128, 32, 32, 10_000)
    }
    models = {(c.arch, c.layers, c.bidirectional, c.dropout, c.recurrent_dropout) for c in cells}
    assert models == {
        ("rnn", 1, False, 0.0, 0.0),
        ("lstm", 1, False, 0.0, 0.0),
        ("gru", 1, False, 0.0, 0.0),
        ("conv1d", 2, False, 0.0, 0.0),
        ("lstm", 2, False, 0.0, 0.0),
        ("lstm", 1, True, 0.0, 0.0),
        ("gru", 1, False, 0.2, 0.2),
    }
    assert len(cells) == 14


def test_named_suites_are_found_without_a_path(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # not the repository: found through the package or source tree
    assert resolve_config("seed").label == "seed"


def test_flags_replace_an_axis_in_every_matrix():
    config = resolve_config(BENCHMARKS / "seed.toml", axes={"seq_len": (100, 200)})
    assert all(m.seq_len == (100, 200) for m in config.matrices)
    assert {c.seq_len for c in plan(config)} == {100, 200}


def test_arch_on_a_suite_with_variants_picks_among_its_matrices():
    # seed.toml: main [rnn, lstm, gru, conv1d]; variants: lstm x2 layers, bidirectional
    # lstm, gru with dropout. --arch lstm keeps the LSTMs the suite has, and no variant
    # turns into an LSTM it never had (the gru-dropout one used to).
    models = {
        (c.arch, c.layers, c.bidirectional, c.dropout)
        for c in plan(resolve_config(BENCHMARKS / "seed.toml", axes={"arch": ("lstm",)}))
    }
    assert models == {("lstm", 1, False, 0.0), ("lstm", 2, False, 0.0), ("lstm", 1, True, 0.0)}
    # copy1000: the TCN variant keeps its dropout; an architecture no matrix has joins the main.
    config = resolve_config(BENCHMARKS / "copy1000.toml", axes={"arch": ("mingru", "tcn-paper")})
    assert [(m.arch, m.dropout) for m in config.matrices] == [
        (("mingru",), (0.0,)),
        (("tcn-paper",), (0.05,)),
    ]
    lstm = resolve_config(BENCHMARKS / "copy1000.toml", axes={"arch": ("lstm",)})
    assert [(c.arch, c.dropout) for c in plan(lstm)] == [("lstm", 0.0)]


def test_flags_replace_settings():
    config = resolve_config(
        None, settings={"min_time": 2.0, "threads": 1, "flush_denormal": False, "label": "x"}
    )
    assert (config.measure.min_time, config.threads, config.flush_denormal, config.label) == (
        2.0,
        1,
        False,
        "x",
    )


def test_plan_drops_repeats_and_runs_short_sequences_first():
    config = SuiteConfig(
        matrices=(Axes(arch=("conv1d",), bidirectional=(False, True), seq_len=(256, 64)),)
    )
    cells = plan(config)
    assert [(c.seq_len, c.mode) for c in cells] == [
        (64, "infer"),
        (64, "train"),
        (256, "infer"),
        (256, "train"),
    ]


def test_auto_device_resolves_to_a_real_one():
    config = SuiteConfig(matrices=(Axes(device=("auto",)),))
    assert {c.device for c in plan(config)} <= {"cpu", "cuda"}


def test_config_round_trips_through_a_dict():
    config = resolve_config(BENCHMARKS / "seed.toml")
    assert SuiteConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[matrix]\nseq_lens = [1]\n",
            "[matrix]: unknown key 'seq_lens'; expected one of: arch, seq_len",
        ),
        (
            "[matrix]\nseq_len = ['long']\n",
            "[matrix] seq_len: expected a positive integer below 2**31, got 'long'",
        ),
        (
            "[matrix]\nseq_len = [0]\n",
            "[matrix] seq_len: expected a positive integer below 2**31, got 0",
        ),
        (
            "[matrix]\nbidirectional = [1]\n",
            "[matrix] bidirectional: expected true or false, got 1",
        ),
        ("[matrix]\ndropout = 1.0\n", "[matrix] dropout: expected a number in [0, 1), got 1.0"),
        (
            "[matrix]\narch = ['tcnn']\n",
            "[matrix] arch: unknown architecture 'tcnn'; did you mean 'tcn'? choose from: rnn, lstm, gru, conv1d",
        ),
        ("[matrix]\nmode = []\n", "[matrix] mode: the list is empty"),
        (
            "[measure]\nmin_time = -1\n",
            "[measure] min_time: expected a number of seconds >= 0, got -1.0",
        ),
        (
            "[measure]\nmin_repeats = 2.5\n",
            "[measure] min_repeats: expected a positive integer, got 2.5",
        ),
        ("[run]\nthreads = 0\n", "[run] threads: expected a positive integer, got 0"),
        ("[runs]\nthreads = 1\n", "unknown key 'runs'"),
        ("matrix = 3\n", "[matrix]: expected a table of keys, got int"),
        ("[[variants]]\nlayer = [2]\n", "[[variants]] #1: unknown key 'layer'"),
        ("[matrix\nseq_len = 1\n", "not valid TOML"),
        (
            "[measure]\nmin_repeats = 9\nmax_repeats = 3\n",
            "max_repeats (3) is below min_repeats (9)",
        ),
    ],
)
def test_bad_suite_files_are_refused_naming_file_key_and_expectation(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        resolve_config(path)
    assert message in str(info.value)
    if "max_repeats" not in message:
        assert str(path) in str(info.value)


def test_missing_and_unknown_suites(tmp_path):
    with pytest.raises(ConfigError, match="no such suite file"):
        resolve_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="suite 'nope' not found; known suites: .*quick.*seed"):
        resolve_config("nope")
    with pytest.raises(ConfigError, match="is not a file"):
        resolve_config(tmp_path)


def test_a_binary_suite_file_is_refused(tmp_path):
    path = tmp_path / "x.toml"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match="not a text file"):
        resolve_config(path)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("seq_len", "64, 256", (64, 256)),
        ("seq_len", "64,64", (64,)),
        ("arch", "lstm,gru", ("lstm", "gru")),
        ("dropout", "0,0.25", (0.0, 0.25)),
        ("mode", "train", ("train",)),
    ],
)
def test_comma_lists_from_flags(name, text, expected):
    assert parse_list(text, name, "--x") == expected


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("seq_len", "0", "--x: expected a positive integer below 2**31, got 0"),
        ("seq_len", "-5", "--x: expected a positive integer below 2**31, got -5"),
        ("seq_len", "ten", "--x: expected a positive integer below 2**31, got 'ten'"),
        ("batch_size", "8,", "--x: expected a comma-separated list"),
        ("arch", "lstm,transformer9", "--x: unknown architecture 'transformer9'"),
        ("device", "tpu", "--x: expected one of cpu, cuda, mps, auto or cuda:N, got 'tpu'"),
        ("dtype", "float64", "--x: expected one of float32, bfloat16, float16, got 'float64'"),
        ("mode", "eval", "--x: expected one of infer, train, step, got 'eval'"),
    ],
)
def test_bad_flag_values_get_one_clear_line(name, text, message):
    with pytest.raises(ConfigError) as info:
        parse_list(text, name, "--x")
    assert message in str(info.value)
    assert "\n" not in str(info.value)
