"""Is a configuration reward tuning? Flags from the treatment probes of its trials.

A reward arm whose reward term is a sliver of the step (aux cross-entropy and weight decay
do the moving), whose step is too small to change a float32 weight, whose reward did not
rise by a meaningful amount, or whose model collapsed, does not measure reward
optimisation, whatever its verdict against the control says. Each rule is a small pure
function of per-seed arrays and comes with the numbers that raised it (an effect size and
its interval, not only a p-value); the thresholds live here and only here (docs/method.md,
"Is my reward arm reward tuning?", says why each has its value).

The rise has three outcomes (:func:`rise_outcome`): it **rose** (the interval is above 0),
it **did not rise** (the whole interval is below :data:`MIN_RISE`), or there are **too few
seeds to tell**. The intervals of a study's reward configurations are simultaneous
(Bonferroni: each at level 1 - alpha/m), so every outcome of a study holds together with
probability 1 - alpha, however many configurations it has.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

__all__ = ["KNOB_DIAGNOSTICS", "add_knob_diagnostics", "STEP_SHARE_MIN", "MIN_RISE", "COLLAPSE_POINTS", "RISE_ALPHA", "FLOAT32_RESOLUTION",
           "ROSE", "DID_NOT_RISE", "UNRESOLVED", "TREATMENT_KEYS", "share_flag", "resolution_flag",
           "rise_interval", "rise_outcome", "rise_flag", "collapse_flag", "treatment_flags",
           "paired_interval"]

# The reward term's part of the step the optimizer takes (reward + other loss terms +
# weight-decay pull, each after the optimizer): below this the arm mostly trains on
# something else (9x more of its step is not the reward).
STEP_SHARE_MIN = 0.10
# A step smaller than this, relative to the weights' norm, is below float32 resolution:
# the weights do not change at all (machine epsilon of float32, 2**-23).
FLOAT32_RESOLUTION = float(np.finfo(np.float32).eps)
# The smallest rise of the sampled reward (per-image mIoU, a fraction) that counts as
# optimising it: an arm whose interval lies wholly below it "did not rise". Chosen from
# measurements (docs/method.md): a tenth of the report's default effect of interest
# (0.5 points = 0.005); arms at 10x and 100x smaller learning rates rise less than this
# and move val mIoU by nothing measurable against the no-op, the main job's arms rise 3-10x more.
MIN_RISE = 0.0005
# A trial whose val mIoU ends this many points (x100) below its start has collapsed.
COLLAPSE_POINTS = 3.0
# Family-wise level of the rise intervals over a study's reward configurations.
RISE_ALPHA = 0.05
ROSE, DID_NOT_RISE, UNRESOLVED = "rose", "did not rise", "too few seeds to tell"
# The record's ``treatment`` keys the report reads (runners/probe.py writes them). Records
# written by 0.3 and earlier have reward_share (a share of gradient norms) and signal_norm (a
# clipped, biased estimate) instead of step_share, reward_step and signal_dot: the first is
# still read as the share, the second is ignored.
TREATMENT_KEYS = ("reward_step", "other_step", "wd_step", "step_share", "update_step", "weight_move",
                  "reward_share", "reward_grad_norm", "other_grad_norm", "wd_norm", "signal_dot",
                  "signal_norm", "halves_cos", "reward_rise", "reward_rise_se", "heldout_gain",
                  "heldout_gain_se", "heldout_images", "probes")

# The estimator knobs' diagnostics the report shows beside the flags (a trial record's
# ``diagnostics_summary``: means over the last 10% of steps, runners/hooks.py), when a
# configuration has them: KL to the start model and entropy (nats per pixel), the clipped
# surrogate's clip fraction and ratio range (epochs 2..E), the share of images whose k
# rewards were all equal (zero advantage under group normalisation).
KNOB_DIAGNOSTICS = ("kl_start", "entropy", "clip_fraction", "ratio_min", "ratio_max", "constant_group_share")


def _finite(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[np.isfinite(x)]


def share_flag(share, of: str = "the step") -> str | None:
    """``"reward term 0.6% of the step"`` when the mean share is below :data:`STEP_SHARE_MIN`.
    ``of``: what the share is of (records of 0.3 and earlier: "the update's gradient norm")."""
    share = _finite(share)
    if share.size == 0 or share.mean() >= STEP_SHARE_MIN:
        return None
    return f"reward term {100 * share.mean():.2g}% of {of}"


def resolution_flag(reward_step) -> str | None:
    """``"reward step 4e-13 of the weights per step (below float32 resolution)"``."""
    step = _finite(reward_step)
    if step.size == 0 or step.mean() >= FLOAT32_RESOLUTION:
        return None
    return f"reward step {step.mean():.1g} of the weights per step (below float32 resolution)"


def rise_interval(rise, rise_se, confidence: float = 1 - RISE_ALPHA) -> tuple[float, float, float, int]:
    """``(mean, low, high, seeds)`` of the reward rise across seeds: a Student-t interval at
    ``confidence``; all seeds equal: the point; one seed: a normal interval from its own
    (within-trial) SE, which leaves out the seed-to-seed spread."""
    rise, se = np.asarray(rise, dtype=float), np.asarray(rise_se, dtype=float)
    ok = np.isfinite(rise)
    rise, se = rise[ok], se[ok]
    n = int(rise.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(rise.mean())
    if n >= 2:
        sd = float(rise.std(ddof=1))
        if sd == 0:
            return mean, mean, mean, n
        low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sd / math.sqrt(n))
        return mean, float(low), float(high), n
    if np.isfinite(se[0]) and se[0] >= 0:
        half = float(stats.norm.ppf(0.5 + confidence / 2)) * float(se[0])
        return mean, mean - half, mean + half, 1
    return mean, math.nan, math.nan, 1


def rise_outcome(low: float, high: float) -> str:
    """:data:`DID_NOT_RISE` when the whole interval is below :data:`MIN_RISE` (a rise too small
    to count, or none), :data:`ROSE` when it is above 0, else :data:`UNRESOLVED`."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return UNRESOLVED
    if high < MIN_RISE:
        return DID_NOT_RISE
    if low > 0:
        return ROSE
    return UNRESOLVED


