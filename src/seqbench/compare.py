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
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats as sps

from seqbench.env import COMPARED_KEYS
from seqbench.errors import SeqbenchError
from seqbench.schema import Cell, ResultRow, higher_is_better

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

# Exact Mann–Whitney quantiles up to this many samples per side; the normal approximation beyond.
EXACT_MAX = 30


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


# --------------------------------------------------------------------------- statistics


@cache
def mann_whitney_null(n: int, m: int) -> np.ndarray:
    """P(U = u) for u = 0..n·m under the null, U the Mann–Whitney count, by recursion.

    f(n, m)[u] = f(n-1, m)[u-m] + f(n, m-1)[u] (the largest observation is either from the
    first sample, beating all m of the second, or from the second); probabilities, so the
    sums stay in floating point without overflow.
    """
    # prev[j] holds the distribution for (i - 1, j); cur is built for (i, j).
    prev = [np.ones(1) for _ in range(m + 1)]  # i = 0: U = 0 with certainty
    for i in range(1, n + 1):
        cur = [np.ones(1)]  # j = 0: U = 0
        for j in range(1, m + 1):
            dist = np.zeros(i * j + 1)
            w_first = i / (i + j)  # the largest value belongs to the first sample
            dist[j : j + len(prev[j])] += w_first * prev[j]
            dist[: len(cur[j - 1])] += (1 - w_first) * cur[j - 1]
            cur.append(dist)
        prev = cur
    return prev[m]


def shift_ci_rank(n: int, m: int, confidence: float = 0.95) -> int:
    """How many pairwise differences to cut from each end for the shift's interval.

    The interval is [D_(c), D_(nm+1-c)] (1-based) with c the largest integer such that
    P(U <= c-1) <= alpha/2. Returns c - 1, the 0-based index of the lower end (0 when no
    interval reaches the confidence: the full range).
    """
    alpha = 1 - confidence
    if n <= EXACT_MAX and m <= EXACT_MAX:
        # c is the number of values u with P(U <= u) <= alpha/2.
        c = int(np.searchsorted(np.cumsum(mann_whitney_null(n, m)), alpha / 2, side="right"))
    else:
        z = sps.norm.ppf(1 - alpha / 2)
        c = math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12))
    return max(c - 1, 0)


# The quantile that stands for "the fast samples": what a step costs without interference.
FAST_QUANTILE = 10


@dataclass(frozen=True)
class RatioEstimate:
    ratio: float  # Hodges–Lehmann estimate of candidate / baseline
    ci_low: float
    ci_high: float
    p_value: float  # two-sided Mann–Whitney
    fast_ratio: float  # ratio of the 10th percentiles


def compute_ratio(
    baseline: list[float], candidate: list[float], confidence: float = 0.95
) -> RatioEstimate:
    """The multiplicative change from baseline to candidate samples, with its interval."""
    b = np.log(np.asarray(baseline, dtype=float))
    c = np.log(np.asarray(candidate, dtype=float))
    diffs = np.sort(np.subtract.outer(c, b).ravel())
    k = shift_ci_rank(len(b), len(c), confidence)
    lo, hi = diffs[k], diffs[len(diffs) - 1 - k]
    p = float(sps.mannwhitneyu(c, b, alternative="two-sided").pvalue)
    fast = float(np.exp(np.percentile(c, FAST_QUANTILE) - np.percentile(b, FAST_QUANTILE)))
    return RatioEstimate(
        float(np.exp(np.median(diffs))), float(np.exp(lo)), float(np.exp(hi)), p, fast
    )


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
            cell, "inconclusive", b, c, c / b, note="fewer than 2 samples on one side"
        )
    est = compute_ratio(base_samples, cand_samples)
    verdict, note = classify(est, threshold, metric.lower_is_better)
    return CellComparison(
        cell,
        verdict,
        b,
        c,
        est.ratio,
        est.ci_low,
        est.ci_high,
        est.p_value,
        est.fast_ratio,
        len(base_samples),
        len(cand_samples),
        note,
    )


def compare_runs(
    baseline: Run, candidate: Run, *, metric: str = "time", threshold: float = 0.10
) -> Comparison:
    """Align two runs by cell key and compare every cell present in both."""
    chosen = get_metric(metric)
    if chosen.sampled:
        for run in (baseline, candidate):
            measured = [r for r in run.rows if r.status == "ok"]
            if measured and not run.samples:
                raise SeqbenchError(
                    f"{run.path}: no timing samples beside the rows; compare a run folder, or a CSV with its .samples.csv"
                )
    base_rows = {r.cell: r for r in baseline.rows}
    cand_rows = {r.cell: r for r in candidate.rows}
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
        only_baseline=[k for k in base_rows if k not in cand_rows],
        only_candidate=[k for k in cand_rows if k not in base_rows],
        env_differences=compute_env_differences(
            baseline.meta.get("env", {}), candidate.meta.get("env", {})
        ),
    )


# --------------------------------------------------------------------------- checks as data

Check = Callable[[Comparison], "str | None"]


def check_regressions(comparison: Comparison) -> str | None:
    n = comparison.count("regression")
    if not n:
        return None
    return f"{n} cell{'s' if n > 1 else ''} regressed ({comparison.metric.name}, more than {comparison.threshold:.0%} and significant)"


def check_improvements(comparison: Comparison) -> str | None:
    n = comparison.count("improvement")
    if not n:
        return None
    return f"{n} cell{'s' if n > 1 else ''} improved by more than {comparison.threshold:.0%}: a benchmark that got much faster may have stopped measuring what it did"


def run_checks(comparison: Comparison, *, fail_on_improvement: bool = False) -> list[str]:
    checks: list[Check] = [check_regressions]
    if fail_on_improvement:
        checks.append(check_improvements)
    return [message for check in checks if (message := check(comparison))]
