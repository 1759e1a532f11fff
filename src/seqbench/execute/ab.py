"""Two versions of the code measured side by side: the paired design behind `seqbench ab`.

For every cell, each version gets a worker process of its own (its interpreter, its code
first on the import path), kept for the cell's rounds. Round by round the two measure the
cell back to back, in the order A B, then B A, then A B...: whatever the machine does at
that moment (a burst of other work, a clock that drifts) weighs on both, and the order
alternates so that neither always goes first. Each version's passes are recorded in its own
run by its own `Session`, so pooling, saving and the rows are those of any run; what the
comparison needs on top is each round's pair of figures (`Pairs`).

A round's figure is the 10th percentile of its samples, not their median. On a loaded
machine the scheduler decides, round by round, whether the measuring process gets a CPU
to itself or shares one with other work, and a shared round's median was measured 2.7x
slower than an unshared one's while its fastest tenth stayed within 3% (two busy processes
on two CPUs): with medians, identical code looked 1.56x slower. Interference only adds
time; a slower version is slower in its fastest steps too.

    ab = ABSession.start(config, "main", ".", repo=Path("."), root=Path("results"))
    with ab:                       # both versions checked out, both runs open
        for event in ab.measure(): ...
    ab.baseline, ab.candidate, ab.pairs   # the two finished runs and the per-round figures
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqbench.core.errors import SeqbenchError
from seqbench.core.schema import Cell
from seqbench.core.settings import RESULTS_ROOT
from seqbench.execute.base import CellFinished, CellStarted, Event
from seqbench.execute.session import Session
from seqbench.execute.threads import choose_threads
from seqbench.plan.cells import Plan, make_plan
from seqbench.plan.config import SuiteConfig

if TYPE_CHECKING:
    from seqbench.execute.versions import Version
    from seqbench.machine.look import Machine
    from seqbench.storage import Run

# Pairs of rounds: with fewer than 6 the signed-rank interval cannot reach 95%.
AB_ROUNDS = 10
MIN_ROUNDS = 6
# Samples a round takes at least, so that its fastest tenth is more than one sample.
ROUND_SAMPLES = 10
SIDES = ("baseline", "candidate")


@dataclass
class Pairs:
    """One cell's per-round figures, baseline and candidate, in round order: each round's
    fastest tenth (`stats.fast_quantile`), what a step costs when nothing else interferes."""

    baseline: list[float] = field(default_factory=list)
    candidate: list[float] = field(default_factory=list)


def ab_config(config: SuiteConfig) -> SuiteConfig:
    """How `ab` measures a configuration: every cell in a worker of its version's own (no
    Ray, no in-process cells), no ceiling (MFU is not what it judges), and enough samples
    per round for a round's fastest tenth to be more than one sample."""
    least = max(config.measure.min_repeats, ROUND_SAMPLES * config.measure.rounds)
    # Its rounds are its pairs, each version's in a worker of its own kept for the cell.
    measure = dataclasses.replace(
        config.measure,
        min_repeats=least,
        max_repeats=max(config.measure.max_repeats, least),
        processes=1,
    )
    return dataclasses.replace(
        config, measure=measure, ceiling=False, executor="local", isolate=True
    )


def alternate(sessions: tuple[Session, Session], cells: list[Cell], pairs: dict[str, Pairs]):
    """Measure `cells` with two sessions (baseline, candidate) in alternating pairs, filling
    `pairs`; yields the events. A cell that fails in either version is not measured again
    after that round, whose pair is finished (so both versions have the cell's row: a
    candidate that mends what the baseline broke shows it)."""
    from seqbench.judge.stats import fast_quantile  # SciPy: loaded when measuring, not at start

    rounds = sessions[0].config.measure.rounds
    total = len(cells) * rounds * 2
    index = 0
    for cell in cells:
        for round_no in range(1, rounds + 1):
            order = (0, 1) if round_no % 2 else (1, 0)
            figures: dict[int, float] = {}
            for side in order:
                session = sessions[side]
                yield CellStarted(cell, index, total, round_no)
                raw, recorded = session.measure_pass(session.config.request(cell, round_no))
                yield CellFinished(recorded, index, total, round_no)
                index += 1
                if raw.row.status == "ok":
                    figures[side] = fast_quantile(raw.samples)
            if len(figures) < 2:
                break  # one version failed this cell: its row says why
            pairs[cell.cell_id].baseline.append(figures[0])
            pairs[cell.cell_id].candidate.append(figures[1])
        for session in sessions:
            close = getattr(session.executor, "close_worker", None)
            if close is not None:
                close()  # each cell gets fresh processes


# Run in each version's own interpreter and folder: the environment its numbers come from.
_ENV_PROBE = """
import json, sys
try:
    from seqbench.machine.env import apply_process_settings, collect_env
except ImportError:  # a seqbench from before the machine package
    from seqbench.env import apply_process_settings, collect_env
threads, flush, tf32, devices = json.loads(sys.argv[1])
print(json.dumps(collect_env(devices, apply_process_settings(threads, flush, tf32)), default=str))
"""


