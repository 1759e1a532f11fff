"""What a table shows: derived ratios (`compute_*`) and cell text (`format_*`), kept apart.

Both the Rich table and the markdown export read `table_columns`, so the terminal and a
PR comment show the same figures. Columns whose value is the same in every row move to
the caption, so that the table keeps to what varies.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from seqbench.models import CORE_OPTIONS_DEFAULTS, REGISTRY
from seqbench.scaling import compute_exponent_gap, expected_exponent
from seqbench.schema import STATUSES, Cell, ResultRow

# --------------------------------------------------------------------------- compute_*


def reference_cell(cell: Cell, reference: str = "rnn") -> Cell:
    """The simple-RNN cell a row is compared with: same sizes, device, dtype and mode.

    Options the row's architecture does not take (a convolution's 'layers') are set to the
    reference's defaults, so the convolution is compared with a one-layer RNN.
    """
    spec = REGISTRY.get(cell.arch)
    options = spec.options if spec else frozenset()
    pinned = {k: v for k, v in CORE_OPTIONS_DEFAULTS.items() if k not in options}
    # At equal parameters each architecture has its own width: match on the target instead.
    if cell.match_params:
        pinned["hidden"] = 0
    return dataclasses.replace(cell, arch=reference, **pinned)


@dataclass(frozen=True)
class Ratios:
    """What a row's table cells need beyond the row: ratios to the reference, and the
    number of the note that carries its message."""

    core_params: float | None = None
    time: float | None = None
    note: int | None = None


def compute_ratios(rows: list[ResultRow], reference: str = "rnn") -> dict[str, Ratios]:
    """Per cell id: core parameters and median time relative to the matching simple RNN."""
    by_cell = {
        (dataclasses.replace(r.cell, hidden=0) if r.match_params else r.cell): r for r in rows
    }

    out: dict[str, Ratios] = {}
    for row in rows:
        ref = by_cell.get(reference_cell(row.cell, reference))
        if ref is None:
            continue
        params = row.core_params / ref.core_params if row.core_params and ref.core_params else None
        time = row.median_s / ref.median_s if row.median_s and ref.median_s else None
        out[row.cell_id] = Ratios(params, time)
    return out


# --------------------------------------------------------------------------- format_*


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_bytes(count: float | None) -> str:
    if count is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(count) >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count:.0f} B"


def format_count(count: float | None) -> str:
    """3 significant digits with k/M/G/T suffixes: 1234567 -> '1.23M'."""
    if count is None:
        return "-"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.3g}{unit}"
    return f"{count:.3g}"


def format_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}×"


def format_with_ratio(text: str, ratio: float | None) -> str:
    return text if ratio is None or text == "-" else f"{text} ({format_ratio(ratio)})"


def format_variant(row: Cell) -> str:
    """The options that differ from a plain one-layer, one-way model without dropout."""
    spec = REGISTRY.get(row.arch)
    options = spec.options if spec else frozenset()
    parts = []
    if "layers" in options and row.layers != 1:
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


@dataclass(frozen=True)
class Column:
    """One column of a table: a header and how to write an item's cell (given its context)."""

    header: str
    value: Callable[[Any, Any], str]
    justify: str = "right"
    # A constant column (same text in every row) moves to the table's caption.
    fold: bool = False
    # When the table is too wide for the terminal, columns go in this order (1 first).
    drop: int | None = None


