"""What a preset is, and the helpers the preset modules share.

A preset says *what* is trained (model, dataset, pipelines, class names) and how its MLE
start checkpoint is pretrained. *How* a trial trains (steps, schedule, reward head) is
added on top by :mod:`rewardsweep.runners.runner_config`, so presets stay plain data.

Cheap to import (no torch, mmseg or mmengine): the spec validator imports the registry.
MMSeg is imported only inside the helpers a preset's ``build`` calls.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from rewardsweep.errors import ConfigError


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
    """A name for a :class:`ModelSetting`; ``build(data_root)`` makes it (and may import MMSeg)."""

    name: str
    description: str
    build: Callable[[str | None], ModelSetting]
    data_env: str | None = None  # environment variable that can hold the data root
    num_classes: int | None = None  # known without building (the spec checks class-weight counts against it)


def data_root_for(data_root: str | None, data_env: str, folder: str) -> str:
    """The spec's data root, else the environment variable ``data_env``, else ``data/<folder>``."""
    root = data_root or os.environ.get(data_env) or os.path.join("data", folder)
    return os.path.abspath(os.path.expanduser(root))


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


def mmseg_config_dir() -> Path:
    """The configs that ship inside the mmsegmentation package (``mmseg/.mim/configs``)."""
    spec = importlib.util.find_spec("mmseg")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("mmsegmentation is not installed (run ./setup.sh)")
    return Path(list(spec.submodule_search_locations)[0]) / ".mim" / "configs"


def mmseg_base_config(*parts: str) -> str:
    """``repr`` of a path under MMSeg's ``_base_`` configs, to write into a config's ``_base_``."""
    return repr(str(mmseg_config_dir().joinpath("_base_", *parts)))


def read_mmseg_config(path: Path, import_custom_modules: bool = True) -> Any:
    """An MMSeg config file read by MMEngine, with the keys a trial needs; one-line
    :class:`ConfigError` otherwise. Without ``import_custom_modules`` (the spec check)
    no torch is imported."""
    from mmengine.config import Config

    try:
        cfg = Config.fromfile(str(path), import_custom_modules=import_custom_modules)
    except Exception as exc:  # noqa: BLE001 - syntax errors, missing _base_ files, anything the file raises
        raise ConfigError(f"{path}: not a readable MMSeg config ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())})") from None
    for key in ("model", "train_dataloader", "val_dataloader"):
        if key not in cfg:
            raise ConfigError(f"{path}: MMSeg config has no '{key}' (expected a full MMSeg 1.x config)")
    head = cfg.model.get("decode_head") if isinstance(cfg.model, dict) else None
    if not isinstance(head, dict) or isinstance(head.get("num_classes"), bool) \
            or not isinstance(head.get("num_classes"), int) or head["num_classes"] < 1:
        raise ConfigError(f"{path}: MMSeg config has no model.decode_head.num_classes (expected an "
                          f"EncoderDecoder with a decode head)")
    return cfg


def mmseg_config_classes(path: Path) -> int:
    """The number of classes of an MMSeg config file (:func:`read_mmseg_config`)."""
    return int(read_mmseg_config(path, import_custom_modules=False).model["decode_head"]["num_classes"])


def setting_from_mmseg_config(path: Path, name: str, data_root: str | None, dataset_id: str) -> ModelSetting:
    """A setting from an MMSeg config file: its model and its train/val datasets."""
    from rewardsweep.mmcv_compat import import_mmseg

    import_mmseg()
    cfg = read_mmseg_config(path)
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


def setting_from_config_text(text: str, name: str, data_root: str, dataset_id: str) -> ModelSetting:
    """:func:`setting_from_mmseg_config` for config text (``_base_`` paths into MMSeg's configs)."""
    with tempfile.TemporaryDirectory(prefix="rewardsweep-cfg-") as folder:
        path = Path(folder) / f"{name}.py"
        path.write_text(text)
        return setting_from_mmseg_config(path, name, data_root, dataset_id)


def _without_sync_bn(node: Any) -> Any:
    """SyncBN needs a distributed process group; one trial is one process."""
    if isinstance(node, dict):
        return {k: ("BN" if k == "type" and v == "SyncBN" else _without_sync_bn(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_without_sync_bn(v) for v in node]
    return node


def registered_dataset_types() -> ModuleType:
    """:mod:`rewardsweep.runners.dataset_types` (imports MMSeg), its classes registered in MMSeg.

    The one place the presets import it: call it inside a preset's ``build``, never at import.
    """
    from rewardsweep.runners import dataset_types

    dataset_types.register_dataset_types()
    return dataset_types


def with_checked_dataset(setting: ModelSetting, dataset_type: str, data_env: str) -> ModelSetting:
    """Swap in the checked dataset class and insert ``CheckLabelIds`` after ``LoadAnnotations``."""
    registered_dataset_types()
    for ds in (setting.train_dataset, setting.val_dataset):
        ds["type"] = dataset_type
        ds["data_env"] = data_env
        pipeline = []
        for step in ds.get("pipeline", []):
            pipeline.append(step)
            if step.get("type") == "LoadAnnotations":
                pipeline.append(dict(type="CheckLabelIds", num_classes=setting.num_classes,
                                     ignore_index=setting.ignore_index))
        ds["pipeline"] = pipeline
    return setting
