"""Which devices exist here, what they are called, and how to wait for them.

torch is imported by the functions that ask it, so that naming the device choices (as the
suite rules do) costs nothing.
"""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path
from typing import Any

DEVICE_CHOICES = ("cpu", "cuda", "mps", "auto")


def resolve(name: str) -> str:
    """'auto' becomes the best device present; other names pass through unchanged."""
    if name != "auto":
        return name
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def unavailable_reason(name: str) -> str | None:
    """None when `name` can run here, else one line saying why not."""
    kind = name.split(":")[0]
    if kind == "cpu":
        return None
    import torch

    if kind == "cuda":
        if not torch.cuda.is_available():
            build = (
                "a CPU-only build of torch"
                if torch.version.cuda is None
                else "no CUDA device visible"
            )
            return f"cuda is not available here ({build})"
        if ":" in name:
            index = int(name.split(":")[1])
            if index >= torch.cuda.device_count():
                return f"{name} does not exist (this machine has {torch.cuda.device_count()} CUDA devices)"
        return None
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return "mps is not available here (Apple-silicon GPUs only)"
        return None
    return f"unknown device {name!r}"


def synchronize(device: Any) -> None:
    """Wait for the work queued on `device` (a torch.device) to finish."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@cache
def cpu_name() -> str:
    """The CPU's marketing name, from /proc/cpuinfo where Linux offers it."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_name(name: str) -> str:
    """A human name for a device: the GPU's product name, or the CPU's."""
    kind = name.split(":")[0]
    if kind == "cuda":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(torch.device(name))
    if kind == "mps":
        return "Apple MPS"
    return cpu_name()
