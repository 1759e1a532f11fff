"""How cost grows with length, as text: the scaling table (fitted exponents and steps off
the fit, with notes on their likely causes) and the sentences that say where two models'
curves cross. The numbers come from seqbench.judge.scaling."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from seqbench.core.schema import Cell
from seqbench.judge.scaling import compute_exponent_gap, expected_exponent
from seqbench.output.layout import Column, TableText, layout
from seqbench.output.tables import key_columns
from seqbench.output.text import format_arch, format_noted

# Key columns that tell two series apart beyond the architecture and its options, with how
# a label writes them.
_CONTEXT_LABELS: dict[str, Callable[[Any], str]] = {
    "mode": str,
    "device": str,
    "dtype": str,
    "task": str,
    "batch_size": lambda v: f"batch {v}",
    "hidden": lambda v: f"hidden {v}",
    "vocab": lambda v: f"vocab {v}",
    "embed": lambda v: f"embed {v}",
}


def varying_context(keys: Sequence[Cell]) -> list[str]:
    """The context columns whose value differs between the given series."""
    return [c for c in _CONTEXT_LABELS if len({getattr(k, c) for k in keys}) > 1]


def format_context(key: Cell, columns: Sequence[str]) -> str:
    return ", ".join(_CONTEXT_LABELS[c](getattr(key, c)) for c in columns)


def format_series(key: Cell, columns: Sequence[str]) -> str:
    """A series' name: its architecture and the context that tells it apart, 'lstm · train'."""
    context = format_context(key, columns)
    return f"{format_arch(key)} · {context}" if context else format_arch(key)


def format_lengths(lengths: Sequence[int]) -> str:
    return f"{lengths[0]}–{lengths[-1]} ({len(lengths)})"


def format_exponent(k: float) -> str:
    return f"{k:.2f}"


def format_exponent_hint(gap: float, expected: float) -> str:
    """Why an exponent strays from its family's (see scaling.EXPECTED_TIME_EXPONENT)."""
    if gap < 0:
        # Attention's T² term overtakes its linear projections only at long lengths.
        slower = "fixed per-step costs" if expected <= 1 else "terms that grow more slowly"
        return (
            f"time grows slower than the T^{expected:g} this family predicts: {slower} "
            "still dominate at these lengths; longer sequences show the asymptotic growth"
        )
    return (
        f"time grows faster than the T^{expected:g} this family predicts: something besides "
        "the architecture grows with T (memory traffic, a kernel switch, subnormal floats)"
    )


_METRIC_NOUNS = {"median_s": "time", "peak_mem_bytes": "memory"}


def format_anomaly_hint(anomaly: Any, flush_denormal: bool | None = None) -> str:
    """What a step off the fit measured, against the fit, and its likely causes."""
    noun = _METRIC_NOUNS.get(anomaly.metric, anomaly.metric)
    measured = (
        f"{noun} ×{anomaly.observed:.3g} from T={anomaly.before} to T={anomaly.after}, "
        f"where the fit expects ×{anomaly.fitted:.2g}"
    )
    if anomaly.noisy:
        cause = (
            "one end's timing is flagged noisy (see its noise column): the step says nothing "
            "about the architecture or its kernels; rerun on a quieter machine, or with "
            "--threads 1 and more --processes"
        )
    elif not anomaly.is_jump:
        cause = (
            "one end was likely disturbed (see its IQR; --rounds spreads a cell over "
            "passes), or a faster kernel took over"
        )
    elif anomaly.kernel_before != anomaly.kernel_after:
        cause = (
            f"the kernel changes ({anomaly.kernel_before or '-'} → {anomaly.kernel_after or '-'}):"
            " an implementation's cost, not the architecture's"
        )
    elif anomaly.metric != "median_s":
        cause = "an allocator or kernel switch?"
    elif anomaly.key.device == "cpu" and flush_denormal is False:
        cause = (
            "this run kept subnormal floats, whose arithmetic is slow on many CPUs: "
            "rerun with --flush-denormal to tell"
        )
    elif anomaly.key.device == "cpu" and flush_denormal:
        cause = (
            "not subnormals (this run flushed them): a kernel or algorithm switch, or the "
            "working set outgrowing a cache?"
        )
    else:
        cause = (
            "subnormal floats (on a CPU), a kernel or algorithm switch, or the working set "
            "outgrowing a cache?"
        )
    return f"{measured}: {cause}"


def format_step(anomaly: Any) -> str:
    """'time ×31 at 128→256': a step off the fit (its note says what the fit expects)."""
    noun = _METRIC_NOUNS.get(anomaly.metric, anomaly.metric)
    return f"{noun} ×{anomaly.observed:.2g} at {anomaly.before}→{anomaly.after}"


@dataclass(frozen=True)
class _ScalingLine:
    """One series of the scaling table, its cells written out (notes already numbered)."""

    key: Cell
    lengths: str
    time: str
    memory: str
    steps: str


def _with_note(text: str, note: str | None, notes: list[str]) -> str:
    if note is None:
        return text
    if note not in notes:
        notes.append(note)
    return format_noted(text, notes.index(note) + 1)


SCALING_COLUMNS: tuple[Column, ...] = (
    *key_columns(lambda line: line.key, exclude=("T",)),
    Column("lengths", lambda line, _: line.lengths, drop=2),
    Column("time ∝ T^k", lambda line, _: line.time),
    Column("memory ∝ T^k", lambda line, _: line.memory, drop=1),
    Column("steps off the fit", lambda line, _: line.steps, "left", wrap=True),
)


def format_scaling(scaling: Any, flush_denormal: bool | None = None) -> TableText:
    """The scaling table: per series, the fitted exponents, and the steps far off the fit.

    Notes explain exponents far from the family's and the likely cause of each step off the fit.
    """
    notes: list[str] = []
    lines = []
    for key in scaling.keys:
        time, memory = scaling.fit("median_s", key), scaling.fit("peak_mem_bytes", key)
        time_text = "-"
        if time is not None:
            gap = compute_exponent_gap(time)
            hint = None if gap is None else format_exponent_hint(gap, expected_exponent(key.arch))
            time_text = _with_note(format_exponent(time.exponent), hint, notes)
        steps = [
            _with_note(format_step(a), format_anomaly_hint(a, flush_denormal), notes)
            for a in scaling.anomalies
            if a.key == key
        ]
        lines.append(
            _ScalingLine(
                key,
                format_lengths((time or memory).lengths),
                time_text,
                "-" if memory is None else format_exponent(memory.exponent),
                "; ".join(steps) or "-",
            )
        )
    return layout(SCALING_COLUMNS, lines, [None] * len(lines), notes)


def format_crossover(crossover: Any, columns: Sequence[str] = ()) -> str:
    """'conv1d is faster than lstm below T≈180, lstm above (train)'."""
    below, above = format_arch(crossover.below), format_arch(crossover.above)
    better = "faster than" if crossover.metric == "median_s" else "lighter on memory than"
    context = format_context(crossover.below, columns)
    where = f" ({context})" if context else ""
    return f"{below} is {better} {above} below T≈{crossover.length:.0f}, {above} above{where}"


def format_crossovers(scaling: Any) -> list[str]:
    """One sentence per crossing of two fitted curves, time first."""
    columns = varying_context(scaling.keys)
    ordered = sorted(scaling.crossovers, key=lambda c: c.metric != "median_s")
    return [format_crossover(c, columns) for c in ordered]
