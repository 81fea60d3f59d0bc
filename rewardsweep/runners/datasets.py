"""Presets for the study's real datasets: DeepLabV3 R50-D8 on Cityscapes, Mapillary Vistas
(v1.2 and v2.0 label sets) and EasyPortrait (9 classes, and the 8-class face parsing).

Imported by :func:`rewardsweep.runners.presets.resolve_setting`, which picks up the presets
registered here. Each preset reuses MMSeg's own configs (model
``_base_/models/deeplabv3_r50-d8.py``; Cityscapes' and Mapillary's dataset configs) through
:func:`rewardsweep.runners.presets._from_mmseg_config`; only EasyPortrait, which MMSeg does
not ship, has its pipeline written here (the dataset authors' 512x512 one).

The data root is, in order: the search space's ``data_root`` (``--data-root`` for the CLI),
the preset's environment variable (``REWARDSWEEP_CITYSCAPES``, ``REWARDSWEEP_MAPILLARY``,
``REWARDSWEEP_EASYPORTRAIT``), else ``data/<dataset>`` under the working directory. The
folders are checked when a split is loaded (:mod:`rewardsweep.runners.dataset_types`), not
when the preset is built, so ``--dry-run`` and model-only uses work without the data.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

from rewardsweep.runners.dataset_types import (
    EASYPORTRAIT_CLASSES,
    EASYPORTRAIT_FACE_CLASSES,
    register_dataset_types,
)
from rewardsweep.runners.presets import (
    ModelSetting,
    Preset,
    _from_mmseg_config,
    mmseg_config_dir,
    register_preset,
)

ENV = {
    "cityscapes": "REWARDSWEEP_CITYSCAPES",
    "mapillary": "REWARDSWEEP_MAPILLARY",
    "easyportrait": "REWARDSWEEP_EASYPORTRAIT",
}


def data_root_for(data_root: str | None, dataset: str) -> str:
    """The spec's data root, else the dataset's environment variable, else ``data/<dataset>``."""
    root = data_root or os.environ.get(ENV[dataset]) or os.path.join("data", dataset)
    return os.path.abspath(os.path.expanduser(root))


def _setting_from_text(text: str, name: str, root: str, dataset_id: str) -> ModelSetting:
    """A setting from MMSeg config text (``_base_`` paths into MMSeg's shipped configs)."""
    with tempfile.TemporaryDirectory(prefix="rewardsweep-cfg-") as folder:
        path = Path(folder) / f"{name}.py"
        path.write_text(text)
        setting = _from_mmseg_config(path, name, root, dataset_id)
    return setting


def _finish(setting: ModelSetting, dataset_type: str, dataset: str) -> ModelSetting:
    """Swap in the checked dataset class and insert ``CheckLabelIds`` after ``LoadAnnotations``."""
    for ds in (setting.train_dataset, setting.val_dataset):
        ds["type"] = dataset_type
        ds["data_env"] = ENV[dataset]
        pipeline = []
        for step in ds.get("pipeline", []):
            pipeline.append(step)
            if step.get("type") == "LoadAnnotations":
                pipeline.append(dict(type="CheckLabelIds", num_classes=setting.num_classes,
                                     ignore_index=setting.ignore_index))
        ds["pipeline"] = pipeline
    return setting


def _base(*parts: str) -> str:
    return repr(str(mmseg_config_dir().joinpath("_base_", *parts)))


def _deeplabv3_r50_cityscapes(data_root: str | None) -> ModelSetting:
    register_dataset_types()
    root = data_root_for(data_root, "cityscapes")
    config = mmseg_config_dir() / "deeplabv3" / "deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py"
    setting = _from_mmseg_config(config, "deeplabv3-r50-cityscapes", root, f"cityscapes@{root}")
    return _finish(setting, "CheckedCityscapesDataset", "cityscapes")


def _mapillary(version: str):
    """Mapillary Vistas v1.2 (66 label ids) or v2.0 (124): ``Unlabeled`` (the last id) is
    ignored (255), as in MMSeg's 65-class v1.2 config and Mapillary's own evaluation, so the
    model has 65 or 123 classes."""

    def build(data_root: str | None) -> ModelSetting:
        register_dataset_types()
        from mmseg.datasets import MapillaryDataset_v1, MapillaryDataset_v2

        cls = MapillaryDataset_v1 if version == "v1.2" else MapillaryDataset_v2
        classes = list(cls.METAINFO["classes"])
        assert classes[-1] == "Unlabeled"
        num_classes = len(classes) - 1
        dataset_cfg = "mapillary_v1_65.py" if version == "v1.2" else "mapillary_v2.py"
        name = f"deeplabv3-r50-mapillary-{version.split('.')[0]}"
        text = "\n".join([
            f"_base_ = [{_base('models', 'deeplabv3_r50-d8.py')}, {_base('datasets', dataset_cfg)},",
            f"          {_base('schedules', 'schedule_80k.py')}]",
            "crop_size = (512, 1024)",
            f"model = dict(data_preprocessor=dict(size=crop_size), decode_head=dict(num_classes={num_classes}),",
            f"             auxiliary_head=dict(num_classes={num_classes}))",
            f"metainfo = dict(classes={tuple(classes[:-1])!r}, palette={cls.METAINFO['palette'][:-1]!r})",
            "train_dataloader = dict(dataset=dict(metainfo=metainfo))",
            "val_dataloader = dict(dataset=dict(metainfo=metainfo))",
        ])
        root = data_root_for(data_root, "mapillary")
        setting = _setting_from_text(text, name, root, f"mapillary-{version}@{root}")
        return _finish(setting, f"CheckedMapillaryDataset_{version.split('.')[0]}", "mapillary")

    return build


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


def _easyportrait(face: bool):
    def build(data_root: str | None) -> ModelSetting:
        register_dataset_types()
        classes = EASYPORTRAIT_FACE_CLASSES if face else EASYPORTRAIT_CLASSES
        dataset_type = "EasyPortraitFaceDataset" if face else "EasyPortraitDataset"
        name = "deeplabv3-r50-easyportrait-face" if face else "deeplabv3-r50-easyportrait"
        root = data_root_for(data_root, "easyportrait")
        train_pipeline, test_pipeline = _easyportrait_pipelines()

        def loader(split: str, pipeline: list[dict], batch_size: int) -> dict:
            return dict(batch_size=batch_size, num_workers=4, dataset=dict(
                type=dataset_type, data_root=root,
                data_prefix=dict(img_path=f"images/{split}", seg_map_path=f"annotations/{split}"),
                pipeline=pipeline))

        text = "\n".join([  # the EasyPortrait authors trained for 20k iterations at batch 4
            f"_base_ = [{_base('models', 'deeplabv3_r50-d8.py')}, {_base('schedules', 'schedule_20k.py')}]",
            "crop_size = (512, 512)",
            f"model = dict(data_preprocessor=dict(size=crop_size), decode_head=dict(num_classes={len(classes)}),",
            f"             auxiliary_head=dict(num_classes={len(classes)}))",
            f"train_dataloader = {loader('train', train_pipeline, 4)!r}",
            f"val_dataloader = {loader('val', test_pipeline, 1)!r}",
        ])
        setting = _setting_from_text(text, name, root, f"{'easyportrait-face' if face else 'easyportrait'}@{root}")
        return _finish(setting, dataset_type, "easyportrait")

    return build


def split_dataset(setting: ModelSetting, split: str) -> dict:
    """The dataset dict of ``split``: the preset's train or val dataset, or for another split
    name (e.g. ``test``) the train dataset with its split folder renamed."""
    if split in ("train", "training"):
        return copy.deepcopy(setting.train_dataset)
    if split in ("val", "validation"):
        return copy.deepcopy(setting.val_dataset)
    ds = copy.deepcopy(setting.train_dataset)
    prefix = dict(ds.get("data_prefix", {}))
    for key, value in prefix.items():
        parts = Path(value).parts
        prefix[key] = str(Path(*[split if p in ("train", "training") else p for p in parts])) if parts else value
    ds["data_prefix"] = prefix
    return ds


PRESETS = (
    Preset("deeplabv3-r50-cityscapes",
           "MMSeg's DeepLabV3 R50-D8 512x1024 on Cityscapes, 19 classes (the study's setting; GPU)",
           _deeplabv3_r50_cityscapes, data_env=ENV["cityscapes"]),
    Preset("deeplabv3-r50-mapillary-v1",
           "DeepLabV3 R50-D8 512x1024 on Mapillary Vistas v1.2, 65 classes (Unlabeled ignored; GPU)",
           _mapillary("v1.2"), data_env=ENV["mapillary"]),
    Preset("deeplabv3-r50-mapillary-v2",
           "DeepLabV3 R50-D8 512x1024 on Mapillary Vistas v2.0, 123 classes (Unlabeled ignored; GPU)",
           _mapillary("v2.0"), data_env=ENV["mapillary"]),
    Preset("deeplabv3-r50-easyportrait",
           "DeepLabV3 R50-D8 512x512 on EasyPortrait, 9 classes (portrait + face parts; GPU)",
           _easyportrait(face=False), data_env=ENV["easyportrait"]),
    Preset("deeplabv3-r50-easyportrait-face",
           "DeepLabV3 R50-D8 512x512 on EasyPortrait face parsing, 8 classes (person -> background; GPU)",
           _easyportrait(face=True), data_env=ENV["easyportrait"]),
)

for _preset in PRESETS:
    register_preset(_preset)
