"""The reward objective: settings + pure functions -> (loss, diagnostics) for one batch.

This is what the MMSeg reward head calls from its ``loss()``. It holds the only state
of the method (a stateful baseline's, the EMA, and the batch kept for the epochs of the
clipped surrogate) and is not an ``nn.Module``.

The loss of a batch is a sum of per-image terms, each picked from a table:

- the policy term of the estimator (``ESTIMATORS``): ``reinforce`` (REINFORCE, or the
  clipped surrogate when ``settings.clipped``) or ``reward_weighted_ce``;
- the regularisers whose coefficient is set (``REGULARIZERS``): the exact per-pixel KL to
  the start model (``kl_coef``, ``kl_in: loss``) and the entropy bonus (``entropy_coef``).

The KL penalty in the reward (``kl_in: reward``) enters the rewards before the baseline.

Several epochs on one batch (``epochs_per_batch`` E >= 2, the clipped surrogate): the
runner calls the objective once per batch as usual (epoch 1: it draws the labellings,
rewards them, forms the advantages and keeps them with the sampling policy's
log-probabilities in :class:`Rollout`), steps the optimizer, then for epochs 2..E runs the
model's forward pass on the *same* batch again and calls :meth:`RewardObjective.replay`
with the new logits, stepping the optimizer after each. Nothing is drawn again and the
reference logits given on epoch 1 are kept. A new batch before the E epochs are done is an
error, so a runner that does not run the epochs fails instead of silently running REINFORCE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from rewardsweep.errors import ConfigError
from rewardsweep.reward import baselines
from rewardsweep.reward.estimators import (
    greedy_labelling,
    log_policy,
    reinforce_per_image,
    reward_weighted_ce_weights,
    sample_labellings,
    sample_log_probs,
    weighted_cross_entropy,
)
from rewardsweep.reward.miou import per_image_miou
from rewardsweep.reward.regularizers import entropy_map, kl_map, labelling_log_ratio, per_image_mean
from rewardsweep.reward.settings import RewardSettings
from rewardsweep.reward.surrogate import clipped_surrogate_from_log_probs

__all__ = ["BatchTerms", "ESTIMATORS", "REGULARIZERS", "Regularizer", "RewardObjective", "Rollout"]


@dataclass
class BatchTerms:
    """What one call computed, kept for the treatment probe (``runners/probe.py``).

    ``per_image_loss`` ``[B]`` (with graph; the loss is its mean) and ``valid`` ``[B]``;
    ``terms``: the same split by source (``policy``, ``kl``, ``entropy``), each ``[B]``
    with graph and already multiplied by its coefficient; they sum to ``per_image_loss``.
    """

    per_image_loss: torch.Tensor
    valid: torch.Tensor
    logits: torch.Tensor | None = None  # detached, with the labels, only when ``keep_logits`` is set
    labels: torch.Tensor | None = None
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Rollout:
    """One batch's draws, fixed through its epochs (the clipped surrogate).

    ``samples`` ``[B, k, H, W]``, ``advantages`` ``[B, k]``, ``valid`` ``[B]``,
    ``old_log_probs`` ``[B, k, H, W]`` (``log pi_old`` of the samples), ``old_log_policy``
    ``[B, C, H, W]`` (the sampling policy's log-softmax, detached: the exact KL between
    epochs), ``ref_log_policy`` ``[B, C, H, W]`` or None (the start model's: the KL term);
    ``batch_stats``: epoch 1's reward statistics (every epoch reports them, so each step's
    diagnostics have the same keys); ``epochs_done`` counts the calls that used it.
    """

    gt: torch.Tensor
    samples: torch.Tensor
    advantages: torch.Tensor
    valid: torch.Tensor
    old_log_probs: torch.Tensor
    old_log_policy: torch.Tensor
    ref_log_policy: torch.Tensor | None
    batch_stats: dict[str, float] = field(default_factory=dict)  # epoch 1's reward statistics
    epochs_done: int = 1


@dataclass(frozen=True)
class Regularizer:
    """A loss term of the policy alone: its coefficient under the settings (0: off), its
    exact per-pixel map ``[B, H, W]`` from (log-policy, reference log-policy), and its stat."""

    coef: Callable[[RewardSettings], float]
    pixel_map: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    stat: str


REGULARIZERS: dict[str, Regularizer] = {
    # + beta * mean_{p in V_i} KL(pi_p || q_p)
    "kl": Regularizer(lambda s: s.kl_loss_coef, lambda logp, ref: kl_map(logp, ref), "kl_start"),
    # - alpha * mean_{p in V_i} H(pi_p): a bonus, so the coefficient enters negated
    "entropy": Regularizer(lambda s: -s.entropy_bonus, lambda logp, ref: entropy_map(logp), "entropy"),
}


def _mean_std(x: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """Mean and unbiased std of ``x`` over ``mask`` (0.0 when there is nothing to average)."""
    vals = x.detach().masked_select(mask.expand_as(x)).double()
    if vals.numel() == 0:
        return 0.0, 0.0
    std = vals.std().item() if vals.numel() >= 2 else 0.0
    return vals.mean().item(), std


def _valid_mean(x: torch.Tensor, valid: torch.Tensor) -> float:
    """Mean of a per-image value ``[B]`` over the valid images (0.0 if none)."""
    return _mean_std(x, valid)[0]


class RewardObjective:
    """``objective(logits, gt, generator=None, ref_logits=None) -> (loss, stats)``.

    ``logits``: ``[B, C, H, W]`` already resized to the label size; ``gt``: ``[B, H, W]``;
    ``ref_logits``: the start model's logits for the same batch ``[B, C, H, W]`` (needed
    when ``settings.needs_reference``; detached here). ``stats`` holds python floats
    ``reward_mean``, ``reward_std``, ``advantage_mean``, ``advantage_std`` over the valid
    images (and their samples; the reward is the mIoU, before any KL penalty); for
    ``reward_weighted_ce`` the reward is each image's greedy mIoU and the "advantage" its
    weight w_i. Per knob, also: ``constant_group_share`` (k >= 2: share of valid images
    whose k rewards are all equal), ``kl_start`` and ``entropy`` (exact, nats per pixel,
    mean over valid images, when their knob is on; ``kl_start`` in either KL form), and with
    the clipped surrogate
    ``clip_fraction``, ``ratio_min``, ``ratio_max``, ``kl_old`` and ``epoch`` (1..E; see
    :meth:`replay`, whose stats repeat epoch 1's reward statistics).
    ``class_weights=None`` takes them from ``settings`` (None if it has none).
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
        self.rollout: Rollout | None = None
        self.keep_logits = False  # the probe sets it for the steps it measures

    @property
    def epochs(self) -> int:
        """Gradient steps the runner must take on each batch (``replay`` after the first)."""
        return self.settings.epochs

    # ------------------------------------------------------------------ one batch
    def __call__(
        self,
        logits: torch.Tensor,
        gt: torch.Tensor,
        generator: torch.Generator | None = None,
        ref_logits: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        gt = self._check(logits, gt)
        if self.rollout is not None and self.rollout.epochs_done < self.epochs:
            raise RuntimeError(
                f"epochs_per_batch={self.epochs} but the previous batch ran {self.rollout.epochs_done} "
                f"epoch(s): the runner must call replay() {self.epochs - 1} times per batch")
        self.rollout = None
        ref = self._reference(logits, ref_logits)
        cw = None if self.class_weights is None else self.class_weights.to(logits.device)
        # the per-pixel log-policy, once for every term that needs it (with gradient)
        needs = self.settings.estimator == "reinforce" or any(r.coef(self.settings) for r in REGULARIZERS.values())
        logp = log_policy(logits) if needs else None
        policy, valid, stats = ESTIMATORS[self.settings.estimator](self, logits, logp, gt, cw, generator, ref)
        return self._finish(logits, logp, gt, ref, policy, valid, stats)

    def replay(self, logits: torch.Tensor, ref_logits: torch.Tensor | None = None,
               gt: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Epochs 2..E of the kept batch: the clipped-surrogate loss of the current ``logits``
        ``[B, C, H, W]`` (the model's forward pass on the same batch again) against the
        samples, advantages and old log-probabilities drawn on epoch 1.

        ``ref_logits`` is not needed (the epoch-1 reference is kept); if given it replaces it.
        ``gt`` (optional): the batch's labels as the runner has them, checked against the kept
        batch's (a runner that replays another batch fails here).
        Stats: ``clip_fraction``, ``ratio_min``, ``ratio_max`` (:func:`surrogate.ratio_diagnostics`),
        ``kl_old`` (exact per-pixel ``KL(pi_old || pi)``, mean over valid images), ``epoch``
        (2..E), and ``kl_start`` / ``entropy`` when their term is on.
        """
        r = self.rollout
        if r is None or not self.settings.clipped:
            raise RuntimeError("replay() needs a batch drawn by a call with epochs_per_batch >= 2 and clip_range")
        if r.epochs_done >= self.epochs:
            raise RuntimeError(f"the batch already ran its {self.epochs} epochs (epochs_per_batch)")
        self._check(logits, r.gt)
        if gt is not None and not torch.equal(self._check(logits, gt), r.gt):
            raise ValueError("replay() got another batch's labels: epochs 2..E must run on the batch of epoch 1")
        ref = r.ref_log_policy if ref_logits is None else self._reference(logits, ref_logits)
        r.epochs_done += 1
        cw = None if self.class_weights is None else self.class_weights.to(logits.device)
        logp = log_policy(logits)
        policy, stats = self._clipped(sample_log_probs(logits, r.samples, logp), logp, r, cw)
        stats = {**r.batch_stats, **stats, "epoch": float(r.epochs_done)}
        return self._finish(logits, logp, r.gt, ref, policy, r.valid, stats)

    # ------------------------------------------------------------------ estimators
    def _reinforce(self, logits, logp, gt, cw, generator, ref):
        s, C, ignore = self.settings, self.num_classes, self.ignore_index
        samples = sample_labellings(logits, s.samples, generator)
        with torch.no_grad():
            R, valid = per_image_miou(samples, gt, C, ignore)  # [B, k]
            valid = valid[:, 0]  # validity depends on the labels only
            R_used = R
            if s.kl_reward_coef:
                R_used = R - s.kl_reward_coef * labelling_log_ratio(logp.detach(), ref, samples, gt, ignore)
            inputs = baselines.BaselineInputs(
                R_used, valid, s.baseline_params(), self.baseline_state,
                lambda: per_image_miou(greedy_labelling(logits), gt, C, ignore, check=False)[0])
            b = self.baseline.compute(inputs)
            # a centred baseline gives an image whose rewards are all equal A = 0 exactly
            zero = baselines.constant_groups(R_used, valid) if self.baseline.centred else None
            A = baselines.advantages(R_used, b, valid, scale=s.advantage_scale, zero=zero)
        stats = self._stats(R, A, valid.unsqueeze(-1))
        if s.samples >= 2:
            stats["constant_group_share"] = _valid_mean(baselines.constant_groups(R, valid).float(), valid)
        if s.clipped:
            logp_y = sample_log_probs(logits, samples, logp)  # epoch 1: pi = pi_old, every ratio is 1
            self.rollout = Rollout(gt, samples, A, valid, logp_y.detach(), logp.detach(), ref, dict(stats))
            policy, clip_stats = self._clipped(logp_y, None, self.rollout, cw)
            stats.update(clip_stats, epoch=1.0)
        else:
            policy = reinforce_per_image(logits, gt, samples, A, valid, cw, self.ignore_index, logp)
        if self.baseline_state is not None:
            self.baseline_state.update(baselines.batch_mean(R_used, valid))
        return policy, valid, stats

    def _clipped(self, logp_y, logp, r: Rollout, cw) -> tuple[torch.Tensor, dict[str, float]]:
        """The surrogate of the samples' log-probs ``logp_y`` ``[B, k, H, W]``; ``logp``: the
        current log-policy ``[B, C, H, W]``, None on epoch 1 (where kl_old is 0)."""
        policy, diag = clipped_surrogate_from_log_probs(logp_y, r.old_log_probs, r.advantages,
                                                        self.settings.clip_range, r.gt, r.valid, cw, self.ignore_index)
        stats = {k: float(v) for k, v in diag.items()}
        stats["kl_old"] = 0.0
        if logp is not None:
            with torch.no_grad():
                kl_old = per_image_mean(kl_map(r.old_log_policy, logp.detach()), r.gt, self.ignore_index)
            stats["kl_old"] = _valid_mean(kl_old, r.valid)
        return policy, stats

    def _reward_weighted_ce(self, logits, logp, gt, cw, generator, ref):
        with torch.no_grad():
            m, valid = per_image_miou(greedy_labelling(logits), gt, self.num_classes, self.ignore_index)
            w = reward_weighted_ce_weights(m, self.settings.beta, valid)
        policy = w.to(torch.float32) * weighted_cross_entropy(logits, gt, cw, self.ignore_index)
        return policy, valid, self._stats(m, w, valid)

    # ------------------------------------------------------------------ shared
    def _finish(self, logits, logp, gt, ref, policy, valid, stats):
        """Add the regularisers to the policy term; keep the batch's terms; (loss, stats)."""
        terms = {"policy": policy}
        for name, reg in REGULARIZERS.items():
            coef = reg.coef(self.settings)
            if coef:
                value = per_image_mean(reg.pixel_map(logp, ref), gt, self.ignore_index)
                terms[name] = coef * value
                stats[reg.stat] = _valid_mean(value, valid)
        if self.settings.kl_reward_coef:  # the exact KL as a diagnostic (the loss form reports its term's)
            with torch.no_grad():
                kl = per_image_mean(kl_map(logp.detach(), ref), gt, self.ignore_index)
            stats["kl_start"] = _valid_mean(kl, valid)
        per_image = sum(terms.values())
        self.last_batch = BatchTerms(per_image, valid, *self._kept(logits, gt), terms=terms)
        return per_image.mean(), stats

    def _check(self, logits, gt) -> torch.Tensor:
        if logits.dim() != 4 or logits.shape[1] != self.num_classes:
            raise ValueError(f"logits must be [B, {self.num_classes}, H, W]; got {tuple(logits.shape)}")
        if gt.dim() == 4 and gt.shape[1] == 1:  # MMSeg stacks gt_sem_seg as [B, 1, H, W]
            gt = gt.squeeze(1)
        if gt.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(f"gt must be [B, H, W] = {tuple(logits.shape[:1] + logits.shape[2:])}; got {tuple(gt.shape)}")
        return gt

    def _reference(self, logits, ref_logits) -> torch.Tensor | None:
        """The start model's log-policy ``[B, C, H, W]`` (detached), or None when not needed."""
        if not self.settings.needs_reference:
            return None
        if ref_logits is None:
            raise ValueError("kl_coef is set: the objective needs the start model's logits (ref_logits) "
                             "for the same batch")
        if ref_logits.shape != logits.shape:
            raise ValueError(f"ref_logits must be {tuple(logits.shape)}; got {tuple(ref_logits.shape)}")
        return log_policy(ref_logits.detach())

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
        """The objective's state (a stateful baseline's, e.g. the EMA), for checkpoints.

        A kept rollout is not saved: checkpoint between batches, after its last epoch."""
        return {"ema": None if self.baseline_state is None else self.baseline_state.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.baseline_state is not None and state.get("ema") is not None:
            self.baseline_state.load_state_dict(state["ema"])


ESTIMATORS: dict[str, Callable] = {
    "reinforce": RewardObjective._reinforce,
    "reward_weighted_ce": RewardObjective._reward_weighted_ce,
}
"""estimator name -> ``(objective, logits, log-policy or None, gt, class_weights, generator,
reference log-policy or None) -> (policy term [B], valid [B], stats)``."""
