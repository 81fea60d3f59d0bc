"""A stand-in trainer for sequential-study tests and the busy-slot benchmark: it writes the
record a real trial would (the study contract), with a final mIoU whose paired difference
from the control has the mean and spread the test asks for, so the scheduler's decisions
can be checked against known effects. Ray, Tune, the scheduler and the records are real.

The test's ``config_hook`` puts ``{"simulate": {"effect": points, "sd": points,
"seconds": s}}`` into the trial config's ``debug`` (the config's test-hook field).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np

from rewardsweep.study import layout, records
from rewardsweep.study.synthetic import synthetic_record

START_MIOU = 0.60


def fake_start(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """What ``ensure_start`` returns, without pretraining anything."""
    from rewardsweep.study.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_START

    n = len(SYNTHETIC_CLASSES)
    return {**SYNTHETIC_START, "miou": START_MIOU, "per_class_iou": [START_MIOU] * n,
            "class_names": list(SYNTHETIC_CLASSES)}


def _noise(*key: Any) -> float:
    seed = int(hashlib.sha256(repr(key).encode()).hexdigest()[:12], 16)
    return float(np.random.default_rng(seed).normal())


def simulated_trial(config: dict[str, Any], on_event=None) -> dict[str, Any]:
    sim = (config.get("debug") or {}).get("simulate") or {}
    time.sleep(float(sim.get("seconds", 0.0)))
    seed, arm = int(config["seed"]), config["arm"]
    shared = _noise("seed", seed) * 0.01                     # what the seed does to every arm
    final = START_MIOU + shared
    if arm == "reward":
        final += (float(sim.get("effect", 0.0)) + float(sim.get("sd", 1.0)) * _noise(config["config_id"], seed)) / 100
    record = synthetic_record(study=config["study"], config_id=config["config_id"], arm=arm, seed=seed,
                              control_id=config.get("control_id"), params=dict(config.get("params") or {}),
                              miou_start=START_MIOU, miou_final=final, steps=int(config["steps"]),
                              eval_every=int(config["eval_every"]), start=config.get("start"))
    record["timings"] = {**record["timings"], "total_s": float(sim.get("seconds", 0.0))}
    records.write_record(layout.record_path(config["study_dir"], config["config_id"], arm, seed), record)
    if on_event is not None:
        on_event({"kind": "eval", "step": int(config["steps"]), "miou": final, "per_class_iou": []})
    return record
