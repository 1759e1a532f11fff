from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

import pytest

from seqbench.core.errors import ConfigError
from seqbench.models import build_model, count_parameters
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
    # The seed's Conv1D reads an embedding of 128 (`Embedding(max_features, 128)`), its
    # recurrent models one of 32.
    assert {(c.seq_len, c.batch_size, c.hidden, c.embed, c.vocab) for c in cells} == {
        (500, 128, 32, 32, 10_000),
        (500, 128, 32, 128, 10_000),
    }
    assert {c.embed for c in cells if c.arch == "conv1d"} == {128}
    # Keras' model.summary() of the seed's Conv1D model: 1,315,937 parameters.
    assert {count_parameters(build_model(c)) for c in cells if c.arch == "conv1d"} == {1_315_937}
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
    # seed.toml: main [rnn, lstm, gru]; variants: conv1d on an embedding of 128, lstm x2
    # layers, bidirectional lstm, gru with dropout. --arch lstm keeps the LSTMs the suite has, and no variant
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
        (
            "batch_size",
            "8,",
            "--x: expected a comma-separated list, each a positive integer below 2**31, got '8,'",
        ),
        ("arch", "", "--x: expected a comma-separated list, each an architecture name, got ''"),
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


# --------------------------------------------------------------------------- values that mean nothing


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("train", "target", "-1", "target: expected a score >= 0 (no task's metric is negative), "
                                  "got -1.0"),
        ("measure", "precision", "1.5", "precision: expected a fraction in [0, 1) (0 turns it "
                                        "off), got 1.5"),
    ],
)  # fmt: skip
def test_a_value_no_run_can_use_is_refused_by_every_front(
    tmp_path, cli, section, key, value, message
):
    """The rule is the declaration's: a suite file, a flag and a keyword of seqbench.run all
    refuse the value before anything is measured."""
    import seqbench
    from seqbench.cli import app

    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_config(write(tmp_path, f"[{section}]\n{key} = {value}\n"))
    with pytest.raises(ConfigError, match=re.escape(message)):
        seqbench.run(**{key: float(value)}, task="adding", arch="rnn", seq_len=8)
    flag = "--" + key.replace("_", "-")
    result = cli.invoke(app, ["run", flag, value, "--task", "adding", "--root", str(tmp_path)])
    assert (result.exit_code, result.stderr) == (2, f"error: {flag}: {message.split(': ', 1)[1]}\n")
    assert not list(tmp_path.glob("*/results.csv"))


@pytest.mark.parametrize("precision", [0.0, 0.05, 0.999])
def test_a_precision_in_range_is_accepted(precision):
    assert resolve_config(settings={"precision": precision}).measure.precision == precision


@pytest.mark.parametrize(
    ("tasks", "refused"),
    [((), True), (("adding", "copy"), True), (("mqar(pairs=16)",), True), (("imdb",), False),
     (("adding", "imdb"), False)],
)  # fmt: skip
def test_data_is_refused_unless_a_task_of_the_run_reads_it(tasks, refused):
    axes = {"task": tasks} if tasks else {}
    build = lambda: resolve_config(axes=axes, settings={"data": "/data/imdb.npz"})  # noqa: E731
    if not refused:
        assert build().train.data == "/data/imdb.npz"
        return
    with pytest.raises(ConfigError) as info:
        build()
    assert str(info.value) == (
        "data '/data/imdb.npz': only the imdb task reads a local dataset, and this run has "
        f"none (its tasks: {', '.join(tasks) or 'none'}); leave data out, or add the imdb task"
    )


def test_data_in_a_suite_file_for_a_task_that_generates_its_own_is_refused(tmp_path, cli):
    from seqbench.cli import app

    path = write(tmp_path, "[matrix]\ntask = ['adding']\n[train]\ndata = 'imdb.npz'\n")
    small = ["--arch", "rnn", "--seq-len", "8", "--mode", "train", "--train-steps", "1",
             "--min-time", "0", "--processes", "1", "--no-ceiling"]  # fmt: skip
    result = cli.invoke(app, ["run", "--suite", str(path), *small, "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: data 'imdb.npz': only the imdb task reads")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("task", "target", "message"),
    [
        ("digits", 1.5, "target 1.5: the digits task's accuracy lies in [0, 1], so it can never "
                        "reach it"),
        ("mqar", 2.0, "target 2: the mqar task's accuracy lies in [0, 1]"),
        ("digits", 0.9, None),
        ("adding", 1.5, None),  # mse: any score >= 0 can be reached
        ("copy", 0.0, None),
    ],
)  # fmt: skip
def test_a_target_outside_the_range_of_a_tasks_metric_is_refused(task, target, message):
    build = lambda: resolve_config(axes={"task": (task,)}, settings={"target": target})  # noqa: E731
    if message is None:
        assert build().train.target == target
        return
    with pytest.raises(ConfigError, match=re.escape(message)):
        build()


