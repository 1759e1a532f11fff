"""seqbench from Python: run a matrix, or measure your own module, and get the rows back.

    import seqbench
    frame = seqbench.run(arch=["lstm", "gru"], seq_len=[64, 256], mode="infer")
    frame = seqbench.measure_module(model, lambda b, t: torch.randn(b, t, 16),
                                    seq_len=[64, 256], mode=["infer", "train"])

Both return a pandas DataFrame of `ResultRow`s (the columns of `seqbench.core.schema`, in order),
measured as `seqbench run` measures: the same configuration object, scheduler, warm-up,
stopping rule, statistics, memory and noise columns. With `out=` the run is saved under
that folder exactly as `seqbench run --out` saves it, so `seqbench show`, `compare`, `plot`
and `history` read it; the run folder is `frame.attrs["run_path"]`. Without `out=` nothing
is kept on disk.

Isolation: a live module cannot be sent to another process (it may not pickle, and its
code may live only in the caller), so it is measured in this process. Give the module and
its inputs as importable names ('package.module:attribute') and `isolate=True` measures
every cell in a fresh process, as `seqbench run --isolate` does.

Measuring sets torch's threads, subnormal flushing and TF32 in this process, as `seqbench
run` does; the threads and TF32 are given back afterwards, subnormals stay flushed (unless
`flush_denormal=False`).

Errors the caller causes (an unknown setting, inputs of the wrong kind) raise
`seqbench.core.errors.SeqbenchError` with a one-line message; a step that fails is a row with
status 'error' and the message, as on the command line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqbench.core.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from seqbench.core.request import CellRequest, ModuleSpec
    from seqbench.core.schema import Cell
    from seqbench.plan.config import SuiteConfig
    from seqbench.storage import Run

__all__ = ["measure_module", "run"]

# Settings a user's module is measured with: how it is timed, and the process around it.
MODULE_SETTINGS = (
    "min_time", "min_repeats", "max_repeats", "precision", "warmup_time", "warmup_steps",
    "min_sample_s", "rounds", "seed", "threads", "flush_denormal", "tf32", "cell_timeout",
)  # fmt: skip
# Key columns a user's rows may carry so that they line up with a `seqbench run` matrix.
KEY_FIELDS = ("hidden", "layers", "bidirectional", "dropout", "recurrent_dropout", "vocab", "embed")
_LABEL = re.compile(r"[\w.:\[\]/=+-]{1,128}")


def run(
    suite: str | Path | None = None,
    *,
    out: str | Path | None = None,
    csv: str | Path | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Measure a matrix, as `seqbench run` does, and return its rows.

    `suite` is a suite name or file (None: the quick suite); `options` are the command
    line's, by their suite-file names: axes (`arch`, `seq_len`, `batch_size`, `mode`, ...:
    one value or a list) replace the suite's, settings (`min_time`, `rounds`, `threads`,
    `isolate`, ...) replace its settings. `out` saves the run under that folder; `csv` also
    writes the rows to that file (with its sidecars).
    """
    from seqbench.execute import make_executor, session
    from seqbench.plan.config import resolve_config
    from seqbench.plan.suites import AXIS_RULES, check_axis, check_setting

    axes = {k: check_axis(k, v, k) for k, v in options.items() if k in AXIS_RULES}
    settings = {}
    for name, value in options.items():
        if name not in AXIS_RULES:
            try:
                settings[name] = check_setting(name, value, name)
            except KeyError:
                raise ConfigError(f"run(): unknown option {name!r}") from None
    config = resolve_config(suite, axes=axes, settings=settings)
    plan = session.make_plan(config)
    measured = _threads(config)
    with _root(out) as root, _process_kept(), make_executor(measured) as executor:
        env = session.environment(measured, [c.device for c in plan.cells], executor)
        run_ = session.new_run(config, plan, env, root, None if csv is None else Path(csv))
        _measure(measured, plan.cells, executor, run_)
        return _frame(run_, out)


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
    from seqbench.execute import session
    from seqbench.execute.isolated import SubprocessExecutor
    from seqbench.execute.local import InProcessExecutor

    spec = _spec(model, inputs, target, loss, optimizer) if isinstance(model, str) else None
    if isolate and spec is None:
        raise ConfigError(
            "isolate=True needs the model by its importable name ('package.module:factory'): "
            "a live module cannot be sent to another process"
        )
    user = None if isolate else _live(spec, model, inputs, target, loss, optimizer)
    sizes_from = user.inputs if user is not None else _load(spec.inputs, "inputs")
    config, cells = module_plan(
        label, sizes_from, mode=mode, seq_len=seq_len, batch_size=batch_size,
        device=device, dtype=dtype, key=key, settings={**settings, "isolate": isolate},
    )  # fmt: skip
    measured = _threads(config)
    executor = SubprocessExecutor() if isolate else InProcessExecutor(module=user)
    with _root(out) as root, _process_kept(), executor:
        env = session.environment(measured, [c.device for c in cells], executor)
        run_ = session.new_run(config, session.Plan(cells, {}), env, root, None)
        run_.meta["module"] = describe_module(label, model, inputs, spec)
        _measure(ModuleConfig(measured, spec), cells, executor, run_)
        return _frame(run_, out)


