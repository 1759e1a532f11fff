"""How cost grows with sequence length: power-law fits, crossovers and anomalies, as data.

For every series of a run (the cells that differ only in `seq_len`) with at least
`MIN_LENGTHS` lengths, cost is fitted as c·T^k by least squares on log cost against log T.
A recurrence does a fixed amount of work per step, so its time should grow as T^1; dense
self-attention builds a T×T score matrix, so its time tends to T^2 once T is long enough for
that to dominate the linear projections. An exponent well below the family's value means
fixed per-step costs (dispatch, the head, the optimiser) still dominate at the lengths
measured; one well above means something other than the architecture grows with T.

An *anomaly* is a step between adjacent lengths whose cost grows far more than the fit
says it should: the step's observed growth y[i+1]/y[i] divided by the fitted growth
(T[i+1]/T[i])^k exceeds `ANOMALY_FACTOR`. Noise of ±5% moves that ratio by about 10%, and a
smooth bend (fixed overhead giving way to linear growth, or linear to quadratic) by well
under 2×; the CPU's subnormal cliff (~30× in one step; benchmarks/subnormal_cliff.py) gives 5× or more even
with only three lengths, because the cliff drags the fit up with it.

A *drop* is flagged by a separate rule, independent of the fit: a longer sequence that costs
less than 1/`DROP_FACTOR` of a shorter one's. More steps cannot take less work, so one of
the two cells was disturbed (or a faster kernel took over). The fit cannot judge drops: with
three lengths its residuals on the two steps are equal and opposite, so a cliff on one step
would look like a drop on the other.

Nothing here prints or formats: `compute_*` return numbers; report.py writes the sentences.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from seqbench.core.schema import Cell, ResultRow
from seqbench.models.options import CORE_OPTIONS_DEFAULTS

# The cost columns that get a fit in the scaling table.
SCALED_METRICS = ("median_s", "peak_mem_bytes")
# Fewer lengths than this fit any exponent perfectly, which says nothing.
MIN_LENGTHS = 3
# A step that grows more than this many times what the fit predicts is an anomaly.
ANOMALY_FACTOR = 3.0
# A longer sequence costing less than 1/this of a shorter one's is an anomaly too.
DROP_FACTOR = 2.0
# What each family's step time should grow as, at lengths where its main term dominates.
# A variant named family-something (transformer-causal) takes its family's; architectures
# not listed (users' own) get no expectation, and no hint.
EXPECTED_TIME_EXPONENT: dict[str, float] = {
    "rnn": 1.0,
    "lstm": 1.0,
    "gru": 1.0,
    "conv1d": 1.0,
    "attention": 2.0,
    "transformer": 2.0,
}
# How far a fitted exponent may stray before the table says so: a quarter of a power is a
# factor of 2 over a 16× range of lengths, more than noise or a bend at the ends explains.
EXPONENT_TOLERANCE = 0.25


@dataclass(frozen=True)
class PowerLaw:
    """cost = coefficient · T^exponent."""

    exponent: float
    coefficient: float

    def at(self, length: float) -> float:
        return self.coefficient * length**self.exponent


def fit_power_law(lengths: Sequence[float], values: Sequence[float]) -> PowerLaw:
    """Least squares of log(value) on log(length); needs two distinct lengths, values > 0."""
    if len(lengths) != len(values) or len(set(lengths)) < 2:
        raise ValueError("a power law needs at least two distinct lengths, one value each")
    if min(values) <= 0 or min(lengths) <= 0:
        raise ValueError("a power law needs positive lengths and values")
    xs = [math.log(t) for t in lengths]
    ys = [math.log(v) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    k = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return PowerLaw(k, math.exp(my - k * mx))


def series_key(cell: Cell) -> Cell:
    """The cell with its length taken out: every length of one model shares this key."""
    return dataclasses.replace(cell, seq_len=0)


def context_key(cell: Cell) -> Cell:
    """What two models must share to be compared: everything but the architecture, its
    options and the length (a convolution has two layers where an RNN has one), and the
    width when the run matched the models' parameters instead (each gets its own)."""
    hidden = 0 if cell.match_params else cell.hidden
    return dataclasses.replace(series_key(cell), arch="", hidden=hidden, **CORE_OPTIONS_DEFAULTS)


@dataclass(frozen=True)
class Fit:
    """One series' fit: its key (seq_len 0), the metric, the law, and the points it came from."""

    key: Cell
    metric: str
    law: PowerLaw
    lengths: tuple[int, ...]
    values: tuple[float, ...]
    kernels: tuple[str, ...]
    # Points whose timing was flagged noisy: a step at one of them is not evidence of a cause.
    noisy: tuple[bool, ...] = ()

    @property
    def exponent(self) -> float:
        return self.law.exponent


def compute_fits(
    rows: Sequence[ResultRow], metric: str, min_lengths: int = MIN_LENGTHS
) -> list[Fit]:
    """A power law per series with `min_lengths` or more measured lengths, in row order.

    Only `ok` rows with a positive value count: an OOM or skipped cell has no cost to fit.
    """
    points: dict[Cell, list[ResultRow]] = {}
    for row in rows:
        value = getattr(row, metric)
        if row.status == "ok" and value is not None and value > 0:
            points.setdefault(series_key(row.cell), []).append(row)
    fits = []
    for key, members in points.items():
        members = sorted(members, key=lambda r: r.seq_len)
        if len(members) < min_lengths:
            continue
        lengths = tuple(r.seq_len for r in members)
        values = tuple(float(getattr(r, metric)) for r in members)
        fits.append(
            Fit(
                key,
                metric,
                fit_power_law(lengths, values),
                lengths,
                values,
                tuple(r.kernel for r in members),
                tuple(bool(r.noisy) and metric == "median_s" for r in members),
            )
        )
    return fits


