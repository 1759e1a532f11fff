"""seqbench from Python: run a matrix, finish one, compare two versions of your code, or
measure your own module, and get the rows back.

    import seqbench
    frame = seqbench.run(arch=["lstm", "gru"], seq_len=[64, 256], mode="infer")
    frame = seqbench.run(resume="latest", out="results")      # finish an interrupted run
    frame = seqbench.ab("main", ".", arch="lstm", seq_len=64)  # a verdict on the change
    frame = seqbench.measure_module(model, lambda b, t: torch.randn(b, t, 16),
                                    seq_len=[64, 256], mode=["infer", "train"])

Each returns a pandas DataFrame: `run` and `measure_module` the `ResultRow`s (the columns of
`seqbench.core.schema`, in order), `ab` one comparison per cell with the gate in
`frame.attrs`. They measure as the command line does, through the same session
(`seqbench.execute.session`): the same configuration object, scheduler, warm-up, stopping
rule, statistics, memory and noise columns, and the same run metadata. With `out=` a run is
saved under that folder exactly as `seqbench run --out` saves it, so `seqbench show`,
`compare`, `plot` and `history` read it; the run folder is `frame.attrs["run_path"]`.
Without `out=` nothing is kept on disk.

Isolation: a live module cannot be sent to another process (it may not pickle, and its
code may live only in the caller), so it is measured in this process. Give the module and
its inputs as importable names ('package.module:attribute') and `isolate=True` measures
every cell in a fresh process, as `seqbench run --isolate` does.

Measuring sets torch's threads, subnormal flushing and TF32 in this process, as `seqbench
run` does; the threads and TF32 are given back afterwards, subnormals stay flushed (unless
`flush_denormal=False`). What the command line prints as warnings before measuring (a busy
machine, a device that is not here) comes as Python `RuntimeWarning`s.

Errors the caller causes (an unknown setting, inputs of the wrong kind) raise
`seqbench.SeqbenchError` with a one-line message; a step that fails is a row with status
'error' and the message, as on the command line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqbench.core.errors import ConfigError
from seqbench.core.settings import THRESHOLD

if TYPE_CHECKING:
    import pandas as pd

    from seqbench.core.request import ModuleSpec
    from seqbench.execute.session import Session
    from seqbench.storage import Run

__all__ = ["ab", "measure_module", "run"]


def run(
    suite: str | Path | None = None,
    *,
    out: str | Path | None = None,
    csv: str | Path | None = None,
    resume: str | Path | None = None,
    retry_errors: bool = False,
    **options: Any,
) -> pd.DataFrame:
    """Measure a matrix, as `seqbench run` does, and return its rows.

    `suite` is a suite name or file (None: the quick suite); `options` are the command
    line's, by their suite-file names: axes (`arch`, `seq_len`, `batch_size`, `mode`, ...:
    one value or a list) replace the suite's, settings (`min_time`, `rounds`, `threads`,
    `isolate`, ...) replace its settings. `out` saves the run under that folder; `csv` also
    writes the rows to that file (with its sidecars).

    `resume` finishes an interrupted run instead (its id, folder or 'latest' under `out`,
    default `results`), as `seqbench run --resume` does: with its saved configuration,
    `suite` and `options` only allowed where they change nothing it measures;
    `retry_errors` measures its failed cells again.
    """
    from seqbench.execute.session import Session
    from seqbench.plan.suites import resolve_config

    axes, settings = _options(options, "run")
    if resume is not None:
        root = Path("results" if out is None else out)
        session = Session.resume(
            resume, root=root, suite=suite, axes=axes, settings=settings,
            csv=None if csv is None else Path(csv), retry_errors=retry_errors,
        )  # fmt: skip
        with _process_kept():
            return _frame(_measured(session), root)
    if retry_errors:
        raise ConfigError("retry_errors measures a resumed run's failed cells again: give resume")
    config = resolve_config(suite, axes=axes, settings=settings)
    with _root(out) as root, _process_kept():
        session = Session.start(config, root=root, csv=None if csv is None else Path(csv))
        return _frame(_measured(session), out)


def ab(
    baseline: str,
    candidate: str,
    suite: str | Path | None = None,
    *,
    repo: str | Path = ".",
    out: str | Path | None = None,
    threshold: float = THRESHOLD,
    fail_on_improvement: bool = False,
    **options: Any,
) -> pd.DataFrame:
    """Measure two versions of the code side by side and judge the change, as `seqbench ab`
    does: each cell in a fresh process per version, in alternating rounds (`rounds`, default
    10, at least 6).

    `baseline` and `candidate` are a git ref of `repo`, '.' (the working tree as it is), or
    'python:PATH'; `suite` and `options` are `run`'s. Returns one row per cell: its key
    columns, the verdict (`regression`, `improvement`, `unchanged`, ...), the ratio and its
    interval. `frame.attrs` holds the gate: `exit_code` (0 no regression, 1 a regression, 3
    too noisy to decide), `lines` (what it says), and both runs' folders (`baseline_path`,
    `candidate_path`; None without `out`, where nothing is kept).
    """
    import pandas as pd

    from seqbench.execute.ab import AB_ROUNDS, ABSession
    from seqbench.judge.compare import check_threshold
    from seqbench.judge.gate import judge_ab
    from seqbench.plan.suites import resolve_config

    check_threshold(threshold)
    axes, settings = _options(options, "ab")
    settings.setdefault("rounds", AB_ROUNDS)
    config = resolve_config(suite, axes=axes, settings=settings)
    with _root(out) as root, _process_kept():
        session = ABSession.start(config, baseline, candidate, repo=Path(repo), root=root)
        for line in session.notices:
            warnings.warn(line, RuntimeWarning, stacklevel=2)
        with session:
            for _ in session.measure():
                pass
        judged = judge_ab(
            session.baseline, session.candidate, session.pairs,
            threshold=threshold, fail_on_improvement=fail_on_improvement,
        )  # fmt: skip
        frame = pd.DataFrame(judged.comparison.to_dict()["cells"])
        frame.insert(0, "cell_id", [c.cell.cell_id for c in judged.comparison.cells])
        frame.attrs.update(
            exit_code=judged.verdict.exit_code,
            lines=judged.verdict.lines(),
            baseline_path=str(session.baseline.path) if out is not None else None,
            candidate_path=str(session.candidate.path) if out is not None else None,
        )
        return frame


def measure_module(
    model: Any,
    inputs: Any,
    *,
    label: str = "module",
    mode: str | Sequence[str] = "infer",
    seq_len: int | Sequence[int] | None = None,
    batch_size: int | Sequence[int] | None = None,
    target: Any = None,
    loss: Callable[..., Any] | str | None = None,
    optimizer: Callable[[Any], Any] | str | None = None,
    device: str | Sequence[str] = "cpu",
    dtype: str | Sequence[str] = "float32",
    key: Mapping[str, Any] | None = None,
    isolate: bool = False,
    out: str | Path | None = None,
    **settings: Any,
) -> pd.DataFrame:
    """Measure a `torch.nn.Module` on your inputs, one row per (device, dtype, batch size,
    sequence length, mode), and return the rows.

    - `inputs`: a tensor (one argument), a tuple (positional arguments), a dict (keyword
      arguments), or a function of (batch_size, seq_len) returning one of those; fixed
      inputs have one size, read from their first tensor (batch, length, ...), and cannot
      be swept.
    - `mode`: "infer" (forward under inference mode) and/or "train" (zero-grad, forward,
      `loss`, backward, `optimizer` step). `loss(output)`, or `loss(output, target)` when a
      `target` (fixed, or a function of (batch_size, seq_len)) is given; default: the mean
      of the output. `optimizer(parameters)`; default SGD(lr=1e-3). Training updates the
      module's weights. Streaming ("step") needs seqbench's core protocol: use `run` with
      `arch="package.module:factory"`.
    - `label`: the `arch` column of the rows; `key`: other key columns to record (hidden,
      layers, vocab, embed, ...; 0 when not given), so rows line up with a `seqbench run`.
    - `settings`: how cells are timed, by the CLI's names: min_time, min_repeats,
      max_repeats, precision, warmup_time, warmup_steps, min_sample_s, rounds, seed,
      threads, flush_denormal, tf32, cell_timeout.
    - `isolate`: measure each cell in a fresh process; needs `model`, `inputs` (and
      `target`, `loss`, `optimizer` if given) as importable 'package.module:attribute'
      names. A live module is always measured in this process.
    """
    from seqbench.core.request import ModuleSpec
    from seqbench.execute.isolated import ProcessWorkerExecutor, SubprocessExecutor
    from seqbench.execute.local import InProcessExecutor
    from seqbench.execute.session import Session
    from seqbench.measure.module import one_process, ship
    from seqbench.plan.cells import Plan
    from seqbench.plan.module import describe_module, module_plan

    spec = _spec(model, inputs, target, loss, optimizer) if isinstance(model, str) else None
    if isolate and spec is None:
        raise ConfigError(
            "isolate=True needs the model by its importable name ('package.module:factory'): "
            "a live module cannot be sent to another process"
        )
    user = None if isolate else _live(spec, model, inputs, target, loss, optimizer)
    if isolate:
        _check_names(spec)
    sizes_from = user.inputs if user is not None else _load(spec.inputs, "inputs")
    config, cells = module_plan(
        label, sizes_from, mode=mode, seq_len=seq_len, batch_size=batch_size,
        device=device, dtype=dtype, key=key, settings={**settings, "isolate": isolate},
    )  # fmt: skip
    with _root(out) as root, _process_kept(), tempfile.TemporaryDirectory() as folder:
        if isolate:
            config, executor = dataclasses.replace(config, module=spec), SubprocessExecutor()
        else:
            shipped = ship(user, folder) if config.measure.processes > 1 else None
            if isinstance(shipped, ModuleSpec):  # a copy in each fresh process
                config, executor = (
                    dataclasses.replace(config, module=shipped),
                    ProcessWorkerExecutor(),
                )
            else:
                if shipped is not None:
                    warnings.warn(one_process(label, shipped), RuntimeWarning, stacklevel=2)
                measure = dataclasses.replace(config.measure, processes=1)
                config, executor = dataclasses.replace(config, measure=measure), InProcessExecutor()
                executor.attach(user, [label])
        session = Session.start(
            config, root=root, the_plan=Plan(cells, {}), executor=executor,
            extras={"module": describe_module(label, model, inputs, spec)},
        )  # fmt: skip
        return _frame(_measured(session), out)


def _spec(model, inputs, target, loss, optimizer) -> ModuleSpec:
    from seqbench.core.request import ModuleSpec

    names = {"inputs": inputs, "target": target, "loss": loss, "optimizer": optimizer}
    live = [k for k, v in names.items() if v is not None and not isinstance(v, str)]
    if live:
        raise ConfigError(
            f"model given by name: give {live[0]} by name too ('package.module:attribute')"
        )
    return ModuleSpec(model, inputs, target, loss, optimizer)


def _check_names(spec: ModuleSpec) -> None:
    """Find each name an isolated cell will load, here, so that a mistake in one (a module
    or an attribute that is not there) raises now rather than failing every cell. Nothing
    is called: building the model is the fresh process's."""
    for what in ("model", "target", "loss", "optimizer"):
        name = getattr(spec, what)
        found = None if name is None else _load(name, what)
        if what == "model" and not callable(found):
            raise ConfigError(
                f"model {name!r} is a {type(found).__name__}, not an nn.Module or a factory of one"
            )


