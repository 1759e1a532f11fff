"""The Ray executor: every cell a task in a fresh worker process, on a node of a cluster.

Timing isolation is the point, so the scheduling rules are strict:
- a CPU cell is placed on a node chosen here (Ray's node affinity) and asks for that node's
  CPUs divided by `cpu_cells_per_node` (default 1: CPU cells never share a node), and sets
  torch's threads to what it was given, so nodes of different sizes are each used as they
  are (the `threads` column says what each cell had);
- a CUDA cell asks for a whole GPU (never a fraction: two cells on one GPU corrupt each
  other's timing);
- a worker serves one task and exits (`max_calls=1`), so no state leaks from one cell to the
  next; a failed task is not retried (a retry would hide a crash, and time a cell twice);
- no more cells are submitted than the cluster can run at once, so a cell's time limit
  starts when it starts; a cell past it (plus a start-up grace) is cancelled, its worker
  killed, and recorded as a `timeout`;
- the node list follows the cluster: a node that dies is dropped (the cells in flight on it
  become error rows; those placed on it that had not started go to the living nodes), a
  node that joins takes cells from then on, and each change is one notice for the user.

Without --ray-address (or RAY_ADDRESS) seqbench starts a cluster of its own on this machine
and stops it at the end, rather than joining whatever cluster happens to be running. While
Ray runs, its own messages go to stderr: stdout is for seqbench's results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from seqbench.core.errors import SeqbenchError
from seqbench.core.request import CellRequest
from seqbench.core.schema import Measurement
from seqbench.core.timing import Stopwatch
from seqbench.execute.isolated import STARTUP_GRACE_S
from seqbench.machine.launch import import_path

# How many times a cell is placed on a node that dies before it starts, before it is an error.
PLACEMENTS = 3


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SeqbenchError("--executor ray needs Ray: pip install 'seqbench[ray]'") from None
    return ray


def _measure_task(request: dict[str, Any]) -> dict[str, Any]:
    """Runs in the Ray worker: the same code path as an isolated local cell."""
    import socket

    import ray

    from seqbench.execute.worker import serve

    answer = serve(request)
    answer["host"] = socket.gethostname()
    answer["node"] = ray.get_runtime_context().get_node_id()
    return answer


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _cannot_start(where: str, exc: BaseException, logged: str = "") -> SeqbenchError:
    """One line for a cluster that cannot be joined. Ray reports a refused token only deep
    in the exception's chain and in its own log lines, so both are searched for it."""
    said, seen = [logged], exc
    while seen is not None and len(said) < 10:
        said.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    text = " ".join(said).lower()
    if any(w in text for w in ("invalidauthtoken", "authenticationerror", "unauthenticated")):
        return SeqbenchError(
            f"cannot join Ray at {where}: the cluster asks for an authentication token that "
            "this process does not have (set RAY_AUTH_TOKEN, or see `ray get-auth-token`)"
        )
    return SeqbenchError(f"cannot start Ray ({where}): {_first_line(exc)}")


