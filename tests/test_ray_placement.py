"""Where the Ray executor puts cells, on a fake cluster: nodes of different sizes, the
cluster it joins, and what it records. (tests/test_ray.py runs a real local cluster.)"""

from __future__ import annotations

import copy

import pytest

pytest.importorskip("ray")

from seqbench.core.request import CellRequest  # noqa: E402
from seqbench.core.schema import ResultRow  # noqa: E402
from seqbench.execute import ray as ray_executor  # noqa: E402
from tests.helpers import FAST, make_cell  # noqa: E402


class FakeRay:
    """Just enough of `ray` for the executor: two nodes, tasks that finish when waited on."""

    def __init__(self, nodes):
        self._nodes, self.initialized, self.init_options = nodes, False, None
        self.submitted, self.cancelled, self.shut_down = [], [], False

    def is_initialized(self):
        return self.initialized

    def init(self, **options):
        self.initialized, self.init_options = True, options

    def shutdown(self):
        self.shut_down = True

    def nodes(self):
        return self._nodes

    def remote(self, **_):
        fake = self

        class Remote:
            def options(self, **options):
                class Task:
                    def remote(self, request):
                        ref = object()
                        fake.submitted.append((ref, options, request))
                        return ref

                return Task()

        return lambda fn: Remote()

    def wait(self, refs, num_returns=1, timeout=None):
        return [refs[0]], refs[1:]

    def get(self, ref):
        from ray import exceptions as rex

        _, options, request = next(s for s in self.submitted if s[0] is ref)
        placed = options.get("scheduling_strategy")
        node = placed.node_id if placed is not None else "g" * 56
        if any(n["NodeID"] == node and not n["Alive"] for n in self._nodes):
            raise rex.TaskUnschedulableError(
                "The node specified via NodeAffinitySchedulingStrategy doesn't exist any more "
                "or is infeasible, and soft=False was specified."
            )
        row = ResultRow.for_cell(make_cell(**request["cell"]), median_s=1e-3)
        return {"row": row.to_dict(), "samples": [1e-3], "host": "worker-host", "node": node}

    def cancel(self, ref, force=False):
        self.cancelled.append(ref)


NODES = [
    {"NodeID": "a" * 56, "Alive": True, "Resources": {"CPU": 2.0}, "NodeManagerHostname": "small"},
    {"NodeID": "b" * 56, "Alive": True, "Resources": {"CPU": 4.0}, "NodeManagerHostname": "big"},
    {"NodeID": "c" * 56, "Alive": False, "Resources": {"CPU": 64.0}, "NodeManagerHostname": "gone"},
]


@pytest.fixture
def fake(monkeypatch):
    cluster = FakeRay(copy.deepcopy(NODES))
    monkeypatch.setattr(ray_executor, "require_ray", lambda: cluster)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return cluster


def request(seq_len=16):
    return CellRequest(make_cell(seq_len=seq_len), FAST)


def test_each_node_runs_one_cpu_cell_at_a_time_with_all_its_cpus(fake):
    with ray_executor.RayExecutor(cpu_cells_per_node=1) as executor:
        assert executor.capacity == 2  # the dead node counts for nothing
        executor.submit(request(16))
        executor.submit(request(32))
        (_, first, sent_first), (_, second, sent_second) = fake.submitted
        assert (first["num_cpus"], second["num_cpus"]) == (2, 4)
        assert {first["scheduling_strategy"].node_id, second["scheduling_strategy"].node_id} == {
            "a" * 56, "b" * 56,
        }  # fmt: skip
        assert first["scheduling_strategy"].soft is False
        assert (sent_first["process"]["threads"], sent_second["process"]["threads"]) == (2, 4)
        assert executor.describe() == {"threads": [2, 4], "ray_nodes": 2, "ray_address": "local"}
        _, measurement = executor.next_finished()
        assert measurement.row.host == "worker-host"
    assert fake.init_options["address"] == "local"  # its own cluster, not one that is running
    assert fake.shut_down  # and stopped at the end


def test_two_cells_per_node_split_its_cpus(fake):
    with ray_executor.RayExecutor(cpu_cells_per_node=2) as executor:
        assert executor.capacity == 4
        for length in (16, 32, 48, 64):
            executor.submit(request(length))
        per_node = {}
        for _, options, _ in fake.submitted:
            per_node.setdefault(options["scheduling_strategy"].node_id[0], []).append(
                options["num_cpus"]
            )
        assert per_node == {"a": [1, 1], "b": [2, 2]}


