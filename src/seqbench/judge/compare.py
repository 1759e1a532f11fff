"""Compare two runs cell by cell, and gate on regressions that are both real and large.

Timing is compared on the raw samples, not on medians alone: for each cell the change is
estimated as a ratio (candidate / baseline) with its confidence interval, from two runs'
samples (`compare_runs`, a shift estimate) or from rounds measured side by side
(`compare_paired`, behind `seqbench ab`); seqbench.judge.stats has the statistics and
seqbench.judge.verdicts the rules that turn an estimate into a verdict. A cell measured while
other work disturbed it (flagged noisy) gets a verdict of change from `compare_runs` only
where the change is larger than the disturbance could explain (`noise.slowdown_bound`).

Nothing here prints. The comparison is data; seqbench.judge.gate turns it into messages and an
exit code.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from statistics import geometric_mean
from typing import TYPE_CHECKING, Any

from seqbench.core.errors import SeqbenchError
from seqbench.core.schema import Cell, ResultRow, higher_is_better
from seqbench.core.settings import THRESHOLD, THRESHOLDS
from seqbench.judge import noise
from seqbench.judge.stats import fast_quantile, paired_ratio, process_ratio, shift_ratio
from seqbench.judge.verdicts import (
    CellComparison,
    Comparison,
    classify,
    classify_exact,
    judged,
)
from seqbench.machine.env import COMPARED_KEYS, env_differences

if TYPE_CHECKING:
    from seqbench.storage import Run


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
        # Counted under callgrind (run --count-instructions): exact, so any change past the
        # threshold counts, and the threshold can be tight.
        Metric("instructions", "instr_per_step", "instr", lower_is_better=True),
    )
}
# A gate's threshold when none is given (declared in core.settings).
DEFAULT_THRESHOLDS = THRESHOLDS
DEFAULT_THRESHOLD = THRESHOLD


def default_threshold(metric: str) -> float:
    return DEFAULT_THRESHOLDS.get(metric, DEFAULT_THRESHOLD)


def counted(run: Run) -> bool:
    """Were the run's measured cells counted (`run --count-instructions`)?"""
    measured = [r for r in run.rows if r.status == "ok"]
    return bool(measured) and any(r.instr_per_step is not None for r in measured)


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise SeqbenchError(f"unknown metric {name!r}; choose from: {', '.join(METRICS)}") from None


def compute_env_differences(
    baseline: dict[str, Any], candidate: dict[str, Any]
) -> list[tuple[str, Any, Any]]:
    return [
        (k, baseline.get(k), candidate.get(k))
        for k in env_differences(baseline, candidate, COMPARED_KEYS)
    ]


# What can judge a change that one process's samples cannot (see `_one_process`).
ONE_PROCESS = (
    "one process on the {side}: its samples cannot tell a change from the next process's "
    "speed; measure with --processes 3 or more, side by side with `seqbench ab`, or count "
    "instructions (--count-instructions), which load cannot move"
)


