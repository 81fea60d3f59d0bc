"""The reward objective: settings + pure functions -> (loss, diagnostics) for one batch.

This is what the MMSeg reward head calls from its ``loss()``. It holds the only state
of the method (a stateful baseline's, the EMA) and is not an ``nn.Module``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rewardsweep.errors import ConfigError
from rewardsweep.reward import baselines
from rewardsweep.reward.estimators import (
    greedy_labelling,
    reinforce_per_image,
    reward_weighted_ce_weights,
    sample_labellings,
    weighted_cross_entropy,
)
from rewardsweep.reward.miou import per_image_miou
from rewardsweep.reward.settings import RewardSettings

__all__ = ["BatchTerms", "RewardObjective"]


@dataclass
class BatchTerms:
    """What one call computed, kept for the treatment probe (``runners/probe.py``).

    ``per_image_loss`` ``[B]`` (with graph; the loss is its mean) and ``valid`` ``[B]``.
    """

    per_image_loss: torch.Tensor
    valid: torch.Tensor
    logits: torch.Tensor | None = None  # detached, with the labels, only when ``keep_logits`` is set
    labels: torch.Tensor | None = None


def _mean_std(x: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """Mean and unbiased std of ``x`` over ``mask`` (0.0 when there is nothing to average)."""
    vals = x.detach().masked_select(mask.expand_as(x)).double()
    if vals.numel() == 0:
        return 0.0, 0.0
    std = vals.std().item() if vals.numel() >= 2 else 0.0
    return vals.mean().item(), std


class RewardObjective:
    """``objective(logits, gt, generator=None) -> (loss, stats)``.

    ``logits``: ``[B, C, H, W]`` already resized to the label size; ``gt``: ``[B, H, W]``.
    ``stats`` holds python floats ``reward_mean``, ``reward_std``, ``advantage_mean``,
    ``advantage_std`` over the valid images (and their samples); for
    ``reward_weighted_ce`` the reward is each image's greedy mIoU and the "advantage" its
    weight w_i. ``class_weights=None`` takes them from ``settings`` (None if it has none).
    ``last_batch`` holds the :class:`BatchTerms` of the latest call.
    """

    def __init__(
        self,
        settings: RewardSettings,
        num_classes: int,
        ignore_index: int = 255,
        class_weights: torch.Tensor | None = None,
    ):
        self.settings = settings
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        if class_weights is None:
            class_weights = settings.class_weight_tensor()
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
            if class_weights.shape != (self.num_classes,):
                raise ConfigError(
                    f"class_weights.counts: expected {self.num_classes} per-class values, "
                    f"got shape {tuple(class_weights.shape)}"
                )
        self.class_weights = class_weights
        self.baseline = baselines.KINDS[settings.baseline_kind]
        make_state = self.baseline.state if settings.estimator == "reinforce" else None
        self.baseline_state = make_state(settings.baseline_params()) if make_state else None
        self.last_batch: BatchTerms | None = None
        self.keep_logits = False  # the probe sets it for the steps it measures

    def __call__(
        self, logits: torch.Tensor, gt: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if logits.dim() != 4 or logits.shape[1] != self.num_classes:
            raise ValueError(f"logits must be [B, {self.num_classes}, H, W]; got {tuple(logits.shape)}")
        if gt.dim() == 4 and gt.shape[1] == 1:  # MMSeg stacks gt_sem_seg as [B, 1, H, W]
            gt = gt.squeeze(1)
        if gt.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(f"gt must be [B, H, W] = {tuple(logits.shape[:1] + logits.shape[2:])}; got {tuple(gt.shape)}")
        cw = None if self.class_weights is None else self.class_weights.to(logits.device)
        if self.settings.estimator == "reward_weighted_ce":
            return self._reward_weighted_ce(logits, gt, cw)
        return self._reinforce(logits, gt, cw, generator)

    def _reinforce(self, logits, gt, cw, generator):
        s, C, ignore = self.settings, self.num_classes, self.ignore_index
        samples = sample_labellings(logits, s.samples, generator)
        with torch.no_grad():
            R, valid = per_image_miou(samples, gt, C, ignore)  # [B, k]
            valid = valid[:, 0]  # validity depends on the labels only
            inputs = baselines.BaselineInputs(
                R, valid, s.baseline_params(), self.baseline_state,
                lambda: per_image_miou(greedy_labelling(logits), gt, C, ignore, check=False)[0])
            b = self.baseline.compute(inputs)
            A = baselines.advantages(R, b, valid, normalize=s.normalize_advantage)
        per_image = reinforce_per_image(logits, gt, samples, A, valid, cw, ignore)
        if self.baseline_state is not None:
            self.baseline_state.update(baselines.batch_mean(R, valid))
        self.last_batch = BatchTerms(per_image, valid, *self._kept(logits, gt))
        return per_image.mean(), self._stats(R, A, valid.unsqueeze(-1))

    def _reward_weighted_ce(self, logits, gt, cw):
        with torch.no_grad():
            m, valid = per_image_miou(greedy_labelling(logits), gt, self.num_classes, self.ignore_index)
            w = reward_weighted_ce_weights(m, self.settings.beta, valid)
        per_image = w.to(torch.float32) * weighted_cross_entropy(logits, gt, cw, self.ignore_index)
        self.last_batch = BatchTerms(per_image, valid, *self._kept(logits, gt))
        return per_image.mean(), self._stats(m, w, valid)

    def _kept(self, logits, gt) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return (logits.detach(), gt) if self.keep_logits else (None, None)

    @staticmethod
    def _stats(R, A, mask) -> dict[str, float]:
        reward_mean, reward_std = _mean_std(R, mask)
        adv_mean, adv_std = _mean_std(A, mask)
        return {
            "reward_mean": reward_mean,
            "reward_std": reward_std,
            "advantage_mean": adv_mean,
            "advantage_std": adv_std,
        }

    def state_dict(self) -> dict:
        """The objective's state (a stateful baseline's, e.g. the EMA), for checkpoints."""
        return {"ema": None if self.baseline_state is None else self.baseline_state.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.baseline_state is not None and state.get("ema") is not None:
            self.baseline_state.load_state_dict(state["ema"])
