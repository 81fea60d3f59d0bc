"""Time ``rewardsweep report`` end to end on 10,000 trial records (target: <= 5 s).

Builds a study of CONFIGS reward configurations x SEEDS seeds (+ a control arm of SEEDS
seeds) in a temporary folder with realistic records (200 steps, curve every 20 steps,
a diagnostics summary as the runner writes it, 19 classes like Cityscapes), then runs
``python -m rewardsweep.cli report FOLDER`` in a fresh interpreter (imports included,
plots included) and prints the wall time. Results go to benchmarks/results/bench_report.json.

    python benchmarks/bench_report.py [--configs 200] [--seeds 50] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewardsweep.study.layout import record_path  # noqa: E402
from rewardsweep.study.records import write_record  # noqa: E402
from rewardsweep.study.synthetic import SYNTHETIC_START, synthetic_config_id, synthetic_record  # noqa: E402

CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "light", "sign", "vegetation",
           "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]


def build(folder: Path, configs: int, seeds: int, diag_every: int = 1) -> int:
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 0.005, seeds)
    ctrl = synthetic_config_id({}, "mle")
    arms = [(ctrl, "mle", {}, 0.0)]
    kinds = ["none", "batch_loo", "sample_loo", "greedy", "ema"]
    for i in range(configs):
        params = {"baseline.kind": kinds[i % 5], "baseline.coef": [0.1, 0.5, 1.0, 2.0][(i // 5) % 4],
                  "lr.start": float(10 ** -(3 + (i // 20) % 3)), "steps": [100, 200][(i // 60) % 2],
                  "class_weights.smooth": [0.0, 0.05][(i // 120) % 2]}
        arms.append((synthetic_config_id(params), "reward", params, float(rng.normal(0.002, 0.004))))
    n = 0
    for cid, arm, params, eff in arms:
        for s in range(seeds):
            status = "finished" if rng.random() > 0.02 else str(rng.choice(["failed", "diverged"]))
            delta = 0.002 + seed_effect[s] + eff + rng.normal(0, 0.004)
            rec = synthetic_record(study="bench", config_id=cid, arm=arm, seed=s, control_id=ctrl,
                                   params=params, miou_start=0.61,
                                   miou_final=None if status == "failed" else 0.61 + delta,
                                   status=status, class_names=CLASSES, steps=200, eval_every=20,
                                   diag_every=diag_every, start=SYNTHETIC_START, rng=rng)
            write_record(record_path(folder, cid, arm, s), rec)
            n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=2, help="timed runs (the first reads a cold cache)")
    ap.add_argument("--diag-every", type=int, default=1, help="diagnostics every N steps (runner: 1)")
    ap.add_argument("--keep", default=None, help="build the study here and keep it (reused if present)")
    args = ap.parse_args()
    tmp = None
    if args.keep:
        folder = Path(args.keep)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-report-")
        folder = Path(tmp.name) / "bench"
    t0 = time.perf_counter()
    n = build(folder, args.configs, args.seeds, args.diag_every) if not (folder / "records").is_dir() \
        else len(list((folder / "records").glob("*.json")))
    build_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in (folder / "records").glob("*.json"))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    times, cpu = [], []
    for _ in range(args.repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "rewardsweep.cli", "report", str(folder)],
                              env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
            return 1
    plots = sorted(p.name for p in (folder / "report").glob("*.png"))
    result = {"records": n, "configs": args.configs + 1, "seeds": args.seeds,
              "record_mb": round(size / 1e6, 1), "build_s": round(build_s, 2),
              "report_s": [round(t, 3) for t in times], "best_s": round(min(times), 3),
              "cpu_s": [round(c, 3) for c in cpu], "load_avg": os.getloadavg(),
              "target_s": 5.0, "plots": plots, "python": platform.python_version(),
              "machine": platform.machine(), "cpus": os.cpu_count(),
              "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_report.json").write_text(json.dumps(result, indent=1))
    print(f"report over {n} records ({result['record_mb']} MB): wall "
          + ", ".join(f"{t:.2f} s" for t in times) + " (target <= 5 s); CPU "
          + ", ".join(f"{c:.2f} s" for c in cpu) + f"; load {os.getloadavg()[0]:.1f}; plots: {', '.join(plots)}")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
