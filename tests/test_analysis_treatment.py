"""Treatment rules and the comparators of the headline: each raised by its own evidence,
with an effect size, silent when the arm reward-tunes; the control that did not train is
named; the best cross-entropy is chosen without seeing the seed it is compared on."""


import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rewardsweep.analysis import arms
from rewardsweep.analysis.collect import collect
from rewardsweep.analysis.render import _headline, blocks, to_markdown, treatment_table
from rewardsweep.analysis.summary import summarize
from rewardsweep.analysis.treatment import (
    COLLAPSE_POINTS,
    DID_NOT_RISE,
    FLOAT32_RESOLUTION,
    MIN_RISE,
    ROSE,
    STEP_SHARE_MIN,
    UNRESOLVED,
    collapse_flag,
    resolution_flag,
    rise_flag,
    rise_interval,
    rise_outcome,
    share_flag,
    treatment_flags,
)
from rewardsweep.study.layout import record_path
from rewardsweep.study.records import write_record
from rewardsweep.study.synthetic import synthetic_config_id, synthetic_record


def test_share_flag_names_the_share_of_the_step_below_the_threshold():
    assert share_flag([0.006, 0.007]) == "reward term 0.65% of the step"
    assert share_flag([0.006], of="the update's gradient norm") == "reward term 0.6% of the update's gradient norm"
    assert share_flag([STEP_SHARE_MIN, STEP_SHARE_MIN]) is None
    assert share_flag([np.nan]) is None  # no probe: nothing to say


def test_resolution_flag_fires_only_below_float32_resolution():
    assert FLOAT32_RESOLUTION == pytest.approx(2.0 ** -23)
    assert resolution_flag([4e-13, 5e-13]) == "reward step 5e-13 of the weights per step (below float32 resolution)"
    assert resolution_flag([2e-6]) is None       # a 100x smaller lr still moves float32 weights
    assert resolution_flag([np.nan]) is None     # a record before 0.4


def test_rise_interval_is_a_t_interval_across_seeds():
    rising = [0.003, 0.0031, 0.0029, 0.0034]
    mean, low, high, n = rise_interval(rising, [0.001] * 4, 0.975)
    assert n == 4 and mean == pytest.approx(np.mean(rising))
    assert (low, high) == pytest.approx(stats.t.interval(0.975, 3, loc=np.mean(rising), scale=stats.sem(rising)))
    assert rise_interval([0.0, 0.0, 0.0], [0.0] * 3) == (0.0, 0.0, 0.0, 3)   # a no-op: exactly no rise
    # one seed: a normal interval from its own (within-trial) SE
    mean, low, high, n = rise_interval([0.004], [0.001], 0.95)
    assert n == 1 and (low, high) == pytest.approx((0.004 - 1.959964 * 0.001, 0.004 + 1.959964 * 0.001))
    assert rise_interval([np.nan], [np.nan])[3] == 0


def test_rise_has_three_outcomes_with_a_minimum_meaningful_rise():
    assert rise_outcome(0.0003, 0.0019) == ROSE
    assert rise_outcome(-0.0002, 0.0002) == DID_NOT_RISE             # the whole interval below MIN_RISE
    assert rise_outcome(0.00001, MIN_RISE / 2) == DID_NOT_RISE        # rose, but by less than counts
    assert rise_outcome(-0.0001, 0.0012) == UNRESOLVED                # contains 0 and reaches MIN_RISE
    assert rise_outcome(np.nan, np.nan) == UNRESOLVED
    assert rise_flag(0.0, -0.0001, 0.0001) == f"reward did not rise (+0.0000 [-0.0001, +0.0001] < {MIN_RISE:g})"
    assert rise_flag(0.0006, -0.0001, 0.0013) is None


def test_the_main_jobs_arms_are_never_did_not_rise_whichever_seed_is_dropped():
    """On the recorded per-seed rises of the main job's arms (docs/method.md, 'The main job'):
    sample_loo rose, and still rises with any one seed left out; batch_loo (three seeds rise
    by 0.003-0.005, three by under 0.001) has too few seeds to tell, and no seed left out
    turns either into 'did not rise'."""
    from tests.main_job_numbers import RISES

    level = 1 - 0.05 / len(RISES)
    outcome = {name: rise_outcome(*rise_interval(r, [np.nan] * len(r), level)[1:3]) for name, r in RISES.items()}
    assert outcome == {"sample_loo": ROSE, "batch_loo": UNRESOLVED}
    for name, rises in RISES.items():
        for drop in range(len(rises)):
            kept = rises[:drop] + rises[drop + 1:]
            left_out = rise_outcome(*rise_interval(kept, [np.nan] * len(kept), level)[1:3])
            assert left_out == outcome[name], (name, drop)


