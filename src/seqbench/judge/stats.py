"""Pure functions over timing samples. Nothing here prints or measures.

The module is long because it is one of the core contracts that import nothing from
seqbench (tests/test_layers.py): its parts (one sample, two samples, seeds, processes) use
one another, and split across modules they would import each other."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from types import ModuleType

import numpy as np


def _scipy_stats() -> ModuleType:
    """scipy.stats, imported where first needed: a worker process that only summarizes its
    samples never pays its import (0.7 s)."""
    from scipy import stats

    return stats


@dataclass(frozen=True)
class Summary:
    """What a cell's timing samples come down to."""

    n: int
    median: float
    iqr: float
    ci_low: float
    ci_high: float
    minimum: float
    mean: float


def median(samples: Sequence[float]) -> float:
    return float(np.median(np.asarray(samples, dtype=float)))


def percentile(samples: Sequence[float], q: float) -> float:
    """`np.percentile(samples, q)` (its default, linear method), to the last bit (tested),
    without numpy's 50 µs a call: three of them per cell were most of comparing 200,000."""
    x = sorted(samples)
    virtual = (len(x) - 1) * (q / 100)
    if virtual >= len(x) - 1:
        return float(x[-1])
    below = math.floor(virtual)
    a, b, t = float(x[below]), float(x[below + 1]), virtual - below
    step = b - a
    return b - step * (1 - t) if t >= 0.5 else a + step * t


