"""Baselines and advantages on hand examples (METHOD.md, "Baselines for reinforce")."""

import pytest
import torch

from rewardsweep.reward import baselines as bl
from rewardsweep.reward.estimators import reward_weighted_ce_weights


def test_batch_loo_reproduces_the_study_formula():
    # The study: r_x = R(x, y) per image, r_b = (sum r_x - r_x) / (n - 1), r = r_x - 0.1 r_b.
    r_x = torch.tensor([0.2, 0.5, 0.8])
    r_b = torch.tensor([(0.5 + 0.8) / 2, (0.2 + 0.8) / 2, (0.2 + 0.5) / 2])
    expected = r_x - 0.1 * r_b  # [0.135, 0.45, 0.765]
    assert torch.allclose(expected, torch.tensor([0.135, 0.45, 0.765]))
    R = r_x.unsqueeze(-1)  # [B, k=1]
    A = bl.advantages(R, bl.batch_loo(R, 0.1))
    assert torch.allclose(A.squeeze(-1), expected, atol=1e-7)
    # the study applied it to 1 - mIoU: that is reward_weighted_ce's weight
    w = reward_weighted_ce_weights(1 - r_x, beta=0.1)
    assert torch.allclose(w, expected, atol=1e-7)


def test_batch_loo_uses_each_other_images_mean_and_skips_invalid_images():
    R = torch.tensor([[0.0, 1.0], [0.4, 0.6], [0.9, 0.9], [0.3, 0.3]])  # image means .5 .5 .9 .3
    valid = torch.tensor([True, True, True, False])
    b = bl.batch_loo(R, 1.0, valid)
    assert b.shape == (4, 1)
    assert torch.allclose(b.squeeze(-1)[:3], torch.tensor([(0.5 + 0.9) / 2, (0.5 + 0.9) / 2, 0.5]))
    A = bl.advantages(R, b, valid)
    assert torch.equal(A[3], torch.zeros(2))
    assert torch.allclose(A[2], torch.tensor([0.4, 0.4]))
    # no other valid image: baseline 0
    lone = bl.batch_loo(R[:2], 1.0, torch.tensor([True, False]))
    assert lone[0].item() == 0.0
    with pytest.raises(ValueError, match="2 images"):
        bl.batch_loo(R[:1], 1.0)


def test_batch_loo_supports_leading_dims():
    R = torch.rand(5, 3, 2)
    b = bl.batch_loo(R, 0.5)
    assert torch.allclose(b[2], bl.batch_loo(R[2], 0.5))


def test_sample_loo():
    R = torch.tensor([[1.0, 2.0, 4.0], [0.0, 0.0, 3.0]])
    assert torch.allclose(bl.sample_loo(R), torch.tensor([[3.0, 2.5, 1.5], [1.5, 1.5, 0.0]]))
    with pytest.raises(ValueError, match="2 samples"):
        bl.sample_loo(R[:, :1])


def test_greedy_and_none_broadcast():
    R = torch.rand(3, 2)
    Rg = torch.tensor([0.1, 0.2, 0.3])
    assert torch.allclose(bl.advantages(R, bl.greedy(Rg)), R - Rg[:, None])
    assert torch.equal(bl.advantages(R, bl.none(R)), R)


def test_ema_first_batch_uses_its_own_mean_then_past_batches_only():
    ema = bl.EmaBaseline(decay=0.9)
    R1 = torch.tensor([[0.2], [0.6], [0.0]])
    valid = torch.tensor([True, True, False])
    assert ema.baseline(R1, valid).item() == pytest.approx(0.4)  # mean over valid images
    ema.update(bl.batch_mean(R1, valid))
    assert ema.value == pytest.approx(0.4)
    R2 = torch.tensor([[1.0], [1.0], [1.0]])
    assert ema.baseline(R2).item() == pytest.approx(0.4)  # the past only, not R2
    ema.update(bl.batch_mean(R2))
    assert ema.value == pytest.approx(0.9 * 0.4 + 0.1 * 1.0)
    ema.update(bl.batch_mean(R2, torch.zeros(3, dtype=torch.bool)))  # no valid image: skipped
    assert ema.value == pytest.approx(0.46)
    restored = bl.EmaBaseline()
    restored.load_state_dict(ema.state_dict())
    assert restored.value == ema.value and restored.decay == 0.9
    with pytest.raises(ValueError):
        bl.EmaBaseline(decay=1.0)


def test_advantage_normalisation():
    R = torch.tensor([[0.1, 0.5], [0.9, 0.3], [7.0, 7.0]])
    valid = torch.tensor([True, True, False])
    A = bl.advantages(R, 0.0, valid, normalize=True)
    raw = torch.tensor([0.1, 0.5, 0.9, 0.3])
    assert torch.allclose(A[:2].flatten(), raw / (raw.std() + 1e-8))
    assert torch.equal(A[2], torch.zeros(2))
    # one valid sample: nothing to normalise with
    one = bl.advantages(torch.tensor([[0.7]]), 0.2, normalize=True)
    assert one.item() == pytest.approx(0.5)
