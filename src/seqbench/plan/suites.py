"""Suite files and flags: reading a configuration from them, every value checked.

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

Every value is checked where it is read against the rule its declaration gives
(`plan.config`, `core.settings`), and an error names the file (or flag), the key, and what
was expected. `resolve_config` lays the flags over a suite file (or the built-in quick
suite). Nothing here imports torch: architectures and tasks are checked by importing them
only when a value names one.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seqbench.core.errors import ConfigError
from seqbench.core.settings import MeasureSettings, Rule, TrainSettings
from seqbench.models.options import split_list
from seqbench.plan.config import (
    AXIS_RULES,
    MEASURE_RULES,
    RUN_RULES,
    TOP_RULES,
    TRAIN_RULES,
    Axes,
    SuiteConfig,
    apply_overrides,
    describe_matrices,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


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
    try:
        here = [Path.cwd() / "benchmarks"]
    except FileNotFoundError:  # the current folder was deleted: the command says so
        here = []
    return [
        *here,
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
        # utf-8-sig: a byte-order mark, as some Windows editors write, is not part of the TOML
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    where = str(path)
    if not data:  # most likely the wrong file, or one not saved yet: not the quick suite
        raise ConfigError(f"{where}: the suite is empty; give at least a [matrix] table")
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
    items = split_list(text)  # an architecture's variant, `mamba(d_state=32,expand=1)`, is one
    if not text.strip() or any(not item for item in items):
        raise ConfigError(
            f"{flag}: expected a comma-separated list, each {rule.expected}, got {text!r}"
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
