"""Suite files and flags: the type and range of every key, as data, and the parsers.

A suite file is TOML:

    label = "seed"
    description = "what the suite is for"

    [matrix]            # axes; a scalar means a one-value list
    arch = ["rnn", "lstm"]
    seq_len = [100, 500]

    [[variants]]        # optional: more matrices that inherit [matrix] and override some axes
    arch = ["lstm"]
    layers = [2]

    [measure]           # how each cell is timed
    min_time = 0.5

    [train]             # how a task cell is trained

    [run]               # process-wide settings
    threads = 2

Every value is checked where it is read, and an error names the file (or flag), the key,
and what was expected. Nothing here imports torch: architectures and tasks are checked by
importing them only when a value names one.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqbench.core import devices
from seqbench.core.errors import ConfigError
from seqbench.core.schema import DTYPES, MODES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


# Field rules: the type each key takes and the range it must lie in.


@dataclass(frozen=True)
class Rule:
    kind: type
    expected: str
    check: Callable[[Any], bool] = lambda value: True


def _arch_ok(value: str) -> bool:
    """Known, or a user factory that imports and builds; else a ConfigError that says why."""
    from seqbench.models import core_shape_example, get_arch
    from seqbench.models.custom import probe_factory

    if ":" in value:  # the user's code: tried in a process of its own before this one
        probe_factory(value)
    spec = get_arch(value)
    if spec.count_params is None:  # a user's factory: build it once, small, to check it
        spec.build(core_shape_example())
    return True


def _task_ok(value: str) -> bool:
    from seqbench.tasks import new_task

    if value:
        new_task(value)  # raises with the list of tasks
    return True


def _device_ok(value: str) -> bool:
    return value in devices.DEVICE_CHOICES or re.fullmatch(r"cuda:\d+", value) is not None


_POSITIVE_INT = Rule(int, "a positive integer", lambda v: v >= 1)
# Tensor sizes: torch indexes some kernels with 32-bit integers.
_SIZE = Rule(int, "a positive integer below 2**31", lambda v: 1 <= v < 2**31)
_FRACTION = Rule(float, "a number in [0, 1)", lambda v: 0.0 <= v < 1.0)

AXIS_RULES: dict[str, Rule] = {
    "arch": Rule(str, "an architecture name", _arch_ok),
    "seq_len": _SIZE,
    "batch_size": _SIZE,
    "hidden": _SIZE,
    "layers": _POSITIVE_INT,
    "bidirectional": Rule(bool, "true or false"),
    "dropout": _FRACTION,
    "recurrent_dropout": _FRACTION,
    "vocab": Rule(int, "an integer from 2 below 2**31", lambda v: 2 <= v < 2**31),
    "embed": _SIZE,
    "device": Rule(str, f"one of {', '.join(devices.DEVICE_CHOICES)} or cuda:N", _device_ok),
    "dtype": Rule(str, f"one of {', '.join(DTYPES)}", lambda v: v in DTYPES),
    "mode": Rule(str, f"one of {', '.join(MODES)}", lambda v: v in MODES),
    "task": Rule(str, "a task name or none", _task_ok),
    "compile": Rule(bool, "true or false"),
    "match_params": Rule(int, "a parameter count >= 0 (0: off)", lambda v: v >= 0),
    # Accuracy axes: a task cell runs once per seed and rate (a speed cell once, at the first
    # seed). [run] seed and [train] lr, single values, still read as one-value axes.
    "seed": Rule(int, "an integer from 0 below 2**63", lambda v: 0 <= v < 2**63),
    "lr": Rule(float, "a learning rate > 0", lambda v: v > 0),
}

MEASURE_RULES: dict[str, Rule] = {
    "min_time": Rule(float, "a number of seconds >= 0", lambda v: v >= 0),
    "min_repeats": _POSITIVE_INT,
    "max_repeats": _POSITIVE_INT,
    "precision": Rule(float, "a fraction >= 0 (0 turns it off)", lambda v: v >= 0),
    "warmup_time": Rule(float, "a number of seconds >= 0", lambda v: v >= 0),
    "warmup_steps": Rule(int, "an integer >= 0", lambda v: v >= 0),
    "min_sample_s": Rule(float, "a number of seconds >= 0", lambda v: v >= 0),
    "rounds": _POSITIVE_INT,
}

TRAIN_RULES: dict[str, Rule] = {
    "train_steps": _POSITIVE_INT,
    "train_time": Rule(float, "a number of seconds > 0", lambda v: v > 0),
    "target": Rule(float, "a number"),
    "eval_every": _POSITIVE_INT,
    "optimizer": Rule(str, "adam or rmsprop", lambda v: v in ("adam", "rmsprop")),
    "lr": Rule(float, "a learning rate > 0", lambda v: v > 0),
    "clip": Rule(float, "a gradient norm >= 0 (0: off)", lambda v: v >= 0),
    "data": Rule(str, "a path"),
    "grad_flow": Rule(bool, "true or false"),
    "forget_bias": Rule(float, "a number"),
}

RUN_RULES: dict[str, Rule] = {
    "seed": Rule(int, "an integer from 0 below 2**63", lambda v: 0 <= v < 2**63),
    "threads": _POSITIVE_INT,
    "flush_denormal": Rule(bool, "true or false"),
    "isolate": Rule(bool, "true or false"),
    "executor": Rule(str, "local or ray", lambda v: v in ("local", "ray")),
    "ray_address": Rule(str, "a Ray address, or auto"),
    "cpu_cells_per_node": _POSITIVE_INT,
    "tf32": Rule(bool, "true or false"),
    "ceiling": Rule(bool, "true or false"),
    "compile_backend": Rule(str, "a torch.compile backend name, such as inductor or eager"),
    "cell_timeout": Rule(float, "a number of seconds > 0", lambda v: v > 0),
    "skip_larger": Rule(bool, "true or false"),
    "count_instructions": Rule(bool, "true or false"),
    "count_steps": _POSITIVE_INT,
}

TOP_RULES: dict[str, Rule] = {
    "label": Rule(
        str,
        "a short name of letters, digits, '.', '_' or '-'",
        lambda v: re.fullmatch(r"[\w.-]{1,64}", v) is not None,
    ),
    "description": Rule(str, "a string"),
}

SECTIONS = ("matrix", "variants", "measure", "train", "run")


def _typed(value: Any, rule: Rule, where: str) -> Any:
    """Check one value's type and range; `where` names its origin for the error."""
    ok_type = isinstance(value, rule.kind) and not (
        rule.kind is not bool and isinstance(value, bool)
    )
    if rule.kind is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value, ok_type = float(value), True
        except OverflowError:
            value, ok_type = math.inf, True
    if not ok_type:
        raise ConfigError(f"{where}: expected {rule.expected}, got {value!r}")
    # No setting means anything at infinity or NaN (1e400 in a TOML file reads as inf), and
    # no count fits past 64 bits: refused here rather than failing in every cell.
    if rule.kind is float and not math.isfinite(value):
        raise ConfigError(f"{where}: expected {rule.expected} (a finite number), got {value!r}")
    if rule.kind is int and not isinstance(value, bool) and abs(value) >= 2**63:
        raise ConfigError(f"{where}: expected {rule.expected}, got {value} (too large)")
    try:
        ok = rule.check(value)
    except ConfigError as exc:  # a check that knows better than "expected ..."
        raise ConfigError(f"{where}: {exc}") from None
    if not ok:
        raise ConfigError(f"{where}: expected {rule.expected}, got {value!r}")
    return value


