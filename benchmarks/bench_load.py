"""MLE pretraining on a busy machine: quiet versus next to one CPU-bound process, side by side.

    python benchmarks/bench_load.py                 # 200 iterations of tiny-synthetic, every variant
    python benchmarks/bench_load.py --iters 100 --variants passive,spin

Each run pretrains the tiny preset's start checkpoint (``ensure_start(force=True)``) in a
fresh process, once on its own and once next to a competing ``while True: pass`` process
(what another user's job looks like to us). Quiet and loaded runs alternate, so drift in
the machine's other load hits both alike. Variants:

- ``default``: what rewardsweep does: ``pretrain_threads()`` (the available cores, 1 to 4) and ``OMP_WAIT_POLICY=PASSIVE`` (set on import unless the user chose an OpenMP
  wait policy): an idle OpenMP thread sleeps instead of spinning;
- ``2threads``: two intra-op threads, passive: what a trial given ``resources: {cpu: 2}`` does;
- ``2threads-spin``: two threads with libgomp's own default wait (``GOMP_SPINCOUNT=300000``:
  spin, then sleep): pretraining on 2 cores, and a ``cpu: 2`` trial, before.

Figure of merit: loaded time / quiet time of the same variant (the goal: <= 3 on 2 cores,
where half the CPU being taken explains 2). A loaded run is stopped at ``--cap`` x its
quiet time and reported as ">=". The checkpoint hash of every run is printed too: the
cached checkpoint must not depend on the load (same hash quiet and loaded, and across
wait policies, which do not change the arithmetic).

Writes ``benchmarks/results/load-<timestamp>.json`` (git-ignored) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "default": {},                                                 # rewardsweep's choices
    "2threads": {"BENCH_THREADS": "2"},                            # a trial given resources: {cpu: 2}
    "2threads-spin": {"BENCH_THREADS": "2", "GOMP_SPINCOUNT": "300000"},  # both, before this change
}


def child(iters: int, cache: str) -> None:
    """One pretraining in this process; prints its timing as JSON."""
    sys.path.insert(0, str(ROOT))
    from rewardsweep.runners import pretrain

    if os.environ.get("BENCH_THREADS"):
        threads = int(os.environ["BENCH_THREADS"])
        pretrain.pretrain_threads = lambda: threads
    start = pretrain.ensure_start("tiny-synthetic", "auto", iters=iters, cache_dir=cache, force=True)
    print(json.dumps({"train_s": start["pretrained"]["train_seconds"], "hash": start["checkpoint_hash"],
                      "threads": pretrain.pretrain_threads()}))


def run_once(variant: str, iters: int, cache: str, loaded: bool, timeout: float | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env.update(VARIANTS[variant])
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if loaded else None
    began = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, "--child", "--iters", str(iters), "--cache", cache],
                              env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall_s": time.perf_counter() - began}
    except subprocess.TimeoutExpired:
        return {"train_s": None, "hash": None, "timed_out_after_s": timeout, "wall_s": time.perf_counter() - began}
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cap", type=float, default=10.0, help="stop a loaded run at this many x its quiet time")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.iters, args.cache)
        return

    cores = len(os.sched_getaffinity(0))
    print(f"{platform.node()}: {cores} cores available, load average {os.getloadavg()[0]:.1f}; "
          f"tiny-synthetic pretraining, {args.iters} iterations")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-load-") as cache:
        # the synthetic dataset is generated on first use: do that before timing anything
        run_once("default", 2, cache, loaded=False, timeout=None)
        for variant in args.variants.split(","):
            for _ in range(args.repeats):
                quiet = run_once(variant, args.iters, cache, loaded=False, timeout=None)
                cap = args.cap * quiet["wall_s"] + 30
                loaded = run_once(variant, args.iters, cache, loaded=True, timeout=cap)
                ratio = loaded["train_s"] / quiet["train_s"] if loaded["train_s"] else None
                rows.append({"variant": variant, "threads": quiet["threads"], "quiet": quiet, "loaded": loaded,
                             "ratio": ratio, "load_average": os.getloadavg()[0]})
                shown = f"{ratio:.2f}x" if ratio else f">= {loaded['wall_s'] / quiet['wall_s']:.1f}x (stopped)"
                print(f"  {variant:<8} threads {quiet['threads']}: quiet {quiet['train_s']:6.1f} s "
                      f"({quiet['train_s'] / args.iters * 1000:.0f} ms/iter), loaded "
                      + (f"{loaded['train_s']:6.1f} s" if loaded["train_s"] else "   n/a")
                      + f"  ratio {shown}   checkpoint {quiet['hash']} / {loaded['hash']}", flush=True)
    out = ROOT / "benchmarks" / "results" / f"load-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"host": platform.node(), "cores": cores, "iters": args.iters, "rows": rows}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
