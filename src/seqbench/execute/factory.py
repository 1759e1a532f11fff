"""The executor a configuration asks for. Apart from the protocol (base.py), which every
backend imports, so that choosing a backend is the only place that knows them all."""

from __future__ import annotations

from typing import TYPE_CHECKING

from seqbench.execute.base import Executor

if TYPE_CHECKING:
    from seqbench.execute.isolated import Worker
    from seqbench.plan.config import SuiteConfig


def make_executor(config: SuiteConfig, ready: Worker | None = None) -> Executor:
    """The backend a configuration asks for (a `SuiteConfig`: executor, isolate), with
    instructions counted beside the timings when it asks for that (count_instructions).
    `ready`: a worker started ahead (`isolated.start_ahead`), for the first of a cell's
    processes; a backend that runs no such workers stops it now, before any cell runs."""
    executor = _timing_executor(config, ready)
    if config.count_instructions:
        from seqbench.execute.callgrind import CountingExecutor

        return CountingExecutor(executor, steps=config.count_steps)
    return executor


def _timing_executor(config: SuiteConfig, ready: Worker | None) -> Executor:
    if config.executor != "ray" and not config.isolate and config.measure.processes > 1:
        from seqbench.execute.isolated import ProcessWorkerExecutor

        return ProcessWorkerExecutor(ready=ready)
    if ready is not None:
        ready.close(kill=True)
    if config.executor == "ray":
        from seqbench.execute.ray import RayExecutor

        return RayExecutor(config.ray_address, config.cpu_cells_per_node)
    if config.isolate:
        from seqbench.execute.isolated import SubprocessExecutor

        return SubprocessExecutor()
    from seqbench.execute.local import InProcessExecutor

    return InProcessExecutor()
