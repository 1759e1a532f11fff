"""What a comparison means for a CI job: checks as data, and the exit code they come to.

A check reads a `Comparison` and returns a message or nothing. Regressions (and, when asked,
large improvements) fail the gate: exit 1. Without a failure, cells whose evidence cannot
rule out a regression make the comparison too noisy to decide: exit 3, so that CI can rerun
instead of passing or failing. Bad input and mismatched environments are the CLI's exit 2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seqbench.core.errors import SeqbenchError
from seqbench.core.settings import THRESHOLD
from seqbench.judge.compare import compare_paired, compare_runs, counted, default_threshold
from seqbench.judge.verdicts import Comparison

if TYPE_CHECKING:
    from seqbench.storage import Run

Check = Callable[[Comparison], "str | None"]


def check_regressions(comparison: Comparison) -> str | None:
    n = comparison.count("regression")
    if not n:
        return None
    significant = " and significant" if comparison.metric.sampled else ""
    return f"{n} cell{'s' if n > 1 else ''} regressed ({comparison.metric.name}, more than {comparison.threshold:.0%}{significant})"


def check_improvements(comparison: Comparison) -> str | None:
    n = comparison.count("improvement")
    if not n:
        return None
    return f"{n} cell{'s' if n > 1 else ''} improved by more than {comparison.threshold:.0%}: a benchmark that got much faster may have stopped measuring what it did"


def check_undecided(comparison: Comparison) -> str | None:
    undecided = [c for c in comparison.cells if c.undecided]
    if not undecided:
        return None
    n = len(undecided)
    if comparison.metric.name == "accuracy":
        return (
            f"{n} model{'s' if n > 1 else ''} undecided over seeds: a regression past "
            f"{comparison.threshold:.0%} cannot be ruled out from the seeds' scores; run "
            "both sides with more seeds (--seeds 3 or more)"
        )
    return (
        f"{n} cell{'s' if n > 1 else ''} too noisy to decide: a regression past "
        f"{comparison.threshold:.0%} cannot be ruled out; rerun with more --processes (the "
        "interval narrows as they grow), side by side with `seqbench ab`, or gate on "
        "instruction counts (--count-instructions), which other work cannot move"
    )


def run_checks(comparison: Comparison, *, fail_on_improvement: bool = False) -> list[str]:
    """The failures of a comparison (exit 1)."""
    checks: list[Check] = [check_regressions]
    if fail_on_improvement:
        checks.append(check_improvements)
    return [message for check in checks if (message := check(comparison))]


# Exit codes of a gate: a regression fails (1); with none, evidence that cannot separate a
# regression from noise is its own outcome (3), so that CI can rerun instead of passing or
# failing; bad input and mismatched environments are 2.
EXIT_REGRESSION, EXIT_UNDECIDED = 1, 3


@dataclass(frozen=True)
class Gate:
    """What a comparison means for CI: the exit code and the messages behind it."""

    failures: list[str]
    undecided: list[str]

    @property
    def exit_code(self) -> int:
        return EXIT_REGRESSION if self.failures else EXIT_UNDECIDED if self.undecided else 0

    def lines(self) -> list[str]:
        return [f"FAIL: {m}" for m in self.failures] + [f"UNDECIDED: {m}" for m in self.undecided]


def gate(
    comparison: Comparison,
    *,
    fail_on_improvement: bool = False,
    beside: Comparison | None = None,
) -> Gate:
    """The failures (exit 1) and, without any, what is too noisy to decide (exit 3).
    `beside` (the instruction counts of the same runs) adds its failures: a count that grew
    past its threshold fails the gate even when the clock could not tell."""
    failures = run_checks(comparison, fail_on_improvement=fail_on_improvement)
    if beside is not None:
        failures += run_checks(beside, fail_on_improvement=fail_on_improvement)
    undecided = [] if failures else [m for m in [check_undecided(comparison)] if m]
    return Gate(failures, undecided)


@dataclass(frozen=True)
class Judged:
    """A comparison, the instruction counts' beside it when both runs were counted, and
    what the two mean for CI."""

    comparison: Comparison
    beside: Comparison | None
    verdict: Gate


def check_measured(run: Run, side: str) -> None:
    """Refuse a side of `ab` that measured none of its cells. A baseline that measured
    nothing leaves nothing to compare (the candidate is not measured where the baseline
    failed); a candidate whose every cell failed with an error could not run at all, which is
    not a verdict on the change. A candidate that ran out of memory or time everywhere did
    run: that stays a regression."""
    if any(r.status == "ok" for r in run.rows):
        return
    errors = [r for r in run.rows if r.status == "error"]
    if side == "candidate" and not errors:
        return
    version = (run.meta.ab or {}).get("version") or run.run_id
    first = (errors or run.rows)[:1]
    why = ""
    if first:  # the first failure's first line: what every cell ran into, most often
        message = (first[0].message.splitlines() or [""])[0]
        why = f" ({first[0].status}{': ' if message else ''}{message})"
    raise SeqbenchError(f"the {side} ({version}) cannot be measured: none of its cells ran{why}")


def judge_ab(
    baseline: Run,
    candidate: Run,
    pairs: dict[str, Any],
    *,
    threshold: float = THRESHOLD,
    fail_on_improvement: bool = False,
) -> Judged:
    """The verdict on two runs measured side by side (`seqbench ab`, `seqbench.ab`): time
    judged on the per-round pairs, and instruction counts beside it when both sides counted.
    A version that measured none of its cells raises `SeqbenchError` (see `check_measured`)."""
    check_measured(baseline, "baseline")
    check_measured(candidate, "candidate")
    comparison = compare_paired(baseline, candidate, pairs, threshold=threshold)
    beside = None
    if counted(baseline) and counted(candidate):  # --count-instructions: gated on counts too
        beside = compare_runs(baseline, candidate, metric="instructions", allow_missing=True,
                              threshold=default_threshold("instructions"))  # fmt: skip
    verdict = gate(comparison, fail_on_improvement=fail_on_improvement, beside=beside)
    return Judged(comparison, beside, verdict)
