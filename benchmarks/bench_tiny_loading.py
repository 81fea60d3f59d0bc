"""The tiny preset stays as fast as before: the seeded loader's cost, and why tiny trials load
in their own process (0 workers).

    python benchmarks/bench_tiny_loading.py [--rounds 3] [--steps 100] [--batches 100]

1. loader throughput (images/s, and CPU ms per image) at 0 workers, batch 8, of the tiny preset's train split: the
   loader a trial builds (``runners.loaders``: each sample seeded from (seed, position,
   index)) versus MMEngine's plain ``InfiniteSampler`` over the same dataset (what trials used
   before);
2. whole tiny reward trials (k = 2, ``--steps`` steps, one evaluation) with ``workers`` 0
   and 1: training seconds (wall) and CPU seconds of the trial's process and its workers.

Variants interleaved over ``--rounds`` rounds; medians. Writes ``benchmarks/results/tiny_loading.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_helpers import machine_load  # noqa: E402


def loader_rate(setting, seeded: bool, batches: int, work_dir: str) -> dict[str, float]:
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from rewardsweep.runners.loaders import register_loaders
    from rewardsweep.runners.runner_config import runner_config

    init_default_scope("mmseg")
    register_loaders()
    cfg = runner_config(setting, work_dir=work_dir, iters=batches, batch_size=8, lr={"start": 1e-3}, seed=0,
                        workers=0, device="cpu")["train_dataloader"]
    if not seeded:  # the loader trials built before: the dataset itself, MMEngine's sampler
        cfg["dataset"] = cfg["dataset"]["dataset"]
        cfg["sampler"]["type"] = "InfiniteSampler"
    it = iter(Runner.build_dataloader(cfg, seed=0))
    next(it)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(it)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"images_per_s": 8 * batches / wall, "cpu_ms_per_image": cpu / (8 * batches) * 1e3}


def trial(start: dict, steps: int, workers: int) -> dict:
    from rewardsweep.runners.trial import run_trial

    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    record = run_trial(dict(model="tiny-synthetic", start=start, steps=steps, eval_every=steps, batch_size=8,
                            seed=0, samples=2, workers=workers), write=False)
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum((a.ru_utime + a.ru_stime) - (b.ru_utime + b.ru_stime) for a, b in zip(after, before))
    assert record["status"] == "finished", record.get("error")
    return {"train_s": record["timings"]["train_s"], "total_s": record["timings"]["total_s"], "cpu_s": cpu,
            "data_wait_s": record["timings"]["data_wait_s"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--pretrain-iters", type=int, default=100,
                        help="MLE iterations of the start checkpoint (the timings do not depend on its quality)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "tiny_loading.json"))
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from rewardsweep.runners.presets import resolve_setting
    from rewardsweep.runners.pretrain import ensure_start

    setting = resolve_setting("tiny-synthetic")
    start = ensure_start("tiny-synthetic", "auto", iters=args.pretrain_iters)
    result: dict = {"load_before": machine_load()}
    rates: dict[str, list[dict]] = {"seeded (now)": [], "plain (before)": []}
    trials: dict[int, list[dict]] = {0: [], 1: []}
    with tempfile.TemporaryDirectory() as work_dir:
        for _ in range(args.rounds):
            rates["seeded (now)"].append(loader_rate(setting, True, args.batches, work_dir))
            rates["plain (before)"].append(loader_rate(setting, False, args.batches, work_dir))
            for w in trials:
                trials[w].append(trial(start, args.steps, w))
    result["load_after"] = machine_load()
    result["loader"] = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in rates.items()}
    result["trials"] = {w: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for w, rs in trials.items()}
    print(f"tiny preset, 1 thread ({result['load_before']} -> {result['load_after']}); medians of {args.rounds}")
    print("train loader, 0 workers, batch 8:")
    for k, v in result["loader"].items():
        print(f"  {k:16s} {v['images_per_s']:8.0f} img/s   {v['cpu_ms_per_image']:6.3f} CPU ms per image")
    now, before = result["loader"]["seeded (now)"], result["loader"]["plain (before)"]
    result["seeding_cpu_ms_per_image"] = now["cpu_ms_per_image"] - before["cpu_ms_per_image"]
    print(f"  per-sample seeding: {result['seeding_cpu_ms_per_image']:+.3f} CPU ms per image")
    print(f"reward trial, {args.steps} steps + 1 evaluation:")
    for w, t in result["trials"].items():
        print(f"  workers {w}: train {t['train_s']:6.2f} s (data wait {t['data_wait_s']:5.2f} s), "
              f"whole trial {t['total_s']:6.2f} s, CPU {t['cpu_s']:6.2f} s")
    step_cpu_ms = result["trials"][0]["cpu_s"] / args.steps * 1e3
    result["seeding_share_of_tiny_trial_cpu"] = 8 * result["seeding_cpu_ms_per_image"] / step_cpu_ms
    print(f"  per-sample seeding in a tiny trial (batch 8): {result['seeding_share_of_tiny_trial_cpu'] * 100:.2f}% "
          f"of its CPU time per step ({step_cpu_ms:.0f} ms)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
