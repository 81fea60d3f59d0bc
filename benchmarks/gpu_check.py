"""The GPU check: a Cityscapes R50-D8 trial on one GPU, measured in one command (< 8 minutes).

    python benchmarks/gpu_check.py                       # on a GPU machine
    python benchmarks/gpu_check.py --device cpu --small  # the same code on a CPU, small (the tests run it)

On generated Cityscapes-size data (``scale_helpers.write_cityscapes_fixture``: 2048x1024
PNGs in the real folder layout) and a randomly initialised DeepLabV3 R50-D8 start
checkpoint (the timings do not depend on the weights), with the ``deeplabv3-r50-cityscapes``
preset as a study runs it:

1. **steps**: REINFORCE (k = 2, sample_loo) versus MLE step time at batch 2, 512x1024, in
   fp32 and amp (``--small`` on CPU: fp32 and bf16), interleaved, with each step's peak
   memory above the resident models (``benchmarks/bench_reward_step.full_steps``);
2. **trials**: one reward trial per precision through ``runners.trial.run_trial`` (real
   loaders with the worker rule, the probe at its default interval, one evaluation of the
   val split at full resolution as the preset evaluates): the share of training time spent
   waiting for data, evaluation seconds per image, the trial's peak GPU memory;
3. **two trials on one GPU**: a real ``launch`` (local Ray) of a reward trial and its MLE
   control with ``resources: {gpu: 0.5}`` (``--small``: ``gpu: 0``): both must finish, and
   their records say how much they overlapped and how much memory each took.

Prints one table and writes ``benchmarks/results/gpu_check.json`` (or ``--out``).
``--small`` shrinks everything (a 64x128 crop of 128x256 images, a few steps) so that the
check runs on a CPU in well under a minute; what it measures then is only that the check works.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PRESET = "deeplabv3-r50-cityscapes"
REWARD = {"estimator": "reinforce", "samples": 2, "baseline": {"kind": "sample_loo"}}
FULL = dict(size=(1024, 2048), crop=(512, 1024), train=24, val=8, warmup=True, rounds=10, trial_steps=60,
            pair_steps=40, precisions=("fp32", "amp"), trial_precisions=("fp32", "amp"))
SMALL = dict(size=(64, 128), crop=(32, 64), train=4, val=1, warmup=False, rounds=1, trial_steps=1,
             pair_steps=1, precisions=("fp32", "bf16"), trial_precisions=("fp32",))


def small_config(folder: Path, data_root: Path, crop: tuple[int, int], scale: tuple[int, int]) -> Path:
    """The preset's MMSeg config at a reduced crop and scale (a config file, so that Ray's
    workers read the same model as this process)."""
    from rewardsweep.runners.presets import mmseg_config_dir

    base = mmseg_config_dir() / "deeplabv3" / "deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py"
    w, h = scale[1], scale[0]
    text = f"""_base_ = [{str(base)!r}]
crop_size = {tuple(crop)!r}
model = dict(data_preprocessor=dict(size=crop_size))
train_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=({w}, {h}), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75), dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'), dict(type='PackSegInputs')]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=({w}, {h}), keep_ratio=True),
                 dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
