"""Shared test set-up: a private cache (removed at the end), quiet W&B, one thread per process.

Tests never read the user's ~/.cache/rewardsweep: the synthetic data and start
checkpoints are generated in a session-wide temporary folder (a few seconds).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

import rewardsweep  # noqa: F401  (before torch: sets the OpenMP wait policy, as the CLI does)

_SESSION_CACHE = tempfile.mkdtemp(prefix="rewardsweep-test-cache-")
os.environ["REWARDSWEEP_CACHE"] = _SESSION_CACHE
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# a new Ray per test unless a test says otherwise: never join a `ray start` cluster that
# happens to run on this machine (a bare ray.init() would, and so does a plain launch)
os.environ.setdefault("RAY_ADDRESS", "local")
# One Ray authentication mode for the whole test process. Ray 2.60's ray.init() turns token
# authentication on for a new local cluster by setting RAY_AUTH_MODE=token in this process's
# environment (it stays after ray.shutdown), while an in-process client that first ran before
# that keeps "disabled": a later Ray started by a test (a ``Cluster``, a launch) then gets a GCS
# that wants a token from a client that sends none ("InvalidAuthToken", seen in random test
# orders only). Off for every Ray the suite starts, as RAY_AUTH_MODE allows; a user's own
# process starts one Ray and never meets this.
os.environ["RAY_AUTH_MODE"] = "disabled"

TEST_PRETRAIN_ITERS = 40


def pytest_sessionfinish(session, exitstatus):
    """The suite leaves no cache behind (data and checkpoints, ~12 MB per run)."""
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def cache_dir() -> str:
    return _SESSION_CACHE


@pytest.fixture(scope="session")
def tiny_start() -> dict:
    """A start checkpoint of the tiny preset, briefly pretrained once per test session."""
    from rewardsweep.runners.pretrain import ensure_start

    return ensure_start("tiny-synthetic", "auto", iters=TEST_PRETRAIN_ITERS)