def _load(name: str, what: str) -> Any:
    from seqbench.measure.module import load_name

    return load_name(name, what)


def _live(spec, model, inputs, target, loss, optimizer):
    """The user's module and inputs as objects in this process."""
    from torch import nn

    from seqbench.measure.module import UserModule, resolve

    if spec is not None:
        return resolve(spec)
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model: expected a torch.nn.Module or 'package.module:factory', "
            f"got {type(model).__name__}"
        )
    return UserModule(model, inputs, target, loss, optimizer)


def _options(options: Mapping[str, Any], caller: str) -> tuple[dict[str, tuple], dict[str, Any]]:
    """A Python caller's axes and settings, each checked as a suite file's would be."""
    from seqbench.plan.suites import AXIS_RULES, check_axis, check_setting

    axes = {k: check_axis(k, v, k) for k, v in options.items() if k in AXIS_RULES}
    settings = {}
    for name, value in options.items():
        if name not in AXIS_RULES:
            try:
                settings[name] = check_setting(name, value, name)
            except KeyError:
                raise ConfigError(f"{caller}(): unknown option {name!r}") from None
    return axes, settings


def _measured(session: Session) -> Run:
    """Every cell of the session's plan, saved as it finishes; what a user should hear
    (a busy machine, a device that is not here, threads lowered as other work arrived) as
    Python warnings."""
    from seqbench.execute import Notice

    for line in session.notices:
        warnings.warn(line, RuntimeWarning, stacklevel=3)
    with session:
        for event in session.measure():
            if isinstance(event, Notice):
                warnings.warn(event.text, RuntimeWarning, stacklevel=3)
    return session.run


@contextlib.contextmanager
def _root(out: str | Path | None) -> Iterator[Path]:
    if out is not None:
        yield Path(out)
        return
    with tempfile.TemporaryDirectory(prefix="seqbench-") as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def _process_kept() -> Iterator[None]:
    """Give the caller's process its torch threads and TF32 flags back after measuring
    (subnormal flushing stays as measured: torch cannot report what it was)."""
    import torch

    threads = torch.get_num_threads()
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


def _frame(run_: Run, out: str | Path | None) -> pd.DataFrame:
    from seqbench.core.schema import rows_to_frame

    frame = rows_to_frame(run_.rows)
    frame.attrs["run_path"] = str(run_.path) if out is not None else None
    frame.attrs["run_id"] = run_.run_id
    return frame
