"""Cost of a reward-tuning step relative to an MLE step, measured side by side.

    python benchmarks/bench_reward_step.py [--preset tiny-synthetic] [--device cpu]
        [--batch 8] [--size 64 64] [--repeats 30]

Builds the same preset model three ways (plain cross-entropy; REINFORCE k=1 with the
greedy baseline; REINFORCE k=4 with sample_loo), then times full training steps
(forward, loss, backward, optimizer step) on identical random batches, interleaving the
three variants round-robin so machine noise hits them equally. Reports the median step
time of each and the ratios to MLE; targets (issue 3): k=1 greedy <= 1.15x, k=4
sample_loo <= 1.4x. Writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch

VARIANTS = {
    "mle": None,
    "reinforce_k1_greedy": {"estimator": "reinforce", "samples": 1, "baseline": {"kind": "greedy"}},
    "reinforce_k4_sample_loo": {"estimator": "reinforce", "samples": 4, "baseline": {"kind": "sample_loo"}},
}


def _batch(num_classes: int, batch: int, size: tuple[int, int], device: str, seed: int):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, *size, generator=g).to(device)
    samples = []
    for _ in range(batch):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, *size), generator=g).to(device))
        s.set_metainfo(dict(img_shape=size, ori_shape=size, pad_shape=size))
        samples.append(s)
    return inputs, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny-synthetic")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=None, help="H W (default: 64 64 tiny, 512 1024 R50)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from mmseg.registry import MODELS

    from rewardsweep.reward.head import register_reward_heads, wrap_head_config
    from rewardsweep.runners.presets import resolve_setting

    setting = resolve_setting(args.preset, "/nonexistent" if args.preset != "tiny-synthetic" else None)
    register_reward_heads()
    size = tuple(args.size) if args.size else ((64, 64) if args.preset == "tiny-synthetic" else (512, 1024))
    models, optims = {}, {}
    for name, reward in VARIANTS.items():
        cfg = copy.deepcopy(setting.model)
        if reward is not None:
            cfg["decode_head"] = wrap_head_config(cfg["decode_head"], {**reward, "batch_size": args.batch})
        torch.manual_seed(0)
        model = MODELS.build(cfg).to(args.device).train()
        models[name] = model
        optims[name] = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    inputs, samples = _batch(setting.num_classes, args.batch, size, args.device, seed=0)

    def step(name: str) -> float:
        sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
        sync()
        t0 = time.perf_counter()
        losses = models[name].loss(inputs, samples)
        loss = sum(v for k, v in losses.items() if "loss" in k)
        optims[name].zero_grad()
        loss.backward()
        optims[name].step()
        sync()
        return time.perf_counter() - t0

    for name in VARIANTS:  # warm-up
        for _ in range(3):
            step(name)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name in VARIANTS:
            times[name].append(step(name))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    result = {
        "preset": args.preset, "device": args.device, "batch": args.batch, "size": list(size),
        "repeats": args.repeats, "threads": args.threads, "median_step_s": medians,
        "ratio_to_mle": {name: medians[name] / medians["mle"] for name in VARIANTS},
        "targets": {"reinforce_k1_greedy": 1.15, "reinforce_k4_sample_loo": 1.4},
    }
    for name in VARIANTS:
        print(f"{name:26s} median {medians[name] * 1e3:8.2f} ms   x{result['ratio_to_mle'][name]:.3f} of MLE")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"reward_step_{args.preset}_{args.device}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