def _compare_cell(
    base: ResultRow,
    cand: ResultRow,
    base_groups: list[list[float]],
    cand_groups: list[list[float]],
    metric: Metric,
    threshold: float,
    machine: tuple[list[float], list[float]] | None = None,
    cell: Cell | None = None,
) -> CellComparison:
    """One cell's verdict. `base_groups` and `cand_groups` are each side's timing samples
    split by the fresh process they came from: with two or more processes on each side the
    change is judged across processes (stats.process_ratio), relative to the machine's
    speed in each process where `machine` gives it; otherwise from the samples. `cell`:
    the rows' cell, where the caller has it already."""
    cell = cell or base.cell
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
    base_samples = [s for g in base_groups for s in g]
    cand_samples = [s for g in cand_groups for s in g]
    if len(base_samples) < 2 or len(cand_samples) < 2:
        return CellComparison(
            cell,
            "inconclusive",
            b,
            c,
            c / b,
            note="fewer than 2 samples on one side",
            undecided=True,
        )
    if len(base_groups) < 2 or len(cand_groups) < 2:
        # One process's samples agree within a few percent while the next process may run
        # 10-40% faster or slower: whatever they say is not a verdict.
        est = shift_ratio(base_samples, cand_samples)
        side = "baseline" if len(base_groups) < 2 else "candidate"
        n_base, n_cand = len(base_samples), len(cand_samples)
        return dataclasses.replace(
            judged(cell, "inconclusive", "", est, b, c, n_base, n_cand, threshold),
            note=ONE_PROCESS.format(side=side),
            undecided=True,
        )
    if machine is not None and tuple(map(len, machine)) != (len(base_groups), len(cand_groups)):
        machine = None
    est = process_ratio(base_groups, cand_groups, machine=machine)
    verdict, note = classify(est, threshold, metric.lower_is_better)
    machine_ratio = (
        None if machine is None else geometric_mean(machine[1]) / geometric_mean(machine[0])
    )
    # The processes' spread is in the interval; other work on the CPUs is not: a change
    # stands only where it is larger than the disturbance could make it.
    if verdict in ("regression", "improvement"):
        fastest = max(fast_quantile(base_samples), fast_quantile(cand_samples))
        verdict, note = noise.judge_disturbed(
            verdict, note, est, base, cand, threshold, metric.lower_is_better,
            short=machine is not None and fastest < noise.SLICE_S,
        )  # fmt: skip
    if verdict == "regression":
        note = "; ".join(filter(None, (note, noise.faults_note(base, cand))))
    if machine_ratio is not None and abs(math.log(machine_ratio)) > math.log1p(threshold / 2):
        pace = (
            f"x{machine_ratio:.2f} slower"
            if machine_ratio > 1
            else f"x{1 / machine_ratio:.2f} faster"
        )
        note = "; ".join(
            filter(None, (note, f"the machine ran {pace} for the candidate: judged relative to it"))
        )
    comparison = judged(
        cell, verdict, note, est, b, c, len(base_groups), len(cand_groups), threshold,
        metric.lower_is_better,
    )  # fmt: skip
    return dataclasses.replace(comparison, machine_ratio=machine_ratio)


def _groups(run: Run, row: ResultRow) -> list[list[float]]:
    """A row's samples by the process they came from (one group for a one-process row)."""
    return run.sample_groups(row.cell_id, run.rounds_per_process(row))


def _machine(
    baseline: Run, base: ResultRow, candidate: Run, cand: ResultRow, same_env: bool
) -> tuple[list[float], list[float]] | None:
    """Both sides' machine times per process, where both runs timed the reference and ran in
    the same environment (another torch or CPU would move the reference too)."""
    if not same_env:
        return None
    b = baseline.machine_times(base.cell_id, baseline.rounds_per_process(base))
    c = candidate.machine_times(cand.cell_id, candidate.rounds_per_process(cand))
    return None if b is None or c is None else (b, c)


def check_threshold(threshold: float) -> None:
    if not (math.isfinite(threshold) and threshold > 0):
        raise SeqbenchError(f"--threshold: expected a fraction > 0 (0.05 for 5%), got {threshold}")


def compare_runs(
    baseline: Run,
    candidate: Run,
    *,
    metric: str = "time",
    threshold: float = DEFAULT_THRESHOLD,
    allow_missing: bool = False,
) -> Comparison:
    """Align two runs by cell key and compare every cell present in both.

    A comparison that would pass without looking is refused: an empty run, two runs with no
    cell in common, or (unless `allow_missing`) a candidate without some of the baseline's
    cells, since a gate that skips a cell passes it unseen.
    """
    check_threshold(threshold)
    chosen = get_metric(metric)
    for side, run in (("baseline", baseline), ("candidate", candidate)):
        if not run.rows:
            raise SeqbenchError(f"the {side} {run.run_id} has no cells: nothing to compare")
        measured = [r for r in run.rows if r.status == "ok"]
        if chosen.sampled and measured and not run.samples:
            raise SeqbenchError(
                f"{run.path}: no timing samples beside the rows; compare a run folder, or a CSV with its .samples.csv"
            )
    if chosen.name == "accuracy":
        return _compare_accuracy(baseline, candidate, chosen, threshold, allow_missing)
    base_rows = {r.cell: r for r in baseline.rows}
    cand_rows = {r.cell: r for r in candidate.rows}
    _check_common(baseline, candidate, base_rows, cand_rows, allow_missing)
    same_env = not compute_env_differences(baseline.meta.env, candidate.meta.env)
    cells = [
        _compare_cell(
            base_rows[key], cand_rows[key], _groups(baseline, base_rows[key]),
            _groups(candidate, cand_rows[key]), chosen, threshold,
            _machine(baseline, base_rows[key], candidate, cand_rows[key], same_env), key,
        )
        for key in base_rows
        if key in cand_rows
    ]  # fmt: skip
    return _comparison(chosen, threshold, baseline, candidate, cells, base_rows, cand_rows)


