"""A cell's cost over time: its median in every saved run, in commit order, and the steps.

A run records the commit it measured (and, from schema 8 on, when that commit was made).
`build_history` lines the runs up by commit time (or by run time), keeps runs from
different environments apart (the keys `compare` refuses to mix: device, CPU, library
versions, threads, subnormal and TF32 settings), and finds the change points of each
cell's series (seqbench.judge.changepoints). Nothing here prints.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqbench.core.errors import ResultsError, SeqbenchError
from seqbench.core.schema import Cell, ResultRow
from seqbench.judge.changepoints import ChangePoints, Settings, find_change_points
from seqbench.judge.compare import compute_env_differences
from seqbench.machine.env import COMPARED_KEYS

if TYPE_CHECKING:
    from seqbench.storage import Run

ORDERS = ("auto", "commit", "run")


@dataclass(frozen=True)
class Point:
    """One run's figure for one cell."""

    run_id: str
    position: int  # the run's place among all the runs, in the history's order
    commit: str  # "" when the run was not made in a git checkout
    dirty: bool  # uncommitted changes: the commit is not quite what was measured
    when: str  # the time the history is ordered by (commit or run), ISO 8601
    median_s: float
    ci_low_s: float | None
    ci_high_s: float | None
    # The machine's reference step in the run's processes (their geometric mean), where the
    # run timed it (two or more processes on a CPU): how fast the machine ran that run.
    machine_s: float | None = None


