"""One owner of a run's life: `Session`.

Every front that measures (`seqbench run` and `run --resume`, `frontier`, `ab`,
`seqbench.run`, `seqbench.measure_module`, the pytest plugin) builds a configuration and
hands it to a session, which does the rest the same way for all of them:

    session = Session.start(config, root=Path("results"))  # or Session.resume(ref, ...)
    for line in session.notices: ...                       # the front says them; this never prints
    with session:                                          # executor, environment, run folder
        for event in session.measure():                    # CellStarted, CellFinished, Notice
            ...
    session.run                                            # finished, however the block ended

- `start` plans the cells (each task's data loaded once), decides the threads for this
  machine, and checks the --csv target. Nothing is created yet: a refusal leaves nothing.
- `resume` reopens an interrupted run (its lock taken) and holds the request to the run's
  saved configuration and, once the executor is up, to its environment.
- Entering starts the executor, takes the environment once (with what the executor
  changes) and creates the run folder.
- `measure` yields the scheduler's events; each measurement is saved before its event.
- Leaving, on every way out, writes the run's noise summary and its final state (complete;
  interrupted after any exception, Ctrl-C included), releases the run and stops the
  executor.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqbench.core.errors import SeqbenchError
from seqbench.core.schema import Cell, Measurement
from seqbench.execute.base import CellFinished, Event, Executor, Notice
from seqbench.execute.threads import ThreadsWatch, choose_threads
from seqbench.machine.env import check_same_environment
from seqbench.plan.cells import LongPlan, Plan, make_plan
from seqbench.plan.config import PROTECTION, SuiteConfig, check_same_configuration

if TYPE_CHECKING:
    from seqbench.core.request import CellRequest
    from seqbench.execute.isolated import Worker
    from seqbench.execute.scheduler import RunConfig, Scheduler
    from seqbench.machine.look import Machine, Watch
    from seqbench.storage import Run

# What a front may put in a new run's metadata besides what the session writes.
Extras = Mapping[str, Any]
# The environment a run records, from the one taken here (ab: another version's).
EnvHook = Callable[[dict[str, Any]], dict[str, Any]]


def environment(config: SuiteConfig, device_names: list[str], executor: Executor) -> dict:
    """Apply the configuration's process settings here and record the environment the
    numbers will come from: this machine's, with what the executor changes (a Ray worker's
    threads)."""
    from seqbench.machine.env import apply_process, collect_env

    env = collect_env(device_names, apply_process(config.process))
    env["isolated"] = config.isolated
    env["executor"] = config.executor
    env.update(executor.describe())
    return env


def summary_of(run: Run) -> dict[str, Any]:
    """What a finished run's rows come to, for its metadata (the noise columns' extremes)."""
    from seqbench.judge import noise

    return noise.summarize(run.rows)


# A plan whose timing alone takes this long is announced before it starts.
LONG_RUN_S = 3600.0


def _notices(config: SuiteConfig, the_plan: Plan, threads_warning: str) -> list[str]:
    """What a user should hear before the cells run, in the order a front says it."""
    lines = [threads_warning] if threads_warning else []
    for device, why in the_plan.unavailable.items():
        n = the_plan.count_on(device)
        lines.append(f"{why}: skipping its {n} cell{'' if n == 1 else 's'}")
    lines += the_plan.warnings
    measure, cells = config.measure, len(the_plan.cells)
    floor = cells * (measure.min_time + measure.warmup_time * measure.passes)
    if floor >= LONG_RUN_S:  # said before it starts, not found out in the morning
        lines.append(
            f"this plan is {cells:,} cells: at least {floor / 3600:,.1f} hours of timing alone "
            f"({measure.min_time:g} s of samples and {measure.passes} warm-up"
            f"{'s' if measure.passes > 1 else ''} of {measure.warmup_time:g} s a cell); Ctrl-C "
            "keeps what finished, and --resume goes on from there"
        )
    if config.count_instructions:
        from seqbench.execute.callgrind import unavailable_reason

        reason = unavailable_reason()
        if reason:
            lines.append(f"{reason}; the cells are timed only")
    return lines


def _check_copy(csv: Path, run_id: str = "") -> list[str]:
    """Refuse, before anything exists, a --csv file that cannot be written or that another
    run is writing; and the line to say when it holds another run's rows, which this run
    replaces."""
    from seqbench.storage import check_writable, copy_lock, copy_owner

    check_writable(csv, "--csv")
    copy_lock(csv).check()  # the lock the run takes is the one that counts
    owner = copy_owner(csv)
    if owner and owner != run_id:
        return [f"--csv {csv} holds the rows of run {owner}; this run replaces them"]
    return []


def _look(machine: Machine | Watch | None) -> Machine:
    """The machine as the caller saw it, or as a look begun by the caller (a Watch) or
    taken now finds it."""
    from seqbench.machine.look import Watch

    if machine is None:
        machine = Watch()
    return machine.look() if isinstance(machine, Watch) else machine


class Session:
    """One run, from its plan to its final state. Build it with `start` or `resume`, enter
    it, `measure`, and leave: the run is finished whichever way the block ends."""

    def __init__(
        self,
        asked: SuiteConfig,
        config: SuiteConfig,
        the_plan: Plan,
        *,
        root: Path,
        csv: Path | None = None,
        executor: Executor | None = None,
        run: Run | None = None,
        extras: Extras | None = None,
        env_hook: EnvHook | None = None,
        notices: Sequence[str] = (),
        ready: Worker | None = None,
    ) -> None:
        self.asked = asked  # the configuration as asked: what a resume holds the run to
        self.config = config  # as measured: threads decided for this machine
        self.plan = the_plan
        self.root = root
        self.csv = csv
        self.notices = list(notices)
        self._executor = executor
        self._ready = ready  # a worker started ahead, for the executor to take
        self._extras = dict(extras or {})
        self._env_hook = env_hook
        self._resumed = run is not None
        self.run: Run | None = run
        self.executor: Executor | None = None
        self.env: dict[str, Any] = {}
        self._scheduler: Scheduler | None = None
        # Threads that follow the machine while the run goes on, where seqbench chose them.
        self.threads = ThreadsWatch(config, chosen_here=asked.threads is None)

    # ------------------------------------------------------------------ building one

    @classmethod
    def start(
        cls,
        config: SuiteConfig,
        *,
        root: Path,
        csv: Path | None = None,
        the_plan: Plan | None = None,
        executor: Executor | None = None,
        extras: Extras | None = None,
        env_hook: EnvHook | None = None,
        machine: Machine | Watch | None = None,
        ready: Worker | None = None,
    ) -> Session:
        """A new run of `config` under `root` (not created until the session is entered).
        `the_plan` replaces the configuration's (a frontier plans as it goes, the pytest
        plugin call by call); `executor` replaces the one the configuration asks for;
        `extras` go into the run's metadata; `env_hook` turns the environment taken here
        into the one the run records; `ready` is a worker started ahead for the executor
        (`isolated.start_ahead`; the caller still closes it)."""
        the_plan = make_plan(config) if the_plan is None else the_plan
        measured, warning = choose_threads(config, _look(machine))
        # Refused before anything exists, so no empty run is left.
        copy = _check_copy(csv) if csv is not None else []
        return cls(
            config,
            measured,
            the_plan,
            root=root,
            csv=csv,
            executor=executor,
            extras=extras,
            env_hook=env_hook,
            notices=_notices(measured, the_plan, warning) + copy,
            ready=ready,
        )

    @classmethod
    def resume(
        cls,
        ref: str | Path,
        *,
        root: Path,
        suite: str | Path | None = None,
        axes: Mapping[str, tuple[Any, ...]] | None = None,
        settings: Mapping[str, Any] | None = None,
        csv: Path | None = None,
        retry_errors: bool = False,
        machine: Machine | Watch | None = None,
        ready: Worker | None = None,
    ) -> Session:
        """An interrupted run (its id, folder or 'latest' under `root`), ready to measure the
        cells it lacks with its saved configuration. `suite`, `axes` and `settings` say
        what the caller asks for: anything that changes what the run measures is refused;
        how cells are protected (a process of their own, a time limit) may change, and is
        recorded. `retry_errors` measures failed and timed-out cells again."""
        from seqbench.plan.config import apply_overrides
        from seqbench.plan.suites import resolve_config
        from seqbench.storage import reopen_run

        run = reopen_run(ref, root)
        try:
            saved = SuiteConfig.from_dict(run.meta.config)
            if run.meta.ab:
                raise SeqbenchError(
                    f"{run.run_id} is one side of a `seqbench ab` comparison: its cells were "
                    "measured against another version's, round by round; run the comparison "
                    "again instead"
                )
            config = saved
            if suite or axes or settings:  # what the caller says must not change the run
                asked = (
                    resolve_config(suite, axes=axes, settings=settings)
                    if suite
                    else apply_overrides(saved, axes, settings)
                )
                check_same_configuration(run, saved, asked)
                changed = {
                    k: getattr(asked, k)
                    for k in PROTECTION
                    if getattr(asked, k) != getattr(saved, k)
                }
                if changed:  # recorded: how the rest of the run's cells were protected
                    config = dataclasses.replace(saved, **changed)
                    run.meta.protection_changes.append(changed)
            copy = _check_copy(csv, run.run_id) if csv is not None else []
            if retry_errors:
                run.meta.retried.append(run.forget_failures(("error", "timeout")))
            the_plan = make_plan(config)
            if config.threads is None and config.executor != "ray":  # as many as it began with
                config = dataclasses.replace(config, threads=run.meta.env.get("threads"))
            measured, warning = choose_threads(config, _look(machine))
        except BaseException:
            run.close()  # a refused resume leaves the run to the next one
            raise
        return cls(
            saved,
            measured,
            the_plan,
            root=root,
            csv=csv,
            run=run,
            notices=_notices(measured, the_plan, warning) + copy,
            ready=ready,
        )

    # ------------------------------------------------------------------ its life

    def __enter__(self) -> Session:
        from seqbench.execute.factory import make_executor
        from seqbench.execute.scheduler import Scheduler

        if self._executor is not None and self._ready is not None:
            self._ready.close(kill=True)  # the caller's own executor has its own workers
        executor = self._executor or make_executor(self.config, self._ready)
        executor.__enter__()
        try:
            self.run = self._open(executor)
        except BaseException:
            with contextlib.suppress(Exception):
                if self.run is not None:
                    self.run.close()
            executor.__exit__(None, None, None)
            raise
        self.executor = executor
        self._scheduler = Scheduler(self.threads, executor, self.run)
        return self

    def _open(self, executor: Executor) -> Run:
        """The run this session writes: created now, or the resumed one, checked against the
        environment it was measured in."""
        from seqbench.storage import create_run

        if self._resumed:
            run = self.run
            devices = list(run.meta.env.get("device_names", {}))
            check_same_environment(run, environment(self.config, devices, executor))
            run.extra_csv = self.csv
            run.claim()  # its --csv copy too
            self.env = run.meta.env
            return run
        env = environment(self.config, self.plan.device_names(), executor)
        long = self.plan.cells if isinstance(self.plan.cells, LongPlan) else None
        if self._env_hook is not None:
            env = {**self._env_hook(env), **executor.describe()}
        self.env = env
        run = create_run(
            self.root,
            label=self.asked.label,
            config=self.asked.to_dict(),
            env=env,
            plan=long.stored() if long else [c.cell_id for c in self.plan.cells],
            extra_csv=self.csv,
        )
        if self._extras:
            for key, value in self._extras.items():
                setattr(run.meta, key, value)
            run.save_meta()
        return run

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        """Finish the run (complete, or interrupted when the block raised) and let go of
        the executor. When saving the final state fails after another error, that error is
        the one that goes on."""
        try:
            if self.run is not None:
                self.run.meta.noise = summary_of(self.run)
                if kind is None:
                    self.run.finish("complete")
                else:
                    with contextlib.suppress(OSError):
                        self.run.finish("interrupted")
        finally:
            if self.run is not None:
                self.run.close()
            if self.executor is not None:
                self.executor.__exit__(kind, *rest)
                self.executor = None

    # ------------------------------------------------------------------ measuring

    def measure(
        self,
        cells: Sequence[Cell] | None = None,
        *,
        requests: RunConfig | None = None,
        executor: Executor | None = None,
    ) -> Iterator[Event]:
        """Measure what `cells` (default: the plan's) still lack in the run, yielding the
        scheduler's events. Cells the run's plan does not name yet join it (the pytest
        plugin plans call by call). `requests` builds these cells' requests instead of the
        session's configuration (a call's own timing settings); `executor` (entered by the
        caller) runs them instead of the session's (a user's live module in this process)."""
        from seqbench.execute.scheduler import Scheduler

        assert self.run is not None and self._scheduler is not None, "enter the session first"
        if cells is None and isinstance(self.plan.cells, LongPlan):
            cells = self.plan.cells  # made as it runs: its ids are not listed (LongPlan)
        else:
            cells = list(self.plan.cells if cells is None else cells)
            known = set(self.run.meta.plan)
            self.run.meta.plan.extend(c.cell_id for c in cells if c.cell_id not in known)
        if requests is not None or executor is not None:
            scheduler = Scheduler(requests or self.config, executor or self.executor, self.run)
            yield from scheduler.iter_plan(cells)
            return
        for event in self._scheduler.iter_plan(cells):
            yield event
            # What the backend saw meanwhile (a Ray node that left or joined the cluster).
            said = getattr(self.executor, "notices", None)
            while said:
                yield Notice(said.pop(0))
            if isinstance(event, CellFinished) and (
                line := self.threads.observe(event.measurement.row)
            ):
                yield Notice(line)

    def measure_one(self, request: CellRequest) -> Measurement:
        """Measure one request now and record it (a search whose next request depends on
        this answer: the memory frontier)."""
        assert self.run is not None and self._scheduler is not None, "enter the session first"
        return self._scheduler.measure_one(request)

    def measure_pass(self, request: CellRequest) -> tuple[Measurement, Measurement]:
        """One pass of a request, recorded: (the pass alone, the cell as recorded)."""
        assert self._scheduler is not None, "enter the session first"
        return self._scheduler.measure_pass(request)
