"""The report tells a reward arm that reward-tunes from one that does not, on real trials:
the old default (aux CE, weight decay, unnormalised advantage) is flagged with its numbers,
a setting whose reward term moves the model is not."""

import pytest

from rewardsweep.analysis.collect import collect
from rewardsweep.analysis.summary import summarize
from rewardsweep.runners.trial import run_trial

SEEDS = (0, 1, 2)
COMMON = dict(study="flags", model="tiny-synthetic", steps=24, eval_every=24, batch_size=8, samples=2,
              baseline={"kind": "sample_loo"}, lr={"start": 5e-2, "end": 5e-4, "schedule": "poly"},
              diagnostics_every=4)
OLD_DEFAULT = dict(aux_head="mle", normalize_advantage=False,
                   optimizer={"type": "SGD", "momentum": 0.9, "weight_decay": 5e-4})
MOVING = dict(aux_head="off", normalize_advantage=True,
              optimizer={"type": "SGD", "momentum": 0.9, "weight_decay": 0.0})


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_start):
    folder = tmp_path_factory.mktemp("flags")
    for cid, arm, extra in (("old", "reward", OLD_DEFAULT), ("moving", "reward", MOVING),
                            ("ctrl", "mle", OLD_DEFAULT)):
        for seed in SEEDS:
            run_trial({**COMMON, **extra, "study_dir": str(folder), "config_id": cid, "arm": arm, "seed": seed,
                       "control_id": "ctrl", "start": tiny_start})
    return summarize(collect([folder])).table.set_index("config_id")


def test_old_default_is_flagged_with_its_numbers(study):
    old = study.loc["old"]
    assert old["reward_share"] < 0.05
    assert "reward term" in old["treatment"] and "% of the update" in old["treatment"]
    assert old["verdict"].endswith("[not reward tuning]")


def test_a_setting_that_moves_is_not_flagged(study):
    moving = study.loc["moving"]
    assert moving["reward_share"] == pytest.approx(1.0)
    assert moving["reward_rise"] > 2 * moving["reward_rise_se"] > 0
    assert moving["treatment"] == "" and "[" not in moving["verdict"]
