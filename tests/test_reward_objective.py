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


# the extra stats each knob reports (besides STATS)
EXTRA = {"samples": {"constant_group_share"}, "kl": {"kl_start"}, "entropy": {"entropy"},
         "clip": {"clip_fraction", "ratio_min", "ratio_max", "kl_old", "epoch"}}


def extra_stats(config):
    out = set()
    if config.get("estimator", "reinforce") == "reinforce" and config.get("samples", 1) >= 2:
        out |= EXTRA["samples"]
    if config.get("kl_coef"):
        out |= EXTRA["kl"]
    if config.get("entropy_coef"):
        out |= EXTRA["entropy"]
    if config.get("epochs_per_batch", 1) > 1:
        out |= EXTRA["clip"]
    return out


CONFIGS = [
    {"baseline": {"kind": "none"}},
    {"baseline": {"kind": "batch_loo", "coef": 0.1}, "samples": 2},
    {"baseline": {"kind": "sample_loo"}, "samples": 3, "normalize_advantage": True},
    {"baseline": {"kind": "greedy"}, "class_weights": {"counts": [1, 2, 3, 4], "smooth": 0.05}},
    {"baseline": {"kind": "ema", "decay": 0.8}, "samples": 2},
    {"estimator": "reward_weighted_ce", "baseline": {"kind": "batch_loo", "coef": 0.1}},
    {"estimator": "reward_weighted_ce", "baseline": {"kind": "none"}, "class_weights": {"counts": [1, 2, 3, 4], "smooth": 0.0}},
    {"baseline": {"kind": "group_mean"}, "samples": 4, "normalize_advantage": "group"},
    {"baseline": {"kind": "sample_loo"}, "samples": 2, "normalize_advantage": "group", "kl_coef": 0.1},
    {"baseline": {"kind": "sample_loo"}, "samples": 2, "kl_coef": 0.01, "kl_in": "reward", "entropy_coef": 0.1},
    {"baseline": {"kind": "group_mean"}, "samples": 2, "clip_range": 0.2, "epochs_per_batch": 3, "kl_coef": 0.1},
    {"estimator": "reward_weighted_ce", "baseline": {"kind": "none"}, "kl_coef": 0.1, "entropy_coef": 0.01},
]


def config_id(c):
    knobs = [k for k in ("normalize_advantage", "kl_in", "kl_coef", "entropy_coef", "epochs_per_batch") if k in c]
    return "-".join([c.get("estimator", "reinforce"), c["baseline"]["kind"]] + [f"{k}={c[k]}" for k in knobs])


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_every_setting_runs_backward_and_reproduces(config):
    logits, gt = batch()
    gt[1] = IGNORE  # an image without a valid pixel
    ref = logits + 0.5 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(1))
    z = logits.clone().requires_grad_()
    loss, stats = objective(**config)(z, gt, torch.Generator().manual_seed(3), ref_logits=ref)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert set(stats) == STATS | extra_stats(config) and all(isinstance(v, float) for v in stats.values())
    loss.backward()
    assert torch.isfinite(z.grad).all() and z.grad[1].abs().max() == 0
    assert z.grad.abs().sum() > 0
    again, stats2 = objective(**config)(logits.clone().requires_grad_(), gt, torch.Generator().manual_seed(3),
                                        ref_logits=ref)
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


# ----------------------------------------------------------------------------- the estimator menu
def ref_for(logits, seed=1):
    return logits + 0.5 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(seed))


def test_grpo_matches_the_composed_pure_functions():
    logits, gt = batch(7)
    obj = objective(baseline={"kind": "group_mean"}, samples=4, normalize_advantage="group")
    loss, stats = obj(logits, gt, torch.Generator().manual_seed(2))
    samples = sample_labellings(logits, 4, torch.Generator().manual_seed(2))
    R, valid = per_image_miou(samples, gt, C)
    v = valid[:, 0]
    A = bl.advantages(R, bl.group_mean(R), v, scale="group", zero=bl.constant_groups(R, v))
    assert loss.item() == pytest.approx(reinforce_loss(logits, gt, samples, A, v).item(), rel=1e-6)
    assert stats["constant_group_share"] == pytest.approx(bl.constant_groups(R, v).float()[v].mean().item())


