"""The executor a configuration asks for. Apart from the protocol (base.py), which every
backend imports, so that choosing a backend is the only place that knows them all."""

from __future__ import annotations

from typing import Any

from seqbench.execute.base import Executor


def make_executor(config: Any) -> Executor:
    """The backend a configuration asks for (a `SuiteConfig`: executor, isolate), with
    instructions counted beside the timings when it asks for that (count_instructions)."""
    executor = _timing_executor(config)
    if getattr(config, "count_instructions", False):
        from seqbench.execute.callgrind import CountingExecutor

        return CountingExecutor(executor, steps=config.count_steps)
    return executor


def _timing_executor(config: Any) -> Executor:
    if config.executor == "ray":
        from seqbench.execute.ray import RayExecutor

        return RayExecutor(config.ray_address, config.cpu_cells_per_node)
    if config.isolate:
        from seqbench.execute.isolated import SubprocessExecutor

        return SubprocessExecutor()
    from seqbench.execute.local import InProcessExecutor

    return InProcessExecutor()
