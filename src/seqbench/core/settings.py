"""Every setting, declared once: its type, default, range, help, and where it may be given.

A setting is a field of a frozen dataclass made with `setting(...)`: the field's default is
the setting's default, and its metadata (a `Declared`) says the rest. Everything else is
derived from that one declaration: the rules a suite file's value and a flag's value are
checked against (`plan.suites`), the `seqbench run` option with its help text, default and
help panel (`cli.run_options`), the keyword arguments of `seqbench.run` and
`seqbench.measure_module` (`plan.module.MODULE_SETTINGS`), and the `--seqbench-*` options of
the pytest plugin. Every setting is a key of suite files and a keyword of `seqbench.run`.
Adding a setting is adding one field.

The settings here travel inside a `CellRequest` (to a worker process, a Ray task or a
user's API call) and inside a run's saved configuration, so they stay plain data: numbers,
strings, None. This module imports nothing from seqbench.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

# Help panels of `seqbench run --help`, in the order the docs describe them.
MATRIX = "What to measure"
ACCURACY = "Accuracy"
TIMING = "Timing"
PROCESS = "Process"
FAULTS = "Faults"
SCALE_OUT = "Scale-out"
OUTPUT = "Output"
PANELS = (MATRIX, ACCURACY, TIMING, PROCESS, FAULTS, SCALE_OUT, OUTPUT)

# Worker processes a cell is measured in by default: chosen by benchmarks/interval_coverage.py
# (see the docs' "When the machine is busy").
PROCESSES = 5

# Where every run is saved, unless told otherwise (`--root`).
RESULTS_ROOT = "results"
# A gate's threshold when none is given (compare, ab, history, the pytest plugin): 10% for
# clocks; for instruction counts, which repeat within 0.5% whatever else the machine runs, 2%.
THRESHOLD = 0.10
THRESHOLDS = {"instructions": 0.02}


@dataclass(frozen=True)
class Rule:
    """The type a value takes and the range it must lie in, as said in an error."""

    kind: type
    expected: str
    check: Callable[[Any], bool] = lambda value: True


POSITIVE_INT = Rule(int, "a positive integer", lambda v: v >= 1)
# Tensor sizes: torch indexes some kernels with 32-bit integers.
SIZE = Rule(int, "a positive integer below 2**31", lambda v: 1 <= v < 2**31)
FRACTION = Rule(float, "a number in [0, 1)", lambda v: 0.0 <= v < 1.0)
BOOL = Rule(bool, "true or false")
SECONDS = Rule(float, "a number of seconds >= 0", lambda v: v >= 0)
POSITIVE_SECONDS = Rule(float, "a number of seconds > 0", lambda v: v > 0)
SEED = Rule(int, "an integer from 0 below 2**63", lambda v: 0 <= v < 2**63)


@dataclass(frozen=True)
class Declared:
    """What a field's metadata says about its setting beyond its type and default."""

    rule: Rule
    help: str
    panel: str = TIMING
    # How the default reads in help when the value alone would mislead ("the task's");
    # None: the default value itself, and nothing for a default of None.
    default_text: str | None = None
    cli: bool = True  # a `seqbench run` flag (--name-with-dashes)
    switch: bool = False  # a --x/--no-x flag pair
    module: bool = False  # a keyword of measure_module and of the pytest fixture
    pytest: bool = False  # a --seqbench-NAME option of the pytest plugin