def test_kl_and_entropy_terms_add_to_the_policy_term():
    from rewardsweep.reward.estimators import log_policy
    from rewardsweep.reward.regularizers import entropy_map, kl_map, per_image_mean

    logits, gt = batch(8)
    ref = ref_for(logits)
    beta, alpha = 0.3, 0.05
    obj = objective(baseline={"kind": "sample_loo"}, samples=2, kl_coef=beta, entropy_coef=alpha)
    z = logits.clone().requires_grad_()
    loss, stats = obj(z, gt, torch.Generator().manual_seed(4), ref_logits=ref)
    plain = objective(baseline={"kind": "sample_loo"}, samples=2)(logits, gt, torch.Generator().manual_seed(4))[0]
    kl = per_image_mean(kl_map(log_policy(logits), log_policy(ref)), gt, IGNORE)
    ent = per_image_mean(entropy_map(log_policy(logits)), gt, IGNORE)
    assert loss.item() == pytest.approx(plain.item() + beta * kl.mean().item() - alpha * ent.mean().item(), rel=1e-5)
    assert stats["kl_start"] == pytest.approx(kl.mean().item(), rel=1e-5)
    assert stats["entropy"] == pytest.approx(ent.mean().item(), rel=1e-5)
    terms = obj.last_batch.terms
    assert set(terms) == {"policy", "kl", "entropy"}
    assert torch.allclose(sum(terms.values()), obj.last_batch.per_image_loss)
    # at the start model the KL term is 0 and adds no gradient
    z1, z2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    with_kl = objective(baseline={"kind": "sample_loo"}, samples=2, kl_coef=beta)
    l1, s1 = with_kl(z1, gt, torch.Generator().manual_seed(4), ref_logits=logits)
    l2, _ = objective(baseline={"kind": "sample_loo"}, samples=2)(z2, gt, torch.Generator().manual_seed(4))
    l1.backward()
    l2.backward()
    assert s1["kl_start"] == 0.0 and l1.item() == l2.item()
    assert torch.allclose(z1.grad, z2.grad, atol=1e-9)
    with pytest.raises(ValueError, match="ref_logits"):
        with_kl(logits, gt)


def test_kl_in_the_reward_penalises_each_labelling():
    from rewardsweep.reward.estimators import log_policy
    from rewardsweep.reward.regularizers import kl_map, labelling_log_ratio, per_image_mean

    logits, gt = batch(9)
    ref = ref_for(logits)
    beta = 0.02
    loss, stats = objective(baseline={"kind": "sample_loo"}, samples=3, kl_coef=beta, kl_in="reward")(
        logits, gt, torch.Generator().manual_seed(5), ref_logits=ref)
    samples = sample_labellings(logits, 3, torch.Generator().manual_seed(5))
    R, valid = per_image_miou(samples, gt, C)
    v = valid[:, 0]
    Rp = R - beta * labelling_log_ratio(log_policy(logits), log_policy(ref), samples, gt, IGNORE)
    A = bl.advantages(Rp, bl.sample_loo(Rp), v)
    assert loss.item() == pytest.approx(reinforce_loss(logits, gt, samples, A, v).item(), rel=1e-5)
    assert stats["reward_mean"] == pytest.approx(R.mean().item(), rel=1e-6)  # the mIoU, not the penalised reward
    exact = per_image_mean(kl_map(log_policy(logits), log_policy(ref)), gt, IGNORE).mean()
    assert stats["kl_start"] == pytest.approx(exact.item(), rel=1e-5)  # the exact KL, as with the loss form
    assert set(objective(baseline={"kind": "sample_loo"}, samples=3, kl_coef=beta, kl_in="reward").settings.ignored_keys()) \
        == {"baseline.coef", "baseline.decay"}


