"""MLE pretraining through MMEngine's Runner: loss goes down, checkpoint loads back, cache is reused."""

import json

import pytest
import torch

from rewardsweep.errors import ConfigError
from rewardsweep.runners.pretrain import ensure_start, evaluate_checkpoint
from rewardsweep.runners.presets import resolve_setting


def test_pretraining_lowers_the_loss_and_saves_a_loadable_checkpoint(tiny_start):
    pre = tiny_start["pretrained"]
    assert pre["loss_last"] < pre["loss_first"] * 0.8
    assert 0.0 < tiny_start["miou"] < 1.0
    assert len(tiny_start["per_class_iou"]) == len(tiny_start["class_names"]) == 6
    state = torch.load(tiny_start["checkpoint"], map_location="cpu", weights_only=False)
    assert "decode_head.conv_seg.weight" in state["state_dict"]
    # Loading it back into the preset model and evaluating reproduces the recorded val mIoU.
    again = evaluate_checkpoint(resolve_setting("tiny-synthetic"), tiny_start["checkpoint"])
    assert again["miou"] == pytest.approx(tiny_start["miou"], abs=1e-9)


def test_second_call_reuses_the_cache(tiny_start):
    from tests.conftest import TEST_PRETRAIN_ITERS

    again = ensure_start("tiny-synthetic", "auto", iters=TEST_PRETRAIN_ITERS)
    assert again["cached"] is True
    assert again["checkpoint"] == tiny_start["checkpoint"]
    assert again["checkpoint_hash"] == tiny_start["checkpoint_hash"]


def test_explicit_checkpoint_path_is_evaluated(tiny_start):
    start = ensure_start("tiny-synthetic", tiny_start["checkpoint"])
    assert start["miou"] == pytest.approx(tiny_start["miou"], abs=1e-9)


def test_missing_checkpoint_and_mismatched_checkpoint(tmp_path, tiny_start):
    with pytest.raises(ConfigError, match="does not exist"):
        ensure_start("tiny-synthetic", str(tmp_path / "missing.pth"))
    state = torch.load(tiny_start["checkpoint"], map_location="cpu", weights_only=False)
    state["state_dict"]["decode_head.conv_seg.weight"] = torch.zeros(3, 48, 1, 1)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(ConfigError) as info:
        ensure_start("tiny-synthetic", str(bad))
    assert "does not match the model" in str(info.value) and "\n" not in str(info.value)


def test_cli_pretrain_prints_val_miou(capsys, tiny_start):
    from rewardsweep.cli import main
    from tests.conftest import TEST_PRETRAIN_ITERS

    assert main(["pretrain", "--iters", str(TEST_PRETRAIN_ITERS)]) == 0
    out = capsys.readouterr().out
    assert "reused from cache" in out and "mIoU" in out and f"{tiny_start['miou']:.4f}" in out


def test_cli_user_error_is_one_line_and_exit_2(capsys):
    from rewardsweep.cli import main

    assert main(["pretrain", "--model", "no-such-preset"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("rewardsweep: error: model: unknown preset")


def test_pretraining_is_reproducible_whatever_the_callers_thread_count(tmp_path):
    """Same config and seed -> the same weights, byte for byte (the hash names the weights)."""
    hashes = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        start = ensure_start("tiny-synthetic", "auto", iters=12, cache_dir=tmp_path / f"t{threads}")
        hashes.append((start["checkpoint_hash"], start["miou"]))
        assert torch.get_num_threads() == threads  # restored for the caller
    torch.set_num_threads(1)
    assert hashes[0] == hashes[1]


def test_cli_pretrain_estimates_its_time_before_most_of_the_work(tmp_path, capsys):
    from rewardsweep.cli import main

    assert main(["pretrain", "--iters", "14", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("pretraining tiny-synthetic: 14 iterations at "))
    from rewardsweep.runners.pretrain import pretrain_threads

    assert f"ms/iter (measured over iterations 2-11, {pretrain_threads()} thread(s)): ~" in line
    assert line.endswith("s to go")
