"""Simulation figures of the sequential design with normal differences (docs/report.md,
"Sequential studies"); the scenario suite (skew, collapses, outliers) is bench_scenarios.py.

10 reward configurations, looks at 5, 10, ..., MAX seeds, alpha 5%, effect/SD 1 (max from
``propose_max``). Prints and writes to benchmarks/results/bench_sequential.json: the
family-wise error under the global null (efficacy boundaries alone and as run, with
independent and control-sharing configurations; the 0.3 rule beside it), the error of
reading the fixed-n test after every look, the power at the effect and the expected seeds
against the fixed design with the same power, each with its simulation SE.

    python benchmarks/bench_sequential.py [--studies 100000]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewardsweep.analysis import sequential as sq  # noqa: E402
from rewardsweep.analysis import sequential_sim as sim  # noqa: E402

ALPHA, EFFECT, SD, CONFIGS = 0.05, 1.0, 1.0, 10


def rate(x) -> dict:
    p = float(np.mean(x))
    return {"rate": p, "se": math.sqrt(p * (1 - p) / np.size(x))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--studies", type=int, default=100_000)
    args = ap.parse_args()
    n = args.studies
    t0 = time.perf_counter()
    max_seeds = sim.propose_max(5, 5, ALPHA, EFFECT, SD, CONFIGS, power=0.8)
    design = sq.make_design(5, 5, max_seeds, ALPHA, EFFECT, None, CONFIGS)
    bare = sq.make_design(5, 5, max_seeds, ALPHA, EFFECT, None, CONFIGS, futility=None)
    v03 = sq.make_design(5, 5, max_seeds, ALPHA, EFFECT, None, CONFIGS, futility=None,
                         statistic="inverse-normal")
    fixed = sim.fixed_seeds_for_power(EFFECT / SD, ALPHA, CONFIGS)
    rng = np.random.default_rng(2026)
    zeros = np.zeros(CONFIGS)
    out: dict = {"studies": n, "looks": design.looks, "method": design.method,
                 "efficacy": design.efficacy, "futility": design.futility, "fixed_seeds": fixed}
    for shared in (0.0, 0.5):
        d = sim.simulate_diffs(zeros, SD, n, max_seeds, rng, shared)
        for name, des in (("efficacy only", bare), ("as run", design),
                          ("0.3 rule, efficacy only", v03)):
            s = sim.summarise(des, d, zeros)
            out[f"fwer, {name}, corr {shared}"] = {"rate": s.fwer, "se": s.fwer_se}
        for label, level in (("Bonferroni", ALPHA / CONFIGS), ("unadjusted", ALPHA)):
            hit = np.zeros((n, CONFIGS), dtype=bool)
            for k in design.looks:
                hit |= st.ttest_1samp(d[..., :k], 0.0, axis=-1).pvalue < level
            out[f"peeking fixed-n test, {label}, corr {shared}"] = rate(hit.any(axis=1))
    one = sim.simulate(design, [EFFECT], SD, n, rng, shared=0.0)
    out["power at effect"] = {"rate": float(one.power[0]),
                              "se": math.sqrt(one.power[0] * (1 - one.power[0]) / n)}
    for name, mu in {"all null": zeros, "half null": np.r_[np.zeros(5), np.full(5, EFFECT)],
                     "all at effect": np.full(CONFIGS, EFFECT)}.items():
        d = sim.simulate_diffs(mu, SD, n // 5, max_seeds, rng, 0.5)
        s = sim.summarise(design, d, mu)
        out[f"seed ratio, {name}"] = {"ratio": s.seed_ratio(fixed), "se": s.seeds_se / fixed,
                                      "studies": s.studies}
    out["seconds"] = time.perf_counter() - t0
    for k, v in out.items():
        print(f"{k}: {v}")
    res = ROOT / "benchmarks" / "results"
    res.mkdir(exist_ok=True)
    (res / "bench_sequential.json").write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
