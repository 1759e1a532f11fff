"""How one figure is written: seconds, bytes, counts, ratios, a cell's architecture and
variant, an environment. `format_*` functions return strings and compute nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from seqbench.core.schema import STATUSES, Cell, ResultRow
from seqbench.models.options import arch_options


def _three_digits(value: float) -> float:
    """The value rounded to the 3 significant digits a table shows (999.7 -> 1000.0), so
    that the unit is chosen for the number written, not the number measured."""
    return float(f"{value:.3g}")


def _scaled(value: float, units: tuple[tuple[str, float], ...], sep: str) -> str | None:
    """The value in the largest unit it reaches, 3 significant digits, never 4 digits
    before the point ('1e+03 KiB' is '0.977 MiB'); None if it reaches none."""
    for unit, scale in units:
        if abs(_three_digits(value / scale)) >= 1:
            return f"{_three_digits(value / scale):g}{sep}{unit}"
    return None


_SECONDS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))
_BYTES = (("B", 1), ("KiB", 2**10), ("MiB", 2**20), ("GiB", 2**30), ("TiB", 2**40))


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds == 0:
        return "0 s"
    return _scaled(seconds, _SECONDS, " ") or f"{seconds / 1e-9:.3g} ns"


def format_bytes(count: float | None) -> str:
    if count is None:
        return "-"
    if abs(count) < 999.5:
        return f"{count:.0f} B"
    # Up a unit from 1000 of the one below, so that no figure has four digits.
    unit, scale = next(
        ((u, s) for u, s in _BYTES[1:] if abs(_three_digits(count / s)) < 1000), _BYTES[-1]
    )
    return f"{_three_digits(count / scale):g} {unit}"


def format_count(count: float | None) -> str:
    """3 significant digits with k/M/G/T suffixes: 1234567 -> '1.23M', 999999 -> '1M'."""
    if count is None:
        return "-"
    units = (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3))
    return _scaled(count, units, "") or f"{_three_digits(count):g}"


def format_ratio(ratio: float | None) -> str:
    """'1.25×'; a ratio below 0.1 keeps two significant digits ('0.0042×', not '0.00×')."""
    if ratio is None:
        return "-"
    return f"{ratio:.2g}×" if abs(ratio) < 0.1 else f"{ratio:.2f}×"


def format_plural(count: int, noun: str, plural: str | None = None) -> str:
    """'1 cell', '2 cells'."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def format_with_ratio(text: str, ratio: float | None) -> str:
    return text if ratio is None or text == "-" else f"{text} ({format_ratio(ratio)})"


def format_variant(row: Cell) -> str:
    """The options that differ from a plain one-layer, one-way model without dropout."""
    options = arch_options(row.arch)
    parts = []
    if "layers" in options and row.layers > 1:  # 0: not recorded (a user module)
        parts.append(f"{row.layers} layers")
    if "bidirectional" in options and row.bidirectional:
        parts.append("bidir")
    if "dropout" in options and row.dropout:
        parts.append(f"drop {row.dropout:g}")
    if "recurrent_dropout" in options and row.recurrent_dropout:
        parts.append(f"rec-drop {row.recurrent_dropout:g}")
    return ", ".join(parts)


def format_arch(row: Cell) -> str:
    variant = format_variant(row)
    return f"{row.arch} ({variant})" if variant else row.arch


def format_median(row: ResultRow) -> str:
    """Median step time and half the interquartile range, relative: '1.63 ms ± 1.9%'."""
    if row.median_s is None:
        return "-"
    if row.iqr_s is None or row.median_s <= 0:
        return format_seconds(row.median_s)
    return f"{format_seconds(row.median_s)} ± {row.iqr_s / 2 / row.median_s:.1%}"


def format_noise(row: ResultRow) -> str:
    """Why a cell's timing cannot be trusted, briefly ('-' when it can): 'CI ±23%'."""
    from seqbench.judge.noise import findings

    return ", ".join(short for short, _ in findings(row)) if row.noisy else "-"


def format_score(row: ResultRow) -> str:
    """The task metric after training, with what a blind guess scores: 'mse 0.0123 (0.167)'."""
    if row.metric_value is None:
        return "-"
    chance = "" if row.chance_value is None else f" ({row.chance_value:.3g})"
    return f"{row.metric} {row.metric_value:.3g}{chance}"


def format_noted(text: str, note: int | None) -> str:
    """A cell's text with a reference to the note under the table that explains it."""
    return text if note is None else f"{text} [{note}]"


def format_status(row: ResultRow, note: int | None) -> str:
    """The status, with a reference to the note under the table that holds its message."""
    return format_noted(row.status, note)


def format_env_line(env: dict) -> str:
    """One line of what shaped the numbers: CPU, threads, subnormal handling, torch."""
    subnormals = (
        "subnormals flushed to zero"
        if env.get("flush_denormal")
        else "subnormals kept (slow on many CPUs)"
    )
    gpu = f" · {env['gpu']['name']}" if env.get("gpu") else ""
    threads = env.get("threads")
    return f"{env.get('cpu')}{gpu} · {threads} thread{'' if threads == 1 else 's'} · {subnormals} · torch {env.get('torch')}"


def format_quantity(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return (
        format_seconds(value)
        if unit == "s"
        else format_bytes(value)
        if unit == "B"
        else format_count(value)
        if unit == "instr"
        else f"{value:.4g}"
    )


def format_interval(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"{low:.3f} – {high:.3f}"


def format_env_differences(differences: list[tuple[str, Any, Any]]) -> str:
    return ", ".join(f"{key} ({a} -> {b})" for key, a, b in differences)


def format_relative(value: float) -> str:
    return "0" if value == 0 else f"{value:.0e}" if value < 0.01 else f"{value:.2f}"


def format_created(stamp: str) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM' in UTC (the text itself if it is not one)."""
    try:
        moment = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return stamp or "-"
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M")


def format_statuses(counts: dict[str, int]) -> str:
    """'19 ok, 1 skipped', in the order of schema.STATUSES."""
    return ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts.get(s)) or "-"


def format_env_items(env: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """The environment as (key, text) pairs; nested maps flatten to 'gpu.name'."""
    items: list[tuple[str, str]] = []
    for key, value in env.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items += format_env_items(value, f"{name}.") or [(name, "-")]
        elif isinstance(value, list | tuple):
            items.append((name, " ".join(str(v) for v in value) or "-"))
        else:
            items.append((name, "-" if value is None else str(value)))
    return items
