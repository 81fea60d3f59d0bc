"""Model presets: a name -> the MMSeg model and data settings of one study setting.

A preset says *what* is trained (model, dataset, pipelines, class names) and how its MLE
start checkpoint is pretrained. *How* a trial trains (steps, schedule, reward head) is
added on top by :mod:`rewardsweep.runners.runner_config`, so presets stay plain data.

A user may also pass a path to any MMSeg config file instead of a preset name: its model
and dataloaders are used as they are.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rewardsweep.errors import ConfigError, DataError


@dataclass(frozen=True)
class PretrainDefaults:
    """MLE pretraining of the start checkpoint (``checkpoint: auto``)."""

    iters: int
    lr: float
    batch_size: int
    eval_batch_size: int = 16


@dataclass
class ModelSetting:
    """What one trial trains: an MMEngine config fragment plus facts the runners need."""

    name: str
    model: dict[str, Any]
    train_dataset: dict[str, Any]
    val_dataset: dict[str, Any]
    class_names: tuple[str, ...]
    ignore_index: int = 255
    pretrain: PretrainDefaults = field(default_factory=lambda: PretrainDefaults(iters=2000, lr=0.01, batch_size=2))
    dataset_id: str = ""  # identifies the data for caching and pooling checks

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    build: Callable[[str | None], ModelSetting]
    data_env: str | None = None  # environment variable that can hold the data root


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
    synthetic_data.register_dataset()
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
        pretrain=PretrainDefaults(iters=1000, lr=0.05, batch_size=8, eval_batch_size=32),
        dataset_id=spec_name,
    )


def mmseg_config_dir() -> Path:
    """The configs that ship inside the mmsegmentation package (``mmseg/.mim/configs``)."""
    import importlib.util

    spec = importlib.util.find_spec("mmseg")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("mmsegmentation is not installed (run ./setup.sh)")
    return Path(list(spec.submodule_search_locations)[0]) / ".mim" / "configs"


def _from_mmseg_config(path: Path, name: str, data_root: str | None, dataset_id: str) -> ModelSetting:
    """A setting from an MMSeg config file: its model and its train/val datasets."""
    from mmengine.config import Config

    from rewardsweep.mmcv_compat import import_mmseg

    import_mmseg()
    try:
        cfg = Config.fromfile(str(path))
    except Exception as exc:  # syntax errors, missing _base_ files, ...
        raise ConfigError(f"{path}: not a readable MMSeg config ({type(exc).__name__}: {exc})".replace("\n", " "))
    for key in ("model", "train_dataloader", "val_dataloader"):
        if key not in cfg:
            raise ConfigError(f"{path}: MMSeg config has no '{key}' (expected a full MMSeg 1.x config)")
    model = _without_sync_bn(copy.deepcopy(cfg.model.to_dict() if hasattr(cfg.model, "to_dict") else dict(cfg.model)))
    model["pretrained"] = None  # the start checkpoint provides the weights; no hub downloads
    if isinstance(model.get("backbone"), dict) and "init_cfg" in model["backbone"]:
        model["backbone"]["init_cfg"] = None
    train_dataset = copy.deepcopy(dict(cfg.train_dataloader.dataset))
    val_dataset = copy.deepcopy(dict(cfg.val_dataloader.dataset))
    if data_root:
        train_dataset["data_root"] = val_dataset["data_root"] = str(data_root)
    from mmseg.registry import DATASETS

    dataset_cls = DATASETS.get(train_dataset["type"])
    classes = tuple(getattr(dataset_cls, "METAINFO", {}).get("classes", ()))
    if train_dataset.get("metainfo", {}).get("classes"):
        classes = tuple(train_dataset["metainfo"]["classes"])
    num_classes = model["decode_head"]["num_classes"]
    if len(classes) != num_classes:
        classes = tuple(f"class_{i}" for i in range(num_classes))
    return ModelSetting(
        name=name,
        model=model,
        train_dataset=train_dataset,
        val_dataset=val_dataset,
        class_names=classes,
        ignore_index=int(model["decode_head"].get("ignore_index", 255)),
        pretrain=PretrainDefaults(iters=int(cfg.get("train_cfg", {}).get("max_iters", 40000)), lr=0.01,
                                  batch_size=int(cfg.train_dataloader.get("batch_size", 2)), eval_batch_size=1),
        dataset_id=dataset_id or f"{train_dataset['type']}@{train_dataset.get('data_root')}",
    )


def _without_sync_bn(node: Any) -> Any:
    """SyncBN needs a distributed process group; one trial is one process."""
    if isinstance(node, dict):
        return {k: ("BN" if k == "type" and v == "SyncBN" else _without_sync_bn(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_without_sync_bn(v) for v in node]
    return node


PRESETS: dict[str, Preset] = {
    "tiny-synthetic": Preset(
        "tiny-synthetic",
        "narrow DeepLabV3 (ResNetV1c-18/16 + ASPP + FCN aux, ~1.0M params) on the embedded synthetic scenes",
        _tiny_synthetic,
    ),
}


def preset_names() -> tuple[str, ...]:
    _load_extra_presets()
    return tuple(PRESETS)


def register_preset(preset: Preset) -> None:
    """Add a preset (the real-dataset presets register themselves this way)."""
    PRESETS[preset.name] = preset


def _load_extra_presets() -> None:
    try:  # real-dataset presets live in their own module; absent is fine
        import rewardsweep.runners.datasets  # noqa: F401
    except ImportError:
        pass


def is_config_path(model: str) -> bool:
    return model.endswith(".py") or os.sep in model


def resolve_setting(model: str, data_root: str | None = None) -> ModelSetting:
    """The model setting for a preset name or an MMSeg config path; one-line errors."""
    _load_extra_presets()
    if model in PRESETS:
        return PRESETS[model].build(data_root)
    if is_config_path(model):
        path = Path(model)
        if not path.is_file():
            raise ConfigError(f"model: MMSeg config '{model}' does not exist (expected a preset name or a .py config)")
        if not os.access(path, os.R_OK):
            raise ConfigError(f"model: MMSeg config '{model}' is not readable")
        return _from_mmseg_config(path, path.stem, data_root, "")
    raise ConfigError(
        f"model: unknown preset '{model}' (expected one of {', '.join(preset_names())}, or a path to an MMSeg config)"
    )


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
