"""RewardObjective composes the pure functions: loss, diagnostics, EMA state, determinism."""

import pytest
import torch

from rewardsweep.errors import ConfigError
from rewardsweep.reward import baselines as bl
from rewardsweep.reward.estimators import reinforce_loss, reward_weighted_ce_loss, sample_labellings
from rewardsweep.reward.miou import per_image_miou
from rewardsweep.reward.objective import RewardObjective
from rewardsweep.reward.settings import RewardSettings

C, IGNORE = 4, 255
STATS = {"reward_mean", "reward_std", "advantage_mean", "advantage_std"}


def batch(seed=0, B=3, H=6, W=5):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, C, H, W, generator=gen)
    gt = torch.randint(C, (B, H, W), generator=gen)
    gt[torch.rand(B, H, W, generator=gen) < 0.2] = IGNORE
    return logits, gt


def objective(**config):
    config.setdefault("batch_size", 3)
    config.setdefault("samples", 1)                 # these tests compose the formulas by hand:
    config.setdefault("normalize_advantage", False)  # explicit settings, not the defaults
    return RewardObjective(RewardSettings.from_config(config, num_classes=C), C, IGNORE)


CONFIGS = [
    {"baseline": {"kind": "none"}},
    {"baseline": {"kind": "batch_loo", "coef": 0.1}, "samples": 2},
    {"baseline": {"kind": "sample_loo"}, "samples": 3, "normalize_advantage": True},
    {"baseline": {"kind": "greedy"}, "class_weights": {"counts": [1, 2, 3, 4], "smooth": 0.05}},
    {"baseline": {"kind": "ema", "decay": 0.8}, "samples": 2},
    {"estimator": "reward_weighted_ce", "baseline": {"kind": "batch_loo", "coef": 0.1}},
    {"estimator": "reward_weighted_ce", "baseline": {"kind": "none"}, "class_weights": {"counts": [1, 2, 3, 4], "smooth": 0.0}},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.get('estimator', 'reinforce')}-{c['baseline']['kind']}")
def test_every_setting_runs_backward_and_reproduces(config):
    logits, gt = batch()
    gt[1] = IGNORE  # an image without a valid pixel
    z = logits.clone().requires_grad_()
    loss, stats = objective(**config)(z, gt, torch.Generator().manual_seed(3))
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert set(stats) == STATS and all(isinstance(v, float) for v in stats.values())
    loss.backward()
    assert torch.isfinite(z.grad).all() and z.grad[1].abs().max() == 0
    assert z.grad.abs().sum() > 0
    again, stats2 = objective(**config)(logits.clone().requires_grad_(), gt, torch.Generator().manual_seed(3))
    assert again.item() == loss.item() and stats2 == stats


def test_reinforce_matches_the_composed_pure_functions():
    logits, gt = batch(1)
    loss, stats = objective(baseline={"kind": "batch_loo", "coef": 0.1}, samples=2)(logits, gt, torch.Generator().manual_seed(9))
    samples = sample_labellings(logits, 2, torch.Generator().manual_seed(9))
    R, valid = per_image_miou(samples, gt, C)
    A = bl.advantages(R, bl.batch_loo(R, 0.1, valid[:, 0]), valid[:, 0])
    assert loss.item() == pytest.approx(reinforce_loss(logits, gt, samples, A, valid[:, 0]).item(), rel=1e-6)
    assert stats["reward_mean"] == pytest.approx(R.mean().item(), rel=1e-6)
    assert stats["reward_std"] == pytest.approx(R.std().item(), rel=1e-5)
    assert stats["advantage_mean"] == pytest.approx(A.mean().item(), rel=1e-5)


def test_greedy_baseline_is_the_argmax_reward():
    logits, gt = batch(2)
    _, stats = objective(baseline={"kind": "greedy"})(logits, gt, torch.Generator().manual_seed(0))
    R, _ = per_image_miou(sample_labellings(logits, 1, torch.Generator().manual_seed(0)), gt, C)
    R_greedy, _ = per_image_miou(logits.argmax(1), gt, C)
    assert stats["advantage_mean"] == pytest.approx((R[:, 0] - R_greedy).mean().item(), rel=1e-5)


def test_ema_state_is_updated_after_use_and_restorable():
    obj = objective(baseline={"kind": "ema", "decay": 0.5})
    logits, gt = batch(3)
    _, s1 = obj(logits, gt, torch.Generator().manual_seed(0))
    assert s1["advantage_mean"] == pytest.approx(0.0, abs=1e-6)  # first batch: its own mean
    assert obj.baseline_state.value == pytest.approx(s1["reward_mean"])
    _, s2 = obj(logits, gt, torch.Generator().manual_seed(1))
    assert s2["advantage_mean"] == pytest.approx(s2["reward_mean"] - s1["reward_mean"], abs=1e-6)
    assert obj.baseline_state.value == pytest.approx(0.5 * s1["reward_mean"] + 0.5 * s2["reward_mean"])
    fresh = objective(baseline={"kind": "ema", "decay": 0.5})
    fresh.load_state_dict(obj.state_dict())
    assert fresh.baseline_state.value == obj.baseline_state.value


def test_reward_weighted_ce_stats_and_loss():
    logits, gt = batch(4)
    loss, stats = objective(estimator="reward_weighted_ce", baseline={"kind": "batch_loo", "coef": 0.1})(logits, gt)
    m, _ = per_image_miou(logits.argmax(1), gt, C)
    assert stats["reward_mean"] == pytest.approx(m.mean().item(), rel=1e-6)
    assert loss.item() == pytest.approx(reward_weighted_ce_loss(logits, gt, 0.1).item(), rel=1e-6)


def test_mmseg_style_gt_and_bad_shapes():
    obj = objective(baseline={"kind": "none"})
    logits, gt = batch(5)
    a, _ = obj(logits, gt, torch.Generator().manual_seed(0))
    b, _ = obj(logits, gt.unsqueeze(1), torch.Generator().manual_seed(0))
    assert a.item() == b.item()
    with pytest.raises(ValueError):
        obj(logits[:, :3], gt)
    with pytest.raises(ValueError):
        obj(logits, gt[:, :3])
    with pytest.raises(ConfigError, match="class_weights.counts"):
        RewardObjective(RewardSettings(), C, IGNORE, class_weights=torch.ones(3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda():
    logits, gt = batch(6)
    obj = objective(baseline={"kind": "greedy"}, class_weights={"counts": [1, 2, 3, 4], "smooth": 0.05})
    loss, stats = obj(logits.cuda().requires_grad_(), gt.cuda(), torch.Generator("cuda").manual_seed(0))
    loss.backward()
    assert loss.device.type == "cuda" and set(stats) == STATS
