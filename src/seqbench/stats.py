"""Pure functions over timing samples. Nothing here prints or measures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


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
    cdf = sps.binom.cdf(np.arange(n), n, 0.5)
    ok = np.nonzero(cdf <= alpha / 2)[0]
    if ok.size == 0:
        return 0, n - 1
    m = int(ok[-1])
    return m, n - 1 - m


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
