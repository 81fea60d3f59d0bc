"""The scenario suite at full size: do the verdicts hold their error rate on the paired
differences reward tuning produces (skew, collapses, few seeds)? docs/report.md's tables.

For the shipped sequential design (4 configurations, looks at 4, 8, 12, 16 seeds, effect 0.2
points) and a 10-configuration 5-look design (looks at 4, ..., 20), under every scenario of
``rewardsweep.analysis.sequential_sim.SCENARIOS``: the family-wise error under the global
null with efficacy stops only and as run (futility obeyed, at the SD where the design has 80%
power, and at SD 0.3), next to the rewardsweep 0.3 rule on the same data; the fixed-n verdicts
(robust and 0.3's paired t + Holm, 10 configurations, 6 and 10 seeds); the coverage of the
report's 95% intervals; the expected seeds against fixed designs of the same power; the
equivalence rate with a margin; the val-image interval's coverage in three regimes. Every
rate with its simulation SE. Prints a table and writes benchmarks/results/bench_scenarios.json
and the docs' tables as markdown (benchmarks/results/bench_scenarios.md).

    python benchmarks/bench_scenarios.py [--studies 20000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewardsweep.analysis import sequential as sq  # noqa: E402
from rewardsweep.analysis import sequential_sim as sim  # noqa: E402

ALPHA, EFFECT = 0.05, 0.2
DESIGNS = {"shipped (m=4, looks 4..16)": (4, 4, 16, 4), "m=10, looks 4..20": (4, 4, 20, 10)}


def pct(cell: dict, key: str = "fwer", se: str = "se") -> str:
    return f"{100 * cell[key]:.2f} ± {100 * cell[se]:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--studies", type=int, default=20_000, help="simulated studies per cell (m=4; m=10 gets 40%%)")
    ap.add_argument("--quick", action="store_true", help="2,000 studies per cell (a check, not the docs' numbers)")
    args = ap.parse_args()
    n = 2000 if args.quick else args.studies
    t0 = time.perf_counter()
    out: dict = {"studies": n, "alpha": ALPHA, "effect": EFFECT, "load": os.getloadavg()[0], "designs": {}}
    rng = np.random.default_rng(2026)
    for name, (init, step, mx, m) in DESIGNS.items():
        studies = n if m <= 4 else max(1000, int(0.4 * n))
        design = sq.make_design(init, step, mx, ALPHA, EFFECT, None, m)
        bare = sq.make_design(init, step, mx, ALPHA, EFFECT, None, m, futility=None)
        v03 = sq.make_design(init, step, mx, ALPHA, EFFECT, None, m, statistic="inverse-normal", futility=None)
        sd80 = sq.sd_for_power(design, 0.8, 20_000)
        d: dict = {"looks": design.looks, "first_claim": design.first_claim, "efficacy": design.efficacy,
                   "futility": design.futility, "sd80": sd80, "power_at_sd80": sq.power(design, sd80),
                   "power_at_0.3": sq.power(design, 0.3), "method": design.method, "studies": studies,
                   "scenarios": {}}
        print(f"\n{name}: first claim at {design.first_claim} seeds; 80% power at SD {sd80:.3f} "
              f"(power {100 * d['power_at_sd80']:.1f}%; at SD 0.3: {100 * d['power_at_0.3']:.1f}%)", flush=True)
        print(f"{'scenario':16s} {'efficacy only':>16s} {'0.3 rule, eff. only':>20s} {'as run, SD80':>16s} "
              f"{'as run, SD 0.3':>16s}")
        for scenario in sim.SCENARIOS:
            state = rng.bit_generator.state
            cell = {"efficacy_only": sim.claims(bare, scenario, sd80, studies, rng)}
            rng.bit_generator.state = state                       # the same data for the 0.3 rule
            cell["v03_efficacy_only"] = sim.claims(v03, scenario, sd80, studies, rng)
            cell["as_run_sd80"] = sim.claims(design, scenario, sd80, studies, rng)
            cell["as_run_sd0.3"] = sim.claims(design, scenario, 0.3, studies, rng)
            d["scenarios"][scenario] = cell
            print(f"{scenario:16s} {pct(cell['efficacy_only']):>16s} {pct(cell['v03_efficacy_only']):>20s} "
                  f"{pct(cell['as_run_sd80']):>16s} {pct(cell['as_run_sd0.3']):>16s}", flush=True)
        d["efficiency"] = {}
        for sd in (0.1, sd80, 0.3):
            e = sim.efficiency(design, sd, max(1000, studies // 4), rng)
            d["efficiency"][f"{sd:.3f}"] = e
            print(f"  SD {sd:.3f}: power {100 * e['power']:.1f}%, futile at the effect {100 * e['futile_at_effect']:.1f}%, "
                  f"fixed t {e['fixed_t']} / robust {e['fixed_robust']} seeds; expected seeds / fixed t "
                  + ", ".join(f"{k} {e[k]['ratio_t']:.3f}" for k in ("null", "half", "effect"))
                  + " (SE <= %.3f); / fixed robust " % max(e[k]["ratio_se"] for k in ("null", "half", "effect"))
                  + ", ".join(f"{k} {e[k]['ratio_robust']:.3f}" for k in ("null", "half", "effect")), flush=True)
        d["equivalence"] = {}
        for margin in (EFFECT, 0.15):
            md = sq.make_design(init, step, mx, ALPHA, EFFECT, margin, m)
            msd = sq.sd_for_power(md, 0.8, 20_000)
            e = sim.equivalence(md, msd, max(1000, studies // 4), rng)
            d["equivalence"][f"{margin:g}"] = e
            print(f"  margin {margin:g}: at SD {msd:.3f} (80% power) a null ends equivalent in "
                  f"{100 * e['equivalent']:.1f} ± {100 * e['equivalent_se']:.1f}% ({e['seeds']:.1f} seeds); "
                  f"equivalent at a true difference = margin {100 * e['error_at_margin']:.3f} ± "
                  f"{100 * e['error_se']:.3f}% (bound {100 * e['bound']:.3f}%)", flush=True)
        out["designs"][name] = d
    fixed = {}
    print(f"\nfixed-n verdicts, 10 configurations ({n} studies): robust (t AND skew-corrected, Holm) / 0.3 (t, Holm)")
    for seeds in (6, 10):
        for scenario in sim.SCENARIOS:
            state = rng.bit_generator.state
            robust = sim.fixed_n_claims(scenario, seeds, 10, n, rng, "robust")
            rng.bit_generator.state = state
            plain = sim.fixed_n_claims(scenario, seeds, 10, n, rng, "t")
            cover = sim.interval_coverage(scenario, seeds, n, rng)
            fixed[f"{seeds}:{scenario}"] = {"robust": robust, "t": plain, "coverage": cover}
            print(f"  n={seeds:2d} {scenario:16s} {pct(robust):>14s} / {pct(plain):>14s}   95% CI coverage: "
                  + ", ".join(f"{k} {pct(v, 'coverage')}" for k, v in cover.items()), flush=True)
    out["fixed_n"] = fixed
    from tests.support import val_images

    images = {}
    print("\nval-image interval (seeds x images), 6 seeds, 95%:")
    for regime in val_images.REGIMES:
        for n_images in (48, 200):
            c = val_images.coverage(regime, 400 if not args.quick else 150, 6, n_images)
            images[f"{regime}, {n_images} images"] = c
            print(f"  {regime:27s} {n_images:3d} images: {100 * c['coverage']:.1f} ± {100 * c['se']:.1f}% "
                  f"(seeds-only t-interval {100 * c['t_coverage']:.1f}%; width {c['width'] / c['t_width']:.2f}x its)",
                  flush=True)
    out["val_images"] = images
    out["seconds"] = time.perf_counter() - t0
    print(f"\n{out['seconds']:.0f} s, load average {out['load']:.1f}")
    res = ROOT / "benchmarks" / "results"
    res.mkdir(exist_ok=True)
    (res / "bench_scenarios.json").write_text(json.dumps(out, indent=1, default=float))
    (res / "bench_scenarios.md").write_text(markdown(out))


def markdown(out: dict) -> str:
    """The docs' tables (docs/report.md, "How the verdicts were checked")."""
    def cell(c: dict) -> str:
        return f"{100 * c['fwer']:.2f} ± {100 * c['se']:.2f}"

    lines = []
    for name, d in out["designs"].items():
        lines += [f"**{name}** ({d['studies']:,} studies per cell; claims from {d['first_claim']} seeds; "
                  f"80% power at SD {d['sd80']:.3f}, {100 * d['power_at_0.3']:.0f}% at SD 0.3)", "",
                  "| paired differences | efficacy stops only | 0.3 rule, same data | as run, SD80 | as run, SD 0.3 |",
                  "|---|---|---|---|---|"]
        for scenario, c in d["scenarios"].items():
            lines.append(f"| {scenario} | {cell(c['efficacy_only'])} | {cell(c['v03_efficacy_only'])} | "
                         f"{cell(c['as_run_sd80'])} | {cell(c['as_run_sd0.3'])} |")
        lines += ["", "| SD of the paired differences | power | futile at the effect | fixed t / robust seeds "
                  "| expected seeds / fixed t: null, half, all at effect | / fixed robust |", "|---|---|---|---|---|---|"]
        for sd, e in d["efficiency"].items():
            lines.append(f"| {float(sd):.3f} | {100 * e['power']:.1f}% | {100 * e['futile_at_effect']:.1f}% | "
                         f"{e['fixed_t']} / {e['fixed_robust']} | "
                         + ", ".join(f"{e[k]['ratio_t']:.3f}" for k in ("null", "half", "effect"))
                         + " | " + ", ".join(f"{e[k]['ratio_robust']:.3f}" for k in ("null", "half", "effect")) + " |")
        lines += ["", "| margin | SD (80% power) | null ends equivalent | its seeds | equivalent at a true difference = margin (bound) |",
                  "|---|---|---|---|---|"]
        for margin, e in d["equivalence"].items():
            lines.append(f"| {margin} | {e['sd']:.3f} | {100 * e['equivalent']:.1f} ± {100 * e['equivalent_se']:.1f}% | "
                         f"{e['seeds']:.1f} | {100 * e['error_at_margin']:.3f} ± {100 * e['error_se']:.3f}% "
                         f"({100 * e['bound']:.3f}%) |")
        lines.append("")
    lines += [f"**Fixed-n verdicts**, 10 configurations, Holm ({out['studies']:,} studies per cell): family-wise "
              "error of the report's verdict (t AND skew-corrected) / 0.3's paired t; coverage of the 95% intervals",
              "", "| paired differences | 6 seeds: robust / 0.3 | 10 seeds: robust / 0.3 | 95% t-CI coverage, 6 / 10 seeds "
              "| robust interval, 6 / 10 | BCa, 10 seeds |", "|---|---|---|---|---|---|"]
    for scenario in sim.SCENARIOS:
        a, b = out["fixed_n"][f"6:{scenario}"], out["fixed_n"][f"10:{scenario}"]

        def cov(x, k):
            return f"{100 * x['coverage'][k]['coverage']:.1f}" if k in x["coverage"] else "–"
        lines.append(f"| {scenario} | {cell(a['robust'])} / {cell(a['t'])} | {cell(b['robust'])} / {cell(b['t'])} | "
                     f"{cov(a, 't')} / {cov(b, 't')} | {cov(a, 'robust')} / {cov(b, 'robust')} | {cov(b, 'bca')} |")
    lines += ["", "| val images: regime | images | seeds x images interval | seeds-only t-interval | width / t-interval |",
              "|---|---|---|---|---|"]
    for key, c in out["val_images"].items():
        regime, n_images = key.rsplit(", ", 1)
        lines.append(f"| {regime} | {n_images.split()[0]} | {100 * c['coverage']:.1f} ± {100 * c['se']:.1f}% | "
                     f"{100 * c['t_coverage']:.1f}% | {c['width'] / c['t_width']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