@contextlib.contextmanager
def _stderr_captured() -> Iterator[io.StringIO]:
    """Ray's C++ side logs its connection retries on file descriptor 2, one line a second:
    kept out of the terminal while joining, and read back if joining fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    text = io.StringIO()
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text.write(sink.read().decode(errors="replace"))


@dataclass
class _Node:
    """A node of the cluster as CPU cells see it."""

    node_id: str
    host: str
    cpus: int  # CPUs (and torch threads) one cell on it gets
    slots: int  # CPU cells it may run at once
    busy: int = 0


class RayExecutor:
    name = "ray"
    same_machine = False  # MFU would need each node's own ceiling
    separate_processes = True  # every task in a fresh worker

    def __init__(self, address: str | None = None, cpu_cells_per_node: int = 1) -> None:
        self._address = address or os.environ.get("RAY_ADDRESS") or None
        self._cpu_cells_per_node = cpu_cells_per_node
        # Each task: its request as sent, its clock, its node, and the request as given
        # (before the node's threads were filled in), to place again if its node dies.
        self._pending: dict[Any, tuple[CellRequest, Stopwatch, _Node | None, CellRequest]] = {}
        self._placed: dict[tuple[str, int], int] = {}  # times each (cell, round) was placed
        self.notices: list[str] = []  # what the user should hear (the session says it)
        self._done: list[tuple[CellRequest, Measurement]] = []
        self._ray: Any = None
        self._remote: Any = None
        self._nodes: list[_Node] = []
        self._owned = False  # this process started the cluster (and stops it)
        self._stdout: Any = None
        self.capacity = 1

    def __enter__(self) -> RayExecutor:
        ray = require_ray()
        self._stdout, sys.stdout = sys.stdout, sys.stderr  # Ray's messages are not results
        try:
            if not ray.is_initialized():
                options: dict[str, Any] = {
                    "address": self._address or "local",
                    "include_dashboard": False,
                    "log_to_driver": False,
                    "logging_level": "ERROR",
                }
                if not self._address:
                    # The cluster's workers import what this process can (a user's models).
                    options["runtime_env"] = {"env_vars": {"PYTHONPATH": import_path()}}
                with _stderr_captured() as logged:
                    try:
                        ray.init(**options)
                    except Exception as exc:  # a wrong address, a cluster that is down
                        failed = exc
                    else:
                        failed = None
                if failed is not None:
                    where = self._address or "a local cluster"
                    raise _cannot_start(where, failed, logged.getvalue()) from None
                self._owned = True
            self._ray = ray
            self._remote = ray.remote(max_calls=1, max_retries=0)(_measure_task)
            alive = self._alive()
            self._nodes = self._cpu_nodes(alive)
            self._set_capacity(alive)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ray is not None:
            for ref in self._pending:
                self._ray.cancel(ref, force=True)
            self._pending.clear()
            if self._owned:
                self._ray.shutdown()
                self._owned = False
        if self._stdout is not None:
            sys.stdout, self._stdout = self._stdout, None

    def _alive(self) -> list[dict[str, Any]]:
        return [n for n in self._ray.nodes() if n.get("Alive")]

    def _set_capacity(self, alive: list[dict[str, Any]]) -> None:
        gpus = sum(int(n["Resources"].get("GPU", 0)) for n in alive)
        self.capacity = max(1, sum(n.slots for n in self._nodes) + gpus)

    def _refresh(self) -> None:
        """Follow the cluster: drop the CPU nodes that died, take on those that joined, and
        say so (a node's cells in flight are lost with it; nothing else is)."""
        alive = self._alive()
        ids = {n["NodeID"] for n in alive}
        known = {n.node_id for n in self._nodes}
        lost = [n for n in self._nodes if n.node_id not in ids]
        joined = [n for n in self._cpu_nodes(alive) if n.node_id not in known]
        if not lost and not joined:
            return
        self._nodes = [n for n in self._nodes if n.node_id in ids] + joined
        self._set_capacity(alive)
        left = f"{len(self._nodes)} node{'s' if len(self._nodes) != 1 else ''}"
        for n in lost:
            self.notices.append(
                f"Ray node {n.host} ({n.node_id[:8]}) left the cluster: the cells running on "
                f"it are lost, the others go to the {left} left"
            )
        for n in joined:
            self.notices.append(
                f"Ray node {n.host} ({n.node_id[:8]}) joined the cluster: it takes cells from "
                f"now on, {n.cpus} CPUs each"
            )

    def _cpu_nodes(self, alive: list[dict[str, Any]]) -> list[_Node]:
        nodes = []
        for node in alive:
            cpus = int(node["Resources"].get("CPU", 0))
            if cpus:
                share = max(1, cpus // self._cpu_cells_per_node)
                nodes.append(
                    _Node(node["NodeID"], node.get("NodeManagerHostname", ""), share,
                          min(self._cpu_cells_per_node, cpus))
                )  # fmt: skip
        return nodes

    def describe(self) -> dict[str, Any]:
        """What shaped the cells' numbers: the threads CPU cells get (one figure per node
        size), the nodes, and the cluster's address."""
        shares = sorted({n.cpus for n in self._nodes})
        return {
            "threads": shares[0] if len(shares) == 1 else shares,
            "ray_nodes": len(self._alive()),
            "ray_address": self._address or "local",
        }

    def submit(self, request: CellRequest) -> None:
        given = request
        key = (request.cell.cell_id, request.round)
        self._placed[key] = self._placed.get(key, 0) + 1
        if request.cell.device.startswith("cuda"):
            task, node = self._remote.options(num_gpus=1, num_cpus=1), None
        else:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            self._refresh()
            if not self._nodes:
                message = "no Ray node with CPUs is left in the cluster to run it"
                self._done.append((request, self._failed(request, None, "error", message)))
                return
            # The freest node (Ray's own accounting queues a cell if all are full).
            node = max(self._nodes, key=lambda n: n.slots - n.busy)
            node.busy += 1
            if request.process.threads is None:
                process = dataclasses.replace(request.process, threads=node.cpus)
                request = dataclasses.replace(request, process=process)
            strategy = NodeAffinitySchedulingStrategy(node_id=node.node_id, soft=False)
            task = self._remote.options(
                num_cpus=node.cpus, num_gpus=0, scheduling_strategy=strategy
            )
        self._pending[task.remote(request.to_dict())] = (request, Stopwatch(), node, given)

    def next_finished(self) -> tuple[CellRequest, Measurement]:
        while not self._done:
            deadline = self._next_deadline()
            ready, _ = self._ray.wait(list(self._pending), num_returns=1, timeout=deadline)
            if ready:
                request, _, node, given = self._release(ready[0])
                measurement = self._collect(ready[0], request, node)
                if measurement is None:  # placed on a node that died before it started
                    self._refresh()
                    key = (request.cell.cell_id, request.round)
                    if self._placed.get(key, 0) < PLACEMENTS:
                        self.submit(given)
                        continue
                    message = f"its Ray node was lost before it started, {PLACEMENTS} times"
                    measurement = self._failed(request, node, "error", message)
                self._done.append((request, measurement))
            self._expire()
        return self._done.pop(0)

    def cancel(self, which: Callable[[CellRequest], bool], reason: str) -> None:
        from seqbench.measure import failure

        for ref, (request, *_) in list(self._pending.items()):
            if which(request):
                self._ray.cancel(ref, force=True)
                self._release(ref)
                self._done.append((request, failure(request.cell, "skipped", reason)))

    def _release(self, ref: Any) -> tuple[CellRequest, Stopwatch, _Node | None, CellRequest]:
        request, watch, node, given = self._pending.pop(ref)
        if node is not None:
            node.busy -= 1
        return request, watch, node, given

    def _limit(self, request: CellRequest) -> float | None:
        return None if request.timeout is None else request.timeout + STARTUP_GRACE_S

    def _next_deadline(self) -> float | None:
        """Seconds until the first submitted cell runs out of time (None: no limit)."""
        left = [
            limit - watch.elapsed()
            for request, watch, *_ in self._pending.values()
            if (limit := self._limit(request)) is not None
        ]
        return max(0.0, min(left)) if left else None

    def _expire(self) -> None:
        """Cancel and kill the tasks past their limit: each becomes a timeout row."""
        for ref, (request, watch, *_) in list(self._pending.items()):
            limit = self._limit(request)
            if limit is not None and watch.elapsed() >= limit:
                self._ray.cancel(ref, force=True)
                _, _, node, _ = self._release(ref)
                message = f"the cell's Ray task stopped answering; killed after {limit:g} s"
                self._done.append((request, self._failed(request, node, "timeout", message, watch)))

    @staticmethod
    def _failed(
        request: CellRequest, node: _Node | None, status: str, message: str, watch=None
    ) -> Measurement:
        """A failure row that says where it happened: the node the cell was placed on, and
        the threads it was given there."""
        from seqbench.measure import failure

        wall_s = None if watch is None else watch.elapsed()
        where: dict[str, Any] = {"threads": request.process.threads}
        if node is not None:
            where |= {"host": node.host, "node": node.node_id}
        return failure(request.cell, status, message, wall_s=wall_s, **where)

    def _collect(self, ref: Any, request: CellRequest, node: _Node | None) -> Measurement | None:
        """A finished task's measurement; a crashed worker, a lost node or a failed task
        becomes a row with the reason. None for a task that never started because the node
        it was placed on is gone (to be placed again)."""
        from ray import exceptions as rex

        try:
            answer = self._ray.get(ref)
        except rex.TaskUnschedulableError:
            if node is not None and node.node_id not in {n["NodeID"] for n in self._alive()}:
                return None
            raise
        except rex.WorkerCrashedError:
            message = "the Ray worker died while measuring the cell"
            return self._failed(request, node, "error", message)
        except (rex.NodeDiedError, rex.ObjectLostError, rex.OwnerDiedError) as exc:
            self._refresh()
            message = f"the Ray node was lost: {_first_line(exc)}"
            return self._failed(request, node, "error", message)
        except rex.RayTaskError as exc:
            cause = exc.cause if exc.cause else exc
            return self._failed(
                request, node, "error", f"the Ray task failed: {_first_line(cause)}"
            )
        except rex.RayError as exc:
            return self._failed(request, node, "error", f"Ray: {_first_line(exc)}")
        # The row names the node and its host, whatever the cell's own row said.
        where = {"host": answer.get("host", ""), "node": answer.get("node", "")}
        return Measurement.from_dict({**answer, "row": {**answer["row"], **where}})