TABLE_COLUMNS: tuple[Column, ...] = (
    Column("arch", lambda r, _: format_arch(r), "left", fold=True),
    Column("T", lambda r, _: str(r.seq_len), fold=True),
    Column("batch", lambda r, _: str(r.batch_size), fold=True),
    Column("hidden", lambda r, _: str(r.hidden), fold=True),
    Column("device", lambda r, _: r.device, "left", fold=True),
    Column("dtype", lambda r, _: r.dtype, "left", fold=True),
    Column("mode", lambda r, _: r.mode, "left", fold=True),
    Column(
        "core params (×rnn)",
        lambda r, q: format_with_ratio(format_count(r.core_params), q.core_params),
        drop=5,
    ),
    Column("median ± IQR/2", lambda r, _: format_median(r)),
    Column("×rnn", lambda _, q: format_ratio(q.time), drop=6),
    Column("seq/s", lambda r, _: format_count(r.seq_per_s), drop=4),
    Column("GFLOP/s", lambda r, _: "-" if r.tflops is None else f"{r.tflops * 1e3:.3g}", drop=1),
    Column("MFU", lambda r, _: "-" if r.mfu is None else f"{r.mfu:.1%}", drop=1),
    Column("peak mem", lambda r, _: format_bytes(r.peak_mem_bytes), drop=3),
    Column("task", lambda r, _: r.task or "-", "left", fold=True),
    Column("compile", lambda r, _: "yes" if r.compile else "-", "left", fold=True),
    Column(
        "params matched to",
        lambda r, _: format_count(r.match_params) if r.match_params else "-",
        fold=True,
    ),
    Column("score (chance)", lambda r, _: format_score(r), drop=7),
    Column("to target", lambda r, _: format_seconds(r.time_to_target_s), drop=3),
    Column(
        "horizon", lambda r, _: "-" if r.memory_horizon is None else str(r.memory_horizon), drop=4
    ),
    Column("kernel", lambda r, _: r.kernel or "-", "left", fold=True, drop=2),
    Column("status", lambda r, q: format_status(r, q.note), "left", fold=True),
)


@dataclass(frozen=True)
class TableText:
    """A table as text cells: headers, justification, rows, and a caption of constants."""

    headers: list[str]
    justify: list[str]
    cells: list[list[str]]
    caption: str
    drop: list[int | None] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)  # note i+1's text

    def drop_order(self) -> list[int]:
        """Indices of the columns that may give way to a narrow terminal, first to go first."""
        return [i for _, i in sorted((d, i) for i, d in enumerate(self.drop) if d is not None)]

    def without(self, columns: list[int]) -> TableText:
        """The table less some columns, with a caption note naming them."""
        if not columns:
            return self
        keep = [i for i in range(len(self.headers)) if i not in columns]
        note = f"not shown at this width: {', '.join(self.headers[i] for i in columns)}"
        return TableText(
            headers=[self.headers[i] for i in keep],
            justify=[self.justify[i] for i in keep],
            cells=[[c[i] for i in keep] for c in self.cells],
            caption=f"{self.caption}; {note}" if self.caption else note,
            drop=[self.drop[i] for i in keep],
            notes=self.notes,
        )


def layout(
    columns: Sequence[Column], items: Sequence[Any], contexts: Sequence[Any], notes: list[str]
) -> TableText:
    """Write every item's cells, then fold constant columns into the caption and drop
    measured columns that are empty everywhere."""
    values = [
        [col.value(item, ctx) for col in columns] for item, ctx in zip(items, contexts, strict=True)
    ]
    keep, constants = [], []
    for i, col in enumerate(columns):
        column_values = {v[i] for v in values}
        if col.fold and len(column_values) == 1 and len(items) > 1:
            only = column_values.pop()
            if only != "-":  # an empty setting (no task) goes without saying
                constants.append(f"{col.header} {only}")
            continue

        if not col.fold and column_values <= {"-"}:
            continue  # nothing measured in this column (e.g. no RNN to compare with)
        keep.append(i)
    return TableText(
        headers=[columns[i].header for i in keep],
        justify=[columns[i].justify for i in keep],
        cells=[[v[i] for i in keep] for v in values],
        caption=", ".join(constants),
        drop=[columns[i].drop for i in keep],
        notes=notes,
    )