train_dataloader = dict(dataset=dict(data_root={str(data_root)!r}, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root={str(data_root)!r}, pipeline=test_pipeline))
"""
    path = folder / "deeplabv3_r50-d8_cityscapes-small.py"
    path.write_text(text)
    return path


def start_checkpoint(setting, folder: Path) -> dict:
    """A randomly initialised MLE model as the start (what run_trial's ``start`` holds)."""
    import torch
    from mmseg.registry import MODELS

    from rewardsweep.checkpoint_file import file_hash

    torch.manual_seed(0)
    model = MODELS.build(setting.model)
    path = folder / "start.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    # the file's real hash: every trial checks its start against it before it trains
    return {"checkpoint": str(path), "checkpoint_hash": file_hash(path), "dataset": setting.dataset_id,
            "miou": 0.0, "per_class_iou": [0.0] * setting.num_classes, "class_names": list(setting.class_names)}


def step_times(setting, p: dict, device: str) -> dict:
    from bench_reward_step import full_steps

    variants = {"mle": None, "reinforce_k2": {**REWARD, "aux_head": "mle"}}
    out = {}
    for precision in p["precisions"]:
        steps, _ = full_steps(setting, 2, p["crop"], p["rounds"], device, precision=precision, variants=variants,
                              warmup=p["warmup"])
        out[precision] = steps
    return out


def one_trial(model: str, data_root: Path, start: dict, steps: int, precision: str, cpus: int) -> dict:
    from rewardsweep.runners.trial import run_trial

    config = dict(model=model, data_root=str(data_root), start=start, steps=steps, eval_every=steps,
                  batch_size=2, threads=cpus, seed=0, precision=precision, **REWARD)
    record = run_trial(config, write=False)
    return record


def pair_on_one_gpu(model: str, data_root: Path, checkpoint: str, steps: int, precision: str, cpus: int,
                    gpu: float, folder: Path) -> dict:
    """A reward trial and its control at ``gpu`` each, launched with a local Ray."""
    from rich.console import Console

    from rewardsweep.study import layout, records
    from rewardsweep.sweep.launch import launch

    spec = folder / "pair.yaml"
    fixed = {**REWARD, **({"precision": precision} if precision != "fp32" else {})}
    spec.write_text(json.dumps({
        "name": "gpu-check-pair", "model": model, "data_root": str(data_root), "checkpoint": checkpoint,
        "seeds": 1, "steps": steps, "eval_every": steps, "batch_size": 2, "control": "mle", "fixed": fixed,
        "resources": {"cpu": cpus, "gpu": gpu}, "wandb": {"mode": "disabled"}, "retries": 0}))
    began = time.perf_counter()
    result = launch(spec, address="local", storage=str(folder / "runs"), wandb_mode="disabled",
                    console=Console(file=open(os.devnull, "w")))
    wall = time.perf_counter() - began
    recs = [records.read_record(p) for p in layout.iter_record_paths(result.study_dir)]
    spans = [(_ts(r["started_at"]), _ts(r["finished_at"])) for r in recs if r.get("started_at")]
    overlap = max(0.0, min(e for _, e in spans) - max(s for s, _ in spans)) if len(spans) == 2 else 0.0
    return {"statuses": sorted(r["status"] for r in recs), "arms": sorted(r["arm"] for r in recs),
            "launch_wall_s": wall, "fit_s": result.fit_s, "slots": result.slots,
            "trial_total_s": [r["timings"]["total_s"] for r in recs], "overlap_s": overlap,
            "trial_train_s": [r["timings"]["train_s"] for r in recs], "steps": steps,
            "peak_gpu_memory_gib": [r["timings"].get("peak_gpu_memory_gib") for r in recs],
            "resources": {"cpu": cpus, "gpu": gpu}}


def say(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"gpu_check: {message}", file=sys.stderr, flush=True)


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def render(result: dict) -> str:
    """One table: what was measured, its value, and what it is compared with."""
    rows: list[tuple[str, str, str]] = []
    for precision, steps in result["steps"].items():
        mle, k2 = steps["mle"], steps["reinforce_k2"]
        rows.append((f"step {precision}: MLE", f"{mle['wall_s'] * 1e3:.0f} ms",
                     f"+{mle['peak_gib']:.2f} GiB peak over the models"))
        rows.append((f"step {precision}: reward k=2", f"{k2['wall_s'] * 1e3:.0f} ms = "
                     f"{k2['wall_s'] / mle['wall_s']:.3f}x MLE", f"target <= 1.15x; +{k2['peak_gib']:.2f} GiB peak"))
    for precision, t in result["trials"].items():
        tm = t["timings"]
        rows.append((f"trial {precision}: data wait", f"{tm['data_wait_s'] / tm['train_s'] * 100:.1f}% of training",
                     f"{tm['workers']} loader workers, {t['steps']} steps, {tm['train_s'] / t['steps']:.2f} s/step"))
        rows.append((f"trial {precision}: evaluation", f"{tm['eval_s'] / t['val_images']:.2f} s per image",
                     f"whole {t['image_size']} images; 500 Cityscapes val images: "
                     f"{tm['eval_s'] / t['val_images'] * 500 / 60:.1f} min"))
        if tm.get("peak_gpu_memory_gib") is not None:
            rows.append((f"trial {precision}: peak GPU memory", f"{tm['peak_gpu_memory_gib']:.2f} GiB",
                         "batch 2 (max_memory_allocated)"))
    pair = result["pair"]
    mem = ", ".join("-" if m is None else f"{m:.2f}" for m in pair["peak_gpu_memory_gib"])
    rows.append((f"2 trials, gpu {pair['resources']['gpu']:g} each", ", ".join(pair["statuses"]),
                 f"training throughput {pair['throughput_vs_one']:.2f}x one trial at a time; overlap "
                 f"{pair['overlap_s']:.0f} s of {max(pair['trial_total_s']):.0f} s; peak GiB {mem}; "
                 f"launch {pair['launch_wall_s']:.0f} s"))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    head = f"GPU check on {result['device_name']} ({result['load']})"
    lines = [head, "-" * len(head)]
    lines += [f"{a:<{width[0]}}  {b:<{width[1]}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--small", action="store_true", help="tiny sizes and counts (a CPU run of the check)")
    parser.add_argument("--cpus", type=int, default=None, help="CPUs of the single trial (default: all)")
    parser.add_argument("--out", default=str(HERE / "results" / "gpu_check.json"))
    parser.add_argument("--work-dir", default=None, help="where the data and studies go (default: a temp folder)")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch: the trials and Ray see no GPU
    import torch

    from scale_helpers import machine_load, write_cityscapes_fixture

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device; run with --device cpu --small to check the check")
    p = SMALL if args.small else FULL
    cores = len(os.sched_getaffinity(0))
    cpus = args.cpus or cores
    began = time.perf_counter()
    result: dict = {"device": args.device, "small": args.small, "cores": cores, "load": machine_load(),
                    "device_name": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor()
                    or "CPU", "torch": torch.__version__, "parameters": {k: list(v) if isinstance(v, tuple) else v
                                                                         for k, v in p.items()}}
    from rewardsweep.runners.presets import resolve_setting

    if args.work_dir:
        Path(args.work_dir).mkdir(parents=True, exist_ok=True)  # a new folder is fine, as for --out
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        folder = Path(tmp)
        say(f"writing {p['train']} + {p['val']} Cityscapes-format images of {p['size'][1]}x{p['size'][0]} "
            f"({result['load']})")
        data = write_cityscapes_fixture(folder / "cityscapes", p["train"], p["val"], p["size"])
        model = str(small_config(folder, data, p["crop"], (p["size"][0], p["size"][1]))) if args.small else PRESET
        setting = resolve_setting(model, str(data))
        start = start_checkpoint(setting, folder)
        result["data_s"] = time.perf_counter() - began
        torch.set_num_threads(max(1, min(cpus, cores)))
        say(f"steps: MLE and reward k=2 in {', '.join(p['precisions'])}, {p['rounds']} rounds")
        result["steps"] = step_times(setting, p, args.device)
        result["trials"] = {}
        for precision in p["trial_precisions"]:
            say(f"one {precision} reward trial: {p['trial_steps']} steps, then {p['val']} val images")
            record = one_trial(model, data, start, p["trial_steps"], precision, cpus)
            if record["status"] != "finished":
                raise SystemExit(f"gpu_check: the {precision} trial {record['status']}: {record.get('error')}")
            result["trials"][precision] = {"timings": record["timings"], "steps": p["trial_steps"],
                                           "val_images": p["val"], "image_size": f"{p['size'][1]}x{p['size'][0]}"}
        pair_precision = p["trial_precisions"][-1]
        say(f"two trials at gpu {0.5 if args.device == 'cuda' else 0.0:g} each, launched with a local Ray")
        result["pair"] = pair = pair_on_one_gpu(model, data, start["checkpoint"], p["pair_steps"], pair_precision,
                                         max(1, cores // 2), 0.5 if args.device == "cuda" else 0.0, folder)
    # training throughput of the pair against one trial at a time (the single trial's s/step)
    single = result["trials"][pair_precision]["timings"]["train_s"] / p["trial_steps"]
    pair["throughput_vs_one"] = 2 * pair["steps"] * single / max(pair["trial_train_s"])
    result["total_s"] = time.perf_counter() - began
    table = render(result)
    print(table)
    print(f"total {result['total_s']:.0f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**result, "table": table}, indent=1, default=str))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
