"""Generate realistic trial records (the ``rewardsweep.records`` schema) for report tests.

A simulated study: a start checkpoint with a known val mIoU; a control arm (cross-entropy)
whose delta mIoU per seed is ``control_mean + seed effect + noise``; reward configurations
whose delta is the control's plus a known true improvement plus noise. The seed effect is
shared by all arms of one seed (common random numbers), which is why pairing by seed helps.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from rewardsweep.records import SCHEMA_VERSION, record_path, val_counts_path, write_record, write_val_counts

CLASS_NAMES = ["background", "road", "car", "person", "sky"]
START = {"checkpoint": "/cache/ckpt-tiny.pth", "checkpoint_hash": "a1b2c3d4e5f60718",
         "dataset": "synthetic-v1@0123abcd"}


def config_id(params: dict, arm: str = "reward") -> str:
    return hashlib.sha1(json.dumps([arm, params], sort_keys=True).encode()).hexdigest()[:8]


def make_record(*, study: str, config_id: str, arm: str, seed: int, control_id: str | None,
                params: dict, miou_start: float, miou_final: float | None,
                status: str = "finished", class_names=CLASS_NAMES, iou_start=None,
                iou_final=None, steps: int = 200, eval_every: int = 50, diag_every: int = 10,
                start: dict | None = None, rng=None, finished_at: str = "2025-01-01T00:00:00") -> dict:
    """One trial record, valid under ``rewardsweep.records`` (curve, per class, diagnostics summary)."""
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
    estimator = "mle" if arm == "mle" else str(params.get("estimator", "reinforce"))
    return {
        "schema": SCHEMA_VERSION, "study": study, "config_id": config_id, "arm": arm,
        "control_id": control_id, "seed": int(seed), "status": status,
        "error": None if status == "finished" else ("RuntimeError: boom" if status == "failed"
                                                    else "loss is NaN at step 120"),
        "params": dict(params), "config": {"study": study, "seed": int(seed), **params},
        "estimator": estimator, "start": dict(start or START), "class_names": list(class_names),
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


def write_study(folder, *, study: str = "toy", effects=(0.01, 0.0, -0.01), seeds: int = 6,
                sd: float = 0.004, seed_sd: float = 0.005, control: bool = True,
                control_mean: float = 0.002, miou_start: float = 0.61,
                bad: dict | None = None, start: dict | None = None, rng_seed: int = 0,
                steps: int = 200, eval_every: int = 50, diag_every: int = 10,
                class_names=CLASS_NAMES, val_images: int = 0, image_effects: dict | None = None) -> dict:
    """Write a study folder; return the truth and the generated deltas.

    ``effects``: true mean improvement over the control of each reward configuration
    (records' unit). ``bad``: ``{(config_index or "control", seed): "failed"|"diverged"}``.
    ``val_images``: also write each finished trial's per-image val counts (``val_counts/``)
    over that many images, the final mIoU then being the one the counts give;
    ``image_effects``: ``{config_index: {image: extra IoU}}``, a gain only on those images.
    Returns ``{"control_id", "config_ids", "delta": {(cid, arm, seed): delta}, "params"}``.
    """
    rng = np.random.default_rng(rng_seed)
    folder = Path(folder)
    bad = bad or {}
    seed_effect = rng.normal(0, seed_sd, seeds)
    ctrl_params: dict = {}
    ctrl_id = config_id(ctrl_params, "mle") if control else None
    out = {"control_id": ctrl_id, "config_ids": [], "delta": {}, "params": {}}
    arms = []
    if control:
        arms.append(("control", ctrl_id, "mle", ctrl_params, 0.0))
    for i, eff in enumerate(effects):
        params = {"baseline.kind": ["none", "greedy", "sample_loo", "ema", "batch_loo"][i % 5],
                  "baseline.coef": [0.1, 1.0][(i // 5) % 2], "lr.start": 1e-4 * (1 + i // 10)}
        cid = config_id(params)
        out["config_ids"].append(cid)
        out["params"][cid] = params
        arms.append((i, cid, "reward", params, eff))
    # (drawn only when asked: the other studies' random numbers stay as they were)
    union = rng.poisson(300, (val_images, len(class_names))).astype(float) + 1 if val_images else None
    for key, cid, arm, params, eff in arms:
        extra = np.zeros(union.shape) if val_images else None
        for img, gain in (image_effects or {}).get(key, {}).items():
            extra[img] += gain
        for s in range(seeds):
            delta = control_mean + seed_effect[s] + eff + rng.normal(0, sd)
            status = bad.get((key, s), "finished")
            final = None if status == "failed" else miou_start + delta
            counts = None
            if val_images and status == "finished":
                ratio = np.clip(final + extra + rng.normal(0, 0.02, union.shape), 0, 1)
                counts = np.round(ratio * union), union
                final = float(np.mean(counts[0].sum(0) / union.sum(0)))
                delta = final - miou_start
            if status == "finished":
                out["delta"][(cid, arm, s)] = delta
            rec = make_record(study=study, config_id=cid, arm=arm, seed=s, control_id=ctrl_id,
                              params=params, miou_start=miou_start, miou_final=final,
                              status=status, rng=rng, start=start, steps=steps,
                              eval_every=eval_every, diag_every=diag_every,
                              class_names=class_names)
            if counts is not None:
                path = val_counts_path(folder, cid, arm, s)
                write_val_counts(path, class_names, *counts, final)
                rec["val_counts_file"] = str(path.relative_to(folder))
            write_record(record_path(folder, cid, arm, s), rec)
    return out


# --------------------------------------------------------------------------- a mocked W&B API

class FakeRun:
    def __init__(self, rid, config, summary, history=(), job_type="reward"):
        self.id, self.config, self.summary, self.job_type = rid, config, summary, job_type
        self._history = list(history)

    def history(self, keys=None, pandas=True):
        assert pandas is False and keys == ["val/miou"]
        return self._history


class FakeApi:
    def __init__(self, runs):
        self._runs, self.calls = runs, []

    def runs(self, path, filters=None):
        self.calls.append((path, filters))
        return iter(self._runs)


def wandb_run(rid, seed, arm, cid, final, status="finished"):
    """A run as rewardsweep.sweep.wandb_log logs a trial: trial config + params + status in
    config, mIoU numbers and last per-class IoU in summary, val/miou in history."""
    rec = make_record(study="toy", config_id=cid, arm=arm, seed=seed, control_id="ctrl",
                      params={"baseline.kind": "greedy"} if arm == "reward" else {},
                      miou_start=0.6, miou_final=final, status=status)
    config = {"study": "toy", "config_id": cid, "control_id": "ctrl", "arm": arm, "seed": seed,
              "estimator": "reinforce", "steps": 200,
              "start": {**rec["start"], "miou": 0.6, "per_class_iou": rec["per_class_iou_start"],
                        "class_names": rec["class_names"]},
              "params": rec["params"], "status": status}
    summary = {k: rec[k] for k in ("miou_start", "miou_final", "delta_miou", "miou_best")}
    summary.update({"status": status, "error": rec["error"]})
    summary.update({f"val/iou/{c}": v for c, v in zip(rec["class_names"], rec["per_class_iou_final"] or [])})
    history = [{"_step": c["step"], "val/miou": c["miou"]} for c in rec["curve"]]
    return FakeRun(rid, config, summary, history, job_type=arm), rec