def _axis(value: Any, name: str, where: str) -> tuple[Any, ...]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{where}: the list is empty; give at least one value")
    if name == "task":  # "none" reads better than an empty string in a list
        values = ["" if v == "none" else v for v in values]
    out = tuple(_typed(v, AXIS_RULES[name], where) for v in values)
    return tuple(dict.fromkeys(out))  # drop repeats, keep order


def _section(
    table: Any, rules: Mapping[str, Rule], where: str, *, axes: bool = False
) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table of keys, got {type(table).__name__}")
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in rules:
            raise ConfigError(f"{where}: unknown key {key!r}; expected one of: {', '.join(rules)}")
        out[key] = (
            _axis(value, key, f"{where} {key}")
            if axes
            else _typed(value, rules[key], f"{where} {key}")
        )
    return out


# ---------------------------------------------------------------------------------------------
# Suite files


def suite_dirs() -> list[Path]:
    """Where named suites are looked up, in order."""
    package = Path(__file__).resolve().parents[1]  # src/seqbench
    return [
        Path.cwd() / "benchmarks",
        package / "suites",  # an installed wheel carries the suites here (see pyproject.toml)
        package.parents[1] / "benchmarks",  # an editable install or a source checkout
    ]


def suite_names() -> list[str]:
    """The names `--suite` knows (the TOML files of `suite_dirs()`), sorted."""
    return sorted({p.stem for d in suite_dirs() if d.is_dir() for p in d.glob("*.toml")})


