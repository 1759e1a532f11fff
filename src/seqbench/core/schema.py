"""The result contract: one `Cell` is one point of the matrix, one `ResultRow` what it measured.

Every sweep parameter is a column of its own; measured columns carry their unit in the name.
`SCHEMA_VERSION` changes whenever a column is added, renamed or changes meaning; loading
accepts older versions and fills new columns with their defaults.
This module is long because the history is kept whole below, one entry a version.

Schema history
--------------
1 (2026-11-26): first release: the cell key, parameter and FLOP counts, timing statistics,
   throughput, peak memory, kernel provenance, status and message.
2 (2026-11-26): `peak_rss_bytes`, the cell's own process high-water mark (with --isolate).
3 (2026-11-26): `rounds`, how many passes over the plan the cell's samples come from.
4 (2026-11-26): the accuracy axis: `task` joins the key (empty: speed only); `metric`,
   `metric_value`, `chance_value`, `train_steps`, `train_time_s`, `time_to_target_s`,
   `memory_horizon`.
5 (2026-11-26): GPU fidelity: `compile` joins the key (torch.compile); `compile_s`, `tf32`,
   `peak_reserved_bytes`, and `mfu` (achieved FLOP/s over the run's measured matmul ceiling).
   Streaming inference: `mode` may be `step`. `match_params` joins the key (0: off).
6 (2026-11-26): `faults_per_step`, the minor page faults per timed step (Linux).
7 (2026-11-26): `host` and `device_name`: where the cell ran (Ray runs spread over machines).
8 (2026-11-28): what else the machine did while the cell was timed (see seqbench.judge.noise):
   `threads`, `cpus`, `load_before`, `load_after`, `cpu_share`, `others_cores`,
   `ctx_switches_per_step`, `steal_frac`, `throttled_frac`, `cpu_mhz`, and `noisy`, the
   reasons a cell's timing cannot be trusted (empty when it can).
9 (2026-11-28): accuracy you can cite: `seed` and `lr` join the key (task cells; a speed cell
   has lr 0 and the run's first seed); `validation_value` (the metric on the validation
   split, which chooses the rate and judges --target), `steps_to_target`, and
   `train_budget` (steps or time: what stopped training). Older rows read as seed 0, lr 0.
   Two columns change meaning. `memory_horizon` is taken on the task's loss over the
   cell's batch of held-out sequences, as the steps back from the end that hold all but
   1e-3 of the gradient's mass (was: the summed output of 64 sequences, the steps within
   1e-3 of the peak). `chance_value` is the constant guess's score on the evaluation set
   (was the theoretical value for adding and copy; `seqbench tasks` shows both).
   Instructions per step under callgrind (`run --count-instructions`): `instr_per_step`,
   `instr_steps` (the steps counted), and `instr_note` (why a cell was not counted).
10 (2026-12-06): the process is the unit of noise: `processes`, the fresh worker processes
   a cell's samples came from, and `process_spread`, how far their medians spread. With two
   or more, `median_s` is across the processes (the geometric mean of their medians) and
   `ci_low_s`/`ci_high_s` a 95% Student-t interval across them (with one process, the
   order-statistic interval of its pooled samples); `within_spread`, what the processes'
   own samples explain of that spread. Older rows read as one process.
11 (2026-12-06): `state_bytes`, what one sequence carries between tokens when streaming
   (step mode), read from the live state (h and c, an SSM's state, a KV cache growing in T).
12 (2026-12-07): a scored task cell whose core streams has `state_bytes` from its formula
   (held equal to the live state). `arch`/`task` may name a variant, `mamba(d_state=32)`
   (settings in order, defaults left out). `extrapolation`: "T:score" pairs at longer T.
13 (2026-12-07): `node`, the Ray node a cell was placed on (two nodes may share a host).
14 (2026-12-07): samples.csv's `machine_s`, on the first line of each process's batch: a
   fixed reference step's time in that process, just before and after the batch (the
   machine's speed at that moment; `compare` judges times relative to it).
15 (2026-12-08): `params_keras`, the model's parameters as Keras counts the seed's layers
   (SimpleRNN and LSTM keep one bias per gate block where PyTorch keeps two).

"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 15

STATUSES = ("ok", "oom", "error", "timeout", "skipped")
# infer: a forward pass over whole sequences; train: one optimiser step; step: one token of
# streaming inference, the state carried from the tokens before it (per-token latency).
MODES = ("infer", "train", "step")

DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True, order=True)
class Cell:
    """One point of the matrix: everything that decides what is built and how it is run."""

    arch: str
    seq_len: int
    batch_size: int
    hidden: int
    layers: int
    bidirectional: bool
    dropout: float
    recurrent_dropout: float
    vocab: int
    embed: int
    device: str
    dtype: str
    mode: str
    task: str = ""  # an accuracy task (see seqbench.tasks); empty: speed only
    compile: bool = False  # run through torch.compile
    match_params: int = 0  # when > 0, `hidden` was chosen to bring the core's parameters near this
    seed: int = 0  # weights, batch order and the task's data splits (see README, determinism)
    lr: float = 0.0  # a task cell's learning rate; 0: a speed cell (not trained to a score)

    @property
    def cell_id(self) -> str:
        """A readable key, unique within a run and stable across runs. Kept once built (in
        the instance's dict, which the frozen fields do not use): a plan of a million cells
        asked for it millions of times. (functools.cached_property takes a lock per call on
        Python 3.11, a third of the cost it saves.)"""
        found = self.__dict__.get("_cell_id")
        if found is None:
            found = self.__dict__["_cell_id"] = self._make_id()
        return found

    def _make_id(self) -> str:
        parts = [
            self.arch,
            f"T{self.seq_len}",
            f"B{self.batch_size}",
            f"H{self.hidden}",
            f"L{self.layers}",
            "bi" if self.bidirectional else "uni",
            f"do{self.dropout:g}",
            f"rd{self.recurrent_dropout:g}",
            f"V{self.vocab}",
            f"E{self.embed}",
            self.device,
            self.dtype,
            self.mode,
        ]
        if self.task:
            parts.append(self.task)
        if self.compile:
            parts.append("compiled")
        if self.match_params:
            parts.append(f"P{self.match_params}")
        if self.task:
            parts += [f"s{self.seed}", f"lr{self.lr:g}"]
        return "-".join(parts)

    @property
    def tokens(self) -> int:
        """Tokens one timed step processes: every position, or one per sequence when streaming."""
        return self.batch_size if self.mode == "step" else self.seq_len * self.batch_size


KEY_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Cell))
# Key columns an older file may lack (they were added later, with a default).
REQUIRED_KEY_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(Cell) if f.default is dataclasses.MISSING
)


@dataclass(frozen=True)
class ResultRow(Cell):
    """Everything recorded for one cell: its key (the `Cell` fields, first), then what was
    measured. `None` means 'not measured' (an empty CSV field)."""

    # -- what was built --
    params: int | None = None
    core_params: int | None = None
    # `params` as Keras counts the seed's layers (one bias per gate block in SimpleRNN and
    # LSTM): the seed's own numbers; empty for an architecture Keras has no layer for.
    params_keras: int | None = None
    flops_per_seq: int | None = None
    kernel: str = ""
    kernel_note: str = ""
    # -- timing: seconds per step (one forward pass in infer, one optimiser step in train) --
    median_s: float | None = None
    iqr_s: float | None = None
    ci_low_s: float | None = None
    ci_high_s: float | None = None
    min_s: float | None = None
    repeats: int | None = None
    inner_loops: int | None = None
    rounds: int | None = None
    # The fresh processes the samples came from (1: all from one), and the spread of their
    # medians (the standard deviation of their logs: about a fraction). With 2 or more the
    # median is across them (the geometric mean of theirs) and so is the interval.
    processes: int | None = None
    process_spread: float | None = None
    # How far the medians would spread from each process's own samples alone (their
    # medians' standard error, in logs): a spread well past it is the processes disagreeing.
    within_spread: float | None = None
    # -- derived throughput --
    seq_per_s: float | None = None
    tokens_per_s: float | None = None
    tflops: float | None = None
    # -- memory --
    peak_mem_bytes: int | None = None
    mem_source: str = ""
    peak_rss_bytes: int | None = None
    peak_reserved_bytes: int | None = None  # CUDA: the caching allocator's reserve at peak
    # Memory the step maps afresh from the OS each time (first-touch page faults): an
    # allocator effect that can depend on what ran before the cell in the same process.
    faults_per_step: float | None = None
    # Streaming (step mode): the bytes of state one sequence carries between tokens.
    state_bytes: int | None = None
    # -- what else the machine did while the samples were taken (see seqbench.judge.noise) --
    threads: int | None = None  # torch CPU threads the cell ran with
    cpus: float | None = None  # CPUs the process could use (affinity, cgroup quota)
    load_before: float | None = None  # 1-minute load average when sampling began
    load_after: float | None = None  # ... and when it ended
    cpu_share: float | None = None  # CPU time the process got / (wall time x threads)
    others_cores: float | None = None  # cores other processes kept busy on those CPUs
    ctx_switches_per_step: float | None = None  # involuntary context switches per step
    steal_frac: float | None = None  # share of the CPUs' time a hypervisor took
    throttled_frac: float | None = None  # share of wall time the cgroup quota held it back
    cpu_mhz: float | None = None  # the CPUs' mean clock
    noisy: str = ""  # why the timing cannot be trusted; empty when it can
    # -- instructions per step, counted under callgrind (see seqbench.measure.instructions) --
    instr_per_step: float | None = None  # instructions one step executes, single-threaded
    instr_steps: int | None = None  # steps the count spans
    instr_note: str = ""  # why the cell was not counted, when counting was asked for

    # -- how it ran --
    tf32: bool | None = None  # CUDA float32: TensorFloat-32 allowed in matmuls and cuDNN
    compile_s: float | None = None  # seconds torch.compile took (never inside the timing)
    mfu: float | None = None  # achieved FLOP/s / the device's measured matmul FLOP/s
    # -- accuracy (with a task) --
    metric: str = ""  # what metric_value measures, e.g. "accuracy" or "mse"
    metric_value: float | None = None  # on the held-out test set, after training
    validation_value: float | None = None  # on the validation split (apart from train and test)
    chance_value: float | None = None  # that metric for the best input-blind guess, on the eval set
    train_steps: int | None = None
    train_time_s: float | None = None
    time_to_target_s: float | None = None  # training time until the validation score met --target
    steps_to_target: int | None = None  # ... and the optimiser steps until then
    train_budget: str = ""  # what ended training: "steps" or "time" (time depends on load)
    # steps back from the end holding all but 1e-3 of the task loss's input-gradient mass
    memory_horizon: int | None = None
    extrapolation: str = ""  # scores past the training length: "T:score" pairs (induction)
    # -- bookkeeping --
    host: str = ""  # the machine that measured the cell
    node: str = ""  # the Ray node it was placed on (empty off Ray)
    device_name: str = ""  # the GPU's or CPU's name there
    wall_s: float | None = None
    status: str = "ok"
    message: str = ""
    # stored (Cell computes it), so that a loaded row keeps the id it was saved with
    cell_id: str = ""

    def __post_init__(self) -> None:
        if not self.cell_id:
            object.__setattr__(self, "cell_id", self.cell.cell_id)
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; expected one of {STATUSES}")

    @property
    def cell(self) -> Cell:
        return Cell(**{name: getattr(self, name) for name in KEY_COLUMNS})

    @classmethod
    def for_cell(cls, cell: Cell, **values: Any) -> ResultRow:
        return cls(**dataclasses.asdict(cell), **values)

    def to_dict(self) -> dict[str, Any]:
        # Every column is a scalar: a shallow dict (dataclasses.asdict copies deeply, and
        # took 6 of the 12 s of exporting 20,000 rows as JSON).
        fields = self.__dict__
        if len(fields) == len(_COLUMNS):  # every field, in order: how __init__ and the
            return dict(fields)  # readers (seqbench.core.table) build a row
        return {name: getattr(self, name) for name in _COLUMNS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultRow:
        """Build a row from loosely typed values (CSV strings, NaN for empty fields).

        Unknown keys are ignored so that files written by a newer schema still load;
        missing optional columns take their defaults.
        """
        values = {name: _COERCE[name](data[name]) for name in _COLUMNS if name in data}
        missing = [
            name for name in REQUIRED_KEY_COLUMNS if name not in values or values[name] is None
        ]
        if missing:
            raise ValueError(f"missing key columns: {', '.join(missing)}")
        return cls(**values)


RESULT_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ResultRow))


@dataclass
class Measurement:
    """What measuring a cell gives back: its row, and the raw per-step timing samples its
    statistics came from (kept so that later rounds can pool them and `compare` can test
    them). Here, beside the row, so that storage can take one without importing torch."""

    row: ResultRow
    samples: list[float] = field(default_factory=list)
    # A task cell's learning curve: (step, training seconds, validation metric) points.
    curve: list[tuple[int, float, float]] = field(default_factory=list)
    # The machine's speed beside this pass's samples (seqbench.measure.reference), or None.
    machine_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data: how a measurement crosses a process (the worker's answer, a Ray
        task's result)."""
        return {"row": self.row.to_dict(), "samples": list(self.samples),
                "curve": [list(point) for point in self.curve], "machine_s": self.machine_s}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        machine = data.get("machine_s")
        return cls(
            ResultRow.from_dict(data["row"]),
            [float(s) for s in data.get("samples", [])],
            [tuple(point) for point in data.get("curve", [])],
            None if machine is None else float(machine),
        )


_INT = frozenset({
    "threads", "seq_len", "batch_size", "hidden", "layers", "vocab", "embed", "params",
    "core_params", "params_keras", "flops_per_seq", "repeats", "inner_loops", "rounds", "processes",
    "peak_mem_bytes", "peak_rss_bytes", "peak_reserved_bytes", "state_bytes", "train_steps",
    "memory_horizon", "match_params", "seed", "steps_to_target", "instr_steps",
})  # fmt: skip
_BOOL = frozenset({"bidirectional", "compile", "tf32"})
_STR = frozenset({
    "train_budget", "extrapolation", "noisy", "instr_note", "host", "node", "device_name", "task",
    "metric", "arch", "device", "dtype", "mode", "kernel", "kernel_note", "mem_source", "status",
    "message", "cell_id",
})  # fmt: skip


def column_type(name: str) -> type:
    """The type of a result column's values when measured: int, bool, str or float."""
    if name not in RESULT_COLUMNS:
        raise KeyError(name)
    return int if name in _INT else bool if name in _BOOL else str if name in _STR else float


# How a boolean column's text reads (a CSV holds True/False; hand-edited files 1/0, yes/no).
TRUE_TEXT = ("true", "1", "yes")
FALSE_TEXT = ("false", "0", "no")


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _coercer(name: str) -> Any:
    """`_coerce` for one column, with a fast path for the strings a CSV file holds."""
    if name in _STR:
        return lambda v: v if type(v) is str else _coerce(name, v)
    if name in _INT:
        return lambda v: int(v) if type(v) is str and v.isdigit() else _coerce(name, v)
    if name in _BOOL:
        return lambda v: _coerce(name, v)
    return lambda v: (float(v) if v else None) if type(v) is str else _coerce(name, v)


def _coerce(name: str, value: Any) -> Any:
    if name in _STR:
        return "" if _is_missing(value) else str(value)
    if _is_missing(value):
        return None
    if name in _BOOL:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in TRUE_TEXT or lowered in FALSE_TEXT:
                return lowered in TRUE_TEXT
            raise ValueError(f"column {name}: {value!r} is not a boolean")
        return bool(value)
    if name in _INT:
        number = float(value)
        if not number.is_integer():
            raise ValueError(f"column {name}: {value!r} is not an integer")
        return int(number)
    return float(value)


_COLUMNS = tuple(f.name for f in dataclasses.fields(ResultRow))
_COERCE = {name: _coercer(name) for name in _COLUMNS}


# Task metrics that improve downwards, by the name in the `metric` column; every other metric
# (accuracy) improves upwards. Tasks take their direction from here, so a reader of saved
# rows knows it without importing the tasks (and torch).
LOWER_IS_BETTER = frozenset({"mse", "mae", "loss", "bce", "cross_entropy", "error", "perplexity"})


def higher_is_better(metric: str) -> bool:
    """Which way a task metric improves."""
    return metric not in LOWER_IS_BETTER


# The values a metric can take (accuracy is a fraction; perplexity is exp of a loss). An
# interval over seeds is cut to this range: the true mean lies inside it, so the cut keeps
# the interval's coverage and drops only values no model can score.
METRIC_RANGES = {
    "accuracy": (0.0, 1.0),
    "error": (0.0, 1.0),
    "mse": (0.0, math.inf),
    "mae": (0.0, math.inf),
    "bce": (0.0, math.inf),
    "cross_entropy": (0.0, math.inf),
    "perplexity": (1.0, math.inf),
}


def metric_range(metric: str) -> tuple[float, float]:
    """The range of a task metric's values; unbounded for a metric not listed."""
    return METRIC_RANGES.get(metric, (-math.inf, math.inf))


def rows_to_frame(rows: list[ResultRow]):
    """Rows as a pandas DataFrame with the contract's columns, in order."""
    import pandas as pd

    return pd.DataFrame([r.to_dict() for r in rows], columns=list(RESULT_COLUMNS))
