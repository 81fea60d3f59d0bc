"""The ``reinforce`` gradient on a tiny problem whose expected reward is known exactly.

Problem: B = 4 images of 2 x 3 pixels, C = 3 classes, a softmax policy per pixel with
logits ``z_i = s_i * onehot(g_i) + N(0, 1)`` (confidence s_i = 1, 2, 3, 4, so the images
have different expected rewards, as in a real batch), one ignored pixel in the last image,
k = 4 labellings per image. Enumerating all 3^6 = 729 labellings of an image gives
``E[R_i]`` and, by autograd, the exact gradient of

    J(z) = (1/B) sum_i (1/|V_i|) E_{y ~ P_i}[R(y, g_i)]

(the 1/|V_i| is the "mean over valid pixels" of the loss). Each draw of the estimator
is ``-grad L`` for one batch; D = 20,000 independent batches are evaluated at once by
replicating the batch D times and reading the per-replicate gradients off one backward
pass. ``reinforce_loss``, ``sample_labellings``, ``per_image_miou`` and the baseline
functions are the real ones.

Tolerance: each of the 72 gradient components must lie within 5 standard errors of the
exact value, the standard error being the measured per-draw std / sqrt(D) (a false
failure has probability ~72 * 6e-7 per baseline). Measured over sampling seeds 0-4:
max |z| 1.9-3.6 for every baseline (the biased control: ~51); relative
standard error of the averaged gradient ~1-2.5 % of its norm. Negative controls check that
the same test rejects a gradient scaled by 1.2 and a baseline that includes its own
sample (biased by a factor 1 - 1/k).
"""

import itertools

import pytest
import torch

from rewardsweep.reward import baselines as bl
from rewardsweep.reward.estimators import reinforce_loss, sample_labellings
from rewardsweep.reward.miou import per_image_miou

B, C, H, W, K = 4, 3, 2, 3, 4
D = 20_000
Z_MAX = 5.0
IGNORE = 255


@pytest.fixture(scope="module")
def problem():
    gen = torch.Generator().manual_seed(7)
    gt = torch.randint(C, (B, H, W), generator=gen)
    scale = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(B, 1, 1, 1)
    z = torch.randn(B, C, H, W, generator=gen) + scale * torch.nn.functional.one_hot(gt, C).permute(0, 3, 1, 2)
    gt[-1, 0, 0] = IGNORE

    # exact gradient of J by enumeration (float64)
    P = H * W
    Y = torch.tensor(list(itertools.product(range(C), repeat=P)))  # [C^P, P]
    zz = z.double().requires_grad_()
    J, expected = 0.0, []
    for i in range(B):
        R, _ = per_image_miou(Y.view(-1, H, W), gt[i].expand(len(Y), H, W), C, IGNORE)
        logp = torch.log_softmax(zz[i], 0).view(C, P)
        log_prob_y = logp[Y, torch.arange(P)].sum(-1)
        e = (log_prob_y.exp() * R.double()).sum()
        expected.append(e.item())
        J = J + e / (gt[i] != IGNORE).sum() / B
    J.backward()
    return {"z": z, "gt": gt, "exact": zz.grad.float(), "expected_reward": expected, "cache": {}}


def draws(problem, kind, coef=1.0, seed=0):
    """[D, B, C, H, W]: D independent single-batch gradient estimates of grad J."""
    key = (kind, coef, seed)
    if key in problem["cache"]:
        return problem["cache"][key]
    z, gt = problem["z"], problem["gt"]
    gen = torch.Generator().manual_seed(seed)
    Z = z.repeat(D, 1, 1, 1).requires_grad_()
    gt_rep = gt.repeat(D, 1, 1)
    samples = sample_labellings(Z, K, gen)
    R, valid = per_image_miou(samples, gt_rep, C, IGNORE)
    valid = valid[:, 0]
    R3, v3 = R.view(D, B, K), valid.view(D, B)
    if kind == "none":
        b = bl.none(R3)
    elif kind == "batch_loo":
        b = bl.batch_loo(R3, coef, v3)
    elif kind == "sample_loo":
        b = bl.sample_loo(R3)
    elif kind == "greedy":
        R_greedy, _ = per_image_miou(z.argmax(1), gt, C, IGNORE)
        b = bl.greedy(R_greedy.expand(D, B))
    elif kind == "ema":  # a constant from the past: the level the EMA settles at
        b = bl.EmaBaseline(0.9, value=sum(problem["expected_reward"]) / B).baseline(R3)
    elif kind == "self_inclusive":  # negative control: mean over all k samples, own included
        b = R3.mean(-1, keepdim=True)
    else:
        raise ValueError(kind)
    A = bl.advantages(R3, b, v3).view(D * B, K)
    loss = reinforce_loss(Z, gt_rep, samples, A, valid)
    loss.backward()
    # loss = (1/D) sum_d L_d and replicate d only touches L_d: grad of L_d = D * Z.grad[d]
    g = (-D * Z.grad).view(D, B, C, H, W)
    problem["cache"][key] = g
    return g


