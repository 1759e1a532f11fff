from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from seqbench.judge.stats import (
    half_binomial_cdf,
    iqr,
    median,
    median_ci,
    median_ci_ranks,
    relative_ci_halfwidth,
    summarize,
)

ONE_TO_TEN = [3.0, 1.0, 4.0, 10.0, 5.0, 9.0, 2.0, 6.0, 8.0, 7.0]


def test_median_and_iqr_of_one_to_ten():
    assert median(ONE_TO_TEN) == 5.5
    assert iqr(ONE_TO_TEN) == 4.5  # 7.75 - 3.25, linear interpolation


def test_median_ci_uses_binomial_order_statistics():
    assert median_ci_ranks(10) == (1, 8)  # the 2nd and 9th smallest
    assert median_ci(ONE_TO_TEN) == (2.0, 9.0)
    assert median_ci_ranks(100) == (39, 60)  # the classical table: 40th and 61st


@pytest.mark.parametrize("n", [6, 10, 25, 100, 501])
def test_median_ci_reaches_its_coverage_and_no_narrower_interval_does(n):
    lo, hi = median_ci_ranks(n)
    # [x_(lo), x_(n-1-lo)] (0-based) misses the median when at most lo samples lie below it,
    # or at most lo above: coverage 1 - 2·P(B <= lo), B ~ Binomial(n, 1/2).
    assert 1 - 2 * sps.binom.cdf(lo, n, 0.5) >= 0.95
    assert 1 - 2 * sps.binom.cdf(lo + 1, n, 0.5) < 0.95
    assert hi == n - 1 - lo


def test_too_few_samples_give_the_full_range():
    assert median_ci_ranks(5) == (0, 4)
    assert median_ci([5.0, 1.0, 3.0]) == (1.0, 5.0)
    assert median_ci([2.0]) == (2.0, 2.0)


def test_relative_ci_halfwidth():
    assert relative_ci_halfwidth(ONE_TO_TEN) == pytest.approx((9.0 - 2.0) / 2 / 5.5)


def test_summarize_fixed_samples():
    s = summarize(ONE_TO_TEN)
    assert (s.n, s.median, s.iqr, s.ci_low, s.ci_high, s.minimum, s.mean) == (
        10,
        5.5,
        4.5,
        2.0,
        9.0,
        1.0,
        5.5,
    )


def test_summarize_refuses_no_samples():
    with pytest.raises(ValueError):
        summarize([])


def test_the_interval_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    hits = 0
    trials = 2000
    for _ in range(trials):
        draws = rng.lognormal(mean=0.0, sigma=0.5, size=30)  # true median 1.0
        lo, hi = median_ci(draws)
        hits += lo <= 1.0 <= hi
    assert 0.94 <= hits / trials <= 0.99


def test_the_mann_whitney_p_value_is_scipys():
    # seqbench computes it itself (SciPy's call costs 1.5 ms of argument handling per cell):
    # exact for small samples without ties, normal with tie and continuity corrections else.
    from seqbench.judge.stats import mann_whitney_p

    rng = np.random.default_rng(0)
    for trial in range(600):
        n1, n2 = rng.integers(1, 30, 2)
        x, y = rng.normal(size=n1), rng.normal(rng.normal() * 0.5, 1, size=n2)
        if trial % 3 == 0:  # ties within and across the samples
            x, y = np.round(x, 1), np.round(y, 1)
        expected = sps.mannwhitneyu(x, y, alternative="two-sided").pvalue
        assert mann_whitney_p(x, y) == pytest.approx(expected, abs=1e-12), (n1, n2)
    assert mann_whitney_p(np.ones(3), np.ones(4)) == 1.0  # everything ties
    assert mann_whitney_p(np.arange(5.0), np.arange(5.0) + 10) == pytest.approx(2 / 252)


def test_the_medians_interval_ranks_equal_scipys_binomial():
    """half_binomial_cdf replaces scipy.stats.binom (whose import a worker would pay): the
    ranks it gives equal those from scipy's CDF for every n to 2,000 and some large n."""
    from scipy import stats as sps

    def from_scipy(n: int, confidence: float) -> tuple[int, int]:
        ok = np.nonzero(sps.binom.cdf(np.arange(n), n, 0.5) <= (1 - confidence) / 2)[0]
        return (0, n - 1) if ok.size == 0 else (int(ok[-1]), n - 1 - int(ok[-1]))

    for confidence in (0.9, 0.95, 0.99):
        for n in [*range(1, 2001), 12_345, 100_000]:
            assert median_ci_ranks(n, confidence) == from_scipy(n, confidence), (n, confidence)
    np.testing.assert_allclose(
        half_binomial_cdf(500), sps.binom.cdf(np.arange(500), 500, 0.5), rtol=1e-12, atol=1e-15
    )


def test_percentile_is_numpys_to_the_last_bit():
    # stats.percentile replaces np.percentile (50 µs a call) on the comparison paths: the
    # same value, bit for bit, on ties, one value, repeated values and every quantile used.
    import random

    from seqbench.judge.stats import _sorted_median, percentile

    rng = random.Random(7)
    for n in (1, 2, 3, 5, 9, 10, 17, 40, 301):
        for trial in range(20):
            values = [rng.lognormvariate(-7, 0.3) for _ in range(n)]
            if trial % 3 == 0:  # ties
                values = [round(v, 5) for v in values] * 2
            for q in (10, 25, 50, 75, 90, 12.5):
                assert percentile(values, q) == float(np.percentile(values, q))
            ordered = np.sort(np.asarray(values))
            assert _sorted_median(ordered) == float(np.median(ordered))
