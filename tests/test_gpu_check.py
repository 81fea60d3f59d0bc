"""The GPU check cannot rot: its CPU mode (``--device cpu --small``) runs the same code end to end.

One subprocess (a fresh Ray, no GPU visible): steps, a trial through the real loaders, and a
launch of two trials at once. Costs ~60 s on a quiet 2-core machine.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_on_a_cpu(tmp_path, cache_dir):
    out = tmp_path / "gpu_check.json"
    work = tmp_path / "work"  # not there yet: the check makes it
    env = {**os.environ, "RAY_ADDRESS": "local", "REWARDSWEEP_CACHE": cache_dir, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--small",
                          "--out", str(out), "--work-dir", str(work)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert "GPU check on" in run.stdout and result["table"] in run.stdout  # one table, printed and saved
    for precision in ("fp32", "bf16"):
        steps = result["steps"][precision]
        assert steps["mle"]["wall_s"] > 0 and math.isfinite(steps["reinforce_k2"]["wall_s"] / steps["mle"]["wall_s"])
    timings = result["trials"]["fp32"]["timings"]
    assert timings["workers"] == 0 and 0 <= timings["data_wait_s"] <= timings["train_s"] and timings["eval_s"] > 0
    pair = result["pair"]
    assert pair["statuses"] == ["finished", "finished"] and pair["arms"] == ["mle", "reward"]
    assert pair["slots"] == 2 and pair["throughput_vs_one"] > 0
    assert work.is_dir() and not list(work.glob("tmp*")), "the check removes its data"