def test_the_rerun_main_jobs_arms_rose_and_no_seed_left_out_says_did_not_rise():
    """The main job rerun with per-sample seeded batches: both arms rose; leaving out one
    seed can widen an interval to 'too few seeds to tell' (sample_loo without its largest
    rise) but never turns a rising arm into 'did not rise'."""
    from tests.main_job_numbers import RISES_SEEDED

    level = 1 - 0.05 / len(RISES_SEEDED)
    for name, rises in RISES_SEEDED.items():
        assert rise_outcome(*rise_interval(rises, [np.nan] * len(rises), level)[1:3]) == ROSE, name
        for drop in range(len(rises)):
            kept = rises[:drop] + rises[drop + 1:]
            assert rise_outcome(*rise_interval(kept, [np.nan] * len(kept), level)[1:3]) in (ROSE, UNRESOLVED)


def test_collapse_flag_counts_collapsed_seeds():
    limit = -COLLAPSE_POINTS / 100
    assert collapse_flag([0.002, limit + 1e-6]) is None
    assert collapse_flag([0.002, -0.123, -0.05, np.nan]) == "collapsed: final mIoU 12.3 points below start (2 of 3 seeds)"


def test_treatment_flags_orders_collapse_first_and_is_empty_for_a_working_arm():
    assert treatment_flags([1.0] * 3, [2e-5] * 3, (0.003, 0.002, 0.004), [0.004, 0.005, 0.006]) == []
    flags = treatment_flags([0.006] * 2, [1e-12] * 2, (0.0, -0.0001, 0.0001), [-0.2, 0.001])
    assert [f.split(" ")[0] for f in flags] == ["collapsed:", "reward", "reward", "reward"]
    assert "% of the step" in flags[1] and "float32" in flags[2] and "did not rise" in flags[3]


def test_cross_fitted_best_chooses_each_seed_on_the_other_seeds():
    seeds = np.arange(4)
    # b's one bad seed makes it lose on every other seed's choice, but not on its own
    chosen = arms.cross_fitted_best({"a": (seeds, np.array([0.0, 0.0, 0.0, 0.0])),
                                     "b": (seeds, np.array([-1.0, 0.1, 0.1, 0.1]))})
    assert chosen == {0: "b", 1: "a", 2: "a", 3: "a"}
    # one lucky seed of a useless arm never decides the comparison on that same seed
    chosen = arms.cross_fitted_best({"a": (seeds, np.array([0.5, 0.0, 0.0, 0.0])),
                                     "b": (seeds, np.array([0.2, 0.2, 0.2, 0.2]))})
    assert chosen[0] == "b"
    assert arms.cross_fitted_best({"a": (np.array([0]), np.array([0.1])),
                                   "b": (np.array([0]), np.array([0.2]))}) == {0: "b"}


# --------------------------------------------------------------------------- a study of records

def _study(folder, reward_rises, noop_delta=0.001, ctrl_extra=(0.0,) * 6, tuned_extra=0.004,
           reward_extra=0.003, treatment_extra=None):
    """A main-job-like study folder: one reward configuration, its control, a 3x-lr
    cross-entropy and a no-op reference, seeds 0-5; ``*_extra``: that arm's delta over the no-op."""
    rng = np.random.default_rng(1)
    seed_effect = rng.normal(0, 0.001, 6)
    ctrl = synthetic_config_id({}, "mle")
    tuned = synthetic_config_id({"lr.start": 0.03}, "mle")
    ref = synthetic_config_id({}, "noop")
    rew = synthetic_config_id({"baseline.kind": "sample_loo"})
    for seed in range(6):
        base = noop_delta + seed_effect[seed]
        for cid, arm, params, delta, treatment in (
                (ref, "noop", {}, base, {"heldout_gain": -0.0005}),
                (ctrl, "mle", {}, base + ctrl_extra[seed], {"heldout_gain": -0.0004}),
                (tuned, "mle", {"lr.start": 0.03}, base + tuned_extra + rng.normal(0, 0.0005), {}),
                (rew, "reward", {"baseline.kind": "sample_loo"}, base + reward_extra + rng.normal(0, 0.0005),
                 {"probes": 20, "step_share": 1.0, "reward_step": 2e-5, "weight_move": 0.004,
                  "reward_rise": reward_rises[seed], "reward_rise_se": 0.0002, "signal_dot": 1e-6,
                  "heldout_gain": 0.0015 + 0.0001 * seed, **(treatment_extra or {})})):
            rec = synthetic_record(study="mj", config_id=cid, arm=arm, seed=seed,
                                   control_id=None if cid == ref else ctrl, params=params, miou_start=0.7,
                                   miou_final=0.7 + delta, rng=rng)
            rec["reference_id"] = ref
            if treatment:
                rec["treatment"] = treatment
            write_record(record_path(folder, cid, arm, seed), rec)
    return {"reward": rew, "control": ctrl, "tuned": tuned, "reference": ref}