def test_ray_address_is_joined_and_recorded(fake, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    with ray_executor.RayExecutor() as executor:
        assert executor.describe()["ray_address"] == "ray://head:10001"
    assert fake.init_options["address"] == "ray://head:10001"
    assert "runtime_env" not in fake.init_options  # a remote cluster has its own environment


def test_a_cluster_already_joined_is_used_and_left_running(fake):
    fake.initialized = True
    with ray_executor.RayExecutor():
        pass
    assert fake.init_options is None and not fake.shut_down


def test_a_failure_row_names_the_node_the_cell_was_on(fake):
    from ray import exceptions as rex

    def lost(ref):
        raise rex.NodeDiedError("node died")

    fake.get = lost
    with ray_executor.RayExecutor() as executor:
        executor.submit(request(16))
        _, measurement = executor.next_finished()
    assert measurement.row.status == "error" and measurement.row.host == "small"
    assert measurement.row.message.startswith("the Ray node was lost")
    # Two nodes may share a host: the row names the node, and the threads it was given.
    assert (measurement.row.node, measurement.row.threads) == ("a" * 56, 2)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ConnectionError("Unauthenticated: missing auth token"), "asks for an authentication token"),
        (ConnectionError("Failed to connect to GCS at 10.0.0.1:6379"), r"cannot start Ray \(10.0.0.1:6379\): Failed to connect"),
    ],
)  # fmt: skip
def test_a_cluster_that_cannot_be_joined_is_one_line(fake, error, message):
    from seqbench.core.errors import SeqbenchError

    def refuse(**options):
        raise error

    fake.init = refuse
    with pytest.raises(SeqbenchError, match=message), ray_executor.RayExecutor("10.0.0.1:6379"):
        pass


def test_a_node_that_dies_costs_its_running_cells_and_nothing_more(fake):
    # The big node dies with a cell placed on it that had not started: that cell goes to the
    # node left (with its CPUs as threads), the node is dropped and a notice says so; a node
    # that joins later takes cells.
    with ray_executor.RayExecutor(cpu_cells_per_node=1) as executor:
        executor.submit(request(16))  # on "a" (2 CPUs)
        executor.submit(request(32))  # on "b" (4 CPUs)
        fake._nodes[1]["Alive"] = False
        done = [executor.next_finished()[1].row for _ in range(2)]
        assert [(r.status, r.seq_len, r.node[0], r.threads) for r in done] == [
            ("ok", 16, "a", None),  # the fake's row: threads as the worker would report them
            ("ok", 32, "a", None),
        ]
        assert [o["scheduling_strategy"].node_id[0] for _, o, _ in fake.submitted] == [
            "a",
            "b",
            "a",
        ]
        assert fake.submitted[2][2]["process"]["threads"] == 2  # the living node's CPUs
        assert executor.capacity == 1 and executor.describe()["ray_nodes"] == 1
        assert executor.notices == [
            f"Ray node big ({'b' * 8}) left the cluster: the cells running on it are lost, the "
            "others go to the 1 node left"
        ]
        executor.notices.clear()
        fake._nodes.append(
            {
                "NodeID": "d" * 56,
                "Alive": True,
                "Resources": {"CPU": 8.0},
                "NodeManagerHostname": "new",
            }
        )
        executor.submit(request(48))
        executor.submit(request(64))
        assert [o["scheduling_strategy"].node_id[0] for _, o, _ in fake.submitted[3:]] == ["a", "d"]
        assert executor.notices == [
            f"Ray node new ({'d' * 8}) joined the cluster: it takes cells from now on, 8 CPUs each"
        ]


def test_a_cell_whose_node_is_gone_and_no_other_is_left_is_an_error_row(fake):
    with ray_executor.RayExecutor(cpu_cells_per_node=1) as executor:
        for node in fake._nodes:
            node["Alive"] = False
        executor.submit(request(16))
        _, measurement = executor.next_finished()
    assert measurement.row.status == "error"
    assert measurement.row.message == "no Ray node with CPUs is left in the cluster to run it"
