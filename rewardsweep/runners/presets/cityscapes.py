"""``deeplabv3-r50-cityscapes``: MMSeg's own DeepLabV3 R50-D8 Cityscapes config, as it is."""

from __future__ import annotations

from rewardsweep.runners.presets.base import (
    ModelSetting,
    Preset,
    data_root_for,
    mmseg_config_dir,
    registered_dataset_types,
    setting_from_mmseg_config,
    with_checked_dataset,
)

DATA_ENV = "REWARDSWEEP_CITYSCAPES"


def _deeplabv3_r50_cityscapes(data_root: str | None) -> ModelSetting:
    registered_dataset_types()
    root = data_root_for(data_root, DATA_ENV, "cityscapes")
    config = mmseg_config_dir() / "deeplabv3" / "deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py"
    setting = setting_from_mmseg_config(config, "deeplabv3-r50-cityscapes", root, f"cityscapes@{root}")
    return with_checked_dataset(setting, "CheckedCityscapesDataset", DATA_ENV)


PRESETS = (
    Preset("deeplabv3-r50-cityscapes",
           "MMSeg's DeepLabV3 R50-D8 512x1024 on Cityscapes, 19 classes (the study's setting; GPU)",
           _deeplabv3_r50_cityscapes, data_env=DATA_ENV, num_classes=19),
)