def _compare_accuracy(
    baseline: Run, candidate: Run, metric: Metric, threshold: float, allow_missing: bool
) -> Comparison:
    """Accuracy is compared per model, not per row: each side's chosen rate's test scores
    over its seeds (see seqbench.judge.accuracy), Welch's test between them."""
    from seqbench.judge.accuracy import compare_groups, summarize_accuracy

    base = {g.cell: g for g in summarize_accuracy(baseline.rows)}
    cand = {g.cell: g for g in summarize_accuracy(candidate.rows)}
    if not base:
        raise SeqbenchError(
            f"the baseline {baseline.run_id} has no task cells: no accuracy to compare"
        )
    _check_common(baseline, candidate, base, cand, allow_missing)
    cells = [compare_groups(base[k], cand[k], threshold) for k in base if k in cand]
    return _comparison(metric, threshold, baseline, candidate, cells, base, cand)


def _check_common(
    baseline: Run, candidate: Run, base_rows: dict, cand_rows: dict, allow_missing: bool
) -> None:
    missing = [k for k in base_rows if k not in cand_rows]
    if len(missing) == len(base_rows):
        raise SeqbenchError(
            f"{baseline.run_id} and {candidate.run_id} have no cells in common: "
            "they measured different matrices"
        )
    if missing and not allow_missing:
        raise SeqbenchError(
            f"the candidate lacks {len(missing)} of the baseline's {len(base_rows)} cells "
            f"({missing[0].cell_id}{', ...' if len(missing) > 1 else ''}); pass "
            "--allow-missing to compare the cells both have"
        )


def compare_paired(
    baseline: Run,
    candidate: Run,
    pairs: dict[str, Any],
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> Comparison:
    """Two runs measured side by side (`seqbench ab`): each cell's change is estimated from
    its per-round pairs of figures (`pairs[cell_id].baseline` / `.candidate`), whatever the
    machine did, since each pair saw the same moment. Failed and changed cells are judged
    as `compare_runs` judges them."""
    check_threshold(threshold)
    time = get_metric("time")
    base_rows = {r.cell: r for r in baseline.rows}
    cand_rows = {r.cell: r for r in candidate.rows}
    cells = []
    for key, base in base_rows.items():
        cand, paired = cand_rows.get(key), pairs.get(base.cell_id)
        if cand is None:
            continue
        if base.status != "ok" or cand.status != "ok" or base.params != cand.params:
            cells.append(_compare_cell(base, cand, [], [], time, threshold))
        elif paired is None or len(paired.baseline) < 2:
            note = "fewer than 2 paired rounds"
            cells.append(CellComparison(key, "inconclusive", note=note, undecided=True))
        else:
            est = paired_ratio(
                paired.baseline,
                paired.candidate,
                baseline_samples=baseline.samples.get(base.cell_id),
                candidate_samples=candidate.samples.get(cand.cell_id),
            )
            verdict, note = classify(est, threshold)
            n = len(paired.baseline)
            cells.append(
                judged(key, verdict, note, est, base.median_s, cand.median_s, n, n, threshold)
            )
    return _comparison(time, threshold, baseline, candidate, cells, base_rows, cand_rows)


def _comparison(
    metric: Metric,
    threshold: float,
    baseline: Run,
    candidate: Run,
    cells: list[CellComparison],
    base_rows: dict[Cell, Any],
    cand_rows: dict[Cell, Any],
) -> Comparison:
    """The comparison of two runs' cells, with the cells only one of them has and how their
    environments differ."""
    return Comparison(
        metric=metric,
        threshold=threshold,
        baseline_id=baseline.run_id,
        candidate_id=candidate.run_id,
        cells=cells,
        only_baseline=[k for k in base_rows if k not in cand_rows],
        only_candidate=[k for k in cand_rows if k not in base_rows],
        env_differences=compute_env_differences(baseline.meta.env, candidate.meta.env),
    )
