"""Orchestration overhead of `rewardsweep launch`: Ray Tune + W&B versus the trials' own work.

    python benchmarks/bench_orchestration.py                       # baseline.yaml, W&B offline and disabled
    python benchmarks/bench_orchestration.py --quick               # 6-trial copy, same trial shape
    python benchmarks/bench_orchestration.py --modes offline       # W&B offline only

Each mode launches the whole study into a fresh study folder (so every trial runs), in
this process, exactly as `rewardsweep launch SPEC --storage TMP --wandb MODE` does. The
start checkpoint is resolved (pretrained or taken from the cache) once beforehand and
not counted: it is shared work, done once per study.

The figure of merit (the issue's target is <= 1.10 with W&B on):

    ratio = wall time of the Ray experiment x concurrent slots / sum over trials of (train_s + eval_s)

with train_s and eval_s from the trial records (the time the trial spends in training
iterations and in evaluation). Everything else is overhead and is broken down per trial:

- ``in_trial``: time inside ``run_trial`` that is neither training nor evaluation (building
  the MMEngine runner and model, loading the checkpoint, data loading between iterations,
  writing the record) -- the trial's own fixed cost;
- ``wandb``: starting and finishing the trial's W&B run (in the worker; per-step logging
  happens inside the trial and is part of ``in_trial``);
- ``wrapper``: the rest of the Ray worker's wrapper around ``run_trial`` (imports on a
  worker's first trial, the final report);
- ``ray``: between the driver seeing a trial start and end, outside the wrapper (actor
  start-up, scheduling, result round trips);
- ``idle``: slot time with no trial on it (start-up, the tail when fewer trials than slots remain).

``--quick`` uses a scaled-down copy of baseline.yaml with the same trial shape (100 steps,
batch 8, k = 2, eval every 50) but 2 reward configurations + the control and 2 seeds
(6 trials), for a measurement in ~2 minutes per mode instead of ~10.

Writes ``benchmarks/results/orchestration-<timestamp>.json`` (git-ignored) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")


def quick_spec(spec_path: Path, folder: Path) -> Path:
    raw = yaml.safe_load(spec_path.read_text())
    raw["name"] = f"{raw['name']}-quick"
    raw["seeds"] = 2
    raw["grid"] = {"baseline.kind": ["none", "greedy"]}
    out = folder / f"{raw['name']}.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def measure(spec: Path, mode: str, storage: Path) -> dict:
    from rewardsweep.study import layout, records
    from rewardsweep.sweep.launch import launch

    result = launch(spec, storage=str(storage), wandb_mode=mode)
    study = Path(result.study_dir)
    log = json.loads((result.experiment / "rewardsweep-launch.json").read_text())
    recs = {p.stem: records.read_record(p) for p in layout.iter_record_paths(study)}
    trials = log["trials"]
    n = len(trials)
    work = in_trial = wrapper = wandb_s = ray_side = busy = 0.0
    for key, t in trials.items():
        tm = recs[key]["timings"]
        w = tm["train_s"] + tm["eval_s"]
        work += w
        in_trial += tm["total_s"] - w
        wandb_s += t["wandb_seconds"]
        wrapper += t["trial_seconds"] - tm["total_s"] - t["wandb_seconds"]
        span = t["ended"] - t["started"]
        ray_side += span - t["trial_seconds"]
        busy += span
    slots = result.slots
    capacity = result.fit_s * slots
    per = lambda x: x / n  # noqa: E731
    return {
        "mode": mode, "trials": n, "slots": slots, "statuses": sorted({r["status"] for r in recs.values()}),
        "fit_s": result.fit_s, "launch_s": result.total_s,
        "sum_train_eval_s": work, "mean_train_eval_s": per(work),
        "ratio": capacity / work, "ratio_launch": result.total_s * slots / work,
        "overhead_per_trial_s": per(capacity - work),
        "ratio_vs_trial_wall": capacity / sum(recs[k]["timings"]["total_s"] for k in trials),
        "breakdown_per_trial_s": {"in_trial": per(in_trial), "wandb": per(wandb_s), "wrapper": per(wrapper),
                                  "ray": per(ray_side), "idle": per(capacity - busy)},
        "sum_setup_s": sum(recs[k]["timings"]["setup_s"] or 0 for k in trials),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "search_spaces" / "baseline.yaml"))
    ap.add_argument("--quick", action="store_true", help="6-trial copy of the spec, same trial shape")
    ap.add_argument("--modes", default="offline,disabled", help="W&B modes to measure, comma-separated")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)

    from rewardsweep.sweep.expand import expand
    from rewardsweep.sweep.spec import load_spec
    from rewardsweep.sweep.bookkeeping import start_request

    work = Path(tempfile.mkdtemp(prefix="bench-orchestration-"))
    spec = Path(args.spec)
    if args.quick:
        spec = quick_spec(spec, work)
    # the start checkpoint is shared work done once per study: take it out of the measurement
    from rewardsweep.runners.pretrain import ensure_start

    requests = {json.dumps(start_request(p.config), sort_keys=True) for p in expand(load_spec(spec))}
    for req in map(json.loads, requests):
        ensure_start(model=req["model"], checkpoint=req["checkpoint"], data_root=req["data_root"], iters=req["iters"])

    rows = []
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        storage = work / mode
        print(f"--- {spec.name}: W&B {mode}", file=sys.stderr, flush=True)
        rows.append(measure(spec, mode, storage))

    print(f"\n{spec.name} ({rows[0]['trials']} trials, {rows[0]['slots']} slots, "
          f"mean train+eval {rows[0]['mean_train_eval_s']:.1f} s/trial)")
    print("ratio = wall x slots / sum(train_s + eval_s); vs_trial = wall x slots / sum(run_trial wall);"
          " overhead and its parts in s per trial")
    print(f"{'W&B':<9}{'ratio':>7}{'vs_trial':>9}{'wall s':>8}{'launch s':>9}{'overhead':>9}"
          f"{'in_trial':>9}{'wandb':>7}{'wrapper':>8}{'ray':>6}{'idle':>6}")
    for r in rows:
        b = r["breakdown_per_trial_s"]
        print(f"{r['mode']:<9}{r['ratio']:>7.3f}{r['ratio_vs_trial_wall']:>9.3f}{r['fit_s']:>8.1f}"
              f"{r['launch_s']:>9.1f}{r['overhead_per_trial_s']:>9.2f}{b['in_trial']:>9.2f}{b['wandb']:>7.2f}"
              f"{b['wrapper']:>8.2f}{b['ray']:>6.2f}{b['idle']:>6.2f}")
    by_mode = {r["mode"]: r for r in rows}
    wandb_share = None
    if "offline" in by_mode and "disabled" in by_mode:
        wandb_share = by_mode["offline"]["overhead_per_trial_s"] - by_mode["disabled"]["overhead_per_trial_s"]
        print(f"W&B offline costs {wandb_share:+.2f} s/trial over no W&B")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"orchestration-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"spec": str(args.spec), "quick": args.quick, "machine": {
        "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "results": rows, "wandb_overhead_per_trial_s": wandb_share}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
