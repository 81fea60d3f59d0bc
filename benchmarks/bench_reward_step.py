"""Cost of a reward-tuning step relative to an MLE step, measured side by side, at any size.

    python benchmarks/bench_reward_step.py                                   # tiny preset, 8 x 64x64
    python benchmarks/bench_reward_step.py --preset deeplabv3-r50-cityscapes --batch 2 --size 512 1024

Builds the preset's model as the trials do (``runners.trial.reward_model_config``): plain
cross-entropy (MLE), and REINFORCE with the sample_loo baseline at k = 2 and k = 4, all
with the auxiliary head's cross-entropy (``aux_head: mle``) so that the network is the same
and only the decode head's loss differs. Then, in one process:

1. **reward only** (no network): the decode head's loss on fixed logits ``[B, C, H, W]``
   at each ``--scale-sizes`` size and the main size, forward and backward to the logits:
   MMSeg's cross-entropy versus the reward objective (softmax, k samples, batched per-image
   mIoU, baseline, log-probabilities). Cheap, so many repeats: the precise number.
2. **full steps** (``model.train_step``: data preprocessor, forward, loss, backward, SGD with
   the grad-norm clip a trial uses) at the main size: one warm-up step per variant (its
   peak memory is measured), then ``--rounds`` rounds, the variants interleaved so machine
   noise hits them alike; and at each smaller ``--scale-sizes`` size: how the ratio scales.
3. **estimator knobs** (issue 24) at the main size, ``train_step`` as in (2) with k = 2:
   REINFORCE (sample_loo, batch-normalised), group normalisation, the KL to the start model
   as a loss and in the reward (each with its frozen start model attached as a trial does:
   one extra no-grad forward per step), the entropy bonus, and the clipped surrogate per
   epoch (epoch 1 draws and keeps the batch, epoch 2 replays it), interleaved; ratios to
   the MLE step, and the frozen start model's bytes (parameters and buffers).
4. **probe** (``runners.probe.probe_step``) on the k = 2 model at the main size: a reward-gain
   probe and a gradient probe, interleaved with plain steps. Its share of the step time at
   the default interval: every ``diagnostics_every``-th step a gain probe, every
   ``GRADIENT_EVERY``-th of those a gradient probe.

On CPU the ratios use each step's CPU time (``time.process_time``: all threads of this
process), which other users' jobs on a shared machine barely change; wall times are printed
beside them and are the ones used on CUDA. The machine's load is printed with each section.
Targets (issue 23): k = 2 step <= 1.15x MLE; probe <= 5% of the step time. Writes
``benchmarks/results/reward_step_<preset>_<device>.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_helpers import (  # noqa: E402
    PeakMemory,
    build_model,
    machine_load,
    optim_wrapper_for,
    random_batch,
    synchronize,
)

REWARD = {"estimator": "reinforce", "baseline": {"kind": "sample_loo"}, "aux_head": "mle"}
VARIANTS = {"mle": None, "reinforce_k2": {**REWARD, "samples": 2}, "reinforce_k4": {**REWARD, "samples": 4}}
TARGETS = {"reinforce_k2": 1.15, "probe_share": 0.05}
K2 = {**REWARD, "samples": 2}
KNOBS = {"mle": None, "reinforce_k2": K2, "group_k2": {**K2, "normalize_advantage": "group"},
         "kl_loss": {**K2, "kl_coef": 0.005}, "kl_reward": {**K2, "kl_coef": 0.005, "kl_in": "reward"},
         "entropy": {**K2, "entropy_coef": 0.01}, "clipped": {**K2, "clip_range": 0.2, "epochs_per_batch": 2}}


class Clock:
    """Wall and CPU seconds of one call (CUDA synchronised)."""

    def __init__(self, device: str) -> None:
        self.device = device

    def __call__(self, fn) -> tuple[float, float]:
        synchronize(self.device)
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        synchronize(self.device)
        return time.perf_counter() - wall, time.process_time() - cpu


def _setting_at(setting, size: tuple[int, int]):
    """The preset with its data preprocessor padding to ``size`` (it pads every batch to
    the crop size, so a smaller input alone would still cost a full-size step)."""
    setting = copy.copy(setting)
    setting.model = copy.deepcopy(setting.model)
    preprocessor = setting.model.get("data_preprocessor") or {}
    if preprocessor.get("size") is not None:
        preprocessor["size"] = tuple(size)
    return setting


def reward_only(num_classes: int, batch: int, size: tuple[int, int], repeats: int, device: str) -> dict:
    """Forward + backward of the decode head's loss on fixed logits: CE versus reward k=2, k=4."""
    import torch.nn.functional as F

    from rewardsweep.reward.objective import RewardObjective
    from rewardsweep.reward.settings import RewardSettings

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(batch, num_classes, *size, generator=g).to(device).requires_grad_(True)
    gt = torch.randint(0, num_classes, (batch, *size), generator=g)
    gt[torch.rand((batch, *size), generator=g) < 0.05] = 255
    gt = gt.to(device)
    objectives = {name: RewardObjective(RewardSettings.from_config({k: v for k, v in r.items() if k != "aux_head"},
                                                                  num_classes=num_classes), num_classes)
                  for name, r in VARIANTS.items() if r is not None}

    def run(name: str) -> None:
        logits.grad = None
        if name == "mle":
            loss = F.cross_entropy(logits, gt, ignore_index=255)
        else:
            loss, _ = objectives[name](logits, gt)
        loss.backward()

    clock = Clock(device)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for name in VARIANTS:
        run(name)  # warm-up
    for _ in range(repeats):
        for name in VARIANTS:
            times[name].append(clock(lambda: run(name)))
    return {name: _medians(ts) for name, ts in times.items()}


