"""What the real-scale benchmarks and the GPU check share: a Cityscapes-format fixture at the
real 2048x1024 size, peak memory, the machine's load, one training step of the preset model.

Not a benchmark itself (no ``bench_`` prefix). The benchmarks import it from their own folder.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

CITYSCAPES_SIZE = (1024, 2048)  # H, W of every Cityscapes image
# trainId -> a colour per class (any fixed colours; the network never sees real ones)
_RNG_COLOURS = np.random.default_rng(7).integers(40, 220, size=(256, 3))


def machine_load() -> str:
    """The 1/5/15-minute load averages and the core count, for the line beside a timing."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f} on {os.cpu_count()} cores"


def fixture_label(size: tuple[int, int], seed: int, num_classes: int = 19) -> np.ndarray:
    """A uint8 trainId label of large irregular regions (as street scenes have), ~5% void (255)."""
    rng = np.random.default_rng(seed)
    h, w = size
    coarse = rng.integers(0, num_classes, size=(max(1, h // 64), max(1, w // 64))).astype(np.uint8)
    coarse[rng.random(coarse.shape) < 0.05] = 255
    label = np.kron(coarse, np.ones((64, 64), dtype=np.uint8))
    label = np.pad(label, ((0, max(0, h - label.shape[0])), (0, max(0, w - label.shape[1]))), mode="edge")
    # wavy region borders, so the PNG is not a grid of flat tiles
    shift = (8 * np.sin(np.arange(h) / 37.0 + seed)).astype(int)
    rows = np.arange(w)[None, :] + shift[:, None]
    return label[np.arange(h)[:, None], np.clip(rows, 0, w - 1)][:h, :w]


def fixture_image(label: np.ndarray, seed: int) -> np.ndarray:
    """An RGB image whose regions follow ``label``: class colour, a smooth shading and sensor
    noise; as a PNG it is ~2 MB at 2048x1024, like Cityscapes' own (~2.1 MB on average)."""
    rng = np.random.default_rng(seed + 10_000)
    h, w = label.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = 25 * np.sin(xx / 211.0 + seed) * np.cos(yy / 157.0)
    image = _RNG_COLOURS[label].astype(np.float32) + shade[..., None]
    image += rng.normal(0, 4.0, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_cityscapes_fixture(root: str | os.PathLike, train: int, val: int,
                             size: tuple[int, int] = CITYSCAPES_SIZE) -> Path:
    """``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` and ``gtFine/.../*_gtFine_labelTrainIds.png``
    as MMSeg's Cityscapes converter leaves them (reused when already written at this size)."""
    from PIL import Image

    root = Path(root)
    stamp = root / f".fixture-{size[0]}x{size[1]}-{train}-{val}"
    if stamp.exists():
        return root
    for split, count, city in (("train", train, "aachen"), ("val", val, "frankfurt")):
        for i in range(count):
            name = f"{city}_{i:06d}_000019"
            seed = i if split == "train" else 100_000 + i
            label = fixture_label(size, seed)
            img_dir = root / "leftImg8bit" / split / city
            gt_dir = root / "gtFine" / split / city
            img_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(fixture_image(label, seed)).save(img_dir / f"{name}_leftImg8bit.png", compress_level=6)
            Image.fromarray(label).save(gt_dir / f"{name}_gtFine_labelTrainIds.png")
    stamp.write_text("")
    return root


class PeakMemory:
    """Peak memory of what runs inside ``with``, above what was in use when it started.

    CUDA: ``torch.cuda.max_memory_allocated`` (what MMSeg's model zoo reports). CPU: the
    process's resident set sampled every 2 ms by a thread (large tensors are mmap'ed and
    given back when freed, so the peak above the start is the step's working memory).
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.peak_bytes = 0

    def __enter__(self) -> "PeakMemory":
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self._base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            return self
        self._base = _rss()
        self._peak = self._base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, _rss())
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated() - self._base
            self.total_bytes = torch.cuda.max_memory_allocated()
            return
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, _rss())
        self.peak_bytes = self._peak - self._base
        self.total_bytes = self._peak

    @property
    def gib(self) -> float:
        return self.peak_bytes / 2**30


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def random_batch(batch: int, size: tuple[int, int], num_classes: int, seed: int) -> dict[str, Any]:
    """A batch as the train loader hands it to ``model.train_step``: uint8 images (CHW) and
    label maps (~5% ignored), the data preprocessor normalises and stacks them."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, *size), generator=g, dtype=torch.uint8))
        label = torch.randint(0, num_classes, (1, *size), generator=g)
        label[torch.rand((1, *size), generator=g) < 0.05] = 255
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=label)
        s.set_metainfo(dict(img_shape=size, ori_shape=size, pad_shape=size))
        samples.append(s)
    return {"inputs": inputs, "data_samples": samples}


def build_model(setting, reward: dict[str, Any] | None, batch: int, device: str, seed: int = 0):
    """The preset's model as a trial builds it: MLE (``reward=None``) or with the reward head
    (``reward``: the trial config's reward keys; the auxiliary head as ``aux_head`` says)."""
    import torch
    from mmseg.registry import MODELS

    from rewardsweep.runners.trial import reward_model_config

    if reward is None:
        cfg = copy.deepcopy(setting.model)
    else:
        cfg = reward_model_config(setting, {**reward, "batch_size": batch})
    torch.manual_seed(seed)
    return MODELS.build(cfg).to(device).train()


def optim_wrapper_for(model, precision: str = "fp32"):
    """The optimizer wrapper a trial builds (``runners.runner_config``), for this model."""
    from mmengine.optim import build_optim_wrapper

    from rewardsweep.runners.precision import optim_wrapper_config

    cfg = optim_wrapper_config(dict(type="SGD", lr=1e-4, momentum=0.9), precision)
    return build_optim_wrapper(model, cfg)


@contextmanager
def threads(n: int | None) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
