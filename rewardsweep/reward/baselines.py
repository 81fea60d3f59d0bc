"""Baselines and advantages for the ``reinforce`` estimator (``docs/method.md``).

Rewards ``R`` have shape ``[..., B, k]`` (images x samples; the leading dims are free, the
objective uses ``[B, k]``); ``valid`` is bool ``[..., B]``. Every function returns a
baseline that broadcasts to ``R``; nothing here needs gradients (all inputs are rewards).

- ``none``: ``b = 0``.
- ``batch_loo(R, coef)``: ``b_i = coef * mean_{i' != i} Rbar_i'`` where ``Rbar_i'`` is the
  mean reward of image ``i'`` over its k samples; only valid images count as "others".
- ``sample_loo(R)``: ``b_ij = mean_{j' != j} R_ij'`` (k >= 2).
- ``group_mean(R)``: ``b_ij = mean_{j'} R_ij'``, the sample's own reward included (GRPO's
  mean, k >= 2). Its advantage is exactly ``(k - 1) / k`` times sample_loo's, so its
  expected gradient is the unbiased one shrunk by that factor.
- ``greedy(R_greedy)``: ``b_i = R(argmax z_i, g_i)`` (self-critical).
- ``EmaBaseline``: exponential moving average of past batch-mean rewards, updated after
  use. On the very first batch there is no past: the baseline is that batch's own mean
  reward (detached), which then also initialises the average. That one step shrinks
  the expected gradient by a factor ``1 - 1/(number of valid samples in the batch)``
  (each sample is part of its own baseline); every later step is unbiased. We prefer
  this to ``b = 0`` on step one, which would make the first update a baseline-free
  REINFORCE step with a much larger variance.

``advantages`` forms ``A = R - b``, sets it to 0 for invalid images, and optionally divides
by a std (+eps): the batch's std of A (``scale="batch"``) or each image's std of its k
rewards (``scale="group"``, GRPO). ``constant_groups`` finds the images whose k samples all
scored the same; under a baseline that centres each image (``centred`` in the registry)
their advantage is exactly 0 (float rounding of the mean would otherwise leave ~1e-8, which
a group std of ~1e-8 turns into an advantage of order 1).

``KINDS`` is the registry the rest of the project reads: the trial-config schema takes
the names, which hyperparameters each kind uses and what it needs from it; the objective
computes ``b`` through it. A new baseline is one function and one entry here (plus its
hyperparameter's field in ``reward/settings.py`` if it has one). The functions use only
tensor methods, so the schema can import this module without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch

__all__ = [
    "KINDS",
    "BaselineKind",
    "BaselineInputs",
    "EmaBaseline",
    "advantages",
    "batch_loo",
    "batch_mean",
    "constant_groups",
    "greedy",
    "group_mean",
    "none",
    "sample_loo",
]


def _valid_like(R: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    if valid is None:
        return R.new_ones(R.shape[:-1]).bool()
    if valid.shape != R.shape[:-1]:
        raise ValueError(f"valid must have shape {tuple(R.shape[:-1])}; got {tuple(valid.shape)}")
    return valid


def none(R: torch.Tensor) -> torch.Tensor:
    """``b = 0``."""
    return R.new_zeros(R.shape)


def batch_loo(R: torch.Tensor, coef: float = 1.0, valid: torch.Tensor | None = None) -> torch.Tensor:
    """``b_i = coef * mean over the other valid images i' of their mean reward``; ``[..., B, 1]``.

    An image whose batch has no other valid image gets ``b_i = 0``. Other images' samples
    are independent of image i's samples, so the estimator stays unbiased for any coef.
    """
    if R.dim() < 2:
        raise ValueError(f"R must be [..., B, k]; got shape {tuple(R.shape)}")
    if R.shape[-2] < 2:
        raise ValueError("batch_loo needs at least 2 images per batch")
    v = _valid_like(R, valid).to(R.dtype)
    per_image = R.mean(-1) * v
    others_sum = per_image.sum(-1, keepdim=True) - per_image
    others_n = v.sum(-1, keepdim=True) - v
    b = (others_sum / others_n.clamp_min(1)).where(others_n > 0, 0.0)
    return (coef * b).unsqueeze(-1)


def sample_loo(R: torch.Tensor) -> torch.Tensor:
    """``b_ij = mean_{j' != j} R_ij'`` (leave-one-out over the k samples of the same image)."""
    k = R.shape[-1]
    if k < 2:
        raise ValueError(f"sample_loo needs at least 2 samples per image; got k={k}")
    return (R.sum(-1, keepdim=True) - R) / (k - 1)


def group_mean(R: torch.Tensor) -> torch.Tensor:
    """``b_ij = mean_{j'} R_ij'`` over all k samples of the image, its own included (GRPO); ``[..., B, 1]``."""
    k = R.shape[-1]
    if k < 2:
        raise ValueError(f"group_mean needs at least 2 samples per image; got k={k}")
    return R.mean(-1, keepdim=True)


def greedy(R_greedy: torch.Tensor) -> torch.Tensor:
    """Self-critical baseline: ``b_i = R(argmax z_i, g_i)`` given as ``[..., B]``; returns ``[..., B, 1]``."""
    return R_greedy.unsqueeze(-1)


def batch_mean(R: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor | None:
    """Mean reward over every sample of every valid image (0-dim tensor), or None if none is valid."""
    v = _valid_like(R, valid)
    n = int(v.sum().item()) * R.shape[-1]
    if n == 0:
        return None
    return (R * v.unsqueeze(-1).to(R.dtype)).sum() / n


class EmaBaseline:
    """EMA of past batch-mean rewards; call :meth:`baseline`, then :meth:`update` after use."""

    def __init__(self, decay: float = 0.9, value: float | None = None):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must lie in (0, 1); got {decay}")
        self.decay = float(decay)
        self.value = None if value is None else float(value)

    def baseline(self, R: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """The current EMA as a tensor that broadcasts to ``R`` (first batch: its own mean)."""
        if self.value is not None:
            return R.new_full((1,) * R.dim(), self.value)
        m = batch_mean(R, valid)
        if m is None:
            return R.new_zeros((1,) * R.dim())
        return m.detach().reshape((1,) * R.dim())

    def update(self, batch_mean: float | torch.Tensor | None) -> None:
        """Fold one batch's mean reward in (``None``: a batch without valid images, skipped)."""
        if batch_mean is None:
            return
        x = float(batch_mean)
        self.value = x if self.value is None else self.decay * self.value + (1.0 - self.decay) * x

    def state_dict(self) -> dict:
        return {"decay": self.decay, "value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.value = None if state["value"] is None else float(state["value"])

    def __repr__(self) -> str:
        return f"EmaBaseline(decay={self.decay}, value={self.value})"


def constant_groups(R: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """bool ``[..., B]``: valid images whose k >= 2 samples all have exactly the same reward."""
    v = _valid_like(R, valid)
    if R.shape[-1] < 2:
        return v.new_zeros(v.shape)
    return (R.amax(-1) == R.amin(-1)) & v


def _batch_std(A: torch.Tensor, R: torch.Tensor, v: torch.Tensor, eps: float) -> torch.Tensor:
    """The (unbiased) std of A over the samples of valid images + eps; 1 with fewer than two."""
    vals = A.masked_select(v.expand_as(A))
    return vals.std() + eps if vals.numel() >= 2 else A.new_ones(())


def _group_std(A: torch.Tensor, R: torch.Tensor, v: torch.Tensor, eps: float) -> torch.Tensor:
    """Each image's (unbiased) std of its k rewards + eps ``[..., B, 1]`` (GRPO)."""
    if R.shape[-1] < 2:
        raise ValueError(f"group scaling needs at least 2 samples per image; got k={R.shape[-1]}")
    return R.detach().std(-1, keepdim=True) + eps


SCALES: dict[str, Callable[..., Any]] = {
    "none": lambda A, R, v, eps: A.new_ones(()),
    "batch": _batch_std,
    "group": _group_std,
}
"""What ``advantages`` divides A by (``normalize_advantage``: false, true, group)."""


def advantages(
    R: torch.Tensor,
    b: torch.Tensor | float,
    valid: torch.Tensor | None = None,
    normalize: bool = False,
    eps: float = 1e-8,
    scale: str | None = None,
    zero: torch.Tensor | None = None,
) -> torch.Tensor:
    """``A = (R - b) / s``, 0 for invalid images and for the images in ``zero``, detached.

    ``R`` ``[..., B, k]``, ``valid`` and ``zero`` bool ``[..., B]``; returns ``[..., B, k]``.
    ``scale`` (default: ``"batch"`` if ``normalize`` else ``"none"``) picks ``s`` from ``SCALES``:

    - ``none``: 1;
    - ``batch``: the (unbiased) std of A over the samples of valid images (of the whole
      tensor) + eps; with fewer than two such samples A is left as it is;
    - ``group``: each image's (unbiased) std of its k rewards + eps (GRPO; k >= 2). An image
      whose rewards are all equal has std 0: give it in ``zero`` (its A is then 0).
    """
    scale = scale or ("batch" if normalize else "none")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {tuple(SCALES)}; got {scale!r}")
    v = _valid_like(R, valid).unsqueeze(-1)
    keep = v if zero is None else v & ~zero.unsqueeze(-1)
    A = (R - b).detach().where(keep, 0.0)
    return (A / SCALES[scale](A, R, v, eps)).where(keep, 0.0)


# --------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineInputs:
    """What a baseline may use for one batch: rewards ``R`` ``[B, k]``, ``valid`` ``[B]``,
    the kind's hyperparameters, the per-trial state, and the greedy labelling's reward
    (computed only when asked for)."""

    R: torch.Tensor
    valid: torch.Tensor
    params: dict[str, Any]
    state: Any
    greedy_reward: Callable[[], torch.Tensor]


@dataclass(frozen=True)
class BaselineKind:
    """One baseline: how ``b`` is computed and what the schema must know about it."""

    compute: Callable[[BaselineInputs], torch.Tensor]
    uses: tuple[str, ...] = ()          # hyperparameters it reads (fields of the ``baseline`` group)
    min_samples: int = 1                # labellings per image it needs (reinforce)
    min_batch: int = 1                  # images per batch it needs
    centred: bool = False               # an image's k advantages sum to 0 (group scaling needs it)
    weighted_ce: bool = False           # reward_weighted_ce may use it (beta = coef if it uses coef)
    state: Callable[[dict[str, Any]], Any] | None = None   # per-trial state from the hyperparameters
    summary: str = ""                   # one line for the docs


KINDS: dict[str, BaselineKind] = {
    "none": BaselineKind(lambda x: none(x.R), weighted_ce=True, summary="b = 0"),
    "batch_loo": BaselineKind(lambda x: batch_loo(x.R, x.params["coef"], x.valid), uses=("coef",),
                              min_batch=2, weighted_ce=True,
                              summary="coef x the other images' mean reward"),
    "sample_loo": BaselineKind(lambda x: sample_loo(x.R), min_samples=2, centred=True,
                               summary="the other samples' mean reward of the same image"),
    "group_mean": BaselineKind(lambda x: group_mean(x.R), min_samples=2, centred=True,
                               summary="the mean reward of the image's k samples, its own included (GRPO)"),
    "greedy": BaselineKind(lambda x: greedy(x.greedy_reward()), summary="the argmax labelling's reward"),
    "ema": BaselineKind(lambda x: x.state.baseline(x.R, x.valid), uses=("decay",),
                        state=lambda p: EmaBaseline(p["decay"]),
                        summary="moving average of past batch-mean rewards"),
}
