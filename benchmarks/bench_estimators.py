"""The estimator menu (issue 24): the reward-only cost of each knob, and why ratios are per pixel.

    python benchmarks/bench_estimators.py [--batch 8] [--size 64 64] [--classes 6] [--repeats 20]
    python benchmarks/bench_estimators.py --ratios [--epochs 4] [--lr 1e-2] [--clip 0.2]

Cost (default): the reward objective alone on random logits ``[B, C, H, W]`` (no model):
the objective's call plus the backward pass to the logits, for each knob, against the
same for the cross-entropy of an MLE step (``estimators.weighted_cross_entropy``),
interleaved round-robin so machine noise hits every variant alike; medians and ratios to
the cross-entropy and to today's default objective. The KL rows get the start model's logits as an input: the start
model's own forward pass (part 2 of the issue) is not in them. The clipped surrogate has
two rows: its first epoch (a normal call, which also keeps the batch) and one more epoch
(``replay``), the cost of each extra epoch. Writes JSON to benchmarks/results/.

Ratios (``--ratios``): the tiny preset's start checkpoint on one batch of 8 training
images, today's default objective (sample_loo, k = 2, batch-normalised advantages) with
the clipped surrogate, SGD at the preset's tuning lr, several epochs on the batch (dropout
off, as PPO implementations do; BatchNorm in train mode). After each update it reports the
per-pixel ratios ``pi(y_p)/pi_old(y_p)`` of the batch's labellings, the share clipped, the
exact per-pixel KL(pi_old || pi), and the log-ratio of each whole labelling (the sum over
its pixels): the ratio a per-image importance weight would use. A first line measures
dropout's own ratio noise (two forward passes, no update).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

IGNORE = 255

VARIANTS: dict[str, dict | None] = {
    "mle (cross-entropy)": None,
    "reinforce (today: sample_loo, batch std)": {},
    "normalize_advantage: false": {"normalize_advantage": False},
    "GRPO (group_mean, group std)": {"baseline": {"kind": "group_mean"}, "normalize_advantage": "group"},
    "Dr. GRPO (group_mean, no std)": {"baseline": {"kind": "group_mean"}, "normalize_advantage": False},
    "kl_coef (loss)": {"kl_coef": 5e-3},
    "kl_coef, kl_in: reward": {"kl_coef": 5e-3, "kl_in": "reward"},
    "entropy_coef": {"entropy_coef": 1e-2},
    "clipped surrogate, epoch 1": {"clip_range": 0.2, "epochs_per_batch": 4},
    "clipped surrogate, each extra epoch": {"clip_range": 0.2, "epochs_per_batch": 4, "_replay": True},
    "GRPO k=8 + kl (loss)": {"samples": 8, "baseline": {"kind": "group_mean"}, "normalize_advantage": "group",
                             "kl_coef": 5e-3},
}


def cost(args) -> dict:
    from rewardsweep.reward.estimators import weighted_cross_entropy
    from rewardsweep.reward.objective import RewardObjective
    from rewardsweep.reward.settings import RewardSettings

    g = torch.Generator().manual_seed(0)
    B, C, (H, W) = args.batch, args.classes, args.size
    logits = torch.randn(B, C, H, W, generator=g) * 2
    gt = torch.randint(C, (B, H, W), generator=g)
    gt[torch.rand(B, H, W, generator=g) < 0.05] = IGNORE
    ref = logits + 0.3 * torch.randn(B, C, H, W, generator=g)
    objectives = {}
    for name, knobs in VARIANTS.items():
        if knobs is not None:
            config = {"samples": 2, **{k: v for k, v in knobs.items() if not k.startswith("_")}}
            objectives[name] = RewardObjective(RewardSettings.from_config(config, batch_size=B), C, IGNORE)

    def run(name: str, seed: int) -> float:
        knobs = VARIANTS[name]
        z = logits.clone().requires_grad_()
        gen = torch.Generator().manual_seed(seed)
        obj = objectives.get(name)
        if obj is not None:
            obj.rollout = None  # the benchmark starts every batch afresh
        if knobs and knobs.get("_replay"):
            obj(logits, gt, gen, ref_logits=ref)  # draws the batch (not timed)
            t0 = time.perf_counter()
            loss, _ = obj.replay(z)
        else:
            t0 = time.perf_counter()
            loss = weighted_cross_entropy(z, gt, ignore_index=IGNORE).mean() if obj is None else \
                obj(z, gt, gen, ref_logits=ref)[0]
        loss.backward()
        return time.perf_counter() - t0

    for name in VARIANTS:  # warm-up
        run(name, 0)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for r in range(args.repeats):
        for name in VARIANTS:
            times[name].append(run(name, r + 1))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    mle, today = medians["mle (cross-entropy)"], medians["reinforce (today: sample_loo, batch std)"]
    print(f"reward objective + backward to the logits, B={B} C={C} {H}x{W}, {args.repeats} repeats, "
          f"{torch.get_num_threads()} thread(s)")
    print("| variant | median ms | x cross-entropy | x today's reinforce |\n|---|---|---|---|")
    for name in VARIANTS:
        print(f"| {name} | {medians[name] * 1e3:.1f} | {medians[name] / mle:.2f} | {medians[name] / today:.2f} |")
    return {"batch": B, "classes": C, "size": [H, W], "repeats": args.repeats, "threads": torch.get_num_threads(),
            "median_s": medians, "ratio_to_ce": {n: m / mle for n, m in medians.items()},
            "ratio_to_reinforce": {n: m / today for n, m in medians.items()}}


# --------------------------------------------------------------------------------------
# Ratio granularity
# --------------------------------------------------------------------------------------


def _batch(setting, n: int, device: str):
    """n training images of the tiny preset and their labels, through the model's preprocessor."""
    import mmcv
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from rewardsweep.runners import synthetic_data

    root = synthetic_data.ensure_dataset()
    names = sorted((root / "img_dir" / "train").glob("*.png"))[:n]
    inputs, samples = [], []
    for path in names:
        img = mmcv.imread(str(path))  # BGR, as MMSeg's LoadImageFromFile
        label = mmcv.imread(str(root / "ann_dir" / "train" / path.name), flag="unchanged")
        inputs.append(torch.from_numpy(img).permute(2, 0, 1).contiguous())
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.from_numpy(label.astype("int64"))[None])
        s.set_metainfo(dict(img_shape=img.shape[:2], ori_shape=img.shape[:2], pad_shape=img.shape[:2]))
        samples.append(s)
    return {"inputs": inputs, "data_samples": samples}