def _medians(ts: list[tuple[float, float]]) -> dict[str, float]:
    return {"wall_s": statistics.median(t[0] for t in ts), "cpu_s": statistics.median(t[1] for t in ts),
            "n": len(ts)}


def full_steps(setting, batch: int, size: tuple[int, int], rounds: int, device: str,
               keep: bool = False, precision: str = "fp32", variants: dict | None = None,
               warmup: bool = True) -> tuple[dict, dict]:
    """Interleaved ``train_step`` of every variant at ``size``: (medians + peak memory, models).

    Without ``warmup`` the step whose memory is measured is also the first timed one."""
    variants = VARIANTS if variants is None else variants
    setting = _setting_at(setting, size)
    models = {name: build_model(setting, reward, batch, device) for name, reward in variants.items()}
    wrappers = {name: optim_wrapper_for(model, precision) for name, model in models.items()}
    data = random_batch(batch, size, setting.num_classes, seed=0)
    clock = Clock(device)
    out: dict[str, dict] = {}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for name in variants:  # warm-up, with its peak memory
        with PeakMemory(device) as peak:
            timed = clock(lambda: models[name].train_step(copy.deepcopy(data), wrappers[name]))
        out[name] = {"peak_gib": peak.gib, "peak_total_gib": peak.total_bytes / 2**30}
        if not warmup:
            times[name].append(timed)
    for _ in range(rounds if warmup else rounds - 1):
        for name in variants:
            times[name].append(clock(lambda: models[name].train_step(copy.deepcopy(data), wrappers[name])))
    for name in variants:
        out[name].update(_medians(times[name]))
    return out, ({"models": models, "wrappers": wrappers, "data": data} if keep else {})


def interleaved(kinds: dict, rounds: int, device: str) -> dict[str, dict]:
    """Time each of ``kinds`` (name -> no-argument call): one warm-up call each, in order, with
    its peak memory, then ``rounds`` rounds with the calls interleaved so that machine noise
    hits them alike; per name its peak and median times."""
    clock = Clock(device)
    out: dict[str, dict] = {}
    for name, fn in kinds.items():
        with PeakMemory(device) as peak:
            fn()
        out[name] = {"peak_gib": peak.gib}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in kinds}
    for _ in range(rounds):
        for name, fn in kinds.items():
            times[name].append(clock(fn))
    for name in kinds:
        out[name].update(_medians(times[name]))
    return out


def knob_steps(setting, batch: int, size: tuple[int, int], rounds: int, device: str) -> dict:
    """Interleaved ``train_step`` of each estimator knob (:data:`KNOBS`) at ``size``, as a trial
    runs it (``runners/reward_step.py``); the clipped surrogate timed per epoch."""
    from rewardsweep.reward.head import reward_heads
    from rewardsweep.runners.reward_step import attach_reference, freeze_start, replaying

    setting = _setting_at(setting, size)
    models = {name: build_model(setting, reward, batch, device) for name, reward in KNOBS.items()}
    wrappers = {name: optim_wrapper_for(model, precision="fp32") for name, model in models.items()}
    start_bytes = None
    for name, model in models.items():
        if (KNOBS[name] or {}).get("kl_coef"):
            start = copy.deepcopy(model)  # the frozen start model a trial holds once
            freeze_start(start)
            attach_reference(model, start)
            start_bytes = sum(t.numel() * t.element_size() for t in [*start.parameters(), *start.buffers()])
    data = random_batch(batch, size, setting.num_classes, seed=0)

    def step(name: str, replay: bool = False):
        model = models[name]
        if replay:
            with replaying(reward_heads(model)):
                return model.train_step(copy.deepcopy(data), wrappers[name])
        return model.train_step(copy.deepcopy(data), wrappers[name])

    kinds = {name: (lambda n=name: step(n)) for name in KNOBS if name != "clipped"}
    kinds["clipped_epoch1"] = lambda: step("clipped")
    kinds["clipped_epoch2"] = lambda: step("clipped", replay=True)
    out: dict = interleaved(kinds, rounds, device)  # the clipped pair warms up in order
    out["start_model_bytes"] = start_bytes
    return out


