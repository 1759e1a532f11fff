"""The pytest plugin: a `seqbench` fixture that measures a model inside a test, a session's
measurements saved as one run, and a gate against a stored baseline.

    def test_my_model_trains(seqbench):
        rows = seqbench(MyModel(), lambda b, t: torch.randn(b, t, 16), mode="train",
                        seq_len=[64, 256], loss=my_loss)

A test fails when the step raises (a smoke call runs the step once first, so the traceback
is the model's own), never because it is slow. Every measured cell of the session goes into
one run under --seqbench-root (default results/), which `seqbench show`, `compare` and
`plot` read. With --seqbench-compare RUN the session's run is compared with RUN exactly as
`seqbench compare RUN <this run>` compares them (seqbench.judge.compare, seqbench.judge.gate), the
outcome is in the terminal summary, and --seqbench-fail-on sets the session's exit status
to the gate's: 1 on a regression; with `undecided`, also 3 when too noisy to decide; 2 when
the runs cannot be compared. --seqbench-disable makes each call one smoke call of each mode.

Each call is measured in --seqbench-processes fresh worker processes (default 5), kept for
the whole session (worker k measures every call's k-th process), so that the comparison is
across processes: the model, its inputs and its loss go to the workers pickled. A call whose
objects cannot be pickled (a lambda, a class defined in the test function) is measured in
this process instead, the summary says so, and a comparison cannot decide on it.

pytest-xdist: timing tests in parallel workers contend for the same cores, so under
`-n N` (N > 0) nothing is measured: each call is a smoke call that returns no rows (a frame
with the columns), the terminal summary says so, and --seqbench-compare is refused. Run
timing tests with `-n 0`.

This module is long because it is a whole front in one file, as pytest loads a plugin: its
options, the fixture, the session's run and the comparison at the end. It imports only
pytest, the standard library and seqbench's declarations of its settings (`core.settings`,
whence the --seqbench-* timing options come) when pytest loads it; seqbench's measuring
side (torch, pandas) loads at the first measurement.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from seqbench.core.settings import (
    RESULTS_ROOT,
    THRESHOLD,
    MeasureSettings,
    ProcessSettings,
    declarations,
)

if TYPE_CHECKING:
    from seqbench.plan.config import SuiteConfig

# The settings a session's options set: those declared for the pytest plugin.
SESSION_SETTINGS = [
    d for cls in (MeasureSettings, ProcessSettings) for d in declarations(cls) if d.declared.pytest
]
# Where the plugin's default is not `seqbench run`'s.
_OWN_DEFAULTS = {
    "threads": "torch CPU threads (default: the baseline's with --seqbench-compare, else as "
    "`seqbench run` chooses).",
}
FAIL_ON = ("never", "regression", "undecided")
# The fixture's arguments that shape its cells; the rest are timing settings (the API's,
# less those that are process-wide and so the session's: threads, subnormals, TF32).
PLAN_ARGUMENTS = ("mode", "seq_len", "batch_size", "device", "dtype", "key")
EXIT_CANNOT_COMPARE = 2


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("seqbench", "seqbench: measure models inside tests")
    group.addoption(
        "--seqbench-root",
        "--seqbench-out",
        dest="seqbench_root",
        metavar="DIR",
        default=RESULTS_ROOT,
        help=f"Results root the session's run is saved under (default: {RESULTS_ROOT}; "
        "--seqbench-out is its older name).",
    )
    group.addoption(
        "--seqbench-label",
        metavar="NAME",
        default="pytest",
        help="The saved run's label (default: pytest).",
    )
    group.addoption(
        "--seqbench-compare",
        metavar="RUN",
        default=None,
        help="Compare the session's run with RUN (a run id, folder or 'latest' "
        "under --seqbench-root), as `seqbench compare` does.",
    )
    group.addoption(
        "--seqbench-fail-on",
        choices=FAIL_ON,
        default="never",
        help="regression: exit 1 when the comparison finds a regression; "
        "undecided: also exit 3 when it is too noisy to decide; "
        "never (default): only report.",
    )
    group.addoption(
        "--seqbench-threshold",
        type=float,
        default=THRESHOLD,
        help=f"A change smaller than this fraction is never a regression (default: {THRESHOLD:g}).",
    )
    group.addoption(
        "--seqbench-metric",
        choices=("time", "memory"),
        default="time",
        help="What the comparison gates on (default: time).",
    )
    group.addoption(
        "--seqbench-allow-missing",
        action="store_true",
        help="Compare the cells both runs have (a -k subset of the baseline's tests).",
    )
    # The timing settings a session may set (min_time, rounds, threads): from their one
    # declaration, with the help and default `seqbench run` shows.
    for declaration in SESSION_SETTINGS:
        group.addoption(
            "--seqbench-" + declaration.name.replace("_", "-"),
            type=declaration.rule.kind,
            default=None,
            metavar=declaration.name.upper(),
            help=_OWN_DEFAULTS.get(declaration.name) or declaration.help_text(),
        )
    group.addoption("--seqbench-disable", action="store_true",
                    help="Measure nothing: each call runs each mode's step once (a smoke test).")  # fmt: skip


def _xdist_workers(config: pytest.Config) -> int:
    """Parallel workers this session asked pytest-xdist for (0 without xdist or -n)."""
    try:
        value = config.getoption("numprocesses")
    except ValueError:
        return 0
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 1  # "auto", "logical": more than none


def pytest_configure(config: pytest.Config) -> None:
    state = SessionState(config)
    config.stash[STATE] = state
    if state.compare and state.xdist:
        raise pytest.UsageError(
            "--seqbench-compare measures, and under pytest-xdist (-n) nothing is measured "
            "(parallel workers contend for the same cores): run with -n 0"
        )
    state.check()
    if config.getoption("seqbench_root") != RESULTS_ROOT and not state.xdist:
        _check_root(state.root, _root_flag(config))
    if state.compare and not hasattr(config, "workerinput"):
        state.load_baseline()


def _root_flag(config: pytest.Config) -> str:
    """The results root's option as the user spelled it (--seqbench-out is its old name)."""
    old = any(str(a).startswith("--seqbench-out") for a in config.invocation_params.args)
    return "--seqbench-out" if old else "--seqbench-root"


