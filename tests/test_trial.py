"""One trial end to end through MMEngine's Runner, the reward head, failures as data."""

import json
import math

import pytest
import torch

from rewardsweep.study import layout, records
from rewardsweep.errors import ConfigError
from rewardsweep.errors import TrialDiverged, TrialFailed
from rewardsweep.runners.trial import run_trial


def _config(tmp_path, start, **overrides):
    cfg = dict(study="t", study_dir=str(tmp_path), config_id="cfg", arm="reward", seed=1,
               model="tiny-synthetic", start=start, steps=6, eval_every=3, batch_size=4, samples=2,
               baseline={"kind": "sample_loo"}, lr={"start": 1e-2, "end": 1e-4, "schedule": "poly"})
    cfg.update(overrides)
    return cfg


def test_reward_trial_runs_end_to_end_and_writes_its_record(tmp_path, tiny_start):
    events = []
    record = run_trial(_config(tmp_path, tiny_start), on_event=events.append)
    assert record["status"] == "finished"
    assert record["miou_start"] == tiny_start["miou"]
    assert record["delta_miou"] == pytest.approx(record["miou_final"] - record["miou_start"])
    assert [p["step"] for p in record["curve"]] == [0, 3, 6]
    steps = [e for e in events if e["kind"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 7))
    for key in ("loss", "reward_mean", "reward_std", "advantage_mean", "advantage_std", "grad_norm", "lr"):
        assert all(math.isfinite(e[key]) for e in steps), key
    assert steps[0]["lr"] > steps[-1]["lr"]  # the schedule decays
    evals = [e for e in events if e["kind"] == "eval"]
    assert [e["step"] for e in evals] == [3, 6] and len(evals[-1]["per_class_iou"]) == 6
    on_disk = records.read_record(layout.record_path(tmp_path, "cfg", "reward", 1))
    assert on_disk["miou_final"] == record["miou_final"]
    diagnostics = records.read_diagnostics(tmp_path / on_disk["diagnostics_file"])
    assert [d["step"] for d in diagnostics] == list(range(1, 7))
    assert diagnostics == [{k: v for k, v in e.items()} for e in steps]
    assert on_disk["diagnostics_summary"]["loss"] == pytest.approx(steps[-1]["loss"])
    assert on_disk["timings"]["train_s"] > 0
    # the final evaluation's per-image counts give exactly the final mIoU (the val bootstrap's input)
    import numpy as np

    counts = records.read_val_counts(tmp_path / on_disk["val_counts_file"])
    inter, union = np.asarray(counts["intersect"], float), np.asarray(counts["union"], float)
    assert inter.shape == union.shape and inter.shape[1] == 6 and inter.shape[0] > 1
    assert (inter <= union).all() and counts["class_names"] == on_disk["class_names"]
    with np.errstate(invalid="ignore"):
        miou = np.nanmean(inter.sum(0) / np.where(union.sum(0) > 0, union.sum(0), np.nan))
    assert miou == pytest.approx(record["miou_final"], abs=1e-6)   # MMSeg sums in float32


def test_same_seed_twice_gives_identical_numbers_and_another_seed_differs(tmp_path, tiny_start):
    a = run_trial(_config(tmp_path / "a", tiny_start, checkpoints="final"))
    b = run_trial(_config(tmp_path / "b", tiny_start, checkpoints="final"))
    c = run_trial(_config(tmp_path / "c", tiny_start, seed=2))
    def losses(r):
        study = tmp_path / r["config"]["study_dir"]
        return [d["loss"] for d in records.read_diagnostics(study / r["diagnostics_file"])]

    assert losses(a) == losses(b)
    assert a["miou_final"] == b["miou_final"] and a["per_class_iou_final"] == b["per_class_iou_final"]
    assert a["final_checkpoint"]["sha256"] == b["final_checkpoint"]["sha256"]     # equal weights, equal bytes
    assert losses(a) != losses(c)


def test_control_arm_trains_plain_cross_entropy(tmp_path, tiny_start):
    events = []
    record = run_trial(_config(tmp_path, tiny_start, arm="mle", config_id="ctl"), on_event=events.append)
    assert record["status"] == "finished" and record["estimator"] == "mle"
    assert "reward_mean" not in events[0] and "decode.loss_ce" in events[0]


def test_forced_failure_is_recorded_as_failed_then_raised(tmp_path, tiny_start):
    with pytest.raises(TrialFailed, match="forced to fail at step 2"):
        run_trial(_config(tmp_path, tiny_start, debug={"raise_at_step": 2}))
    record = records.read_record(layout.record_path(tmp_path, "cfg", "reward", 1))
    assert record["status"] == "failed" and "forced to fail" in record["error"]
    assert len(records.read_diagnostics(tmp_path / record["diagnostics_file"])) == 1
    assert record["miou_final"] is None


def test_nan_loss_is_recorded_as_diverged(tmp_path, tiny_start):
    with pytest.raises(TrialDiverged):
        run_trial(_config(tmp_path, tiny_start, debug={"nan_at_step": 3}, checkpoints="final"))
    record = records.read_record(layout.record_path(tmp_path, "cfg", "reward", 1))
    assert record["status"] == "diverged" and "nan" in record["error"]
    assert "final_checkpoint" not in record and not (tmp_path / "checkpoints").exists()   # no NaN weights kept


def test_bad_reward_config_fails_before_training(tmp_path, tiny_start):
    events = []
    with pytest.raises(ConfigError) as info:
        run_trial(_config(tmp_path, tiny_start, samples=1), on_event=events.append)
    assert "samples" in str(info.value) and "\n" not in str(info.value)
    assert events == []


@pytest.mark.parametrize("aux", ["off", "reward"])
def test_aux_head_modes(tmp_path, tiny_start, aux):
    events = []
    record = run_trial(_config(tmp_path, tiny_start, aux_head=aux, steps=2, eval_every=2, checkpoints="final"),
                       on_event=events.append)
    assert record["status"] == "finished"
    # the kept config rebuilds exactly the model the weights belong to (plain heads; no aux head when off)
    from mmengine.config import Config
    from mmseg.registry import MODELS

    kept = record["final_checkpoint"]
    model = MODELS.build(Config.fromfile(tmp_path / kept["config_file"]).model)
    model.load_state_dict(torch.load(tmp_path / kept["file"], weights_only=True)["state_dict"], strict=True)
    assert model.with_auxiliary_head == (aux != "off")
    keys = set(events[0])
    if aux == "off":
        assert not any(k.startswith("aux.") for k in keys)
    else:
        assert "aux.loss_reward" in keys
        # the aux head's reward statistics never overwrite the decode head's
        assert "aux.reward_mean" in keys and "reward_mean" in keys
