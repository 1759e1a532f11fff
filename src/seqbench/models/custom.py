"""Architectures from outside seqbench: `--arch package.module:factory`.

The module must be importable from the current directory or the environment. A factory is any callable `factory(shape: CoreShape) -> torch.nn.Module` whose module maps
float inputs (B, T, shape.input_size) to features (B, F) or (B, T', F). seqbench puts its
own embedding in front and a dense head behind, counts its parameters on the built module,
and (having no formula for it) counts its FLOPs on one step (measure.workload.counted_flops).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from functools import cache

import torch
from torch import nn

from seqbench.core.errors import ConfigError
from seqbench.models.base import CORE_OPTIONS, ArchSpec, CoreShape, SequenceCore

# The input a factory's module is probed with, to learn its output width.
PROBE_LEN = 64


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class ForeignCore(SequenceCore):
    """Wraps a user's module: (B, T, I) -> (B, T', F); 2-D outputs become one step."""

    def __init__(self, module: nn.Module, out_features: int) -> None:
        super().__init__()
        self.module = module
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.module(x)
        return y.unsqueeze(1) if y.dim() == 2 else y

    def summary(self, y: torch.Tensor) -> torch.Tensor:  # (B, T', F) -> (B, F): the last step
        return y[:, -1]


def wrap(name: str, module: object, shape: CoreShape) -> ForeignCore:
    """Check what a factory returned and wrap it; a clear error if it cannot be used."""
    if not isinstance(module, nn.Module):
        raise ConfigError(
            f"{name}: the factory returned {type(module).__name__}, not a torch.nn.Module"
        )
    probe = torch.zeros(1, PROBE_LEN, shape.input_size)
    try:
        with torch.no_grad():
            out = module(probe)
    except Exception as exc:
        raise ConfigError(
            f"{name}: its module fails on a (1, {PROBE_LEN}, {shape.input_size}) input: {_first_line(exc)}"
        ) from None
    if not isinstance(out, torch.Tensor) or out.dim() not in (2, 3) or out.shape[0] != 1:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"{name}: its module must return (B, F) or (B, T, F) features, got {got}")
    return ForeignCore(module, int(out.shape[-1]))


# How long a user's module may take to import and build in its probe process (torch's own
# import, a few seconds, included).
PROBE_TIMEOUT_S = 120.0


@cache
def probe_factory(name: str) -> None:
    """Import and build 'package.module:factory' in a process of its own (models/probe.py):
    a module that hangs, crashes or exits there is one ConfigError here, not a lost run."""
    import signal
    import subprocess

    from seqbench.machine.launch import Launch

    timeout = PROBE_TIMEOUT_S

    try:
        done = subprocess.run(
            [sys.executable, "-m", "seqbench.models.probe", name],
            capture_output=True, text=True, timeout=timeout, env=Launch().environment(),
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"{name}: importing and building it took over {timeout:g} s (does its module wait for something?)"
        ) from None
    last = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), "")
    if done.returncode == 2 and last:
        raise ConfigError(last)
    if done.returncode < 0:
        try:
            how = signal.Signals(-done.returncode).name
        except ValueError:
            how = f"signal {-done.returncode}"
        raise ConfigError(f"{name}: importing or building it killed the process ({how})")
    if done.returncode != 0 or done.stdout.strip() != "ok":
        said = f": {last}" if last else ""
        raise ConfigError(
            f"{name}: importing or building it ended the process (exit code {done.returncode}, sys.exit?){said}"
        )


def import_named(name: str, flag: str = "--arch", kind: str = "factory") -> object:
    """The object 'package.module:attribute' names (a factory, or a user's module and its
    inputs for seqbench.api); import problems become one clear line."""
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{flag} {name!r}: expected 'package.module:{kind}'")
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


def spec_from_factory(name: str, factory: object, origin: str) -> ArchSpec:
    """An ArchSpec around a user's factory (see the module docstring for its signature)."""
    if not callable(factory):
        raise ConfigError(f"{name}: {name.partition(':')[2] or name!r} is not callable")

    def build(shape: CoreShape) -> ForeignCore:
        try:
            module = factory(shape)
        except (Exception, SystemExit) as exc:
            raise ConfigError(f"{name}: the factory failed: {_first_line(exc)}") from None
        return wrap(name, module, shape)

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
