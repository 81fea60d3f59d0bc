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
]


@pytest.mark.parametrize("config,kwargs,key", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_input_is_one_line_naming_source_and_key(config, kwargs, key):
    with pytest.raises(ConfigError) as info:
        RewardSettings.from_config(config, source="spaces/study.yaml", **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"spaces/study.yaml: {key}: "), message
    assert "expected" in message, message


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
