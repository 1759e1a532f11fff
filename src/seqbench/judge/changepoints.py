"""Where a series of run medians stepped: change points, each with its size and evidence.

A gate compares two runs; a cost that creeps up a little per commit passes every such
comparison. Looking at the whole series finds the commits where the level changed.

The method, in three stages, on the logarithms of the medians (a slowdown is a ratio):

1. **Noise scale.** σ is estimated from the series itself, robustly: the median absolute
   deviation of successive differences, / √2 (a difference holds two points' noise), ×
   1.4826 (the MAD of a normal distribution). A few steps or outliers move a few
   differences and barely move their median, and a slow drift cancels in differences.
2. **Segmentation.** The series is fitted exactly by a piecewise-constant function that
   minimises Σ|x − level| / b plus a penalty β per change, b = σ·√(2/π) the mean absolute
   deviation of normal noise of scale σ (a Laplace likelihood: a single outlier moves a
   segment's median, unlike its mean, not at all). β = `penalty`·ln n, a BIC-like penalty.
   Segments hold at least `min_size` points, so one wild run is never a level of its own.
   The optimum is found by dynamic programming with PELT pruning (Killick, Fearnhead and
   Eckley 2012), exact and fast for the hundreds of runs a history holds.
3. **Tests.** Every change point is checked against the two segments beside it, and the
   weakest failing one is merged away until all pass: the two sides must differ by a
   two-sided Mann–Whitney test (p < `alpha`), and the step, estimated as a Hodges–Lehmann
   ratio with its distribution-free 95% interval, must be at least `min_step`. Both must
   hold again after removing the trend inside the two levels (the
   median slope of pairs of points on the same side): a slow drift, which a
   piecewise-constant fit cuts into stairs, leaves no jump once its own slope is removed.
4. **Placement.** The absolute-deviation fit places a boundary loosely, so each surviving
   one is moved to where a least-squares split of its two levels (values clipped to 2.5σ
   of their level) puts it, if the tests still pass there.

Drift is reported separately: within each final level, a Theil–Sen slope whose 99%
interval excludes zero and whose total change over the level reaches `min_step`.

A step is seen only once `min_size` runs sit on the new level: a single slow last run is
indistinguishable from an outlier. Nothing here prints.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from seqbench.judge.stats import shift_ratio

# A noise floor (as a log ratio, ~0.1%): a series of identical figures has σ = 0, which
# would make every difference infinitely significant.
MIN_NOISE = 1e-3


@dataclass(frozen=True)
class Settings:
    """The detector's knobs; the defaults suit a few percent of noise per run median."""

    penalty: float = 1.5  # β = penalty · ln n, in units of the noise scale
    min_size: int = 3  # runs on each level, at least
    alpha: float = 0.01  # Mann–Whitney significance for a step
    min_step: float = 0.05  # a smaller change (as a fraction) is not reported as a step


@dataclass(frozen=True)
class Step:
    """A change of level: `index` is the first point of the new level."""

    index: int
    ratio: float  # after / before, Hodges–Lehmann estimate
    ci_low: float
    ci_high: float
    p_value: float  # two-sided Mann–Whitney, the two adjacent levels
    before: int  # points on the level before
    after: int  # points on the level after
    # Where else the step may plausibly sit (first index of the new level, lowest and
    # highest): the positions whose least-squares split costs within 3.84σ² of the best.
    earliest: int = -1
    latest: int = -1

    @property
    def slower(self) -> bool:
        return self.ratio > 1


@dataclass(frozen=True)
class Drift:
    """A trend within one level: its total change from `start` to `end - 1`."""

    start: int
    end: int  # exclusive
    change: float  # fitted value at the end / at the start
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Segment:
    start: int
    end: int  # exclusive
    level: float  # the median of the values on it


@dataclass(frozen=True)
class ChangePoints:
    steps: list[Step]
    segments: list[Segment]
    noise: float  # σ of the log values (≈ the relative noise of one median)
    drifts: list[Drift] = field(default_factory=list)
    merged: int = 0  # splits the fit proposed and the tests rejected


