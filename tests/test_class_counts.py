"""``rewardsweep class-weights``: counts equal a brute-force count; the file feeds a search space."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rewardsweep.cli import main
from rewardsweep.errors import DataError
from rewardsweep.reward.class_weights import class_weights_from_counts, load_counts
from rewardsweep.runners.class_counts import count_pixels
from tests.dataset_fixtures import (
    FACE_MAP,
    brute_force_counts,
    read_label,
    write_cityscapes,
    write_easyportrait,
    write_mapillary,
)

# preset -> (dataset, classes, raw id -> class id or 255, train label files (glob), val label files)
CASES = {
    "deeplabv3-r50-cityscapes": ("cityscapes", 19, {}, "gtFine/train/*/*_gtFine_labelTrainIds.png",
                                 "gtFine/val/*/*_gtFine_labelTrainIds.png"),
    "deeplabv3-r50-mapillary-v1": ("mapillary", 65, {65: 255}, "training/v1.2/labels/*.png",
                                   "validation/v1.2/labels/*.png"),
    "deeplabv3-r50-mapillary-v2": ("mapillary", 123, {123: 255}, "training/v2.0/labels/*.png",
                                   "validation/v2.0/labels/*.png"),
    "deeplabv3-r50-easyportrait": ("easyportrait", 9, {}, "annotations/train/*.png", "annotations/val/*.png"),
    "deeplabv3-r50-easyportrait-face": ("easyportrait", 8, FACE_MAP, "annotations/train/*.png",
                                        "annotations/val/*.png"),
}


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("counts")
    return {"cityscapes": write_cityscapes(base / "cityscapes"),
            "mapillary": write_mapillary(base / "mapillary"),
            "easyportrait": write_easyportrait(base / "easyportrait", {"train": 3, "val": 1, "test": 2})}


@pytest.mark.parametrize("preset", CASES)
@pytest.mark.parametrize("split", ["train", "val"])
def test_counts_equal_a_brute_force_count(preset, split, roots):
    dataset, n, mapping, train_glob, val_glob = CASES[preset]
    root = roots[dataset]
    files = sorted(root.glob(train_glob if split == "train" else val_glob))
    result = count_pixels(preset, str(root), split, workers=2)
    assert result.images == len(files) > 0
    assert result.counts.tolist() == brute_force_counts(files, n, mapping)
    total = sum(read_label(f).size for f in files)
    assert int(result.counts.sum()) + result.ignored == total  # every pixel is a class or ignored
    assert (result.ignored > 0) == (dataset != "easyportrait")


def test_another_split_by_folder_name(roots):
    result = count_pixels("deeplabv3-r50-easyportrait", str(roots["easyportrait"]), "test")
    files = sorted((roots["easyportrait"] / "annotations" / "test").glob("*.png"))
    assert result.images == 2 and result.counts.tolist() == brute_force_counts(files, 9)


def test_tiny_synthetic_counts_match_its_generator():
    from rewardsweep.runners import synthetic_data

    result = count_pixels("tiny-synthetic")
    spec = synthetic_data.SyntheticSpec()
    expected = synthetic_data.class_frequencies(spec) * spec.train_images * spec.size ** 2
    np.testing.assert_allclose(result.counts, expected, rtol=0, atol=1e-6)
    assert result.images == spec.train_images and result.ignored == 0


def test_cli_writes_a_counts_file_a_search_space_can_use(roots, tmp_path, capsys):
    from rewardsweep.reward.settings import RewardSettings

    out = tmp_path / "face-counts.json"
    rc = main(["class-weights", "deeplabv3-r50-easyportrait-face", "--data-root", str(roots["easyportrait"]),
               "--smooth", "0.1", "--out", str(out), "--workers", "1"])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["dataset"] == "deeplabv3-r50-easyportrait-face" and data["split"] == "train"
    assert data["class_names"][0] == "background" and len(data["counts"]) == 8 and data["smooth"] == 0.1
    loaded = load_counts(out)
    expected = class_weights_from_counts(loaded.counts, 0.1)
    np.testing.assert_allclose(data["weights"], expected.numpy(), atol=1e-6)
    printed = capsys.readouterr().out
    assert "teeth" in printed and "frequency" in printed and f"counts: {out}" in printed
    settings = RewardSettings.from_config(
        {"class_weights": {"counts": str(out)}}, source="test", num_classes=8)
    assert settings.class_weights_smooth == 0.1 and settings.class_weight_tensor().shape == (8,)


def test_default_output_name(roots, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["class-weights", "deeplabv3-r50-cityscapes", "--data-root", str(roots["cityscapes"])]) == 0
    assert load_counts(tmp_path / "deeplabv3-r50-cityscapes-class-weights.json").counts


# ---- bad input: one line naming the file ----------------------------------------------------

def _cli_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rewardsweep: error: ") and "\n" not in err
    return err


def test_label_id_beyond_the_classes_names_the_file(tmp_path, capsys):
    root = write_mapillary(tmp_path / "m")
    label = sorted((root / "training" / "v1.2" / "labels").glob("*.png"))[1]
    img = Image.open(label)
    array = np.asarray(img).copy()
    array[:2, :2] = 70  # beyond v1.2's 66 ids
    fixed = Image.fromarray(array)
    fixed.putpalette(img.getpalette())
    fixed.save(label)
    with pytest.raises(DataError) as info:
        count_pixels("deeplabv3-r50-mapillary-v1", str(root))
    assert str(label) in str(info.value) and "label id(s) 70 beyond the 65 classes" in str(info.value)
    err = _cli_error(["class-weights", "deeplabv3-r50-mapillary-v1", "--data-root", str(root),
                      "--out", str(tmp_path / "x.json")], capsys)
    assert str(label) in err and not (tmp_path / "x.json").exists()


def test_colour_label_and_bad_folders(tmp_path, capsys):
    root = write_easyportrait(tmp_path / "ep", {"train": 2, "val": 1})
    label = sorted((root / "annotations" / "train").glob("*.png"))[0]
    Image.fromarray(np.stack([read_label(label)] * 3, axis=-1)).save(label)
    err = _cli_error(["class-weights", "deeplabv3-r50-easyportrait", "--data-root", str(root)], capsys)
    assert str(label) in err and "single-channel" in err

    label.unlink()
    err = _cli_error(["class-weights", "deeplabv3-r50-easyportrait", "--data-root", str(root)], capsys)
    assert "has no label" in err and str(label) in err

    err = _cli_error(["class-weights", "deeplabv3-r50-easyportrait", "--data-root", str(tmp_path / "nope")], capsys)
    assert f"{tmp_path / 'nope'}: data root does not exist" in err and "REWARDSWEEP_EASYPORTRAIT" in err

    err = _cli_error(["class-weights", "deeplabv3-r50-easyportrait", "--data-root", str(root),
                      "--split", "test"], capsys)
    assert f"{root / 'images' / 'test'}: image folder does not exist" in err


def test_unknown_dataset_is_one_line(capsys):
    err = _cli_error(["class-weights", "cityscapes-ish"], capsys)
    assert "unknown preset 'cityscapes-ish'" in err
