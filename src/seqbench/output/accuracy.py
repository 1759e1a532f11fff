"""The accuracy table: one line per model, its chosen rate's test score over seeds (see
seqbench.judge.accuracy for the rule), and the validation grid it was chosen from."""

from __future__ import annotations

import statistics

from seqbench.judge.accuracy import AccuracyGroup
from seqbench.output.layout import Column, TableText, layout
from seqbench.output.tables import key_columns
from seqbench.output.text import format_seconds


def format_spread(group: AccuracyGroup) -> str:
    """'0.0123 [0.0101, 0.0145] n=3', or the single score with n=1."""
    spread = group.test
    if spread is None:
        return "-"
    interval = "" if spread.low is None else f" [{spread.low:.3g}, {spread.high:.3g}]"
    return f"{spread.mean:.3g}{interval} n={spread.n}"


def format_grid(group: AccuracyGroup) -> str:
    """Each rate's mean validation score, the chosen one starred: '1e-3 0.16, 2e-3 0.004*'."""
    parts = []
    for rate in group.rates:
        mean = rate.mean_validation
        text = f"{rate.lr:g} {'-' if mean is None else f'{mean:.3g}'}"
        if not rate.eligible and len(group.rates) > 1:
            text += " (incomplete)"
        parts.append(text + ("*" if rate.lr == group.lr else ""))
    return ", ".join(parts)


def _median_of(values: list) -> str:
    known = [v for v in values if v is not None]
    return "-" if not known else f"{statistics.median(known):g}"


def format_accuracy(groups: list[AccuracyGroup]) -> TableText:
    """One line per model: test mean with its 95% t-interval over seeds, chance, the rate
    chosen on validation, the grid, and the median steps and seconds to --target."""
    columns = [
        *key_columns(lambda g: g.cell, exclude=("seed", "lr")),
        Column("metric", lambda g, _: g.metric or "-", "left", fold=True),
        Column("test mean [95% CI]", lambda g, _: format_spread(g)),
        Column("chance", lambda g, _: "-" if g.chance is None else f"{g.chance:.3g}", drop=3),
        Column("lr", lambda g, _: "-" if g.lr is None else f"{g.lr:g}"),
        Column("validation by lr", lambda g, _: format_grid(g), "left", drop=2),
        Column(
            "steps to target", lambda g, _: _median_of([r.steps_to_target for r in g.rows]), drop=1
        ),
        Column(
            "time to target",
            lambda g, _: format_seconds(
                statistics.median(t)
                if (t := [r.time_to_target_s for r in g.rows if r.time_to_target_s is not None])
                else None
            ),
            drop=1,
        ),
    ]
    notes = list(dict.fromkeys(g.note for g in groups if g.note))
    return layout(columns, groups, [None] * len(groups), notes)