def noise_scale(logs: np.ndarray) -> float:
    """Robust σ of a series' noise, from the MAD of successive differences."""
    if len(logs) < 3:
        return MIN_NOISE
    d = np.diff(logs)
    mad = float(np.median(np.abs(d - np.median(d))))
    return max(1.4826 * mad / math.sqrt(2), MIN_NOISE)


def segment(logs: np.ndarray, scale: float, beta: float, min_size: int) -> list[int]:
    """Change points (first index of each new segment) minimising Σ|x − median|/scale + β·k."""
    n = len(logs)
    if n < 2 * min_size:
        return []

    def cost(s: int, e: int) -> float:
        part = logs[s:e]
        return float(np.abs(part - np.median(part)).sum()) / scale

    best = np.full(n + 1, np.inf)
    best[0] = -beta
    last = np.zeros(n + 1, dtype=int)
    candidates = [0]
    for e in range(min_size, n + 1):
        scored = [(best[s] + cost(s, e) + beta, s) for s in candidates if e - s >= min_size]
        if scored:
            best[e], last[e] = min(scored)
            # PELT: a start that is already worse than the optimum can never win later.
            candidates = [
                s for s in candidates if e - s < min_size or best[s] + cost(s, e) <= best[e]
            ]
        if e + min_size <= n and np.isfinite(best[e]):
            candidates.append(e)
    points, e = [], n
    while e > 0:
        e = int(last[e])
        if e > 0:
            points.append(e)
    return sorted(points)


def within_slope(logs: np.ndarray, lo: int, k: int, hi: int) -> float:
    """The trend inside two adjacent levels: the median slope of the pairs of points that
    lie on the same side of `k` (a Theil–Sen slope that never looks across the step)."""
    slopes = []
    for a, b in ((lo, k), (k, hi)):
        i, j = np.triu_indices(b - a, 1)
        slopes.append((logs[a + j] - logs[a + i]) / (j - i))
    pooled = np.concatenate(slopes)
    return float(np.median(pooled)) if pooled.size else 0.0


def _judge(
    logs: np.ndarray, lo: int, k: int, hi: int, settings: Settings
) -> tuple[Step | None, float]:
    """The step at `k` between levels [lo, k) and [k, hi), or None when a test rejects it;
    with a score (higher: weaker) to pick which rejected split to merge first.

    The two sides must also differ as much once the trend inside them (`within_slope`) is
    removed:
    in a slow drift the levels differ only by that trend, and a jump that remains is a step.
    The step's size is estimated on the values as measured.
    """
    left, right = logs[lo:k], logs[k:hi]
    est = shift_ratio(np.exp(left).tolist(), np.exp(right).tolist())
    step = Step(k, est.ratio, est.ci_low, est.ci_high, est.p_value, len(left), len(right))
    small = abs(math.log(est.ratio)) < math.log1p(settings.min_step)
    if est.p_value >= settings.alpha or small:
        return None, est.p_value + (1 if small else 0)
    t = np.arange(lo, hi, dtype=float)
    flat = logs[lo:hi] - within_slope(logs, lo, k, hi) * (t - k)
    jump = shift_ratio(np.exp(flat[: k - lo]).tolist(), np.exp(flat[k - lo :]).tolist())
    if jump.p_value >= settings.alpha or abs(math.log(jump.ratio)) < math.log1p(settings.min_step):
        return None, jump.p_value  # the levels' own trend explains the difference: a drift
    return step, 0.0


def _drifts(logs: np.ndarray, segments: list[Segment], settings: Settings) -> list[Drift]:
    found = []
    for seg in segments:
        n = seg.end - seg.start
        if n < max(2 * settings.min_size, 5):
            continue
        t = np.arange(n, dtype=float)
        slope, _, low, high = sps.theilslopes(logs[seg.start : seg.end], t, alpha=0.99)
        change = math.exp(slope * (n - 1))
        if (low > 0 or high < 0) and abs(slope * (n - 1)) >= math.log1p(settings.min_step):
            found.append(
                Drift(seg.start, seg.end, change, math.exp(low * (n - 1)), math.exp(high * (n - 1)))
            )
    return found