def probe_cost(built: dict, rounds: int, device: str, every: int) -> dict:
    """Plain k=2 steps, gain probes and gradient probes, interleaved; the share at ``every``."""
    from rewardsweep.runners.probe import GRADIENT_EVERY, probe_step, reward_heads

    model, wrapper, data = built["models"]["reinforce_k2"], built["wrappers"]["reinforce_k2"], built["data"]
    for head in reward_heads(model):
        head.reward_objective.last_batch = None  # holds the last step's graph: not copyable
    start_model = copy.deepcopy(model)
    for p in start_model.parameters():
        p.requires_grad_(False)
    kinds = {
        "step": lambda: model.train_step(copy.deepcopy(data), wrapper),
        "gain_probe": lambda: probe_step(model, start_model, copy.deepcopy(data), wrapper, False, seed=1),
        "gradient_probe": lambda: probe_step(model, start_model, copy.deepcopy(data), wrapper, True, seed=1),
    }
    out = interleaved(kinds, rounds, device)
    # over every * GRADIENT_EVERY steps: GRADIENT_EVERY - 1 gain probes and one gradient probe
    span = every * GRADIENT_EVERY
    for clock_key in ("cpu_s", "wall_s"):
        step = out["step"][clock_key]
        extra = ((GRADIENT_EVERY - 1) * (out["gain_probe"][clock_key] - step)
                 + (out["gradient_probe"][clock_key] - step))
        out[f"share_{clock_key}"] = extra / (span * step)
    out["every"], out["gradient_every"] = every, GRADIENT_EVERY
    return out