def module_plan(
    label: str,
    inputs: Any,
    *,
    mode: Any = "infer",
    seq_len: Any = None,
    batch_size: Any = None,
    device: Any = "cpu",
    dtype: Any = "float32",
    key: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> tuple[SuiteConfig, list[Cell]]:
    """The configuration and the cells of a user's module, every value checked as a suite
    file's would be (for `measure_module` and the pytest plugin)."""
    from seqbench.core import devices
    from seqbench.core.schema import Cell
    from seqbench.measure.module import fixed_size, is_generator
    from seqbench.plan.config import Axes, SuiteConfig, apply_overrides
    from seqbench.plan.suites import check_axis, check_setting

    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise ConfigError(f"label: expected 1-128 letters, digits or ._-:[]/=+, got {label!r}")
    unknown = [k for k in settings or {} if k not in (*MODULE_SETTINGS, "isolate")]
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]!r}; expected one of: {', '.join(MODULE_SETTINGS)}"
        )
    checked = {k: check_setting(k, v, k) for k, v in (settings or {}).items()}
    values = {k: check_axis(k, v, k) for k, v in (key or {}).items() if k in KEY_FIELDS}
    if set(key or {}) - set(KEY_FIELDS):
        wrong = sorted(set(key or {}) - set(KEY_FIELDS))[0]
        raise ConfigError(
            f"key: unknown column {wrong!r}; expected one of: {', '.join(KEY_FIELDS)}"
        )
    if not is_generator(inputs):
        batch, length = fixed_size(inputs)
        for name, given, size in (("seq_len", seq_len, length), ("batch_size", batch_size, batch)):
            if given is not None and check_axis(name, given, name) != (size,):
                raise ConfigError(
                    f"{name}: fixed inputs have {name} {size}; to sweep it, give inputs as a "
                    "function of (batch_size, seq_len)"
                )
        seq_len, batch_size = length, batch
    modes = check_axis("mode", mode, "mode")
    axes = Axes(
        arch=(label,),
        seq_len=tuple(sorted(check_axis("seq_len", 64 if seq_len is None else seq_len, "seq_len"))),
        batch_size=tuple(
            sorted(check_axis("batch_size", 32 if batch_size is None else batch_size, "batch_size"))
        ),
        device=check_axis("device", device, "device"),
        dtype=check_axis("dtype", dtype, "dtype"),
        mode=modes,
        **{k: v[:1] for k, v in values.items()},
        **{k: (0,) for k in ("hidden", "layers", "vocab", "embed") if k not in values},
    )
    config = apply_overrides(
        SuiteConfig(label=re.sub(r"[^\w.-]", "_", label)[:64], matrices=(axes,),
                    description=f"the module {label}",
                    source="seqbench.measure_module"),
        settings=checked,
    )  # fmt: skip
    cells = [
        Cell(
            arch=label,
            seq_len=t,
            batch_size=b,
            hidden=axes.hidden[0],
            layers=axes.layers[0],
            bidirectional=axes.bidirectional[0],
            dropout=axes.dropout[0],
            recurrent_dropout=axes.recurrent_dropout[0],
            vocab=axes.vocab[0],
            embed=axes.embed[0],
            device=devices.resolve(d),
            dtype=dt,
            mode=m,
        )  # fmt: skip
        for d in axes.device
        for dt in axes.dtype
        for b in axes.batch_size
        for t in axes.seq_len
        for m in modes
    ]
    return config, cells


@dataclasses.dataclass(frozen=True)
class ModuleConfig:
    """A configuration whose requests measure a user's module (by name, for a worker)."""

    config: SuiteConfig
    spec: ModuleSpec | None

    def request(self, cell: Cell, round: int = 1) -> CellRequest:
        request = self.config.request(cell, round)
        return dataclasses.replace(request, module=self.spec, accuracy=False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.config, name)


def describe_module(label: str, model: Any, inputs: Any, spec: ModuleSpec | None) -> dict:
    """What the run's metadata says about the module measured."""
    if spec is not None:
        return {"label": label, **dataclasses.asdict(spec)}
    kind = type(inputs).__name__ if not callable(inputs) else "function of (batch_size, seq_len)"
    return {"label": label, "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "inputs": kind}  # fmt: skip


def _spec(model, inputs, target, loss, optimizer) -> ModuleSpec:
    from seqbench.core.request import ModuleSpec

    names = {"inputs": inputs, "target": target, "loss": loss, "optimizer": optimizer}
    live = [k for k, v in names.items() if v is not None and not isinstance(v, str)]
    if live:
        raise ConfigError(
            f"model given by name: give {live[0]} by name too ('package.module:attribute')"
        )
    return ModuleSpec(model, inputs, target, loss, optimizer)


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


def _threads(config: SuiteConfig) -> SuiteConfig:
    """Threads decided for this machine as `seqbench run` decides them; its warning, if
    any, as a Python warning."""
    from seqbench.execute import session
    from seqbench.machine import system

    measured, warning = session.choose_threads(config, system.look())
    if warning:
        warnings.warn(warning, RuntimeWarning, stacklevel=3)
    return measured


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


def _measure(config: Any, cells: list[Cell], executor: Any, run_: Run) -> None:
    """Every cell through the scheduler, saved as it finishes; the run closed either way."""
    from seqbench.execute import Scheduler, session

    try:
        for _ in Scheduler(config, executor, run_).iter_plan(cells):
            pass
    except BaseException:
        with contextlib.suppress(OSError):
            session.finish(run_, "interrupted")
        raise
    else:
        session.finish(run_, "complete")
    finally:
        run_.close()


def _frame(run_: Run, out: str | Path | None) -> pd.DataFrame:
    from seqbench.core.schema import rows_to_frame

    frame = rows_to_frame(run_.rows)
    frame.attrs["run_path"] = str(run_.path) if out is not None else None
    frame.attrs["run_id"] = run_.run_id
    return frame
