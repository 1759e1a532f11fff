"""The executor a configuration asks for. Apart from the protocol (base.py), which every
backend imports, so that choosing a backend is the only place that knows them all."""

from __future__ import annotations

from typing import TYPE_CHECKING

from seqbench.execute.base import Executor

if TYPE_CHECKING:
    from seqbench.plan.config import SuiteConfig


def make_executor(config: SuiteConfig) -> Executor:
    """The backend a configuration asks for (a `SuiteConfig`: executor, isolate), with
    instructions counted beside the timings when it asks for that (count_instructions)."""
    executor = _timing_executor(config)
    if config.count_instructions:
        from seqbench.execute.callgrind import CountingExecutor

        return CountingExecutor(executor, steps=config.count_steps)
    return executor


def _timing_executor(config: SuiteConfig) -> Executor:
    if config.executor == "ray":
        from seqbench.execute.ray import RayExecutor

        return RayExecutor(config.ray_address, config.cpu_cells_per_node)
    if config.isolate:
        from seqbench.execute.isolated import SubprocessExecutor

        return SubprocessExecutor()
    if config.measure.processes > 1:
        from seqbench.execute.isolated import ProcessWorkerExecutor

        return ProcessWorkerExecutor()
    from seqbench.execute.local import InProcessExecutor

    return InProcessExecutor()
