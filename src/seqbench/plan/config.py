"""The one configuration object: built from a suite file, then flags, and validated once.

`resolve_config` reads a suite (see `seqbench.plan.suites` for the file format and the rules
every key obeys), lays the flags over it, and returns a frozen `SuiteConfig`; `plan` turns
it into the run's cells, in run order; `SuiteConfig.request` turns one cell into the
`CellRequest` that measures it. A flag replaces its axis or setting everywhere in the suite.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqbench.core.errors import ConfigError, SeqbenchError
from seqbench.core.request import CellRequest, ModuleSpec
from seqbench.core.schema import Cell
from seqbench.core.settings import MeasureSettings, ProcessSettings, TrainSettings
from seqbench.plan.suites import MEASURE_RULES, RUN_RULES, TRAIN_RULES, find_suite, read_suite

__all__ = [
    "Axes",
    "MeasureSettings",
    "SuiteConfig",
    "TrainSettings",
    "apply_overrides",
    "config_differences",
    "plan",
    "resolve_config",
]


@dataclass(frozen=True)
class Axes:
    """One matrix: the cells are the product of these lists. Defaults are the quick suite."""

    arch: tuple[str, ...] = ("rnn", "lstm", "gru", "conv1d")
    seq_len: tuple[int, ...] = (64, 256)
    batch_size: tuple[int, ...] = (32,)
    hidden: tuple[int, ...] = (32,)
    layers: tuple[int, ...] = (1,)
    bidirectional: tuple[bool, ...] = (False,)
    dropout: tuple[float, ...] = (0.0,)
    recurrent_dropout: tuple[float, ...] = (0.0,)
    vocab: tuple[int, ...] = (10_000,)
    embed: tuple[int, ...] = (32,)
    device: tuple[str, ...] = ("cpu",)
    dtype: tuple[str, ...] = ("float32",)
    mode: tuple[str, ...] = ("infer", "train")
    task: tuple[str, ...] = ("",)  # "" (or "none" in files and flags): speed only
    compile: tuple[bool, ...] = (False,)
    # > 0: choose each arch's hidden to match this many core parameters
    match_params: tuple[int, ...] = (0,)
    # Task cells only: one cell per seed and per rate (0.0: the task's default rate).
    seed: tuple[int, ...] = (0,)
    lr: tuple[float, ...] = (0.0,)


@dataclass(frozen=True)
class SuiteConfig:
    """Everything that decides what a run measures. Frozen; build it with `resolve_config`."""

    label: str = "quick"
    description: str = "Every seed architecture at two lengths, inference and training, on the CPU."
    matrices: tuple[Axes, ...] = (Axes(),)
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    seed: int = 0  # [run] seed: the seed axis where a matrix names none
    threads: int | None = None  # None: torch's default, fewer on a busy machine (see session)
    flush_denormal: bool = True
    isolate: bool = False  # each cell in a fresh subprocess
    executor: str = "local"  # local, or ray (each cell a Ray task in a fresh worker)
    ray_address: str | None = None  # None: start a local Ray cluster; "auto" or an address: join
    cpu_cells_per_node: int = 1  # Ray: CPU cells that may share a node at once
    tf32: bool = True  # CUDA float32 may use TensorFloat-32 (matmuls and cuDNN); recorded per row
    ceiling: bool = True  # measure each device's matmul FLOP/s once, for the mfu column
    compile_backend: str = "inductor"  # for cells with compile = true
    cell_timeout: float | None = None  # seconds; a cell past it is recorded as 'timeout'
    skip_larger: bool = True  # after an OOM, skip larger cells of the same model and device
    # Also count each CPU cell's instructions per step under callgrind (valgrind needed).
    count_instructions: bool = False
    count_steps: int = 5  # steps each count spans
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
        timing budget, and only the first trains and scores a task."""
        return CellRequest(
            cell=cell,
            measure=self.measure.per_round(),
            train=self.train,
            process=self.process,
            seed=cell.seed,
            round=round,
            accuracy=round == 1,
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


def resolve_config(
    suite: str | Path | None = None,
    *,
    axes: Mapping[str, tuple[Any, ...]] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> SuiteConfig:
    """Suite file (or the built-in quick suite), then flags (see `apply_overrides`)."""
    if suite is None:
        # The quick suite reshaped by flags is no longer the quick suite: say so in its name.
        if not axes:
            return apply_overrides(SuiteConfig(), axes, settings)
        config = apply_overrides(SuiteConfig(label="custom", source="flags"), axes, settings)
        if "label" in (settings or {}):
            return config
        return dataclasses.replace(config, label=describe_matrices(config.matrices))

    path = find_suite(suite)
    parsed = read_suite(path)
    # The single values of older suites, [run] seed and [train] lr, are one-value axes.
    for name, section in (("seed", "run"), ("lr", "train")):
        if name in parsed[section]:
            value = parsed[section][name]
            parsed["matrices"] = [{name: (value,), **m} for m in parsed["matrices"]]
            if name == "lr":
                del parsed["train"]["lr"]
    top = {"label": path.stem, "description": "", **parsed["top"]}
    config = SuiteConfig(
        label=top["label"],
        description=top["description"],
        matrices=tuple(Axes(**m) for m in parsed["matrices"]),
        measure=MeasureSettings(**parsed["measure"]),
        train=TrainSettings(**parsed["train"]),
        source=str(path),
        **parsed["run"],
    )
    return apply_overrides(config, axes, settings)


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
    if measure.max_repeats < measure.min_repeats:
        raise ConfigError(
            f"max_repeats ({measure.max_repeats}) is below min_repeats ({measure.min_repeats})"
        )
    axes = dict(axes or {})
    matrices = config.matrices
    if "arch" in axes and len(matrices) > 1:
        matrices = _archs_among_matrices(matrices, tuple(axes.pop("arch")))
    return dataclasses.replace(
        config,
        matrices=tuple(dataclasses.replace(m, **axes) for m in matrices),
        measure=measure,
        train=dataclasses.replace(config.train, **sections["train"]),
        **sections["run"],
        **sections["top"],
    )


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


# The order cells run in: one model at a time, shortest sequence first (so that an
# out-of-memory cell is met before the larger ones), inference before training.
_PLAN_ORDER = (
    "match_params",
    "task",
    "compile",
    "device",
    "dtype",
    "arch",
    "hidden",
    "layers",
    "bidirectional",
    "dropout",
    "recurrent_dropout",
    "vocab",
    "embed",
    "batch_size",
    "seq_len",
    "mode",
    "lr",
    "seed",
)


_ASCENDING = ("batch_size", "seq_len")


def plan(config: SuiteConfig) -> list[Cell]:
    """Every cell of every matrix, in run order, without repeats.

    Seeds and rates multiply task cells only: a speed cell is measured once, with the first
    seed and no rate (lr 0). A rate of 0 on the axis stands for the task's default rate."""
    from seqbench.core import devices
    from seqbench.models import normalize_cell
    from seqbench.tasks import new_task
    from seqbench.tasks.base import default_lr

    cells: dict[Cell, None] = {}
    for axes in config.matrices:
        lists = [
            sorted(getattr(axes, n)) if n in _ASCENDING else getattr(axes, n) for n in _PLAN_ORDER
        ]
        for values in itertools.product(*lists):
            raw = dict(zip(_PLAN_ORDER, values, strict=True))
            raw["device"] = devices.resolve(raw["device"])
            if not raw["task"]:
                raw["seed"], raw["lr"] = axes.seed[0], 0.0
            elif not raw["lr"]:
                raw["lr"] = default_lr(new_task(raw["task"]))
            cells[normalize_cell(Cell(**raw))] = None
    return list(cells)


def check_same_configuration(run: Any, saved: SuiteConfig, asked: SuiteConfig) -> None:
    """Refuse to finish a run with another configuration than the one it started with."""
    changed = config_differences(saved, asked)
    if changed:
        raise SeqbenchError(
            f"cannot resume {run.run_id}: the configuration differs ({', '.join(changed)}); "
            "start a new run instead, or resume without those options"
        )
