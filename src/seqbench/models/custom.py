"""Architectures from outside seqbench: `--arch package.module:factory`.

The module must be importable from the current directory or the environment. A factory is any callable `factory(shape: CoreShape) -> torch.nn.Module` whose module maps
float inputs (B, T, shape.input_size) to features (B, F) or (B, T', F). seqbench puts its
own embedding in front and a dense head behind, counts its parameters on the built module,
and (having no formula for it) counts its FLOPs on one step (measure.workload.counted_flops).
A factory may instead return a whole transformers model (`LlamaForCausalLM(config)`), which
is fed as an `hf:` model is (models.hf.whole_model): no wrapper to write.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from functools import cache
from typing import Any

import torch
from torch import nn

from seqbench.core.errors import ConfigError
from seqbench.models.base import CORE_OPTIONS, ArchSpec, CoreShape, SequenceCore

# The `kernel` a user's module is recorded with, from --arch and from seqbench.measure_module
# alike: what ran inside it is its own.
USER_KERNEL = "user module"

# The length of the input a factory's module is probed with, to learn its output width
# (short whatever the cells' length: the cell itself measures that).
PROBE_LEN = 64


def describe_shape(shape: CoreShape) -> str:
    """The shape a factory is built at, as the run's settings name it, for a message."""
    parts = [f"input_size {shape.input_size} (--embed)", f"hidden {shape.hidden}"]
    parts.append(f"layers {shape.layers}")
    if shape.bidirectional:
        parts.append("bidirectional")
    if shape.seq_len:
        parts.append(f"T {shape.seq_len}")
    return ", ".join(parts)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class ForeignCore(SequenceCore):
    """Wraps a user's module: (B, T, I) -> (B, T', F); 2-D outputs become one step. A module
    with `init_state(batch, device, dtype)` and `step(x_t, state) -> (y_t, state)` methods
    streams (`--mode step`) through them."""

    def __init__(self, module: nn.Module, out_features: int, name: str = "") -> None:
        super().__init__()
        self.module = module
        self.out_features = out_features
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.module(x)
        return y.unsqueeze(1) if y.dim() == 2 else y

    def summary(self, y: torch.Tensor) -> torch.Tensor:  # (B, T', F) -> (B, F): the last step
        return y[:, -1]

    def implementation(self, training: bool, device: str, dtype: str) -> tuple[str, str]:
        return (USER_KERNEL, "")

    def step_implementation(self, device: str, dtype: str) -> tuple[str, str]:
        return (USER_KERNEL, "")

    def step_unsupported(self) -> str | None:
        if all(callable(getattr(self.module, m, None)) for m in ("init_state", "step")):
            return None
        return (
            f"{self.name or 'a user module'} has no streaming step (give its module "
            "init_state(batch, device, dtype) and step(x_t, state) -> (y_t, state) methods)"
        )

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> Any:
        if reason := self.step_unsupported():
            raise NotImplementedError(reason)
        return self.module.init_state(batch, device, dtype)

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        if reason := self.step_unsupported():
            raise NotImplementedError(reason)
        return self.module.step(x_t, state)


def wrap(name: str, module: object, shape: CoreShape) -> SequenceCore:
    """Check what a factory returned and wrap it; a clear error if it cannot be used. A whole
    transformers model (token ids in, a ModelOutput out) is fed as `hf:` models are."""
    from seqbench.models.hf import whole_model

    if not isinstance(module, nn.Module):
        raise ConfigError(
            f"{name}: the factory returned {type(module).__name__}, not a torch.nn.Module"
        )
    whole = whole_model(module, shape, (USER_KERNEL, ""))
    length = PROBE_LEN
    probe = torch.zeros(1, length, shape.input_size)
    try:
        with torch.no_grad():
            out = (module if whole is None else whole)(probe)
    except Exception as exc:
        raise ConfigError(
            f"{name}: its module fails on a (1, {length}, {shape.input_size}) input: {_first_line(exc)}"
        ) from None
    if not isinstance(out, torch.Tensor) or out.dim() not in (2, 3) or out.shape[0] != 1:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"{name}: its module must return (B, F) or (B, T, F) features, got {got}")
    return ForeignCore(module, int(out.shape[-1]), name) if whole is None else whole


