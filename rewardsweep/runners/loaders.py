"""Data loaders that keep a GPU fed and give the same batches whatever the worker count.

Decoding a 2048x1024 PNG and augmenting it takes a CPU core about a fifth of a second
(``benchmarks/bench_loader.py``): in the training process that is time the GPU waits, so a
trial on a GPU loads in worker processes (:func:`loader_workers`), kept alive between
evaluations (persistent) and handing over pinned memory.

With workers, MMSeg's random augmentations (resize ratio, crop position, flip,
photometric distortion; all drawn from numpy's global generator) would depend on which
worker ran which sample, i.e. on the worker count. So every training sample is drawn with
its own random state, seeded from (trial seed, position in the sample stream, dataset
index): :class:`SeededInfiniteSampler` yields ``(position, index)`` and
:class:`SeededSamples` seeds numpy, ``random`` and torch from it for that sample only, then
restores the previous state (in the training process, with 0 workers, nothing else sees
a different random stream). The same seed gives the same batches with 0, 1 or 8 workers
(tests/test_loaders.py).

Imports MMEngine at the top: :mod:`rewardsweep.runners.runner_config` imports this module
inside the functions that build a runner.
"""

from __future__ import annotations

import copy
import hashlib
import random
from typing import Any, Iterator

import numpy as np
import torch
from mmengine.dataset import InfiniteSampler
from mmengine.registry import DATA_SAMPLERS, DATASETS
from torch.utils.data import Dataset, get_worker_info


def loader_workers(cpus: float | int | None, on_gpu: bool, workers: int | None = None) -> int:
    """Worker processes per loader: ``workers`` if the spec sets it, else the rule.

    - On CPU: 0. The network takes every core the trial has (its torch threads) and a
      training step is seconds to minutes, while loading a batch takes a small fraction
      of it (tiny preset: ~1%; 512x1024: ~1%, ``docs/cluster.md``); a worker would only
      compete for the same cores, and starting one costs more than a tiny trial loads.
    - On a GPU: every CPU of the trial but one (at least 1). The training process needs
      one core to drive the GPU (Python, kernel launches, the reward's bookkeeping); the
      others decode and augment.
    """
    if workers is not None:
        return int(workers)
    if not on_gpu:
        return 0
    return max(1, int(cpus or 1) - 1)


def dataloader_config(dataset: dict, *, batch_size: int, workers: int, pin_memory: bool, sampler: dict,
                      seed: int | None = None) -> dict:
    """An MMEngine dataloader config: ``workers`` persistent processes (0: in the training
    process) and, when ``seed`` is given, per-sample seeded augmentation."""
    dataset = copy.deepcopy(dataset)
    if not workers:
        # MMEngine serialises the data list so that forked workers share it without
        # copy-on-read; in the training process that buys nothing and costs a full
        # gc.collect() per dataset (~0.3 s in a long-lived Ray worker).
        dataset.setdefault("serialize_data", False)
    if seed is not None:
        dataset = dict(type="SeededSamples", dataset=dataset, seed=int(seed))
        sampler = {**sampler, "type": "SeededInfiniteSampler"}
    cfg = dict(batch_size=batch_size, num_workers=int(workers), sampler=sampler, dataset=dataset,
               persistent_workers=bool(workers), pin_memory=bool(pin_memory))
    return cfg


class SeededInfiniteSampler(InfiniteSampler):
    """MMEngine's ``InfiniteSampler`` (same shuffled order for the same seed) whose items are
    ``(position, index)``: ``position`` counts the samples drawn since the loader started."""

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for position, index in enumerate(super().__iter__()):
            yield position, index


class SeededSamples(Dataset):
    """Wraps a dataset: item ``(position, index)`` is ``dataset[index]`` prepared under random
    state seeded from ``(seed, position, index)``; a plain integer index is passed through."""

    def __init__(self, dataset: dict | Dataset, seed: int) -> None:
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.seed = int(seed)

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(getattr(self.dataset, "metainfo", {}))

    def full_init(self) -> None:
        if hasattr(self.dataset, "full_init"):
            self.dataset.full_init()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:  # data_list, pipeline, ... of the wrapped dataset
        if name == "dataset":  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: list) -> list:
        """A batch of items (torch's DataLoader fetches a batch this way): the random state of
        this process is saved once per batch and restored after it, unless this is a loader
        worker, whose random state nobody else reads."""
        if get_worker_info() is not None:
            return [self._prepare(key) for key in keys]
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            with torch.random.fork_rng(devices=[]):
                return [self._prepare(key) for key in keys]
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)

    def _prepare(self, key: int | tuple[int, int]) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        position, index = key
        # three 32-bit seeds from a hash of (seed, position, index): independent streams for
        # every sample (a BLAKE2 digest is ~10x cheaper here than numpy's SeedSequence)
        digest = hashlib.blake2b(f"{self.seed},{position},{index}".encode(), digest_size=12).digest()
        np.random.seed(int.from_bytes(digest[:4], "little"))
        random.seed(int.from_bytes(digest[4:8], "little"))
        # the CPU generator only: torch.manual_seed also queues CUDA seeding (recording a
        # stack trace each time, ~1 ms) and would reseed the trainer's CUDA stream
        torch.default_generator.manual_seed(int.from_bytes(digest[8:], "little"))
        return self.dataset[index]


def register_loaders() -> None:
    """Put the sampler and the dataset wrapper in MMEngine's registries (idempotent); MMSeg's
    registries find them through their parent."""
    DATA_SAMPLERS.register_module(name="SeededInfiniteSampler", module=SeededInfiniteSampler, force=True)
    DATASETS.register_module(name="SeededSamples", module=SeededSamples, force=True)


def release_loaders(runner) -> None:
    """Stop a runner's persistent loader workers now (a Ray worker runs the next trial in the
    same process; garbage collection would stop them only whenever it gets to the runner)."""
    for loop_name in ("_train_loop", "_val_loop"):
        loop = getattr(runner, loop_name, None)
        loader = getattr(loop, "dataloader", None) if loop is not None and not isinstance(loop, dict) else None
        for it in (getattr(loop, "dataloader_iterator", None), loader):
            iterator = getattr(it, "_iterator", None)
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                iterator._shutdown_workers()
