"""RewardSettings.from_config: valid configs parse, every bad input is a one-line ConfigError."""

import copy
import json

import pydantic
import pytest
import torch

from rewardsweep.errors import ConfigError
from rewardsweep.reward.settings import RewardSettings

BASE = {
    "estimator": "reinforce",
    "samples": 1,
    "baseline": {"kind": "greedy", "coef": 1.0, "decay": 0.9},
    "normalize_advantage": False,
    "class_weights": None,
    "aux_head": "mle",
    "batch_size": 8,
}


def cfg(**changes):
    c = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = c
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    return c


def test_the_architecture_example_parses():
    s = RewardSettings.from_config(BASE)
    assert (s.estimator, s.samples, s.baseline_kind, s.aux_head) == ("reinforce", 1, "greedy", "mle")
    assert s.class_weight_tensor() is None
    assert s.ignored_keys() == ("baseline.coef", "baseline.decay")
    assert json.dumps(s.to_dict())


def test_defaults_and_frozen():
    s = RewardSettings.from_config({})
    assert s == RewardSettings()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        s.samples = 3


def test_reward_weighted_ce_beta_and_ignored_keys():
    s = RewardSettings.from_config(cfg(estimator="reward_weighted_ce", baseline={"kind": "batch_loo", "coef": 0.1}))
    assert s.beta == 0.1
    assert set(s.ignored_keys()) == {"samples", "normalize_advantage", "baseline.decay"}
    s0 = RewardSettings.from_config(cfg(estimator="reward_weighted_ce", baseline={"kind": "none", "coef": 0.1}))
    assert s0.beta == 0.0


def test_class_weights_inline_and_from_file(tmp_path):
    s = RewardSettings.from_config(cfg(class_weights={"counts": [10, 30, 60], "smooth": 0.05}), num_classes=3)
    assert s.class_weights_counts == (10.0, 30.0, 60.0)
    assert torch.allclose(s.class_weight_tensor().mean(), torch.tensor(1.0))
    path = tmp_path / "counts.json"
    path.write_text(json.dumps({"class_names": ["a", "b", "c"], "counts": [10, 30, 60], "smooth": 0.2}))
    f = RewardSettings.from_config(cfg(class_weights={"counts": "counts.json"}), base_dir=tmp_path)
    assert f.class_weights_counts == (10.0, 30.0, 60.0) and f.class_weights_smooth == 0.2
    assert f.class_weights_path == str(path)
    # num_classes from the start checkpoint's class names
    start = {"class_names": ["a", "b"]}
    with pytest.raises(ConfigError, match="class_weights.counts: expected 2 counts"):
        RewardSettings.from_config(cfg(start=start, class_weights={"counts": [1, 2, 3], "smooth": 0.1}))


