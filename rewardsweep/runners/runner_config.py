"""Assemble the MMEngine Runner config for one training job (pretraining or a trial).

A preset says what is trained; this module says how: iterations, batch size, schedule,
evaluation interval, seed, loader workers, precision, quiet logging. Keeping it in one
function means pretraining, reward trials and the control arm differ only in the arguments
they pass.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from rewardsweep.runners.presets import ModelSetting
from rewardsweep.config.schedules import lr_schedulers
from rewardsweep.config.trial import default


def runner_config(
    setting: ModelSetting,
    *,
    work_dir: str,
    iters: int,
    batch_size: int,
    lr: dict,
    optimizer: dict | None = None,
    eval_every: int | None = None,
    seed: int = 0,
    load_from: str | None = None,
    model: dict | None = None,
    save_checkpoint: bool = False,
    eval_batch_size: int | None = None,
    device: str | None = None,
    workers: int = 0,
    precision: str | None = None,
    cudnn_benchmark: bool = True,
    seeded_augmentation: bool = True,
) -> dict:
    """A plain dict that ``mmengine.runner.Runner.from_cfg`` accepts.

    ``workers``: loader processes for the train and val loaders (0: load in this process;
    ``runners.loaders.loader_workers`` is the rule a trial uses). ``precision``: ``fp32``
    (None), ``amp`` or ``bf16`` (``runners.precision``). ``cudnn_benchmark``: let cuDNN pick
    the fastest convolution algorithms for the (fixed) crop size; only on CUDA.
    ``seeded_augmentation``: seed each training sample's augmentation from (seed, position,
    index), so the batches do not depend on ``workers`` (trials); False keeps MMEngine's one
    random stream, which only a loader without workers reproduces (MLE pretraining).
    """
    from rewardsweep.runners.loaders import dataloader_config
    from rewardsweep.runners.precision import optim_wrapper_config

    on_cuda = (device or _default_device()).startswith("cuda")
    optimizer = dict(optimizer or default("optimizer"))
    optimizer = {k: v for k, v in optimizer.items() if v is not None}
    optimizer["lr"] = float(lr["start"])
    if optimizer.get("type") != "SGD":
        optimizer.pop("momentum", None)
    val_every = eval_every if eval_every else iters + 1
    cfg: dict[str, Any] = dict(
        default_scope="mmseg",
        work_dir=work_dir,
        # Unique per runner: MMEngine keys its logger and message hub by this name, and two
        # runners built in the same second would otherwise share (stale) scalars.
        experiment_name=f"rewardsweep-{uuid.uuid4().hex[:12]}",
        model=copy.deepcopy(model or setting.model),
        # each sample's augmentation seeded from (seed, position, index): the same batches
        # whatever the worker count (runners/loaders.py)
        train_dataloader=dataloader_config(
            setting.train_dataset, batch_size=batch_size, workers=workers, pin_memory=on_cuda,
            sampler=dict(type="InfiniteSampler", shuffle=True, seed=seed),
            seed=seed if seeded_augmentation else None),
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=val_every),
        optim_wrapper=optim_wrapper_config(optimizer, precision, device),
        param_scheduler=lr_schedulers(lr, iters),
        default_hooks=dict(
            timer=dict(type="IterTimerHook"),
            logger=dict(type="LoggerHook", interval=10**9, log_metric_by_epoch=False),
            param_scheduler=dict(type="ParamSchedulerHook"),
            checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=iters) if save_checkpoint else None,
            sampler_seed=dict(type="DistSamplerSeedHook"),
        ),
        env_cfg=dict(cudnn_benchmark=bool(cudnn_benchmark and on_cuda), mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
                     dist_cfg=dict(backend="gloo")),
        randomness=dict(seed=seed, deterministic=False),
        # MMEngine's own warnings (deprecations, FileClient) are noise to a researcher;
        # our hooks report progress and our checks give the errors that matter.
        log_level="ERROR",
        log_processor=dict(by_epoch=False),
        load_from=load_from,
        resume=False,
        visualizer=dict(type="SegLocalVisualizer", vis_backends=[], name=f"vis-{uuid.uuid4().hex[:12]}"),
    )
    if device:
        cfg["device"] = device
    if eval_every:
        cfg["val_dataloader"] = dataloader_config(
            setting.val_dataset, batch_size=eval_batch_size or setting.pretrain.eval_batch_size,
            workers=workers, pin_memory=on_cuda, sampler=dict(type="DefaultSampler", shuffle=False))
        cfg["val_cfg"] = dict(type="ValLoop")
        cfg["val_evaluator"] = dict(type="PreciseIoUMetric", ignore_index=setting.ignore_index, prefix="val")
    return cfg


def _default_device() -> str:
    """Where MMEngine will train: CUDA if torch sees a GPU (Ray hides the ones not given)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _plain_text_config(cfg: dict):
    """An MMEngine Config whose text form is plain JSON.

    MMEngine renders the config with yapf three times per Runner (config dump, env log,
    runtime info): ~0.65 s per trial on a CPU, more than a short trial's evaluation. JSON
    keeps the same information for logs and checkpoint metadata at a fraction of the cost.
    """
    import json

    from mmengine.config import Config

    class PlainTextConfig(Config):
        @property
        def pretty_text(self) -> str:
            return json.dumps(self.to_dict(), indent=1, default=repr)

    return PlainTextConfig(cfg)


def build_runner(cfg: dict, hooks: list[Any] = ()):
    """A Runner from ``cfg`` with MMSeg, our dataset and our metric registered.

    ``hooks`` are hook *instances* (they hold callbacks, which a config cannot), added
    after construction so the config stays serialisable for MMEngine's config dump.
    """
    from mmengine.runner import Runner

    from rewardsweep.runners.loaders import register_loaders
    from rewardsweep.runners.metric import register_metric
    from rewardsweep.runners.precision import register_precision

    register_metric()
    register_loaders()
    register_precision()
    runner = Runner.from_cfg(_plain_text_config(cfg))
    for hook in hooks:
        runner.register_hook(hook)
    return runner