# How long a user's module may take to import in its probe process (torch's own import, a
# few seconds, included), then its factory to return, then its forward pass on the probe
# input, each from its start; the forward pass gets the run's cell timeout instead where
# one is given (limit_forward).
IMPORT_TIMEOUT_S = 120.0
BUILD_TIMEOUT_S = 120.0
# Beyond the cell timeout, for the probe's forward pass: a fresh process's first call does
# lazy set-up (kernels chosen, memory mapped), and a busy machine may not run it at once.
FORWARD_GRACE_S = 10.0

# What the probe process says as it goes, one word a line: each step as it is done.
OK = "ok"
STEPS = ("imported", "built", OK)

# The most the forward pass on the probe input may take when a run gives a cell timeout.
# Set by whoever knows the run's settings before its architectures are checked.
forward_limit: float | None = None


def limit_forward(seconds: float | None) -> None:
    """Let the probe's forward pass take at most `seconds` (a run's --cell-timeout)."""
    global forward_limit
    forward_limit = seconds


@cache
def probe_factory(name: str, shape: CoreShape) -> None:
    """Import and build 'package.module:factory' at `shape` (the first cell's a run will
    measure) in a process of its own (models/probe.py): a module that hangs, crashes or exits
    there is one ConfigError here, not a lost run, and one that hangs is stopped at the step
    it hangs in (import, factory, forward pass)."""
    import dataclasses
    import json
    import signal
    import subprocess
    import tempfile

    from seqbench.machine.launch import Launch

    with tempfile.TemporaryFile("w+") as err:  # a file: a chatty module cannot fill a pipe
        proc = subprocess.Popen(
            [sys.executable, "-m", "seqbench.models.probe", name,
             json.dumps(dataclasses.asdict(shape))],
            stdout=subprocess.PIPE, stderr=err, text=True, env=Launch().environment(),
        )  # fmt: skip
        done, hung = _steps_done(proc, forward_limit, shape)
        err.seek(0)
        last = next((line for line in reversed(err.read().splitlines()) if line.strip()), "")
    if hung is not None:
        raise ConfigError(f"{name}: {hung}")
    if proc.returncode == 2 and last:
        raise ConfigError(last)
    if proc.returncode < 0:
        try:
            how = signal.Signals(-proc.returncode).name
        except ValueError:
            how = f"signal {-proc.returncode}"
        raise ConfigError(f"{name}: importing or building it killed the process ({how})")
    if proc.returncode != 0 or OK not in done:
        said = f": {last}" if last else ""
        raise ConfigError(
            f"{name}: importing or building it ended the process (exit code {proc.returncode}, sys.exit?){said}"
        )


def _steps_done(
    proc: Any, forward_limit: float | None, shape: CoreShape
) -> tuple[list[str], str | None]:
    """The steps a probe process said it finished, and why it was stopped if one hung (it
    is killed then): each step has its limit from its start (see IMPORT_TIMEOUT_S)."""
    import selectors
    import time

    done: list[str] = []
    deadline = time.monotonic() + IMPORT_TIMEOUT_S
    pending = ""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                proc.wait()
                return done, _hung(done, forward_limit, shape)
            if not sel.select(min(left, 1.0)):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096).decode(errors="replace")
            if not chunk:  # the process closed its output: it is ending
                break
            pending += chunk
            *lines, pending = pending.split("\n")
            for line in lines:
                if line.strip() in STEPS[:2]:
                    done.append(line.strip())
                    deadline = time.monotonic() + _limit(done, forward_limit)
                elif line.strip() == OK:
                    done.append(OK)
    proc.wait()
    return done, None


