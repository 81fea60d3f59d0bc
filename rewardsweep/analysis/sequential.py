"""Group-sequential decisions: add seeds to a configuration only while its answer is open.

Each reward configuration is compared with its paired control after each *look* (a planned
seed count) and ends ``beats``, ``worse``, ``equivalent`` (with a margin), ``futile`` or
``undecided``. The entry points: :func:`make_design` (the plan, boundaries computed once)
and :func:`decide` (a design and the paired differences ``[..., configurations, seeds]`` ->
each configuration's decision and seed count). Launch and report call the same
:func:`look_decisions`, so a decision re-derived from the records is the one launch took.

Two rules, chosen by the design's ``statistic`` (docs/report.md, "Sequential studies"):

``"robust"`` (new designs, rewardsweep 0.4):
  - a claim (``beats``/``worse``) at look k needs BOTH the paired t-test of all seeds so far
    and Hall's (1992) skewness-corrected t-test beyond the look's Lan-DeMets (1983)
    alpha-spending boundary (Hwang-Shih-DeCani spending, Bonferroni ``alpha / 2m`` per
    configuration and side);
  - no alpha is spent before the first look at which the exact sign-flip test could reach
    that look's level (``2^-n`` below it): with 4 seeds no distribution-free test gives a
    one-sided p below 1/16, so an earlier claim would rest on the normal tail alone;
  - the design SD comes from the first look (the median over configurations of their paired
    differences' SD); the non-binding futility stop ("a difference of ``effect`` is not
    there") and the power the report states use it;
  - with a margin, futility gives way to equivalence (two one-sided t-tests at the efficacy
    boundaries): a configuration with no difference is stopped by showing it.
  Under normal paired differences the family-wise rate of a false claim is at most alpha
  (measured: the scenario suite, benchmarks/bench_scenarios.py); no test of a mean can hold
  that for every distribution with few seeds (Bahadur & Savage 1956), and the report says what
  the data show (skewness, outlying seeds, the collapse rate the seeds cannot rule out).

``"inverse-normal"`` / ``"pooled-t"`` (rewardsweep 0.3 designs, kept so that a study started
then is decided the way it was): per-batch t-tests combined by the inverse-normal method
(Lehmacher & Wassmer 1999), exact only for normal differences; futility "|d| < effect shown".

Pure numpy/scipy. Units: the paired differences, ``effect``, ``margin`` and ``sd`` in one unit
(mIoU points in a study).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy import stats as _st

from rewardsweep.analysis import stats as _stats

DECISIONS = ("continue", "beats", "worse", "equivalent", "futile", "undecided")
CONTINUE, BEATS, WORSE, EQUIVALENT, FUTILE, UNDECIDED = range(len(DECISIONS))
SPENDINGS = ("hsd", "obrien-fleming", "pocock")

# Defaults of new designs, chosen by the scenario suite (tests/test_sequential_scenarios.py,
# benchmarks/bench_scenarios.py; docs/report.md has the tables).
STATISTICS = ("robust", "inverse-normal", "pooled-t")
STATISTIC = "robust"                # t-test AND skew-corrected t-test, pooled over the seeds so far
EFFICACY_SPENDING = ("hsd", 1.0)    # Hwang-Shih-DeCani gamma=1: enough at the first claimable look
                                    # that a true effect can stop there
FUTILITY_SPENDING = ("hsd", 1.0)
FUTILITY_BETA = 0.2                 # beta spent on stopping a configuration with the effect
FUTILITY_CP = 0.1                   # ... or stop when the chance of a claim by max, if the effect were
                                    # true, is below this (an underpowered design stops its nulls early)
POWER = 0.8                         # the power the dry run sizes the SD for ("80% power at SD <= x")
# The 0.3 rule's defaults (a design stored without these fields had them)
V03_SPENDING, V03_FUTILITY, V03_BETA = ("hsd", -2.0), ("hsd", 3.0), 0.15

_MVN_RELEPS = 1e-5                  # Genz QMC error per increment solved for: c_k to ~1e-5
_MVN_RNG = 0                        # fixed: the same inputs always give the same boundaries


# --------------------------------------------------------------------------- boundaries

def spent(fraction, level: float, spending: str, gamma: float | None = None):
    """Cumulative error spent by information ``fraction`` in [0, 1] (vectorised), one-sided.

    ``"hsd"``: Hwang, Shih & DeCani (1990), ``level (1 - exp(-gamma t)) / (1 - exp(-gamma))``
    (``level * t`` at gamma 0; gamma -4 is close to O'Brien-Fleming, 1 to Pocock).
    ``"obrien-fleming"``: Lan & DeMets (1983), ``2 (1 - Phi(z_{1-level/2} / sqrt(t)))``.
    ``"pocock"``: Lan & DeMets (1983), ``level log(1 + (e - 1) t)``.
    """
    t = np.clip(np.asarray(fraction, dtype=float), 0.0, 1.0)
    if spending == "hsd":
        g = float(gamma if gamma is not None else 0.0)
        out = level * t if g == 0 else level * np.expm1(-g * t) / np.expm1(-g)
    elif spending == "obrien-fleming":
        with np.errstate(divide="ignore"):
            out = 2 * _st.norm.sf(_st.norm.isf(level / 2) / np.sqrt(t))
    elif spending == "pocock":
        out = level * np.log1p((math.e - 1) * t)
    else:
        raise ValueError(f"unknown spending function {spending!r}; one of {', '.join(SPENDINGS)}")
    return out


def score_correlation(looks) -> np.ndarray:
    """``corr(Z_i, Z_j) = sqrt(n_i / n_j)`` (i <= j) of the score process at the looks: [K, K]."""
    n = np.asarray(looks, dtype=float)
    return np.sqrt(np.minimum.outer(n, n) / np.maximum.outer(n, n))


@functools.lru_cache(maxsize=256)
def spending_boundaries(looks: tuple[int, ...], level: float, spending: str,
                        gamma: float | None = None, first: int = 0, floor: float = 0.0) -> tuple[float, ...]:
    """One-sided normal-scale boundaries ``c_k`` that spend ``level`` over the looks.

    ``c_k`` solves ``P(Z_1 < c_1, ..., Z_{k-1} < c_{k-1}, Z_k >= c_k) = spent(t_k) -
    spent(t_{k-1})`` with ``t_k = n_k / n_K`` under the canonical joint normal
    (``multivariate_normal.cdf`` over that box, ``brentq`` on c). Looks before ``first``
    spend nothing (``inf``); their share is spent at look ``first``, at least ``floor``.
    """
    from scipy.optimize import brentq

    n = np.asarray(looks, dtype=float)
    cum = spent(n / n[-1], level, spending, gamma)
    cum[:first] = 0.0
    cum[first:] = np.maximum(cum[first:], min(floor, level))
    inc = np.diff(np.concatenate([[0.0], cum]))
    corr = score_correlation(looks)
    out: list[float] = []
    for k, target in enumerate(inc):
        if not target > 0:
            out.append(math.inf)
            continue
        if all(math.isinf(c) for c in out):
            out.append(float(_st.norm.isf(target)))
            continue
        mean, cov = np.zeros(k + 1), corr[: k + 1, : k + 1]
        upper = np.array(out + [math.inf])
        lower = np.array([-math.inf] * k + [0.0])

        def excess(c: float) -> float:
            lower[-1] = c
            p = _st.multivariate_normal.cdf(upper, mean, cov, lower_limit=lower,
                                            abseps=_MVN_RELEPS * target, releps=_MVN_RELEPS,
                                            maxpts=50_000 * (k + 1), rng=_MVN_RNG)
            return float(p) - target

        hi = float(_st.norm.isf(target))    # alone it would spend exactly target: c_k <= hi
        lo = hi - 3.0
        while excess(lo) < 0:
            lo -= 3.0
        out.append(float(brentq(excess, lo, hi, xtol=1e-7)))
    return tuple(out)


def first_claim_boundaries(looks: tuple[int, ...], level: float, spending: str,
                           gamma: float | None) -> tuple[float, ...]:
    """The efficacy boundaries of a robust design: nothing is spent before the first look at
    which the exact sign-flip test can reach the level (its smallest one-sided p, ``2^-n``,
    at most ``level``), and that look spends at least ``2^-n`` (so a claim is possible there).
    Raises when no look can (too few seeds for the level)."""
    for first, n in enumerate(looks):
        if 2.0 ** -n <= level:
            return spending_boundaries(looks, level, spending, gamma, first, 2.0 ** -n * (1 + 1e-6))
    need = next(n for n in range(2, 200) if 2.0 ** -n <= level)
    raise ValueError(f"no look reaches the level alpha/2m = {level:.3g} without assuming normal differences: "
                     f"the exact sign-flip test needs at least {need} seeds for it (with n seeds its smallest "
                     f"one-sided p is 2^-n); raise max to at least {need}, or test fewer configurations")


# --------------------------------------------------------------------------- design

def look_counts(initial: int, step: int, max_seeds: int) -> tuple[int, ...]:
    """Seed counts of the looks: initial, initial + step, ..., the last one capped at max.

    Every batch between looks has at least 2 seeds: a remainder of 1 seed joins the batch
    before it.
    """
    if not (initial >= 2 and step >= 2 and max_seeds >= initial):
        raise ValueError(f"seeds: need initial >= 2, step >= 2 and max >= initial "
                         f"(got initial={initial}, step={step}, max={max_seeds})")
    looks = list(range(initial, max_seeds + 1, step))
    if looks[-1] != max_seeds:
        if max_seeds - looks[-1] < 2 and len(looks) > 1:
            looks.pop()
        looks.append(max_seeds)
    return tuple(looks)


@dataclass(frozen=True)
class SequentialDesign:
    """A fixed group-sequential plan. ``==`` compares the inputs (what the user chose); the
    boundaries are derived from them once and stored alongside (``sequential.json``), and
    launch and report decide on the stored numbers.

    ``efficacy[k]``: normal-scale boundary at look k ("beats" when z >= it, "worse" when
    z <= -it, "equivalent" when both one-sided equivalence scores are >= it); ``inf`` where
    the look makes no claim. ``futility[k]``: the futility statistic's boundary (robust: the
    beta-spending offset g_k; ``inf`` where there is no futility stop). ``sd``: the design SD
    (robust), fixed from the first look; None until then.
    """
    looks: tuple[int, ...]
    alpha: float
    effect: float
    margin: float | None
    n_configs: int
    spending: str = V03_SPENDING[0]
    gamma: float | None = V03_SPENDING[1]
    futility_beta: float = V03_BETA
    futility_spending: str = V03_FUTILITY[0]
    futility_gamma: float | None = V03_FUTILITY[1]
    statistic: str = "inverse-normal"
    futility_cp: float = 0.0
    efficacy: tuple[float, ...] = field(default=(), compare=False)
    futility: tuple[float, ...] = field(default=(), compare=False)
    sd: float | None = field(default=None, compare=False)

    @property
    def level(self) -> float:
        """One-sided level per configuration and side (Bonferroni): ``alpha / (2 m)``."""
        return self.alpha / (2 * self.n_configs)

    @property
    def max_seeds(self) -> int:
        return self.looks[-1]

    @property
    def robust(self) -> bool:
        return self.statistic == "robust"

    @property
    def first_claim(self) -> int:
        """Seeds at the first look that can make a claim."""
        return next((n for n, c in zip(self.looks, self.efficacy) if math.isfinite(c)), self.max_seeds)

    @property
    def method(self) -> str:
        def name(s, g):
            return f"Hwang-Shih-DeCani (gamma={g:g})" if s == "hsd" else f"{s} type"
        head = (f"Lan-DeMets alpha spending, {name(self.spending, self.gamma)}, two-sided, Bonferroni over "
                f"{self.n_configs} configuration(s) (alpha/2m = {self.level:.3g} per side)")
        if self.robust:
            if self.margin is not None:
                stop = (f"equivalence within {self.margin:g} (two one-sided t-tests at the efficacy boundaries) "
                        f"instead of futility")
            elif self.futility_beta > 0 or self.futility_cp > 0:
                stop = (f"non-binding futility at the design SD from the first look: "
                        f"{name(self.futility_spending, self.futility_gamma)} beta spending of "
                        f"{self.futility_beta:g} at effect {self.effect:g}, or a conditional power for the "
                        f"effect under {self.futility_cp:g}")
            else:
                stop = "no futility stop"
            return (f"{head}; a claim needs the paired t-test and Hall's skewness-corrected t-test of all seeds "
                    f"so far, from {self.first_claim} seeds (where the exact sign-flip test can reach the level); "
                    f"{stop}")
        stat = ("inverse-normal combination of the per-batch paired t-tests"
                if self.statistic == "inverse-normal" else "pooled paired t mapped to z by its p-value")
        fut = (f"non-binding futility: {name(self.futility_spending, self.futility_gamma)} "
               f"beta spending of {self.futility_beta:g} at effect {self.effect:g}"
               if self.futility_beta > 0 else "no futility stop")
        return f"{head}; {stat}; {fut}"

    def with_sd(self, sd: float | None) -> "SequentialDesign":
        """The design with its SD fixed (robust designs; the first look's pooled SD)."""
        return replace(self, sd=None if sd is None else float(sd))

    def to_dict(self) -> dict:
        """JSON-able; ``from_dict(to_dict(d))`` gives back the same design, boundaries too."""
        out = asdict(self)
        out["looks"] = list(self.looks)
        out["efficacy"] = [float(c) if math.isfinite(c) else "inf" for c in self.efficacy]
        out["futility"] = [float(c) if math.isfinite(c) else "inf" for c in self.futility]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "SequentialDesign":
        """A stored design; one written by rewardsweep 0.3 (no ``statistic`` field added since)
        keeps its 0.3 meaning."""
        d = dict(data)
        d["looks"] = tuple(int(n) for n in d["looks"])
        for key in ("efficacy", "futility"):
            d[key] = tuple(float(c) for c in d[key])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def make_design(initial: int, step: int, max_seeds: int, alpha: float, effect: float,
                margin: float | None = None, n_configs: int = 1, *,
                spending: tuple[str, float | None] | None = None,
                futility: tuple[str, float | None] | None | str = "default",
                futility_beta: float | None = None,
                futility_cp: float | None = None,
                statistic: str = STATISTIC) -> SequentialDesign:
    """The design for seeds ``initial, initial + step, ..., max``, boundaries computed.

    ``effect`` (> 0): the difference of interest (futility, power). ``margin``: the
    equivalence margin, or None. ``futility=None`` (or ``futility_beta=0`` and
    ``futility_cp=0``): no futility stop (efficacy stops only). ``statistic``: "robust"
    (default), or the 0.3 rule ("inverse-normal", "pooled-t") for comparisons.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if not effect > 0:
        raise ValueError(f"effect must be > 0, got {effect}")
    if margin is not None and not margin > 0:
        raise ValueError(f"margin must be > 0 or absent, got {margin}")
    if n_configs < 1:
        raise ValueError(f"n_configs must be >= 1, got {n_configs}")
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; one of {', '.join(STATISTICS)}")
    robust = statistic == "robust"
    looks = look_counts(initial, step, max_seeds)
    eff = spending or (EFFICACY_SPENDING if robust else V03_SPENDING)
    fut = (FUTILITY_SPENDING if robust else V03_FUTILITY) if futility == "default" else futility
    beta = (FUTILITY_BETA if robust else V03_BETA) if futility_beta is None else futility_beta
    cp = (FUTILITY_CP if robust else 0.0) if futility_cp is None else futility_cp
    if fut is None:
        beta, cp = 0.0, 0.0
    fut_name, fut_gamma = fut if fut is not None else (FUTILITY_SPENDING if robust else V03_FUTILITY)
    design = SequentialDesign(looks, float(alpha), float(effect), None if margin is None else float(margin),
                              int(n_configs), eff[0], eff[1], float(beta), fut_name, fut_gamma, statistic,
                              float(cp))
    return with_boundaries(design)


def with_boundaries(design: SequentialDesign) -> SequentialDesign:
    """The design with its boundaries (re)computed from its inputs."""
    if design.robust:
        eff = first_claim_boundaries(design.looks, design.level, design.spending, design.gamma)
    else:
        eff = spending_boundaries(design.looks, design.level, design.spending, design.gamma)
    if design.futility_beta > 0:
        fut = spending_boundaries(design.looks, design.futility_beta, design.futility_spending,
                                  design.futility_gamma)
    else:
        fut = (math.inf,) * len(design.looks)
    return replace(design, efficacy=eff, futility=fut)


def design_sd(first_look) -> float:
    """The design SD of a robust design: the median over configurations of the SD of their
    first look's paired differences. The median, because configurations of a sweep differ in
    spread: one that collapses on some seeds (SD ten times the others') must not make the design
    believe every configuration is that noisy (and stop them all as underpowered).

    ``first_look``: ``[..., configurations, n_1]`` (vectorised: one SD per leading index), or
    a list of 1-D arrays (a study's configurations). NaN when no configuration has 2 seeds.
    """
    if isinstance(first_look, (list, tuple)):
        rows = [np.asarray(r, dtype=float) for r in first_look if len(r) >= 2]
        if not rows:
            return float("nan")
        return float(np.median([np.std(r, ddof=1) for r in rows]))
    x = np.asarray(first_look, dtype=float)
    return np.median(np.std(x, axis=-1, ddof=1), axis=-1)


# --------------------------------------------------------------------------- statistics

def normal_score(delta, se, df):
    """``Phi^-1(F_t(delta / se; df))``, the t statistic on the normal scale (vectorised).

    Taken through the upper tail for precision: ``sign(t) * Phi^-1(1 - sf(|t|))``. A zero
    SE gives +-inf, or 0 when delta is 0 too (a configuration identical to its control).
    """
    delta = np.asarray(delta, dtype=float)
    se = np.asarray(se, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(se > 0, delta / np.where(se > 0, se, 1.0), np.sign(delta) * np.inf)
    t = np.where(np.isnan(t) & (delta == 0), 0.0, t)     # 0 / 0: no difference seen
    return t_score(t, df)


def t_score(t, df):
    """A statistic read against Student's t with ``df`` degrees of freedom, on the normal scale."""
    t = np.asarray(t, dtype=float)
    return np.sign(t) * _st.norm.isf(_st.t.sf(np.abs(t), df))


@dataclass(frozen=True)
class LookStats:
    """Per-look arrays ``[..., K_done]`` of :func:`look_decisions` (K_done: full looks)."""
    n: np.ndarray          # [K_done] seeds at each look
    mean: np.ndarray       # mean paired difference
    t: np.ndarray          # paired t statistic of all seeds so far (of mean d = 0)
    z: np.ndarray          # the decision statistic on the normal scale
    z_equivalence: np.ndarray   # smaller of the two one-sided equivalence scores (NaN: no margin)
    z_futility: np.ndarray      # the futility statistic ("futile" when >= futility)
    decision: np.ndarray   # code per look, as if that look were reached (see DECISIONS)
    z_skew: np.ndarray | None = None   # robust: Hall's skew-corrected score (a claim needs z and it)
    futility: np.ndarray | None = None  # robust: the futility boundary per look (it depends on the SD)


def look_decisions(design: SequentialDesign, diffs, sd=None) -> LookStats:
    """Statistics and decision codes at every full look of ``diffs`` ``[..., seeds]``.

    Each look k uses the first ``n_k`` seeds; looks beyond the seeds given are left out.
    The decision at a look ignores earlier ones; :func:`first_decision` applies the stopping.
    Robust designs need the design SD: ``design.sd``, else ``sd`` (broadcast against the
    leading axes), else the first look of ``diffs`` pooled over the second-to-last axis
    (the configurations of a study).
    """
    d = np.asarray(diffs, dtype=float)
    if design.robust:
        return _robust_looks(design, d, sd)
    return _v03_looks(design, d)


def _robust_looks(design: SequentialDesign, d: np.ndarray, sd) -> LookStats:
    ns = [n for n in design.looks if n <= d.shape[-1]]
    last, big = len(design.looks) - 1, design.max_seeds
    shape = d.shape[:-1]
    sd = _design_sds(design, d, sd)
    c_last = design.efficacy[-1]
    cols: dict[str, list] = {k: [] for k in ("mean", "t", "z", "zh", "zeq", "zfut", "fut", "code")}
    for k, n in enumerate(ns):
        x = d[..., :n]
        mean = np.mean(x, axis=-1)
        se = np.std(x, axis=-1, ddof=1) / math.sqrt(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(se > 0, mean / np.where(se > 0, se, 1.0), np.sign(mean) * np.inf)
        t = np.where(np.isnan(t) & (mean == 0), 0.0, t)
        z = t_score(t, n - 1)
        tt, a, b, _ = _stats._hall_terms(x, 0.0)
        zh = t_score(_stats.hall_transform(tt, a, b), n - 1) if n >= 3 else z
        c = design.efficacy[k]
        beats = (z >= c) & (zh >= c)
        worse = (z <= -c) & (zh <= -c)
        if design.margin is not None:
            zeq = np.minimum(normal_score(design.margin - mean, se, n - 1),
                             normal_score(mean + design.margin, se, n - 1))
            stop = zeq >= c
            zfut = np.full(shape, np.nan)
            fut = np.full(shape, np.inf)
        else:
            zeq = np.full(shape, np.nan)
            with np.errstate(divide="ignore", invalid="ignore"):
                # |z| at the design SD, or at the configuration's own when that is larger (a noisy
                # configuration's mean is not read as more precise than its seeds show)
                spread = np.maximum(sd, np.where(np.isfinite(se), se * math.sqrt(n), 0.0))
                drift = design.effect / np.where(spread > 0, spread, np.nan)    # the effect per seed, in SDs
                zfut = drift * math.sqrt(n) - np.abs(mean) * math.sqrt(n) / spread   # (effect - |mean|) in SEs
                fut = np.full(shape, design.futility[k])
                if design.futility_cp > 0 and k < last and math.isfinite(c_last):
                    # conditional power of a claim by max if the difference were the effect, or the
                    # larger one seen (Brownian motion with that drift; Lan, Simon & Halperin 1982):
                    # below futility_cp when |z| < h, i.e. zfut >= drift*sqrt(n) - h
                    ahead = np.maximum(design.effect, np.abs(mean)) / np.where(spread > 0, spread, np.nan)
                    tk = n / big
                    h = (c_last - ahead * math.sqrt(big) * (1 - tk)
                         + _st.norm.ppf(design.futility_cp) * math.sqrt(1 - tk)) / math.sqrt(tk)
                    fut = np.minimum(fut, drift * math.sqrt(n) - h)
            stop = zfut >= fut
        code = np.select([beats, worse, stop], [BEATS, WORSE, EQUIVALENT if design.margin is not None else FUTILE],
                         UNDECIDED if k == last else CONTINUE)
        for key, v in zip(cols, (mean, t, z, zh, zeq, zfut, fut, code)):
            cols[key].append(np.broadcast_to(v, shape))

    def stack(key):
        return np.stack(cols[key], axis=-1) if ns else np.zeros(shape + (0,))

    return LookStats(np.array(ns, dtype=int), stack("mean"), stack("t"), stack("z"), stack("zeq"),
                     stack("zfut"), stack("code").astype(int), stack("zh"), stack("fut"))


def _design_sds(design: SequentialDesign, d: np.ndarray, sd) -> np.ndarray | None:
    """The design SD for every configuration of ``d`` ``[..., seeds]``: the design's own, the
    caller's, or the first look pooled over the configurations (second-to-last axis; a 1-D
    series is one configuration). None before the first look is complete."""
    shape = d.shape[:-1]
    if design.sd is not None:
        return np.full(shape, float(design.sd))
    if sd is not None:
        return np.broadcast_to(np.asarray(sd, dtype=float), shape)
    if d.shape[-1] < design.looks[0]:
        return None
    first = d[..., : design.looks[0]]
    if d.ndim == 1:
        return np.asarray(float(np.std(first, ddof=1)))
    return np.broadcast_to(design_sd(first)[..., None], shape)


def _v03_looks(design: SequentialDesign, d: np.ndarray) -> LookStats:
    """The rewardsweep 0.3 rule (kept unchanged for studies started then)."""
    ns = [n for n in design.looks if n <= d.shape[-1]]
    last = len(design.looks) - 1
    score = _score_paths(design, d, ns)
    cols: dict[str, list] = {k: [] for k in ("mean", "t", "z", "zeq", "zfut", "code")}
    for k, n in enumerate(ns):
        x = d[..., :n]
        mean = np.mean(x, axis=-1)
        se = np.std(x, axis=-1, ddof=1) / math.sqrt(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(se > 0, mean / np.where(se > 0, se, 1.0), np.sign(mean) * np.inf)
        c, f = design.efficacy[k], design.futility[k]
        z = score(0.0)[k]
        zfut = np.minimum(-score(design.effect)[k], score(-design.effect)[k])
        if design.margin is not None:
            zeq = np.minimum(-score(design.margin)[k], score(-design.margin)[k])
            equivalent = zeq >= c
        else:
            zeq = np.full_like(mean, np.nan)
            equivalent = np.zeros(mean.shape, dtype=bool)
        code = np.select([z >= c, z <= -c, equivalent, zfut >= f],
                         [BEATS, WORSE, EQUIVALENT, FUTILE],
                         UNDECIDED if k == last else CONTINUE)
        for key, v in zip(cols, (mean, t, z, zeq, zfut, code)):
            cols[key].append(v)
    shape = d.shape[:-1]

    def stack(key, dtype=float):
        return np.stack(cols[key], axis=-1) if ns else np.zeros(shape + (0,), dtype=dtype)

    fut = np.broadcast_to(np.asarray(design.futility[:len(ns)], dtype=float), shape + (len(ns),))
    return LookStats(np.array(ns, dtype=int), stack("mean"), stack("t"), stack("z"),
                     stack("zeq"), stack("zfut"), stack("code", int), None, fut)


def _score_paths(design: SequentialDesign, d: np.ndarray, ns: list[int]):
    """0.3 rule: ``score(shift) -> [z at look k for the hypothesis "mean d = shift"]``.

    ``"inverse-normal"``: each batch of new seeds gets its own paired t p-value on the normal
    scale ``z_j``; the look's statistic is ``sum_j sqrt(b_j) z_j / sqrt(n_k)`` (Lehmacher &
    Wassmer 1999), exactly the canonical process for normal differences. ``"pooled-t"``: the
    t of all n_k seeds on the normal scale (Jennison & Turnbull 2000's significance level
    approach).
    """
    cache: dict[float, list] = {}
    starts = [0] + ns[:-1]

    def score(shift: float) -> list:
        if shift in cache:
            return cache[shift]
        if design.statistic == "pooled-t":
            out = []
            for n in ns:
                x = d[..., :n]
                se = np.std(x, axis=-1, ddof=1) / math.sqrt(n)
                out.append(normal_score(np.mean(x, axis=-1) - shift, se, n - 1))
        else:
            out, total = [], 0.0
            for a, b in zip(starts, ns):
                x = d[..., a:b]
                se = np.std(x, axis=-1, ddof=1) / math.sqrt(b - a)
                total = total + math.sqrt(b - a) * normal_score(np.mean(x, axis=-1) - shift, se, b - a - 1)
                out.append(total / math.sqrt(b))
        cache[shift] = out
        return out

    return score


def first_decision(codes) -> tuple[np.ndarray, np.ndarray]:
    """Stopping applied to per-look codes ``[..., K_done]``: ``(code, look index)``.

    The first look whose code is not "continue"; ``(CONTINUE, -1)`` where none is.
    """
    codes = np.asarray(codes)
    if codes.shape[-1] == 0:
        return np.full(codes.shape[:-1], CONTINUE), np.full(codes.shape[:-1], -1)
    stopped = codes != CONTINUE
    idx = np.argmax(stopped, axis=-1)
    hit = np.take_along_axis(stopped, idx[..., None], axis=-1)[..., 0]
    code = np.where(hit, np.take_along_axis(codes, idx[..., None], axis=-1)[..., 0], CONTINUE)
    return code, np.where(hit, idx, -1)


# --------------------------------------------------------------------------- decide

@dataclass(frozen=True)
class LookResult:
    look: int              # 0-based look index
    n: int                 # seeds used
    mean: float            # mean paired difference
    t: float               # paired t of all n seeds
    z: float               # the decision statistic on the normal scale
    upper: float           # "beats" when z >= upper (robust: and z_skew >= upper)
    lower: float           # "worse" when z <= lower (= -upper)
    z_equivalence: float | None   # "equivalent" when >= upper (None without a margin)
    z_futility: float      # "futile" when >= futility
    futility: float
    decision: str
    z_skew: float | None = None   # robust: Hall's skew-corrected score


@dataclass(frozen=True)
class Outcome:
    """One configuration's sequential result: the looks it went through and where it ended."""
    looks: tuple[LookResult, ...]
    decision: str          # beats / worse / equivalent / futile / undecided / continue
    decided_at: int | None  # seeds at the deciding look (None while "continue")
    next_seeds: int        # total seeds it needs for its next look; 0 when done

    @property
    def done(self) -> bool:
        return self.decision != "continue"


@dataclass(frozen=True)
class Decisions:
    """:func:`decide` on many configurations: arrays over the leading axes of the input."""
    code: np.ndarray       # DECISIONS index
    seeds: np.ndarray      # seeds used: at the deciding look, or the last full look while open
    sd: np.ndarray | None  # robust: the design SD used (per study)

    @property
    def decision(self) -> np.ndarray:
        return np.asarray(DECISIONS, dtype=object)[self.code]


def decide(design: SequentialDesign, diffs, sd=None):
    """Each configuration's decision from its paired differences in seed order.

    1-D ``diffs`` (one configuration): an :class:`Outcome` with every look it went through.
    ``[..., configurations, seeds]``: a :class:`Decisions` (arrays; a study's configurations
    on the second-to-last axis share the design SD of their first look unless the design
    or ``sd`` gives one).

    Pure: only full looks count (seeds past the last full look, or past max, are ignored),
    and the looks after the deciding one are not evaluated, so a decision never changes
    as seeds are added.
    """
    d = np.asarray(diffs, dtype=float)
    if d.ndim == 0:
        raise ValueError("decide takes paired differences [..., seeds], got a scalar")
    s = look_decisions(design, d, sd)
    code, idx = first_decision(s.decision)
    if d.ndim > 1:
        n = np.asarray(s.n)
        seeds = np.where(idx >= 0, n[np.maximum(idx, 0)] if n.size else 0, n[-1] if n.size else 0)
        used = _design_sds(design, d, sd) if design.robust else None
        return Decisions(np.asarray(code, dtype=int), np.asarray(seeds, dtype=int), used)
    code, idx = int(code), int(idx)
    upto = idx + 1 if idx >= 0 else len(s.n)
    looks = tuple(
        LookResult(k, int(s.n[k]), float(s.mean[k]), float(s.t[k]), float(s.z[k]),
                   design.efficacy[k], -design.efficacy[k],
                   None if design.margin is None else float(s.z_equivalence[k]),
                   float(s.z_futility[k]), float(s.futility[k]) if s.futility is not None else design.futility[k],
                   DECISIONS[int(s.decision[k])], None if s.z_skew is None else float(s.z_skew[k]))
        for k in range(upto))
    if idx >= 0:
        return Outcome(looks, DECISIONS[code], int(s.n[idx]), 0)
    return Outcome(looks, "continue", None, design.looks[len(s.n)])


POINTS = 100.0   # trial records hold mIoU in [0, 1]; a study's effect and margin are in points


def paired_series(reward: dict, control: dict, max_seeds: int, scale: float = POINTS
                  ) -> tuple[list[float], str | None]:
    """The differences a configuration's decisions read, and what stopped the series.

    ``reward`` and ``control``: seed -> (status, final mIoU) of the two arms. Seed by seed
    from 0, ``scale * (reward - control)`` (mIoU points) while both finished; the series
    stops at the first seed either arm lacks (not run yet), or that did not finish (then the
    second item says so: a look read without that seed would not be the planned look).
    Launch and report both use this rule.
    """
    diffs: list[float] = []
    for seed in range(max_seeds):
        if seed not in reward or seed not in control:
            return diffs, None
        for arm, (status, _) in (("reward", reward[seed]), ("control", control[seed])):
            if status != "finished":
                return diffs, f"seed {seed}: {arm} arm {status}"
        diffs.append(scale * (float(reward[seed][1]) - float(control[seed][1])))
    return diffs, None


# --------------------------------------------------------------------------- power

def power(design: SequentialDesign, sd: float, n_configs: int = 20_000, seed: int = 0) -> float:
    """P("beats") of a configuration whose true difference is ``effect``, at paired-difference SD
    ``sd`` (normal differences), by simulating the design itself: every configuration of the
    study at the effect, the design SD estimated from the first look as the rule does.
    Seeded (the same answer every time; Monte Carlo SE about 0.3 points at 20,000)."""
    m = design.n_configs
    studies = max(1, math.ceil(n_configs / m))
    rng = np.random.default_rng(seed)
    d = design.effect + sd * rng.standard_normal((studies, m, design.max_seeds))
    plain = replace(design, sd=None)
    return float(np.mean(decide(plain, d).code == BEATS))


def sd_for_power(design: SequentialDesign, target: float = POWER, n_configs: int = 8000) -> float:
    """The largest paired-difference SD at which the design has ``target`` power for its
    effect (bisection on :func:`power` with common random numbers); NaN when even a tiny SD
    does not reach it."""
    from scipy.optimize import brentq

    lo, hi = design.effect / 50, design.effect * 4

    def gap(log_sd: float) -> float:
        return power(design, math.exp(log_sd), n_configs) - target

    if gap(math.log(lo)) < 0:
        return float("nan")
    if gap(math.log(hi)) >= 0:
        return hi
    return float(math.exp(brentq(gap, math.log(lo), math.log(hi), xtol=1e-3)))


def settle_sd(design: SequentialDesign, series) -> SequentialDesign:
    """A robust design with its SD fixed from the first look, once every configuration's first
    look is in: ``series`` is ``[(diffs, stopped)]`` per configuration (``stopped``: a failed
    trial ended it, so it will not complete). Unchanged while a first look is still running,
    for a design whose SD is already fixed, and for a 0.3 design."""
    if not design.robust or design.sd is not None:
        return design
    n1 = design.looks[0]
    series = list(series)
    if not series or any(len(d) < n1 and not stopped for d, stopped in series):
        return design
    first = [list(d)[:n1] for d, _ in series if len(d) >= n1]
    sd = design_sd(first)
    return design.with_sd(sd) if math.isfinite(sd) else design


def equivalence_rate(design: SequentialDesign, sd: float, n_configs: int = 8000, seed: int = 0) -> float:
    """P("equivalent") of a configuration with no true difference at SD ``sd`` (normal
    differences; a design with a margin), simulated like :func:`power`."""
    m = design.n_configs
    rng = np.random.default_rng(seed)
    d = sd * rng.standard_normal((max(1, math.ceil(n_configs / m)), m, design.max_seeds))
    return float(np.mean(decide(replace(design, sd=None), d).code == EQUIVALENT))


# --------------------------------------------------------------------------- a study's look

SPEC_INPUTS = ("looks", "alpha", "effect", "margin", "n_configs")   # what a spec decides of a design


class DesignError(ValueError):
    """The spec's seeds make no design (no look could make a claim, a bad alpha, ...)."""


@functools.lru_cache(maxsize=8)
def cached_design(initial: int, step: int, max_seeds: int, alpha: float, effect: float, margin: float | None,
                  n_configs: int) -> SequentialDesign:
    """:func:`make_design` with the study defaults, once per plan (a launch reads its plan twice)."""
    return make_design(initial, step, max_seeds, alpha, effect, margin, n_configs)


def changed_inputs(stored: SequentialDesign, plan: SequentialDesign) -> list[str]:
    """What ``plan`` would change of a stored design's inputs, one "key old -> new" each."""
    return [f"{key} {getattr(stored, key)!r} -> {getattr(plan, key)!r}"
            for key in SPEC_INPUTS if getattr(stored, key) != getattr(plan, key)]


@dataclass(frozen=True)
class StudyLook:
    """One reading of a sequential study's records against its design: what a launch needs
    of it, computed here in one go (the launch side reads these values, it does not ask again)."""
    design: SequentialDesign                 # the design decided with (SD fixed once every first look is in)
    outcomes: dict[str, Outcome]             # config id -> its outcome
    stopped: dict[str, str | None]           # config id -> the failed seed that ended its series, or None
    record: dict                             # ``design.to_dict()`` (W&B decision runs)
    made: dict | None = None                 # a design made from the plan (none stored): {"design", "method"}
    settled: dict | None = None              # ``design.to_dict()`` when this reading fixed the SD
    changed: list[str] = field(default_factory=list)   # what the plan would change of the stored design


def study_look(design: SequentialDesign | dict | None, pairs: dict[str, tuple[dict, dict]],
               plan: dict | None = None) -> StudyLook:
    """Decide every configuration of a study from its records.

    ``design``: the design the study decides with, or as stored (``sequential.json``'s
    "design"), or None: made from ``plan`` (:func:`cached_design`'s arguments; a
    :class:`DesignError` when it makes none). A stored design is compared with ``plan``
    (:attr:`StudyLook.changed`). ``pairs``: config id -> (reward arm, control arm), each
    seed -> (status, final mIoU) (:func:`paired_series`). Until a robust design's SD is fixed,
    nothing is decided (each configuration waits at its first look).
    """
    made, changed = None, []
    if design is None:
        try:
            design = cached_design(**plan)
        except ValueError as exc:
            raise DesignError(str(exc)) from None
        made = {"design": design.to_dict(), "method": design.method}
    elif isinstance(design, dict):
        design = SequentialDesign.from_dict(design)
        if plan is not None:
            changed = changed_inputs(design, SequentialDesign(
                look_counts(plan["initial"], plan["step"], plan["max_seeds"]), float(plan["alpha"]),
                float(plan["effect"]), None if plan["margin"] is None else float(plan["margin"]),
                int(plan["n_configs"])))
    series = {cid: paired_series(reward, control, design.max_seeds) for cid, (reward, control) in pairs.items()}
    settled = settle_sd(design, [(diffs, stopped is not None) for diffs, stopped in series.values()])
    waiting = Outcome((), "continue", None, settled.looks[0]) if settled.robust and settled.sd is None else None
    outcomes = {cid: decide(settled, diffs) if waiting is None else waiting for cid, (diffs, _) in series.items()}
    record = settled.to_dict()
    return StudyLook(settled, outcomes, {cid: stopped for cid, (_, stopped) in series.items()}, record, made,
                     record if design.sd is None and settled.sd is not None else None, changed)
