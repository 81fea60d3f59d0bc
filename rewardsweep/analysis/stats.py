"""Statistics of a study as small pure functions over arrays.

Every number comes from scipy or statsmodels; this module only chooses the call, handles
the degenerate cases (too few values, all-equal values) with NaN and a reason, and keeps
the shapes straight. Functions that make sense over many studies at once take ``axis``
so a simulation of thousands of studies is one call, not a loop (see the tests).

Units: whatever the caller passes. The report passes mIoU as stored in the records
(fractions in [0, 1]); ``seeds_needed`` takes the effect in the same unit.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

CONFIDENCE = 0.95
BCA_MIN_N = 10            # BCa bootstrap only from this many seeds on
BCA_RESAMPLES = 4999      # Monte Carlo error of the endpoints well below their spread
BCA_SEED = 0              # fixed: the same records always give the same interval
VERDICTS = ("beats control", "no evidence", "worse")


@contextlib.contextmanager
def _quiet():
    """Silence scipy/statsmodels warnings about degenerate input: we return NaN instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --------------------------------------------------------------------------- intervals

def t_interval_from_moments(mean, sd, n, confidence: float = CONFIDENCE):
    """Student-t interval for a mean from its moments (vectorised): ``(low, high)``.

    ``scipy.stats.t.interval(confidence, df=n-1, loc=mean, scale=sd/sqrt(n))``;
    NaN where ``n < 2``.
    """
    mean = np.asarray(mean, dtype=float)
    sd = np.asarray(sd, dtype=float)
    n = np.asarray(n, dtype=float)
    ok = n >= 2
    df = np.where(ok, n - 1, 1.0)
    scale = np.where(ok, sd / np.sqrt(np.where(ok, n, 1.0)), np.nan)
    with np.errstate(invalid="ignore"):
        low, high = _st.t.interval(confidence, df, loc=mean, scale=scale)
    flat = ok & (sd == 0)                    # no spread: the interval is the point
    low = np.where(flat, mean, np.where(ok, low, np.nan))
    high = np.where(flat, mean, np.where(ok, high, np.nan))
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


@dataclass(frozen=True)
class MeanSummary:
    n: int
    mean: float
    sd: float
    se: float
    ci_low: float
    ci_high: float
    min: float
    max: float


def sd(x, axis: int = -1):
    """Standard deviation (ddof 1) along ``axis``; NaN with fewer than 2 values."""
    x = np.asarray(x, dtype=float)
    if x.shape[axis] < 2:
        out = np.full(np.delete(x.shape, axis % x.ndim), np.nan)
        return float(out) if out.ndim == 0 else out
    return np.std(x, axis=axis, ddof=1)


def se(x, axis: int = -1):
    """Standard error of the mean along ``axis`` (``scipy.stats.sem``); NaN with fewer than 2 values."""
    x = np.asarray(x, dtype=float)
    if x.shape[axis] < 2:
        return sd(x, axis)
    return _st.sem(x, axis=axis)


def describe(x, confidence: float = CONFIDENCE) -> MeanSummary:
    """n, mean, SD (ddof=1), SE (``scipy.stats.sem``), t-interval, min and max of 1-D data."""
    x = np.asarray(x, dtype=float)
    n = int(x.size)
    if n == 0:
        nan = float("nan")
        return MeanSummary(0, nan, nan, nan, nan, nan, nan, nan)
    mean = float(np.mean(x))
    sd = float(np.std(x, ddof=1)) if n >= 2 else float("nan")
    se = float(_st.sem(x)) if n >= 2 else float("nan")
    low, high = t_interval_from_moments(mean, sd, n, confidence)
    return MeanSummary(n, mean, sd, se, low, high, float(np.min(x)), float(np.max(x)))


def t_interval(x, confidence: float = CONFIDENCE, axis: int = -1):
    """Mean and Student-t interval of ``x`` along ``axis``: ``(mean, low, high)``.

    Equal to ``scipy.stats.ttest_1samp(x, 0, axis=axis).confidence_interval(confidence)``.
    """
    x = np.asarray(x, dtype=float)
    n = x.shape[axis]
    mean = np.mean(x, axis=axis)
    sd = np.std(x, axis=axis, ddof=1) if n >= 2 else np.full_like(mean, np.nan)
    low, high = t_interval_from_moments(mean, sd, n, confidence)
    if np.ndim(mean) == 0:
        return float(mean), low, high
    return mean, low, high