def max_z(g, target):
    mean, se = g.mean(0), g.std(0) / D**0.5
    moving = se > 0
    return ((mean - target).abs()[moving] / se[moving]).max().item(), mean, moving


BASELINES = [("none", 1.0), ("batch_loo", 1.0), ("batch_loo", 0.1), ("sample_loo", 1.0), ("greedy", 1.0), ("ema", 1.0)]


@pytest.mark.parametrize("kind,coef", BASELINES, ids=[f"{k}-{c}" for k, c in BASELINES])
def test_reinforce_gradient_is_unbiased(problem, kind, coef):
    g = draws(problem, kind, coef)
    z_stat, mean, moving = max_z(g, problem["exact"])
    assert z_stat < Z_MAX, f"{kind}: averaged gradient is {z_stat:.1f} standard errors from the exact one"
    # the ignored pixel never moves, and its exact gradient is 0
    assert not moving[-1, :, 0, 0].any() and mean[-1, :, 0, 0].abs().max() == 0
    assert problem["exact"][-1, :, 0, 0].abs().max() < 1e-6
    # the test has power: a 20 % error in scale is rejected
    assert max_z(g, 1.2 * problem["exact"])[0] > Z_MAX


def test_a_biased_baseline_is_detected(problem):
    g = draws(problem, "self_inclusive")
    assert max_z(g, problem["exact"])[0] > Z_MAX
    # ... and it is exactly the (1 - 1/k) shrinkage theory predicts
    assert max_z(g, (1 - 1 / K) * problem["exact"])[0] < Z_MAX


def total_variance(g, chunks=20):
    """Trace of the per-draw gradient covariance, and its standard error from batch means."""
    per_chunk = torch.stack([c.var(0).sum() for c in g.chunk(chunks)])
    return g.var(0).sum().item(), (per_chunk.std() / chunks**0.5).item()


def test_baselines_lower_the_variance_in_a_stable_order(problem):
    """Observed ordering of the estimator variance (trace of the gradient covariance):

        sample_loo < greedy < ema < batch_loo(1.0) < batch_loo(0.1) < none
        1.67e-4      2.2e-4   2.7e-4  4.2e-4           6.3e-4           7.9e-4

    the same within 1 % for sampling seeds 0-4 (each neighbour pair is separated by more
    than 20 standard errors of the variance estimate, ~1e-6). Why: the variance-minimising baseline is
    close to each image's own expected reward. sample_loo estimates it per image from
    the k - 1 other samples (only noise, no offset); greedy is a per-image value a little
    above E[R_i] (argmax labelling is better than a typical sample); ema is one constant
    for all images whose E[R_i] differ (0.30 .. 0.86 here), so it misses per image;
    batch_loo uses the other images' rewards, which are both off (different images) and
    noisy; with beta = 0.1 it removes only a tenth of the mean reward; none removes nothing.
    What is structural (held on every problem instance tried): sample_loo lowest, none highest,
    batch_loo(1.0) < batch_loo(0.1). Where greedy lands depends on the instance: on tiny
    images its argmax labelling is sometimes perfect (R = 1), far above E[R_i], and it can
    fall behind batch_loo.
    """
    order = [("sample_loo", 1.0), ("greedy", 1.0), ("ema", 1.0), ("batch_loo", 1.0), ("batch_loo", 0.1), ("none", 1.0)]
    measured = [total_variance(draws(problem, k, c)) for k, c in order]
    for (name_a, (va, sa)), (name_b, (vb, sb)) in zip(zip(order, measured), zip(order[1:], measured[1:])):
        margin = 3 * (sa**2 + sb**2) ** 0.5
        assert va + margin < vb, f"{name_a} ({va:.3e} ± {sa:.1e}) not below {name_b} ({vb:.3e} ± {sb:.1e})"
