"""``tiny-synthetic``: a narrow DeepLabV3 on the embedded synthetic scenes (CPU-sized)."""

from __future__ import annotations

import copy
from pathlib import Path

from rewardsweep.runners.data_checks import check_image_label_folders
from rewardsweep.runners.presets.base import ModelSetting, Preset, PretrainDefaults, registered_dataset_types

_NORM = dict(type="BN", requires_grad=True)
_PREPROCESSOR = dict(
    type="SegDataPreProcessor",
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
)


def _tiny_synthetic(data_root: str | None) -> ModelSetting:
    from rewardsweep.runners import synthetic_data

    if data_root:
        root = Path(data_root)
        if not (root / "dataset.json").exists():
            check_image_label_folders(root / "img_dir" / "train", root / "ann_dir" / "train", ".png", ".png")
        spec_name = f"synthetic@{root.resolve()}"
    else:
        root = synthetic_data.ensure_dataset()
        spec_name = synthetic_data.SyntheticSpec().name
    registered_dataset_types()
    num_classes = len(synthetic_data.CLASSES)
    model = dict(
        type="EncoderDecoder",
        data_preprocessor=dict(copy.deepcopy(_PREPROCESSOR), size=(64, 64)),
        pretrained=None,
        backbone=dict(
            type="ResNetV1c",
            depth=18,
            stem_channels=16,
            base_channels=16,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            dilations=(1, 1, 2, 4),
            strides=(1, 2, 1, 1),
            norm_cfg=_NORM,
            norm_eval=False,
            style="pytorch",
            contract_dilation=True,
        ),
        decode_head=dict(
            type="ASPPHead",
            in_channels=128,
            in_index=3,
            channels=48,
            dilations=(1, 2, 4, 6),
            dropout_ratio=0.1,
            num_classes=num_classes,
            norm_cfg=_NORM,
            align_corners=False,
            loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
        ),
        auxiliary_head=dict(
            type="FCNHead",
            in_channels=64,
            in_index=2,
            channels=32,
            num_convs=1,
            concat_input=False,
            dropout_ratio=0.1,
            num_classes=num_classes,
            norm_cfg=_NORM,
            align_corners=False,
            loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=0.4),
        ),
        train_cfg=dict(),
        test_cfg=dict(mode="whole"),
    )

    def dataset(split: str, train: bool) -> dict:
        pipeline = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")]
        if train:
            pipeline.append(dict(type="RandomFlip", prob=0.5))
        pipeline.append(dict(type="PackSegInputs"))
        return dict(
            type="SyntheticScenesDataset",
            data_root=str(root),
            data_prefix=dict(img_path=f"img_dir/{split}", seg_map_path=f"ann_dir/{split}"),
            pipeline=pipeline,
        )

    return ModelSetting(
        name="tiny-synthetic",
        model=model,
        train_dataset=dataset("train", True),
        val_dataset=dataset("val", False),
        class_names=tuple(synthetic_data.CLASSES),
        pretrain=PretrainDefaults(iters=2500, lr=0.4, batch_size=8, eval_batch_size=32),
        dataset_id=spec_name,
    )


PRESETS = (
    Preset("tiny-synthetic",
           "narrow DeepLabV3 (ResNetV1c-18/16 + ASPP + FCN aux, ~1.0M params) on the embedded synthetic scenes",
           _tiny_synthetic, num_classes=6),
)
