"""Presets build real MMSeg models; bad model names, configs and data folders give one line."""

import pytest

from rewardsweep.errors import ConfigError, DataError
from rewardsweep.runners.presets import resolve_setting


def _build(setting):
    from mmseg.registry import MODELS

    return MODELS.build(setting.model)


def test_tiny_preset_is_a_deeplabv3_of_about_a_million_parameters():
    setting = resolve_setting("tiny-synthetic")
    model = _build(setting)
    n = sum(p.numel() for p in model.parameters())
    assert 0.5e6 < n < 2e6
    assert type(model.backbone).__name__ == "ResNetV1c"
    assert type(model.decode_head).__name__ == "ASPPHead"
    assert type(model.auxiliary_head).__name__ == "FCNHead"
    assert setting.num_classes == 6


def test_cityscapes_preset_builds_the_r50_d8_model_without_downloads():
    setting = resolve_setting("deeplabv3-r50-cityscapes", "/nonexistent/cityscapes")
    model = _build(setting)
    assert type(model.backbone).__name__ == "ResNetV1c" and model.backbone.depth == 50
    assert setting.num_classes == 19 and setting.class_names[0] == "road"
    assert setting.train_dataset["data_root"] == "/nonexistent/cityscapes"
    assert "SyncBN" not in repr(setting.model)


def test_a_path_to_an_mmseg_config_is_accepted():
    from rewardsweep.runners.presets import mmseg_config_dir

    path = mmseg_config_dir() / "deeplabv3" / "deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py"
    setting = resolve_setting(str(path))
    assert setting.num_classes == 19


def test_unknown_preset_is_one_line_naming_the_choices():
    with pytest.raises(ConfigError) as info:
        resolve_setting("deeplab-tiny")
    msg = str(info.value)
    assert "\n" not in msg and "unknown preset 'deeplab-tiny'" in msg and "tiny-synthetic" in msg


def test_missing_and_broken_config_paths(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_setting(str(tmp_path / "nope.py"))
    broken = tmp_path / "broken.py"
    broken.write_text("model = dict(\n")
    with pytest.raises(ConfigError) as info:
        resolve_setting(str(broken))
    assert "not a readable MMSeg config" in str(info.value) and "\n" not in str(info.value)


def test_empty_data_folder_and_images_without_labels(tmp_path):
    (tmp_path / "img_dir" / "train").mkdir(parents=True)
    (tmp_path / "ann_dir" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        resolve_setting("tiny-synthetic", str(tmp_path))
    (tmp_path / "img_dir" / "train" / "a.png").write_bytes(b"x")
    with pytest.raises(DataError, match="a.png: has no label"):
        resolve_setting("tiny-synthetic", str(tmp_path))
