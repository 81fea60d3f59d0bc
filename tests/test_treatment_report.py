"""The report tells a reward arm that reward-tunes from one that does not, on real trials,
at both ends: a true no-op reward arm (lr 1e-8, normalised and not), an arm at a 100x
smaller learning rate and the old default (aux CE, weight decay, unnormalised advantage)
are flagged with their numbers; a main-job-like setting is not, and stays so whichever
seed is dropped. (Short runs from the test session's briefly pretrained start: ~25 s of
trials on 2 cores.)"""

import numpy as np
import pytest

from rewardsweep.analysis.collect import collect
from rewardsweep.analysis.summary import summarize
from rewardsweep.analysis.treatment import DID_NOT_RISE, FLOAT32_RESOLUTION, ROSE, rise_interval, rise_outcome
from rewardsweep.runners.trial import run_trial

SEEDS = (0, 1, 2)
SEEDS_OF = {"moving": (0, 1, 2, 3, 4, 5)}
COMMON = dict(study="flags", model="tiny-synthetic", steps=16, eval_every=16, batch_size=8, samples=2,
              baseline={"kind": "sample_loo"}, diagnostics_every=4)
OLD_DEFAULT = dict(aux_head="mle", normalize_advantage=False, lr={"start": 1e-2, "end": 1e-4, "schedule": "poly"},
                   optimizer={"type": "SGD", "momentum": 0.9, "weight_decay": 5e-4})
# The main job's setting; 16 steps at 40x its lr do in a test what its 200 steps do (a rise of
# 0.0008-0.0017 on seeds 0-5 from the test session's briefly pretrained start, above the minimum
# meaningful rise; with 3 seeds its Bonferroni interval can reach 0, so it gets 6).
MOVING = dict(aux_head="off", normalize_advantage=True, lr={"start": 4e-1, "end": 4e-3, "schedule": "poly"},
              optimizer={"type": "SGD", "momentum": 0.9, "weight_decay": 0.0})
CONFIGS = {
    "old": OLD_DEFAULT,
    "moving": MOVING,
    "small": {**MOVING, "lr": {"start": 4e-3, "end": 4e-5, "schedule": "poly"}},         # 100x smaller
    "noop_norm": {**MOVING, "lr": {"start": 1e-8, "end": 1e-10, "schedule": "poly"}},    # a true no-op
    "noop_raw": {**MOVING, "normalize_advantage": False, "lr": {"start": 1e-8, "end": 1e-10, "schedule": "poly"}},
}


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_start):
    folder = tmp_path_factory.mktemp("flags")
    for cid, extra in CONFIGS.items():
        for seed in SEEDS_OF.get(cid, SEEDS):
            run_trial({**COMMON, **extra, "study_dir": str(folder), "config_id": cid, "arm": "reward", "seed": seed,
                       "start": tiny_start})
    coll = collect([folder])
    return summarize(coll).table.set_index("config_id"), coll.trials


def test_old_default_is_flagged_with_its_numbers(study):
    old = study[0].loc["old"]
    assert old["step_share"] < 0.05
    assert "reward term" in old["treatment"] and "% of the step" in old["treatment"]
    assert old["verdict"].endswith("[not reward tuning]")


def test_a_true_no_op_is_flagged_normalised_or_not(study):
    for cid in ("noop_norm", "noop_raw"):
        row = study[0].loc[cid]
        assert row["rise_outcome"] == DID_NOT_RISE, cid
        assert row["reward_step"] < FLOAT32_RESOLUTION and "float32" in row["treatment"], cid
        assert row["verdict"].endswith("[not reward tuning]"), cid


def test_the_step_measure_tells_learning_rates_apart(study):
    """Reward the only loss term: the reward's step scales with the lr (4e-1, 4e-3, 1e-8)."""
    steps = {cid: study[0].loc[cid, "reward_step"] for cid in ("moving", "small", "noop_norm")}
    assert steps["moving"] / steps["small"] == pytest.approx(100, rel=0.5)
    assert steps["small"] / steps["noop_norm"] == pytest.approx(4e5, rel=0.5)
    assert study[0].loc["moving", "step_share"] == pytest.approx(1.0)


def test_a_100x_smaller_lr_is_flagged(study):
    small = study[0].loc["small"]
    assert small["rise_outcome"] == DID_NOT_RISE and "did not rise" in small["treatment"]


def test_a_setting_that_moves_is_not_flagged_whichever_seed_is_dropped(study):
    table, trials = study
    moving = table.loc["moving"]
    assert moving["rise_outcome"] == ROSE and moving["treatment"] == "" and "[" not in moving["verdict"]
    assert moving["heldout_rise"] > 0 and moving["weight_move"] > 0
    rises = trials[(trials["config_id"] == "moving")].sort_values("seed")["treatment.reward_rise"].to_numpy()
    level = moving["rise_level"]
    for drop in range(len(rises)):
        kept = np.delete(rises, drop)
        assert rise_outcome(*rise_interval(kept, [np.nan] * kept.size, level)[1:3]) != DID_NOT_RISE
