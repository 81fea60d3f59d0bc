"""``deeplabv3-r50-mapillary-v1`` / ``-v2``: DeepLabV3 R50-D8 on Mapillary Vistas v1.2 / v2.0,
with MMSeg's own Mapillary dataset configs."""

from __future__ import annotations

from typing import Callable

from rewardsweep.runners.presets.base import (
    ModelSetting,
    Preset,
    data_root_for,
    mmseg_base_config,
    registered_dataset_types,
    setting_from_config_text,
    with_checked_dataset,
)

DATA_ENV = "REWARDSWEEP_MAPILLARY"


def _mapillary(version: str) -> Callable[[str | None], ModelSetting]:
    """Mapillary Vistas v1.2 (66 label ids) or v2.0 (124): ``Unlabeled`` (the last id) is
    ignored (255), as in MMSeg's 65-class v1.2 config and Mapillary's own evaluation, so the
    model has 65 or 123 classes."""
    major = version.split(".")[0]

    def build(data_root: str | None) -> ModelSetting:
        dataset_type = f"CheckedMapillaryDataset_{major}"
        cls = getattr(registered_dataset_types(), dataset_type)
        classes = list(cls.METAINFO["classes"])
        assert classes[-1] == "Unlabeled"
        num_classes = len(classes) - 1
        dataset_cfg = "mapillary_v1_65.py" if version == "v1.2" else "mapillary_v2.py"
        name = f"deeplabv3-r50-mapillary-{major}"
        text = "\n".join([
            f"_base_ = [{mmseg_base_config('models', 'deeplabv3_r50-d8.py')}, "
            f"{mmseg_base_config('datasets', dataset_cfg)},",
            f"          {mmseg_base_config('schedules', 'schedule_80k.py')}]",
            "crop_size = (512, 1024)",
            f"model = dict(data_preprocessor=dict(size=crop_size), decode_head=dict(num_classes={num_classes}),",
            f"             auxiliary_head=dict(num_classes={num_classes}))",
            f"metainfo = dict(classes={tuple(classes[:-1])!r}, palette={cls.METAINFO['palette'][:-1]!r})",
            "train_dataloader = dict(dataset=dict(metainfo=metainfo))",
            "val_dataloader = dict(dataset=dict(metainfo=metainfo))",
        ])
        root = data_root_for(data_root, DATA_ENV, "mapillary")
        setting = setting_from_config_text(text, name, root, f"mapillary-{version}@{root}")
        return with_checked_dataset(setting, dataset_type, DATA_ENV)

    return build


PRESETS = (
    Preset("deeplabv3-r50-mapillary-v1",
           "DeepLabV3 R50-D8 512x1024 on Mapillary Vistas v1.2, 65 classes (Unlabeled ignored; GPU)",
           _mapillary("v1.2"), data_env=DATA_ENV, num_classes=65),
    Preset("deeplabv3-r50-mapillary-v2",
           "DeepLabV3 R50-D8 512x1024 on Mapillary Vistas v2.0, 123 classes (Unlabeled ignored; GPU)",
           _mapillary("v2.0"), data_env=DATA_ENV, num_classes=123),
)
