"""Exact per-pixel entropy and KL to the start model: values and gradients against
independent formulas (plain-Python softmax, closed-form derivatives), the KL's zero at the
start model, and the reward-penalty form's expectation by enumerating every labelling."""

import itertools
import math

import pytest
import torch

from rewardsweep.reward.estimators import log_policy
from rewardsweep.reward.regularizers import entropy_map, kl_map, labelling_log_ratio, per_image_mean

IGNORE = 255


def make(seed=0, B=2, C=4, H=3, W=5):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(B, C, H, W, generator=g, dtype=torch.float64) * 2
    ref = z + torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    gt = torch.randint(C, (B, H, W), generator=g)
    gt[torch.rand(B, H, W, generator=g) < 0.3] = IGNORE
    return z, ref, gt


def softmax(column):
    m = max(column)
    e = [math.exp(v - m) for v in column]
    return [v / sum(e) for v in e]


def test_entropy_and_kl_maps_match_a_plain_python_formula():
    z, ref, _ = make()
    H_, KL_ = entropy_map(log_policy(z)), kl_map(log_policy(z), log_policy(ref))
    B, C, H, W = z.shape
    for b, h, w in itertools.product(range(B), range(H), range(W)):
        p = softmax(z[b, :, h, w].tolist())
        q = softmax(ref[b, :, h, w].tolist())
        assert H_[b, h, w].item() == pytest.approx(-sum(x * math.log(x) for x in p), rel=1e-5)
        assert KL_[b, h, w].item() == pytest.approx(sum(x * math.log(x / y) for x, y in zip(p, q)), rel=1e-5, abs=1e-7)


def test_per_image_mean_is_over_valid_pixels_only():
    _, _, gt = make()
    values = torch.arange(gt.numel(), dtype=torch.float32).view(gt.shape)
    gt[1] = IGNORE
    out = per_image_mean(values, gt, IGNORE)
    keep = gt[0] != IGNORE
    assert out[0].item() == pytest.approx(values[0][keep].mean().item())
    assert out[1].item() == 0.0


def test_entropy_bonus_gradient_is_the_closed_form():
    """d/dz_c of -alpha (1/B) sum_i mean_{p in V_i} H_p is alpha pi_c (log pi_c + H_p) / (B |V_i|)."""
    z, _, gt = make(1)
    alpha = 0.3
    zz = z.clone().requires_grad_()
    loss = -alpha * per_image_mean(entropy_map(log_policy(zz)), gt, IGNORE).mean()
    loss.backward()
    pi = torch.softmax(z, 1)
    Hp = -(pi * pi.log()).sum(1, keepdim=True)
    nv = (gt != IGNORE).sum((-2, -1)).view(-1, 1, 1, 1).double()
    expected = alpha * pi * (pi.log() + Hp) / (z.shape[0] * nv) * (gt != IGNORE).unsqueeze(1)
    assert torch.allclose(zz.grad.double(), expected, rtol=1e-4, atol=1e-8)


def test_kl_gradient_is_the_closed_form():
    """d/dz_c of beta (1/B) sum_i mean_{p in V_i} KL_p is beta pi_c (log pi_c - log q_c - KL_p) / (B |V_i|)."""
    z, ref, gt = make(2)
    beta = 0.7
    zz = z.clone().requires_grad_()
    (beta * per_image_mean(kl_map(log_policy(zz), log_policy(ref)), gt, IGNORE).mean()).backward()
    pi, q = torch.softmax(z, 1), torch.softmax(ref, 1)
    KLp = (pi * (pi.log() - q.log())).sum(1, keepdim=True)
    nv = (gt != IGNORE).sum((-2, -1)).view(-1, 1, 1, 1).double()
    expected = beta * pi * (pi.log() - q.log() - KLp) / (z.shape[0] * nv) * (gt != IGNORE).unsqueeze(1)
    assert torch.allclose(zz.grad.double(), expected, rtol=1e-4, atol=1e-8)


def test_kl_is_zero_with_zero_gradient_at_the_start_model():
    z, _, gt = make(3)
    z = z.float()
    for ref in (z.clone(), z + 5.0, torch.log_softmax(z, 1)):  # softmax is shift-invariant
        zz = z.clone().requires_grad_()
        kl = per_image_mean(kl_map(log_policy(zz), log_policy(ref)), gt, IGNORE).mean()
        kl.backward()
        assert abs(kl.item()) < 1e-6 and zz.grad.abs().max() < 1e-7  # 0 up to float32 rounding
    assert kl_map(log_policy(z), log_policy(z)).abs().max() == 0  # the same logits: the value is exactly 0


def test_labelling_log_ratio_matches_a_loop():
    z, ref, gt = make(4)
    g = torch.Generator().manual_seed(0)
    samples = torch.randint(z.shape[1], (z.shape[0], 3, *z.shape[2:]), generator=g)
    out = labelling_log_ratio(log_policy(z), log_policy(ref), samples, gt, IGNORE)
    lp, lq = torch.log_softmax(z, 1), torch.log_softmax(ref, 1)
    B, k, H, W = samples.shape
    for b, j in itertools.product(range(B), range(k)):
        total = sum(lp[b, samples[b, j, h, w], h, w].item() - lq[b, samples[b, j, h, w], h, w].item()
                    for h in range(H) for w in range(W) if gt[b, h, w] != IGNORE)
        assert out[b, j].item() == pytest.approx(total, rel=1e-5, abs=1e-6)
    assert not out.requires_grad


def test_the_reward_penalty_has_the_exact_kl_as_expectation():
    """sum_y P(y) log(P(y)/Q(y)) over all 3^6 labellings of a 2 x 3 image = sum_p KL_p."""
    z, ref, gt = make(5, B=1, C=3, H=2, W=3)
    gt[0, 0, 0] = IGNORE  # an ignored pixel takes no part
    Y = torch.tensor(list(itertools.product(range(3), repeat=6))).view(-1, 1, 2, 3)  # [729, 1, H, W]
    n = len(Y)
    ratio = labelling_log_ratio(log_policy(z).expand(n, -1, -1, -1), log_policy(ref).expand(n, -1, -1, -1), Y,
                                gt.expand(n, -1, -1), IGNORE)
    valid = (gt[0] != IGNORE).flatten()
    logp = torch.log_softmax(z[0], 0).view(3, 6)[Y.view(n, 6), torch.arange(6)]  # [n, 6]
    P = logp.sum(-1).exp()  # the labelling's probability (the ignored pixel too: sum P = 1)
    assert P.sum().item() == pytest.approx(1.0, rel=1e-12)
    expectation = (P * ratio[:, 0]).sum().item()
    exact = (kl_map(log_policy(z), log_policy(ref))[0].flatten()[valid]).sum().item()
    assert expectation == pytest.approx(exact, rel=1e-6)  # float32 inside
