"""Checks of a dataset's folders and label ids, each failing with a one-line :class:`DataError`.

Plain functions over paths and arrays (no MMSeg): the presets, the MMSeg dataset classes
(:mod:`rewardsweep.runners.dataset_types`) and ``class-weights`` all call them, so they
live below all three and import none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rewardsweep.errors import DataError


def check_image_label_folders(img_dir: Path, ann_dir: Path, img_suffix: str, seg_suffix: str) -> int:
    """A dataset split must exist, hold images, and have a label for every image."""
    if not img_dir.is_dir():
        raise DataError(f"{img_dir}: image folder does not exist")
    images = sorted(p for p in img_dir.rglob(f"*{img_suffix}") if p.is_file())
    if not images:
        raise DataError(f"{img_dir}: no images ending in '{img_suffix}'")
    for image in images:
        rel = str(image.relative_to(img_dir))[: -len(img_suffix)] + seg_suffix
        if not (ann_dir / rel).is_file():
            raise DataError(f"{image}: has no label (expected {ann_dir / rel})")
    return len(images)


def check_data_root(data_root: str | None, data_env: str | None = None) -> None:
    if data_root is not None and not Path(data_root).is_dir():
        hint = f" (set data_root in the search space, --data-root, or {data_env})" if data_env else ""
        raise DataError(f"{data_root}: data root does not exist{hint}")


def check_split_folders(data_root: str | None, img_dir: str, seg_dir: str, img_suffix: str, seg_suffix: str,
                        data_env: str | None = None) -> int:
    """The data root and the split's image and label folders exist; every image has a label.

    Returns the number of images. Raises :class:`DataError` (one line naming the folder or
    file) otherwise.
    """
    check_data_root(data_root, data_env)
    if Path(img_dir).is_dir() and not Path(seg_dir).is_dir():
        raise DataError(f"{seg_dir}: label folder does not exist (the images are in {img_dir})")
    return check_image_label_folders(Path(img_dir), Path(seg_dir), img_suffix, seg_suffix)


def check_dataset_folders(dataset: Any) -> int:
    """:func:`check_split_folders` for an (initialised or lazy) MMSeg ``BaseSegDataset``.

    A dataset listed by an ``ann_file`` (e.g. Pascal VOC) has images without labels by
    design: only its data root is checked here.
    """
    prefix = dataset.data_prefix
    if getattr(dataset, "ann_file", ""):
        check_data_root(dataset.data_root, getattr(dataset, "data_env", None))
        return 0
    return check_split_folders(dataset.data_root, prefix.get("img_path", ""), prefix.get("seg_map_path", ""),
                               dataset.img_suffix, dataset.seg_map_suffix, getattr(dataset, "data_env", None))


def pruned_label_map(label_map: dict | None) -> dict | None:
    """Drop identity entries: MMSeg applies a label map with one full-image pass per entry."""
    if not label_map:
        return None
    pruned = {int(k): int(v) for k, v in label_map.items() if k != v}
    return pruned or None


def label_lut(label_map: dict | None, reduce_zero_label: bool = False, size: int = 256) -> np.ndarray:
    """A lookup table raw id -> train id doing what MMSeg's ``LoadAnnotations`` does."""
    lut = np.arange(size, dtype=np.int64)
    if reduce_zero_label:
        lut = lut - 1
        lut[0] = 255
        lut[lut == 254] = 255
    if label_map:
        mapped = lut.copy()
        for old, new in label_map.items():
            mapped[lut == old] = new
        lut = mapped
    return lut


def bad_label_ids(label: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """The distinct ids in ``label`` that are neither a class nor the ignore index."""
    if label.size == 0 or int(label.max()) < num_classes:
        return np.zeros(0, dtype=np.int64)
    return np.unique(label[(label >= num_classes) & (label != ignore_index)])


def label_error(path: str, bad: np.ndarray, num_classes: int, ignore_index: int, raw: str = "") -> DataError:
    shown = ", ".join(str(int(x)) for x in bad[:5]) + (", ..." if len(bad) > 5 else "")
    return DataError(f"{path}: label id(s) {shown}{raw} beyond the {num_classes} classes "
                     f"(expected 0..{num_classes - 1} or the ignore index {ignore_index})")
