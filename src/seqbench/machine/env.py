"""The environment a number came from, and the process-wide settings that shape it.

`COMPARED_KEYS` are the keys that must match before two runs' timings can be compared:
a different device, library version, thread count or subnormal setting is a different
experiment, not a regression. torch is imported by the functions that read or set it, so
the readers of saved runs (which compare environments) never load it.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from seqbench.core import devices
from seqbench.core.errors import SeqbenchError
from seqbench.core.settings import ProcessSettings

if TYPE_CHECKING:
    from seqbench.storage import Run
from seqbench.core.version import __version__

COMPARED_KEYS = (
    "device_names",
    "cpu",
    "torch",
    "cuda",
    "cudnn",
    "threads",
    "flush_denormal",
    "tf32",
)
# Keys newer runs record, compared when both runs have them (an older run lacks them): what
# changes an instruction count without changing the code (the torch build, the SIMD level
# ATen dispatches to, and the simulator that counted).
COMPARED_WHEN_RECORDED = ("torch_git", "cpu_capability", "aten_cpu_capability", "valgrind")


def apply_process_settings(
    threads: int | None, flush_denormal: bool, tf32: bool = True
) -> dict[str, Any]:
    """Set torch's thread count, subnormal handling and TF32; return what is now in effect.

    Flushing subnormals to zero is the default (as in Keras on TensorFlow): when gradients
    vanish they turn subnormal, and x86 arithmetic on subnormals is many times slower, which
    would bill a numerical accident to the architecture. TF32 (on by default, as cuDNN has
    it) lets CUDA float32 matmuls and cuDNN kernels use TensorFloat-32 tensor cores; it is
    set for both, so that "float32 with TF32" means the same thing for every layer.
    """
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    # set_flush_denormal returns False where the CPU cannot flush (no SSE3); record the truth.
    flushed = torch.set_flush_denormal(flush_denormal) and flush_denormal
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    return {"threads": torch.get_num_threads(), "flush_denormal": bool(flushed), "tf32": tf32}


def apply_process(process: ProcessSettings) -> dict[str, Any]:
    """A request's or a configuration's process settings, applied here (see
    `apply_process_settings`)."""
    return apply_process_settings(process.threads, process.flush_denormal, process.tf32)


def git_commit(path: str | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout at `path` (the current directory), if any."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=path, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, dirty


def git_commit_time(commit: str | None, path: str | None = None) -> str | None:
    """When `commit` was committed (ISO 8601, committer date): the order `seqbench history`
    puts runs in, which the run's own time gets wrong for a rerun of an old commit."""
    if not commit:
        return None
    try:
        done = subprocess.run(
            ["git", "show", "-s", "--format=%cI", commit],
            cwd=path, capture_output=True, text=True, timeout=5, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def collect_env(device_list: Iterable[str], settings: dict[str, Any]) -> dict[str, Any]:
    """Versions, hardware and settings, for the run's metadata (and for `seqbench env`)."""
    import torch

    commit, dirty = git_commit()
    used = sorted(set(device_list))
    cuda_devices = [d for d in used if d.startswith("cuda")]
    env: dict[str, Any] = {
        "seqbench": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu": devices.cpu_name(),
        "cpu_count": os.cpu_count(),
        "device_names": {
            d: devices.device_name(d) for d in used if not devices.unavailable_reason(d)
        },
        "threads": settings["threads"],
        "flush_denormal": settings["flush_denormal"],
        "tf32": settings.get("tf32"),
        "mkldnn": torch.backends.mkldnn.is_available(),
        # The SIMD level ATen's CPU kernels dispatch to (ATEN_CPU_CAPABILITY can lower it).
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY", ""),
        "torch_git": torch.version.git_version,
        "git_commit": commit,
        "git_dirty": dirty,
        "git_commit_time": git_commit_time(commit),
        "argv": sys.argv,
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if cuda_devices and torch.cuda.is_available():
        env["gpu"] = gpu_info(cuda_devices[0])
    return env


# nvidia-smi fields worth keeping beside a GPU figure: the driver, and the clocks (a GPU held
# at a low clock by power or heat runs everything slower).
SMI_FIELDS = (
    "driver_version",
    "clocks.sm",
    "clocks.max.sm",
    "clocks.mem",
    "power.limit",
    "temperature.gpu",
)


def gpu_info(device: str) -> dict[str, Any]:
    """What torch knows of a CUDA device, and what nvidia-smi adds where it answers."""
    import torch

    dev = torch.device(device)
    props = torch.cuda.get_device_properties(dev)
    info: dict[str, Any] = {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_bytes": props.total_memory,
        "multiprocessors": props.multi_processor_count,
    }
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--id={index}", f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return info
    values = [v.strip() for v in out.split(",")]
    if len(values) == len(SMI_FIELDS):
        info.update(zip(SMI_FIELDS, values, strict=True))
    return info


def env_differences(
    a: dict[str, Any], b: dict[str, Any], keys: Iterable[str] = COMPARED_KEYS
) -> list[str]:
    """The compared keys whose values differ between two environments (and the keys only
    newer runs record, where both have them)."""
    recorded = [k for k in COMPARED_WHEN_RECORDED if k in a and k in b and k not in keys]
    return [k for k in (*keys, *recorded) if a.get(k) != b.get(k)]


def check_same_environment(run: Run, env: dict[str, Any]) -> None:
    """Refuse to add cells to a run whose numbers came from another environment."""
    changed = env_differences(run.meta.env, env)
    if changed:
        raise SeqbenchError(
            f"cannot resume {run.run_id}: the environment differs ({', '.join(changed)}); "
            "its numbers would not be comparable with those already saved"
        )