def bca_interval(x, confidence: float = CONFIDENCE, seed: int = BCA_SEED,
                 n_resamples: int = BCA_RESAMPLES, min_n: int = BCA_MIN_N) -> tuple[float, float]:
    """BCa bootstrap interval of the mean (``scipy.stats.bootstrap``, fixed RNG seed).

    NaN when fewer than ``min_n`` values (BCa is unreliable on a handful of seeds) or when
    the data are all equal (the interval is degenerate).
    """
    x = np.asarray(x, dtype=float)
    if x.size < min_n or np.all(x == x[0]):
        return float("nan"), float("nan")
    with _quiet():
        res = _st.bootstrap((x,), np.mean, confidence_level=confidence, method="BCa",
                            n_resamples=n_resamples, vectorized=True,
                            rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


# --------------------------------------------------------------------------- paired tests

@dataclass(frozen=True)
class PairedComparison:
    n: int
    diff_mean: float
    diff_sd: float
    ci_low: float
    ci_high: float
    t: float
    p_ttest: float
    w: float
    p_wilcoxon: float
    wilcoxon_note: str
    p_improve: float


def paired_ttest(a, b, confidence: float = CONFIDENCE, axis: int = -1):
    """Paired t-test of ``a - b`` (``scipy.stats.ttest_rel``, two-sided), vectorised.

    Returns ``(mean difference, ci_low, ci_high, t, p)``; NaN where fewer than 2 pairs.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    n = a.shape[axis]
    with np.errstate(all="ignore"), _quiet():
        diff_mean = np.mean(a - b, axis=axis)    # NaN for zero pairs
    if n < 2:
        nan = np.full_like(np.asarray(diff_mean, dtype=float), np.nan)
        out = (diff_mean, nan, nan, nan, nan)
    else:
        with _quiet(), np.errstate(all="ignore"):
            res = _st.ttest_rel(a, b, axis=axis)
            ci = res.confidence_interval(confidence)
        out = (diff_mean, ci.low, ci.high, res.statistic, res.pvalue)
    if np.ndim(diff_mean) == 0:
        return tuple(float(v) for v in out)
    return tuple(np.asarray(v, dtype=float) for v in out)


def wilcoxon_test(a, b, axis: int = -1):
    """Wilcoxon signed-rank test of ``a - b`` (``scipy.stats.wilcoxon``, two-sided), vectorised.

    Returns ``(statistic, p, note)``. NaN with a reason when there are fewer than 2 pairs
    or every difference is zero (scipy would return a meaningless p = 1). With fewer than
    6 pairs the exact test cannot reach p < 0.05 (smallest p is 2 / 2**n): the p-value is
    kept and the note says so. For stacked input, arrays of statistics, p-values and notes.
    """
    d = np.moveaxis(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), axis, -1)
    n = d.shape[-1]
    shape = d.shape[:-1]
    if n < 2:
        stat = np.full(shape, np.nan)
        p = np.full(shape, np.nan)
        note = np.full(shape, f"not computed: {n} pair(s)", dtype=object)
    else:
        zero = np.all(d == 0, axis=-1)
        with _quiet(), np.errstate(all="ignore"):
            res = _st.wilcoxon(d, axis=-1)
        stat = np.where(zero, np.nan, res.statistic)
        p = np.where(zero, np.nan, res.pvalue)
        small = f"{n} pairs: p cannot go below {2 / 2 ** n:.3g}" if n < 6 else ""
        note = np.where(zero, "not computed: all paired differences are zero", small).astype(object)
    if not shape:
        return float(stat), float(p), str(note)
    return stat, p, note


def prob_improvement(a, b, axis: int = -1):
    """P(config > control) over paired seeds.

    The fraction of seeds on which the configuration's outcome ``a`` beats the control's
    ``b`` on the same seed, a tie counting 1/2 (the paired analogue of rliable's
    probability of improvement, which compares all pairs of runs). 0.5 means "as often
    better as worse". NaN without pairs.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape[axis] == 0:
        return float("nan")
    score = (a > b).astype(float) + 0.5 * (a == b)
    out = np.mean(score, axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def compare_paired(a, b, confidence: float = CONFIDENCE) -> PairedComparison:
    """Every paired statistic of ``a`` (configuration) against ``b`` (control), 1-D."""
    return compare_paired_many([(a, b)], confidence)[0]


def compare_paired_many(pairs, confidence: float = CONFIDENCE) -> list[PairedComparison]:
    """:func:`compare_paired` for many (a, b) pairs: pairs of equal length go through scipy
    in one vectorised call each (the same numbers as one call per pair, much faster)."""
    pairs = [(np.asarray(a, dtype=float), np.asarray(b, dtype=float)) for a, b in pairs]
    out: list[PairedComparison | None] = [None] * len(pairs)
    by_n: dict[int, list[int]] = {}
    for i, (a, _) in enumerate(pairs):
        by_n.setdefault(a.size, []).append(i)
    for n, idx in by_n.items():
        A = np.stack([pairs[i][0] for i in idx]).reshape(len(idx), n)
        B = np.stack([pairs[i][1] for i in idx]).reshape(len(idx), n)
        diff_mean, low, high, t, p = paired_ttest(A, B, confidence)
        w, pw, note = wilcoxon_test(A, B)
        sd = np.std(A - B, axis=-1, ddof=1) if n >= 2 else np.full(len(idx), np.nan)
        pi = prob_improvement(A, B) if n else np.full(len(idx), np.nan)
        for j, i in enumerate(idx):
            out[i] = PairedComparison(
                n=n, diff_mean=float(diff_mean[j]), diff_sd=float(sd[j]), ci_low=float(low[j]),
                ci_high=float(high[j]), t=float(t[j]), p_ttest=float(p[j]), w=float(w[j]),
                p_wilcoxon=float(pw[j]), wilcoxon_note=str(note[j]), p_improve=float(pi[j]))
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------- skew and few seeds

def skewness(x, axis: int = -1):
    """Sample skewness of ``x`` along ``axis``: the adjusted Fisher-Pearson G1
    (``scipy.stats.skew(bias=False)``); NaN with fewer than 3 values, 0 with no spread."""
    x = np.asarray(x, dtype=float)
    if x.shape[axis] < 3:
        return sd(x, axis) * np.nan
    with _quiet(), np.errstate(all="ignore"):
        g = _st.skew(x, axis=axis, bias=False)
    g = np.where(np.ptp(x, axis=axis) > 0, g, 0.0)
    return float(g) if np.ndim(g) == 0 else g


def _hall_terms(x, mu, axis: int = -1):
    """``(T, a, b, n)`` of Hall's transform for the mean ``mu``: T the t statistic,
    ``a = G1 / (3 sqrt n)``, ``b = G1 / (6 sqrt n)`` (G1 the skewness; 0 with under 3 values)."""
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    n = x.shape[-1]
    mean = np.mean(x, axis=-1)
    s = np.std(x, axis=-1, ddof=1) if n >= 2 else np.full(mean.shape, np.nan)
    with np.errstate(all="ignore"):
        se = s / math.sqrt(n)
        diff = mean - np.asarray(mu, dtype=float)
        t = np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.sign(diff) * np.inf)
        t = np.where(np.isnan(t) & (diff == 0), 0.0, t)
    g = np.nan_to_num(skewness(x)) if n >= 3 else np.zeros(mean.shape)
    a = g / (3 * math.sqrt(n))
    return t, a, g / (6 * math.sqrt(n)), n


def hall_transform(t, a, b):
    """Hall's (1992) monotone transform of a t statistic, ``t + a t^2 + a^2 t^3 / 3 + b``.

    It removes the first-order skewness term of the t statistic's Edgeworth expansion
    (Hall 1992, "On the removal of skewness by transformation", JRSS B 54:221-228): the
    t statistic of right-skewed data has a long left tail, which a plain t-test reads as
    evidence for a lower mean. Written as ``((1 + a t)^3 - 1) / (3 a) + b``, increasing in t.
    """
    t, a, b = (np.asarray(v, dtype=float) for v in (t, a, b))
    with np.errstate(all="ignore"):
        out = t + a * t * t + a * a * t ** 3 / 3 + b
    return np.where(np.isinf(t), t, out)


def _hall_inverse(y, a, b):
    """The t at which :func:`hall_transform` equals ``y`` (the cube root of the written form)."""
    y, a, b = (np.asarray(v, dtype=float) for v in (y, a, b))
    small = np.abs(a) < 1e-12
    safe = np.where(small, 1.0, a)
    with np.errstate(all="ignore"):
        inv = (np.cbrt(1 + 3 * safe * (y - b)) - 1) / safe
    return np.where(small, y - b, inv)


def skew_corrected_test(x, mu: float = 0.0, axis: int = -1):
    """Hall's skewness-corrected t-test of mean ``mu``, vectorised: ``(statistic, p)``.

    The statistic is :func:`hall_transform` of the t statistic with the sample's own
    skewness (G1), read against Student's t with n - 1 degrees of freedom; ``p`` is
    two-sided. With normal data it is close to the t-test; with skewed data it moves the
    p-value in the direction the skewness misleads the t-test. NaN with fewer than 3 values.
    """
    t, a, b, n = _hall_terms(x, mu, axis)
    g = hall_transform(t, a, b)
    if n < 3:
        g = np.full(np.shape(t), np.nan)
    with np.errstate(all="ignore"):
        p = np.minimum(1.0, 2 * _st.t.sf(np.abs(g), max(n - 1, 1)))
    p = np.where(np.isnan(g), np.nan, p)
    if np.ndim(g) == 0:
        return float(g), float(p)
    return g, p


def skew_corrected_interval(x, confidence: float = CONFIDENCE, axis: int = -1):
    """The interval of means that :func:`skew_corrected_test` does not reject, vectorised:
    ``(low, high)``. NaN with fewer than 3 values."""
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    n = x.shape[-1]
    mean = np.mean(x, axis=-1)
    s = np.std(x, axis=-1, ddof=1) if n >= 2 else np.full(mean.shape, np.nan)
    g = skewness(x) if n >= 3 else np.full(mean.shape, np.nan)
    return skew_corrected_interval_from_moments(mean, s, n, g, confidence)


def skew_corrected_interval_from_moments(mean, sd, n, skew, confidence: float = CONFIDENCE):
    """:func:`skew_corrected_interval` from the mean, SD (ddof 1), count and skewness (G1):
    the transform is monotone, so its inversion is closed-form (vectorised; NaN where n < 3)."""
    mean, sd, n, skew = (np.asarray(v, dtype=float) for v in (mean, sd, n, skew))
    confidence = np.asarray(confidence, dtype=float)
    ok = (n >= 3) & np.isfinite(skew)
    nn = np.where(ok, n, 3.0)
    a, b = skew / (3 * np.sqrt(nn)), skew / (6 * np.sqrt(nn))
    with np.errstate(all="ignore"), _quiet():
        crit = _st.t.isf((1 - confidence) / 2, nn - 1)
        se = sd / np.sqrt(nn)
        # T(mu) = (mean - mu) / se falls as mu rises: T = g^-1(+crit) gives the low end
        low = mean - _hall_inverse(crit, a, b) * se
        high = mean - _hall_inverse(-crit, a, b) * se
    low, high = np.where(ok, low, np.nan), np.where(ok, high, np.nan)
    if np.ndim(low) == 0:
        return float(low), float(high)
    return low, high


def robust_interval(x, confidence: float = CONFIDENCE, axis: int = -1):
    """The hull of the t-interval and the skew-corrected interval: it excludes a mean
    exactly when both tests reject it (the verdict's rule). With fewer than 3 values the
    t-interval alone."""
    _, tl, th = t_interval(x, confidence, axis)
    hl, hh = skew_corrected_interval(x, confidence, axis)
    low = np.where(np.isnan(hl), tl, np.fmin(tl, hl))
    high = np.where(np.isnan(hh), th, np.fmax(th, hh))
    if np.ndim(low) == 0:
        return float(low), float(high)
    return low, high


@functools.lru_cache(maxsize=64)
def _subset_sums_basis(h: int) -> np.ndarray:
    """All 2^h 0/1 rows of length h (which elements a subset holds)."""
    return ((np.arange(2 ** h)[:, None] >> np.arange(h)[None, :]) & 1).astype(float)


SIGNFLIP_EXACT_MAX = 30     # exact enumeration (in two halves) up to this many values


def signflip_pvalues(x, axis: int = -1):
    """Exact one-sided p-values of the paired sign-flip (Fisher-Pitman randomisation) test
    of a zero mean: ``(upper, lower)``, ``upper = P(S* >= S)``, ``lower = P(S* <= S)``,
    with S the sum and S* the sum under each of the 2^n sign patterns.

    Valid for any distribution symmetric about 0, however few the values; its smallest
    attainable one-sided p is 2^-n (1/16 with 4 values), which is why few seeds cannot
    make a distribution-free claim at a small level. The 2^n patterns are counted by
    meet-in-the-middle (subset sums of two halves, one sorted), vectorised over rows;
    equal to ``scipy.stats.permutation_test(..., permutation_type="samples")`` (a test
    checks it). Up to :data:`SIGNFLIP_EXACT_MAX` values.
    """
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    shape, n = x.shape[:-1], x.shape[-1]
    if n > SIGNFLIP_EXACT_MAX:
        raise ValueError(f"exact sign-flip test up to {SIGNFLIP_EXACT_MAX} values, got {n}")
    if n == 0:
        return np.full(shape, np.nan), np.full(shape, np.nan)
    a = np.abs(x).reshape(-1, n)
    # S* >= S  <=>  (sum of |x| flipped negative) <= W, W = sum of |x| over the negative x
    w = np.where(x < 0, -x, 0.0).reshape(-1, n).sum(-1)
    h = n // 2
    left = a[:, :h] @ _subset_sums_basis(h).T                       # [rows, 2^h]
    right = np.sort(a[:, h:] @ _subset_sums_basis(n - h).T, axis=1)  # [rows, 2^(n-h)]
    rows, r = right.shape
    tol = 1e-9 * (1.0 + a.sum(-1))                                  # ties count as "as extreme"
    span = 2.0 * (a.sum(-1).max() + tol.max()) + 1.0
    offset = np.arange(rows)[:, None] * span
    flat = (right + offset).ravel()
    base = np.arange(rows)[:, None] * r
    q = w[:, None] - left + offset
    le = np.searchsorted(flat, (q + tol[:, None]).ravel(), side="right").reshape(rows, -1) - base
    ge = base + r - np.searchsorted(flat, (q - tol[:, None]).ravel(), side="left").reshape(rows, -1)
    total = 2.0 ** n
    upper = (np.clip(le, 0, r).sum(-1) / total).reshape(shape)
    lower = (np.clip(ge, 0, r).sum(-1) / total).reshape(shape)
    if not shape:
        return float(upper), float(lower)
    return upper, lower


def signflip_pvalue(x, axis: int = -1):
    """Two-sided exact sign-flip p-value: twice the smaller one-sided p, at most 1."""
    upper, lower = signflip_pvalues(x, axis)
    p = np.minimum(1.0, 2 * np.minimum(upper, lower))
    return float(p) if np.ndim(p) == 0 else p


def signflip_floor(n) -> float:
    """The smallest two-sided p-value the sign-flip test can give with ``n`` values: 2^(1-n)."""
    return float(2.0 ** (1 - np.asarray(n, dtype=float)))


def unseen_collapse_rate(n, confidence: float = CONFIDENCE) -> float:
    """The collapse rate that ``n`` seeds without a collapse cannot rule out: the one-sided
    upper ``confidence`` bound of a rate after 0 events in n (Clopper-Pearson,
    ``scipy.stats.binomtest(0, n)``; ``1 - (1 - confidence)^(1/n)``, 39% at 6 seeds).
    No test of a mean can tell such a configuration from a clean one (Bahadur & Savage 1956).
    """
    n = int(n)
    if n < 1:
        return float("nan")
    ci = _st.binomtest(0, n).proportion_ci(confidence_level=1 - 2 * (1 - confidence), method="exact")
    return float(ci.high)


def outlying(x, threshold: float = 3.5) -> np.ndarray:
    """Which values lie far from the rest: modified z-score ``0.6745 |x - median| / MAD``
    above ``threshold`` (Iglewicz & Hoaglin 1993; MAD from ``scipy.stats.median_abs_deviation``).
    A seed that collapsed, or one far better than the others, is the kind of value a mean
    over a few seeds hinges on. 1-D; none flagged with fewer than 3 values or a zero MAD."""
    x = np.asarray(x, dtype=float)
    if x.size < 3:
        return np.zeros(x.shape, dtype=bool)
    mad = _st.median_abs_deviation(x)
    if not mad > 0:
        return np.zeros(x.shape, dtype=bool)
    return 0.6745 * np.abs(x - np.median(x)) / mad > threshold


# --------------------------------------------------------------------------- many tests

def adjust_pvalues(p, method: str = "holm", alpha: float = 0.05):
    """Adjust p-values for multiple testing (``statsmodels.stats.multitest.multipletests``).

    ``method``: ``"holm"`` (family-wise error, default) or ``"fdr_bh"`` (false discovery
    rate, Benjamini-Hochberg). NaN p-values (untestable configurations) are left out of the
    family and stay NaN. A 2-D array is a stack of families, one per row.
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p, dtype=float)
    if p.ndim == 2:
        if not len(p):
            return p.copy()
        # statsmodels' Holm calls gc.collect() on every call: with thousands of families
        # that dominates. Frozen objects are skipped by the collector; unfreeze after.
        gc.freeze()
        try:
            return np.stack([adjust_pvalues(row, method, alpha) for row in p])
        finally:
            gc.unfreeze()
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=alpha, method=method)[1]
    return out


def verdict(p_adjusted, diff_mean, alpha: float = 0.05):
    """Verdict words from the adjusted p-value and the sign of the mean paired difference.

    ``"beats control"`` when adjusted p < alpha and the configuration is better on
    average, ``"worse"`` when adjusted p < alpha and it is worse, ``"no evidence"``
    otherwise (including an untestable configuration). Vectorised.
    """
    p = np.asarray(p_adjusted, dtype=float)
    d = np.asarray(diff_mean, dtype=float)
    with np.errstate(invalid="ignore"):
        sig = np.isfinite(p) & (p < alpha)
        out = np.where(sig & (d > 0), VERDICTS[0], np.where(sig & (d < 0), VERDICTS[2], VERDICTS[1]))
    return str(out) if out.ndim == 0 else out


def robust_adjusted_intervals(mean, sd, n, skew, p, p_adjusted, alpha: float = 0.05):
    """:func:`adjusted_intervals` for the verdict's rule (the t-test AND the skew-corrected
    test, ``p`` the larger p-value): the hull of the t-interval and the skew-corrected
    interval at the same level, so it excludes 0 exactly when the adjusted p is below alpha.
    Returns ``(confidence, low, high)``."""
    level, low, high = adjusted_intervals(mean, sd, n, p, p_adjusted, alpha)
    hl, hh = skew_corrected_interval_from_moments(mean, sd, n, skew, np.where(np.isfinite(level), level, 0.5))
    low = np.where(np.isfinite(hl), np.fmin(low, hl), low)
    high = np.where(np.isfinite(hh), np.fmax(high, hh), high)
    return level, low, high


def adjusted_intervals(mean, sd, n, p, p_adjusted, alpha: float = 0.05):
    """Intervals of the paired differences that agree with the adjusted verdicts, vectorised.

    Each is the paired t-interval at confidence ``1 - alpha * p / p_adjusted``: the
    per-comparison level the adjustment effectively tested that comparison at (for Holm
    alpha/(m - j + 1) at its step j, for Bonferroni alpha/m). So an interval excludes 0
    exactly when the adjusted p is below alpha, i.e. when the verdict is "beats control" or
    "worse". Returns ``(confidence, low, high)``; NaN where there is no adjusted p.
    """
    mean, sd, n, p, q = (np.asarray(v, dtype=float) for v in (mean, sd, n, p, p_adjusted))
    with np.errstate(all="ignore"):
        level = np.where(np.isfinite(q) & (q > 0) & (p > 0), 1 - alpha * p / q, np.nan)
        low, high = t_interval_from_moments(mean, sd, n, np.where(np.isfinite(level), level, 0.5))
    low = np.where(np.isfinite(level), low, np.nan)
    high = np.where(np.isfinite(level), high, np.nan)
    return level, low, high


# --------------------------------------------------------------------------- val images

IMAGE_RESAMPLES = 2000    # replicates of the two-level bootstrap
IMAGE_SEED = 0            # fixed: the same records always give the same interval


def image_resample_weights(n_images: int, n_resamples: int = IMAGE_RESAMPLES,
                           seed: int = IMAGE_SEED) -> np.ndarray:
    """How often each val image is drawn in each bootstrap replicate: ``[B, n_images]``.

    One draw per replicate, shared by every trial and comparison of a study: every trial
    was evaluated on the same val images, so a resample of them applies to all at once.
    """
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=n_resamples).astype(float)


def resampled_miou(intersect, union, weights) -> np.ndarray:
    """mIoU of each trial under each image resample: ``[B, trials]``.

    ``intersect``/``union``: per-image counts ``[trials, images, classes]``; ``weights``:
    :func:`image_resample_weights`; leading axes (many studies at once) broadcast. The
    dataset-level IoU of a class is its summed
    intersection over its summed union (classes with no union in a resample are left out
    of the mean, as MMSeg does for absent classes).
    """
    inter = np.einsum("...bn,...tnc->...btc", weights, np.asarray(intersect, dtype=float))
    uni = np.einsum("...bn,...tnc->...btc", weights, np.asarray(union, dtype=float))
    with np.errstate(all="ignore"), _quiet():
        return np.nanmean(inter / np.where(uni > 0, uni, np.nan), axis=-1)


IMAGE_MIN_SEEDS = 3      # the seed part has S - 1 degrees of freedom: below 3 seeds no interval


@dataclass(frozen=True)
class CrossedVariance:
    """The variance parts of a mean paired difference over seeds x val images (model
    ``d_si = mu + a_s + b_i + e_si``), each estimated from the records' per-image counts."""
    mean: float | np.ndarray        # the mean paired difference on the full val split
    seed: float | np.ndarray        # sigma_A^2 / S + sigma_E^2 / (S I): which seeds were run
    image: float | np.ndarray       # sigma_B^2 / I: which images make the split (residual removed)
    residual: float | np.ndarray    # sigma_E^2 / (S I): in both raw parts, kept in the seed part
    seeds: int