def _sorted_median(values: np.ndarray) -> float:
    """`np.median` of values already sorted: the middle one, or the mean of the two."""
    n = len(values)
    return float((values[(n - 1) // 2] + values[n // 2]) / 2)


def iqr(samples: Sequence[float]) -> float:
    """Interquartile range, with linear interpolation between order statistics."""
    q1, q3 = np.percentile(np.asarray(samples, dtype=float), [25, 75])
    return float(q3 - q1)


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """0-based ranks (lo, hi) of the distribution-free confidence interval for the median.

    The interval [x_(j), x_(n-j+1)] covers the median with probability 1 - 2·P(B <= j-1),
    B ~ Binomial(n, 1/2), whatever the distribution of the samples. We take the narrowest
    interval whose coverage reaches `confidence`. With too few samples (n < 6 at 95%) no
    such interval exists, and the full range is returned.
    """
    if n < 1:
        raise ValueError("need at least one sample")
    alpha = 1.0 - confidence
    # Largest m with P(B <= m) <= alpha/2; j = m + 1 (1-based), i.e. rank m (0-based).
    cdf = half_binomial_cdf(n)
    ok = np.nonzero(cdf <= alpha / 2)[0]
    if ok.size == 0:
        return 0, n - 1
    m = int(ok[-1])
    return m, n - 1 - m


def half_binomial_cdf(n: int) -> np.ndarray:
    """P(B <= k) for k = 0..n-1, B ~ Binomial(n, 1/2): the log binomial coefficients by their
    recurrence, log C(n, k+1) = log C(n, k) + log((n-k)/(k+1)), summed. Computed here rather
    than by scipy.stats.binom, whose import (0.7 s) every worker process would pay before its
    first cell; equal ranks to scipy's are tested."""
    k = np.arange(n - 1, dtype=float)
    log_choose = np.concatenate([[0.0], np.cumsum(np.log(n - k) - np.log(k + 1))])
    return np.cumsum(np.exp(log_choose - n * math.log(2)))


def median_ci(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    ordered = np.sort(np.asarray(samples, dtype=float))
    lo, hi = median_ci_ranks(len(ordered), confidence)
    return float(ordered[lo]), float(ordered[hi])


def relative_ci_halfwidth(samples: Sequence[float], confidence: float = 0.95) -> float:
    """Half the width of the median's confidence interval, as a fraction of the median."""
    lo, hi = median_ci(samples, confidence)
    mid = median(samples)
    return (hi - lo) / 2 / mid if mid > 0 else float("inf")


def summarize(samples: Sequence[float], confidence: float = 0.95) -> Summary:
    values = np.asarray(samples, dtype=float)
    if values.size == 0:
        raise ValueError("no samples to summarise")
    lo, hi = median_ci(values, confidence)
    return Summary(
        n=int(values.size),
        median=median(values),
        iqr=iqr(values),
        ci_low=lo,
        ci_high=hi,
        minimum=float(values.min()),
        mean=float(values.mean()),
    )


# --------------------------------------------------------------------------- two samples:
# the change from a baseline to a candidate, as a ratio with its interval.
#
# Unpaired (two runs): the Hodges–Lehmann estimator on log times, the median of all pairwise
# differences log c_j - log b_i, with its confidence interval from the Mann–Whitney
# distribution (Hollander & Wolfe, "Nonparametric Statistical Methods", the "confidence
# interval for a shift"). Paired (rounds measured side by side): the one-sample
# Hodges–Lehmann estimator of the per-round log ratios, the median of their Walsh averages,
# with its interval from the Wilcoxon signed-rank distribution. Neither assumes anything
# about the shape of the distribution.

# Exact quantiles up to this many samples (pairs) per side; the normal approximation beyond.
EXACT_MAX = 30


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


@cache
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
        z = _scipy_stats().norm.ppf(1 - alpha / 2)
        c = math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12))
    return max(c - 1, 0)


# The quantile that stands for "the fast samples": what a step costs without interference.
FAST_QUANTILE = 10


def fast_quantile(samples: Sequence[float]) -> float:
    """The samples' 10th percentile: what a step costs when nothing else interferes."""
    return percentile(samples, FAST_QUANTILE)


@dataclass(frozen=True)
class RatioEstimate:
    ratio: float  # Hodges–Lehmann estimate of candidate / baseline
    ci_low: float
    ci_high: float
    p_value: float  # two-sided Mann–Whitney
    fast_ratio: float  # ratio of the 10th percentiles


def mann_whitney_p(x: np.ndarray, y: np.ndarray) -> float:
    """The two-sided Mann–Whitney p-value of `x` against `y`, as scipy.stats.mannwhitneyu
    gives it by default: exact when a sample has at most 8 values and nothing ties, else the
    normal approximation with the tie correction and a continuity correction. Computed here
    because SciPy's call costs 1.5 ms of argument handling, a minute over 20,000 cells."""
    n1, n2 = len(x), len(y)
    # The ranks in plain Python: numpy's calls cost more than the work at a few dozen
    # values. Ranks are multiples of 1/2, so their sums are exact in any order.
    merged = sorted([*map(float, x), *map(float, y)])
    rank: dict[float, float] = {}  # each value's mean rank (1-based), ties sharing it
    counts = []
    start = 0
    while start < len(merged):
        end = start + 1
        while end < len(merged) and merged[end] == merged[start]:
            end += 1
        rank[merged[start]] = (start + 1 + end) / 2
        counts.append(end - start)
        start = end
    u1 = sum(rank[float(v)] for v in x) - n1 * (n1 + 1) / 2
    u = max(u1, n1 * n2 - u1)
    if (n1 <= 8 or n2 <= 8) and max(counts) == 1:
        p = 2 * float(mann_whitney_null(n1, n2)[int(round(u)) :].sum())
    else:
        n = n1 + n2
        ties = float(sum(c**3 - c for c in counts))
        spread = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
        if spread == 0:
            return 1.0
        p = math.erfc((u - n1 * n2 / 2 - 0.5) / spread / math.sqrt(2))
    return min(max(p, 0.0), 1.0)


def shift_ratio(
    baseline: list[float], candidate: list[float], confidence: float = 0.95
) -> RatioEstimate:
    """The multiplicative change from baseline to candidate samples, with its interval."""
    b = np.log(np.asarray(baseline, dtype=float))
    c = np.log(np.asarray(candidate, dtype=float))
    diffs = np.sort(np.subtract.outer(c, b).ravel())
    k = shift_ci_rank(len(b), len(c), confidence)
    lo, hi = diffs[k], diffs[len(diffs) - 1 - k]
    p = mann_whitney_p(c, b)
    fast = float(
        np.exp(percentile(c.tolist(), FAST_QUANTILE) - percentile(b.tolist(), FAST_QUANTILE))
    )
    return RatioEstimate(
        float(np.exp(_sorted_median(diffs))), float(np.exp(lo)), float(np.exp(hi)), p, fast
    )


@cache
def signed_rank_null(n: int) -> np.ndarray:
    """P(W+ = w) for w = 0..n(n+1)/2 under the null, W+ the Wilcoxon signed-rank sum: rank k
    counts with probability 1/2, independently, so the distribution is built one rank at a
    time."""
    dist = np.ones(1)
    for k in range(1, n + 1):
        grown = np.zeros(len(dist) + k)
        grown[: len(dist)] += dist / 2  # rank k negative
        grown[k:] += dist / 2  # rank k positive
        dist = grown
    return dist


def signed_rank_ci_rank(n: int, confidence: float = 0.95) -> int:
    """How many Walsh averages to cut from each end for the paired interval: c - 1 for
    [A_(c), A_(N+1-c)], c the number of w with P(W+ <= w) <= alpha/2 (0: the full range)."""
    alpha = 1 - confidence
    if n <= EXACT_MAX:
        c = int(np.searchsorted(np.cumsum(signed_rank_null(n)), alpha / 2, side="right"))
    else:
        z = _scipy_stats().norm.ppf(1 - alpha / 2)
        c = math.floor(n * (n + 1) / 4 - z * math.sqrt(n * (n + 1) * (2 * n + 1) / 24))
    return max(c - 1, 0)


def paired_ratio(
    baseline: list[float],
    candidate: list[float],
    *,
    baseline_samples: list[float] | None = None,
    candidate_samples: list[float] | None = None,
    confidence: float = 0.95,
) -> RatioEstimate:
    """The change from baseline to candidate when they were measured in pairs: `baseline[k]`
    and `candidate[k]` are round k's figures (a median, or a fast quantile), taken side by
    side, so that whatever the machine was doing then weighed on both. The fast ratio
    compares the 10th percentiles of the pooled samples (of the figures without them)."""
    b = np.log(np.asarray(baseline, dtype=float))
    c = np.log(np.asarray(candidate, dtype=float))
    if len(b) != len(c) or len(b) == 0:
        raise ValueError("paired_ratio needs one baseline and one candidate figure per round")
    d = c - b
    i, j = np.triu_indices(len(d))
    walsh = np.sort((d[i] + d[j]) / 2)
    k = signed_rank_ci_rank(len(d), confidence)
    lo, hi = walsh[k], walsh[len(walsh) - 1 - k]
    p = 1.0 if not np.any(d) else float(_scipy_stats().wilcoxon(d).pvalue)
    fast_b = np.log(baseline_samples) if baseline_samples else b
    fast_c = np.log(candidate_samples) if candidate_samples else c
    fast = float(
        np.exp(np.percentile(fast_c, FAST_QUANTILE) - np.percentile(fast_b, FAST_QUANTILE))
    )
    return RatioEstimate(
        float(np.exp(np.median(walsh))), float(np.exp(lo)), float(np.exp(hi)), p, fast
    )


# --------------------------------------------------------------------------- scores over seeds:
# an accuracy figure is a mean over seeds with a Student-t interval (the seeds are a small
# sample of a distribution of training outcomes), and two such figures are compared with
# Welch's t-test, which does not assume the two sides spread alike.


@dataclass(frozen=True)
class SeedSpread:
    """Scores of one configuration over seeds: mean, t-interval, and the scores themselves."""

    n: int
    mean: float
    low: float | None  # None with one seed: no interval from one score
    high: float | None
    values: tuple[float, ...]


def seed_spread(
    values: Sequence[float],
    confidence: float = 0.95,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> SeedSpread:
    """mean ± t_{(1+c)/2, n-1} · s / √n, where s is the sample standard deviation, cut to
    `bounds` (the values the metric can take: an MSE interval never reaches below 0)."""
    scores = np.asarray(values, dtype=float)
    if scores.size == 0:
        raise ValueError("no scores to summarise")
    mean = float(scores.mean())
    if scores.size < 2:
        return SeedSpread(1, mean, None, None, tuple(float(v) for v in scores))
    half = float(_scipy_stats().t.ppf((1 + confidence) / 2, scores.size - 1)) * float(
        scores.std(ddof=1) / math.sqrt(scores.size)
    )
    low, high = max(mean - half, bounds[0]), min(mean + half, bounds[1])
    return SeedSpread(int(scores.size), mean, low, high, tuple(float(v) for v in scores))


@dataclass(frozen=True)
class MeanDifference:
    """candidate mean - baseline mean, with Welch's interval and two-sided p-value."""

    difference: float
    low: float
    high: float
    p_value: float


def welch_difference(
    baseline: Sequence[float], candidate: Sequence[float], confidence: float = 0.95
) -> MeanDifference:
    """Welch's t-test of two samples of scores (at least two on each side). Identical
    scores on both sides (zero variance) give the exact difference and p = 1 or 0."""
    b, c = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    if b.size < 2 or c.size < 2:
        raise ValueError("Welch's test needs at least two scores on each side")
    vb, vc = b.var(ddof=1) / b.size, c.var(ddof=1) / c.size
    return _welch(float(c.mean() - b.mean()), vb, vc, b.size, c.size, confidence)


def _welch(
    diff: float, vb: float, vc: float, nb: int, nc: int, confidence: float
) -> MeanDifference:
    """Welch's interval and p-value for a difference whose sides have variances vb, vc
    estimated from nb and nc values (Welch–Satterthwaite degrees of freedom)."""
    se = math.sqrt(vb + vc)
    if se == 0:
        return MeanDifference(diff, diff, diff, 1.0 if diff == 0 else 0.0)
    df = (vb + vc) ** 2 / (vb**2 / (nb - 1) + vc**2 / (nc - 1))
    half = float(_scipy_stats().t.ppf((1 + confidence) / 2, df)) * se
    p = float(2 * _scipy_stats().t.sf(abs(diff) / se, df))
    return MeanDifference(diff, diff - half, diff + half, p)


# --------------------------------------------------------------------------- across processes:
# one process's samples describe that process; on a shared machine the next one runs a step
# 10-40% faster or slower (memory layout, which core, the host's other tenants), while its
# own samples agree within a few percent. With samples from several fresh processes, a
# cell's figure and interval are across them: each process's median, in logs (a step's time
# varies by factors), their mean, and where the next run's figure lands.
#
# The next run is another set of processes at another moment, and its figure differs from
# this run's by more than the processes' spread over √n when the processes of one run share
# its moment: a run term τ that more processes do not average away. A run's figure has the
# variance τ² + s²/n, with τ² taken as RUN_TERM·s². The interval is then a prediction
# interval, mean ± t·s·√(RUN_TERM + 1/n), the width in which a repeat of the run lands, and
# two runs are compared with that variance on each side.
#
# RUN_TERM is measured (benchmarks/interval_coverage.py: ten runs one after another of four
# cells in 5 processes, which splits the runs' spread into s/√n and τ). Undisturbed, τ came
# to 0-0.42 s quiet, 0-0.59 s beside one busy process and 0-0.18 s beside two: one run's
# processes differ more than two runs' figures do (quiet, process SD 4.5-10% against the
# runs' 2.2-3.7%). Only work that arrived in the middle of a run made τ larger (1.1-1.8 s),
# and such a cell is flagged noisy, its processes disagreeing, and judged against what the
# disturbance could explain (noise.slowdown_bound). RUN_TERM = 0.5 (τ = 0.71 s) is above
# every undisturbed figure; RUN_TERM = 1 would floor a comparison at t·s·√2 however many
# processes ran (docs/measuring.md, "A run's own moment", has the coverage of both).
RUN_TERM = 0.5


@dataclass(frozen=True)
class AcrossProcesses:
    """A cell's figure from the medians of the processes it was measured in."""

    center: float  # the geometric mean of the processes' medians
    low: float  # its 95% prediction interval: where a repeat of the run's figure lands
    high: float
    spread: float  # the standard deviation of the medians' logs (about a fraction)
    # How far the medians would spread from each process's own samples alone: the rms of
    # their medians' standard errors, in logs (from each one's 95% interval).
    within: float
    n: int


def across_processes(
    groups: Sequence[Sequence[float]], confidence: float = 0.95
) -> AcrossProcesses:
    """The figure and prediction interval of samples from `len(groups)` processes (at
    least two), `groups[k]` the samples of process k."""
    if len(groups) < 2:
        raise ValueError("an interval across processes needs at least two processes")
    logs = np.log([median(g) for g in groups])
    n, mean, spread = len(logs), float(logs.mean()), float(logs.std(ddof=1))
    half = prediction_half_width(spread, n, confidence)
    z = float(_scipy_stats().norm.ppf((1 + confidence) / 2))
    errors = [math.log(hi / lo) / 2 / z for lo, hi in (median_ci(g, confidence) for g in groups)]
    return AcrossProcesses(
        math.exp(mean),
        math.exp(mean - half),
        math.exp(mean + half),
        spread,
        math.sqrt(sum(e * e for e in errors) / n),
        n,
    )


def prediction_half_width(
    spread: float, n: int, confidence: float = 0.95, run_term: float = RUN_TERM
) -> float:
    """Half the width, in logs, of the interval where a repeat of a run lands: t·s·√(run
    term + 1/n) for n processes whose medians' logs spread by s."""
    return (
        float(_scipy_stats().t.ppf((1 + confidence) / 2, n - 1))
        * spread
        * math.sqrt(run_term + 1 / n)
    )


# How two runs' processes are compared (process_ratio), measured beside one busy process on
# this project's 2-core machine: a process there sometimes runs the whole of its window in a
# slow mode, every step 1.6-1.8x slower (its 5th percentile too), and one run in three had
# one or two such processes of five, which took the processes' spread from 3% to 15% and
# left most comparisons of identical code undecided. Other work only ever adds time, so a
# process's speed is the lower quartile of its steps (a burst inside its window moves the
# median, not the quartile), and the slowest fifth of each side's processes is set aside:
# Yuen's trimmed mean with its Winsorized variance, trimmed on the slow side only.
PROCESS_QUANTILE = 25
SLOW_TRIM = 0.2


def process_ratio(
    baseline: Sequence[Sequence[float]],
    candidate: Sequence[Sequence[float]],
    confidence: float = 0.95,
    *,
    machine: tuple[Sequence[float], Sequence[float]] | None = None,
) -> RatioEstimate:
    """The change between two runs measured in several processes each: the difference of
    their trimmed mean log speeds (`process_speeds`, `trimmed_mean`), with Welch's interval
    where each side's variance is that of a run's figure (the processes, not the samples,
    are the independent measurements, and a run's moment moves them together). The fast
    ratio compares the pooled 10th percentiles.

    `machine`: the reference step's time in each process of the baseline and of the
    candidate (seqbench.measure.reference). Each process's speed is then taken relative
    to its machine's, and the fast ratio is divided by the ratio of the two runs' mean
    machine times: what the machine did to a whole process cancels out."""
    b, c = process_speeds(baseline), process_speeds(candidate)
    shift = 0.0
    if machine is not None:
        mb, mc = (np.log(np.asarray(m, dtype=float)) for m in machine)
        if mb.shape != b.shape or mc.shape != c.shape:
            raise ValueError("one machine time per process is needed on each side")
        b, c = b - mb, c - mc
        shift = float(mc.mean() - mb.mean())
    (mb_, vb, hb), (mc_, vc, hc) = trimmed_mean(b), trimmed_mean(c)
    d = _welch(mc_ - mb_, vb, vc, hb, hc, confidence)
    pooled_b = np.log(np.concatenate([np.asarray(g, dtype=float) for g in baseline]))
    pooled_c = np.log(np.concatenate([np.asarray(g, dtype=float) for g in candidate]))
    fast = float(
        np.exp(
            percentile(pooled_c.tolist(), FAST_QUANTILE)
            - percentile(pooled_b.tolist(), FAST_QUANTILE)
            - shift
        )
    )
    return RatioEstimate(math.exp(d.difference), math.exp(d.low), math.exp(d.high), d.p_value, fast)


def process_speeds(groups: Sequence[Sequence[float]]) -> np.ndarray:
    """Each process's speed as compared: the log of its steps' lower quartile."""
    return np.log([percentile(g, PROCESS_QUANTILE) for g in groups])


def trimmed_mean(
    logs: np.ndarray, slow_trim: float = SLOW_TRIM, run_term: float = RUN_TERM
) -> tuple[float, float, int]:
    """(mean, variance of a run's figure, values kept) of one side's process logs, the
    slowest ⌊slow_trim·n⌋ set aside (none below 5 processes, where too few would remain).
    The variance is Yuen's for a trimmed mean, s_w²(n-1)/(h(h-1)) with s_w² the Winsorized
    variance (the set-aside values replaced by the slowest kept one) and h the values kept,
    plus the run's own moment, RUN_TERM·s_w²."""
    x = np.sort(np.asarray(logs, dtype=float))
    n = x.size
    cut = int(slow_trim * n) if n >= 5 else 0
    kept = x[: n - cut]
    h = kept.size
    winsorized = np.concatenate([kept, np.full(cut, kept[-1])])
    s2 = float(winsorized.var(ddof=1))
    return float(kept.mean()), s2 * (run_term + (n - 1) / (h * (h - 1))), h
