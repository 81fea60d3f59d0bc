"""The embedded default dataset: procedurally generated street-like scenes.

Why this design: reward tuning only means something when mIoU and pixel accuracy
disagree. The scenes are dominated by sky and road, have medium buildings and trees, and
two rare classes of small objects (cars on the road, and tiny people), so a model that
ignores the small classes gets high pixel accuracy but a poor mIoU, and class weighting
has something to do. Colours overlap between classes and every image carries noise, so
the classes must be told apart by shape and context, not by colour alone.

Images are drawn from ``numpy.random.default_rng([seed, split, index])``: every image is
a pure function of (seed, split, index), whatever order they are generated in. They are
written once in MMSeg's standard layout (``img_dir/<split>/*.png``,
``ann_dir/<split>/*.png``) and read back through MMSeg's own pipeline, as
``SyntheticScenesDataset`` (:mod:`rewardsweep.runners.dataset_types`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from rewardsweep.storage import default_cache_dir
from rewardsweep.study.atomic import atomic_write_json

GENERATOR_VERSION = 2  # bump on any change to render_scene: it names the cache
CLASSES = ("sky", "road", "building", "tree", "car", "person")
PALETTE = [[70, 130, 180], [128, 64, 128], [70, 70, 70], [107, 142, 35], [0, 0, 142], [220, 20, 60]]
SKY, ROAD, BUILDING, TREE, CAR, PERSON = range(len(CLASSES))
IGNORE_INDEX = 255

# Mean colour (RGB) of each class; deliberately close pairs (road/building, car/person/tree).
_BASE_COLOURS = np.array(
    [[125, 150, 175], [105, 100, 110], [120, 108, 100], [80, 115, 70], [70, 75, 150], [160, 75, 85]],
    dtype=np.float32,
)
_SPLIT_CODES = {"train": 0, "val": 1}


@dataclass(frozen=True)
class SyntheticSpec:
    """What determines the dataset's bytes; its hash names the cache folder."""

    seed: int = 0
    size: int = 64
    train_images: int = 192
    val_images: int = 64

    def fingerprint(self) -> str:
        payload = json.dumps({"v": GENERATOR_VERSION, **self.__dict__}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return f"synthetic-v{GENERATOR_VERSION}-{self.fingerprint()}"


def render_scene(seed: int, split: str, index: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """One (image RGB uint8 [H, W, 3], label uint8 [H, W]) pair."""
    rng = np.random.default_rng([seed, _SPLIT_CODES[split], index])
    h = w = size
    yy, xx = np.mgrid[0:h, 0:w]
    label = np.full((h, w), SKY, dtype=np.uint8)

    horizon = int(rng.uniform(0.45, 0.65) * h)
    label[yy >= horizon] = ROAD

    # Buildings: rectangles standing on the horizon.
    for _ in range(rng.integers(1, 4)):
        bw = int(rng.uniform(0.12, 0.3) * w)
        bh = int(rng.uniform(0.15, 0.4) * h)
        x0 = int(rng.integers(0, w - bw))
        label[max(0, horizon - bh):horizon, x0:x0 + bw] = BUILDING

    # Trees: discs whose centres sit near the horizon.
    for _ in range(rng.integers(0, 3)):
        r = rng.uniform(0.06, 0.12) * h
        cx, cy = rng.uniform(0, w), horizon - rng.uniform(0.0, 0.2) * h
        label[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = TREE

    # Cars: small rectangles on the road (rare class).
    for _ in range(rng.integers(0, 3)):
        cw, ch = int(rng.uniform(0.14, 0.24) * w), int(rng.uniform(0.08, 0.12) * h)
        cy = int(rng.uniform(horizon + 1, h - ch))
        cx = int(rng.integers(0, w - cw))
        label[cy:cy + ch, cx:cx + cw] = CAR

    # People: tiny upright ellipses (the rarest class).
    for _ in range(rng.integers(0, 3)):
        ry, rx = rng.uniform(0.06, 0.09) * h, rng.uniform(0.025, 0.04) * w
        cy = rng.uniform(horizon - 0.05 * h, h - ry)
        cx = rng.uniform(rx, w - rx)
        label[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0] = PERSON

    # Appearance: per-image colour jitter per class, a lighting gradient and noise.
    colours = _BASE_COLOURS + rng.normal(0.0, 12.0, size=_BASE_COLOURS.shape).astype(np.float32)
    image = colours[label]
    image += (rng.uniform(-25, 25) * (yy / h - 0.5))[..., None]
    image += rng.normal(0.0, 22.0, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), label


def _write_png(path: Path, array: np.ndarray) -> None:
    # Pillow's PNG encoder is deterministic for the same array and settings.
    Image.fromarray(array).save(path, format="PNG", compress_level=6)


def generate(root: str | os.PathLike, spec: SyntheticSpec = SyntheticSpec()) -> Path:
    """Write the dataset under ``root`` (MMSeg layout); a no-op if it is already complete."""
    root = Path(root)
    marker = root / "dataset.json"
    if marker.exists():
        return root
    for split, count in (("train", spec.train_images), ("val", spec.val_images)):
        img_dir, ann_dir = root / "img_dir" / split, root / "ann_dir" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, label = render_scene(spec.seed, split, index, spec.size)
            _write_png(img_dir / f"{index:05d}.png", image)
            _write_png(ann_dir / f"{index:05d}.png", label)
    info = {"name": spec.name, "classes": list(CLASSES), "spec": spec.__dict__, "version": GENERATOR_VERSION}
    atomic_write_json(marker, info, indent=1)  # written last: its presence means the folder is complete
    return root


def ensure_dataset(data_root: str | os.PathLike | None = None, spec: SyntheticSpec = SyntheticSpec()) -> Path:
    """The dataset folder, generated on first use and cached (by content spec) after."""
    root = Path(data_root) if data_root else default_cache_dir() / "data" / spec.name
    return generate(root, spec)


def class_frequencies(spec: SyntheticSpec = SyntheticSpec(), split: str = "train") -> np.ndarray:
    """Pixel fraction per class, straight from the generator (for docs and tests)."""
    count = spec.train_images if split == "train" else spec.val_images
    counts = np.zeros(len(CLASSES), dtype=np.int64)
    for index in range(count):
        _, label = render_scene(spec.seed, split, index, spec.size)
        counts += np.bincount(label.ravel(), minlength=len(CLASSES))
    return counts / counts.sum()
