"""How long a dry run of a big study takes: read, validate and expand a 4,680-trial spec.

    .venv/bin/python benchmarks/bench_dry_run.py                       # this tree
    .venv/bin/python benchmarks/bench_dry_run.py --against ../old-tree # side by side, with ratios

The spec crosses 5 baselines x 6 learning rates x 3 weight decays x 5 sample counts
(450 reward configurations, 18 paired controls) over 10 seeds. Each tree runs in its own
interpreter, interleaved, ``--repeats`` times; the report gives medians of the expansion
alone (in-process, after imports) and of the whole command (a fresh interpreter:
imports, validation, expansion and the trial table), and new/old ratios when
``--against`` names another checkout (e.g. ``git worktree add ../old v0.2.0``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
name: big
model: tiny-synthetic
seeds: 10
steps: 100
eval_every: 50
control: mle
fixed:
  lr: {end: 1.0e-6, schedule: poly}
grid:
  baseline.kind: [none, batch_loo, sample_loo, greedy, ema]
  lr.start: [1.0e-5, 3.0e-5, 1.0e-4, 3.0e-4, 1.0e-3, 3.0e-3]
  optimizer.weight_decay: [0.0, 1.0e-5, 1.0e-4]
  samples: [2, 3, 4, 5, 6]
"""

# Runs in the tree under test; works with the API before (load_spec + expand_study) and after
# (load_study) the one-schema redesign.
PROBE = textwrap.dedent("""
    import io, json, sys, time
    t0 = time.perf_counter()
    from rewardsweep.sweep import spec as spec_mod
    from rewardsweep.sweep.table import render
    from rich.console import Console
    t1 = time.perf_counter()
    if hasattr(spec_mod, "load_study"):
        study = spec_mod.load_study(sys.argv[1])
        spec, expansion = study.spec, study.expansion
    else:
        from rewardsweep.sweep.expand import expand_study
        spec = spec_mod.load_spec(sys.argv[1]); expansion = expand_study(spec)
    t2 = time.perf_counter()
    render(spec, expansion, console=Console(file=io.StringIO(), width=100))
    t3 = time.perf_counter()
    print(json.dumps({"trials": len(expansion.trials), "expand_s": t2 - t1, "command_s": t3 - t0}))
""")


def measure(tree: Path, spec: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE, str(spec)], capture_output=True, text=True, env=env,
                         cwd=tree, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{tree}: {out.stderr.strip().splitlines()[-1]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - started
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another checkout to compare with (the old release)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    trees = {"this": ROOT} | ({"against": args.against.resolve()} if args.against else {})
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "big.yaml"
        spec.write_text(SPEC)
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        for _ in range(args.repeats):
            for name, tree in trees.items():
                runs[name].append(measure(tree, spec))
    report = {}
    for name, results in runs.items():
        report[name] = {key: statistics.median(r[key] for r in results) for key in ("expand_s", "command_s", "process_s")}
        report[name]["trials"] = results[0]["trials"]
        print(f"{name:8s} {trees[name]}: {report[name]['trials']} trials; validate + expand "
              f"{report[name]['expand_s']:.3f} s, whole dry run {report[name]['command_s']:.3f} s, "
              f"process {report[name]['process_s']:.3f} s (median of {args.repeats})")
    if "against" in report:
        for key in ("expand_s", "command_s", "process_s"):
            print(f"ratio this/against {key}: {report['this'][key] / report['against'][key]:.2f}")
    out = ROOT / "benchmarks" / "results" / "bench_dry_run.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
