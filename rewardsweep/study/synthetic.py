"""Made-up trial records with the real schema, for tests and benchmarks of the report.

A record from :func:`synthetic_record` passes :func:`.records.record_problem` and looks
like one a trial writes (curve, per-class IoU, diagnostics summary), with the mIoU
numbers the caller chooses. Uses numpy (imported when called): nothing on a trial's or
the sweep's path imports this module.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from rewardsweep.study.records import SCHEMA_VERSION, TrialRecord
from rewardsweep.study import arms as arm_kinds

SYNTHETIC_CLASSES = ["background", "road", "car", "person", "sky"]
SYNTHETIC_START = {"checkpoint": "/cache/ckpt-tiny.pth", "checkpoint_hash": "a1b2c3d4e5f60718",
                   "dataset": "synthetic-v1@0123abcd"}


def synthetic_config_id(params: dict[str, Any], arm: str = "reward") -> str:
    """A stable 8-hex id for made-up parameters (not the sweep's config hash)."""
    return hashlib.sha1(json.dumps([arm, params], sort_keys=True).encode()).hexdigest()[:8]


def synthetic_record(*, study: str, config_id: str, arm: str, seed: int, control_id: str | None,
                     params: dict, miou_start: float, miou_final: float | None,
                     status: str = "finished", class_names=SYNTHETIC_CLASSES, iou_start=None,
                     iou_final=None, steps: int = 200, eval_every: int = 50, diag_every: int = 10,
                     start: dict | None = None, rng=None,
                     finished_at: str = "2025-01-01T00:00:00") -> TrialRecord:
    """One trial record; ``rng`` (a ``numpy.random.Generator``, default seeded by ``seed``)
    draws the per-class IoU, the curve's noise and the diagnostics."""
    import numpy as np

    rng = rng if rng is not None else np.random.default_rng(seed)
    n_cls = len(class_names)
    if iou_start is None:
        iou_start = list(np.clip(miou_start + rng.normal(0, 0.05, n_cls), 0, 1))
    if iou_final is None and miou_final is not None:
        iou_final = list(np.clip(np.asarray(iou_start) + (miou_final - miou_start)
                                 + rng.normal(0, 0.01, n_cls), 0, 1))
    eval_steps = list(range(0, steps + 1, eval_every))
    if miou_final is None:
        n_done = max(1, len(eval_steps) // 2)
        eval_steps = eval_steps[:n_done]
        target = miou_start
    else:
        target = miou_final
    frac = np.asarray(eval_steps, float) / steps
    miou = miou_start + (target - miou_start) * frac + rng.normal(0, 0.001, len(frac)) * (frac > 0) * (frac < 1)
    curve = [{"step": int(s), "miou": float(m)} for s, m in zip(eval_steps, miou)]
    diag = [{"step": s, "loss": float(rng.random()), "reward_mean": float(rng.random()),
             "reward_std": 0.1, "advantage_mean": 0.0, "advantage_std": 0.1,
             "grad_norm": float(rng.random()), "lr": 1e-4 * (1 - s / steps) ** 0.9}
            for s in range(0, steps, diag_every)]
    estimator = str(params.get("estimator", "reinforce")) if arm_kinds.trains(arm) == "reward" else arm   # as records.trial_record
    return {
        "schema": SCHEMA_VERSION, "study": study, "config_id": config_id, "arm": arm,
        "control_id": control_id, "seed": int(seed), "status": status,
        "error": None if status == "finished" else ("RuntimeError: boom" if status == "failed"
                                                    else "loss is NaN at step 120"),
        "params": dict(params), "config": {"study": study, "seed": int(seed), **params},
        "estimator": estimator, "start": dict(start or SYNTHETIC_START), "class_names": list(class_names),
        "miou_start": float(miou_start),
        "miou_final": None if miou_final is None else float(miou_final),
        "delta_miou": None if miou_final is None else float(miou_final - miou_start),
        "miou_best": None if miou_final is None else float(max(c["miou"] for c in curve)),
        "per_class_iou_start": [float(v) for v in iou_start],
        "per_class_iou_final": None if iou_final is None else [float(v) for v in iou_final],
        "curve": curve, "diagnostics_file": None,
        "diagnostics_summary": {k: v for k, v in diag[-1].items() if k != "step"} if diag else {},
        "timings": {"setup_s": 1.0, "train_s": 10.0, "eval_s": 2.0, "total_s": 13.0},
        "versions": {"rewardsweep": "0.1.0"}, "host": "node0",
        "started_at": "2025-01-01T00:00:00", "finished_at": finished_at,
    }
