"""The one configuration object, and the declaration of every axis and run setting.

`SuiteConfig` holds one or more matrices (`Axes`), how cells are timed and trained
(`core.settings`), and the run's settings. Each axis and setting is a field declared once
with `setting` (its default, rule, help and where it may be given; see `core.settings`),
and the rules every suite key and flag obeys (`AXIS_RULES`, `RUN_RULES`, ...) are derived
from those declarations. `plan.suites.resolve_config` builds a configuration from a suite
file and flags; `apply_overrides` lays flags over one; `plan` turns it into the run's cells,
in run order; `SuiteConfig.request` turns one cell into the `CellRequest` that measures it.
A flag replaces its axis or setting everywhere in the suite.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from seqbench.core import devices
from seqbench.core.errors import SeqbenchError
from seqbench.core.request import CellRequest, ModuleSpec
from seqbench.core.schema import DTYPES, MODES, Cell
from seqbench.core.settings import (
    ACCURACY,
    BOOL,
    FAULTS,
    FRACTION,
    MATRIX,
    OUTPUT,
    POSITIVE_INT,
    POSITIVE_SECONDS,
    PROCESS,
    SCALE_OUT,
    SEED,
    SIZE,
    TIMING,
    MeasureSettings,
    ProcessSettings,
    Rule,
    TrainSettings,
    declared_field,
    rules_of,
    setting,
)
from seqbench.plan.combined import check_combination

if TYPE_CHECKING:
    from seqbench.storage import Run

__all__ = [
    "Axes",
    "MeasureSettings",
    "SuiteConfig",
    "TrainSettings",
    "apply_overrides",
    "config_differences",
]


def _arch_ok(value: str) -> bool:
    """Known, or named as a user factory is ('package.module:factory', imported and built
    at the first cell's shape once the whole configuration is known: plan.combined); else
    a ConfigError that says why."""
    from seqbench.models import get_arch
    from seqbench.models.custom import check_factory_name

    if ":" in value and not value.startswith("hf:"):  # the user's code: not imported here
        check_factory_name(value)
    else:  # seqbench's, a plugin's, or transformers' (hf:): known without building one
        get_arch(value)
    return True


def _task_ok(value: str) -> bool:
    from seqbench.tasks import new_task

    if value:
        new_task(value)  # raises with the list of tasks
    return True


def _device_ok(value: str) -> bool:
    return value in devices.DEVICE_CHOICES or re.fullmatch(r"cuda:\d+", value) is not None


def axis(default: tuple, rule: Rule, help: str, **declared: Any) -> Any:
    """An axis of the matrix: a list of values, each checked against `rule` (see
    `core.settings.setting`); on the command line a comma list, or a switch."""
    return setting(default, rule, help, panel=declared.pop("panel", MATRIX), **declared)


@dataclass(frozen=True)
class Axes:
    """One matrix: the cells are the product of these lists. Defaults are the quick suite."""

    arch: tuple[str, ...] = axis(
        ("rnn", "lstm", "gru", "conv1d"), Rule(str, "an architecture name", _arch_ok),
        "Architectures, comma-separated (see `seqbench archs`); a variant changes an "
        "architecture's settings, 'mamba(d_state=32,expand=1)'; or package.module:factory",
    )  # fmt: skip
    seq_len: tuple[int, ...] = axis((64, 256), SIZE, "Sequence lengths, comma-separated")
    batch_size: tuple[int, ...] = axis((32,), SIZE, "Batch sizes, comma-separated")
    hidden: tuple[int, ...] = axis(
        (32,), SIZE, "Hidden units (filters for conv1d), comma-separated"
    )
    layers: tuple[int, ...] = axis((1,), POSITIVE_INT, "Stacked recurrent layers, comma-separated")
    bidirectional: tuple[bool, ...] = axis(
        (False,), BOOL, "Bidirectional recurrent layers", switch=True
    )
    dropout: tuple[float, ...] = axis(
        (0.0,), FRACTION, "Input dropout rates in [0, 1), one mask per sequence"
    )
    recurrent_dropout: tuple[float, ...] = axis(
        (0.0,), FRACTION,
        "Variational recurrent dropout rates in [0, 1) (training only; runs a per-step loop)",
    )  # fmt: skip
    vocab: tuple[int, ...] = axis(
        (10_000,), Rule(int, "an integer from 2 below 2**31", lambda v: 2 <= v < 2**31),
        "Vocabulary sizes of the token embedding",
    )  # fmt: skip
    embed: tuple[int, ...] = axis((32,), SIZE, "Embedding widths")
    device: tuple[str, ...] = axis(
        ("cpu",), Rule(str, f"one of {', '.join(devices.DEVICE_CHOICES)} or cuda:N", _device_ok),
        "Devices: cpu, cuda, cuda:N, mps or auto, comma-separated",
    )  # fmt: skip
    dtype: tuple[str, ...] = axis(
        ("float32",), Rule(str, f"one of {', '.join(DTYPES)}", lambda v: v in DTYPES),
        "float32, bfloat16 or float16 (autocast), comma-separated",
    )  # fmt: skip
    mode: tuple[str, ...] = axis(
        ("infer", "train"), Rule(str, f"one of {', '.join(MODES)}", lambda v: v in MODES),
        "infer, train, step (one token of streaming inference, state carried), comma-separated",
    )  # fmt: skip
    # "" (or "none" in files and flags): speed only
    task: tuple[str, ...] = axis(
        ("",), Rule(str, "a task name or none", _task_ok),
        "Accuracy tasks, comma-separated (`seqbench tasks` lists them), or none; a variant "
        "sets a task's sizes: 'mqar(pairs=16,vocab=256)'",
        panel=ACCURACY, default_text="none: speed only",
    )  # fmt: skip
    compile: tuple[bool, ...] = axis(
        (False,), BOOL,
        "Run the models through torch.compile (compile time is reported apart, never timed)",
        switch=True, panel=PROCESS,
    )  # fmt: skip
    # > 0: choose each arch's hidden to match this many core parameters
    match_params: tuple[int, ...] = axis(
        (0,), Rule(int, "a parameter count >= 0 (0: off)", lambda v: v >= 0),
        "Choose each architecture's width so its core has about this many parameters "
        "(comma list; 0: off)",
    )  # fmt: skip
    # Task cells only: one cell per seed and per rate (0.0: the task's default rate).
    seed: tuple[int, ...] = axis(
        (0,), SEED, "Seeds for weights, batches and data splits, comma-separated; a task cell "
        "runs once per seed", panel=ACCURACY,
    )  # fmt: skip
    lr: tuple[float, ...] = axis(
        (0.0,), Rule(float, "a learning rate > 0", lambda v: v > 0),
        "Learning rates, comma-separated. With several, each model's rate is chosen by its "
        "mean validation score over the seeds; the table reports that rate's test score",
        panel=ACCURACY, default_text="the task's",
    )  # fmt: skip


@dataclass(frozen=True)
class SuiteConfig:
    """Everything that decides what a run measures. Frozen; build it with
    `plan.suites.resolve_config`. The fields made with `setting` are the run's settings
    ([run] in a suite file, flags, keywords of `seqbench.run`)."""

    label: str = setting(
        "quick",
        Rule(str, "a short name of letters, digits, '.', '_' or '-'",
             lambda v: re.fullmatch(r"[\w.-]{1,64}", v) is not None),
        "A short name for the run", panel=OUTPUT,
        default_text="the suite's; without a suite, what the flags measure: 'lstm,gru T=64 infer'",
    )  # fmt: skip
    description: str = setting(
        "Every seed architecture at two lengths, inference and training, on the CPU.",
        Rule(str, "a string"), "What the suite is for", cli=False,
    )  # fmt: skip
    matrices: tuple[Axes, ...] = (Axes(),)
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    # [run] seed: the seed axis where a matrix names none
    seed: int = setting(0, SEED, "The seed axis where a matrix names none", cli=False, module=True)
    threads: int | None = declared_field(ProcessSettings, "threads")
    flush_denormal: bool = declared_field(ProcessSettings, "flush_denormal")
    isolate: bool = setting(
        False, BOOL, "Run each cell in a fresh process: a crash or leak costs one cell, and "
        "host memory is measured cleanly", panel=FAULTS, switch=True,
    )  # fmt: skip
    executor: str = setting(
        "local", Rule(str, "local or ray", lambda v: v in ("local", "ray")),
        "local, or ray: every cell a Ray task in a fresh worker, on any node of the cluster",
        panel=SCALE_OUT,
    )  # fmt: skip
    ray_address: str | None = setting(
        None, Rule(str, "a Ray address, or auto"),
        "With --executor ray: 'auto' or an address joins that cluster", panel=SCALE_OUT,
        default_text="a local cluster of its own",
    )  # fmt: skip
    cpu_cells_per_node: int = setting(
        1, POSITIVE_INT,
        "With --executor ray: CPU cells that may run on one node at once, sharing its CPUs",
        panel=SCALE_OUT,
    )  # fmt: skip
    tf32: bool = declared_field(ProcessSettings, "tf32")
    ceiling: bool = setting(
        True, BOOL, "Measure each device's matmul FLOP/s once per run, for the mfu column",
        panel=PROCESS, switch=True,
    )  # fmt: skip
    compile_backend: str = setting(
        "inductor", Rule(str, "a torch.compile backend name, such as inductor or eager"),
        "torch.compile backend", panel=PROCESS,
    )  # fmt: skip
    cell_timeout: float | None = setting(
        None, POSITIVE_SECONDS,
        "Seconds a cell may take before it is recorded as 'timeout' and the run goes on",
        panel=FAULTS, module=True,
    )  # fmt: skip
    skip_larger: bool = setting(
        True, BOOL, "After an OOM cell, skip larger cells of the same model on that device",
        panel=FAULTS, switch=True,
    )  # fmt: skip
    count_instructions: bool = setting(
        False, BOOL, "Also count each CPU cell's instructions per step under callgrind (needs "
        "valgrind): a figure other processes cannot move, for gates on shared machines",
        panel=TIMING, switch=True,
    )  # fmt: skip
    count_steps: int = setting(5, POSITIVE_INT, "Steps each instruction count spans", cli=False)
    source: str = "built-in quick suite"
    # A user's module by importable names (seqbench.measure_module with isolate=True): the
    # cells measure it instead of seqbench's models.
    module: ModuleSpec | None = None

    @property
    def process(self) -> ProcessSettings:
        return ProcessSettings(self.threads, self.flush_denormal, self.tf32)

    @property
    def isolated(self) -> bool:
        """Does every cell run in a fresh process (--isolate, or a Ray worker)?"""
        return self.isolate or self.executor == "ray"

    def request(self, cell: Cell, round: int = 1) -> CellRequest:
        """What measuring `cell` in pass `round` asks for: each pass gets its share of the
        timing budget, and only the first trains and scores a task and takes the peak
        memory (a step's peak is the same in every pass; profiling it costs seconds)."""
        return CellRequest(
            cell=cell,
            measure=self.measure.per_round(),
            train=self.train,
            process=self.process,
            seed=cell.seed,
            round=round,
            accuracy=round == 1,
            memory=round == 1,
            timeout=self.cell_timeout,
            compile_backend=self.compile_backend,
            module=self.module,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SuiteConfig:
        """Rebuild a config saved with `to_dict` (lists back to tuples; keys a newer
        seqbench added take their defaults)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["matrices"] = tuple(
            Axes(**{k: tuple(v) for k, v in m.items()}) for m in data["matrices"]
        )
        values["measure"] = MeasureSettings(**data["measure"])
        values["train"] = TrainSettings(**data.get("train", {}))
        if data.get("module"):
            values["module"] = ModuleSpec(**data["module"])
        return cls(**values)


# The longest default label: `runs` shows it in a column.
LABEL_WIDTH = 40


def _values(matrices: tuple[Axes, ...], axis: str) -> list[Any]:
    return list(dict.fromkeys(v for m in matrices for v in getattr(m, axis)))


def _listed(values: list[Any], most: int = 3) -> str:
    """'lstm,gru'; past `most` values, the first ones and how many more: 'rnn,lstm,gru+2'."""
    text = [str(v) for v in values]
    return ",".join(text) if len(text) <= most else ",".join(text[:most]) + f"+{len(text) - most}"


def describe_matrices(matrices: tuple[Axes, ...]) -> str:
    """A short label that says what a run given by flags measures, so that `runs` tells
    ad-hoc runs apart: 'lstm,gru T=64,128 infer'. Axes with one default value go unsaid."""
    lengths = sorted(_values(matrices, "seq_len"))
    parts = [
        _listed(_values(matrices, "arch")),
        "T=" + (_listed(lengths) if len(lengths) <= 3 else f"{lengths[0]}-{lengths[-1]}"),
    ]
    for axis, default in (("mode", None), ("device", "cpu"), ("dtype", "float32"), ("task", "")):
        values = _values(matrices, axis)
        if len(values) == 1 and values[0] != default:
            parts.append(str(values[0]))
    return " ".join(parts)[:LABEL_WIDTH].rstrip()


# The rule of every key, by where it goes: derived from the declarations above.
AXIS_RULES = rules_of(Axes)
MEASURE_RULES = rules_of(MeasureSettings)
TRAIN_RULES = rules_of(TrainSettings)
TOP_KEYS = ("label", "description")
TOP_RULES = {k: r for k, r in rules_of(SuiteConfig).items() if k in TOP_KEYS}
RUN_RULES = {k: r for k, r in rules_of(SuiteConfig).items() if k not in TOP_KEYS}
_SETTING_SECTIONS = {"measure": MEASURE_RULES, "train": TRAIN_RULES, "run": RUN_RULES}


def apply_overrides(
    config: SuiteConfig,
    axes: Mapping[str, tuple[Any, ...]] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> SuiteConfig:
    """Flags on top of a configuration: `axes` replace axes in every matrix; `settings`
    replace [measure], [train], [run] and top-level values. Flag values must already be
    checked (`parse_list`, `check_setting`); the combination is checked here."""
    sections: dict[str, dict[str, Any]] = {"measure": {}, "train": {}, "run": {}, "top": {}}
    for key, value in (settings or {}).items():
        sections[next((n for n, rules in _SETTING_SECTIONS.items() if key in rules), "top")][
            key
        ] = value
    measure = dataclasses.replace(config.measure, **sections["measure"])
    axes = dict(axes or {})
    matrices = config.matrices
    if "arch" in axes and len(matrices) > 1:
        matrices = _archs_among_matrices(matrices, tuple(axes.pop("arch")))
    config = dataclasses.replace(
        config,
        matrices=tuple(dataclasses.replace(m, **axes) for m in matrices),
        measure=measure,
        train=dataclasses.replace(config.train, **sections["train"]),
        **sections["run"],
        **sections["top"],
    )
    return check_combination(config)  # the rules between settings (plan.combined)


def _archs_among_matrices(matrices: tuple[Axes, ...], archs: tuple[str, ...]) -> tuple[Axes, ...]:
    """`--arch` on a suite of several matrices (a main one and its variants) picks among
    them: each matrix keeps the architectures asked for that it has, one left with none is
    dropped, and an architecture no matrix has joins the first. Replacing the axis in every
    matrix instead would turn `--suite copy1000 --arch lstm` into an LSTM with the TCN
    variant's dropout too, a model the suite never had."""
    known = {a for m in matrices for a in m.arch}
    kept = []
    for i, matrix in enumerate(matrices):
        mine = tuple(a for a in archs if a in matrix.arch or (i == 0 and a not in known))
        if mine:
            kept.append(dataclasses.replace(matrix, arch=mine))
    return tuple(kept)


# How a cell is protected (a process of its own, a time limit) is not what it measures: a
# resume may change them, to finish a run that a crashing or hanging cell stopped.
PROTECTION = ("isolate", "cell_timeout")


def config_differences(a: SuiteConfig, b: SuiteConfig) -> list[str]:
    """Names of the settings that differ between two configurations in what they measure
    (where they came from, and how cells are protected, do not count)."""
    da, db = a.to_dict(), b.to_dict()
    names = []
    for key in da:
        if key in ("source", *PROTECTION) or da[key] == db[key]:
            continue
        if key == "measure":
            names += [k for k in da[key] if da[key][k] != db[key][k]]
        elif key == "matrices" and len(da[key]) == len(db[key]):
            names += sorted(
                {k for ma, mb in zip(da[key], db[key], strict=True) for k in ma if ma[k] != mb[k]}
            )
        else:
            names.append(key)
    return names


def check_same_configuration(run: Run, saved: SuiteConfig, asked: SuiteConfig) -> None:
    """Refuse to finish a run with another configuration than the one it started with."""
    changed = config_differences(saved, asked)
    if changed:
        raise SeqbenchError(
            f"cannot resume {run.run_id}: the configuration differs ({', '.join(changed)}); "
            "start a new run instead, or resume without those options"
        )
