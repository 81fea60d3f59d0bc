"""The real-dataset presets on miniature copies of Cityscapes, Mapillary Vistas and EasyPortrait.

Each copy has the real folder layout, naming and label encoding (tests/dataset_fixtures.py).
The presets' own MMSeg pipelines load it (at a reduced crop); each preset's model builds;
one reward step of the R50 runs on CPU; bad data fails with one line naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rewardsweep.errors import DataError
from rewardsweep.runners.presets import resolve_setting
from tests.dataset_fixtures import (
    FACE_MAP,
    read_label,
    small_preset,
    with_crop,
    write_cityscapes,
    write_easyportrait,
    write_mapillary,
)


# preset -> (dataset, classes, first class, last class, raw id -> class id or 255)
PRESETS = {
    "deeplabv3-r50-cityscapes": ("cityscapes", 19, "road", "bicycle", {}),
    "deeplabv3-r50-mapillary-v1": ("mapillary", 65, "Bird", "Ego Vehicle", {65: 255}),
    "deeplabv3-r50-mapillary-v2": ("mapillary", 123, "Bird", "Static", {123: 255}),
    "deeplabv3-r50-easyportrait": ("easyportrait", 9, "background", "teeth", {}),
    "deeplabv3-r50-easyportrait-face": ("easyportrait", 8, "background", "teeth", FACE_MAP),
}
ENV = {"cityscapes": "REWARDSWEEP_CITYSCAPES", "mapillary": "REWARDSWEEP_MAPILLARY",
       "easyportrait": "REWARDSWEEP_EASYPORTRAIT"}
WRITERS = {"cityscapes": write_cityscapes, "mapillary": write_mapillary, "easyportrait": write_easyportrait}
TRAIN_IMAGES = {"cityscapes": 2, "mapillary": 2, "easyportrait": 3}


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("datasets")
    return {name: writer(base / name) for name, writer in WRITERS.items()}


def _build_dataset(cfg: dict):
    from mmseg.registry import DATASETS

    return DATASETS.build(cfg)


def _mapped(raw: np.ndarray, mapping: dict) -> np.ndarray:
    out = raw.copy()
    for old, new in mapping.items():
        out[raw == old] = new
    return out


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_classes_ignore_index_and_data_root(preset, monkeypatch, tmp_path):
    dataset, n, first, last, _ = PRESETS[preset]
    setting = resolve_setting(preset, str(tmp_path / "given"))
    assert setting.num_classes == n and setting.class_names[0] == first and setting.class_names[-1] == last
    assert setting.ignore_index == 255
    assert setting.model["decode_head"]["num_classes"] == setting.model["auxiliary_head"]["num_classes"] == n
    assert setting.train_dataset["data_root"] == setting.val_dataset["data_root"] == str(tmp_path / "given")
    monkeypatch.setenv(ENV[dataset], str(tmp_path / "from-env"))
    assert resolve_setting(preset).train_dataset["data_root"] == str(tmp_path / "from-env")
    assert resolve_setting(preset, str(tmp_path / "given")).train_dataset["data_root"] == str(tmp_path / "given")
    monkeypatch.delenv(ENV[dataset])
    assert resolve_setting(preset).train_dataset["data_root"] == os.path.abspath(os.path.join("data", dataset))
    assert "SyncBN" not in repr(setting.model) and setting.model["pretrained"] is None


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_builds_a_deeplabv3_r50_d8_with_its_class_count(preset):
    from mmseg.registry import MODELS

    setting = resolve_setting(preset, "/nonexistent")
    with torch.device("meta"):  # the structure, without initialising 68M parameters
        model = MODELS.build(setting.model)
    assert type(model.backbone).__name__ == "ResNetV1c" and model.backbone.depth == 50
    assert model.backbone.strides == (1, 2, 1, 1) and model.backbone.dilations == (1, 1, 2, 4)  # D8
    assert type(model.decode_head).__name__ == "ASPPHead"
    assert model.decode_head.conv_seg.out_channels == setting.num_classes
    assert model.auxiliary_head.conv_seg.out_channels == setting.num_classes
    crop = (512, 512) if "easyportrait" in preset else (512, 1024)
    assert tuple(setting.model["data_preprocessor"]["size"]) == crop


@pytest.mark.parametrize("preset", PRESETS)
def test_fixture_loads_through_the_preset_pipelines(preset, roots):
    dataset, n, _, _, mapping = PRESETS[preset]
    setting = with_crop(resolve_setting(preset, str(roots[dataset])), (64, 64))
    train = _build_dataset(setting.train_dataset)
    assert len(train) == TRAIN_IMAGES[dataset]  # labelIds / colour files and the other version are not images
    allowed = set(range(n)) | {255}
    for i in range(len(train)):
        sample = train[i]
        img, gt = sample["inputs"], sample["data_samples"].gt_sem_seg.data
        assert img.dtype == torch.uint8 and img.shape[0] == 3 and gt.shape[0] == 1
        assert img.shape[1:] == gt.shape[1:] and max(gt.shape[1:]) <= 64
        assert set(torch.unique(gt).tolist()) <= allowed
    val = _build_dataset(setting.val_dataset)
    info = val.get_data_info(0)
    sample = val[0]
    raw = read_label(info["seg_map_path"])
    gt = sample["data_samples"].gt_sem_seg.data[0].numpy()
    assert gt.shape == raw.shape == (64, 128)  # labels are evaluated at the original size
    np.testing.assert_array_equal(gt, _mapped(raw, mapping))
    # every class arrives (the fixture labels hold every raw id); Cityscapes' void and
    # Mapillary's Unlabeled arrive as the ignore index
    assert set(np.unique(gt).tolist()) == set(range(n)) | ({255} if dataset != "easyportrait" else set())


def test_easyportrait_face_merges_person_into_background(roots):
    val = _build_dataset(resolve_setting("deeplabv3-r50-easyportrait-face", str(roots["easyportrait"])).val_dataset)
    raw = read_label(val.get_data_info(0)["seg_map_path"])
    gt = val[0]["data_samples"].gt_sem_seg.data[0].numpy()
    assert (gt[raw == 1] == 0).all() and (gt[raw == 0] == 0).all() and (gt[raw == 8] == 7).all()
    assert val.metainfo["classes"][7] == "teeth" and len(val.metainfo["palette"]) == 8


# ---- bad input: one line naming the folder or file ---------------------------------------

def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("preset", ["deeplabv3-r50-cityscapes", "deeplabv3-r50-mapillary-v2",
                                    "deeplabv3-r50-easyportrait"])
def test_missing_data_root_names_the_folder_and_the_variable(preset, tmp_path):
    dataset = PRESETS[preset][0]
    setting = resolve_setting(preset, str(tmp_path / "nope"))  # building the preset needs no data
    with pytest.raises(DataError) as info:
        _build_dataset(setting.train_dataset)
    msg = _one_line(info)
    assert f"{tmp_path / 'nope'}: data root does not exist" in msg and ENV[dataset] in msg


def test_images_without_labels_name_the_image_and_the_expected_label(tmp_path):
    root = write_cityscapes(tmp_path / "cs")
    label = next((root / "gtFine" / "train" / "aachen").glob("*_labelTrainIds.png"))
    label.unlink()
    setting = resolve_setting("deeplabv3-r50-cityscapes", str(root))
    with pytest.raises(DataError) as info:
        _build_dataset(setting.train_dataset)
    msg = _one_line(info)
    assert "aachen_000000_000019_leftImg8bit.png: has no label" in msg and str(label) in msg

    ep = write_easyportrait(tmp_path / "ep")
    for f in (ep / "annotations" / "val").glob("*.png"):
        f.unlink()
    (ep / "annotations" / "val").rmdir()
    with pytest.raises(DataError) as info:
        _build_dataset(resolve_setting("deeplabv3-r50-easyportrait", str(ep)).val_dataset)
    assert f"{ep / 'annotations' / 'val'}: label folder does not exist" in _one_line(info)


def test_label_ids_beyond_the_classes_fail_naming_the_file(tmp_path):
    root = write_easyportrait(tmp_path / "ep", {"train": 1, "val": 1})
    label = next((root / "annotations" / "train").glob("*.png"))
    bad = read_label(label).copy()
    bad[0, :4] = 12
    Image.fromarray(bad).save(label)
    setting = with_crop(resolve_setting("deeplabv3-r50-easyportrait", str(root)), (64, 64))
    train = _build_dataset(setting.train_dataset)
    with pytest.raises(DataError) as info:
        train[0]
    msg = _one_line(info)
    assert str(label) in msg and "label id(s) 12 beyond the 9 classes" in msg

    Image.fromarray(np.stack([bad] * 3, axis=-1)).save(label)  # a colour-coded label
    with pytest.raises(DataError, match="single-channel"):
        train[0]


# ---- one reward step of the R50 on CPU ----------------------------------------------------

@pytest.mark.parametrize("preset, crop", [("deeplabv3-r50-cityscapes", (64, 128)),
                                          ("deeplabv3-r50-mapillary-v1", (64, 128)),
                                          ("deeplabv3-r50-easyportrait-face", (64, 64))])
def test_one_reward_step_of_the_r50_on_the_fixture(preset, crop, tmp_path, roots, monkeypatch):
    """A random start checkpoint, one REINFORCE step at a reduced crop, one evaluation (CPU)."""
    from mmseg.registry import MODELS

    from rewardsweep.runners import presets
    from rewardsweep.runners.trial import run_trial

    torch.set_num_threads(1)
    dataset, n = PRESETS[preset][:2]
    small = small_preset(preset, crop)
    monkeypatch.setitem(presets.PRESETS, small.name, small)
    name = small.name
    setting = resolve_setting(name, str(roots[dataset]))
    torch.manual_seed(0)
    model = MODELS.build(setting.model)
    checkpoint = tmp_path / "start.pth"
    torch.save({"state_dict": {k: v.half() if v.is_floating_point() else v
                               for k, v in model.state_dict().items()}}, checkpoint)
    del model
    from rewardsweep.checkpoint_file import file_hash

    start = {"checkpoint": str(checkpoint), "checkpoint_hash": file_hash(checkpoint), "dataset": setting.dataset_id,
             "miou": 0.0, "per_class_iou": [0.0] * n, "class_names": list(setting.class_names)}
    events = []
    record = run_trial(dict(model=name, data_root=str(roots[dataset]), start=start, steps=1,
                            eval_every=1, batch_size=2, threads=1, seed=0), on_event=events.append)
    assert record["status"] == "finished", record.get("error")
    steps = [e for e in events if e["kind"] == "step"]
    evals = [e for e in events if e["kind"] == "eval"]
    assert len(steps) == 1 and np.isfinite(steps[0]["loss"]) and "reward_mean" in steps[0]
    assert len(evals) == 1 and len(evals[0]["per_class_iou"]) == n
    assert record["class_names"] == list(setting.class_names)

    if dataset == "easyportrait":  # the folders are checked when the trial loads them, on the worker
        missing = tmp_path / "not-mounted"
        with pytest.raises(DataError, match="not-mounted: data root does not exist"):
            run_trial(dict(model=name, data_root=str(missing), start=start, steps=1, eval_every=1,
                           batch_size=2, threads=1, study_dir=str(tmp_path / "study"), config_id="c"))
        from rewardsweep.study import layout, records

        failed = records.read_record(layout.record_path(tmp_path / "study", "c", "reward", 0))
        assert failed["status"] == "failed" and failed["error"].startswith("DataError: ")


# ---- search spaces ------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("spec, preset", [
    ("easyportrait-baseline.yaml", "deeplabv3-r50-easyportrait-face"),
    ("mapillary-baseline.yaml", "deeplabv3-r50-mapillary-v1"),
    ("cityscapes-baseline.yaml", "deeplabv3-r50-cityscapes"),
])
def test_search_spaces_name_a_dataset_preset_and_a_gpu(spec, preset):
    from rewardsweep.sweep.expand import expand
    from rewardsweep.sweep.spec import load_spec

    path = REPO / "search_spaces" / spec
    if not path.exists():
        pytest.skip(f"{spec} not written yet")
    loaded = load_spec(path)
    assert loaded.model == preset and loaded.data_root is None  # from the environment variable
    plans = expand(loaded)
    assert plans and all(p.config["model"] == preset for p in plans)
    assert {p.arm for p in plans} == {"reward", "mle"}
    assert loaded.resources["gpu"] >= 1
