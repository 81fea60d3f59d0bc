"""Loaders: worker processes from the trial's CPUs, the same batches whatever the worker count.

The batch sequence is compared after MMSeg's real Cityscapes augmentation (random resize,
crop, flip, photometric distortion) on a Cityscapes-format fixture, at a reduced crop.
Costs ~10 s (two loaders start worker processes).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from rewardsweep.runners.loaders import loader_workers
from tests.dataset_fixtures import with_crop, write_cityscapes


def test_the_worker_rule():
    assert loader_workers(4, on_gpu=False) == 0          # a CPU trial: every core trains the network
    assert loader_workers(4, on_gpu=True) == 3           # a GPU trial: one core drives the GPU
    assert loader_workers(1, on_gpu=True) == 1
    assert loader_workers(8, on_gpu=True, workers=2) == 2  # resources.workers wins
    assert loader_workers(8, on_gpu=False, workers=0) == 0


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    from rewardsweep.runners.presets import resolve_setting

    root = write_cityscapes(tmp_path_factory.mktemp("cityscapes"), {"train": 5, "val": 2}, size=(128, 256))
    return with_crop(resolve_setting("deeplabv3-r50-cityscapes", str(root)), (64, 128))


def _batches(setting, workers: int, seed: int, n: int = 4, tmp_path=None) -> list[tuple]:
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from rewardsweep.runners.loaders import register_loaders
    from rewardsweep.runners.runner_config import runner_config

    init_default_scope("mmseg")
    register_loaders()
    cfg = runner_config(setting, work_dir=str(tmp_path), iters=n, batch_size=2, lr={"start": 1e-3},
                        seed=seed, workers=workers, device="cpu")
    assert cfg["train_dataloader"]["num_workers"] == workers
    assert cfg["train_dataloader"]["persistent_workers"] is (workers > 0)
    loader = Runner.build_dataloader(cfg["train_dataloader"], seed=seed)
    out, it = [], iter(loader)
    for _ in range(n):
        batch = next(it)
        out.append((torch.stack(batch["inputs"]),
                    torch.stack([s.gt_sem_seg.data for s in batch["data_samples"]]),
                    [s.metainfo.get("flip") for s in batch["data_samples"]]))
    del it, loader
    return out


def test_the_batch_sequence_does_not_depend_on_the_worker_count(setting, tmp_path):
    numpy_before, python_before = np.random.get_state()[1].copy(), random.getstate()
    torch.manual_seed(0)
    in_process = _batches(setting, 0, seed=3, tmp_path=tmp_path)
    torch_after = torch.get_rng_state()
    # with 0 workers the samples are prepared here: numpy's and python's streams are untouched
    assert (np.random.get_state()[1] == numpy_before).all() and random.getstate() == python_before
    for workers in (1, 2):
        torch.manual_seed(0)
        batches = _batches(setting, workers, seed=3, tmp_path=tmp_path)
        for (x0, y0, f0), (x, y, f) in zip(in_process, batches):
            assert torch.equal(x0, x) and torch.equal(y0, y) and f0 == f, f"{workers} workers"
        # the trainer's torch stream (the reward's sampling) moves alike: the loader's base seed only
        assert torch.equal(torch.get_rng_state(), torch_after), f"{workers} workers"
    # the augmentation is random, and seeded by the trial's seed
    other = _batches(setting, 0, seed=4, tmp_path=tmp_path)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(in_process, other))
    assert len({tuple(x.shape) for x, _, _ in in_process}) == 1  # every batch is a crop of one size
    assert {f for _, _, flips in in_process + other for f in flips} == {True, False}


def test_a_gpu_trial_pins_memory_and_a_cpu_trial_loads_in_process(setting, tmp_path):
    from rewardsweep.runners.runner_config import runner_config

    gpu = runner_config(setting, work_dir=str(tmp_path), iters=2, batch_size=2, lr={"start": 1e-3},
                        eval_every=1, workers=3, device="cuda")
    for key in ("train_dataloader", "val_dataloader"):
        assert gpu[key]["num_workers"] == 3 and gpu[key]["persistent_workers"] and gpu[key]["pin_memory"]
    assert gpu["env_cfg"]["cudnn_benchmark"] is True
    cpu = runner_config(setting, work_dir=str(tmp_path), iters=2, batch_size=2, lr={"start": 1e-3},
                        eval_every=1, device="cpu")
    assert cpu["train_dataloader"]["num_workers"] == 0 and not cpu["train_dataloader"]["pin_memory"]
    assert cpu["train_dataloader"]["dataset"]["dataset"]["serialize_data"] is False  # no gc.collect per dataset
    assert cpu["env_cfg"]["cudnn_benchmark"] is False