def ratios(args) -> dict:
    from rewardsweep.mmcv_compat import import_mmseg

    import_mmseg()
    from mmengine.runner import load_checkpoint
    from mmseg.models.utils import resize
    from mmseg.registry import MODELS

    from rewardsweep.reward.objective import RewardObjective
    from rewardsweep.reward.regularizers import kl_map, per_image_mean
    from rewardsweep.reward.estimators import log_policy, sample_log_probs
    from rewardsweep.reward.settings import RewardSettings
    from rewardsweep.runners.presets import resolve_setting
    from rewardsweep.runners.pretrain import ensure_start

    torch.manual_seed(0)
    start = ensure_start("tiny-synthetic", "auto", show_progress=True)
    setting = resolve_setting("tiny-synthetic", None)
    model = MODELS.build(setting.model)
    load_checkpoint(model, start["checkpoint"], map_location="cpu", logger="silent")
    model.train()
    data = model.data_preprocessor(_batch(setting, args.batch, "cpu"), True)
    gt = torch.stack([s.gt_sem_seg.data[0] for s in data["data_samples"]])

    def forward() -> torch.Tensor:
        z = model.decode_head.forward(model.extract_feat(data["inputs"]))
        return resize(z, size=gt.shape[-2:], mode="bilinear", align_corners=False)

    def per_pixel(z_new: torch.Tensor, z_old: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        return sample_log_probs(z_new, samples) - sample_log_probs(z_old, samples)

    valid = (gt != IGNORE).unsqueeze(1)
    lines = {}
    # dropout's own noise: two forward passes in train mode, no update
    with torch.no_grad():
        a, b = forward(), forward()
        samples = torch.distributions.Categorical(logits=a.permute(0, 2, 3, 1)).sample((2,)).permute(1, 0, 2, 3)
        lr = per_pixel(b, a, samples)[valid.expand(-1, 2, -1, -1)]
    lines["dropout on, no update"] = {"log_ratio_min": lr.min().item(), "log_ratio_max": lr.max().item()}
    for m in model.modules():  # dropout off for the epochs (PPO implementations do the same)
        if isinstance(m, (torch.nn.Dropout, torch.nn.Dropout2d)):
            m.eval()
    objective = RewardObjective(RewardSettings.from_config(
        {"samples": 2, "clip_range": args.clip, "epochs_per_batch": args.epochs}, batch_size=args.batch),
        setting.num_classes, IGNORE)
    optim = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    z = forward()
    loss, _ = objective(z, gt, torch.Generator().manual_seed(0))
    r = objective.rollout
    optim.zero_grad()
    loss.backward()
    optim.step()
    n_valid = valid.sum((-2, -1)).squeeze(1).float()  # pixels per image
    for epoch in range(2, args.epochs + 1):
        z = forward()
        loss, stats = objective.replay(z)
        with torch.no_grad():
            lr = sample_log_probs(z.detach(), r.samples) - r.old_log_probs  # [B, k, H, W]
            px = lr[valid.expand_as(lr)]
            per_labelling = (lr * valid).sum((-2, -1))  # [B, k]: log of the labelling's ratio
            outside = ((per_labelling < torch.log(torch.tensor(1 - args.clip))) |
                       (per_labelling > torch.log(torch.tensor(1 + args.clip)))).float().mean()
            geometric = per_labelling / n_valid[:, None]
            kl = per_image_mean(kl_map(r.old_log_policy, log_policy(z.detach())), gt, IGNORE).mean()
        q = torch.quantile(px, torch.tensor([0.01, 0.5, 0.99]))
        lines[f"epoch {epoch}"] = {
            "ratio_min": px.exp().min().item(), "ratio_q01": q[0].exp().item(), "ratio_q99": q[2].exp().item(),
            "ratio_max": px.exp().max().item(), "clip_fraction": stats["clip_fraction"], "kl_old_per_pixel": kl.item(),
            "labelling_log_ratio_min": per_labelling.min().item(),
            "labelling_log_ratio_max": per_labelling.max().item(),
            "labellings_outside_clip": outside.item(),
            "geometric_mean_ratio_min": geometric.exp().min().item(),
            "geometric_mean_ratio_max": geometric.exp().max().item(),
        }
        optim.zero_grad()
        loss.backward()
        optim.step()
    pixels = int(valid[0].sum())
    print(f"tiny-synthetic start checkpoint, batch {args.batch} at {tuple(gt.shape[-2:])} ({pixels} valid pixels "
          f"in image 0), sample_loo k=2 batch-normalised, clip {args.clip}, SGD lr {args.lr} momentum 0.9")
    d = lines["dropout on, no update"]
    print(f"dropout on, no update: per-pixel log-ratio in [{d['log_ratio_min']:.3g}, {d['log_ratio_max']:.3g}]")
    print("| epoch | per-pixel ratio min / 1% / 99% / max | clip fraction | KL(old||new) per pixel "
          "| labelling log-ratio min / max | labellings outside [1-eps, 1+eps] | geometric-mean ratio min / max |")
    print("|---|---|---|---|---|---|---|")
    for name, v in lines.items():
        if name.startswith("epoch"):
            print(f"| {name[6:]} | {v['ratio_min']:.3f} / {v['ratio_q01']:.3f} / {v['ratio_q99']:.3f} / "
                  f"{v['ratio_max']:.3f} | {v['clip_fraction']:.4f} | {v['kl_old_per_pixel']:.2e} | "
                  f"{v['labelling_log_ratio_min']:.1f} / {v['labelling_log_ratio_max']:.1f} | "
                  f"{v['labellings_outside_clip']:.2f} | {v['geometric_mean_ratio_min']:.4f} / "
                  f"{v['geometric_mean_ratio_max']:.4f} |")
    return {"batch": args.batch, "size": list(gt.shape[-2:]), "lr": args.lr, "clip": args.clip,
            "epochs": args.epochs, "lines": lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratios", action="store_true", help="the ratio-granularity measurement instead of the cost")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), help="H W (cost)")
    parser.add_argument("--classes", type=int, default=6, help="C (cost; the tiny preset has 6, Cityscapes 19)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=4, help="epochs on the batch (ratios)")
    parser.add_argument("--lr", type=float, default=1e-2, help="SGD lr (ratios; the tiny preset's tuning lr)")
    parser.add_argument("--clip", type=float, default=0.2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    if args.ratios:
        result, path = ratios(args), out / "estimators_ratios.json"
    else:
        result = cost(args)
        path = out / f"estimators_cost_{args.size[0]}x{args.size[1]}_b{args.batch}_c{args.classes}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