def _limit(done: list[str], forward_limit: float | None) -> float:
    """The time the next step may take, given the steps done."""
    if len(done) == 1:
        return BUILD_TIMEOUT_S
    return forward_limit + FORWARD_GRACE_S if forward_limit is not None else BUILD_TIMEOUT_S


def _hung(done: list[str], forward_limit: float | None, shape: CoreShape) -> str:
    """What the probe was doing when it was stopped, for one line of error."""
    if len(done) >= 2:
        why = ""
        if forward_limit is not None:
            why = (
                f" (--cell-timeout {forward_limit:g} s, and {FORWARD_GRACE_S:g} s for a first call)"
            )
        return (
            f"its forward pass on a (1, {PROBE_LEN}, {shape.input_size}) probe "
            f"input did not return within {_limit(done, forward_limit):g} s{why}"
        )
    if done:
        return (
            f"its factory did not return within {BUILD_TIMEOUT_S:g} s (does it wait for something?)"
        )
    return f"importing its module did not finish within {IMPORT_TIMEOUT_S:g} s (does it wait for something?)"


def check_factory_name(name: str, flag: str = "--arch", kind: str = "factory") -> None:
    """'package.module:attribute', or one line saying what was expected."""
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{flag} {name!r}: expected 'package.module:{kind}'")


def import_named(name: str, flag: str = "--arch", kind: str = "factory") -> object:
    """The object 'package.module:attribute' names (a factory, or a user's module and its
    inputs for seqbench.api); import problems become one clear line."""
    check_factory_name(name, flag, kind)
    module_name, _, attr = name.partition(":")
    # Like `python -m`, look in the current directory too: a user's models usually live there.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"{name}: cannot import {module_name!r}: {_first_line(exc)}") from None
    found = getattr(module, attr, None)
    if found is None:
        raise ConfigError(f"{name}: module {module_name!r} has no attribute {attr!r}")
    return found


@cache
def load_factory(name: str) -> ArchSpec:
    """An ArchSpec for 'package.module:factory'; import problems become one clear line."""
    factory = import_named(name)
    module_name = name.partition(":")[0]
    return spec_from_factory(name, factory, f"user architecture from {module_name}")


ENTRY_POINT_GROUP = "seqbench.architectures"


def plugin_names() -> list[str]:
    """Architectures that installed packages register under the `seqbench.architectures`
    entry-point group (name = "package.module:factory")."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)})


@cache
def load_plugin(name: str) -> ArchSpec | None:
    """The registered plugin architecture called `name`, or None if no package offers it."""
    found = [
        ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name
    ]
    if not found:
        return None
    try:
        factory = found[0].load()
    except (Exception, SystemExit) as exc:
        raise ConfigError(
            f"{name}: its entry point {found[0].value!r} fails to load: {_first_line(exc)}"
        ) from None
    return spec_from_factory(name, factory, f"plugin architecture from {found[0].value}")


def build_module(name: str, factory: Any, shape: CoreShape) -> object:
    """What the user's factory returns for `shape`; its failure is one line naming it."""
    try:
        return factory(shape)
    except (Exception, SystemExit) as exc:
        raise ConfigError(
            f"{name}: the factory failed at {describe_shape(shape)}: {_first_line(exc)}"
        ) from None


def check_callable(name: str, factory: object) -> None:
    """A factory must be something to call; one line naming it otherwise."""
    if not callable(factory):
        raise ConfigError(f"{name}: {name.partition(':')[2] or name!r} is not callable")


def spec_from_factory(name: str, factory: object, origin: str) -> ArchSpec:
    """An ArchSpec around a user's factory (see the module docstring for its signature)."""
    check_callable(name, factory)

    def build(shape: CoreShape) -> SequenceCore:
        return wrap(name, build_module(name, factory, shape), shape)

    doc = (factory.__doc__ or "").strip().splitlines()
    return ArchSpec(
        name=name,
        summary=doc[0] if doc else origin,
        param_formula="counted on the built module",
        build=build,
        count_params=None,
        forward_flops=None,
        options=frozenset(CORE_OPTIONS),
    )
