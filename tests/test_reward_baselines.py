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


# ----------------------------------------------------------------------------- GRPO / Dr. GRPO
def test_group_mean_includes_the_sample_itself():
    R = torch.tensor([[1.0, 2.0, 4.0], [0.0, 0.0, 3.0]])
    assert torch.allclose(bl.group_mean(R), torch.tensor([[7 / 3], [1.0]]))
    with pytest.raises(ValueError, match="2 samples"):
        bl.group_mean(R[:, :1])
    assert bl.KINDS["group_mean"].centred and bl.KINDS["sample_loo"].centred
    assert not any(bl.KINDS[k].centred for k in ("none", "batch_loo", "greedy", "ema"))


@pytest.mark.parametrize("k", [2, 3, 4, 8])
def test_group_mean_advantage_is_sample_loo_times_k_minus_1_over_k(k):
    """R_j - mean_j' R_j' = (k - 1)/k * (R_j - mean_{j' != j} R_j'), exactly, for every sample."""
    R = torch.rand(5, k, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    A_group = bl.advantages(R, bl.group_mean(R))
    A_loo = bl.advantages(R, bl.sample_loo(R))
    assert torch.allclose(A_group, (k - 1) / k * A_loo, rtol=0, atol=1e-15)


def test_group_scale_divides_by_each_images_reward_std():
    """GRPO: (R_ij - mean_j R_ij) / (std_j R_ij + eps), std with Bessel's correction (torch, TRL)."""
    import statistics

    R = torch.tensor([[0.1, 0.5, 0.3], [0.9, 0.3, 0.6], [0.2, 0.2, 0.2], [7.0, 1.0, 2.0]], dtype=torch.float64)
    valid = torch.tensor([True, True, True, False])
    zero = bl.constant_groups(R, valid)
    assert zero.tolist() == [False, False, True, False]
    A = bl.advantages(R, bl.group_mean(R), valid, scale="group", zero=zero)
    for i in range(2):
        row = R[i].tolist()
        m, s = statistics.mean(row), statistics.stdev(row)
        assert A[i].tolist() == pytest.approx([(r - m) / (s + 1e-8) for r in row], rel=1e-12)
    assert torch.equal(A[2], torch.zeros(3)) and torch.equal(A[3], torch.zeros(3))
    # with sample_loo the group-scaled advantage is k/(k-1) times GRPO's
    A_loo = bl.advantages(R, bl.sample_loo(R), valid, scale="group", zero=zero)
    assert torch.allclose(A_loo, 3 / 2 * A, rtol=1e-12, atol=1e-14)
    # scale-free: rewards a million times closer give (nearly, eps aside) the same advantages
    tiny = bl.advantages(R * 1e-6, bl.group_mean(R * 1e-6), valid, scale="group")
    assert torch.allclose(tiny, A, rtol=0.06) and not torch.allclose(tiny, A, rtol=1e-3)


def test_constant_groups_get_exactly_zero_even_when_the_mean_rounds():
    """In float32 the k-sum of equal rewards rounds: R - mean or the LOO mean is ~1e-8 instead
    of 0, and the group std ~1e-8 instead of 0, so without the zero mask an image whose k
    samples all scored the same would get an advantage of order 1 (measured: 5.96 for
    sample_loo at R = 0.7, 0.72 for group_mean at R = 0.9)."""
    for R, b in ((torch.full((1, 3), 0.7), bl.sample_loo), (torch.full((1, 3), 0.9), bl.group_mean)):
        noisy = bl.advantages(R, b(R), scale="group")
        assert noisy.abs().max() > 0.5
        exact = bl.advantages(R, b(R), scale="group", zero=bl.constant_groups(R))
        assert torch.equal(exact, torch.zeros(1, 3))


def test_scale_names_match_the_normalize_flag():
    R = torch.rand(4, 2, generator=torch.Generator().manual_seed(1))
    b = bl.sample_loo(R)
    assert torch.equal(bl.advantages(R, b, normalize=True), bl.advantages(R, b, scale="batch"))
    assert torch.equal(bl.advantages(R, b), bl.advantages(R, b, scale="none"))
    with pytest.raises(ValueError, match="scale"):
        bl.advantages(R, b, scale="image")
    with pytest.raises(ValueError, match="2 samples"):
        bl.advantages(R[:, :1], 0.0, scale="group")
    assert bl.constant_groups(R[:, :1]).tolist() == [False] * 4