def version_environment(
    version: Version, config: SuiteConfig, devices: list[str], here: dict
) -> dict:
    """The environment of a version's numbers: this process's (`here`) when the version runs
    on this interpreter, else what its own interpreter reports."""
    if version.launch.inherit_path:  # the same interpreter and packages: only the code differs
        return _tagged({**here}, version)
    process = config.process
    argument = json.dumps([process.threads, process.flush_denormal, process.tf32, devices])
    done = subprocess.run(
        [version.launch.python, "-c", _ENV_PROBE, argument],
        capture_output=True,
        text=True,
        env=version.launch.environment(),
        cwd=version.launch.cwd,
        timeout=300,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise SeqbenchError(f"{version.name}: cannot start seqbench there ({last})")
    return _tagged(json.loads(done.stdout.splitlines()[-1]), version)


def _tagged(env: dict, version: Version) -> dict:
    env.update(executor="ab", isolated=True, version=version.name)
    if version.commit:
        from seqbench.machine.env import git_commit_time

        env.update(
            git_commit=version.commit,
            git_dirty=version.dirty,
            git_commit_time=git_commit_time(version.commit),
        )
    return env


class ABSession:
    """Both sides of an A/B comparison: the versions checked out, one `Session` (and run)
    per version, and the alternation between them. Enter it, iterate `measure()`, leave:
    both runs are finished (complete, or interrupted) however the block ends."""

    def __init__(
        self,
        config: SuiteConfig,
        versions: tuple[str, str],
        the_plan: Plan,
        *,
        repo: Path,
        root: Path,
        machine: Machine | None,
        notices: list[str],
    ) -> None:
        self.config = config
        self.versions = versions
        self.plan = the_plan
        self.repo = repo
        self.root = root
        self.notices = notices
        self._machine = machine
        self.pairs: dict[str, Pairs] = {c.cell_id: Pairs() for c in the_plan.cells}
        self.sessions: tuple[Session, Session] | None = None
        self.runs: list[Run] = []
        self._stack: contextlib.ExitStack | None = None

    @classmethod
    def start(
        cls,
        config: SuiteConfig,
        baseline: str,
        candidate: str,
        *,
        repo: Path = Path("."),
        root: Path = Path(RESULTS_ROOT),
        machine: Machine | None = None,
    ) -> ABSession:
        """Plan `config` as `ab` measures it (see `ab_config`) and decide its threads once
        for both sides; nothing is checked out or created until the session is entered."""
        if config.measure.rounds < MIN_ROUNDS:
            raise SeqbenchError(
                f"--rounds: expected at least {MIN_ROUNDS} (pairs for a 95% interval), got "
                f"{config.measure.rounds}"
            )
        config = ab_config(config)
        the_plan = make_plan(config, long=False)  # its pairs are kept by cell, all of them
        if machine is None:
            from seqbench.machine.look import look

            machine = look()
        measured, warning = choose_threads(config, machine)
        notices = [warning] if warning else []
        return cls(
            measured, (baseline, candidate), the_plan, repo=repo, root=root,
            machine=machine, notices=notices,
        )  # fmt: skip

    def __enter__(self) -> ABSession:
        from seqbench.execute.versions import checked_out, worker_problem

        stack = contextlib.ExitStack()
        try:
            versions = stack.enter_context(checked_out(self.versions, self.repo))
            # A version that cannot start a worker would fail every cell: an error of the
            # comparison, said before anything is measured or saved.
            for side, version in zip(SIDES, versions, strict=True):
                if problem := worker_problem(version):
                    raise SeqbenchError(
                        f"the {side} ({version.name}) cannot be measured: seqbench's worker "
                        f"does not start there ({problem})"
                    )
            devices = [c.device for c in self.plan.cells]
            sessions = []
            for side, version in zip(SIDES, versions, strict=True):
                session = Session.start(
                    dataclasses.replace(self.config, label=f"ab-{side}"),
                    root=self.root,
                    the_plan=self.plan,
                    executor=self._executor(version),
                    extras={
                        "ab": {"side": side, "version": version.name, "commit": version.commit}
                    },  # fmt: skip
                    env_hook=lambda here, v=version: version_environment(
                        v, self.config, devices, here
                    ),
                    machine=self._machine,
                )
                sessions.append(stack.enter_context(session))
        except BaseException:
            stack.close()
            raise
        self.sessions = (sessions[0], sessions[1])
        self.runs = [s.run for s in sessions]
        self._stack = stack
        return self

    def _executor(self, version: Version) -> Any:
        from seqbench.execute.callgrind import CountingExecutor
        from seqbench.execute.isolated import CellWorkerExecutor

        executor = CellWorkerExecutor(version.launch)
        if self.config.count_instructions:  # each version counted in its own simulated worker
            return CountingExecutor(executor, version.launch, self.config.count_steps)
        return executor

    def measure(self) -> Iterator[Event]:
        assert self.sessions is not None, "enter the session first"
        yield from alternate(self.sessions, self.plan.cells, self.pairs)

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None and self.runs:
            # The per-round figures the verdict comes from, kept for whoever checks it later.
            for side, (run, other) in enumerate(zip(self.runs, reversed(self.runs), strict=True)):
                run.meta.ab["partner"] = other.run_id
                run.meta.ab["rounds"] = {
                    cell_id: pairs.baseline if side == 0 else pairs.candidate
                    for cell_id, pairs in self.pairs.items()
                }
        assert self._stack is not None
        self._stack.__exit__(kind, *rest)

    @property
    def baseline(self) -> Run:
        return self.runs[0]

    @property
    def candidate(self) -> Run:
        return self.runs[1]
