"""A Ray cluster that loses a node mid-run: a real local cluster of two nodes (Ray's own
cluster_utils), a real `seqbench run` against it, and the node removed under it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqbench.storage import load_run
from tests.helpers import SMALL_FLAGS as SMALL
from tests.helpers import wait_for_rows

pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_node_lost_mid_run_costs_only_the_cells_running_on_it(tmp_path, monkeypatch):
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    head_args = {"num_cpus": 2, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, connect=False, head_node_args=head_args)
    try:
        worker = cluster.add_node(num_cpus=4)
        cluster.wait_for_nodes()
        head = cluster.head_node.node_id
        path = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
        args = ["--arch", "rnn,gru,lstm,conv1d", "--seq-len", "48,96", "--mode", "infer"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "seqbench", "run", "--out", str(tmp_path), *args, *SMALL,
             "--min-time", "1", "--executor", "ray", "--ray-address", cluster.address],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": path, "RAY_AUTH_MODE": "disabled"},
        )  # fmt: skip
        wait_for_rows(tmp_path, 1, proc, limit=240)
        cluster.remove_node(worker)
        _, err = proc.communicate(timeout=600)
    finally:
        cluster.shutdown()
    run = load_run("latest", tmp_path)
    assert run.meta.state == "complete" and len(run.rows) == 8, err
    assert f"({worker.node_id[:8]}) left the cluster: the cells running on it are lost" in err
    lost = [r for r in run.rows if r.status != "ok"]
    assert len(lost) <= 1, err  # one CPU cell a node: at most one was running on it
    assert all(r.node == worker.node_id and r.threads == 4 for r in lost)
    # Every cell after the first two (one on each node) ran on the node that stayed.
    finished_later = [r for r in run.rows[2:] if r.status == "ok"]
    assert finished_later and all(r.node == head and r.threads == 2 for r in finished_later)
