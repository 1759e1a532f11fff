"""Test-only architectures that fail on purpose, loaded as `--arch tests.fault_archs:NAME`.

Each behaves like a small dense layer on short inputs (so that seqbench's build check,
which probes with 64 steps, passes) and misbehaves from `FAULT_FROM` steps on.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import torch
from torch import nn

FAULT_FROM = 100

# A process other than the one this variable names (a worker the test started) never gets
# its in-process alarm: from the moment it imports this module, before its cell's time limit
# starts, setting the timer does nothing. Only a kill can stop its cell then, whatever
# building the cell takes (tests/test_faults.py). Blocking SIGALRM at the fault instead
# raced the alarm (on a busy machine the cell took more than its 1 s limit to get there),
# and a blocked signal still reaches a thread torch started earlier.
if os.environ.get("FAULT_ARCHS_DEAF_BESIDES", str(os.getpid())) != str(os.getpid()):
    signal.setitimer = lambda which, seconds, interval=0.0: (0.0, 0.0)


class _Faulty(nn.Module):
    def __init__(self, shape) -> None:
        super().__init__()
        self.proj = nn.Linear(shape.input_size, shape.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, I) -> (B, T, H)
        if x.shape[1] >= FAULT_FROM:
            self.fault()
        return self.proj(x)

    def fault(self) -> None:
        raise NotImplementedError


class _DeviceOom(_Faulty):
    def fault(self) -> None:
        raise torch.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 20.00 GiB (test architecture)"
        )


class _HostOom(_Faulty):
    def fault(self) -> None:
        torch.empty(1 << 50, dtype=torch.uint8)  # a petabyte: the allocator refuses for real


class _Sleepy(_Faulty):
    def fault(self) -> None:
        time.sleep(60)


class _Stubborn(_Faulty):
    def fault(self) -> None:
        # Deaf to the in-process alarm: only killing the process stops it.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(60)


class _Crash(_Faulty):
    def fault(self) -> None:
        os.kill(os.getpid(), signal.SIGSEGV)


class _Broken(_Faulty):
    def fault(self) -> None:
        raise ValueError("shapes do not line up\nsecond line of detail")


def oom(shape):
    """Raises torch.OutOfMemoryError from FAULT_FROM steps on."""
    return _DeviceOom(shape)


def host_oom(shape):
    """Asks the host allocator for a petabyte from FAULT_FROM steps on."""
    return _HostOom(shape)


def sleepy(shape):
    """Sleeps a minute from FAULT_FROM steps on."""
    return _Sleepy(shape)


def stubborn(shape):
    """Blocks SIGALRM and sleeps a minute from FAULT_FROM steps on."""
    return _Stubborn(shape)


def crash(shape):
    """Kills its own process with SIGSEGV from FAULT_FROM steps on."""
    return _Crash(shape)


def broken(shape):
    """Raises a ValueError from FAULT_FROM steps on."""
    return _Broken(shape)


def not_a_module(shape):
    return "a string"


def fails_to_build(shape):
    raise RuntimeError("cannot build")


class _Exits(_Faulty):
    def fault(self) -> None:
        raise SystemExit(3)


def exits(shape):
    """Calls sys.exit(3) in its forward from FAULT_FROM steps on."""
    return _Exits(shape)


def hangs_on_build(shape):
    """Never returns from construction (a factory waiting for something that never comes)."""
    time.sleep(600)


class _Endless(_Faulty):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(600)
        return self.proj(x)


def hangs_on_forward(shape):
    """Builds at once; its forward pass never returns, even on the probe's 64 steps."""
    return _Endless(shape)


def crashes_on_build(shape):
    """Kills its own process with SIGSEGV while being built."""
    os.kill(os.getpid(), signal.SIGSEGV)


def exits_on_build(shape):
    """Calls sys.exit(0) while being built, as a script's module might on import."""
    sys.exit(0)


class _Flaky(_Faulty):
    def fault(self) -> None:
        if os.path.exists(os.environ.get("SEQBENCH_TEST_FLAKY", "/nonexistent")):
            raise RuntimeError("flaky: the marker file is there")


def flaky(shape):
    """Fails from FAULT_FROM steps on while the file named by $SEQBENCH_TEST_FLAKY exists."""
    return _Flaky(shape)


def needs_two_layers(shape):
    """Divides by layers - 1, as RWKV's reference factory does: built at a made-up shape of
    one layer it fails, though the run asks for two."""
    step = 1.0 / (shape.layers - 1)
    return nn.Sequential(nn.Linear(shape.input_size, shape.hidden), nn.Dropout(step * 0.0))