def format_table(rows: list[ResultRow], reference: str = "rnn") -> TableText:
    """The results table: one line per cell."""
    ratios = compute_ratios(rows, reference)
    # Messages go under the table, numbered, once each: long lines would crowd out figures.
    notes = list(dict.fromkeys(r.message for r in rows if r.status != "ok" and r.message))
    contexts = [
        dataclasses.replace(
            ratios.get(r.cell_id, Ratios()),
            note=notes.index(r.message) + 1 if r.status != "ok" and r.message else None,
        )
        for r in rows
    ]
    faulting = [r for r in rows if (r.faults_per_step or 0) >= FAULTS_HINT]
    if faulting:
        worst = max(r.faults_per_step for r in faulting)
        notes.append(
            f"{len(faulting)} cell(s) map fresh memory from the OS at every step (up to {worst:,.0f} page faults "
            "per step): allocator effects, which can depend on what ran before in the same process; "
            "compare architectures with --isolate"
        )
    return layout(TABLE_COLUMNS, rows, contexts, notes)


# Page faults per step from which a table says that the allocator is part of the figure
# (a 45 MB LSTM workspace faulted in afresh is ~8,000 per step).
FAULTS_HINT = 1000


_ALIGN = {"left": ":---", "right": "---:"}


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def format_markdown(table: TableText, title: str | None = None) -> str:
    """A GitHub-flavoured markdown table, its caption in italics and its notes numbered."""
    lines = [f"### {title}", ""] if title else []
    lines += [
        "| " + " | ".join(table.headers) + " |",
        "| " + " | ".join(_ALIGN[j] for j in table.justify) + " |",
    ]
    lines += ["| " + " | ".join(_md_escape(c) for c in cells) + " |" for cells in table.cells]
    if table.caption:
        lines += ["", f"_{_md_escape(table.caption)}_"]
    if table.notes:
        lines += [""] + [f"{i}. {_md_escape(note)}" for i, note in enumerate(table.notes, 1)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- comparisons


def format_quantity(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return (
        format_seconds(value)
        if unit == "s"
        else format_bytes(value)
        if unit == "B"
        else f"{value:.4g}"
    )


def format_interval(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"{low:.3f} – {high:.3f}"


def _cell_columns(get: Callable[[Any], Cell], exclude: tuple[str, ...] = ()) -> tuple[Column, ...]:
    """The key columns of TABLE_COLUMNS, for items that hold a cell."""
    keys = [c for c in TABLE_COLUMNS if c.fold and c.header not in ("kernel", "status", *exclude)]
    return tuple(
        dataclasses.replace(c, value=lambda item, ctx, c=c: c.value(get(item), ctx)) for c in keys
    )


def comparison_columns(unit: str) -> tuple[Column, ...]:
    return (
        *_cell_columns(lambda c: c.cell),
        Column("baseline", lambda c, _: format_quantity(c.baseline, unit)),
        Column("candidate", lambda c, _: format_quantity(c.candidate, unit)),
        Column("ratio", lambda c, _: "-" if c.ratio is None else f"{c.ratio:.3f}"),
        Column("95% CI", lambda c, _: format_interval(c.ci_low, c.ci_high)),
        Column(
            "verdict",
            lambda c, note: format_noted(c.verdict, note),
            "left",
        ),
    )


def format_comparison(comparison: Any) -> TableText:
    """A `compare.Comparison` as a table: one line per cell present in both runs."""
    notes = list(dict.fromkeys(c.note for c in comparison.cells if c.note))
    contexts = [notes.index(c.note) + 1 if c.note else None for c in comparison.cells]
    return layout(comparison_columns(comparison.metric.unit), comparison.cells, contexts, notes)


def format_comparison_summary(comparison: Any) -> list[str]:
    """Lines under the table: the verdict counts, cells in one run only, environment notes."""
    from seqbench.compare import VERDICTS

    counts = [f"{comparison.count(v)} {v}" for v in VERDICTS if comparison.count(v)]
    lines = [
        f"{comparison.metric.name}: {', '.join(counts) or 'no cells in common'} "
        f"(threshold {comparison.threshold:.0%}; {comparison.baseline_id} -> {comparison.candidate_id})"
    ]
    for side, cells in (
        ("baseline", comparison.only_baseline),
        ("candidate", comparison.only_candidate),
    ):
        if cells:
            lines.append(
                f"only in the {side} ({len(cells)}): {', '.join(c.cell_id for c in cells)}"
            )
    if comparison.env_differences:
        lines.append("environments differ: " + format_env_differences(comparison.env_differences))
    return lines


def format_env_differences(differences: list[tuple[str, Any, Any]]) -> str:
    return ", ".join(f"{key} ({a} -> {b})" for key, a, b in differences)


# --------------------------------------------------------------------------- gradient flow

# Distances from the last step at which the gradient profile is shown.
PROFILE_DISTANCES = (1, 10, 25, 50, 100, 200, 500, 1000)


def format_relative(value: float) -> str:
    return "0" if value == 0 else f"{value:.0e}" if value < 0.01 else f"{value:.2f}"


def _profile_at(norms: list[float], distance: int) -> str:
    if distance >= len(norms):
        return "-"
    peak = max(norms)
    return format_relative(norms[len(norms) - 1 - distance] / peak) if peak > 0 else "0"


def format_gradient_profiles(profiles: list[Any]) -> TableText:
    """One line per architecture: horizons, and the norm at a few distances from the end."""
    length = max(len(p.initial) for p in profiles)
    distances = [d for d in PROFILE_DISTANCES if d < length]
    columns = [
        *_cell_columns(lambda p: p.cell),
        Column("horizon", lambda p, _: str(p.initial_horizon)),
        Column(
            "trained horizon",
            lambda p, _: "-" if p.trained_horizon is None else str(p.trained_horizon),
        ),
        Column("score", lambda p, _: "-" if p.metric_value is None else f"{p.metric_value:.3g}"),
        *(Column(f"t-{d}", lambda p, _, d=d: _profile_at(p.initial, d)) for d in distances),
    ]
    return layout(columns, profiles, [None] * len(profiles), [])


# --------------------------------------------------------------------------- memory frontier


def format_frontier(results: dict[str, Any]) -> TableText:
    """One line per architecture: the longest length that fit, its peak, the first failure."""

    def peak_at(result: Any) -> str:
        fit = [p for p in result.probes if p.fits and p.seq_len == result.largest]
        return format_bytes(fit[0].measurement.row.peak_mem_bytes) if fit else "-"

    columns = [
        Column("arch", lambda item, _: item[0], "left"),
        Column(
            "largest T", lambda item, _: "-" if item[1].largest is None else str(item[1].largest)
        ),
        Column("peak there", lambda item, _: peak_at(item[1])),
        Column(
            "first failing T",
            lambda item, _: (
                "-" if item[1].smallest_failing is None else str(item[1].smallest_failing)
            ),
        ),
        Column("probes", lambda item, _: str(len(item[1].probes))),
    ]
    items = list(results.items())
    return layout(columns, items, [None] * len(items), [])


# --------------------------------------------------------------------------- scaling

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
    if not anomaly.is_jump:
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
    *_cell_columns(lambda line: line.key, exclude=("T",)),
    Column("lengths", lambda line, _: line.lengths, drop=2),
    Column("time ∝ T^k", lambda line, _: line.time),
    Column("memory ∝ T^k", lambda line, _: line.memory, drop=1),
    Column("steps off the fit", lambda line, _: line.steps, "left"),
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


# --------------------------------------------------------------------------- runs, env


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


RUNS_COLUMNS: tuple[Column, ...] = (
    Column("id", lambda r, _: r.run_id, "left"),
    Column("label", lambda r, _: r.label or "-", "left", fold=True, drop=2),
    Column("created (UTC)", lambda r, _: format_created(r.created_at), "left", drop=3),
    Column("device", lambda r, _: ", ".join(r.devices) or "-", "left", fold=True, drop=1),
    Column("cells", lambda r, _: str(r.cells)),
    Column("status", lambda r, _: format_statuses(r.statuses), "left"),
    Column("state", lambda r, note: format_noted(r.state or "-", note), "left", fold=True),
)


def format_runs(summaries: Sequence[Any]) -> TableText:
    """`seqbench runs`: one line per saved run; a damaged run's problem as a note."""
    notes = [s.problem for s in summaries if s.problem]
    contexts = [notes.index(s.problem) + 1 if s.problem else None for s in summaries]
    return layout(RUNS_COLUMNS, summaries, contexts, notes)


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
