"""Loss formulas of both estimators, sampling, and cross-entropy against MMSeg and torch."""

import pytest
import torch
import torch.nn.functional as F

from rewardsweep.reward.estimators import (
    pixel_weights,
    reinforce_loss,
    reward_weighted_ce_loss,
    reward_weighted_ce_weights,
    sample_labellings,
    weighted_cross_entropy,
)
from rewardsweep.reward.miou import per_image_miou

IGNORE = 255


def make_batch(seed=0, B=3, C=4, H=5, W=6, p_ignore=0.25):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, C, H, W, generator=gen)
    gt = torch.randint(C, (B, H, W), generator=gen)
    gt[torch.rand(B, H, W, generator=gen) < p_ignore] = IGNORE
    return logits, gt


@pytest.fixture(scope="module")
def mmseg_ce():
    from rewardsweep.mmcv_compat import import_mmseg

    import_mmseg()
    from mmseg.models.losses import CrossEntropyLoss

    return CrossEntropyLoss


# ----------------------------------------------------------------------------- sampling
def test_sampling_shape_and_reproducibility():
    logits, _ = make_batch()
    a = sample_labellings(logits, 3, torch.Generator().manual_seed(5))
    b = sample_labellings(logits, 3, torch.Generator().manual_seed(5))
    c = sample_labellings(logits, 3, torch.Generator().manual_seed(6))
    assert a.shape == (3, 3, 5, 6) and a.dtype == torch.int64 and not a.requires_grad
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() < 4


def test_sampling_follows_the_softmax():
    # 2 pixels, 3 classes; class 2 of pixel 1 has probability 0 in float32.
    logits = torch.tensor([[[[0.0, 2.0]], [[1.0, 0.0]], [[-1.0, -200.0]]]])  # [1, 3, 1, 2]
    n = 40_000
    y = sample_labellings(logits, n, torch.Generator().manual_seed(0))[0, :, 0]  # [n, 2]
    probs = torch.softmax(logits[0, :, 0], 0)  # [3, 2]
    for p in range(2):
        freq = torch.bincount(y[:, p], minlength=3).double() / n
        se = (probs[:, p].double() * (1 - probs[:, p].double()) / n).sqrt()
        assert ((freq - probs[:, p]).abs() <= 5 * se + 1e-12).all(), (p, freq, probs[:, p])
    assert (y[:, 1] != 2).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_sampling_with_a_cpu_generator_does_not_depend_on_the_device():
    logits, _ = make_batch()
    cpu = sample_labellings(logits, 2, torch.Generator().manual_seed(1))
    gpu = sample_labellings(logits.cuda(), 2, torch.Generator().manual_seed(1))
    assert gpu.device.type == "cuda"
    assert (cpu != gpu.cpu()).float().mean() < 1e-3  # equal up to float rounding at cdf edges


# ----------------------------------------------------------------------------- cross-entropy
def test_weighted_cross_entropy_per_image_matches_mmseg(mmseg_ce):
    logits, gt = make_batch(1)
    ours = weighted_cross_entropy(logits, gt, ignore_index=IGNORE)
    ce = mmseg_ce(avg_non_ignore=True)
    for i in range(len(gt)):
        ref = ce(logits[i : i + 1], gt[i : i + 1], ignore_index=IGNORE)
        assert ours[i].item() == pytest.approx(ref.item(), rel=1e-5)


def test_class_weighted_ce_divides_by_the_weights_used():
    logits, gt = make_batch(2)
    w = torch.tensor([0.5, 2.0, 1.0, 0.25])
    ours = weighted_cross_entropy(logits, gt, w, IGNORE)
    for i in range(len(gt)):
        ref = F.cross_entropy(logits[i : i + 1], gt[i : i + 1], weight=w, ignore_index=IGNORE, reduction="mean")
        assert ours[i].item() == pytest.approx(ref.item(), rel=1e-5)
    # and by hand: sum_p w_g nll_p / sum_p w_g
    nll = -torch.log_softmax(logits[0], 0)
    num = den = 0.0
    for (h, x), g in zip(torch.cartesian_prod(torch.arange(5), torch.arange(6)).tolist(), gt[0].flatten().tolist()):
        if g != IGNORE:
            num += w[g].item() * nll[g, h, x].item()
            den += w[g].item()
    assert ours[0].item() == pytest.approx(num / den, rel=1e-5)