def image_jackknife_weights(n_images: int) -> np.ndarray:
    """Delete-one-image weights ``[n_images, n_images]`` (row i leaves image i out), for
    :func:`resampled_miou`: the jackknife replicates of every trial's mIoU."""
    return 1.0 - np.eye(n_images)


def jackknife_variance(replicates, axis: int = -2):
    """The delete-one jackknife variance ``(I - 1) / I * sum_i (theta_(i) - mean)^2`` of a
    statistic from its I leave-one-out values along ``axis`` (Efron & Stein 1981: it does not
    underestimate in expectation, where the bootstrap of a ratio of sums over few images does)."""
    x = np.asarray(replicates, dtype=float)
    k = x.shape[axis]
    return (k - 1) / k * np.sum((x - np.mean(x, axis=axis, keepdims=True)) ** 2, axis=axis)


def crossed_variance(miou_a, miou_b, full_a, full_b, jack_a=None, jack_b=None) -> tuple[CrossedVariance, np.ndarray]:
    """The parts of the variance of the mean paired difference, and the image-resampling
    deviations of the mean ``[..., B]``.

    ``miou_a``/``miou_b``: :func:`resampled_miou` of the configuration's and its control's trials
    ``[..., B, S]`` (column s of both is seed s, row b one image resample); ``full_a``/``full_b``:
    their mIoU on the whole split ``[..., S]``. With ``D_s`` the per-seed difference on the split:

    - seed part: ``var_s(D_s) / S`` holds sigma_A^2/S + sigma_E^2/(S I);
    - image part: the image-resampling variance of the mean over seeds, times I/(I-1), holds
      sigma_B^2/I + sigma_E^2/(S I);
    - residual: the mean over seeds of each seed's image-resampling variance exceeds the image
      part by sigma_E^2 (1 - 1/S)/I, so ``sigma_E^2/(S I) = (mean_s v_s - image) / (S - 1)``;
      it is removed from the image part (and the image deviations shrunk to match), so it is
      counted once, with the seed part's Student t (resampling seeds and images together counts
      it about three times, Owen 2007).
    """
    a, b = np.asarray(miou_a, dtype=float), np.asarray(miou_b, dtype=float)
    d = a - b                                                   # [..., B, S]
    full = np.asarray(full_a, dtype=float) - np.asarray(full_b, dtype=float)   # [..., S]
    n_seeds = d.shape[-1]
    mean = np.mean(full, axis=-1)
    boot_mean = np.mean(d, axis=-2)                             # [..., S] per-seed resampling means
    dev = np.mean(d, axis=-1) - np.mean(boot_mean, axis=-1)[..., None]         # [..., B]
    if jack_a is not None:
        j = np.asarray(jack_a, dtype=float) - np.asarray(jack_b, dtype=float)      # [..., I, S]
        image = jackknife_variance(np.mean(j, axis=-1), axis=-1)
        per_seed = np.mean(jackknife_variance(j, axis=-2), axis=-1)
        boot = np.var(np.mean(d, axis=-1), axis=-1, ddof=1)
        dev = dev * np.sqrt(np.where(boot > 0, image / np.where(boot > 0, boot, 1.0), 1.0))[..., None]
    else:
        image = np.var(np.mean(d, axis=-1), axis=-1, ddof=1)
        per_seed = np.mean(np.var(d, axis=-2, ddof=1), axis=-1)
    residual = np.minimum(np.maximum(per_seed - image, 0.0) / max(n_seeds - 1, 1), image)
    seed = np.var(full, axis=-1, ddof=1) / n_seeds
    # the residual is counted once: in the seed part (read with Student t, its S - 1 degrees of
    # freedom); the image part keeps sigma_B^2 / I only
    keep = np.sqrt(np.where(image > 0, (image - residual) / np.where(image > 0, image, 1.0), 0.0))
    return CrossedVariance(mean, seed, image - residual, residual, n_seeds), dev * keep[..., None]


