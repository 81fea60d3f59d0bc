"""Cost of the treatment probe (runners/probe.py) and of the no-op reference arm, measured
side by side.

    python benchmarks/bench_probe.py [--steps 100] [--repeats 5] [--every 0 10 20]

Runs whole trials of the tiny preset through MMEngine: reward trials (sample_loo, k = 2)
with the aux head's cross-entropy (two extra backward passes per gradient probe) and
without it (one), for each probe interval; a cross-entropy control and a no-op reference
trial. All interleaved round-robin so machine noise hits every variant alike. Reports
median training times as ratios: each probe interval to ``every = 0`` (target, issue 9: at
most 1.05 at the default interval, ``config.trial.TRIAL_DEFAULTS``), and the no-op arm to
the control (it has no backward pass). Writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--every", type=int, nargs="+", default=None,
                        help="probe intervals to compare (0 = off; default: 0 and the default interval)")
    args = parser.parse_args()

    from rewardsweep.runners.pretrain import ensure_start
    from rewardsweep.runners.trial import run_trial
    from rewardsweep.config.trial import default

    default_every = default("diagnostics_every")
    intervals = args.every or sorted({0, default_every, 2 * default_every})
    start = ensure_start("tiny-synthetic", "auto", show_progress=True)
    times: dict[str, list[float]] = {}
    for repeat in range(args.repeats + 1):  # the first round warms up and is dropped
        for aux in ("mle", "off"):
            for every in intervals:
                config = dict(study="bench", config_id="bench", arm="reward", seed=repeat,
                              model="tiny-synthetic", start=start, steps=args.steps, eval_every=args.steps,
                              batch_size=8, samples=2, baseline={"kind": "sample_loo"}, aux_head=aux,
                              lr={"start": 1e-2, "end": 1e-4, "schedule": "poly"},
                              diagnostics_every=every)
                record = run_trial(config, write=False)
                if repeat:
                    times.setdefault(f"aux={aux} every={every}", []).append(record["timings"]["train_s"])
        for arm in ("mle", "noop"):
            config = dict(study="bench", config_id="bench", arm=arm, seed=repeat, model="tiny-synthetic",
                          start=start, steps=args.steps, eval_every=args.steps, batch_size=8,
                          lr={"start": 1e-2, "end": 1e-4, "schedule": "poly"})
            record = run_trial(config, write=False)
            if repeat:
                times.setdefault(f"arm={arm}", []).append(record["timings"]["train_s"])
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratios = {k: medians[k] / medians[k.split(" every=")[0] + " every=0"] for k in medians if "every=" in k}
    for k in ratios:
        print(f"{k:24s} median train {medians[k]:6.2f} s   x{ratios[k]:.3f} of no probe")
    noop_ratio = medians["arm=noop"] / medians["arm=mle"]
    print(f"{'no-op reference':24s} median train {medians['arm=noop']:6.2f} s   x{noop_ratio:.3f} of a control trial "
          f"({medians['arm=mle']:.2f} s)")
    result = {"steps": args.steps, "repeats": args.repeats, "intervals": intervals, "default_every": default_every,
              "median_train_s": medians, "ratio_to_no_probe": ratios, "target_at_default": 1.05,
              "noop_to_control": noop_ratio}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    path = out / "probe_overhead.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
