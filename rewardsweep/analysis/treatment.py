"""Is a configuration reward tuning? Flags from the treatment probes of its trials.

A reward arm whose policy gradient is a sliver of its update (aux cross-entropy and weight
decay do the moving), whose reward does not rise, or whose model collapsed, does not
measure reward optimisation, whatever its verdict against the control says. Each flag is a
small pure function of per-seed arrays (rliable style) and comes with the numbers that
raised it; the thresholds live here and only here (docs/method.md explains them).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

__all__ = ["SHARE_MIN", "COLLAPSE_POINTS", "RISE_ALPHA", "TREATMENT_KEYS", "share_flag", "rise_flag",
           "collapse_flag", "treatment_flags"]

# The reward term is less than this share of the update's gradient norm (reward + other
# loss terms + weight-decay pull): the arm mostly trains on something else.
SHARE_MIN = 0.10
# A trial whose val mIoU ends this many points (x100) below its start has collapsed.
COLLAPSE_POINTS = 3.0
# One-sided level of "the reward rose" across seeds.
RISE_ALPHA = 0.05
# The record's ``treatment`` keys the report reads (runners/probe.py writes them).
TREATMENT_KEYS = ("reward_share", "reward_grad_norm", "other_grad_norm", "wd_norm", "signal_norm",
                  "halves_cos", "reward_rise", "reward_rise_se", "probes")


def _finite(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[np.isfinite(x)]


def share_flag(share) -> str | None:
    """``"reward term 0.6% of the update"`` when the mean share is below :data:`SHARE_MIN`."""
    share = _finite(share)
    if share.size == 0 or share.mean() >= SHARE_MIN:
        return None
    return f"reward term {100 * share.mean():.2g}% of the update"


def rise_p_value(rise, rise_se) -> float:
    """One-sided p of "the reward rose": a t-test across seeds; one seed: z from its own SE."""
    rise, se = np.asarray(rise, dtype=float), np.asarray(rise_se, dtype=float)
    ok = np.isfinite(rise)
    rise, se = rise[ok], se[ok]
    if rise.size >= 2:
        if np.ptp(rise) == 0:
            return 0.0 if rise[0] > 0 else 1.0
        return float(stats.ttest_1samp(rise, 0.0, alternative="greater").pvalue)
    if rise.size == 1 and np.isfinite(se[0]) and se[0] > 0:
        return float(stats.norm.sf(rise[0] / se[0]))
    return math.nan


def rise_flag(rise, rise_se) -> str | None:
    """``"reward did not rise (+0.0000 +- 0.0002)"`` (mean +- SE over seeds) unless p < RISE_ALPHA."""
    p = rise_p_value(rise, rise_se)
    if not math.isfinite(p) or p < RISE_ALPHA:
        return None
    values = _finite(rise)
    se = values.std(ddof=1) / math.sqrt(values.size) if values.size >= 2 else float(_finite(rise_se)[0])
    return f"reward did not rise ({values.mean():+.4f} +- {se:.4f})"


def collapse_flag(delta) -> str | None:
    """``"collapsed: final mIoU 12.3 points below start (2 of 5 seeds)"``."""
    delta = _finite(delta)
    bad = delta < -COLLAPSE_POINTS / 100
    if not bad.any():
        return None
    return (f"collapsed: final mIoU {-100 * delta[bad].min():.1f} points below start "
            f"({int(bad.sum())} of {delta.size} seeds)")


def treatment_flags(share, rise, rise_se, delta) -> list[str]:
    """Every flag a configuration raises (empty: it is reward tuning), most serious first."""
    flags = [collapse_flag(delta), share_flag(share), rise_flag(rise, rise_se)]
    return [f for f in flags if f]
