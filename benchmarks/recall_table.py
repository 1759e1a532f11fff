"""The README's recall tables, from one saved run of a recall suite (`selective-copy`,
`induction`): per model, the rate chosen on validation, the test accuracy's mean and 95%
interval over seeds, the validation accuracy by rate, where the learning curve stood half
way and at the end, the state a sequence keeps, and what a cell cost.

    seqbench run --suite selective-copy
    python benchmarks/recall_table.py latest [--root results]
    python benchmarks/recall_table.py RUN_A RUN_B      # one suite run in parts

For a task scored at longer lengths (induction), the chosen rate's mean accuracy at each.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from seqbench.judge.accuracy import summarize_accuracy
from seqbench.output.text import format_bytes


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _curve_at(points: list, fraction: float) -> float | None:
    """The validation score at the first point at or past `fraction` of training."""
    if not points:
        return None
    last = points[-1][0]
    return next(v for step, _, v in points if step >= fraction * last)


def main(argv: list[str] | None = None) -> None:
    from modern_table import run_argument  # beside this script

    runs = run_argument(__doc__, argv, several=True)
    run = runs[0]
    for other in runs[1:]:  # a suite run in parts (by architecture): one table
        run.rows = [*run.rows, *other.rows]
        run.curves.update(other.curves)
    groups = summarize_accuracy([r for r in run.rows if r.task])
    lengths: list[int] = []
    for row in run.rows:
        for pair in (row.extrapolation or "").split():
            length = int(pair.split(":")[0])
            if length not in lengths:
                lengths.append(length)
    head = ["model", "params", "state/seq", "rate", "test accuracy % (95% CI, n)",
            "validation % by rate", "validation % half way → end"]  # fmt: skip
    head += [f"T = {t:,}" for t in lengths] + ["cell (median)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(" --- " for _ in head) + "|")
    walls: dict[str, list[float]] = defaultdict(list)
    for row in run.rows:
        if row.task and row.wall_s:
            walls[row.arch].append(row.wall_s)
    for group in groups:
        rows = group.rows
        first = rows[0] if rows else None
        test = group.test
        if test is None:
            score = "-"
        elif test.low is None:
            score = f"{_pct(test.mean)} (n={test.n})"
        else:
            score = f"{_pct(test.mean)} [{_pct(test.low)}, {_pct(test.high)}] (n={test.n})"
        by_rate = ", ".join(
            f"{rate.lr:g}: {_pct(statistics.fmean(v for v in rate.validation if v is not None))}"
            for rate in group.rates
            if any(v is not None for v in rate.validation)
        )
        halves = [
            (_curve_at(run.curves.get(r.cell_id, []), 0.5), _curve_at(run.curves.get(r.cell_id, []), 1.0))
            for r in rows
        ]  # fmt: skip
        half = [h for h, _ in halves if h is not None]
        end = [e for _, e in halves if e is not None]
        curve = f"{_pct(statistics.fmean(half))} → {_pct(statistics.fmean(end))}" if half else "-"
        at_length = []
        for length in lengths:
            scores = []
            for r in rows:
                found = dict(p.split(":") for p in (r.extrapolation or "").split())
                if str(length) in found:
                    scores.append(float(found[str(length)]))
            at_length.append(_pct(statistics.fmean(scores)) if scores else "-")
        arch = group.cell.arch + (f" ({group.cell.layers} layers)" if group.cell.layers > 1 else "")
        cost = statistics.median(walls[group.cell.arch]) if walls[group.cell.arch] else None
        cells = [
            arch,
            f"{first.params:,}" if first and first.params else "-",
            format_bytes(first.state_bytes) if first and first.state_bytes else "-",
            f"{group.lr:g}" if group.lr else "-",
            score,
            by_rate,
            curve,
            *at_length,
            f"{cost / 60:.1f} min" if cost else "-",
        ]
        print("| " + " | ".join(cells) + " |")
    chance = [r.chance_value for r in run.rows if r.chance_value is not None]
    if chance:
        print(f"\nchance (the most frequent answer, on the test set): {_pct(min(chance))}–"
              f"{_pct(max(chance))}%")  # fmt: skip


if __name__ == "__main__":
    main()