@dataclass(frozen=True)
class Environment:
    """The compared keys of a group of runs that may share a line."""

    number: int  # 1, 2, ... in order of first appearance
    keys: dict[str, Any]
    runs: int
    # How it differs from environment 1: (key, there, here).
    differences: list[tuple[str, Any, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Series:
    cell: Cell
    environment: int
    points: list[Point]
    changes: ChangePoints
    # The steps were found in the medians relative to each run's machine speed (every run
    # of the series timed the reference), as `compare` judges: a run on a slower machine
    # moment is not a step of the code. False: in the medians as measured.
    relative: bool = False

    def first_after(self, step_index: int) -> Point:
        """The first run on the new level: the commit a step is blamed on."""
        return self.points[step_index]


@dataclass(frozen=True)
class History:
    order: str  # "commit" or "run"
    environments: list[Environment]
    series: list[Series]
    runs: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run, why)

    @property
    def latest_environment(self) -> int:
        """The environment of the most recent run with a chosen cell: the one a gate judges."""
        return max((s.points[-1].position, s.environment) for s in self.series)[1]


def gather_runs(refs: Sequence[str], root: Path) -> tuple[list[Run], list[tuple[str, str]]]:
    """The runs named (ids, folders, exported rows files), or every run under `root`.

    A run under `root` that cannot be read is skipped and listed; a run named explicitly
    that cannot be read is an error, as in every other command."""
    from seqbench.storage import list_run_dirs, load_run

    if refs:
        return [load_run(ref, root) for ref in refs], []
    folders = list_run_dirs(root)
    if not folders:
        raise ResultsError(f"{root}: no saved runs")
    runs, skipped = [], []
    for folder in folders:
        try:
            runs.append(load_run(folder, root))
        except ResultsError as exc:
            skipped.append((folder.name, str(exc)))
    return runs, skipped


def run_time(run: Run) -> str:
    return str(run.meta.env.get("time") or run.meta.created_at or "")


def commit_time(run: Run) -> str | None:
    """When the run's commit was made (ISO 8601), if the run recorded it readably."""
    value = run.meta.env.get("git_commit_time")
    try:
        datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return str(value)


def resolve_order(runs: Sequence[Run], order: str) -> str:
    """`auto` is commit order when every run knows its commit's time, else run order."""
    if order not in ORDERS:
        raise SeqbenchError(f"--order: expected one of {', '.join(ORDERS)}, got {order!r}")
    missing = [r.run_id for r in runs if commit_time(r) is None]
    if order == "commit" and missing:
        raise SeqbenchError(
            f"--order commit: {len(missing)} run(s) do not record their commit's time "
            f"({missing[0]}{', ...' if len(missing) > 1 else ''}); use --order run"
        )
    if order == "auto":
        return "run" if missing else "commit"
    return order


def _sort_key(run: Run, order: str) -> tuple[str, str, int]:
    tie = run.meta.created_ns or 0
    if order == "commit":
        # Commit times carry their author's offset: compare them as instants.
        instant = datetime.fromisoformat(str(commit_time(run))).timestamp()
        return (f"{instant:020.6f}", run_time(run), tie)
    return (run_time(run), "", tie)


def group_environments(runs: Sequence[Run]) -> tuple[list[Environment], list[int]]:
    """Environments in order of first appearance, and each run's environment number."""
    keys: list[dict[str, Any]] = []
    counts: list[int] = []
    of_run = []
    for run in runs:
        env = run.meta.env
        same = [j for j, known in enumerate(keys) if not compute_env_differences(known, env)]
        if not same:
            keys.append({k: env.get(k) for k in COMPARED_KEYS})
            counts.append(0)
        i = same[0] if same else len(keys) - 1
        counts[i] += 1
        of_run.append(i + 1)
    envs = [
        Environment(i + 1, k, counts[i], compute_env_differences(keys[0], k) if i else [])
        for i, k in enumerate(keys)
    ]
    return envs, of_run


def _point(run: Run, position: int, row: ResultRow, order: str) -> Point:
    env = run.meta.env
    when = commit_time(run) if order == "commit" else run_time(run)
    return Point(
        run_id=run.run_id,
        position=position,
        commit=str(env.get("git_commit") or ""),
        dirty=bool(env.get("git_dirty")),
        when=str(when or ""),
        median_s=float(row.median_s),
        ci_low_s=row.ci_low_s,
        ci_high_s=row.ci_high_s,
        machine_s=_machine(run, row),
    )


def _machine(run: Run, row: ResultRow) -> float | None:
    times = run.machine_times(row.cell_id, run.rounds_per_process(row))
    return statistics.geometric_mean(times) if times else None


def series_values(points: Sequence[Point]) -> tuple[list[float], bool]:
    """What a series' steps are found in: each run's median relative to its machine's speed
    (scaled back to seconds by the series' typical machine time) where every run timed the
    reference, else the medians as measured; and which of the two it is."""
    medians = [p.median_s for p in points]
    machine = [p.machine_s for p in points]
    if len(points) < 2 or any(m is None or m <= 0 for m in machine):
        return medians, False
    typical = statistics.geometric_mean(machine)
    return [t * typical / m for t, m in zip(medians, machine, strict=True)], True


def build_history(
    runs: Sequence[Run],
    *,
    select: Callable[[list[ResultRow]], list[ResultRow]] | None = None,
    order: str = "auto",
    settings: Settings | None = None,
    skipped: Sequence[tuple[str, str]] = (),
) -> History:
    """Each cell's measured medians across the runs, one series per cell and environment,
    ordered by commit (or run) time, with the steps found in each. `select` picks the
    cells to follow from all the runs' rows (default: all)."""
    if not runs:
        if skipped:  # every run there is was left out: say why, not that there were none
            why = skipped[0][1]
            more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
            raise ResultsError(f"no readable runs to make a history of: {why}{more}")
        raise ResultsError("no runs to make a history of")
    chosen = resolve_order(runs, order)
    ordered = sorted(runs, key=lambda r: _sort_key(r, chosen))
    every = [row for run in ordered for row in run.rows]
    wanted = {r.cell_id for r in (select(every) if select else every)}
    if not wanted:
        raise SeqbenchError("no cells in these runs")
    environments, of_run = group_environments(ordered)
    by_key: dict[tuple[int, Cell], list[Point]] = {}
    for position, (run, env_number) in enumerate(zip(ordered, of_run, strict=True)):
        for row in run.rows:
            if row.cell_id in wanted and row.status == "ok" and row.median_s:
                point = _point(run, position, row, chosen)
                by_key.setdefault((env_number, row.cell), []).append(point)
    if not by_key:
        raise SeqbenchError("none of the chosen cells was measured (status ok) in these runs")
    settings = settings or Settings()
    series = []
    for (env_number, cell), points in sorted(by_key.items(), key=lambda kv: kv[0][0]):
        values, relative = series_values(points)
        changes = find_change_points(values, settings)
        series.append(Series(cell, env_number, points, changes, relative))
    return History(chosen, environments, series, len(ordered), list(skipped))


def gate_steps(history: History, threshold: float) -> list[tuple[Series, Any]]:
    """The cells (of the latest run's environment) whose latest level began with a step
    slower than 1 + `threshold`: the steps `history --fail-on-step` fails on.

    Only the step into the current level counts: a slowdown a later step undid, or that a
    later step already answered, is history, not a regression of the code as it is now."""
    env = history.latest_environment
    found = []
    for s in history.series:
        if s.environment != env or not s.changes.steps:
            continue
        last = s.changes.steps[-1]
        if last.ratio > 1 + threshold:
            found.append((s, last))
    return found