BAD = [
    (cfg(estimator="ppo"), {}, "estimator"),
    (cfg(baseline={"kind": "mean"}), {}, "baseline.kind"),
    (cfg(baseline={"kind": "sample_loo"}, samples=1), {}, "baseline.kind"),
    (cfg(baseline={"kind": "batch_loo"}, batch_size=1), {}, "baseline.kind"),
    (cfg(baseline={"kind": "batch_loo"}), {"batch_size": 1}, "baseline.kind"),
    (cfg(estimator="reward_weighted_ce", baseline={"kind": "batch_loo"}, batch_size=1), {}, "baseline.kind"),
    (cfg(estimator="reward_weighted_ce", baseline={"kind": "greedy"}), {}, "baseline.kind"),
    (cfg(baseline__coef=-0.1), {}, "baseline.coef"),
    (cfg(baseline__coef="big"), {}, "baseline.coef"),
    (cfg(baseline__decay=1.0), {}, "baseline.decay"),
    (cfg(baseline__decay=0), {}, "baseline.decay"),
    (cfg(baseline__decay=-0.5), {}, "baseline.decay"),
    (cfg(baseline__coeff=0.1), {}, "baseline.coeff"),
    (cfg(baseline="greedy"), {}, "baseline"),
    (cfg(samples=0), {}, "samples"),
    (cfg(samples=2.5), {}, "samples"),
    (cfg(samples=True), {}, "samples"),
    (cfg(normalize_advantage="yes"), {}, "normalize_advantage"),
    (cfg(aux_head="both"), {}, "aux_head"),
    (cfg(class_weights={"counts": [1, 2, 3], "smooth": -0.1}), {}, "class_weights.smooth"),
    (cfg(class_weights={"counts": [1, 2, 3]}), {}, "class_weights.smooth"),
    (cfg(class_weights={"counts": [1, 2], "smooth": 0.1}), {"num_classes": 3}, "class_weights.counts"),
    (cfg(class_weights={"counts": [1, -2, 3], "smooth": 0.1}), {}, "class_weights.counts"),
    (cfg(class_weights={"counts": [0, 2, 3], "smooth": 0.0}), {}, "class_weights.counts"),
    (cfg(class_weights={"smooth": 0.1}), {}, "class_weights.counts"),
    (cfg(class_weights={"counts": "/nonexistent/counts.json", "smooth": 0.1}), {}, "class_weights.counts"),
    (cfg(class_weights={"counts": [1, 2], "smooth": 0.1, "smoothing": 1}), {}, "class_weights.smoothing"),
    (cfg(class_weights=[1, 2, 3]), {}, "class_weights"),
    # the estimator menu (issue 24): a value's check, then each combination rule
    (cfg(normalize_advantage="grp"), {}, "normalize_advantage"),
    (cfg(normalize_advantage="batch"), {}, "normalize_advantage"),
    (cfg(normalize_advantage="group", baseline={"kind": "sample_loo"}, samples=1), {}, "normalize_advantage"),
    (cfg(normalize_advantage="group", baseline={"kind": "batch_loo"}, samples=4), {}, "normalize_advantage"),
    (cfg(normalize_advantage="group", baseline={"kind": "none"}, samples=4), {}, "normalize_advantage"),
    (cfg(baseline={"kind": "group_mean"}, samples=1), {}, "baseline.kind"),
    (cfg(estimator="reward_weighted_ce", baseline={"kind": "group_mean"}), {}, "baseline.kind"),
    (cfg(kl_coef=-0.1), {}, "kl_coef"),
    (cfg(kl_coef="5e-3"), {}, "kl_coef"),
    (cfg(kl_in="logits"), {}, "kl_in"),
    (cfg(estimator="reward_weighted_ce", baseline={"kind": "none"}, kl_coef=0.1, kl_in="reward"), {}, "kl_in"),
    (cfg(entropy_coef=-1), {}, "entropy_coef"),
    (cfg(clip_range=0), {}, "clip_range"),
    (cfg(clip_range=1.0), {}, "clip_range"),
    (cfg(epochs_per_batch=0), {}, "epochs_per_batch"),
    (cfg(epochs_per_batch=2.5), {}, "epochs_per_batch"),
    (cfg(epochs_per_batch=4), {}, "epochs_per_batch"),
    (cfg(estimator="reward_weighted_ce", baseline={"kind": "none"}, clip_range=0.2), {}, "clip_range"),
    (cfg(estimator="reward_weighted_ce", baseline={"kind": "none"}, epochs_per_batch=1), {}, "epochs_per_batch"),
]


