"""`rewardsweep launch --address`: a 2-node Ray cluster on this machine runs trials on both nodes.

Ray's own ``ray.cluster_utils.Cluster`` starts a head node and a worker node (each with
1 CPU, their own raylet) on loopback; the CLI joins it with ``--address``, exactly as it
would join a real cluster. Every record carries the Ray node id of the worker that ran it
(``record["config"]["runtime"]["node_id"]``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rewardsweep.study import layout, records

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "search_spaces" / "smoke.yaml"


@pytest.fixture
def two_node_cluster():
    import ray
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    if ray.is_initialized():
        ray.shutdown()
    cluster.shutdown()


def test_launch_on_two_node_cluster(two_node_cluster, tmp_path, capsys):
    import ray

    from rewardsweep import cli

    raw = yaml.safe_load(SMOKE.read_text())
    raw.update(name="cluster", storage=str(tmp_path / "runs"))
    spec = tmp_path / "cluster.yaml"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))

    assert cli.main(["launch", str(spec), "--address", two_node_cluster.address]) == 0
    assert not ray.is_initialized()                     # the launch disconnected; the cluster lives on

    recs = [records.read_record(p) for p in layout.iter_record_paths(tmp_path / "runs" / "cluster")]
    assert len(recs) == 6 and all(r["status"] == "finished" for r in recs)
    node_ids = {r["config"]["runtime"]["node_id"] for r in recs}
    cluster_nodes = {n.node_id for n in two_node_cluster.list_all_nodes()}
    assert node_ids == cluster_nodes and len(node_ids) == 2
    assert "cluster: 6 finished" in capsys.readouterr().err


def _small_spec(tmp_path: Path, name: str) -> Path:
    raw = yaml.safe_load(SMOKE.read_text())
    raw.update(name=name, storage=str(tmp_path / "runs"), seeds=1, grid={"baseline.kind": ["greedy"]})
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    return spec


@pytest.fixture
def private_cluster(monkeypatch):
    """A one-node cluster whose ``ray start`` record (``<RAY_TMPDIR>/ray/ray_current_cluster``,
    written by ``Cluster`` as ``ray start`` writes it) no other Ray on this machine can
    overwrite: a short private RAY_TMPDIR (Ray's socket paths must stay short)."""
    import shutil
    import tempfile

    import ray
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", temp)
    # Ray's token authentication is off for every Ray of the suite (conftest: RAY_AUTH_MODE)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    cluster.wait_for_nodes()
    yield cluster
    if ray.is_initialized():
        ray.shutdown()
    cluster.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def test_launch_joins_a_cluster_only_when_told(private_cluster, tmp_path, capsys, monkeypatch):
    """RAY_ADDRESS and ``--address auto`` join the cluster (without passing ``num_cpus``,
    which Ray refuses when joining), and the launch says which and why; a plain launch
    leaves a `ray start` cluster on this node alone: it starts a private Ray and says how
    to join that cluster (a shared node's cluster may be someone else's)."""
    import ray

    from rewardsweep import cli

    cluster_nodes = {n.node_id for n in private_cluster.list_all_nodes()}
    monkeypatch.setenv("RAY_ADDRESS", private_cluster.address)
    assert cli.main(["launch", str(_small_spec(tmp_path, "via-env"))]) == 0
    assert f"joined the Ray cluster at {private_cluster.address} (from RAY_ADDRESS)" in capsys.readouterr().err

    monkeypatch.delenv("RAY_ADDRESS")
    assert cli.main(["launch", str(_small_spec(tmp_path, "plain"))]) == 0
    err = capsys.readouterr().err
    assert "started a private Ray on this machine" in err and "joined" not in err
    assert f"a `ray start` cluster runs on this node ({private_cluster.address}) but a plain launch never " \
           f"joins one; --address auto does" in err

    assert cli.main(["launch", str(_small_spec(tmp_path, "via-auto")), "--address", "auto"]) == 0
    assert f"joined the Ray cluster at {private_cluster.address} (from --address auto)" in capsys.readouterr().err
    assert not ray.is_initialized()

    for study, joined in (("via-env", True), ("plain", False), ("via-auto", True)):
        recs = [records.read_record(p) for p in layout.iter_record_paths(tmp_path / "runs" / study)]
        assert len(recs) == 2 and all(r["status"] == "finished" for r in recs)
        nodes = {r["config"]["runtime"]["node_id"] for r in recs}
        assert (nodes <= cluster_nodes) if joined else not (nodes & cluster_nodes), study