def expected_exponent(arch: str) -> float | None:
    """The time exponent an architecture's family predicts, if it has one."""
    family = EXPECTED_TIME_EXPONENT.get(arch)
    return family if family is not None else EXPECTED_TIME_EXPONENT.get(arch.split("-")[0])


def compute_exponent_gap(fit: Fit, tolerance: float = EXPONENT_TOLERANCE) -> float | None:
    """The fitted time exponent less the family's, when it strays beyond `tolerance`."""
    expected = expected_exponent(fit.key.arch)
    if fit.metric != "median_s" or expected is None:
        return None
    gap = fit.exponent - expected
    return gap if abs(gap) > tolerance else None


@dataclass(frozen=True)
class Crossover:
    """Two fitted curves cross at `length`: `below` is the cheaper one at shorter lengths."""

    metric: str
    length: float
    below: Cell
    above: Cell


def compute_crossovers(fits: Sequence[Fit]) -> list[Crossover]:
    """Where two models' curves (same metric and context) cross within the lengths both
    measured. Outside that range a crossing would be an extrapolation, so it is left out."""
    found = []
    for i, a in enumerate(fits):
        for b in fits[i + 1 :]:
            if a.metric != b.metric or context_key(a.key) != context_key(b.key):
                continue
            if a.exponent == b.exponent:
                continue  # parallel: one is cheaper everywhere
            # c_a T^k_a = c_b T^k_b  =>  T = (c_b / c_a)^(1 / (k_a - k_b))
            log_t = math.log(b.law.coefficient / a.law.coefficient) / (a.exponent - b.exponent)
            length = math.exp(log_t)
            low = max(a.lengths[0], b.lengths[0])
            high = min(a.lengths[-1], b.lengths[-1])
            if not low <= length <= high:
                continue
            # Below the crossing the curve that grows faster is still the lower one.
            steeper, flatter = (a, b) if a.exponent > b.exponent else (b, a)
            found.append(Crossover(a.metric, length, steeper.key, flatter.key))
    return found


@dataclass(frozen=True)
class Anomaly:
    """A step between adjacent lengths that grew `ratio` times more than the fit predicts."""

    key: Cell
    metric: str
    before: int
    after: int
    observed: float  # y[after] / y[before]
    fitted: float  # (after / before) ** k
    kernel_before: str = ""
    kernel_after: str = ""
    noisy: bool = False  # one end's timing was flagged noisy

    @property
    def ratio(self) -> float:
        return self.observed / self.fitted

    @property
    def is_jump(self) -> bool:
        """True for cost rising beyond the fit, False for a drop (cost falling with length)."""
        return self.observed > self.fitted


def compute_anomalies(
    fits: Sequence[Fit], factor: float = ANOMALY_FACTOR, drop: float = DROP_FACTOR
) -> list[Anomaly]:
    """Steps whose growth is more than `factor` times the fitted growth, and steps where
    the cost falls below 1/`drop` of the shorter length's (see the module notes)."""
    found = []
    for fit in fits:
        for i in range(len(fit.lengths) - 1):
            t0, t1 = fit.lengths[i], fit.lengths[i + 1]
            observed = fit.values[i + 1] / fit.values[i]
            fitted = (t1 / t0) ** fit.exponent
            if observed > factor * fitted or observed < 1 / drop:
                found.append(
                    Anomaly(
                        fit.key,
                        fit.metric,
                        t0,
                        t1,
                        observed,
                        fitted,
                        fit.kernels[i],
                        fit.kernels[i + 1],
                        any(fit.noisy[i : i + 2]),
                    )
                )
    return found


@dataclass(frozen=True)
class Scaling:
    """Everything the scaling table shows for a run."""

    fits: dict[str, list[Fit]]  # by metric
    crossovers: list[Crossover]
    anomalies: list[Anomaly]

    def fit(self, metric: str, key: Cell) -> Fit | None:
        return next((f for f in self.fits.get(metric, []) if f.key == key), None)

    @property
    def keys(self) -> list[Cell]:
        """Every fitted series, in the order of the rows."""
        return list(dict.fromkeys(f.key for fits in self.fits.values() for f in fits))


def compute_scaling(rows: Sequence[ResultRow], metrics: Sequence[str] = SCALED_METRICS) -> Scaling:
    """Fits, crossovers and anomalies of a run's cost columns."""
    fits = {metric: compute_fits(rows, metric) for metric in metrics}
    every = [f for metric in metrics for f in fits[metric]]
    return Scaling(fits, compute_crossovers(every), compute_anomalies(every))


def compute_pareto(
    points: Sequence[tuple[float, float]], higher_is_better: bool = True
) -> list[int]:
    """Indices of the points (cost, quality) that no other point beats on both, by cost.

    A point is on the frontier when every cheaper point is worse: nothing buys more quality
    for less.
    """
    sign = 1 if higher_is_better else -1
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -sign * points[i][1]))
    frontier: list[int] = []
    best = -math.inf
    for i in order:
        quality = sign * points[i][1]
        if quality > best:
            frontier.append(i)
            best = quality
    return frontier
