"""``deeplabv3-r50-easyportrait`` (9 classes) and ``-face`` (8-class face parsing).

MMSeg ships no EasyPortrait config: the dataset classes are
:mod:`rewardsweep.runners.dataset_types`' and the pipeline is the dataset authors' 512x512 one.
"""

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

DATA_ENV = "REWARDSWEEP_EASYPORTRAIT"


def _easyportrait_pipelines(crop: tuple[int, int] = (512, 512)) -> tuple[list[dict], list[dict]]:
    """The EasyPortrait authors' 512x512 pipelines (their MMSeg configs, ported to MMSeg 1.x).

    No random flip: a mirrored face would swap left and right brows and eyes.
    """
    train = [
        dict(type="LoadImageFromFile"),
        dict(type="LoadAnnotations"),
        dict(type="RandomResize", scale=crop, ratio_range=(1.0, 1.0), keep_ratio=True),
        dict(type="RandomCrop", crop_size=crop),
        dict(type="PhotoMetricDistortion", brightness_delta=16, contrast_range=(0.5, 1.0),
             saturation_range=(0.5, 1.0), hue_delta=9),
        dict(type="PackSegInputs"),
    ]
    test = [
        dict(type="LoadImageFromFile"),
        dict(type="Resize", scale=crop, keep_ratio=True),
        dict(type="LoadAnnotations"),
        dict(type="PackSegInputs"),
    ]
    return train, test


def _easyportrait(face: bool) -> Callable[[str | None], ModelSetting]:
    def build(data_root: str | None) -> ModelSetting:
        dataset_type = "EasyPortraitFaceDataset" if face else "EasyPortraitDataset"
        classes = getattr(registered_dataset_types(), dataset_type).METAINFO["classes"]
        name = "deeplabv3-r50-easyportrait-face" if face else "deeplabv3-r50-easyportrait"
        root = data_root_for(data_root, DATA_ENV, "easyportrait")
        train_pipeline, test_pipeline = _easyportrait_pipelines()

        def loader(split: str, pipeline: list[dict], batch_size: int) -> dict:
            return dict(batch_size=batch_size, num_workers=4, dataset=dict(
                type=dataset_type, data_root=root,
                data_prefix=dict(img_path=f"images/{split}", seg_map_path=f"annotations/{split}"),
                pipeline=pipeline))

        text = "\n".join([  # the EasyPortrait authors trained for 20k iterations at batch 4
            f"_base_ = [{mmseg_base_config('models', 'deeplabv3_r50-d8.py')}, "
            f"{mmseg_base_config('schedules', 'schedule_20k.py')}]",
            "crop_size = (512, 512)",
            f"model = dict(data_preprocessor=dict(size=crop_size), decode_head=dict(num_classes={len(classes)}),",
            f"             auxiliary_head=dict(num_classes={len(classes)}))",
            f"train_dataloader = {loader('train', train_pipeline, 4)!r}",
            f"val_dataloader = {loader('val', test_pipeline, 1)!r}",
        ])
        setting = setting_from_config_text(text, name, root, f"{'easyportrait-face' if face else 'easyportrait'}@{root}")
        return with_checked_dataset(setting, dataset_type, DATA_ENV)

    return build


PRESETS = (
    Preset("deeplabv3-r50-easyportrait",
           "DeepLabV3 R50-D8 512x512 on EasyPortrait, 9 classes (portrait + face parts; GPU)",
           _easyportrait(face=False), data_env=DATA_ENV, num_classes=9),
    Preset("deeplabv3-r50-easyportrait-face",
           "DeepLabV3 R50-D8 512x512 on EasyPortrait face parsing, 8 classes (person -> background; GPU)",
           _easyportrait(face=True), data_env=DATA_ENV, num_classes=8),
)