def rise_flag(mean: float, low: float, high: float) -> str | None:
    """``"reward did not rise (+0.0000 [-0.0001, +0.0001] < 0.0005)"`` for :data:`DID_NOT_RISE`."""
    if rise_outcome(low, high) != DID_NOT_RISE:
        return None
    return f"reward did not rise ({mean:+.4f} [{low:+.4f}, {high:+.4f}] < {MIN_RISE:g})"


def collapse_flag(delta) -> str | None:
    """``"collapsed: final mIoU 12.3 points below start (2 of 5 seeds)"``."""
    delta = _finite(delta)
    bad = delta < -COLLAPSE_POINTS / 100
    if not bad.any():
        return None
    return (f"collapsed: final mIoU {-100 * delta[bad].min():.1f} points below start "
            f"({int(bad.sum())} of {delta.size} seeds)")


def treatment_flags(share, reward_step, rise, delta, share_of: str = "the step") -> list[str]:
    """Every flag a configuration raises (empty: it is reward tuning), most serious first.
    ``rise``: ``(mean, low, high)`` from :func:`rise_interval` at the study's level."""
    flags = [collapse_flag(delta), share_flag(share, share_of), resolution_flag(reward_step), rise_flag(*rise)]
    return [f for f in flags if f]


def paired_interval(a, b, confidence: float) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)`` of ``a - b`` (same seeds, NaN pairs dropped): a t-interval."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(d.mean())
    if d.size < 2:
        return mean, math.nan, math.nan, 1
    sd = float(d.std(ddof=1))
    if sd == 0:
        return mean, mean, mean, int(d.size)
    low, high = stats.t.interval(confidence, d.size - 1, loc=mean, scale=sd / math.sqrt(d.size))
    return mean, float(low), float(high), int(d.size)


def add_knob_diagnostics(table, trials) -> None:
    """``table`` (one row per configuration) gains :data:`KNOB_DIAGNOSTICS`: the mean over a
    configuration's finished trials of their ``diag.<key>`` column (NaN where it has none)."""
    for key in KNOB_DIAGNOSTICS:
        table[key] = np.nan
        col = f"diag.{key}"
        if col not in trials:
            continue
        fin = trials[trials["status"] == "finished"]
        means = fin.groupby("config_id")[col].mean()
        table[key] = table["config_id"].map(means).astype(float)
