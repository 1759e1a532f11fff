"""How one cell's change is judged: the verdicts, and the rules that give them.

A cell is a `regression` only when the slowdown is significant (its interval lies above 1)
and larger than the threshold, and the fastest tenth of the samples slowed down past the
threshold too. That last condition is what keeps a shared machine from crying wolf:
interference from other work only ever adds time, so it moves the median and the slow
tail but leaves the fast samples where they were, while a real slowdown moves them all.
(On this project's 2-core CI machine, the median of a training cell drifted by up to 14%
between identical runs, its 10th percentile by at most 7%.) A change inside the threshold
is `unchanged` whatever its significance; a large change that is not significant, not
shared by the fast samples, or whose interval is too wide to tell, is `inconclusive`, and
`undecided` when its interval does not rule out a regression past the threshold.
Deterministic figures (peak memory) are compared exactly. `Comparison` holds a whole
comparison: every cell's verdict, the cells only one side has, and how the environments
differ.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from seqbench.core.schema import Cell
from seqbench.judge.stats import RatioEstimate

if TYPE_CHECKING:
    from seqbench.judge.compare import Metric

VERDICTS = (
    "regression",
    "improvement",
    "unchanged",
    "inconclusive",
    "model-changed",
    "not-measured",
)


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
    # How much slower the machine itself ran for the candidate than for the baseline (the
    # reference step's time, candidate / baseline), where the change was judged relative
    # to it; None where it was not.
    machine_ratio: float | None = None


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
