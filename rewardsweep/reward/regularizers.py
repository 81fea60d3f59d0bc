"""Exact per-pixel regularisers of the policy: entropy and KL to a reference policy.

The policy is a product of per-pixel categoricals ``P(y | x) = prod_p softmax(z)[y_p, p]``,
so the entropy and the KL of a labelling's distribution are sums over pixels of per-pixel
terms, each a sum over C classes: computed exactly here, no sampled estimator. As the
policy term does, a per-image value is the mean over the image's valid pixels ``V_i``
(``gt != ignore_index``), which keeps its scale that of one pixel (and of cross-entropy).
Class weights do not enter (a regulariser of the policy, not of the labels).

Shapes: log-probabilities of the policy and of the reference ``[B, C, H, W]`` (the
log-softmax of logits already at label size: ``estimators.log_policy``, computed once per
batch and shared by every term), ``gt`` ``[B, H, W]``, samples ``[B, k, H, W]``.

- ``entropy_map``: ``H_p = -sum_c pi_c log pi_c`` ``[B, H, W]``;
- ``kl_map``: ``KL_p = sum_c pi_c (log pi_c - log q_c)``, ``q`` the reference ``[B, H, W]``;
- ``per_image_mean``: a map's mean over ``V_i`` ``[B]`` (0 for an image without valid pixel);
- ``labelling_log_ratio``: ``sum_{p in V_i} log pi_p(y_p) - log q_p(y_p)`` of each sampled
  labelling ``[B, k]``, detached: the KL penalty put into the reward (its expectation over
  ``y ~ pi`` is the exact KL of the image's labelling distribution).
"""

from __future__ import annotations

import torch

__all__ = ["entropy_map", "kl_map", "labelling_log_ratio", "per_image_mean", "valid_pixels"]


def valid_pixels(gt: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """float32 ``[B, H, W]``: 1 on valid pixels, 0 on ignored ones."""
    return (gt != ignore_index).float()


def per_image_mean(values: torch.Tensor, gt: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """``[B]``: mean of ``values`` ``[B, H, W]`` over each image's valid pixels (0 if it has none)."""
    m = valid_pixels(gt, ignore_index)
    return (values * m).sum((-2, -1)) / m.sum((-2, -1)).clamp_min(1.0)


def entropy_map(log_probs: torch.Tensor) -> torch.Tensor:
    """Exact per-pixel entropy ``-sum_c pi_c log pi_c`` ``[B, H, W]`` (nats) of the policy
    whose log-probabilities are ``log_probs`` ``[B, C, H, W]`` (with gradient)."""
    return -(log_probs.exp() * log_probs).sum(1)


def kl_map(log_probs: torch.Tensor, ref_log_probs: torch.Tensor) -> torch.Tensor:
    """Exact per-pixel ``KL(pi || q) = sum_c pi_c (log pi_c - log q_c)`` ``[B, H, W]`` (nats).

    ``log_probs``: the policy's ``[B, C, H, W]`` (with gradient); ``ref_log_probs``: the
    reference's (detached here). Equal inputs give exactly 0.
    """
    if ref_log_probs.shape != log_probs.shape:
        raise ValueError(f"reference log-probabilities must be {tuple(log_probs.shape)}; "
                         f"got {tuple(ref_log_probs.shape)}")
    return (log_probs.exp() * (log_probs - ref_log_probs.detach())).sum(1)


@torch.no_grad()
def labelling_log_ratio(
    log_probs: torch.Tensor,
    ref_log_probs: torch.Tensor,
    samples: torch.Tensor,
    gt: torch.Tensor,
    ignore_index: int = 255,
) -> torch.Tensor:
    """``[B, k]``: ``log P(y_ij) - log Q(y_ij) = sum_{p in V_i} log pi_p(y_ijp) - log q_p(y_ijp)``.

    The log-ratio of the whole sampled labelling (a sum over the valid pixels: the policy is
    their product), detached. ``E_{y ~ P}`` of it is the exact ``KL(P || Q)`` of the image,
    ``sum_{p in V_i} KL_p``; as a reward penalty it has to depend on the sample (a penalty
    that does not has zero expected policy gradient), hence this sampled form.
    """
    diff = (log_probs - ref_log_probs).gather(1, samples.long())  # [B, k, H, W]
    return (diff * valid_pixels(gt, ignore_index).unsqueeze(1)).sum((-2, -1))
