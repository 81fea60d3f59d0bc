"""Model presets: a name -> the MMSeg model and data settings of one study setting.

The registry is the explicit list below: one module per preset family, each exporting a
``PRESETS`` tuple of :class:`Preset`. Adding a preset is one new module plus one entry in
``PRESETS`` here (docs/datasets.md, "Adding a preset"). Importing the registry is cheap
(no torch or mmseg); a preset imports MMSeg only when it is built. An import error in a
preset module is raised as it is, never turned into "unknown preset".

A user may also pass a path to any MMSeg config file instead of a preset name: its model
and dataloaders are used as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

from rewardsweep.errors import ConfigError
from rewardsweep.runners.presets import cityscapes, easyportrait, mapillary, tiny
from rewardsweep.runners.presets.base import (
    ModelSetting,
    Preset,
    PretrainDefaults,
    data_root_for,
    mmseg_config_classes,
    mmseg_config_dir,
    setting_from_mmseg_config,
    split_dataset,
)

__all__ = [
    "PRESETS", "ModelSetting", "Preset", "PretrainDefaults", "data_root_for", "is_config_path", "mmseg_config_classes",
    "mmseg_config_dir", "preset_names", "resolve_setting", "setting_from_mmseg_config", "split_dataset",
]

PRESETS: dict[str, Preset] = {
    p.name: p for p in (*tiny.PRESETS, *cityscapes.PRESETS, *mapillary.PRESETS, *easyportrait.PRESETS)
}


def preset_names() -> tuple[str, ...]:
    return tuple(PRESETS)


def is_config_path(model: str) -> bool:
    return model.endswith(".py") or os.sep in model


def resolve_setting(model: str, data_root: str | None = None) -> ModelSetting:
    """The model setting for a preset name or an MMSeg config path; one-line errors."""
    if model in PRESETS:
        return PRESETS[model].build(data_root)
    if is_config_path(model):
        path = Path(model)
        if not path.is_file():
            raise ConfigError(f"model: MMSeg config '{model}' does not exist (expected a preset name or a .py config)")
        if not os.access(path, os.R_OK):
            raise ConfigError(f"model: MMSeg config '{model}' is not readable")
        return setting_from_mmseg_config(path, path.stem, data_root, "")
    raise ConfigError(
        f"model: unknown preset '{model}' (expected one of {', '.join(preset_names())}, or a path to an MMSeg config)"
    )
