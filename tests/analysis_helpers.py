"""Simulated study folders for report tests (records from ``rewardsweep.study.synthetic``).

A simulated study: a start checkpoint with a known val mIoU; a control arm (cross-entropy)
whose delta mIoU per seed is ``control_mean + seed effect + noise``; reward configurations
whose delta is the control's plus a known true improvement plus noise. The seed effect is
shared by all arms of one seed (common random numbers), which is why pairing by seed helps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewardsweep.study.layout import record_path, val_counts_path
from rewardsweep.study.records import write_record, write_val_counts
from rewardsweep.study.synthetic import SYNTHETIC_CLASSES, synthetic_config_id, synthetic_record


def write_study(folder, *, study: str | None = None, effects=(0.01, 0.0, -0.01), seeds: int = 6,
                sd: float = 0.004, seed_sd: float = 0.005, control: bool = True,
                control_mean: float = 0.002, miou_start: float = 0.61,
                bad: dict | None = None, start: dict | None = None, rng_seed: int = 0,
                steps: int = 200, eval_every: int = 50, diag_every: int = 10,
                class_names=SYNTHETIC_CLASSES, val_images: int = 0, image_effects: dict | None = None) -> dict:
    """Write a study folder; return the truth and the generated deltas.

    ``effects``: true mean improvement over the control of each reward configuration
    (records' unit). ``bad``: ``{(config_index or "control", seed): "failed"|"diverged"}``.
    ``val_images``: also write each finished trial's per-image val counts (``val_counts/``)
    over that many images, the final mIoU then being the one the counts give;
    ``image_effects``: ``{config_index: {image: extra IoU}}``, a gain only on those images.
    ``study``: the records' study (default: the folder's name, as launch names it).
    Returns ``{"control_id", "config_ids", "delta": {(cid, arm, seed): delta}, "params"}``.
    """
    rng = np.random.default_rng(rng_seed)
    folder = Path(folder)
    study = study or folder.name
    bad = bad or {}
    seed_effect = rng.normal(0, seed_sd, seeds)
    ctrl_params: dict = {}
    ctrl_id = synthetic_config_id(ctrl_params, "mle") if control else None
    out = {"control_id": ctrl_id, "config_ids": [], "delta": {}, "params": {}}
    arms = []
    if control:
        arms.append(("control", ctrl_id, "mle", ctrl_params, 0.0))
    for i, eff in enumerate(effects):
        params = {"baseline.kind": ["none", "greedy", "sample_loo", "ema", "batch_loo"][i % 5],
                  "baseline.coef": [0.1, 1.0][(i // 5) % 2], "lr.start": 1e-4 * (1 + i // 10)}
        cid = synthetic_config_id(params)
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
            rec = synthetic_record(study=study, config_id=cid, arm=arm, seed=s, control_id=ctrl_id,
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
    rec = synthetic_record(study="toy", config_id=cid, arm=arm, seed=seed, control_id="ctrl",
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