def _size(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny-synthetic")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=None, help="default: 8 tiny, 2 otherwise")
    parser.add_argument("--size", type=int, nargs=2, default=None, help="H W (default: 64 64 tiny, 512 1024 R50)")
    parser.add_argument("--rounds", "--repeats", type=int, default=None,
                        help="timed rounds of full steps (default: 20 tiny, 2 otherwise)")
    parser.add_argument("--scale-sizes", nargs="*", default=None, metavar="HxW",
                        help="smaller sizes for the scaling table (default: none tiny; 128x256 256x512 R50)")
    parser.add_argument("--reward-repeats", type=int, default=5, help="repeats of the reward-only timing")
    parser.add_argument("--probe-rounds", type=int, default=1, help="rounds of the probe timing (0: skip)")
    parser.add_argument("--knobs-only", action="store_true", help="only the estimator knobs' steps (section 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/...)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tiny = args.preset == "tiny-synthetic"
    batch = args.batch or (8 if tiny else 2)
    size = tuple(args.size) if args.size else ((64, 64) if tiny else (512, 1024))
    rounds = args.rounds or (20 if tiny else 2)
    scale_sizes = [_size(s) for s in (args.scale_sizes if args.scale_sizes is not None
                                      else ([] if tiny else ["128x256", "256x512"]))]

    from rewardsweep.config.trial import default
    from rewardsweep.runners.presets import resolve_setting

    setting = resolve_setting(args.preset, None if tiny else "/nonexistent")  # no data is read
    key = "wall_s" if args.device.startswith("cuda") else "cpu_s"
    result: dict = {"preset": args.preset, "device": args.device, "batch": batch, "size": list(size),
                    "rounds": rounds, "threads": torch.get_num_threads(), "ratio_clock": key,
                    "targets": TARGETS, "load": {}}
    print(f"{args.preset} on {args.device}, {torch.get_num_threads()} threads, batch {batch}; ratios from {key}")

    if args.knobs_only:
        _knobs_section(result, setting, batch, size, rounds, args.device, key)
        return _write(result, args)
    result["load"]["reward_only"] = machine_load()
    result["reward_only"] = {}
    for s in [*scale_sizes, size]:
        r = reward_only(setting.num_classes, batch, s, args.reward_repeats, args.device)
        result["reward_only"][f"{s[0]}x{s[1]}"] = r
    print(f"\nreward only (decode-head loss forward + backward on fixed logits; {result['load']['reward_only']})")
    print(f"{'size':>10s} {'CE ms':>9s} {'k=2 ms':>9s} {'k=4 ms':>9s}")
    for s, r in result["reward_only"].items():
        print(f"{s:>10s} " + " ".join(f"{r[n][key] * 1e3:9.1f}" for n in VARIANTS))

    result["load"]["full_steps"] = machine_load()
    steps, built = full_steps(setting, batch, size, rounds, args.device, keep=args.probe_rounds > 0)
    result["full_steps"] = {f"{size[0]}x{size[1]}": steps}
    result["load"]["full_steps_end"] = machine_load()
    for s in scale_sizes:
        result["full_steps"][f"{s[0]}x{s[1]}"], _ = full_steps(setting, batch, s, rounds, args.device)
    result["load"]["scale_end"] = machine_load()

    main_key = f"{size[0]}x{size[1]}"
    ratios = {}
    for s, r in result["full_steps"].items():
        mle = r["mle"][key]
        ratios[s] = {n: r[n][key] / mle for n in VARIANTS}
        # the same ratio predicted from the reward-only extra on top of the measured MLE step
        only = result["reward_only"][s]
        ratios[s].update({f"{n}_predicted": (mle + only[n][key] - only["mle"][key]) / mle
                          for n in VARIANTS if n != "mle"})
    result["ratio_to_mle"] = ratios
    print(f"\nfull steps, median of {rounds} interleaved ({result['load']['full_steps']} -> "
          f"{result['load']['scale_end']})")
    print(f"{'size':>10s} {'variant':>14s} {'wall s':>8s} {'cpu s':>8s} {'x MLE':>7s} {'predicted':>9s} {'peak GiB':>9s}")
    for s, r in result["full_steps"].items():
        for n in VARIANTS:
            pred = ratios[s].get(f"{n}_predicted")
            print(f"{s:>10s} {n:>14s} {r[n]['wall_s']:8.2f} {r[n]['cpu_s']:8.2f} {ratios[s][n]:7.3f} "
                  f"{'' if pred is None else f'{pred:.3f}':>9s} {r[n]['peak_gib']:9.2f}")

    _knobs_section(result, setting, batch, size, rounds, args.device, key)
    if args.probe_rounds > 0:
        result["load"]["probe"] = machine_load()
        probe = probe_cost(built, args.probe_rounds, args.device, int(default("diagnostics_every")))
        result["probe"] = probe
        print(f"\nprobe on the k=2 model at {main_key} ({result['load']['probe']})")
        for n in ("step", "gain_probe", "gradient_probe"):
            print(f"{n:>16s} wall {probe[n]['wall_s']:8.2f} s  cpu {probe[n]['cpu_s']:8.2f} s  "
                  f"peak {probe[n]['peak_gib']:.2f} GiB")
        print(f"share of step time at diagnostics_every={probe['every']} (gradients every "
              f"{probe['gradient_every']}th probe): {probe[f'share_{key}'] * 100:.2f}% "
              f"(target <= {TARGETS['probe_share'] * 100:.0f}%)")
    k2 = ratios[main_key]["reinforce_k2"]
    print(f"\nk=2 step / MLE step at {main_key}: {k2:.3f} (predicted from reward only "
          f"{ratios[main_key]['reinforce_k2_predicted']:.3f}; target <= {TARGETS['reinforce_k2']})")
    return _write(result, args)


def _knobs_section(result: dict, setting, batch: int, size, rounds: int, device: str, key: str) -> None:
    result["load"]["knobs"] = machine_load()
    knobs = knob_steps(setting, batch, size, rounds, device)
    result["knobs"] = knobs
    result["load"]["knobs_end"] = machine_load()
    mle = knobs["mle"][key]
    print(f"\nestimator knobs at {size[0]}x{size[1]}, batch {batch}, k = 2, median of {rounds} interleaved "
          f"({result['load']['knobs']} -> {result['load']['knobs_end']})")
    print(f"{'variant':>16s} {'wall s':>8s} {'cpu s':>8s} {'x MLE':>7s} {'peak GiB':>9s}")
    for name, r in knobs.items():
        if isinstance(r, dict):
            r["x_mle"] = r[key] / mle
            print(f"{name:>16s} {r['wall_s']:8.3f} {r['cpu_s']:8.3f} {r['x_mle']:7.3f} {r['peak_gib']:9.2f}")
    if knobs["start_model_bytes"]:
        print(f"frozen start model (KL): {knobs['start_model_bytes'] / 2**20:.1f} MiB of parameters and buffers")


def _write(result: dict, args) -> dict:
    name = f"reward_step_{args.preset}_{args.device}{'_knobs' if args.knobs_only else ''}.json"
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
