"""The MMSeg dataset classes and the label check behind the real-dataset presets.

Registered in MMSeg's registries by :func:`register_dataset_types` (idempotent):

- ``CheckedCityscapesDataset``, ``CheckedMapillaryDataset_v1``, ``CheckedMapillaryDataset_v2``:
  MMSeg's own classes, plus a folder check when the dataset is loaded.
- ``EasyPortraitDataset`` (9 classes, the raw annotation ids) and ``EasyPortraitFaceDataset``
  (8 classes: ``person`` merged into ``background``, the other ids shifted down by one).
- ``CheckLabelIds``: a pipeline step after ``LoadAnnotations`` that turns a label id beyond
  the class count (and not the ignore index) into a one-line :class:`DataError` naming
  the file, instead of a CUDA assert deep inside the loss.

Why the check lives in the dataset and not in the preset: a preset is also built where
the data is absent (``launch --dry-run`` on a head node, model-build tests); the folders
are checked when a trial (or ``class-weights``) actually loads the split, on the machine
that reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rewardsweep.errors import DataError

EASYPORTRAIT_CLASSES = ("background", "person", "skin", "left brow", "right brow", "left eye", "right eye",
                        "lips", "teeth")
EASYPORTRAIT_PALETTE = [[0, 0, 0], [223, 87, 188], [160, 221, 255], [130, 106, 237], [200, 121, 255],
                        [255, 183, 255], [0, 144, 193], [113, 137, 255], [230, 232, 230]]
# Face parsing (the study's 8-class setting, as the EasyPortrait authors' FP models): the
# `person` region (hair, neck, clothes) is not a face part, so it joins the background.
EASYPORTRAIT_FACE_CLASSES = tuple(c for c in EASYPORTRAIT_CLASSES if c != "person")
EASYPORTRAIT_FACE_PALETTE = [p for c, p in zip(EASYPORTRAIT_CLASSES, EASYPORTRAIT_PALETTE) if c != "person"]
EASYPORTRAIT_FACE_LABEL_MAP = {1: 0, **{i: i - 1 for i in range(2, len(EASYPORTRAIT_CLASSES))}}


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
    from rewardsweep.runners.presets import check_image_label_folders

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


def register_dataset_types() -> None:
    """Register the dataset classes and ``CheckLabelIds`` in MMSeg (idempotent)."""
    from rewardsweep.mmcv_compat import import_mmseg

    import_mmseg()
    from mmcv.transforms import BaseTransform
    from mmseg.datasets import BaseSegDataset, CityscapesDataset, MapillaryDataset_v1, MapillaryDataset_v2
    from mmseg.registry import DATASETS, TRANSFORMS

    if DATASETS.get("EasyPortraitFaceDataset") is not None and TRANSFORMS.get("CheckLabelIds") is not None:
        return

    class _CheckedFolders:
        """Mixin: check the folders before listing them; prune the label map."""

        def __init__(self, *args, data_env: str | None = None, **kwargs) -> None:
            self.data_env = data_env  # the environment variable named in a missing-root error
            super().__init__(*args, **kwargs)

        def load_data_list(self) -> list[dict]:
            if not getattr(self, "_folders_checked", False):
                check_dataset_folders(self)
            data_list = super().load_data_list()
            label_map = pruned_label_map(self.label_map)
            for info in data_list:
                info["label_map"] = label_map
            return data_list

    def checked(base: type, name: str) -> type:
        cls = type(name, (_CheckedFolders, base), {
            "__doc__": f"MMSeg's {base.__name__} whose folders are checked (one-line DataError) when loaded.",
            "__module__": __name__,
        })
        DATASETS.register_module(name=name, module=cls, force=True)
        return cls

    checked(CityscapesDataset, "CheckedCityscapesDataset")
    checked(MapillaryDataset_v1, "CheckedMapillaryDataset_v1")
    checked(MapillaryDataset_v2, "CheckedMapillaryDataset_v2")

    class EasyPortraitDataset(_CheckedFolders, BaseSegDataset):
        """EasyPortrait (portrait segmentation + face parsing): ``images/<split>/*.jpg`` and
        ``annotations/<split>/*.png`` holding ids 0..8 (background, person, skin, left brow,
        right brow, left eye, right eye, lips, teeth)."""

        METAINFO = dict(classes=EASYPORTRAIT_CLASSES, palette=EASYPORTRAIT_PALETTE)

        def __init__(self, img_suffix: str = ".jpg", seg_map_suffix: str = ".png", **kwargs) -> None:
            super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

    class EasyPortraitFaceDataset(EasyPortraitDataset):
        """EasyPortrait face parsing, 8 classes: ``person`` (1) -> ``background`` (0); ids 2..8
        -> 1..7. The annotation files are the same as for :class:`EasyPortraitDataset`."""

        METAINFO = dict(classes=EASYPORTRAIT_FACE_CLASSES, palette=EASYPORTRAIT_FACE_PALETTE)

        @classmethod
        def get_label_map(cls, new_classes=None):
            if new_classes is not None and list(new_classes) != list(EASYPORTRAIT_FACE_CLASSES):
                raise ValueError(f"EasyPortraitFaceDataset: classes are fixed to {EASYPORTRAIT_FACE_CLASSES}")
            return dict(EASYPORTRAIT_FACE_LABEL_MAP)

    for cls in (EasyPortraitDataset, EasyPortraitFaceDataset):
        cls.__module__ = __name__
        DATASETS.register_module(name=cls.__name__, module=cls, force=True)

    class CheckLabelIds(BaseTransform):
        """After ``LoadAnnotations``: a label id beyond the class count -> DataError naming the file."""

        def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
            self.num_classes = int(num_classes)
            self.ignore_index = int(ignore_index)

        def transform(self, results: dict) -> dict:
            label = results.get("gt_seg_map")
            if label is None:
                return results
            path = results.get("seg_map_path", "?")
            if label.ndim != 2:
                raise DataError(f"{path}: label has shape {tuple(label.shape)}; expected a single-channel "
                                f"image of class ids (not a colour-coded label)")
            bad = bad_label_ids(label, self.num_classes, self.ignore_index)
            if bad.size:
                raise label_error(path, bad, self.num_classes, self.ignore_index)
            return results

        def __repr__(self) -> str:
            return f"CheckLabelIds(num_classes={self.num_classes}, ignore_index={self.ignore_index})"

    CheckLabelIds.__module__ = __name__
    TRANSFORMS.register_module(name="CheckLabelIds", module=CheckLabelIds, force=True)
