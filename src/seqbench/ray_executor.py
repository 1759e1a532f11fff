"""Run a matrix on Ray: every cell a task in a fresh worker process, on any node.

Timing isolation is the point, so the scheduling rules are strict: a CUDA cell asks for a
whole GPU (never a fraction: two cells on one GPU corrupt each other's timing); a CPU cell
asks for a node's CPUs divided by `cpu_cells_per_node` (default 1: CPU cells never share a
node), and sets torch's threads to what it was given; a worker serves one task and exits
(`max_calls=1`), so no state leaks from one cell to the next; a failed task is not retried
(a retry would hide a crash, and time a cell twice). Rows stream back as cells finish and
are saved at once, like a local run's; each records the host and device it ran on.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator
from typing import Any

from seqbench.config import MeasureSettings, SuiteConfig
from seqbench.errors import SeqbenchError
from seqbench.measure import Measurement
from seqbench.models import step_flops
from seqbench.schema import Cell, ResultRow
from seqbench.storage import Run


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SeqbenchError("--executor ray needs Ray: pip install 'seqbench[ray]'") from None
    return ray


def _measure_task(request: dict[str, Any]) -> dict[str, Any]:
    """Runs in the Ray worker: the same code path as an isolated local cell."""
    import socket

    from seqbench.worker import serve

    answer = serve(request)
    answer["host"] = socket.gethostname()
    return answer


def start(config: SuiteConfig) -> Any:
    """Join the configured cluster, or start a local one on this machine."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": "ERROR",
    }
    if config.ray_address:
        options["address"] = config.ray_address
    else:
        # A local cluster's workers import what this process can (a user's own architectures).
        options["runtime_env"] = {
            "env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        }
    try:
        ray.init(**options)
    except Exception as exc:  # a wrong address, a cluster that is down
        where = config.ray_address or "a local cluster"
        raise SeqbenchError(f"cannot start Ray ({where}): {str(exc).splitlines()[0]}") from None
    return ray


def cpus_per_cell(ray: Any, config: SuiteConfig) -> int:
    """A CPU cell's share of the smallest node."""
    nodes = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU")]
    smallest = min((int(n["Resources"]["CPU"]) for n in nodes), default=1)
    return max(1, smallest // config.cpu_cells_per_node)


def _failure(cell: Cell, status: str, message: str) -> Measurement:
    return Measurement(
        ResultRow.for_cell(cell, flops_per_seq=step_flops(cell), status=status, message=message)
    )


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def iter_ray(config: SuiteConfig, cells: list[Cell], run: Run) -> Iterator[tuple[str, Any]]:
    """Yield ("started", cell) when a cell is submitted and ("finished", measurement) as
    each comes back, round by round; `run` is saved before every "finished"."""
    from seqbench.runner import at_least_as_large, record, rounds_done, skip_after_oom
    from seqbench.worker import request_for

    ray = start(config)

    remote = ray.remote(max_calls=1, max_retries=0)(_measure_task)
    cpus = cpus_per_cell(ray, config)
    # What shaped the numbers: CPU cells run with this many threads, not the driver's.
    run.meta["env"].update(
        threads=config.threads or cpus, ray_nodes=len([n for n in ray.nodes() if n.get("Alive")])
    )
    run.save_meta()  # saving a cell no longer rewrites the metadata

    settings: MeasureSettings = config.measure.per_round()
    ooms = [r.cell for r in run.rows if r.status == "oom"]
    for round_no in range(1, config.measure.rounds + 1):
        pending: dict[Any, Cell] = {}
        for cell in cells:
            if rounds_done(run.row(cell.cell_id), config.measure.rounds) >= round_no:
                continue
            skipped = skip_after_oom(cell, ooms, config)  # known OOMs: from a resumed run
            if skipped is not None:
                yield "started", cell
                yield "finished", record(run, skipped, mfu=False)
                continue
            threads = config.threads or (cpus if cell.device == "cpu" else None)
            request = request_for(
                cell, dataclasses.replace(config, threads=threads), settings, accuracy=round_no == 1
            )

            gpu = cell.device.startswith("cuda")
            task = remote.options(num_gpus=1 if gpu else 0, num_cpus=1 if gpu else cpus)
            pending[task.remote(request)] = cell
            yield "started", cell
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(ref)
            measurement = _collect(ray, ref, cell)
            if measurement.row.status == "oom" and config.skip_larger:
                ooms.append(cell)
                for other_ref, other in list(pending.items()):
                    if at_least_as_large(other, cell):
                        ray.cancel(other_ref)
            # MFU would need each node's own ceiling: not on Ray.
            yield "finished", record(run, measurement, mfu=False)


def _collect(ray: Any, ref: Any, cell: Cell) -> Measurement:
    """A finished task's measurement; a crashed worker, a lost node or a cancelled task
    becomes a row with the reason."""
    from ray import exceptions as rex

    try:
        answer = ray.get(ref)
    except rex.TaskCancelledError:
        return _failure(cell, "skipped", "larger than an OOM cell")
    except rex.WorkerCrashedError:
        return _failure(cell, "error", "the Ray worker died while measuring the cell")
    except (rex.NodeDiedError, rex.ObjectLostError, rex.OwnerDiedError) as exc:
        return _failure(cell, "error", f"the Ray node was lost: {_first_line(exc)}")
    except rex.RayTaskError as exc:
        return _failure(
            cell, "error", f"the Ray task failed: {_first_line(exc.cause if exc.cause else exc)}"
        )
    except rex.RayError as exc:
        return _failure(cell, "error", f"Ray: {_first_line(exc)}")
    row = ResultRow.from_dict({**answer["row"], "host": answer.get("host", "")})
    return Measurement(row, answer["samples"])