def test_constant_groups_carry_no_gradient_and_are_counted():
    logits, gt = batch(10)
    logits = logits.clone()
    logits[0] = 50.0 * torch.nn.functional.one_hot(gt[0].clamp_max(C - 1), C).permute(2, 0, 1)  # image 0: certain
    z = logits.clone().requires_grad_()
    loss, stats = objective(baseline={"kind": "group_mean"}, samples=3, normalize_advantage="group")(
        z, gt, torch.Generator().manual_seed(6))
    assert stats["constant_group_share"] == pytest.approx(1 / 3)
    loss.backward()
    assert z.grad[0].abs().max() == 0 and z.grad[1:].abs().max() > 0


def test_clipped_surrogate_epochs_on_one_batch():
    logits, gt = batch(11)
    ref = ref_for(logits)
    config = {"baseline": {"kind": "sample_loo"}, "samples": 2, "clip_range": 0.2, "epochs_per_batch": 3,
              "kl_coef": 0.1}
    obj = objective(**config)
    assert obj.epochs == 3
    z = logits.clone().requires_grad_()
    loss, stats = obj(z, gt, torch.Generator().manual_seed(7), ref_logits=ref)
    loss.backward()
    # epoch 1 is REINFORCE (+ the same KL term): same gradient as the unclipped objective
    plain = objective(**{**config, "clip_range": None, "epochs_per_batch": None})
    z0 = logits.clone().requires_grad_()
    plain(z0, gt, torch.Generator().manual_seed(7), ref_logits=ref)[0].backward()
    assert torch.allclose(z.grad, z0.grad, rtol=1e-5, atol=1e-9)
    assert (stats["clip_fraction"], stats["ratio_min"], stats["ratio_max"], stats["kl_old"]) == (0.0, 1.0, 1.0, 0.0)
    kept = obj.rollout
    # epochs 2 and 3: a moved policy, the same samples and advantages; the reference is kept
    moved = logits - 2.0 * z.grad * logits.numel()
    for epoch in (2, 3):
        loss_e, s = obj.replay(moved.clone().requires_grad_())
        assert s["epoch"] == epoch and s["kl_old"] > 0 and s["ratio_min"] < 1 < s["ratio_max"]
        assert 0 <= s["clip_fraction"] <= 1 and "kl_start" in s
        assert obj.rollout is kept and torch.isfinite(loss_e)
        # every epoch reports the batch's reward statistics (epoch 1's): the same keys each step
        assert all(s[k] == stats[k] for k in ("reward_mean", "reward_std", "advantage_mean", "constant_group_share"))
    with pytest.raises(RuntimeError, match="already ran"):
        obj.replay(moved)
    obj(logits, gt, torch.Generator().manual_seed(8), ref_logits=ref)  # next batch: fine
    with pytest.raises(RuntimeError, match=r"replay\(\) 2 times"):
        obj(logits, gt, torch.Generator().manual_seed(9), ref_logits=ref)  # its epochs were not run
    with pytest.raises(RuntimeError, match="epochs_per_batch"):
        objective(baseline={"kind": "none"}).replay(logits)


def test_replay_refuses_another_batch():
    logits, gt = batch(12)
    obj = objective(baseline={"kind": "sample_loo"}, samples=2, clip_range=0.2, epochs_per_batch=2)
    obj(logits.clone().requires_grad_(), gt, torch.Generator().manual_seed(1))
    other = gt.clone()
    other[0, 0, 0] = (int(other[0, 0, 0]) + 1) % C
    with pytest.raises(ValueError, match="another batch"):
        obj.replay(logits.clone().requires_grad_(), gt=other)
    obj.replay(logits.clone().requires_grad_(), gt=gt.clone())   # the kept batch's labels: fine
