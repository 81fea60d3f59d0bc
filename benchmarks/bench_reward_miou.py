"""Per-image mIoU reward: one bincount for the whole batch vs the study's per-image histc loop.

    python benchmarks/bench_reward_miou.py [--device cpu|cuda] [--repeats 7] [--samples 1]

Batch of 8 at 512 x 1024, 19 classes, random predictions and labels with ~10 % of the
labels set to 255 (ignored). The study's approach is re-implemented faithfully: for each
image, MMSeg's ``intersect_and_union`` (mask the ignored pixels, three ``torch.histc``:
intersection, prediction and label areas), then that image's IoU averaged over the
classes present (the study put 0.5 in place of a NaN IoU; here absent classes are left
out, as METHOD.md asks, so that both give the same numbers). Both run interleaved in one
process, ``--repeats`` times each (ours with and without its label-range check); the medians and their ratio are printed and written to
``benchmarks/results/bench_reward_miou.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rewardsweep.reward.miou import per_image_miou  # noqa: E402

IGNORE = 255


def study_intersect_and_union(pred_label, label, num_classes, ignore_index):
    """MMSeg 1.2's ``IoUMetric.intersect_and_union`` (one image)."""
    mask = label != ignore_index
    pred_label = pred_label[mask]
    label = label[mask]
    intersect = pred_label[pred_label == label]
    area_intersect = torch.histc(intersect.float(), bins=num_classes, min=0, max=num_classes - 1)
    area_pred_label = torch.histc(pred_label.float(), bins=num_classes, min=0, max=num_classes - 1)
    area_label = torch.histc(label.float(), bins=num_classes, min=0, max=num_classes - 1)
    area_union = area_pred_label + area_label - area_intersect
    return area_intersect, area_union


def study_per_image_miou(pred, gt, num_classes, ignore_index=IGNORE):
    """The study's loop: one image (and sample) at a time."""
    flat_pred = pred.reshape(-1, *pred.shape[-2:])
    flat_gt = gt.unsqueeze(1).expand(pred.shape).reshape(-1, *pred.shape[-2:]) if pred.dim() == 4 else gt
    rewards = []
    for p, g in zip(flat_pred, flat_gt):
        inter, union = study_intersect_and_union(p, g, num_classes, ignore_index)
        iou = inter / union  # NaN where the class is absent from both
        rewards.append(torch.nanmean(iou) if (union > 0).any() else torch.zeros((), device=pred.device))
    return torch.stack(rewards).view(pred.shape[:-2])


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--samples", type=int, default=1, help="k labellings per image (1: pred is [B, H, W])")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "bench_reward_miou.json"))
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    B, k, H, W, C = args.batch, args.samples, args.height, args.width, args.classes
    shape = (B, H, W) if k == 1 else (B, k, H, W)
    pred = torch.randint(C, shape, generator=gen).to(device)
    gt = torch.randint(C, (B, H, W), generator=gen)
    gt[torch.rand(B, H, W, generator=gen) < 0.1] = IGNORE
    gt = gt.to(device)

    ours_fn = lambda: per_image_miou(pred, gt, C, IGNORE)[0]  # noqa: E731
    unchecked_fn = lambda: per_image_miou(pred, gt, C, IGNORE, check=False)[0]  # noqa: E731
    study_fn = lambda: study_per_image_miou(pred, gt, C, IGNORE)  # noqa: E731

    # warm-up, and the numbers must agree
    ours, study = ours_fn(), study_fn()
    max_abs_diff = (ours.double() - study.double()).abs().max().item()
    if max_abs_diff > 1e-5:
        raise SystemExit(f"per_image_miou and the study's loop disagree: max |diff| = {max_abs_diff:.2e}")

    t_ours, t_unchecked, t_study = [], [], []
    for _ in range(args.repeats):  # interleaved
        t_ours.append(timed(ours_fn, device)[0])
        t_unchecked.append(timed(unchecked_fn, device)[0])
        t_study.append(timed(study_fn, device)[0])
    med_ours, med_study = statistics.median(t_ours), statistics.median(t_study)
    med_unchecked = statistics.median(t_unchecked)
    result = {
        "benchmark": "per_image_miou vs per-image histc loop",
        "shape": list(shape),
        "classes": C,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "median_s": {"bincount": med_ours, "bincount_unchecked": med_unchecked, "histc_loop": med_study},
        "ratio_histc_loop_over_bincount": med_study / med_ours,
        "ratio_histc_loop_over_bincount_unchecked": med_study / med_unchecked,
        "max_abs_diff": max_abs_diff,
    }
    print(f"shape {tuple(shape)}, {C} classes, {device}, {torch.get_num_threads()} thread(s), median of {args.repeats}")
    print(f"  one bincount (per_image_miou):   {med_ours * 1e3:8.1f} ms  (default: label range checked)")
    print(f"  same, check=False:               {med_unchecked * 1e3:8.1f} ms")
    print(f"  study's per-image histc loop:    {med_study * 1e3:8.1f} ms")
    print(f"  ratio loop / bincount:           {med_study / med_ours:8.2f}x   (max |diff| {max_abs_diff:.1e})")
    print(f"  ratio loop / bincount unchecked: {med_study / med_unchecked:8.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {out}")
    return result


if __name__ == "__main__":
    main()