def _refine(
    logs: np.ndarray, points: list[int], sigma: float, min_size: int
) -> tuple[list[int], list[tuple[int, int]]]:
    """Each change point moved to where a least-squares split of its two levels puts it.

    The absolute-deviation fit is robust but places a boundary loosely (a point near it is
    as cheap on either side); squared error weighs every point's distance from each level.
    Values are first clipped to within 2.5σ of their own level, so an outlier beside the
    step cannot pull it. Also returns, for each, the range of positions whose split costs
    within 3.84σ² of the best (a likelihood-ratio set, roughly 95% for Gaussian noise)."""
    refined, ranges = list(points), []
    for i, k in enumerate(points):
        lo = refined[i - 1] if i else 0
        hi = points[i + 1] if i + 1 < len(points) else len(logs)
        left, right = logs[lo:k], logs[k:hi]
        clipped = np.concatenate(
            [
                np.clip(v, np.median(v) - 2.5 * sigma, np.median(v) + 2.5 * sigma)
                for v in (left, right)
            ]
        )
        cuts = range(min_size, len(clipped) - min_size + 1)
        sse = np.array(
            [((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()
             for a, b in ((clipped[:c], clipped[c:]) for c in cuts)]
        )  # fmt: skip
        best = int(np.argmin(sse))
        near = sse <= sse[best] + 3.84 * sigma**2
        first = last = best
        while first > 0 and near[first - 1]:
            first -= 1
        while last + 1 < len(sse) and near[last + 1]:
            last += 1
        refined[i] = lo + cuts[best]
        ranges.append((lo + cuts[first], lo + cuts[last]))
    return refined, ranges


def find_change_points(values: Sequence[float], settings: Settings = Settings()) -> ChangePoints:
    """The steps in a series of positive figures (run medians, in order), with evidence."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.asarray(values, dtype=float))
    if logs.size and not np.all(np.isfinite(logs)):
        raise ValueError("change points need positive, finite values")
    n = len(logs)
    sigma = noise_scale(logs)
    scale = sigma * math.sqrt(2 / math.pi)
    beta = settings.penalty * math.log(max(n, 2))
    points = segment(logs, scale, beta, settings.min_size)
    proposed = len(points)
    while True:
        bounds = [0, *points, n]
        judged = [
            _judge(logs, bounds[i - 1], bounds[i], bounds[i + 1], settings)
            for i in range(1, len(bounds) - 1)
        ]
        failing = [(score, i) for i, (step, score) in enumerate(judged) if step is None]
        if not failing:
            steps = [step for step, _ in judged if step is not None]
            break
        del points[max(failing)[1]]
    refined, ranges = _refine(logs, points, sigma, settings.min_size)
    bounds = [0, *refined, n]
    for i in range(1, len(bounds) - 1):
        moved = _judge(logs, bounds[i - 1], bounds[i], bounds[i + 1], settings)[0]
        if moved is not None:  # the refined boundary passes the tests too: keep it
            points[i - 1], steps[i - 1] = bounds[i], moved
        else:
            bounds[i] = points[i - 1]
        first, last = ranges[i - 1]
        steps[i - 1] = dataclasses.replace(
            steps[i - 1],
            earliest=min(first, points[i - 1]),
            latest=max(last, points[i - 1]),
        )
    bounds = [0, *points, n]
    segments = [
        Segment(s, e, float(np.exp(np.median(logs[s:e]))))
        for s, e in zip(bounds, bounds[1:], strict=False)
        if e > s
    ]
    return ChangePoints(
        steps, segments, sigma, _drifts(logs, segments, settings), proposed - len(points)
    )
