"""One full-resolution evaluation per image: DeepLabV3 R50-D8 on 2048x1024 Cityscapes images.

    python benchmarks/bench_eval.py [--images 2] [--threads 2] [--device cpu|cuda]

What a trial's evaluation does, as the ``deeplabv3-r50-cityscapes`` preset evaluates (MMSeg's
test pipeline: resize to 2048x1024; ``test_cfg: mode='whole'``, the whole image through the
network at once; our ``PreciseIoUMetric``): a runner built by ``runners.runner_config`` with
a randomly initialised checkpoint (the time does not depend on the weights) runs
``runner.val()`` over ``--images`` generated Cityscapes-format val images. Reported: seconds
(wall and CPU) per image, and what an evaluation of Cityscapes' 500 val images costs at that
rate. Writes ``benchmarks/results/eval.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_helpers import machine_load, write_cityscapes_fixture  # noqa: E402

CITYSCAPES_VAL = 500


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--root", default=None, help="fixture folder (default: a temporary one, kept for reuse)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "eval.json"))
    args = parser.parse_args(argv)

    import torch
    from mmseg.registry import MODELS

    from rewardsweep.runners.hooks import make_event_hook
    from rewardsweep.runners.presets import resolve_setting
    from rewardsweep.runners.runner_config import build_runner, runner_config

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    root = Path(args.root or Path(tempfile.gettempdir()) / "rewardsweep-bench-cityscapes-val")
    write_cityscapes_fixture(root, train=1, val=args.images)
    setting = resolve_setting("deeplabv3-r50-cityscapes", str(root))
    result: dict = {"device": device, "threads": torch.get_num_threads(), "images": args.images,
                    "test_cfg": setting.model.get("test_cfg"), "load_before": machine_load()}
    with tempfile.TemporaryDirectory() as work_dir:
        torch.manual_seed(0)
        checkpoint = Path(work_dir) / "random.pth"
        torch.save({"state_dict": MODELS.build(setting.model).state_dict()}, checkpoint)
        cfg = runner_config(setting, work_dir=work_dir, iters=1, batch_size=1, lr={"start": 1e-3}, eval_every=1,
                            load_from=str(checkpoint), eval_batch_size=1, device=device)
        for key in ("train_dataloader", "train_cfg", "optim_wrapper", "param_scheduler"):
            cfg.pop(key)
        hook = make_event_hook(None, setting.class_names)
        runner = build_runner(cfg, hooks=[hook])
        runner.val()  # warm-up: the first image pays for one-time set-up (kernel selection)
        wall, cpu = time.perf_counter(), time.process_time()
        runner.val()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    result["load_after"] = machine_load()
    result["s_per_image"] = {"wall": wall / args.images, "cpu": cpu / args.images}
    result["cityscapes_val_minutes"] = {k: v * CITYSCAPES_VAL / 60 for k, v in result["s_per_image"].items()}
    print(f"evaluation, DeepLabV3 R50-D8, 2048x1024 whole-image, {device}, {result['threads']} threads "
          f"({result['load_before']} -> {result['load_after']})")
    print(f"  per image: wall {result['s_per_image']['wall']:.1f} s, CPU {result['s_per_image']['cpu']:.1f} s "
          f"(mean of {args.images} images, after a warm-up pass over them)")
    print(f"  Cityscapes val (500 images) at this rate: {result['cityscapes_val_minutes']['wall']:.0f} min wall")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
