"""What the tables show: the results table (with ratios to the matching simple RNN), the
comparison, gradient-flow, frontier and runs tables. `compute_*` derive numbers,
`format_*` write cells; each table is a list of `Column`s (layout.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from seqbench.core.schema import Cell, ResultRow
from seqbench.models.options import CORE_OPTIONS_DEFAULTS, arch_options
from seqbench.output.layout import Column, TableText, layout
from seqbench.output.text import (
    format_arch,
    format_bytes,
    format_count,
    format_created,
    format_env_differences,
    format_interval,
    format_median,
    format_noise,
    format_noted,
    format_plural,
    format_quantity,
    format_ratio,
    format_relative,
    format_score,
    format_seconds,
    format_status,
    format_statuses,
    format_with_ratio,
)


def reference_cell(cell: Cell, reference: str = "rnn") -> Cell:
    """The simple-RNN cell a row is compared with: same sizes, device, dtype and mode.

    Options the row's architecture does not take (a convolution's 'layers') are set to the
    reference's defaults, so the convolution is compared with a one-layer RNN.
    """
    options = arch_options(cell.arch)
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


CORE_PARAMS = "core params (×rnn)"
# At a narrow terminal (80 columns: a pipe, a CI log) the columns give way in `drop` order,
# least wanted first: the FLOP rates, the kernel, the noise notes (the warning under the
# table still counts noisy cells), then what a user came for last: memory, throughput,
# the score, and the core's parameters against the simple RNN's. The median never goes.
TABLE_COLUMNS: tuple[Column, ...] = (
    Column("arch", lambda r, _: format_arch(r), "left", fold=True),
    Column("T", lambda r, _: str(r.seq_len), fold=True),
    Column("batch", lambda r, _: str(r.batch_size), fold=True),
    Column("hidden", lambda r, _: str(r.hidden), fold=True),
    Column("device", lambda r, _: r.device, "left", fold=True),
    Column("dtype", lambda r, _: r.dtype, "left", fold=True),
    Column("mode", lambda r, _: r.mode, "left", fold=True),
    Column(
        CORE_PARAMS,
        lambda r, q: format_with_ratio(format_count(r.core_params), q.core_params),
        drop=9,
    ),
    Column("median ± IQR/2", lambda r, _: format_median(r)),
    Column("noise", lambda r, _: format_noise(r), "left", drop=3),
    Column("instr/step", lambda r, _: format_count(r.instr_per_step), drop=4),
    Column("×rnn", lambda _, q: format_ratio(q.time), drop=5),
    Column("seq/s", lambda r, _: format_count(r.seq_per_s), drop=7),
    Column("GFLOP/s", lambda r, _: "-" if r.tflops is None else f"{r.tflops * 1e3:.3g}", drop=1),
    Column("MFU", lambda r, _: "-" if r.mfu is None else f"{r.mfu:.1%}", drop=1),
    Column("peak mem", lambda r, _: format_bytes(r.peak_mem_bytes), drop=6),
    # streaming: what one sequence carries from token to token (a KV cache grows with T)
    Column("state/seq", lambda r, _: format_bytes(r.state_bytes), drop=6),
    Column("task", lambda r, _: r.task or "-", "left", fold=True),
    Column("compile", lambda r, _: "yes" if r.compile else "-", "left", fold=True),
    Column(
        "params matched to",
        lambda r, _: format_count(r.match_params) if r.match_params else "-",
        fold=True,
    ),
    # A task cell's seed and rate; a speed cell (lr 0) and a model's summary have neither.
    Column("seed", lambda r, _: str(r.seed) if r.lr else "-", fold=True),
    Column("lr", lambda r, _: f"{r.lr:g}" if r.lr else "-", fold=True),
    Column("score (chance)", lambda r, _: format_score(r), drop=8),
    # a task scored beyond its training length: "T:score" pairs (induction)
    Column("at longer T", lambda r, _: r.extrapolation or "-", "left", drop=4),
    Column(
        "to target",
        lambda r, _: (
            format_seconds(r.time_to_target_s)
            + (f" ({r.steps_to_target:,} steps)" if r.steps_to_target is not None else "")
        ),
        drop=3,
    ),
    Column(
        "horizon", lambda r, _: "-" if r.memory_horizon is None else str(r.memory_horizon), drop=4
    ),
    Column("kernel", lambda r, _: r.kernel or "-", "left", fold=True, drop=2),
    Column("status", lambda r, q: format_status(r, q.note), "left", fold=True),
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
    uncounted: dict[str, int] = {}
    for r in rows:
        if r.instr_note and r.status == "ok":
            uncounted[r.instr_note] = uncounted.get(r.instr_note, 0) + 1
    notes += [f"instructions not counted in {n} cell(s): {why}" for why, n in uncounted.items()]
    faulting = [r for r in rows if (r.faults_per_step or 0) >= FAULTS_HINT]
    if faulting:
        worst = max(r.faults_per_step for r in faulting)
        notes.append(
            f"{format_plural(len(faulting), 'cell')} map{'s' if len(faulting) == 1 else ''} fresh memory from the OS at every step (up to {worst:,.0f} page faults "
            "per step): allocator effects, which can depend on what ran before in the same process; "
            "compare architectures with --isolate"
        )
    columns = TABLE_COLUMNS
    if not any(c.core_params is not None for c in contexts):
        # Nothing to compare with (no simple RNN in the run, or filtered out): no "(×rnn)".
        columns = tuple(
            dataclasses.replace(c, header="core params") if c.header == CORE_PARAMS else c
            for c in columns
        )
    return layout(columns, rows, contexts, notes)


# Page faults per step from which a table says that the allocator is part of the figure
# (a 45 MB LSTM workspace faulted in afresh is ~8,000 per step).
FAULTS_HINT = 1000


def key_columns(get: Callable[[Any], Cell], exclude: tuple[str, ...] = ()) -> tuple[Column, ...]:
    """The key columns of TABLE_COLUMNS, for items that hold a cell."""
    keys = [c for c in TABLE_COLUMNS if c.fold and c.header not in ("kernel", "status", *exclude)]
    return tuple(
        dataclasses.replace(c, value=lambda item, ctx, c=c: c.value(get(item), ctx)) for c in keys
    )


def comparison_columns(unit: str) -> tuple[Column, ...]:
    return (
        *key_columns(lambda c: c.cell),
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
    """A `verdicts.Comparison` as a table: one line per cell present in both runs."""
    notes = list(dict.fromkeys(c.note for c in comparison.cells if c.note))
    contexts = [notes.index(c.note) + 1 if c.note else None for c in comparison.cells]
    return layout(comparison_columns(comparison.metric.unit), comparison.cells, contexts, notes)


def format_comparison_summary(comparison: Any) -> list[str]:
    """Lines under the table: the verdict counts, cells in one run only, environment notes."""
    from seqbench.judge.verdicts import VERDICTS

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


# Distances from the last step at which the gradient profile is shown.
PROFILE_DISTANCES = (1, 10, 25, 50, 100, 200, 500, 1000)


def _profile_at(norms: list[float], distance: int) -> str:
    """The norm `distance` steps back, relative to the last step's."""
    if distance >= len(norms):
        return "-"
    last = norms[-1]
    return format_relative(norms[len(norms) - 1 - distance] / last) if last > 0 else "-"


