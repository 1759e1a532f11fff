"""Samples on a Clock: warm-up, then per-step samples until the budget or precision is met;
the row's timing columns from those samples; and rounds of one cell pooled into one row.

Nothing here imports torch: the step is any callable, the clock any `timing.Clock`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from seqbench.core.schema import Cell, Measurement
from seqbench.core.settings import MeasureSettings
from seqbench.core.timing import Clock
from seqbench.judge import noise, stats


def sample_times(
    step: Callable[[], object], clock: Clock, settings: MeasureSettings
) -> tuple[list[float], int]:
    """Warm up, choose how many steps one sample spans, then collect per-step samples."""
    number = warm_up(step, clock, settings)
    return take_samples(step, clock, settings, number), number


def warm_up(step: Callable[[], object], clock: Clock, settings: MeasureSettings) -> int:
    """Run untimed steps for at least `warmup_steps` steps and `warmup_time` seconds (cuDNN
    and oneDNN choose their algorithms on the first calls); return how many back-to-back
    steps one sample should span to last `min_sample_s`, so clock overhead stays negligible."""
    warm_steps, warm_time, last = 0, 0.0, 0.0
    while warm_steps < max(settings.warmup_steps, 1) or warm_time < settings.warmup_time:
        last = clock.time(step, 1)
        warm_steps += 1
        warm_time += last
    number = 1
    while last <= 0:  # a step below the clock's resolution: a span the clock can see
        number = _wider(number)
        last = clock.time(step, number) / number
    return max(number, math.ceil(settings.min_sample_s / last))


# The most steps one sample may span while looking for one the clock can read (a step that
# takes no time at all would otherwise be a zero sample, which is not a time).
MAX_SPAN = 2**20


def _wider(number: int) -> int:
    if number >= MAX_SPAN:
        raise RuntimeError(
            f"the clock read no time for {number:,} steps in a row: it cannot time this step"
        )
    return number * 2


def take_samples(
    step: Callable[[], object], clock: Clock, settings: MeasureSettings, number: int
) -> list[float]:
    """Per-step samples of `number` steps each, until there are `min_repeats` of them and
    either `min_time` seconds were timed or the median's confidence interval is within
    `precision`; never more than `max_repeats`."""
    samples: list[float] = []
    timed = 0.0
    while len(samples) < settings.max_repeats:
        elapsed = clock.time(step, number)
        if elapsed <= 0:  # below the clock's resolution this time: never a sample of zero
            number = _wider(number)
            continue
        samples.append(elapsed / number)
        timed += elapsed
        if len(samples) < settings.min_repeats:
            continue
        if timed >= settings.min_time:
            break
        if settings.precision > 0 and stats.relative_ci_halfwidth(samples) <= settings.precision:
            break
    return samples


def timing_fields(
    cell: Cell, flops: int | None, samples: list[float], groups: list[list[float]] | None = None
) -> dict[str, float | int | None]:
    """The row's timing statistics and throughput, from its per-step samples. With
    `groups`, the samples of two or more fresh processes (`groups[k]`, process k's), the
    figure and its interval are across the processes (stats.across_processes); the IQR,
    minimum and count stay those of all the samples."""
    summary = stats.summarize(samples)
    fields: dict[str, float | int | None] = {
        "median_s": summary.median,
        "iqr_s": summary.iqr,
        "ci_low_s": summary.ci_low,
        "ci_high_s": summary.ci_high,
        "min_s": summary.minimum,
        "repeats": summary.n,
        "processes": 1,
        "process_spread": None,
        "within_spread": None,
    }
    if groups is not None and len(groups) >= 2:
        across = stats.across_processes(groups)
        fields.update(
            median_s=across.center,
            ci_low_s=across.low,
            ci_high_s=across.high,
            processes=across.n,
            process_spread=across.spread,
            within_spread=across.within,
        )
    per_step = fields["median_s"]
    return {
        **fields,
        "seq_per_s": cell.batch_size / per_step,
        "tokens_per_s": cell.tokens / per_step,
        "tflops": None if flops is None else flops * cell.batch_size / per_step / 1e12,
    }


def _larger(a, b):
    return max(a, b) if a is not None and b is not None else (a if b is None else b)


def _smaller(a, b):
    return min(a, b) if a is not None and b is not None else (a if b is None else b)


def merge_rounds(
    earlier: Measurement, later: Measurement, groups: list[list[float]] | None = None
) -> Measurement:
    """One cell measured in two passes, as one row: samples pooled, statistics recomputed.
    `groups` are the pooled samples split by the fresh process they came from, when the
    passes ran in more than one (see `timing_fields`).

    A pass that fails makes the cell fail: its row (status and message) replaces the rest.
    The noise columns keep the worse of the two passes, so a pass measured under
    interference flags the cell.
    """
    rounds = (earlier.row.rounds or 1) + 1
    if later.row.status != "ok":
        return Measurement(dataclasses.replace(later.row, rounds=rounds))
    samples = [*earlier.samples, *later.samples]
    row = dataclasses.replace(
        earlier.row,
        rounds=rounds,
        inner_loops=_larger(earlier.row.inner_loops, later.row.inner_loops),
        peak_mem_bytes=_larger(earlier.row.peak_mem_bytes, later.row.peak_mem_bytes),
        peak_rss_bytes=_larger(earlier.row.peak_rss_bytes, later.row.peak_rss_bytes),
        wall_s=(earlier.row.wall_s or 0.0) + (later.row.wall_s or 0.0),
        load_after=later.row.load_after,
        cpu_share=_smaller(earlier.row.cpu_share, later.row.cpu_share),
        cpu_mhz=_smaller(earlier.row.cpu_mhz, later.row.cpu_mhz),
        **{
            column: _larger(getattr(earlier.row, column), getattr(later.row, column))
            for column in ("others_cores", "ctx_switches_per_step", "steal_frac", "throttled_frac")
        },
        **timing_fields(earlier.row.cell, earlier.row.flops_per_seq, samples, groups),
    )
    row = dataclasses.replace(row, noisy=noise.flag(row))
    return Measurement(row, samples, machine_s=later.machine_s)
