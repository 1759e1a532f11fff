"""Compare two runs cell by cell, and gate on regressions that are both real and large.

Timing is compared on the raw samples, not on medians alone. For each cell the change is
estimated as a ratio (candidate / baseline) by the Hodges–Lehmann estimator on log times:
the median of all pairwise differences log c_j - log b_i. Its confidence interval comes from
the Mann–Whitney distribution (Hollander & Wolfe, "Nonparametric Statistical Methods", the
"confidence interval for a shift"): it assumes nothing about the shape of the distribution.

A cell is a `regression` only when the slowdown is significant (the interval lies above 1)
and larger than the threshold, and the fastest tenth of the samples slowed down past the
threshold too. That last condition is what keeps a shared machine from crying wolf:
interference from other work only ever adds time, so it moves the median and the slow
tail but leaves the fast samples where they were, while a real slowdown moves them all.
(On this project's 2-core CI machine, the median of a training cell drifted by up to 14%
between identical runs, its 10th percentile by at most 7%.) A change inside the threshold
is `unchanged` whatever its significance; a large change that is not significant, not
shared by the fast samples, or whose interval is too wide to tell, is `inconclusive`.
Deterministic figures (peak memory) are compared exactly.

Nothing here prints. `compare_runs` returns data; `CHECKS` turn it into messages, and the
CLI maps messages to the exit code.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from seqbench.env import COMPARED_KEYS
from seqbench.errors import SeqbenchError
from seqbench.schema import Cell, ResultRow, higher_is_better
from seqbench.stats import RatioEstimate, shift_ratio

if TYPE_CHECKING:
    from seqbench.storage import Run

VERDICTS = (
    "regression",
    "improvement",
    "unchanged",
    "inconclusive",
    "model-changed",
    "not-measured",
)


@dataclass(frozen=True)
class Metric:
    """What a comparison gates on: a row column, which way is better, whether it has samples."""

    name: str
    column: str
    unit: str
    lower_is_better: bool = True
    sampled: bool = False
    # The direction comes from each row's task (accuracy up, a loss down).
    task_direction: bool = False

    def lower_is_better_for(self, row: ResultRow) -> bool:
        if self.task_direction and row.task:
            return not higher_is_better(row.metric)
        return self.lower_is_better


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("time", "median_s", "s", lower_is_better=True, sampled=True),
        Metric("memory", "peak_mem_bytes", "B", lower_is_better=True),
        Metric("accuracy", "metric_value", "", task_direction=True),
    )
}


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise SeqbenchError(f"unknown metric {name!r}; choose from: {', '.join(METRICS)}") from None


# --------------------------------------------------------------------------- verdicts


def classify(est: RatioEstimate, threshold: float, lower_is_better: bool = True) -> tuple[str, str]:
    """(verdict, note) for a ratio, its interval and its fast-sample ratio."""
    up, down = 1 + threshold, 1 / (1 + threshold)
    flip = (lambda x: x) if lower_is_better else (lambda x: 1 / x)
    worse, fast = flip(est.ratio), flip(est.fast_ratio)
    lo, hi = sorted((flip(est.ci_low), flip(est.ci_high)))
    if lo > 1 and worse > up:
        if fast > up:
            return "regression", ""
        return (
            "inconclusive",
            f"the fastest samples changed by only {fast - 1:+.1%}: interference, not a slowdown?",
        )
    if hi < 1 and worse < down:
        if fast < down:
            return "improvement", ""
        return (
            "inconclusive",
            f"the fastest samples changed by only {fast - 1:+.1%}: noise in the baseline?",
        )
    if down <= worse <= up and not (lo < down and hi > up):
        return "unchanged", ""
    if lo < down and hi > up:
        return "inconclusive", "too noisy to tell: the interval spans the threshold on both sides"
    return "inconclusive", "a large change, but not a significant one"


def classify_exact(base: float, cand: float, threshold: float, lower_is_better: bool = True) -> str:
    """For deterministic figures: any change beyond the threshold counts."""
    if base == cand:
        return "unchanged"
    ratio = cand / base if base else math.inf
    worse = ratio if lower_is_better else 1 / ratio
    if worse > 1 + threshold:
        return "regression"
    if worse < 1 / (1 + threshold):
        return "improvement"
    return "unchanged"


@dataclass(frozen=True)
class CellComparison:
    cell: Cell
    verdict: str
    baseline: float | None = None
    candidate: float | None = None
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    fast_ratio: float | None = None
    n_baseline: int = 0
    n_candidate: int = 0
    note: str = ""
    # An inconclusive cell whose evidence does not rule out a regression: what makes a
    # comparison "too noisy to decide".
    undecided: bool = False


@dataclass(frozen=True)
class Comparison:
    metric: Metric
    threshold: float
    baseline_id: str
    candidate_id: str
    cells: list[CellComparison]
    only_baseline: list[Cell] = field(default_factory=list)
    only_candidate: list[Cell] = field(default_factory=list)
    env_differences: list[tuple[str, Any, Any]] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(c.verdict == verdict for c in self.cells)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric.name,
            "threshold": self.threshold,
            "baseline": self.baseline_id,
            "candidate": self.candidate_id,
            "counts": {v: self.count(v) for v in VERDICTS},
            "cells": [
                {
                    **dataclasses.asdict(c.cell),
                    **{k: v for k, v in dataclasses.asdict(c).items() if k != "cell"},
                }
                for c in self.cells
            ],
            "only_baseline": [dataclasses.asdict(c) for c in self.only_baseline],
            "only_candidate": [dataclasses.asdict(c) for c in self.only_candidate],
            "env_differences": [
                {"key": k, "baseline": a, "candidate": b} for k, a, b in self.env_differences
            ],
        }


def compute_env_differences(
    baseline: dict[str, Any], candidate: dict[str, Any]
) -> list[tuple[str, Any, Any]]:
    return [
        (k, baseline.get(k), candidate.get(k))
        for k in COMPARED_KEYS
        if baseline.get(k) != candidate.get(k)
    ]


def _compare_cell(
    base: ResultRow,
    cand: ResultRow,
    base_samples: list[float],
    cand_samples: list[float],
    metric: Metric,
    threshold: float,
) -> CellComparison:
    cell = base.cell
    if base.status != "ok" or cand.status != "ok":
        if base.status == "ok":  # it used to work: now it errors, runs out of memory or time
            return CellComparison(
                cell, "regression", note=f"candidate {cand.status}: {cand.message}".rstrip(": ")
            )
        if cand.status == "ok":
            return CellComparison(cell, "improvement", note=f"baseline {base.status}; now measured")
        return CellComparison(
            cell, "not-measured", note=f"baseline {base.status}, candidate {cand.status}"
        )
    if base.params != cand.params:
        return CellComparison(
            cell,
            "model-changed",
            note=f"parameters {base.params} -> {cand.params}: a different model, not compared",
        )
    b, c = getattr(base, metric.column), getattr(cand, metric.column)
    if b is None or c is None:
        return CellComparison(cell, "not-measured", b, c, note=f"no {metric.column} on one side")
    if not metric.sampled:
        verdict = classify_exact(b, c, threshold, metric.lower_is_better_for(base))

        ratio = c / b if b else None
        return CellComparison(cell, verdict, b, c, ratio, ratio, ratio)
    if len(base_samples) < 2 or len(cand_samples) < 2:
        return CellComparison(
            cell,
            "inconclusive",
            b,
            c,
            c / b,
            note="fewer than 2 samples on one side",
            undecided=True,
        )
    est = shift_ratio(base_samples, cand_samples)
    verdict, note = classify(est, threshold, metric.lower_is_better)
    noisy = [
        f"the {side} ({row.noisy})"
        for side, row in (("baseline", base), ("candidate", cand))
        if row.noisy
    ]
    if verdict in ("regression", "improvement") and noisy:
        # A change measured on a disturbed cell may be the disturbance: say so, not a verdict.
        verdict = "inconclusive"
        note = f"a {round((est.ratio - 1) * 100):+d}% change, but noisy: {'; '.join(noisy)}"
    return judged(
        cell,
        verdict,
        note,
        est,
        b,
        c,
        len(base_samples),
        len(cand_samples),
        threshold,
        metric.lower_is_better,
    )


def judged(
    cell: Cell,
    verdict: str,
    note: str,
    est: RatioEstimate,
    base: float | None,
    cand: float | None,
    n_base: int,
    n_cand: int,
    threshold: float,
    lower_is_better: bool = True,
) -> CellComparison:
    """A cell's comparison from its estimate: undecided when it is inconclusive and its
    interval reaches past the threshold on the worse side."""
    worst = est.ci_high if lower_is_better else 1 / est.ci_low
    return CellComparison(
        cell,
        verdict,
        base,
        cand,
        est.ratio,
        est.ci_low,
        est.ci_high,
        est.p_value,
        est.fast_ratio,
        n_base,
        n_cand,
        note,
        undecided=verdict == "inconclusive" and worst > 1 + threshold,
    )


def check_threshold(threshold: float) -> None:
    if not (math.isfinite(threshold) and threshold > 0):
        raise SeqbenchError(f"--threshold: expected a fraction > 0 (0.05 for 5%), got {threshold}")


def compare_runs(
    baseline: Run,
    candidate: Run,
    *,
    metric: str = "time",
    threshold: float = 0.10,
    allow_missing: bool = False,
) -> Comparison:
    """Align two runs by cell key and compare every cell present in both.

    A comparison that would pass without looking is refused: an empty run, two runs with no
    cell in common, or (unless `allow_missing`) a candidate without some of the baseline's
    cells, since a gate that skips a cell passes it unseen.
    """
    check_threshold(threshold)
    chosen = get_metric(metric)
    for side, run in (("baseline", baseline), ("candidate", candidate)):
        if not run.rows:
            raise SeqbenchError(f"the {side} {run.run_id} has no cells: nothing to compare")
        measured = [r for r in run.rows if r.status == "ok"]
        if chosen.sampled and measured and not run.samples:
            raise SeqbenchError(
                f"{run.path}: no timing samples beside the rows; compare a run folder, or a CSV with its .samples.csv"
            )
    base_rows = {r.cell: r for r in baseline.rows}
    cand_rows = {r.cell: r for r in candidate.rows}
    missing = [k for k in base_rows if k not in cand_rows]
    if len(missing) == len(base_rows):
        raise SeqbenchError(
            f"{baseline.run_id} and {candidate.run_id} have no cells in common: "
            "they measured different matrices"
        )
    if missing and not allow_missing:
        raise SeqbenchError(
            f"the candidate lacks {len(missing)} of the baseline's {len(base_rows)} cells "
            f"({missing[0].cell_id}{', ...' if len(missing) > 1 else ''}); pass "
            "--allow-missing to compare the cells both have"
        )
    cells = [
        _compare_cell(
            base_rows[key], cand_rows[key], baseline.samples.get(base_rows[key].cell_id, []),
            candidate.samples.get(cand_rows[key].cell_id, []), chosen, threshold,
        )
        for key in base_rows
        if key in cand_rows
    ]  # fmt: skip
    return Comparison(
        metric=chosen,
        threshold=threshold,
        baseline_id=baseline.run_id,
        candidate_id=candidate.run_id,
        cells=cells,
        only_baseline=missing,
        only_candidate=[k for k in cand_rows if k not in base_rows],
        env_differences=compute_env_differences(
            baseline.meta.get("env", {}), candidate.meta.get("env", {})
        ),
    )
