"""The Ray executor: every cell a task in a fresh worker process, on any node of a cluster.

Timing isolation is the point, so the scheduling rules are strict: a CUDA cell asks for a
whole GPU (never a fraction: two cells on one GPU corrupt each other's timing); a CPU cell
asks for a node's CPUs divided by `cpu_cells_per_node` (default 1: CPU cells never share a
node), and sets torch's threads to what it was given; a worker serves one task and exits
(`max_calls=1`), so no state leaks from one cell to the next; a failed task is not retried
(a retry would hide a crash, and time a cell twice). A cell past its time limit (plus a
start-up grace) is cancelled, its worker killed, and recorded as a `timeout`. Each row
records the host and device it ran on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from seqbench.errors import SeqbenchError
from seqbench.execute.isolated import STARTUP_GRACE_S, import_path
from seqbench.request import CellRequest
from seqbench.schema import Measurement, ResultRow
from seqbench.timing import Stopwatch


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SeqbenchError("--executor ray needs Ray: pip install 'seqbench[ray]'") from None
    return ray


def _measure_task(request: dict[str, Any]) -> dict[str, Any]:
    """Runs in the Ray worker: the same code path as an isolated local cell."""
    import socket

    from seqbench.execute.worker import serve

    answer = serve(request)
    answer["host"] = socket.gethostname()
    return answer


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class RayExecutor:
    name = "ray"
    same_machine = False  # MFU would need each node's own ceiling

    def __init__(self, address: str | None = None, cpu_cells_per_node: int = 1) -> None:
        self._address = address
        self._cpu_cells_per_node = cpu_cells_per_node
        self._pending: dict[Any, tuple[CellRequest, Stopwatch]] = {}
        self._done: list[tuple[CellRequest, Measurement]] = []
        self._ray: Any = None
        self._remote: Any = None
        self._cpus = 1
        # Cells the cluster can run at once. No more are submitted, so that a cell's time
        # limit starts when it starts, not while it waits in Ray's queue.
        self.capacity = 1

    def __enter__(self) -> RayExecutor:
        ray = require_ray()
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": "ERROR",
            }
            if self._address:
                options["address"] = self._address
            else:
                # A local cluster's workers import what this process can (a user's own models).
                options["runtime_env"] = {"env_vars": {"PYTHONPATH": import_path()}}
            try:
                ray.init(**options)
            except Exception as exc:  # a wrong address, a cluster that is down
                where = self._address or "a local cluster"
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise SeqbenchError(f"cannot start Ray ({where}): {first}") from None
        self._ray = ray
        self._remote = ray.remote(max_calls=1, max_retries=0)(_measure_task)
        nodes = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU")]
        smallest = min((int(n["Resources"]["CPU"]) for n in nodes), default=1)
        self._cpus = max(1, smallest // self._cpu_cells_per_node)
        cpu_slots = sum(int(n["Resources"]["CPU"]) // self._cpus for n in nodes)
        gpus = sum(int(n["Resources"].get("GPU", 0)) for n in nodes)
        self.capacity = max(1, cpu_slots + gpus)
        return self

    def __exit__(self, *exc: object) -> None:
        for ref in self._pending:
            self._ray.cancel(ref, force=True)
        self._pending.clear()

    def describe(self) -> dict[str, Any]:
        """CPU cells run with this many threads, not the driver's."""
        alive = [n for n in self._ray.nodes() if n.get("Alive")]
        return {"threads": self._cpus, "ray_nodes": len(alive)}

    def submit(self, request: CellRequest) -> None:
        gpu = request.cell.device.startswith("cuda")
        if request.process.threads is None and not gpu:
            process = dataclasses.replace(request.process, threads=self._cpus)
            request = dataclasses.replace(request, process=process)
        task = self._remote.options(num_gpus=1 if gpu else 0, num_cpus=1 if gpu else self._cpus)
        self._pending[task.remote(request.to_dict())] = (request, Stopwatch())

    def next_finished(self) -> tuple[CellRequest, Measurement]:
        while not self._done:
            deadline = self._next_deadline()
            ready, _ = self._ray.wait(list(self._pending), num_returns=1, timeout=deadline)
            if ready:
                request, _ = self._pending.pop(ready[0])
                self._done.append((request, self._collect(ready[0], request)))
            self._expire()
        return self._done.pop(0)

    def cancel(self, which: Callable[[CellRequest], bool], reason: str) -> None:
        from seqbench.measure import failure

        for ref, (request, _) in list(self._pending.items()):
            if which(request):
                self._ray.cancel(ref, force=True)
                del self._pending[ref]
                self._done.append((request, failure(request.cell, "skipped", reason)))

    def _limit(self, request: CellRequest) -> float | None:
        return None if request.timeout is None else request.timeout + STARTUP_GRACE_S

    def _next_deadline(self) -> float | None:
        """Seconds until the first submitted cell runs out of time (None: no limit)."""
        left = [
            limit - watch.elapsed()
            for request, watch in self._pending.values()
            if (limit := self._limit(request)) is not None
        ]
        return max(0.0, min(left)) if left else None

    def _expire(self) -> None:
        """Cancel and kill the tasks past their limit: each becomes a timeout row."""
        from seqbench.measure import failure

        for ref, (request, watch) in list(self._pending.items()):
            limit = self._limit(request)
            if limit is not None and watch.elapsed() >= limit:
                self._ray.cancel(ref, force=True)
                del self._pending[ref]
                message = f"the cell's Ray task stopped answering; killed after {limit:g} s"
                self._done.append(
                    (request, failure(request.cell, "timeout", message, wall_s=watch.elapsed()))
                )

    def _collect(self, ref: Any, request: CellRequest) -> Measurement:
        """A finished task's measurement; a crashed worker, a lost node or a failed task
        becomes a row with the reason."""
        from ray import exceptions as rex

        from seqbench.measure import failure

        cell = request.cell
        try:
            answer = self._ray.get(ref)
        except rex.WorkerCrashedError:
            return failure(cell, "error", "the Ray worker died while measuring the cell")
        except (rex.NodeDiedError, rex.ObjectLostError, rex.OwnerDiedError) as exc:
            return failure(cell, "error", f"the Ray node was lost: {_first_line(exc)}")
        except rex.RayTaskError as exc:
            cause = exc.cause if exc.cause else exc
            return failure(cell, "error", f"the Ray task failed: {_first_line(cause)}")
        except rex.RayError as exc:
            return failure(cell, "error", f"Ray: {_first_line(exc)}")
        row = ResultRow.from_dict({**answer["row"], "host": answer.get("host", "")})
        return Measurement(row, answer["samples"])