def crossed_interval(miou_a, miou_b, full_a, full_b, confidence=CONFIDENCE, jack_a=None, jack_b=None):
    """Interval of the mean paired difference over seeds and val images: ``(low, high)``.

    The quantiles of ``mean + image deviation + seed deviation`` where the image deviation is
    the image bootstrap's (its skew kept: mIoU is a ratio of sums) and the seed deviation is
    Student t with S - 1 degrees of freedom scaled by the seed part (:func:`crossed_variance`).
    The two levels are resampled apart, so neither is shrunk by ``(1 - 1/S)`` nor read with
    normal quantiles at a handful of seeds, and the seed x image residual is counted once.
    ``confidence`` may be an array over the leading axes (adjusted levels). NaN with fewer
    than :data:`IMAGE_MIN_SEEDS` seeds.
    """
    part, dev = crossed_variance(miou_a, miou_b, full_a, full_b, jack_a, jack_b)
    if jack_a is None:
        images = np.asarray(miou_a).shape[-2]
        dev = dev * math.sqrt(images / max(images - 1, 1))      # the bootstrap's (1 - 1/I) shrinkage
    mean = np.asarray(part.mean, dtype=float)
    sd = np.sqrt(np.asarray(part.seed, dtype=float))
    df = max(part.seeds - 1, 1)
    conf = np.broadcast_to(np.asarray(confidence, dtype=float), mean.shape)
    tails = ((1 - conf) / 2, (1 + conf) / 2)

    def cdf(q):                                                 # P(replicate <= q), [...]
        z = (q[..., None] - mean[..., None] - dev) / np.where(sd > 0, sd, 1.0)[..., None]
        with np.errstate(all="ignore"):
            smooth = _st.t.cdf(z, df)
        step = (mean[..., None] + dev <= q[..., None]).astype(float)
        return np.mean(np.where((sd > 0)[..., None], smooth, step), axis=-1)

    spread = np.max(np.abs(dev), axis=-1) + 50 * sd + 1e-12
    out = []
    for tail in tails:
        lo, hi = mean - spread, mean + spread
        for _ in range(60):                                     # bisection, vectorised
            mid = (lo + hi) / 2
            below = cdf(mid) < tail
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        out.append((lo + hi) / 2)
    low, high = out
    if part.seeds < IMAGE_MIN_SEEDS:
        low, high = np.full(np.shape(low), np.nan), np.full(np.shape(high), np.nan)
    if np.ndim(low) == 0:
        return float(low), float(high)
    return low, high


