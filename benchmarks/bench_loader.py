"""Loader throughput at the real Cityscapes size: images per second by worker count.

    python benchmarks/bench_loader.py [--images 16] [--workers 0 1 2] [--batches 8] [--rounds 2]

Writes a Cityscapes-format fixture at 2048x1024 (``scale_helpers.write_cityscapes_fixture``:
PNGs of ~2 MB like Cityscapes' own, labels in ``*_gtFine_labelTrainIds.png``) and reads it
with the ``deeplabv3-r50-cityscapes`` preset's real pipelines through the loaders a trial
builds (``runners.runner_config``: seeded per-sample augmentation, persistent workers):

- train: decode, random resize (0.5-2x of 2048x1024), 512x1024 crop, flip, photometric
  distortion, packing; batch 2;
- val: decode, resize to 2048x1024, packing; batch 1.

For each worker count the loader starts, hands over one batch (its start-up, reported
apart), then ``--batches`` batches are timed (the consumer does nothing else, so this is
what the loader can supply). Worker counts are interleaved over ``--rounds`` rounds; the
median is reported. Also: the time of each train transform in this process (where the
time goes), and the machine's load. Writes ``benchmarks/results/loader.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_helpers import machine_load, write_cityscapes_fixture  # noqa: E402

# MMSeg publishes one training time per iteration (docs/en/model_zoo.md, "Speed benchmark"):
# 0.85 s/iter for DeepLabV3+ R-101-D8, 1024x512 crops, 2 images per GPU, 8 V100s. Our model,
# DeepLabV3 R50-D8, is lighter: scaled by the V100 inference times of DeepLabV3 R50-D8 and
# R101-D8 at 512x1024 in MMSeg's deeplabv3 metafile (389.11 and 520.83 ms/image), 0.64 s/iter.
# Newer GPUs (an estimate; the GPU check measures it): 4x (A100, amp) and 8x (H100, amp).
PUBLISHED_S_PER_ITER = 0.85
R50_V100_S_PER_ITER = PUBLISHED_S_PER_ITER * 389.11 / 520.83
STEP_ESTIMATES_S = {"V100 fp32, published (DeepLabV3+ R101-D8)": PUBLISHED_S_PER_ITER,
                    "V100 fp32, R50-D8 (scaled)": R50_V100_S_PER_ITER,
                    "A100 amp, R50-D8 (assumed 4x)": R50_V100_S_PER_ITER / 4,
                    "H100 amp, R50-D8 (assumed 8x)": R50_V100_S_PER_ITER / 8}


def _loader(setting, split: str, workers: int, work_dir: str):
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from rewardsweep.runners.loaders import register_loaders
    from rewardsweep.runners.runner_config import runner_config

    init_default_scope("mmseg")
    register_loaders()
    cfg = runner_config(setting, work_dir=work_dir, iters=10**6, batch_size=2, lr={"start": 1e-3},
                        eval_every=1, eval_batch_size=1, seed=0, workers=workers, device="cpu")
    return Runner.build_dataloader(cfg["train_dataloader" if split == "train" else "val_dataloader"], seed=0)


def throughput(setting, split: str, workers: int, batches: int, work_dir: str) -> dict:
    loader = _loader(setting, split, workers, work_dir)
    started = time.perf_counter()
    it = iter(loader)
    first = next(it)
    startup = time.perf_counter() - started
    per_batch = len(first["inputs"])
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            n += len(next(it)["inputs"])
        except StopIteration:  # a val split shorter than asked: start over (startup not timed)
            it = iter(loader)
            n += len(next(it)["inputs"])
    elapsed = time.perf_counter() - t0
    if hasattr(it, "_shutdown_workers"):
        it._shutdown_workers()
    del it, loader
    return {"images_per_s": n / elapsed, "startup_s": startup, "batch": per_batch}


def transform_profile(setting, images: int) -> dict[str, float]:
    """Seconds per image of each train transform, run in this process."""
    import numpy as np
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, TRANSFORMS

    init_default_scope("mmseg")
    cfg = dict(setting.train_dataset)
    pipeline = cfg.pop("pipeline")
    dataset = DATASETS.build({**cfg, "pipeline": []})
    steps = [TRANSFORMS.build(t) for t in pipeline]
    totals = {type(t).__name__: 0.0 for t in steps}
    np.random.seed(0)
    for i in range(min(images, len(dataset))):
        results = dataset.get_data_info(i)
        for t in steps:
            t0 = time.perf_counter()
            results = t(results)
            totals[type(t).__name__] += time.perf_counter() - t0
    return {k: v / min(images, len(dataset)) for k, v in totals.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16, help="train images in the fixture (val: a quarter)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=8, help="timed batches per loader")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--root", default=None, help="fixture folder (default: a temporary one, kept for reuse)")
    parser.add_argument("--size", type=int, nargs=2, default=[1024, 2048], help="fixture H W")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from rewardsweep.runners.presets import resolve_setting

    root = Path(args.root or Path(tempfile.gettempdir()) / "rewardsweep-bench-cityscapes")
    t0 = time.perf_counter()
    write_cityscapes_fixture(root, train=args.images, val=max(2, args.images // 4), size=tuple(args.size))
    png = sorted(root.glob("leftImg8bit/train/*/*.png"))
    mean_mb = sum(p.stat().st_size for p in png) / len(png) / 1e6
    print(f"fixture {root} ({len(png)} train images {args.size[1]}x{args.size[0]}, {mean_mb:.1f} MB per PNG; "
          f"ready in {time.perf_counter() - t0:.0f} s)")
    setting = resolve_setting("deeplabv3-r50-cityscapes", str(root))
    result: dict = {"fixture": {"root": str(root), "images": len(png), "size": args.size, "png_mb": mean_mb},
                    "load_before": machine_load()}
    result["transform_s_per_image"] = transform_profile(setting, 4)
    runs: dict[str, dict[int, list[dict]]] = {"train": {w: [] for w in args.workers},
                                              "val": {w: [] for w in args.workers}}
    with tempfile.TemporaryDirectory() as work_dir:
        for _ in range(args.rounds):
            for split in ("train", "val"):
                for w in args.workers:
                    runs[split][w].append(throughput(setting, split, w, args.batches, work_dir))
    result["load_after"] = machine_load()
    table = {split: {w: {"images_per_s": statistics.median(r["images_per_s"] for r in rs),
                         "startup_s": statistics.median(r["startup_s"] for r in rs)}
                     for w, rs in by_w.items()} for split, by_w in runs.items()}
    result["images_per_s"] = table
    print(f"\nper train image, in this process ({result['load_before']}):")
    for name, s in result["transform_s_per_image"].items():
        print(f"  {name:24s} {s * 1e3:7.1f} ms")
    print(f"\nimages/s by worker count, median of {args.rounds} ({result['load_before']} -> {result['load_after']})")
    print(f"{'workers':>8s} {'train img/s':>12s} {'x 0 workers':>12s} {'val img/s':>10s} {'start-up s':>11s}")
    base = table["train"][args.workers[0]]["images_per_s"]
    for w in args.workers:
        tr, va = table["train"][w], table["val"][w]
        print(f"{w:8d} {tr['images_per_s']:12.2f} {tr['images_per_s'] / base:12.2f} {va['images_per_s']:10.2f} "
              f"{tr['startup_s']:11.2f}")
    need = {name: 3 * 2 / s for name, s in STEP_ESTIMATES_S.items()}
    result["needed_images_per_s_3x"] = need
    per_worker = max(table["train"][w]["images_per_s"] / w for w in args.workers if w)
    result["train_images_per_s_per_worker"] = per_worker
    print(f"\nneeded: 3x the images a GPU step consumes (batch 2); workers at {per_worker:.1f} img/s each:")
    for name, n in need.items():
        print(f"  {name:44s} {STEP_ESTIMATES_S[name]:5.2f} s/step  {n:6.1f} img/s  "
              f"{math.ceil(n / per_worker)} worker(s)")
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / "loader.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
