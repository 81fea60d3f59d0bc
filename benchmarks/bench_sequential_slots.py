"""Do slots stay busy at look boundaries? A sequential study against the same trials run fixed.

    .venv/bin/python benchmarks/bench_sequential_slots.py [--seconds 2.0] [--slots 2]

Busy-slot figure = wall time x slots / sum of trial times (1.0: no slot ever idle). The
sequential study (6 configurations, looks at 3, 6, 9, 12 seeds, known effects) runs
through ``launch`` with its look scheduler; then exactly the trials it ran run again as one
fixed Ray experiment (every trial known up front, longest first). Both use real Ray Tune
and the stand-in trainer of tests/support/simulated_trial.py, which sleeps ``--seconds``
per trial (controls 0.8 of that) and writes real records. Reports both figures and their
ratio (goal <= 1.15), interleaved ``--repeats`` times (the machine is shared).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.simulated_trial import fake_start, simulated_trial  # noqa: E402

EFFECTS = {"none": 6.0, "greedy": 0.0, "ema": 1.6, "batch_loo": 0.8, "sample_loo": 3.0}


def spec_text(storage: Path, slots: int) -> str:
    return textwrap.dedent(f"""\
        name: slots
        model: tiny-synthetic
        seeds: {{initial: 3, step: 3, max: 12, effect: 2.0, margin: 1.0}}
        steps: 10
        eval_every: 10
        control: mle
        fixed: {{samples: 2, batch_size: 8}}
        grid:
          baseline.kind: [none, greedy, ema, batch_loo, sample_loo]
          normalize_advantage: [true]
        resources: {{cpu: 1}}
        max_concurrent: {slots}
        retries: 0
        wandb: {{mode: disabled}}
        storage: {storage}
        """)


def hook(seconds: float):
    def set_effect(plan, config):
        kind = plan.params.get("baseline.kind")
        config["debug"] = {"simulate": {"effect": EFFECTS.get(kind, 0.0), "sd": 1.0,
                                        "seconds": seconds if plan.arm == "reward" else 0.8 * seconds}}
    return set_effect


def trial_seconds(study: Path) -> float:
    return sum(json.loads(p.read_text())["timings"]["total_s"] for p in (study / "records").glob("*.json"))


def run_pair(tmp: Path, seconds: float, slots: int) -> dict[str, float]:
    from rewardsweep.sweep import tune as tune_mod
    from rewardsweep.sweep.launch import launch
    from rewardsweep.sweep.spec import load_study

    seq_dir = tmp / f"seq-{time.time_ns()}"
    spec = seq_dir / "slots.yaml"
    seq_dir.mkdir()
    spec.write_text(spec_text(seq_dir / "runs", slots))
    result = launch(spec, trial_fn=simulated_trial, ensure_start=fake_start, config_hook=hook(seconds))
    ran = set(result.outcomes)
    seq_busy = result.fit_s * slots / trial_seconds(seq_dir / "runs" / "slots")

    # the same trials, known up front: one fixed experiment
    fixed_dir = tmp / f"fixed-{time.time_ns()}"
    (fixed_dir / "runs").mkdir(parents=True)
    study = load_study(spec, storage=str(fixed_dir / "runs"))
    start = fake_start()
    jobs = {}
    set_effect = hook(seconds)
    for plan in study.expansion.trials:
        if plan.trial_name in ran:
            config = copy.deepcopy(plan.config)
            config["start"] = start
            set_effect(plan, config)
            jobs[plan.trial_name] = {"config": config, "params": plan.params}
    began = time.perf_counter()
    tune_mod.run_experiment(jobs, trial_fn=simulated_trial, storage_path=str(fixed_dir / "ray"), name="fixed",
                            max_concurrent=slots)
    fixed_wall = time.perf_counter() - began
    fixed_busy = fixed_wall * slots / trial_seconds(fixed_dir / "runs" / "slots")
    return {"trials": len(ran), "sequential": seq_busy, "fixed": fixed_busy, "ratio": seq_busy / fixed_busy}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per reward trial")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from rewardsweep.sweep import ray_cluster

    ray_cluster.init_ray(num_cpus=args.slots)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs = [run_pair(Path(tmp), args.seconds, args.slots) for _ in range(args.repeats)]
    finally:
        ray_cluster.shutdown_ray()
    for r in runs:
        print(f"{r['trials']} trials: busy-slot figure sequential {r['sequential']:.3f}, fixed {r['fixed']:.3f}, "
              f"ratio {r['ratio']:.3f}")
    report = {key: statistics.median(r[key] for r in runs) for key in ("sequential", "fixed", "ratio")}
    report.update(trials=runs[0]["trials"], seconds=args.seconds, slots=args.slots, repeats=args.repeats)
    print(f"median: sequential {report['sequential']:.3f}, fixed {report['fixed']:.3f}, "
          f"ratio {report['ratio']:.3f} (goal <= 1.15)")
    out = ROOT / "benchmarks" / "results" / "bench_sequential_slots.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
