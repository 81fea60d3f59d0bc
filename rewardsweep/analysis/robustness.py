"""What a verdict about a mean rests on, in words, from the paired differences themselves.

No test of a mean holds its level for every distribution with few seeds (Bahadur & Savage
1956): a configuration that collapses on one seed in ten looks, on six seeds that happened not
to collapse, exactly like a clean improvement. So every claim ("beats"/"worse") is printed with
what the data show about the assumptions it needs (docs/report.md):

- the exact sign-flip test's p-value (valid for any distribution symmetric about 0): when it
  cannot reach the level the claim was made at, the claim rests on the normal tail alone;
- the skewness (G1) of the differences, and seeds that lie far from the rest;
- with no outlying seed, the collapse rate the seeds cannot rule out (1 - 0.05^(1/n)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rewardsweep.analysis import stats

SKEWED = 1.0        # |G1| above this: the differences are visibly skewed (reported, not a test)


@dataclass(frozen=True)
class Assumptions:
    n: int
    signflip_p: float          # two-sided exact sign-flip p-value (NaN: too many seeds to enumerate)
    skewness: float            # G1 (NaN with fewer than 3 seeds)
    outlying: int              # seeds far from the rest
    where: str = ""            # which ones ("seed 4"), when known

    @property
    def collapse_rate(self) -> float:
        """The collapse rate n seeds without one cannot rule out (NaN when one is seen)."""
        return float("nan") if self.outlying else stats.unseen_collapse_rate(self.n)

    def note(self, level: float) -> str:
        """One line: what a claim at two-sided ``level`` rests on."""
        parts = []
        if not stats.signflip_floor(self.n) <= level * (1 + 1e-9):
            parts.append(f"normal tail: {self.n} seeds cannot reach p < {level:.2g} without assuming normal "
                         f"differences (sign-flip p >= {stats.signflip_floor(self.n):.2g})")
        elif math.isfinite(self.signflip_p):
            held = "also" if self.signflip_p < level else "not"
            parts.append(f"sign-flip p {self.signflip_p:.2g} ({held} significant without assuming normality)")
        if math.isfinite(self.skewness):
            parts.append(f"skewness {self.skewness:+.1f}" + (" (skewed)" if abs(self.skewness) > SKEWED else ""))
        if self.outlying:
            parts.append(f"{self.outlying} outlying seed(s)" + (f" ({self.where})" if self.where else ""))
        elif self.n >= 1:
            parts.append(f"no collapse seen: a collapse rate up to {self.collapse_rate:.0%} is not ruled out")
        return "; ".join(parts)


def assumptions(diffs, seeds=None) -> Assumptions:
    """The diagnostics of one configuration's paired differences (1-D, seed order; ``seeds``:
    their seed numbers, to name outlying ones)."""
    d = np.asarray(diffs, dtype=float)
    keep = np.isfinite(d)
    d = d[keep]
    n = int(d.size)
    p = stats.signflip_pvalue(d) if 1 <= n <= stats.SIGNFLIP_EXACT_MAX else float("nan")
    out = np.flatnonzero(stats.outlying(d)) if n else np.array([], dtype=int)
    names = np.asarray(seeds)[keep][out] if seeds is not None else out
    return Assumptions(n, float(p), float(stats.skewness(d)) if n >= 3 else float("nan"), int(len(out)),
                       ", ".join(f"seed {int(i)}" for i in names) if seeds is not None else "")


def robustness_columns(diffs) -> tuple[np.ndarray, ...]:
    """``(p_skew, skewness, p_signflip, n_outlying)`` of each row of ``diffs``
    ``[comparisons, seeds]`` (the report's columns; NaN where a statistic needs more seeds)."""
    d = np.asarray(diffs, dtype=float)
    rows, n = d.shape
    nan = np.full(rows, np.nan)
    p_skew = stats.skew_corrected_test(d)[1] if n >= 3 else nan
    skew = stats.skewness(d) if n >= 3 else nan
    p_sf = stats.signflip_pvalue(d) if 1 <= n <= stats.SIGNFLIP_EXACT_MAX else nan
    out = np.array([stats.outlying(row).sum() for row in d], dtype=float) if n else nan
    return (np.asarray(p_skew, dtype=float).reshape(rows), np.asarray(skew, dtype=float).reshape(rows),
            np.asarray(p_sf, dtype=float).reshape(rows), out)


def note(row, level: float) -> str:
    """:meth:`Assumptions.note` from a summary row's columns (``n_paired``, ``p_signflip``,
    ``skewness``, ``n_outlying``)."""
    n = int(row["n_paired"]) if np.isfinite(row["n_paired"]) else 0
    return Assumptions(n, float(row["p_signflip"]), float(row["skewness"]),
                       int(row["n_outlying"]) if np.isfinite(row["n_outlying"]) else 0).note(level)
