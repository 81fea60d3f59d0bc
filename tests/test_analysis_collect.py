"""Collecting trial records: tidy tables, top-ups, start checkpoints, corrupt files, W&B."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.analysis_helpers import FakeApi, FakeRun, wandb_run, write_study
from rewardsweep.analysis.collect import collect
from rewardsweep.analysis.wandb_io import collect_wandb
from rewardsweep.errors import UserError
from rewardsweep.study.layout import record_path
from rewardsweep.study.records import write_record
from rewardsweep.study.synthetic import SYNTHETIC_CLASSES as CLASS_NAMES
from rewardsweep.study.synthetic import SYNTHETIC_START as START
from rewardsweep.study.synthetic import synthetic_record as make_record


def test_one_row_per_trial_with_params_curves_and_classes(tmp_path):
    truth = write_study(tmp_path / "s", effects=(0.01, 0.0), seeds=3, bad={(1, 2): "failed"})
    coll = collect([tmp_path / "s"])
    t = coll.trials
    assert len(t) == 9 and not coll.warnings
    assert set(t["arm"]) == {"reward", "mle"}
    assert {"baseline.kind", "baseline.coef", "lr.start"} <= set(coll.param_columns)
    assert (t["status"] == "failed").sum() == 1
    fin = coll.finished
    for (cid, arm, seed), delta in truth["delta"].items():
        row = fin[(fin.config_id == cid) & (fin.arm == arm) & (fin.seed == seed)]
        assert row["delta_miou"].item() == pytest.approx(delta, abs=1e-12)
    # curves: 5 evaluations (0..200 by 50) per finished trial, 2 for the failed one
    assert len(coll.curves) == 8 * 5 + 2
    assert set(coll.curves.columns) >= {"trial", "config_id", "arm", "seed", "step", "miou"}
    assert coll.class_names == CLASS_NAMES
    assert coll.iou_final.shape == (9, len(CLASS_NAMES))
    failed = t.index[t["status"] == "failed"][0]
    assert np.isnan(coll.iou_final.loc[failed]).all()


def test_top_up_is_a_union_and_the_newest_finished_record_wins(tmp_path):
    write_study(tmp_path / "a", effects=(0.01,), seeds=3)
    coll0 = collect([tmp_path / "a"])
    cid = coll0.trials.loc[coll0.trials.arm == "reward", "config_id"].iloc[0]
    ctrl = coll0.trials.loc[coll0.trials.arm == "mle", "config_id"].iloc[0]
    common = dict(study="s", config_id=cid, arm="reward", control_id=ctrl, params={}, miou_start=0.61)
    # top-up folder: seed 1 rerun (newer, finished), seed 2 retried but failed, seed 3 new
    b = tmp_path / "b"
    write_record(record_path(b, cid, "reward", 1),
                 make_record(seed=1, miou_final=0.70, finished_at="2025-06-01T00:00:00", **common))
    write_record(record_path(b, cid, "reward", 2),
                 make_record(seed=2, miou_final=None, status="failed", finished_at="2025-06-01T00:00:00",
                             **common))
    write_record(record_path(b, cid, "reward", 3), make_record(seed=3, miou_final=0.62, **common))
    coll = collect([tmp_path / "a", b])
    t = coll.trials[coll.trials.arm == "reward"].set_index("seed")
    assert sorted(t.index) == [0, 1, 2, 3]
    assert coll.n_duplicates == 2
    assert t.loc[1, "miou_final"] == pytest.approx(0.70)          # newest finished
    assert t.loc[2, "status"] == "finished"                        # a failed retry never hides a result
    assert t.loc[3, "source"] == str(b)


def test_mixed_start_checkpoints_are_never_pooled(tmp_path):
    write_study(tmp_path / "runs" / "old", effects=(0.01,), seeds=2)
    other = dict(START, checkpoint_hash="ffff0000ffff0000", dataset="synthetic-v2@9999")
    write_study(tmp_path / "runs" / "new", effects=(0.01,), seeds=2, start=other)
    with pytest.raises(UserError) as err:
        collect([tmp_path / "runs" / "old", tmp_path / "runs" / "new"])
    msg = str(err.value)
    assert "\n" not in msg and "old" in msg and "new" in msg
    assert "a1b2c3d4e5f6" in msg and "ffff0000ffff" in msg and "--start" in msg
    coll = collect([tmp_path / "runs" / "old", tmp_path / "runs" / "new"], start="ffff")
    assert set(coll.trials["checkpoint_hash"]) == {"ffff0000ffff0000"}
    assert set(collect([tmp_path / "runs" / "old", tmp_path / "runs" / "new"],
                       start="synthetic-v1@0123abcd").trials["dataset"]) == {"synthetic-v1@0123abcd"}
    with pytest.raises(UserError, match="matches no"):
        collect([tmp_path / "runs" / "old"], start="0000")


def test_corrupt_and_invalid_records_are_named_and_skipped(tmp_path):
    write_study(tmp_path / "s", effects=(0.01,), seeds=2)
    records = tmp_path / "s" / "records"
    (records / "zz-broken.json").write_text('{"config_id": "x", "arm": ')
    (records / "zz-nokeys.json").write_text(json.dumps({"config_id": "x"}))
    bad = make_record(study="s", config_id="x", arm="reward", seed=0, control_id=None, params={},
                      miou_start=0.6, miou_final=0.61)
    (records / "zz-seed.json").write_text(json.dumps(dict(bad, seed="zero")))
    (records / "zz-miou.json").write_text(json.dumps(dict(bad, miou_final="high", delta_miou=None)))
    (records / "zz-classes.json").write_text(json.dumps(dict(bad, per_class_iou_final=[0.5])))
    coll = collect([tmp_path / "s"])
    assert len(coll.trials) == 4
    assert len(coll.warnings) == 5
    for name in ("zz-broken", "zz-nokeys", "zz-seed", "zz-miou", "zz-classes"):
        line = next(w for w in coll.warnings if name in w)
        assert "skipped" in line and "\n" not in line


def test_finished_record_without_delta_gets_final_minus_start(tmp_path):
    rec = make_record(study="s", config_id="c1", arm="reward", seed=0, control_id=None, params={},
                      miou_start=0.6, miou_final=0.625)
    rec["delta_miou"] = None
    write_record(record_path(tmp_path, "c1", "reward", 0), rec)
    coll = collect([tmp_path])
    assert coll.trials["delta_miou"].item() == pytest.approx(0.025)


# --------------------------------------------------------------------------- W&B (mocked Api)

def test_wandb_runs_become_records(tmp_path):
    runs, recs = [], []
    for seed in range(3):
        for arm, cid, final in (("mle", "ctrl", 0.605), ("reward", "cfg1", 0.62)):
            run, rec = wandb_run(f"r{seed}{arm}", seed, arm, cid, final + seed / 1000)
            runs.append(run)
            recs.append(rec)
    runs.append(FakeRun("rep", {"config_id": "x"}, {}, job_type="report"))   # our own report run
    runs.append(FakeRun("junk", {"lr": 0.1}, {}))                               # not a trial
    running, _ = wandb_run("live", 5, "reward", "cfg1", 0.62)
    running.config["status"] = "running"
    running.summary.pop("status")
    runs.append(running)                                                        # not finished yet
    api = FakeApi(runs)
    warnings: list[str] = []
    entries = collect_wandb("me/proj", "toy", api=api, warnings=warnings)
    assert api.calls == [("me/proj", {"tags": {"$in": ["toy"]}})]
    assert len(entries) == 6 and len(warnings) == 1 and "2 run(s)" in warnings[0]
    coll = collect([], extra=entries)
    assert len(coll.trials) == 6 and coll.sources == ["wandb:me/proj"]
    assert set(coll.trials.loc[coll.trials.arm == "mle", "estimator"]) == {"mle"}
    t = coll.trials.set_index(["config_id", "seed"])
    for rec in recs:
        row = t.loc[(rec["config_id"], rec["seed"])]
        assert row["miou_final"] == pytest.approx(rec["miou_final"])
        assert row["delta_miou"] == pytest.approx(rec["delta_miou"])
        assert row["checkpoint_hash"] == START["checkpoint_hash"]
    assert len(coll.curves) == 6 * 5
    assert coll.class_names == CLASS_NAMES
    i = coll.trials.index[(coll.trials.config_id == "cfg1") & (coll.trials.seed == 2)][0]
    rec = next(r for r in recs if r["config_id"] == "cfg1" and r["seed"] == 2)
    np.testing.assert_allclose(coll.iou_final.loc[i], rec["per_class_iou_final"])
    np.testing.assert_allclose(coll.iou_start.loc[i], rec["per_class_iou_start"])


def test_wandb_bad_path():
    with pytest.raises(UserError, match="ENTITY/PROJECT"):
        collect_wandb("justproject", "toy", api=FakeApi([]))


def test_lost_trial_record_without_class_names_still_counts(tmp_path):
    """The sweep writes a failed record for a trial that died (class_names may be None)."""
    rec = make_record(study="s", config_id="c1", arm="reward", seed=0, control_id=None, params={},
                      miou_start=0.6, miou_final=None, status="failed")
    rec.update(class_names=None, curve=[], per_class_iou_final=None, started_at=None)
    write_record(record_path(tmp_path, "c1", "reward", 0), rec)
    coll = collect([tmp_path])
    assert len(coll.trials) == 1 and not coll.warnings


def test_records_with_other_class_names_lose_only_their_per_class_numbers(tmp_path):
    write_study(tmp_path / "s", effects=(0.01,), seeds=2)
    for seed in (5, 6):
        rec = make_record(study="s", config_id="odd", arm="reward", seed=seed, control_id=None,
                          params={}, miou_start=0.61, miou_final=0.62, class_names=["a", "b"])
        write_record(record_path(tmp_path / "s", "odd", "reward", seed), rec)
    coll = collect([tmp_path / "s"])
    assert len(coll.trials) == 6 and len(coll.warnings) == 1
    assert "1 other record(s)" in coll.warnings[0] and "class_names differ" in coll.warnings[0]
    odd = coll.trials.index[coll.trials.config_id == "odd"]
    assert coll.iou_final.loc[odd].isna().all().all()
    assert coll.trials.loc[odd, "delta_miou"].notna().all()