def find_suite(name: str | Path) -> Path:
    """A path as given, or a suite name ('seed') looked up in `suite_dirs()`."""
    path = Path(name)
    if path.is_file():
        return path
    if path.suffix == "" and len(path.parts) == 1:
        for folder in suite_dirs():
            candidate = folder / f"{name}.toml"
            if candidate.is_file():
                return candidate
        found = suite_names()
        hint = f"; known suites: {', '.join(found)}" if found else ""
        raise ConfigError(f"suite {str(name)!r} not found{hint}")
    if path.exists():
        raise ConfigError(f"{path}: is not a file")
    raise ConfigError(f"{path}: no such suite file")


def read_suite(path: Path) -> dict[str, Any]:
    """Parse a suite file into checked pieces: top-level values, matrices, measure, run."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    where = str(path)
    unknown = [k for k in data if k not in SECTIONS and k not in TOP_RULES]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; expected one of: {', '.join([*TOP_RULES, *SECTIONS])}"
        )
    top = {k: _typed(data[k], TOP_RULES[k], f"{where}: {k}") for k in TOP_RULES if k in data}
    base = _section(data.get("matrix", {}), AXIS_RULES, f"{where}: [matrix]", axes=True)
    variants_raw = data.get("variants", [])
    if not isinstance(variants_raw, list):
        raise ConfigError(f"{where}: variants: expected [[variants]] tables")
    variants = [
        _section(v, AXIS_RULES, f"{where}: [[variants]] #{i + 1}", axes=True)
        for i, v in enumerate(variants_raw)
    ]
    return {
        "top": top,
        "matrices": [base] + [{**base, **v} for v in variants],
        "measure": _section(data.get("measure", {}), MEASURE_RULES, f"{where}: [measure]"),
        "train": _section(data.get("train", {}), TRAIN_RULES, f"{where}: [train]"),
        "run": _section(data.get("run", {}), RUN_RULES, f"{where}: [run]"),
    }


# ---------------------------------------------------------------------------------------------
# Flags


def parse_list(text: str, name: str, flag: str) -> tuple[Any, ...]:
    """A comma list from the command line, typed and checked like a suite file's list."""
    rule = AXIS_RULES[name]
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise ConfigError(
            f"{flag}: expected a comma-separated list of {rule.expected}s, got {text!r}"
        )
    return _axis([_from_text(item, rule, flag) for item in items], name, flag)


def _from_text(item: str, rule: Rule, where: str) -> Any:
    try:
        if rule.kind is int:
            return int(item)
        if rule.kind is float:
            return float(item)
        if rule.kind is bool:
            return {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}[
                item.lower()
            ]
    except (ValueError, KeyError):
        raise ConfigError(f"{where}: expected {rule.expected}, got {item!r}") from None
    return item


def check_axis(name: str, value: Any, where: str) -> tuple[Any, ...]:
    """Check an axis given from Python (one value, or a list or tuple of them)."""
    return _axis(list(value) if isinstance(value, (tuple, list)) else value, name, where)


def check_setting(name: str, value: Any, flag: str) -> Any:
    """Check a single-valued flag (a measure or run setting)."""
    rule = (
        MEASURE_RULES.get(name) or TRAIN_RULES.get(name) or RUN_RULES.get(name) or TOP_RULES[name]
    )
    return _typed(value, rule, flag)