def _horizons(values: tuple[int, ...] | None, single: int | None) -> str:
    if values:
        return " / ".join(str(v) for v in values)
    return "-" if single is None else str(single)


def format_gradient_profiles(profiles: list[Any]) -> TableText:
    """One line per architecture and seed: horizons at each cut-off, and the norm at a few
    distances from the end."""
    length = max(len(p.initial) for p in profiles)
    distances = [d for d in PROFILE_DISTANCES if d < length]
    seeds = len({getattr(p, "seed", 0) for p in profiles}) > 1
    columns = [
        *key_columns(lambda p: p.cell),
        *([Column("seed", lambda p, _: str(p.seed))] if seeds else []),
        Column("horizon", lambda p, _: _horizons(p.initial_horizons, p.initial_horizon)),
        Column(
            "trained horizon",
            lambda p, _: _horizons(p.trained_horizons, p.trained_horizon),
        ),
        Column("score", lambda p, _: "-" if p.metric_value is None else f"{p.metric_value:.3g}"),
        *(Column(f"t-{d}", lambda p, _, d=d: _profile_at(p.initial, d)) for d in distances),
    ]
    return layout(columns, profiles, [None] * len(profiles), [])


def format_horizon_spread(spreads: list[Any]) -> list[str]:
    """One line per cell measured with several seeds: the horizon's median and range."""

    def describe(values: tuple[int, ...]) -> str:
        ordered = sorted(values)
        median = (
            ordered[len(ordered) // 2]
            if len(ordered) % 2
            else ((ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2)
        )
        return f"median {median:g}, range {ordered[0]}-{ordered[-1]}"

    lines = []
    for s in spreads:
        if len(s.seeds) < 2:
            continue
        line = f"{s.cell.arch} T={s.cell.seq_len}: horizon {describe(s.initial)}"
        if s.trained is not None:
            line += f"; trained {describe(s.trained)}"
        lines.append(f"{line} (seeds {', '.join(map(str, s.seeds))})")
    return lines


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
