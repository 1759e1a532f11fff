"""Accuracy over seeds and learning rates: which rate each model gets, and its test score.

A task cell is run once per seed and per learning rate. The rows of one model (every key
column but `seed` and `lr` equal) form a group, and the figure a table reports for it is
chosen by a fixed rule:

1. A rate is eligible when every seed of the group finished at it with a finite
   validation score (a rate that diverged or failed on any seed is out).
2. Among eligible rates, the one with the best mean validation score over the seeds is
   chosen (ties: the smaller rate). A group with one rate takes it, eligible or not.
3. The group's figure is that rate's TEST scores over the seeds: their mean and a 95%
   Student-t interval, mean ± t(0.975, n-1)·s/√n, cut to the values the metric can take
   (an MSE's interval stops at 0, an accuracy's at 100%: the true mean lies inside that
   range, so the cut loses no coverage). The test set never enters the choice.

Every rate's scores stay in the rows (the grid); `compare --metric accuracy` tests the
chosen figures' seed distributions against each other (`compare_accuracy`). Nothing here
imports torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from seqbench.core.schema import Cell, ResultRow, higher_is_better, metric_range
from seqbench.judge.stats import SeedSpread, seed_spread, welch_difference
from seqbench.judge.verdicts import CellComparison


def group_key(cell: Cell) -> Cell:
    """A model's key: the cell without its seed and rate."""
    return dataclasses.replace(cell, seed=0, lr=0.0)


@dataclass(frozen=True)
class RateScores:
    """One learning rate of a group: its rows' scores, seed by seed (seed order)."""

    lr: float
    seeds: tuple[int, ...]
    validation: tuple[float | None, ...]
    test: tuple[float | None, ...]
    eligible: bool

    @property
    def mean_validation(self) -> float | None:
        scores = [v for v in self.validation if v is not None]
        return sum(scores) / len(scores) if scores else None


@dataclass(frozen=True)
class AccuracyGroup:
    cell: Cell  # the group key (seed 0, lr 0)
    metric: str
    higher_is_better: bool
    rates: tuple[RateScores, ...]  # every rate tried, ascending: the grid
    lr: float | None  # the chosen rate; None when no rate finished on every seed
    test: SeedSpread | None  # the chosen rate's test scores over its seeds
    validation: SeedSpread | None
    rows: tuple[ResultRow, ...]  # the chosen rate's rows
    note: str = ""

    @property
    def chance(self) -> float | None:
        values = [r.chance_value for r in self.rows if r.chance_value is not None]
        return sum(values) / len(values) if values else None


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def select_rate(rates: list[RateScores], higher: bool) -> RateScores | None:
    """The rule of the module docstring, steps 1 and 2."""
    if len(rates) == 1:
        return rates[0]
    eligible = [r for r in rates if r.eligible]
    if not eligible:
        return None
    sign = -1.0 if higher else 1.0
    return min(eligible, key=lambda r: (sign * r.mean_validation, r.lr))


def summarize_accuracy(rows: list[ResultRow]) -> list[AccuracyGroup]:
    """One group per model with a task, in the rows' order (see the module docstring)."""
    groups: dict[Cell, list[ResultRow]] = {}
    for row in rows:
        if row.task:
            groups.setdefault(group_key(row.cell), []).append(row)
    return [_summarize(key, members) for key, members in groups.items()]


def _summarize(key: Cell, members: list[ResultRow]) -> AccuracyGroup:
    metric = next((r.metric for r in members if r.metric), "")
    higher = higher_is_better(metric) if metric else True
    seeds = sorted({r.seed for r in members})
    by_rate: dict[float, dict[int, ResultRow]] = {}
    for row in members:
        by_rate.setdefault(row.lr, {})[row.seed] = row
    rates = []
    for lr in sorted(by_rate):
        got = by_rate[lr]
        ok = [got.get(s) if got.get(s) and got[s].status == "ok" else None for s in seeds]
        validation = tuple(r.validation_value if r else None for r in ok)
        test = tuple(r.metric_value if r else None for r in ok)
        rates.append(RateScores(lr, tuple(seeds), validation, test, all(map(_finite, validation))))
    chosen = select_rate(rates, higher)
    if chosen is None:
        note = "no rate finished on every seed with a validation score"
        return AccuracyGroup(key, metric, higher, tuple(rates), None, None, None, (), note)
    tests = [v for v in chosen.test if _finite(v)]
    validations = [v for v in chosen.validation if _finite(v)]
    note = "" if len(tests) == len(seeds) else f"{len(seeds) - len(tests)} seed(s) without a score"
    rows = tuple(r for r in by_rate[chosen.lr].values() if r.status == "ok")
    return AccuracyGroup(
        key,
        metric,
        higher,
        tuple(rates),
        chosen.lr,
        seed_spread(tests, bounds=metric_range(metric)) if tests else None,
        seed_spread(validations, bounds=metric_range(metric)) if validations else None,
        rows,
        note,
    )


# Welch's p-value below which a change past the threshold is a verdict.
ALPHA = 0.05


def compare_groups(base: AccuracyGroup, cand: AccuracyGroup, threshold: float) -> CellComparison:
    """Two groups' chosen test scores, seed distribution against seed distribution.

    The change is the ratio of the means (candidate over baseline, flipped so that above 1
    is worse); it is a regression or an improvement when it passes the threshold and
    Welch's test says the means differ (p < ALPHA). With one seed on a side nothing can be
    told from seed noise: the cell is undecided.
    """
    cell = base.cell
    if base.test is None or cand.test is None:
        side = "baseline" if base.test is None else "candidate"
        note = (base if base.test is None else cand).note or "no test score"
        verdict = "not-measured" if base.test is None else "regression"
        return CellComparison(cell, verdict, note=f"{side}: {note}")
    b, c = base.test, cand.test
    ratio = c.mean / b.mean if b.mean else math.inf
    common = dict(baseline=b.mean, candidate=c.mean, ratio=ratio, n_baseline=b.n, n_candidate=c.n)
    if b.n < 2 or c.n < 2:
        note = "one seed on a side: a change cannot be told from seed noise (run with --seeds 3)"
        return CellComparison(cell, "inconclusive", **common, note=note, undecided=True)
    diff = welch_difference(b.values, c.values)
    low, high = (b.mean + diff.low) / b.mean, (b.mean + diff.high) / b.mean
    worse = ratio if not base.higher_is_better else (1 / ratio if ratio else math.inf)
    up, down = 1 + threshold, 1 / (1 + threshold)
    significant = diff.p_value < ALPHA
    if significant and worse > up:
        verdict, note = "regression", ""
    elif significant and worse < down:
        verdict, note = "improvement", ""
    elif down <= worse <= up and not (min(low, high) < down and max(low, high) > up):
        verdict, note = "unchanged", ""
    elif down <= worse <= up:
        verdict = "inconclusive"
        note = "too few seeds to tell: the interval spans the threshold on both sides"
    else:
        verdict = "inconclusive"
        note = (
            f"a {abs(ratio - 1):.0%} change, but not significant over seeds (p={diff.p_value:.2f})"
        )
    # Undecided: inconclusive, and the interval's worse end reaches past the threshold.
    lo, hi = min(low, high), max(low, high)
    worst = hi if not base.higher_is_better else (1 / lo if lo > 0 else math.inf)
    return CellComparison(
        cell, verdict, ci_low=low, ci_high=high, p_value=diff.p_value, note=note,
        undecided=verdict == "inconclusive" and worst > up, **common,
    )  # fmt: skip