def _check_root(root: Path, flag: str) -> None:
    """A usage error, before any test runs, for a results root the session's run could not
    be saved under: a folder made and written there as the run will be, then removed (a
    session that measures nothing leaves nothing behind). Only a root given explicitly:
    the plugin loads in every pytest session, and the default is checked when it is used."""
    import contextlib
    import os
    import tempfile

    made = []
    try:
        for folder in [*reversed(root.parents), root]:
            if not folder.exists():
                folder.mkdir()
                made.append(folder)
        fd, probe = tempfile.mkstemp(prefix=".seqbench-", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise pytest.UsageError(
            f"{flag} {root}: cannot save the session's run there ({exc.strerror or exc})"
        ) from None
    finally:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()


STATE = pytest.StashKey["SessionState"]()


class SessionState:
    """One session's measurements: its settings, the run (opened at the first
    measurement), and the comparison made at the end."""

    def __init__(self, config: pytest.Config) -> None:
        get = config.getoption
        self.root = Path(get("seqbench_root"))
        self.label = get("seqbench_label")
        self.compare = get("seqbench_compare")
        self.fail_on = get("seqbench_fail_on")
        self.threshold = get("seqbench_threshold")
        self.metric = get("seqbench_metric")
        self.allow_missing = get("seqbench_allow_missing")
        self.xdist = hasattr(config, "workerinput") or _xdist_workers(config) > 0
        self.disabled = get("seqbench_disable") or self.xdist
        self.settings = {
            d.name: get(f"seqbench_{d.name}")
            for d in SESSION_SETTINGS
            if get(f"seqbench_{d.name}") is not None
        }
        self.baseline: Any = None
        self.session: Any = None  # execute.session.Session, entered at the first measurement
        self.folder: Any = None  # where the calls' modules are pickled for the workers
        self.one_process: list[str] = []  # calls whose module could not go to a worker
        self.run: Any = None  # the session's run, once finished
        self.summary: list[str] = []
        self.exit_code = 0
        self.smoke_calls = 0
        self.thread_warning = ""

    def check(self) -> None:
        """The session's options, checked as `seqbench run` and `compare` check theirs."""
        from seqbench.core.errors import SeqbenchError
        from seqbench.judge.compare import check_threshold
        from seqbench.plan.suites import check_setting

        try:
            check_threshold(self.threshold)
            for name, value in self.settings.items():
                check_setting(name, value, f"--seqbench-{name.replace('_', '-')}")
        except SeqbenchError as exc:
            raise pytest.UsageError(
                str(exc).replace("--threshold", "--seqbench-threshold")
            ) from None

    def load_baseline(self) -> None:
        from seqbench.core.errors import SeqbenchError
        from seqbench.storage import load_run

        try:
            self.baseline = load_run(self.compare, self.root)
        except SeqbenchError as exc:
            raise pytest.UsageError(f"--seqbench-compare: {exc}") from None
        if "threads" not in self.settings and self.baseline.meta.env.get("threads"):
            self.settings["threads"] = self.baseline.meta.env["threads"]

    # ------------------------------------------------------------------ measuring

    def measure(self, label: str, model: Any, inputs: Any, **kw: Any) -> Any:
        from seqbench.core.errors import SeqbenchError
        from seqbench.measure.module import UserModule
        from seqbench.plan.module import MODULE_SETTINGS, module_plan

        options = {k: kw.pop(k, None) for k in ("target", "loss", "optimizer")}
        axes = {k: kw.pop(k) for k in PLAN_ARGUMENTS if k in kw}
        per_call = [k for k in MODULE_SETTINGS if k not in ("threads", "flush_denormal", "tf32")]
        wrong = sorted(set(kw) - set(per_call))
        if wrong:
            pytest.fail(f"seqbench: unknown argument {wrong[0]!r}; a call takes "
                        f"{', '.join(per_call)}", pytrace=False)  # fmt: skip
        try:
            config, cells = module_plan(label, inputs, settings={**self.settings, **kw}, **axes)
        except SeqbenchError as exc:  # the test's arguments: its failure, in one line
            pytest.fail(f"seqbench: {exc}", pytrace=False)
        user = UserModule(model, inputs, **options)
        self._smoke(user, cells)
        if self.disabled:  # no rows, but the columns: a test's checks over them still run
            from seqbench.core.schema import rows_to_frame

            self.smoke_calls += 1
            return rows_to_frame([])
        return self._measure(config, cells, user)

    def _smoke(self, user: Any, cells: list) -> None:
        """One step of each mode at the first size, outside any guard: an error is the
        test's failure, with the model's own traceback."""
        from seqbench.measure.module import build_user_workload

        training = user.model.training
        try:
            for mode in dict.fromkeys(c.mode for c in cells):
                cell = next(c for c in cells if c.mode == mode)
                build_user_workload(cell, user).step()
        finally:
            user.model.train(training)

    def _open(self, config: SuiteConfig, cells: list) -> None:
        """The session's run, opened at its first measurement: one run for the whole pytest
        session, its plan growing call by call. Its executor keeps one fresh worker per
        process for every call (worker k measures each call's k-th process), so a session of
        many calls pays the workers' start-up once."""
        import dataclasses
        import tempfile

        from seqbench.core.errors import SeqbenchError
        from seqbench.execute.isolated import ProcessWorkerExecutor
        from seqbench.execute.session import Session
        from seqbench.plan.cells import Plan

        config = dataclasses.replace(
            config, label=self.label, description="pytest session", matrices=(), source="pytest"
        )
        try:
            session = Session.start(
                config,
                root=self.root,
                the_plan=Plan([], {}),
                executor=ProcessWorkerExecutor(keep=True),
            )
            self.session = session.__enter__()
        except SeqbenchError as exc:  # a results root it cannot write: one line, no traceback
            pytest.fail(f"seqbench: {str(exc).replace('--out', '--seqbench-root')}", pytrace=False)
        self.folder = tempfile.TemporaryDirectory(prefix="seqbench-pytest-")
        self.thread_warning = next(iter(session.notices), "")

    def _measure(self, config: SuiteConfig, cells: list, user: Any) -> Any:
        import dataclasses

        from seqbench.core.request import ModuleSpec
        from seqbench.core.schema import rows_to_frame
        from seqbench.execute.local import InProcessExecutor
        from seqbench.measure.module import one_process, ship

        if self.session is None:
            self._open(config, cells)
        run = self.session.run
        repeated = [c.cell_id for c in cells if run.row(c.cell_id) is not None]
        if repeated:
            pytest.fail(
                f"seqbench: {repeated[0]} was measured before in this session; give each call "
                "its own label=",
                pytrace=False,
            )
        # The call's timing settings, the session's threads (process-wide, recorded once).
        measured = dataclasses.replace(config, threads=self.session.config.threads)
        shipped = ship(user, self.folder.name) if measured.measure.processes > 1 else None
        if isinstance(shipped, ModuleSpec):  # a copy in each of the session's workers
            for _ in self.session.measure(
                cells, requests=dataclasses.replace(measured, module=shipped)
            ):
                pass
        else:
            if shipped is not None:
                self.one_process.append(one_process(cells[0].arch, shipped))
            measure = dataclasses.replace(measured.measure, processes=1)
            with InProcessExecutor() as executor:
                executor.attach(user, [cells[0].arch])
                requests = dataclasses.replace(measured, measure=measure)
                for _ in self.session.measure(cells, requests=requests, executor=executor):
                    pass
        rows = [run.row(c.cell_id) for c in cells]
        for row in rows:
            if row.status == "skipped":
                pytest.skip(f"seqbench: {row.cell_id}: {row.message}")
            if row.status != "ok":
                pytest.fail(f"seqbench: {row.cell_id}: {row.status}: {row.message}", pytrace=False)
        return rows_to_frame(rows)

    # ------------------------------------------------------------------ the end

    def finish(self, exitstatus: int) -> None:
        if self.session is None:
            if self.baseline is not None:
                self._cannot_compare("no cell was measured in this session")
            return
        state = "complete" if exitstatus in (0, 1) else "interrupted"
        # Pytest's exit status says how the session ended, as an exception would.
        ended = (None,) if state == "complete" else (KeyboardInterrupt,)
        try:
            self.session.__exit__(*ended, None, None)
        finally:
            self.folder.cleanup()
        self.run = self.session.run
        self.summary.append(f"seqbench: {len(self.run.rows)} cells saved to {self.run.path}")
        self.summary += [f"seqbench: warning: {line}" for line in self.one_process]
        if self.baseline is None:
            return
        if state == "complete":
            self._compare()
        else:
            self._cannot_compare("the session was interrupted")

    def _cannot_compare(self, why: str) -> None:
        self.summary.append(f"seqbench: cannot compare with {self.compare}: {why}")
        if self.fail_on != "never":
            self.exit_code = EXIT_CANNOT_COMPARE

    def _compare(self) -> None:
        from seqbench.core.errors import SeqbenchError
        from seqbench.judge.compare import compare_runs
        from seqbench.judge.gate import EXIT_REGRESSION, gate
        from seqbench.output.tables import format_comparison_summary
        from seqbench.output.text import format_env_differences

        try:
            result = compare_runs(self.baseline, self.run, metric=self.metric,
                                  threshold=self.threshold, allow_missing=self.allow_missing)  # fmt: skip
        except SeqbenchError as exc:
            self._cannot_compare(str(exc).replace("--allow-missing", "--seqbench-allow-missing"))
            return
        if result.env_differences:
            self._cannot_compare(
                "the runs come from different environments: "
                + format_env_differences(result.env_differences)
            )
            return
        verdict = gate(result)
        self.summary += [f"seqbench: {line}" for line in format_comparison_summary(result)]
        for cell in result.cells:
            if cell.verdict in ("regression", "improvement") or cell.undecided:
                ratio = f" x{cell.ratio:.2f}" if cell.ratio else ""
                self.summary.append(f"  {cell.verdict}: {cell.cell.cell_id}{ratio} {cell.note}")
        lines = [
            line.replace("more --processes", "more --seqbench-processes")
            for line in verdict.lines()
        ]
        self.summary += [f"seqbench: {line}" for line in lines] or ["seqbench: PASS"]
        code = verdict.exit_code
        if self.fail_on == "undecided" or (
            self.fail_on == "regression" and code == EXIT_REGRESSION
        ):
            self.exit_code = code


def _default_label(node: Any) -> str:
    """The test's module and name: `test_models.test_lstm[64]`."""
    name = f"{Path(str(node.path)).stem}.{node.name}"
    return re.sub(r"[^\w.:\[\]/=+-]", "_", name)[:128]


@pytest.fixture
def seqbench(request: pytest.FixtureRequest):
    """Measure a model: `seqbench(model, inputs, mode="infer", seq_len=None,
    batch_size=None, loss=None, optimizer=None, target=None, device="cpu",
    dtype="float32", label=None, key=None)` returns the rows as a DataFrame (with
    --seqbench-disable or under xdist, nothing is measured: no rows, the same columns). The
    test fails if the step raises, never on speed.
    See `seqbench.measure_module` for the arguments."""
    state: SessionState = request.config.stash[STATE]

    def measure(model: Any, inputs: Any, *, label: str | None = None, **kw: Any) -> Any:
        return state.measure(label or _default_label(request.node), model, inputs, **kw)

    return measure


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None or hasattr(session.config, "workerinput"):
        return
    state.finish(int(exitstatus))
    if state.exit_code and session.exitstatus == 0:
        session.exitstatus = state.exit_code


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or hasattr(config, "workerinput"):
        return
    lines = list(state.summary)
    if state.xdist:
        lines.insert(0, "seqbench: nothing measured under pytest-xdist (-n): parallel workers "
                        "contend for the same cores; each call was a smoke call (run with -n 0 "
                        "to measure)")  # fmt: skip
    elif state.disabled and state.smoke_calls:
        lines.insert(0, f"seqbench: measurement disabled: {state.smoke_calls} smoke calls")
    if state.thread_warning:
        warning = state.thread_warning.replace("--threads", "--seqbench-threads")
        lines.append(f"seqbench: warning: {warning}")
    if lines:
        terminalreporter.section("seqbench")
        for line in lines:
            terminalreporter.write_line(line)