def setting(default: Any, rule: Rule, help: str, **declared: Any) -> Any:
    """A dataclass field that declares a setting (see `Declared` for the rest)."""
    meta = {"declared": Declared(rule, help, **declared)}
    if isinstance(default, (list, tuple, dict, set)):
        return dataclasses.field(default_factory=lambda: default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Declaration:
    """One declared setting, as its fronts read it."""

    name: str
    default: Any
    declared: Declared

    @property
    def rule(self) -> Rule:
        return self.declared.rule

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def help_text(self, default: Any = dataclasses.MISSING) -> str:
        """The help line, its default said from the declaration (never typed by hand);
        `default` replaces the declared one where a command has its own."""
        value = self.default if default is dataclasses.MISSING else default
        text = self.declared.default_text
        if text is None and value is not None:
            text = format_default(value)
        return f"{self.declared.help} (default: {text})." if text else f"{self.declared.help}."


def format_default(value: Any) -> str:
    """A default as a user types it: on/off for switches, a comma list for an axis."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(format_default(v) for v in value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:g}" if value else "0"
    return str(value)


def declarations(cls: type) -> Iterator[Declaration]:
    """The settings a dataclass declares, in field order."""
    for f in dataclasses.fields(cls):
        declared = f.metadata.get("declared")
        if declared is None:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        yield Declaration(f.name, default, declared)


def rules_of(cls: type) -> dict[str, Rule]:
    return {d.name: d.rule for d in declarations(cls)}


def declared_field(cls: type, name: str) -> Any:
    """Another dataclass's field for the same setting: its default and declaration reused
    (the run's process settings, held by the configuration and by each request)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return dataclasses.field(default=f.default, metadata=f.metadata)


@dataclass(frozen=True)
class MeasureSettings:
    """How one cell is timed: warm-up, then samples until a time budget or a precision target."""

    min_time: float = setting(
        0.5, SECONDS, "Seconds of timed steps per cell, at least", module=True, pytest=True
    )
    min_repeats: int = setting(5, POSITIVE_INT, "Timing samples per cell, at least", module=True)
    max_repeats: int = setting(1000, POSITIVE_INT, "Timing samples per cell, at most", module=True)
    precision: float = setting(
        0.0,
        # A half-width of the whole median or more bounds nothing: a time is never below 0.
        Rule(float, "a fraction in [0, 1) (0 turns it off)", lambda v: 0 <= v < 1),
        "Stop a cell early once its median's 95% CI half-width is this fraction (0: off)",
        module=True,
    )
    warmup_time: float = setting(
        0.1, SECONDS, "Seconds of untimed warm-up steps per cell, at least", module=True
    )
    warmup_steps: int = setting(
        2, Rule(int, "an integer >= 0", lambda v: v >= 0),
        "Untimed warm-up steps per cell, at least", module=True,
    )  # fmt: skip
    min_sample_s: float = setting(
        0.001, SECONDS, "Seconds each timing sample lasts, at least (steps are repeated)",
        module=True, cli=False,
    )  # fmt: skip
    rounds: int = setting(
        1,
        POSITIVE_INT,
        "Passes over the whole matrix in each process; each cell's samples are pooled across "
        "them, so a burst of interference touches one pass",
        module=True,
        pytest=True,
    )
    # The process is the unit of noise: on a shared machine one process runs a step 10-40%
    # faster or slower than the next, while its own samples agree within a few percent, so
    # an interval from one process's samples does not hold for the next run.
    processes: int = setting(
        PROCESSES,
        POSITIVE_INT,
        "Fresh worker processes each cell is measured in, interleaved across the cells "
        "(process 1 of every cell, then process 2, ...), the budget split between them; the "
        "interval is computed across them. 1: every cell in one process",
        module=True,
        pytest=True,
    )

    @property
    def passes(self) -> int:
        """Passes over the plan: `rounds` in each process, process after process."""
        return self.rounds * self.processes

    def per_round(self) -> MeasureSettings:
        """The budget of one pass: time and sample counts split evenly between passes."""
        passes = self.passes
        if passes == 1:
            return self
        return dataclasses.replace(
            self,
            min_time=self.min_time / passes,
            min_repeats=max(1, math.ceil(self.min_repeats / passes)),
            max_repeats=max(1, math.ceil(self.max_repeats / passes)),
        )


@dataclass(frozen=True)
class TrainSettings:
    """How a cell with a task is trained and scored (see seqbench.tasks)."""

    train_steps: int | None = setting(
        None, POSITIVE_INT, "Training steps per task cell", panel=ACCURACY,
        default_text="the task's, e.g. 2000 for adding; none with only --train-time",
    )  # fmt: skip
    train_time: float | None = setting(
        None, POSITIVE_SECONDS, "Seconds of training per task cell, at most", panel=ACCURACY
    )
    # No task's metric is negative (core.schema.METRIC_RANGES); the range of the tasks a
    # run has is checked with them (plan.combined).
    target: float | None = setting(
        None,
        Rule(float, "a score >= 0 (no task's metric is negative)", lambda v: v >= 0),
        "Record the training time and steps until the validation score first reaches this "
        "(time_to_target_s, steps_to_target)",
        panel=ACCURACY,
    )
    eval_every: int = setting(
        100,
        POSITIVE_INT,
        "Steps between validation scores: the learning curve's points and the --target checks",
        panel=ACCURACY,
    )
    optimizer: str | None = setting(
        None, Rule(str, "adam or rmsprop", lambda v: v in ("adam", "rmsprop")),
        "adam (with gradient clipping) or rmsprop", panel=ACCURACY,
        default_text="the task's: adam for synthetic tasks, rmsprop for imdb",
    )  # fmt: skip
    # A speed cell's rate; task cells take theirs from the lr axis (the `--lr` flag).
    lr: float = setting(
        1e-3, Rule(float, "a learning rate > 0", lambda v: v > 0),
        "A speed cell's learning rate", panel=ACCURACY, cli=False,
    )  # fmt: skip
    clip: float = setting(
        1.0, Rule(float, "a gradient norm >= 0 (0: off)", lambda v: v >= 0),
        "Gradient-norm clipping with Adam (0 turns it off)", panel=ACCURACY,
    )  # fmt: skip
    # Only a task that reads a local dataset (`reads_data`) may be given one (plan.combined).
    data: str | None = setting(
        None, Rule(str, "a path"), "A local dataset: Keras' imdb.npz or the aclImdb folder "
        "(imdb task)", panel=ACCURACY,
    )  # fmt: skip
    grad_flow: bool = setting(
        False, BOOL, "Also measure each cell's memory horizon (see `seqbench gradflow`)",
        panel=ACCURACY, switch=True,
    )  # fmt: skip
    # The LSTM forget gate's initial bias (Gers et al. 2000; Jozefowicz et al. 2015 advise
    # 1.0); None keeps PyTorch's uniform initialisation. See models.recurrent.set_forget_bias.
    forget_bias: float | None = setting(
        None, Rule(float, "a number"), "Initial LSTM forget-gate bias, e.g. 1.0",
        panel=ACCURACY, default_text="PyTorch's uniform initialisation",
    )  # fmt: skip

    DEFAULT_STEPS = 200

    def budget(self) -> tuple[int | None, float | None]:
        """(steps, seconds): the default is 200 steps when neither is given."""
        if self.train_steps is None and self.train_time is None:
            return self.DEFAULT_STEPS, None
        return self.train_steps, self.train_time


@dataclass(frozen=True)
class ProcessSettings:
    """What a measuring process sets before its first cell: torch's CPU threads (None:
    torch's choice), subnormal flushing, and TensorFloat-32 on CUDA."""

    threads: int | None = setting(
        None, POSITIVE_INT, "torch CPU threads", panel=PROCESS, module=True, pytest=True,
        default_text="torch's, fewer when other processes keep the CPUs busy",
    )  # fmt: skip
    flush_denormal: bool = setting(
        True, BOOL, "Flush subnormal floats to zero on the CPU, as Keras does",
        panel=PROCESS, switch=True, module=True,
    )  # fmt: skip
    tf32: bool = setting(
        True, BOOL, "Let CUDA float32 matmuls and cuDNN use TensorFloat-32 (recorded per row)",
        panel=PROCESS, switch=True, module=True,
    )  # fmt: skip
