"""What a plot shows, as data: a `Chart` of `Series`, nothing drawn. plots.py builds charts
from rows; drawing.py (matplotlib) and plots.render_text (plotext) draw them."""

from __future__ import annotations

from dataclasses import dataclass

from seqbench.judge.scaling import PowerLaw


@dataclass(frozen=True)
class Series:
    """One line of a chart: its points (in the axis units) and, for a cost, its fit."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    fit: PowerLaw | None = None
    point_labels: tuple[str, ...] = ()
    # Each point's 95% interval on y, in the axis units (empty: this metric has none;
    # NaN: this point has none).
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    noisy: tuple[bool, ...] = ()  # points whose timing is flagged noisy
    # The same on x, for charts whose x axis is a time (accuracy against cost).
    x_low: tuple[float, ...] = ()
    x_high: tuple[float, ...] = ()
    # Series with the same group share a colour (one architecture before and after
    # training); style is a matplotlib line style ("-", "--", ":").
    group: str = ""
    style: str = "-"


@dataclass(frozen=True)
class Chart:
    """Everything a renderer needs; the x axis is always logarithmic."""

    title: str
    x_label: str
    y_label: str
    log_y: bool
    series: tuple[Series, ...]
    # Pareto fronts, one per kind of cell that may be compared (inference, training).
    frontiers: tuple[Series, ...] = ()
    reference: float | None = None  # a horizontal line (a guess's score)
    reference_label: str = ""
    log_x: bool = True
