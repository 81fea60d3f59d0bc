"""The clipped surrogate (PPO-style): several epochs on one batch with the sampling policy fixed.

Shapes: logits ``[B, C, H, W]`` (at label size), ``gt`` ``[B, H, W]``, samples
``[B, k, H, W]``, advantages ``[B, k]``, old log-probabilities ``[B, k, H, W]``.

One batch is drawn once (labellings ``y_ij`` from the policy ``pi_old`` of the epoch-1
forward pass, their rewards and advantages ``A_ij``, and ``log pi_old(y_ijp)``), then the
model takes ``E`` gradient steps on it. In each, every valid pixel of every sample has the
importance ratio ``rho_ijp = pi(y_ijp) / pi_old(y_ijp)`` of the *current* policy, and

    L = -(1/B) sum_i (1/k) sum_j  mean_{p in V_i} min(rho_ijp A_ij, clip(rho_ijp, 1-eps, 1+eps) A_ij)

(class-weighted mean when class weights are on, as in ``reinforce``). On epoch 1, ``pi =
pi_old``: every ratio is 1 and the gradient is exactly REINFORCE's; the clip acts from
epoch 2 on, removing a pixel's gradient once its ratio has left ``[1-eps, 1+eps]`` in the
direction its advantage pushes.

Why per pixel: the policy is a product over pixels, so the ratio of a whole labelling is
``prod_p rho_p = exp(sum_p log rho_p)``; summed over 10^4-10^6 pixels the log-ratio leaves
``[log(1-eps), log(1+eps)]`` after the first update for nearly every image (measured in
``benchmarks/bench_estimators.py --ratios``, docs/method.md), which clips every image and
stops learning after epoch 1. Per-pixel ratios are the token-level ratios of PPO/GRPO.

Numerics: a log-ratio is capped at ``LOG_RATIO_CAP`` before ``exp`` (a ratio above ~5e8
would overflow the product with A and give NaN gradients); below the cap nothing changes.
"""

from __future__ import annotations

import torch

from rewardsweep.reward.estimators import checked_advantages, sample_log_probs, weighted_pixel_mean
from rewardsweep.reward.regularizers import valid_pixels

__all__ = ["LOG_RATIO_CAP", "clipped_surrogate_from_log_probs", "clipped_surrogate_per_image", "ratio_diagnostics"]

LOG_RATIO_CAP = 20.0


def clipped_surrogate_per_image(
    logits: torch.Tensor,
    gt: torch.Tensor,
    samples: torch.Tensor,
    advantages: torch.Tensor,
    old_log_probs: torch.Tensor,
    clip_range: float,
    valid: torch.Tensor | None = None,
    class_weights: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Each image's term ``[B]`` of the clipped-surrogate loss (whose mean is the loss), and
    the ratio diagnostics of :func:`ratio_diagnostics`.

    ``old_log_probs`` ``[B, k, H, W]``: ``log pi_old(y_ijp)``, fixed for the batch's epochs
    (detached here). Images with ``valid`` False get A = 0 (no gradient).
    """
    logp = sample_log_probs(logits, samples)
    return clipped_surrogate_from_log_probs(logp, old_log_probs, advantages, clip_range, gt, valid, class_weights,
                                            ignore_index)


def clipped_surrogate_from_log_probs(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    clip_range: float,
    gt: torch.Tensor,
    valid: torch.Tensor | None = None,
    class_weights: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """:func:`clipped_surrogate_per_image` from the samples' current log-probabilities
    ``[B, k, H, W]`` (with gradient), so epoch 1 computes them once for both (old = current)."""
    if not 0.0 < clip_range < 1.0:
        raise ValueError(f"clip_range must lie in (0, 1); got {clip_range}")
    if old_log_probs.shape != log_probs.shape:
        raise ValueError(f"old_log_probs must be {tuple(log_probs.shape)}; got {tuple(old_log_probs.shape)}")
    A = checked_advantages(advantages, log_probs, valid)
    log_ratio = log_probs - old_log_probs.detach().float()
    ratio = log_ratio.clamp(max=LOG_RATIO_CAP).exp()
    A4 = A[:, :, None, None]
    surrogate = torch.minimum(ratio * A4, ratio.clamp(1.0 - clip_range, 1.0 + clip_range) * A4)
    per_image = -weighted_pixel_mean(surrogate, gt, class_weights, ignore_index).mean(-1)  # [B]
    return per_image, ratio_diagnostics(ratio.detach(), A, clip_range, gt, valid, ignore_index)


@torch.no_grad()
def ratio_diagnostics(
    ratio: torch.Tensor,
    advantages: torch.Tensor,
    clip_range: float,
    gt: torch.Tensor,
    valid: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> dict[str, torch.Tensor]:
    """Over the valid pixels of every sample of the valid images (0-dim tensors):

    - ``clip_fraction``: share of (pixel, sample) terms whose gradient the clip removed:
      ``A > 0`` and ``rho > 1 + eps``, or ``A < 0`` and ``rho < 1 - eps``;
    - ``ratio_min``, ``ratio_max``: the range of the per-pixel ratios (1 on epoch 1).

    ``ratio`` ``[B, k, H, W]``, ``advantages`` ``[B, k]``. With no valid pixel: 0, 1, 1.
    """
    mask = valid_pixels(gt, ignore_index).bool().unsqueeze(1).expand_as(ratio)
    if valid is not None:
        mask = mask & valid.view(-1, 1, 1, 1)
    if not mask.any():
        one = ratio.new_ones(())
        return {"clip_fraction": ratio.new_zeros(()), "ratio_min": one, "ratio_max": one}
    A = advantages[:, :, None, None]
    clipped = ((A > 0) & (ratio > 1.0 + clip_range)) | ((A < 0) & (ratio < 1.0 - clip_range))
    # masked reductions (no boolean indexing: it copies, and costs more than the loss here)
    return {"clip_fraction": (clipped & mask).sum() / mask.sum(),
            "ratio_min": ratio.masked_fill(~mask, float("inf")).min(),
            "ratio_max": ratio.masked_fill(~mask, float("-inf")).max()}
