"""Miniature copies of the real datasets, in their real folder layout, naming and label encoding.

No dataset can be downloaded in the tests, so these writers produce a few 64x128 images
per split exactly where, and as, the real download has them:

- Cityscapes (after MMSeg's ``tools/dataset_converters/cityscapes.py``):
  ``leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` and
  ``gtFine/<split>/<city>/<same>_gtFine_labelTrainIds.png`` (train ids 0..18, 255 = void),
  plus the ``_gtFine_labelIds.png`` and ``_gtFine_color.png`` files that sit next to them.
- Mapillary Vistas: ``training|validation/images/<key>.jpg`` and
  ``training|validation/v1.2/labels/<key>.png`` (palette PNG, ids 0..65, 65 = Unlabeled) and
  ``.../v2.0/labels/<key>.png`` (palette PNG, ids 0..123, 123 = Unlabeled).
- EasyPortrait: ``images/<split>/<uuid>.jpg`` and ``annotations/<split>/<uuid>.png``
  (grey PNG, ids 0..8).

Every label is a grid of 8x8 blocks whose ids cycle through all of the dataset's ids, so
each id is present; the image colours follow the labels (plus noise).
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (64, 128)  # H, W: the aspect ratio of Cityscapes
BLOCK = 8

# EasyPortrait raw id -> face-parsing class id (person merges into background).
FACE_MAP = {1: 0, **{i: i - 1 for i in range(2, 9)}}


def block_label(ids, size=SIZE, seed: int = 0) -> np.ndarray:
    """A uint8 label of 8x8 blocks; the ids cycle (shuffled) so that each appears."""
    rng = np.random.default_rng(seed)
    h, w = size
    rows, cols = h // BLOCK, w // BLOCK
    ids = np.asarray(list(ids), dtype=np.uint8)
    grid = np.resize(rng.permutation(ids), rows * cols)
    grid = rng.permutation(grid).reshape(rows, cols)
    return np.kron(grid, np.ones((BLOCK, BLOCK), dtype=np.uint8)).astype(np.uint8)


def image_for(label: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    colours = rng.integers(0, 256, size=(256, 3))
    image = colours[label] + rng.normal(0, 8, size=label.shape + (3,))
    return np.clip(image, 0, 255).astype(np.uint8)


def _save(path: Path, array: np.ndarray, palette: list | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array)
    if palette is not None:  # an L image with a palette becomes P, its values kept as indices
        flat = [c for rgb in palette for c in rgb]
        img.putpalette(flat + [0] * (768 - len(flat)))
    img.save(path, **kwargs)
    return path


CITYSCAPES_TRAIN_IDS = list(range(19)) + [255]
# trainId -> Cityscapes id (for the labelIds files that sit next to the train ids)
_CITYSCAPES_IDS = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]


def write_cityscapes(root, splits: dict[str, int] | None = None, size=SIZE) -> Path:
    root = Path(root)
    cities = {"train": ["aachen", "bochum"], "val": ["frankfurt"], "test": ["berlin"]}
    for s, (split, count) in enumerate((splits or {"train": 2, "val": 1}).items()):
        for i in range(count):
            city = cities.get(split, ["city"])[i % len(cities.get(split, ["city"]))]
            name = f"{city}_{i:06d}_000019"
            label = block_label(CITYSCAPES_TRAIN_IDS, size, seed=100 * s + i)
            _save(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", image_for(label, i))
            gt = root / "gtFine" / split / city
            _save(gt / f"{name}_gtFine_labelTrainIds.png", label)
            ids = np.where(label == 255, 0, np.take(_CITYSCAPES_IDS + [0], np.minimum(label, 19)))
            _save(gt / f"{name}_gtFine_labelIds.png", ids.astype(np.uint8))
            _save(gt / f"{name}_gtFine_color.png", image_for(label, 7))
    return root


def _mapillary_palette(num_ids: int) -> list[list[int]]:
    from rewardsweep.mmcv_compat import import_mmseg

    import_mmseg()
    from mmseg.datasets import MapillaryDataset_v1, MapillaryDataset_v2

    cls = MapillaryDataset_v1 if num_ids == 66 else MapillaryDataset_v2
    return list(cls.METAINFO["palette"])


def write_mapillary(root, splits: dict[str, int] | None = None, size=SIZE) -> Path:
    """Both label sets, as in the real download (images shared by v1.2 and v2.0)."""
    root = Path(root)
    for s, (split, count) in enumerate((splits or {"training": 2, "validation": 1}).items()):
        for i in range(count):
            key = hashlib.sha1(f"{split}-{i}".encode()).hexdigest()[:22]  # 22 characters, like the real keys
            v1 = block_label(range(66), size, seed=10 * s + i)
            v2 = block_label(range(124), size, seed=10 * s + i + 5)
            _save(root / split / "images" / f"{key}.jpg", image_for(v1, i), quality=90)
            _save(root / split / "v1.2" / "labels" / f"{key}.png", v1, palette=_mapillary_palette(66))
            _save(root / split / "v2.0" / "labels" / f"{key}.png", v2, palette=_mapillary_palette(124))
    return root


def write_easyportrait(root, splits: dict[str, int] | None = None, size=SIZE) -> Path:
    root = Path(root)
    for s, (split, count) in enumerate((splits or {"train": 3, "val": 1}).items()):
        for i in range(count):
            name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"easyportrait/{split}/{i}"))
            label = block_label(range(9), size, seed=50 * s + i)
            _save(root / "images" / split / f"{name}.jpg", image_for(label, i), quality=90)
            _save(root / "annotations" / split / f"{name}.png", label)
    return root


def read_label(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def brute_force_counts(label_files, num_classes: int, mapping=None, ignore_index: int = 255) -> list[int]:
    """Per-class pixel counts by a plain loop over ids (mapping: raw id -> class id or ignore)."""
    counts = [0] * num_classes
    for path in label_files:
        label = read_label(path)
        for raw in np.unique(label):
            cls = mapping.get(int(raw), int(raw)) if mapping else int(raw)
            if cls == ignore_index:
                continue
            counts[cls] += int((label == raw).sum())
    return counts


# ---- a reduced crop, so the R50 presets run on a CPU -------------------------------------

def with_crop(setting, crop: tuple[int, int]):
    """A copy of ``setting`` whose crop (and resize scales) shrink by ``crop / original crop``."""
    setting = copy.deepcopy(setting)
    original = tuple(setting.model["data_preprocessor"]["size"])
    factor = crop[0] / original[0]
    setting.model["data_preprocessor"]["size"] = tuple(crop)
    for ds in (setting.train_dataset, setting.val_dataset):
        for step in ds["pipeline"]:
            if step["type"] == "RandomCrop":
                step["crop_size"] = tuple(crop)
            if step["type"] in ("RandomResize", "Resize") and "scale" in step:
                step["scale"] = tuple(max(1, int(round(s * factor))) for s in step["scale"])
    setting.name = f"{setting.name}@{crop[0]}x{crop[1]}"
    return setting


def small_preset(name: str, crop: tuple[int, int]):
    """The preset ``name`` at a reduced crop, as a Preset named ``<name>@HxW`` (for CPU trials).

    Register it for one test with ``monkeypatch.setitem(presets.PRESETS, p.name, p)``, so
    that it does not outlive the test.
    """
    from rewardsweep.runners.presets import PRESETS, Preset

    base = PRESETS[name]
    return Preset(f"{name}@{crop[0]}x{crop[1]}", f"{base.description} at a {crop} crop (tests)",
                  lambda root: with_crop(base.build(root), crop), data_env=base.data_env)