def test_report_names_a_control_that_did_not_train_and_leads_with_the_best_ce(tmp_path):
    ids = _study(tmp_path, reward_rises=[0.001, 0.0012, 0.0009, 0.0011, 0.0013, 0.001])
    summary = summarize(collect([tmp_path]))
    t = summary.table.set_index("config_id")
    row = t.loc[ids["reward"]]
    assert row["verdict"] == "beats control" and bool(row["control_like_noop"])
    assert row["best_control_id"] == ids["tuned"] and row["best_chosen"] == "6 of 6 seeds"
    assert row["best_verdict"] == "worse than best CE"
    lines = _headline(summary)
    assert lines[0].startswith("Against the best cross-entropy of the same budget: 0 of 1")
    assert "never sees the seed it is compared on" in lines[0]
    noop_line = next(line for line in lines if line.startswith("The control is not distinguishable"))
    assert "'beats not training'" in noop_line and ids["reward"] in noop_line
    md = to_markdown(blocks(summary, collect([tmp_path]), {}, "mj"))
    assert "beats control (control ≈ no-op)" in md
    # the treatment: rose, held-out rise minus the no-op's on the same seed, no flag
    assert row["rise_outcome"] == ROSE and row["treatment"] == ""
    assert row["heldout_vs"] == "no-op"
    assert row["heldout_rise"] == pytest.approx(np.mean([0.0015 + 0.0001 * s + 0.0005 for s in range(6)]))
    assert row["rise_level"] == pytest.approx(0.95)       # one reward configuration: no adjustment
    table = treatment_table(summary.table)
    assert table["rise"].tolist() == [ROSE] and "vs no-op" in table["held-out rise"].iloc[0]


def test_a_control_that_trains_gets_no_note(tmp_path):
    ids = _study(tmp_path, reward_rises=[0.001] * 6, ctrl_extra=(0.003, 0.0031, 0.0029, 0.0032, 0.003, 0.0028))
    summary = summarize(collect([tmp_path]))
    row = summary.table.set_index("config_id").loc[ids["reward"]]
    assert not row["control_like_noop"]
    assert not any(line.startswith("The control is not distinguishable") for line in _headline(summary))


def test_no_op_rise_is_flagged_and_unresolved_rise_is_said(tmp_path):
    ids = _study(tmp_path / "noop", reward_rises=[0.0] * 6, reward_extra=0.0,
                 treatment_extra={"reward_step": 4e-13})
    row = summarize(collect([tmp_path / "noop"])).table.set_index("config_id").loc[ids["reward"]]
    assert row["rise_outcome"] == DID_NOT_RISE
    assert "did not rise" in row["treatment"] and "float32" in row["treatment"]
    assert row["verdict"].endswith("[not reward tuning]")
    ids = _study(tmp_path / "open", reward_rises=[0.002, -0.001, 0.0015, -0.0008, 0.001, 0.0])
    summary = summarize(collect([tmp_path / "open"]))
    row = summary.table.set_index("config_id").loc[ids["reward"]]
    assert row["rise_outcome"] == UNRESOLVED and row["treatment"] == ""
    assert any("too few seeds to tell" in line for line in _headline(summary))


def test_records_of_0_3_still_report_with_their_share(tmp_path):
    """0.3 records carry reward_share (gradient norms) and signal_norm: the share is read as
    such and named so, the biased signal is ignored, nothing new is made up."""
    rng = np.random.default_rng(0)
    ctrl = synthetic_config_id({}, "mle")
    rew = synthetic_config_id({"baseline.kind": "sample_loo"})
    for seed in range(3):
        for cid, arm in ((ctrl, "mle"), (rew, "reward")):
            rec = synthetic_record(study="old", config_id=cid, arm=arm, seed=seed, control_id=ctrl,
                                   params={}, miou_start=0.6, miou_final=0.6 + 0.001 * seed, rng=rng)
            if arm == "reward":
                rec["treatment"] = {"reward_share": 0.005, "reward_grad_norm": 6e-5, "other_grad_norm": 0.07,
                                    "wd_norm": 0.03, "signal_norm": 0.0068, "halves_cos": 0.01,
                                    "reward_rise": 0.0, "reward_rise_se": 0.0, "probes": 10}
            write_record(record_path(tmp_path, cid, arm, seed), rec)
    summary = summarize(collect([tmp_path]))
    row = summary.table.set_index("config_id").loc[rew]
    assert row["treatment"].startswith("reward term 0.5% of the update's gradient norm")
    assert np.isnan(row["step_share"]) and np.isnan(row["signal_dot"]) and np.isnan(row["reward_step"])
    assert treatment_table(summary.table)["reward part of step"].iloc[0] == "0.5% (grad norms)"