def test_the_plan_pins_each_cell_as_normalize_cell_does():
    """plan() sets what an architecture and a task decide before it builds each cell (the
    pins worked out once per architecture, task and length); the cells equal those built
    whole and then normalized, for every architecture and task, a variant, a length-sized
    TCN and a parameter-matched width."""
    from seqbench.models import REGISTRY, normalize_cell
    from seqbench.plan.cells import _ASCENDING, _PLAN_ORDER, raw_cell
    from seqbench.tasks import TASKS

    matrices = (
        Axes(arch=(*REGISTRY, "mamba(d_state=8)"), seq_len=(16, 64), task=("", *TASKS)),
        Axes(arch=("rnn", "lstm"), match_params=(5000,), seq_len=(32,), hidden=(8,)),
    )
    config = SuiteConfig(matrices=matrices)
    expected: dict = {}
    for axes in matrices:
        for values in itertools.product(
            *[sorted(getattr(axes, n)) if n in _ASCENDING else getattr(axes, n)
              for n in _PLAN_ORDER]
        ):  # fmt: skip
            expected[
                normalize_cell(raw_cell(axes, dict(zip(_PLAN_ORDER, values, strict=True))))
            ] = None
    cells = plan(config)
    assert cells == list(expected)
    assert len(cells) > 100
    assert {c.task for c in cells} == {"", *TASKS}
    assert any(c.arch.startswith("mamba(") for c in cells)
    assert {c.hidden for c in cells if c.match_params} - {8}  # widths were matched


@pytest.mark.parametrize(
    "axes",
    [
        # an option conv1d does not take, bidirectional and seeds that a speed cell folds,
        # a repeated batch size, lengths given out of order, streaming
        dict(arch=("rnn", "conv1d", "lstm"), seq_len=(64, 16, 32), batch_size=(8, 4, 8),
             mode=("infer", "train", "step"), recurrent_dropout=(0.0, 0.25), seed=(0, 1),
             bidirectional=(False, True)),
        # tasks (a task's default rate as 0 and as itself), seeds, a length-sized TCN
        dict(arch=("gru", "tcn"), task=("adding", "copy"), seq_len=(50, 100), batch_size=(4, 2),
             mode=("train", "infer"), seed=(0, 1, 2), lr=(0.0, 0.001)),
        # widths matched to a parameter count: the hidden axis folds
        dict(arch=("rnn", "lstm"), match_params=(5000,), hidden=(8, 16), batch_size=(1, 2)),
    ],
)  # fmt: skip
def test_a_long_plan_made_as_it_runs_is_the_plan_made_whole(axes):
    # LongPlan never holds its cells: it makes the plan at one batch size and mode, and from
    # it the whole plan's size and which combinations make a new cell. Whatever folds two
    # combinations into one cell, it gives the same cells in the same order as plan().
    from seqbench.plan.cells import LongPlan

    config = resolve_config(axes=axes)
    whole = plan(config)
    long = LongPlan(config.matrices[0])
    assert list(long) == whole and len(long) == len(whole)
    assert list(long) == whole  # and again: each pass makes them anew
    assert long[0] == whole[0] and long[-1] == whole[-1] and long[3:6] == whole[3:6]
    for device in ("cpu", "cuda"):
        assert long.count_on(device) == sum(c.device == device for c in whole)
    batches, modes = set(axes["batch_size"]), set(axes.get("mode", ("infer", "train")))
    assert len(long.core) * len(batches) * len(modes) == len(whole)


def test_only_a_long_one_matrix_plan_is_made_as_it_runs(monkeypatch):
    from seqbench.plan import cells as cells_module
    from seqbench.plan.cells import LongPlan, make_plan

    config = resolve_config(axes={"arch": ("rnn", "gru"), "seq_len": (8, 16, 32)})
    assert isinstance(make_plan(config).cells, list)  # 12 cells: made whole
    monkeypatch.setattr(cells_module, "LONG_PLAN", 12)
    long = make_plan(config)
    assert isinstance(long.cells, LongPlan) and list(long.cells) == plan(config)
    assert long.device_names() == ["cpu"] and long.count_on("cpu") == 12
    assert isinstance(make_plan(config, long=False).cells, list)
    two = SuiteConfig(matrices=(*config.matrices, *config.matrices))
    assert isinstance(make_plan(two).cells, list)  # matrices may share cells: made whole
