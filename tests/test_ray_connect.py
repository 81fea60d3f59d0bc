"""Finding Ray: an unreachable cluster fails in one line, in seconds, before any pretraining.

``ray.init`` itself retries a dead address for minutes while printing C++ warnings; the
launch probes the address first (:func:`rewardsweep.sweep.ray_cluster.ray_target`). Joining a
live cluster (``RAY_ADDRESS``, a ``ray start`` cluster) is tested in test_cluster.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from rewardsweep.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "search_spaces" / "smoke.yaml"


def test_dead_ray_address_fails_in_one_line_before_pretraining(tmp_path):
    raw = yaml.safe_load(SMOKE.read_text())
    raw.update(name="dead", storage=str(tmp_path / "runs"))
    spec = tmp_path / "dead.yaml"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    cache = tmp_path / "cache"
    env = dict(os.environ, RAY_ADDRESS="127.0.0.1:1", REWARDSWEEP_CACHE=str(cache))
    began = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "rewardsweep.cli", "launch", str(spec)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    took = time.monotonic() - began
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(err) == 1 and "RAY_ADDRESS 127.0.0.1:1" in err[0] and "cannot reach" in err[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert took < 60                                    # the target is well under 30 s
    assert not any(cache.glob("**/*.pth"))              # checkpoint: auto did not pretrain first


def test_a_port_that_is_not_ray_fails_within_seconds():
    from rewardsweep.sweep.ray_cluster import CONNECT_TIMEOUT_S, ray_target

    server = socket.create_server(("0.0.0.0", 0))
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    began = time.monotonic()
    try:
        with pytest.raises(UserError, match=r"--address 127\.0\.0\.1:\d+: cannot reach .*no gRPC answer"):
            ray_target(f"127.0.0.1:{port}")
    finally:
        server.close()
    assert time.monotonic() - began < CONNECT_TIMEOUT_S + 10


def test_local_means_a_new_ray_here(monkeypatch):
    from rewardsweep.sweep.ray_cluster import ray_target

    monkeypatch.setenv("RAY_ADDRESS", "local")
    assert not ray_target(None).joins
    assert not ray_target("local").joins


def test_address_local_beats_ray_address_and_nothing_is_joined_unasked(monkeypatch):
    """``--address local`` is a private Ray even when RAY_ADDRESS names a cluster (dead
    here: nothing is probed); without either, no cluster is joined."""
    from rewardsweep.sweep.ray_cluster import ray_target

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    began = time.monotonic()
    target = ray_target("local")
    assert not target.joins and target.given == "local" and target.origin == "--address"
    assert time.monotonic() - began < 1.0
    monkeypatch.delenv("RAY_ADDRESS")
    target = ray_target(None)
    assert not target.joins and target.given == "local" and target.origin == "local"
