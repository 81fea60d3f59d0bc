"""The MMSeg dataset classes and the label check behind the presets.

This module imports MMSeg at the top, so nothing imports it at module level except the
MMSeg plugin (:mod:`rewardsweep.mmseg`); the presets reach it through
:func:`rewardsweep.runners.presets.base.registered_dataset_types` when one is built.
:func:`register_dataset_types` puts the classes below into MMSeg's registries:

- ``SyntheticScenesDataset``: the embedded scenes of :mod:`rewardsweep.runners.synthetic_data`.
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

from rewardsweep.mmcv_compat import import_mmseg

import_mmseg()  # before the first mmseg import: mmseg needs the mmcv.ops stand-in on mmcv-lite

from mmcv.transforms import BaseTransform  # noqa: E402
from mmseg.datasets import BaseSegDataset, CityscapesDataset, MapillaryDataset_v1, MapillaryDataset_v2  # noqa: E402
from mmseg.registry import DATASETS, TRANSFORMS  # noqa: E402

from rewardsweep.errors import DataError  # noqa: E402
from rewardsweep.runners import synthetic_data  # noqa: E402
from rewardsweep.runners.data_checks import bad_label_ids, check_dataset_folders, label_error, pruned_label_map  # noqa: E402,E501

EASYPORTRAIT_CLASSES = ("background", "person", "skin", "left brow", "right brow", "left eye", "right eye",
                        "lips", "teeth")
EASYPORTRAIT_PALETTE = [[0, 0, 0], [223, 87, 188], [160, 221, 255], [130, 106, 237], [200, 121, 255],
                        [255, 183, 255], [0, 144, 193], [113, 137, 255], [230, 232, 230]]
# Face parsing (the study's 8-class setting, as the EasyPortrait authors' FP models): the
# `person` region (hair, neck, clothes) is not a face part, so it joins the background.
EASYPORTRAIT_FACE_CLASSES = tuple(c for c in EASYPORTRAIT_CLASSES if c != "person")
EASYPORTRAIT_FACE_PALETTE = [p for c, p in zip(EASYPORTRAIT_CLASSES, EASYPORTRAIT_PALETTE) if c != "person"]
EASYPORTRAIT_FACE_LABEL_MAP = {1: 0, **{i: i - 1 for i in range(2, len(EASYPORTRAIT_CLASSES))}}


class SyntheticScenesDataset(BaseSegDataset):
    """rewardsweep's procedurally generated scenes (PNG images and labels)."""

    METAINFO = dict(classes=synthetic_data.CLASSES, palette=synthetic_data.PALETTE)

    def __init__(self, img_suffix=".png", seg_map_suffix=".png", **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)


class CheckedFolders:
    """Mixin for a ``BaseSegDataset``: check the folders before listing them; prune the label map."""

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


class CheckedCityscapesDataset(CheckedFolders, CityscapesDataset):
    """MMSeg's CityscapesDataset whose folders are checked (one-line DataError) when loaded."""


class CheckedMapillaryDataset_v1(CheckedFolders, MapillaryDataset_v1):
    """MMSeg's MapillaryDataset_v1 whose folders are checked (one-line DataError) when loaded."""


class CheckedMapillaryDataset_v2(CheckedFolders, MapillaryDataset_v2):
    """MMSeg's MapillaryDataset_v2 whose folders are checked (one-line DataError) when loaded."""


class EasyPortraitDataset(CheckedFolders, BaseSegDataset):
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


DATASET_TYPES = (SyntheticScenesDataset, CheckedCityscapesDataset, CheckedMapillaryDataset_v1, CheckedMapillaryDataset_v2,
                 EasyPortraitDataset, EasyPortraitFaceDataset)


def register_dataset_types() -> None:
    """Register the dataset classes and ``CheckLabelIds`` in MMSeg (idempotent)."""
    for cls in DATASET_TYPES:
        DATASETS.register_module(name=cls.__name__, module=cls, force=True)
    TRANSFORMS.register_module(name=CheckLabelIds.__name__, module=CheckLabelIds, force=True)
