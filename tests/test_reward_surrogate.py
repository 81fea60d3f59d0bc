"""The clipped surrogate: value and gradient against independent per-pixel formulas, equal to
REINFORCE (gradient) on the first epoch, the clip removing exactly the gradients it should,
its diagnostics, and no NaN for huge ratios."""

import itertools

import pytest
import torch

from rewardsweep.reward.estimators import reinforce_loss, sample_labellings, sample_log_probs
from rewardsweep.reward.surrogate import clipped_surrogate_per_image

IGNORE = 255
EPS = 0.2


def make(seed=0, B=3, C=4, H=3, W=4, k=2):
    g = torch.Generator().manual_seed(seed)
    old = torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    new = old + 0.6 * torch.randn(B, C, H, W, generator=g, dtype=torch.float64)  # several epochs later
    gt = torch.randint(C, (B, H, W), generator=g)
    gt[torch.rand(B, H, W, generator=g) < 0.25] = IGNORE
    samples = sample_labellings(old, k, g)
    A = torch.randn(B, k, generator=g, dtype=torch.float64)
    old_logp = sample_log_probs(old, samples).detach()
    return old, new, gt, samples, A, old_logp


def test_value_matches_a_per_pixel_loop_with_class_weights():
    old, new, gt, samples, A, old_logp = make()
    cw = torch.tensor([0.5, 2.0, 1.0, 0.25])
    valid = torch.tensor([True, True, False])
    per_image, _ = clipped_surrogate_per_image(new, gt, samples, A, old_logp, EPS, valid, cw, IGNORE)
    lp_new, lp_old = torch.log_softmax(new, 1), torch.log_softmax(old, 1)
    B, k, H, W = samples.shape
    for i in range(B):
        total = 0.0
        for j in range(k):
            num = den = 0.0
            a = A[i, j].item() if valid[i] else 0.0
            for h, w in itertools.product(range(H), range(W)):
                g = gt[i, h, w].item()
                if g == IGNORE:
                    continue
                y = samples[i, j, h, w]
                rho = (lp_new[i, y, h, w] - lp_old[i, y, h, w]).exp().item()
                num += cw[g].item() * min(rho * a, min(max(rho, 1 - EPS), 1 + EPS) * a)
                den += cw[g].item()
            total += num / den
        assert per_image[i].item() == pytest.approx(-total / k, rel=1e-5, abs=1e-7)


def test_gradient_is_the_closed_form_and_zero_where_the_clip_acts():
    """dL/dz_icp = -(1/B)(1/k) sum_j [not clipped] A_ij rho_ijp (1[c = y_ijp] - pi_icp) / |V_i|,
    'clipped' being A > 0 and rho > 1 + eps, or A < 0 and rho < 1 - eps."""
    old, new, gt, samples, A, old_logp = make(1)
    z = new.clone().requires_grad_()
    per_image, diag = clipped_surrogate_per_image(z, gt, samples, A, old_logp, EPS, ignore_index=IGNORE)
    per_image.mean().backward()
    B, k, H, W = samples.shape
    pi = torch.softmax(new, 1)
    rho = (sample_log_probs(new, samples) - old_logp).exp()  # [B, k, H, W]
    A4 = A[:, :, None, None]
    active = ((A4 > 0) & (rho > 1 + EPS)) | ((A4 < 0) & (rho < 1 - EPS))
    valid_px = (gt != IGNORE).unsqueeze(1)  # [B, 1, H, W]
    nv = valid_px.sum((-2, -1), keepdim=True).double()
    coef = (~active) * A4 * rho * valid_px / nv  # [B, k, H, W]
    onehot = torch.nn.functional.one_hot(samples, pi.shape[1]).permute(0, 1, 4, 2, 3).double()  # [B, k, C, H, W]
    expected = -(coef.unsqueeze(2) * (onehot - pi.unsqueeze(1))).sum(1) / (B * k)
    assert torch.allclose(z.grad.double(), expected, rtol=1e-4, atol=1e-9)
    # the clip acted somewhere, and exactly there the pixel's gradient is 0
    share = (active & valid_px).sum().item() / (valid_px.expand_as(active)).sum().item()
    assert 0.05 < share < 0.95
    assert diag["clip_fraction"].item() == pytest.approx(share)
    r = rho[valid_px.expand_as(rho)]
    assert diag["ratio_min"].item() == pytest.approx(r.min().item(), rel=1e-5)
    assert diag["ratio_max"].item() == pytest.approx(r.max().item(), rel=1e-5)


def test_first_epoch_is_reinforce():
    """Ratio 1 (old log-probs = the current ones): the gradient is REINFORCE's, per element; the
    value is -(1/B) sum_i (1/k) sum_j A_ij (REINFORCE's value, -A mean log P, is another
    number: only the gradients of the two surrogates are meant to agree)."""
    old, _, gt, samples, A, _ = make(2)
    valid = torch.tensor([True, False, True])
    cw = torch.tensor([0.5, 2.0, 1.0, 0.25])
    z1 = old.float().clone().requires_grad_()
    per_image, diag = clipped_surrogate_per_image(z1, gt, samples, A, sample_log_probs(z1, samples).detach(),
                                                  EPS, valid, cw, IGNORE)
    per_image.mean().backward()
    z2 = old.float().clone().requires_grad_()
    reinforce_loss(z2, gt, samples, A, valid, cw, IGNORE).backward()
    assert torch.allclose(z1.grad, z2.grad, rtol=1e-5, atol=1e-9)
    assert per_image.mean().item() == pytest.approx(-(A.float() * valid[:, None]).mean().item(), rel=1e-6)
    assert diag["clip_fraction"].item() == 0 and diag["ratio_min"].item() == diag["ratio_max"].item() == 1.0


def test_huge_ratios_give_finite_gradients():
    old, new, gt, samples, A, old_logp = make(3)
    z = new.float().clone().requires_grad_()
    per_image, diag = clipped_surrogate_per_image(z, gt, samples, A, old_logp.float() - 500.0, EPS, ignore_index=IGNORE)
    per_image.mean().backward()
    assert torch.isfinite(per_image).all() and torch.isfinite(z.grad).all()
    assert diag["ratio_max"].item() == pytest.approx(torch.tensor(20.0).exp().item(), rel=1e-5)


def test_bad_arguments():
    old, new, gt, samples, A, old_logp = make(4)
    with pytest.raises(ValueError, match="clip_range"):
        clipped_surrogate_per_image(new, gt, samples, A, old_logp, 1.5)
    with pytest.raises(ValueError, match="old_log_probs"):
        clipped_surrogate_per_image(new, gt, samples, A, old_logp[:, :1], EPS)