@pytest.mark.parametrize("config,kwargs,key", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_input_is_one_line_naming_source_and_key(config, kwargs, key):
    with pytest.raises(ConfigError) as info:
        RewardSettings.from_config(config, source="spaces/study.yaml", **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"spaces/study.yaml: {key}: "), message
    assert "expected" in message, message


def test_the_estimator_menu_parses_and_reads():
    grpo = RewardSettings.from_config(cfg(baseline={"kind": "group_mean"}, samples=8, normalize_advantage="group",
                                          kl_coef=5e-3))
    assert (grpo.advantage_scale, grpo.kl_loss_coef, grpo.kl_reward_coef, grpo.needs_reference) == \
        ("group", 5e-3, 0.0, True)
    assert RewardSettings.from_config(cfg(kl_coef=0.1, kl_in="reward")).kl_reward_coef == 0.1
    assert RewardSettings.from_config(cfg(kl_coef=0.1, kl_in="reward")).kl_loss_coef == 0.0
    ppo = RewardSettings.from_config(cfg(clip_range=0.2, epochs_per_batch=4, entropy_coef=0.01))
    assert (ppo.clipped, ppo.epochs, ppo.entropy_bonus) == (True, 4, 0.01)
    today = RewardSettings.from_config({})
    assert (today.advantage_scale, today.kl_loss_coef, today.kl_reward_coef, today.entropy_bonus, today.epochs,
            today.clipped, today.needs_reference) == ("batch", 0.0, 0.0, 0.0, 1, False, False)
    assert RewardSettings.from_config(cfg(normalize_advantage=False)).advantage_scale == "none"
    d = RewardSettings.from_config(cfg(kl_coef=0.1, kl_in="reward", clip_range=0.1, epochs_per_batch=2)).to_dict()
    assert (d["kl_coef"], d["kl_in"], d["clip_range"], d["epochs_per_batch"], d["entropy_coef"]) == \
        (0.1, "reward", 0.1, 2, None)


def test_plain_settings_drop_the_knobs_and_keep_the_rest():
    """The frozen start model's objective (runners/reward_step.py): no KL, entropy or epochs."""
    full = RewardSettings.from_config(cfg(baseline={"kind": "group_mean"}, samples=4, normalize_advantage="group",
                                          kl_coef=0.1, kl_in="reward", entropy_coef=0.01, clip_range=0.2,
                                          epochs_per_batch=2))
    plain = full.plain()
    assert (plain.needs_reference, plain.entropy_bonus, plain.epochs, plain.clipped) == (False, 0.0, 1, False)
    assert (plain.baseline_kind, plain.samples, plain.advantage_scale) == ("group_mean", 4, "group")


@pytest.mark.parametrize("changes,ignored", [
    ({"kl_coef": 0}, {"kl_coef"}),
    ({"kl_coef": 0, "kl_in": "reward"}, {"kl_coef", "kl_in"}),
    ({"kl_in": "loss"}, {"kl_in"}),
    ({"entropy_coef": 0.0}, {"entropy_coef"}),
    ({"epochs_per_batch": 1}, {"epochs_per_batch"}),
    ({"clip_range": 0.2}, {"clip_range"}),
    ({"clip_range": 0.2, "epochs_per_batch": 1}, {"clip_range", "epochs_per_batch"}),
    ({"clip_range": 0.2, "epochs_per_batch": 2, "kl_coef": 0.1, "kl_in": "loss", "entropy_coef": 0.1}, set()),
])
def test_values_that_do_nothing_are_ignored_keys(changes, ignored):
    """A knob at a value that does what null does (off) is listed by ignored_keys: the sweep
    hashes it as null, so it runs once and keeps the id of the configuration without it."""
    s = RewardSettings.from_config(cfg(**changes))
    assert set(s.ignored_keys()) - {"baseline.coef", "baseline.decay"} == ignored


def test_new_keys_keep_todays_config_ids():
    """Keys added after 0.2.0 default to null and a config id hashes them only when set
    (sweep.expand.ID_KEYS_0_2): today's configurations keep their ids, a set knob gets a new one."""
    from rewardsweep.config.trial import TRIAL_DEFAULTS
    from rewardsweep.sweep.expand import ID_KEYS_0_2, config_hash

    new = ("kl_coef", "kl_in", "entropy_coef", "clip_range", "epochs_per_batch")
    assert not set(new) & set(ID_KEYS_0_2)
    assert all(TRIAL_DEFAULTS[key] is None for key in new)
    config = {key: value for key, value in TRIAL_DEFAULTS.items() if key in ID_KEYS_0_2}
    assert config_hash({**config, **{key: None for key in new}}) == config_hash(config)
    assert config_hash({**config, "kl_coef": 5e-3}) != config_hash(config)
    assert config_hash({**config, "normalize_advantage": "group"}) != config_hash(config)


def test_null_means_default():
    from rewardsweep.config.trial import default

    s = RewardSettings.from_config(
        {"estimator": None, "samples": None, "baseline": {"kind": "ema", "coef": None, "decay": None}, "aux_head": None}
    )
    assert (s.estimator, s.samples, s.baseline_coef, s.baseline_decay, s.aux_head) == (
        default("estimator"), default("samples"), default("baseline.coef"), default("baseline.decay"),
        default("aux_head"))


def test_settings_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; from rewardsweep.reward.settings import RewardSettings; "
        "RewardSettings.from_config({'class_weights': {'counts': [1, 2], 'smooth': 0.1}}); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