def image_resamples_for(confidence, floor: int = IMAGE_RESAMPLES, per_tail: int = 50) -> int:
    """Image resamples enough for ``per_tail`` draws beyond each end of the narrowest
    (highest-confidence) interval asked for: ``max(floor, per_tail / tail)``, at most 100,000."""
    conf = np.asarray(confidence, dtype=float)
    conf = conf[np.isfinite(conf)]
    if not conf.size:
        return floor
    tail = (1 - float(conf.max())) / 2
    return int(min(100_000, max(floor, math.ceil(per_tail / max(tail, 1e-9)))))


# --------------------------------------------------------------------------- power

MAX_SEEDS = 10_000_000   # seeds_needed gives up (NaN) beyond this


def t_power(effect_size, nobs, alpha: float = 0.05):
    """Power of the two-sided one-sample (= paired) t-test, vectorised over both arguments.

    ``P(|T| > t_crit)`` with ``T ~ nct(df=n-1, nc=effect_size * sqrt(n))``: the upper tail
    plus the lower tail, each taken as ``scipy.stats.nct.sf`` (the lower one as the upper
    tail at ``-nc``, by symmetry). statsmodels' ``TTestPower.power`` takes the lower tail
    with ``nct.cdf``, which returns NaN once the noncentrality is large; ``sf`` returns the
    (vanishing) tail there. Any tail that still comes back non-finite is the vanishing one
    and counts as 0. NaN where ``n < 2``.
    """
    es = np.abs(np.asarray(effect_size, dtype=float))
    n = np.asarray(nobs, dtype=float)
    ok = n >= 2
    df = np.where(ok, n - 1, 1.0)
    nc = es * np.sqrt(np.where(ok, n, 1.0))
    with np.errstate(all="ignore"), _quiet():
        crit = _st.t.isf(alpha / 2, df)
        upper = _st.nct.sf(crit, df, nc)
        upper = np.where(np.isfinite(upper), upper, 1 - _st.nct.cdf(crit, df, nc))
        lower = np.nan_to_num(_st.nct.sf(crit, df, -nc), nan=0.0)
    out = np.where(ok, np.clip(np.nan_to_num(upper, nan=1.0) + lower, 0.0, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


def seeds_needed(sd: float, effect: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Seeds needed to detect a true mean difference ``effect`` with a two-sided t-test.

    The smallest n >= 2 with ``t_power(effect / sd, n) >= power`` (one-sample t; the paired
    test is a one-sample test on the differences): power grows with n, so it is the first n
    reaching the target among those just around the normal-approximation answer (which is
    a step or two low), or, when that misses, found by doubling then bisection; checked (power(n) >= target > power(n - 1)). The same number
    as ``statsmodels.stats.power.TTestPower().solve_power`` rounded up where that solver
    works; it fails (NaN, or an unchecked 2) when the effect is large relative to the SD.
    ``sd`` and ``effect`` in the same unit. NaN when ``sd`` is unknown (fewer than 2 seeds)
    or ``effect <= 0``.
    """
    if not (math.isfinite(sd) and math.isfinite(effect)) or effect <= 0 or sd < 0:
        return float("nan")
    if sd == 0:
        return 2.0
    es = effect / sd

    def reaches(n: int) -> bool:
        return t_power(es, n, alpha) >= power

    if reaches(2):
        return 2.0
    # Start next to the answer: n ~ ((z_{1-alpha/2} + z_power) / es)^2 for large n.
    guess = max(3, math.ceil(((_st.norm.isf(alpha / 2) + _st.norm.ppf(power)) / es) ** 2))
    if guess <= MAX_SEEDS:            # one vectorised power call over the n around it
        ns = np.arange(max(2, guess - 3), guess + 9)
        ok = t_power(es, ns, alpha) >= power
        if ok[-1] and not ok[0]:
            return float(ns[np.argmax(ok)])    # power(n) >= target > power(n - 1)
    lo, hi = 2, 4                     # invariant: power(lo) < target
    while not reaches(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_SEEDS:
            return float("nan")
    while hi - lo > 1:                # power(lo) < target <= power(hi)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if reaches(mid) else (mid, hi)
    assert reaches(hi) and not reaches(hi - 1)
    return float(hi)


def min_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean difference that ``n`` seeds detect with the given power.

    ``sd`` times the effect size solving ``t_power(es, n) = power`` (``scipy.optimize.brentq``
    on the robust power above; statsmodels' ``solve_power(nobs=n)`` gives the same where its
    power is finite). In the unit of ``sd``. NaN with fewer than 2 seeds or an unknown SD.
    """
    if not (math.isfinite(sd) and sd >= 0 and n >= 2):
        return float("nan")
    if sd == 0 or power <= alpha:     # the test's own rejection rate already reaches it
        return 0.0
    return float(_detectable_effect_size(int(n), float(alpha), float(power)) * sd)


@functools.lru_cache(maxsize=1024)
def _detectable_effect_size(n: int, alpha: float, power: float) -> float:
    """Effect size (mean / SD) with the target power at n: depends on n only, so cached."""
    from scipy.optimize import brentq

    hi = 1.0
    while t_power(hi, n, alpha) < power:
        hi *= 2
    return brentq(lambda e: t_power(e, n, alpha) - power, 0.0, hi, xtol=1e-12, rtol=1e-12)


# --------------------------------------------------------------------------- equivalence

def equivalence_test(a, b, margin: float) -> float:
    """TOST p-value that the mean paired difference ``a - b`` lies within ``(-margin, margin)``.

    ``statsmodels.stats.weightstats.ttost_paired`` (two one-sided paired t-tests; the
    p-value is the larger of the two). A small p is evidence of equivalence within the
    margin, which "no evidence" of a difference never is. NaN with fewer than 2 pairs or
    all differences equal (no spread to test with).
    """
    from statsmodels.stats.weightstats import ttost_paired

    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    d = a - b
    if d.size < 2 or np.all(d == d[0]) or not margin > 0:
        return float("nan")
    with _quiet(), np.errstate(all="ignore"):
        p = ttost_paired(a, b, -margin, margin)[0]
    return float(p)