def test_image_without_valid_pixel_has_zero_ce_and_no_gradient():
    logits, gt = make_batch(3)
    gt[1] = IGNORE
    logits.requires_grad_()
    ce = weighted_cross_entropy(logits, gt, torch.ones(4), IGNORE)
    assert ce[1].item() == 0.0 and torch.isfinite(ce).all()
    ce.sum().backward()
    assert logits.grad[1].abs().max() == 0


# ----------------------------------------------------------------------------- reward_weighted_ce
@pytest.mark.filterwarnings("ignore:Default ``avg_non_ignore``")
def test_reward_weighted_ce_with_unit_weights_is_mmseg_cross_entropy(mmseg_ce):
    logits, gt = make_batch(4, p_ignore=0.0)  # no ignored pixel: MMSeg's batch mean = mean of image means
    ref = mmseg_ce()(logits, gt, ignore_index=IGNORE)  # MMSeg's default config (avg_non_ignore=False)
    forced = reward_weighted_ce_loss(logits, gt, beta=0.0, weights=torch.ones(3))
    assert forced.item() == pytest.approx(ref.item(), rel=1e-5)
    # beta = 0 and m_i = 0 gives w_i = 1 naturally: make the argmax wrong everywhere
    wrong = F.one_hot((gt + 1) % 4, 4).permute(0, 3, 1, 2).float() * 10 + 0.1 * logits
    m, valid = per_image_miou(wrong.argmax(1), gt, 4)
    assert torch.equal(m, torch.zeros(3)) and valid.all()
    natural = reward_weighted_ce_loss(wrong, gt, beta=0.0)
    assert natural.item() == pytest.approx(mmseg_ce()(wrong, gt, ignore_index=IGNORE).item(), rel=1e-5)


def test_reward_weighted_ce_formula():
    logits, gt = make_batch(5)
    beta = 0.3
    m, valid = per_image_miou(logits.argmax(1), gt, 4)
    l = (1 - m).tolist()
    w = [l[i] - beta * sum(l[j] for j in range(3) if j != i) / 2 for i in range(3)]
    assert torch.allclose(reward_weighted_ce_weights(m, beta, valid), torch.tensor(w), atol=1e-6)
    ce = weighted_cross_entropy(logits, gt, ignore_index=IGNORE)
    expected = sum(w[i] * ce[i].item() for i in range(3)) / 3
    assert reward_weighted_ce_loss(logits, gt, beta).item() == pytest.approx(expected, rel=1e-5)


# ----------------------------------------------------------------------------- reinforce
def test_reinforce_loss_formula_with_class_weights():
    logits, gt = make_batch(6)
    gt[2] = IGNORE  # invalid image
    k = 2
    samples = sample_labellings(logits, k, torch.Generator().manual_seed(0))
    A = torch.tensor([[0.3, -0.2], [0.5, 0.1], [0.7, 0.7]])
    valid = torch.tensor([True, True, False])
    cw = torch.tensor([0.5, 2.0, 1.0, 0.25])
    logp = torch.log_softmax(logits, 1)
    total = 0.0
    for i in range(2):  # image 2 carries no weight
        for j in range(k):
            num = den = 0.0
            for h in range(5):
                for x in range(6):
                    g = gt[i, h, x].item()
                    if g != IGNORE:
                        num += cw[g].item() * logp[i, samples[i, j, h, x], h, x].item()
                        den += cw[g].item()
            total += A[i, j].item() * num / den
    expected = -total / (3 * k)
    logits.requires_grad_()
    loss = reinforce_loss(logits, gt, samples, A, valid, cw, IGNORE)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert logits.grad[2].abs().max() == 0  # invalid image
    ignored = (gt[0] == IGNORE)
    assert logits.grad[0][:, ignored].abs().max() == 0  # ignored pixels


def test_pixel_weights():
    gt = torch.tensor([[[0, 1, IGNORE]]])
    assert pixel_weights(gt).tolist() == [[[1.0, 1.0, 0.0]]]
    assert pixel_weights(gt, torch.tensor([0.5, 3.0])).tolist() == [[[0.5, 3.0, 0.0]]]


def test_greedy_labelling_equals_argmax_including_ties():
    from rewardsweep.reward.estimators import greedy_labelling

    g = torch.Generator().manual_seed(0)
    logits = torch.randint(0, 3, (4, 5, 7, 9), generator=g).float()  # many ties
    assert torch.equal(greedy_labelling(logits), logits.argmax(1))
