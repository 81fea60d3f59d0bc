"""Group-sequential decisions: add seeds to a configuration only while its answer is open.

Method (docs/report.md, "Sequential studies"): each reward configuration is compared with
its paired control after each *look* (a planned seed count). The seeds added between two
looks are a batch; each batch's paired t statistic goes to the normal scale through its
exact p-value and the look's statistic is their inverse-normal combination (Lehmacher &
Wassmer 1999), which under the null is exactly the normal score process,
``corr(Z_i, Z_j) = sqrt(n_i / n_j)``, however few the seeds. It is compared with two-sided
Lan-DeMets (1983) alpha-spending boundaries computed once from that multivariate normal
(``scipy.stats.multivariate_normal.cdf`` and ``scipy.optimize.brentq``). Across the ``m``
configurations the level is split by Bonferroni (``alpha / m`` per configuration,
``alpha / 2m`` per side), valid under any dependence (configurations share controls).
So the family-wise rate of a false "beats" or "worse", over all configurations and looks,
is at most ``alpha`` under the global null.

Stops for "equivalent" (``|mean d| < margin`` shown, at the efficacy boundaries) and
"futile" (``|mean d| < effect`` shown, at a beta-spending boundary) are non-binding: the
efficacy boundaries ignore them, so stopping there can only lower the chance of a false
"beats"/"worse".

Pure numpy/scipy: the functions that launch calls (:func:`decide`) and the simulations
(:func:`simulate`) run the same vectorised code (:func:`look_decisions`), so a decision
re-derived from the records equals the one launch acted on. Units: the paired differences,
``effect`` and ``margin`` in one unit (the caller's, e.g. mIoU points).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats as _st

DECISIONS = ("continue", "beats", "worse", "equivalent", "futile", "undecided")
CONTINUE, BEATS, WORSE, EQUIVALENT, FUTILE, UNDECIDED = range(len(DECISIONS))
SPENDINGS = ("hsd", "obrien-fleming", "pocock")

# Defaults chosen by the simulations in tests/test_analysis_sequential.py (see the report doc).
EFFICACY_SPENDING = ("hsd", -2.0)   # Hwang-Shih-DeCani gamma=-2: little spent at the first
                                    # looks, where a batch's t tails make early claims costly
FUTILITY_SPENDING = ("hsd", 3.0)    # futility spent early: null configurations stop soon
STATISTICS = ("inverse-normal", "pooled-t")
STATISTIC = "inverse-normal"        # exact at any seed count; "pooled-t" only approximately
FUTILITY_BETA = 0.15                # P(stop for futility | true difference = effect) <= 0.15

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
                        gamma: float | None = None) -> tuple[float, ...]:
    """One-sided normal-scale boundaries ``c_k`` that spend ``level`` over the looks.

    ``c_1 = Phi^-1(1 - spent(t_1))``; then each ``c_k`` solves
    ``P(Z_1 < c_1, ..., Z_{k-1} < c_{k-1}, Z_k >= c_k) = spent(t_k) - spent(t_{k-1})``
    with ``t_k = n_k / n_K`` (``multivariate_normal.cdf`` over that box, ``brentq`` on c).
    A look that spends nothing gets ``inf``.
    """
    from scipy.optimize import brentq

    n = np.asarray(looks, dtype=float)
    cum = spent(n / n[-1], level, spending, gamma)
    inc = np.diff(np.concatenate([[0.0], cum]))
    corr = score_correlation(looks)
    out: list[float] = []
    for k, target in enumerate(inc):
        if not target > 0:
            out.append(math.inf)
            continue
        if k == 0:
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


# --------------------------------------------------------------------------- design

def look_counts(initial: int, step: int, max_seeds: int) -> tuple[int, ...]:
    """Seed counts of the looks: initial, initial + step, ..., the last one capped at max.

    Every batch between looks has at least 2 seeds (each batch gets its own t-test): a
    remainder of 1 seed joins the batch before it.
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
    """A fixed group-sequential plan. ``==`` compares the inputs (what the user chose);
    the boundaries are derived from them once and stored alongside, so decisions are always
    taken on the stored numbers.

    ``efficacy[k]``: normal-scale boundary at look k ("beats" when z >= it, "worse" when
    z <= -it; also the equivalence boundary). ``futility[k]``: boundary of the futility
    statistic (``inf`` where there is no futility stop).
    """
    looks: tuple[int, ...]
    alpha: float
    effect: float
    margin: float | None
    n_configs: int
    spending: str = EFFICACY_SPENDING[0]
    gamma: float | None = EFFICACY_SPENDING[1]
    futility_beta: float = FUTILITY_BETA
    futility_spending: str = FUTILITY_SPENDING[0]
    futility_gamma: float | None = FUTILITY_SPENDING[1]
    statistic: str = STATISTIC
    efficacy: tuple[float, ...] = field(default=(), compare=False)
    futility: tuple[float, ...] = field(default=(), compare=False)

    @property
    def level(self) -> float:
        """One-sided level per configuration and side (Bonferroni): ``alpha / (2 m)``."""
        return self.alpha / (2 * self.n_configs)

    @property
    def max_seeds(self) -> int:
        return self.looks[-1]

    @property
    def method(self) -> str:
        def name(s, g):
            return f"Hwang-Shih-DeCani (gamma={g:g})" if s == "hsd" else f"{s} type"
        stat = ("inverse-normal combination of the per-batch paired t-tests"
                if self.statistic == "inverse-normal" else "pooled paired t mapped to z by its p-value")
        fut = (f"non-binding futility: {name(self.futility_spending, self.futility_gamma)} "
               f"beta spending of {self.futility_beta:g} at effect {self.effect:g}"
               if self.futility_beta > 0 else "no futility stop")
        return (f"Lan-DeMets alpha spending, {name(self.spending, self.gamma)}, two-sided, "
                f"Bonferroni over {self.n_configs} configuration(s) (alpha/2m = {self.level:.3g} "
                f"per side); {stat}; {fut}")

    def nominal_p(self) -> tuple[float, ...]:
        """One-sided p-value each look's efficacy boundary corresponds to (``Phi(-c_k)``)."""
        return tuple(float(p) for p in _st.norm.sf(self.efficacy))

    def to_dict(self) -> dict:
        """JSON-able; ``from_dict(to_dict(d))`` gives back the same design, boundaries too."""
        out = asdict(self)
        out["looks"] = list(self.looks)
        out["efficacy"] = [float(c) if math.isfinite(c) else "inf" for c in self.efficacy]
        out["futility"] = [float(c) if math.isfinite(c) else "inf" for c in self.futility]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "SequentialDesign":
        d = dict(data)
        d["looks"] = tuple(int(n) for n in d["looks"])
        for key in ("efficacy", "futility"):
            d[key] = tuple(float(c) for c in d[key])
        return cls(**d)


def make_design(initial: int, step: int, max_seeds: int, alpha: float, effect: float,
                margin: float | None = None, n_configs: int = 1, *,
                spending: tuple[str, float | None] = EFFICACY_SPENDING,
                futility: tuple[str, float | None] | None = FUTILITY_SPENDING,
                futility_beta: float = FUTILITY_BETA,
                statistic: str = STATISTIC) -> SequentialDesign:
    """The design for seeds ``initial, initial + step, ..., max``, boundaries computed.

    ``effect`` (> 0): the difference of interest, used by the futility stop ("a difference
    this large is ruled out"). ``margin``: the equivalence margin, or None. ``futility``:
    its spending function, or None (with ``futility_beta = 0``) for no futility stop.
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
    looks = look_counts(initial, step, max_seeds)
    if futility is None:
        futility_beta = 0.0
    fut_name, fut_gamma = futility if futility is not None else FUTILITY_SPENDING
    design = SequentialDesign(looks, float(alpha), float(effect),
                              None if margin is None else float(margin), int(n_configs),
                              spending[0], spending[1], float(futility_beta), fut_name, fut_gamma,
                              statistic)
    return with_boundaries(design)


def with_boundaries(design: SequentialDesign) -> SequentialDesign:
    """The design with its boundaries (re)computed from its inputs."""
    from dataclasses import replace

    eff = spending_boundaries(design.looks, design.level, design.spending, design.gamma)
    if design.futility_beta > 0:
        fut = spending_boundaries(design.looks, design.futility_beta, design.futility_spending,
                                  design.futility_gamma)
    else:
        fut = (math.inf,) * len(design.looks)
    return replace(design, efficacy=eff, futility=fut)


# --------------------------------------------------------------------------- decisions

def normal_score(delta, se, df):
    """``Phi^-1(F_t(delta / se; df))``, the t statistic on the normal scale (vectorised).

    Taken through the upper tail for precision: ``sign(t) * Phi^-1(1 - sf(|t|))``. A zero
    SE gives +-inf, or 0 when delta is 0 too (a configuration identical to its control).
    """
    delta = np.asarray(delta, dtype=float)
    se = np.asarray(se, dtype=float)
    with np.errstate(invalid="ignore"):
        t = np.where(se > 0, delta / np.where(se > 0, se, 1.0), np.sign(delta) * np.inf)
    t = np.where(np.isnan(t) & (delta == 0), 0.0, t)     # 0 / 0: no difference seen
    return np.sign(t) * _st.norm.isf(_st.t.sf(np.abs(t), df))


@dataclass(frozen=True)
class LookStats:
    """Per-look arrays ``[..., K_done]`` of :func:`look_decisions` (K_done: full looks)."""
    n: np.ndarray          # [K_done] seeds at each look
    mean: np.ndarray       # mean paired difference
    t: np.ndarray          # paired t statistic of all seeds so far (of mean d = 0)
    z: np.ndarray          # the decision statistic on the normal scale
    z_equivalence: np.ndarray   # smaller of the two one-sided equivalence scores (NaN: no margin)
    z_futility: np.ndarray      # the same with the effect as margin
    decision: np.ndarray   # code per look, as if that look were reached (see DECISIONS)


def look_decisions(design: SequentialDesign, diffs) -> LookStats:
    """Statistics and decision codes at every full look of ``diffs`` ``[..., seeds]``.

    Each look k uses the first ``n_k`` seeds; looks beyond the seeds given are left out.
    The decision at a look ignores earlier ones; :func:`first_decision` applies the stopping.
    """
    d = np.asarray(diffs, dtype=float)
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

    return LookStats(np.array(ns, dtype=int), stack("mean"), stack("t"), stack("z"),
                     stack("zeq"), stack("zfut"), stack("code", int))


def _score_paths(design: SequentialDesign, d: np.ndarray, ns: list[int]):
    """``score(shift) -> [z at look k for the hypothesis "mean d = shift"]``, cached per shift.

    ``"inverse-normal"``: each batch of new seeds (look k-1 to k) gets its own paired t
    p-value, on the normal scale ``z_j``; the look's statistic is
    ``sum_j sqrt(b_j) z_j / sqrt(n_k)`` (b_j seeds in batch j). The batches are independent,
    so under the hypothesis these are exactly normal with ``corr = sqrt(n_i / n_j)``: the
    boundaries hold exactly, however few the seeds (Lehmacher & Wassmer 1999).
    ``"pooled-t"``: the t statistic of all n_k seeds on the normal scale (the "significance
    level approach" of Jennison & Turnbull 2000); exact marginally, approximate jointly
    (its error is a little above nominal with few seeds, see docs/report.md).
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


@dataclass(frozen=True)
class LookResult:
    look: int              # 0-based look index
    n: int                 # seeds used
    mean: float            # mean paired difference
    t: float               # paired t of all n seeds (shown; the decision uses z)
    z: float               # the decision statistic on the normal scale (see _score_paths)
    upper: float           # "beats" when z >= upper
    lower: float           # "worse" when z <= lower (= -upper)
    z_equivalence: float | None   # "equivalent" when >= upper (None without a margin)
    z_futility: float      # "futile" when >= futility
    futility: float
    decision: str


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


def decide(design: SequentialDesign, diffs) -> Outcome:
    """The decision for ONE configuration from its paired differences in seed order (1-D).

    Pure: only full looks count (seeds past the last full look, or past max, are ignored),
    and the looks after the deciding one are not evaluated, so a decision never changes
    as seeds are added.
    """
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 1:
        raise ValueError(f"decide takes one configuration's differences (1-D), got shape {d.shape}")
    s = look_decisions(design, d)
    code, idx = first_decision(s.decision)
    code, idx = int(code), int(idx)
    upto = idx + 1 if idx >= 0 else len(s.n)
    looks = tuple(
        LookResult(k, int(s.n[k]), float(s.mean[k]), float(s.t[k]), float(s.z[k]),
                   design.efficacy[k], -design.efficacy[k],
                   None if design.margin is None else float(s.z_equivalence[k]),
                   float(s.z_futility[k]), design.futility[k], DECISIONS[int(s.decision[k])])
        for k in range(upto))
    if idx >= 0:
        return Outcome(looks, DECISIONS[code], int(s.n[idx]), 0)
    return Outcome(looks, "continue", None, design.looks[len(s.n)])


POINTS = 100.0   # trial records hold mIoU in [0, 1]; a study's effect and margin are in points


def paired_series(reward: dict, control: dict, max_seeds: int, scale: float = POINTS
                  ) -> tuple[list[float], str | None]:
    """The differences a configuration's decisions read, and what stopped the series.

    ``reward`` and ``control``: seed -> (status, final mIoU) of the two arms. Seed by seed
    from 0, ``scale * (reward - control)`` (mIoU points) while both finished; the series stops at the first seed either arm
    lacks (not run yet), or that did not finish (then the second item says so: a look read
    without that seed would not be the planned look). Launch and report both use this rule.
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


def next_seed_counts(outcomes) -> list[int]:
    """The total seeds each configuration needs for its next look (0 when decided)."""
    return [o.next_seeds for o in outcomes]


# --------------------------------------------------------------------------- planning

def fixed_seeds_for_power(effect_sd: float, alpha: float, n_configs: int, power: float = 0.8) -> int:
    """Seeds per configuration a fixed design needs for ``power`` at effect/SD ``effect_sd``.

    The two-sided paired t-test at Bonferroni ``alpha / n_configs``
    (:func:`rewardsweep.analysis.stats.seeds_needed`, equal to statsmodels' ``TTestPower``).
    """
    from rewardsweep.analysis.stats import seeds_needed

    return int(seeds_needed(1.0, float(effect_sd), alpha / n_configs, power))


@dataclass(frozen=True)
class SimulationSummary:
    studies: int
    fwer: float             # share of studies with any false "beats"/"worse"
    power: np.ndarray       # [m] P(right-signed claim) where the true mean is not 0, else NaN
    decided: np.ndarray     # [m, len(DECISIONS)] share of studies ending in each decision
    mean_seeds: np.ndarray  # [m] expected seeds used by each configuration
    fwer_se: float

    def seed_ratio(self, fixed_seeds: int) -> float:
        """Expected seeds per configuration over a fixed design's seeds per configuration."""
        return float(np.mean(self.mean_seeds) / fixed_seeds)


def simulate_diffs(true_means, sd: float, n_studies: int, n_seeds: int, rng,
                   shared: float = 0.5) -> np.ndarray:
    """Normal paired differences ``[studies, m, seeds]`` with correlation ``shared`` between
    configurations (0.5: a common control with the same noise as each configuration)."""
    mu = np.asarray(true_means, dtype=float)
    own = rng.standard_normal((n_studies, mu.size, n_seeds))
    common = rng.standard_normal((n_studies, 1, n_seeds))
    return mu[None, :, None] + sd * (math.sqrt(1 - shared) * own + math.sqrt(shared) * common)


def summarise(design: SequentialDesign, diffs, true_means) -> SimulationSummary:
    """Run the design on simulated ``diffs`` ``[studies, m, max]`` and summarise."""
    mu = np.asarray(true_means, dtype=float)
    s = look_decisions(design, diffs)
    code, idx = first_decision(s.decision)
    seeds = np.where(idx >= 0, s.n[np.maximum(idx, 0)], design.max_seeds)
    false = ((code == BEATS) & (mu <= 0)) | ((code == WORSE) & (mu >= 0))
    right = np.where(mu > 0, code == BEATS, code == WORSE)
    studies = code.shape[0]
    fwer = float(np.mean(false.any(axis=1)))
    decided = np.stack([np.mean(code == c, axis=0) for c in range(len(DECISIONS))], axis=-1)
    return SimulationSummary(studies, fwer, np.where(mu != 0, right.mean(axis=0), np.nan),
                             decided, seeds.mean(axis=0), math.sqrt(max(fwer * (1 - fwer), 1e-12) / studies))


def simulate(design: SequentialDesign, true_means, sd: float, n_studies: int, rng,
             shared: float = 0.5) -> SimulationSummary:
    """:func:`summarise` on :func:`simulate_diffs` (vectorised over studies)."""
    d = simulate_diffs(true_means, sd, n_studies, design.max_seeds, rng, shared)
    return summarise(design, d, true_means)


def propose_max(initial: int, step: int, alpha: float, effect: float, sd: float,
                n_configs: int = 1, power: float = 0.8, margin: float | None = None,
                n_studies: int = 20_000, seed: int = 0, limit: int = 1000, **design_options) -> int:
    """The smallest ``max`` at which the design has ``power`` for a true difference
    ``effect`` when the paired differences have SD ``sd`` (assumed, e.g. from a pilot study).

    Power by simulating the design itself (``n_studies``, seeded: the answer is
    reproducible; its Monte Carlo SE is about 0.3 points at 20000). First the smallest
    max on the look grid, then the seed counts just below it (a larger last batch).
    """
    def powered(max_seeds: int) -> bool:
        design = make_design(initial, step, max_seeds, alpha, effect, margin, n_configs, **design_options)
        got = simulate(design, [effect], sd, n_studies, np.random.default_rng(seed), shared=0.0)
        return bool(got.power[0] >= power)

    grid = initial
    while not powered(grid):
        grid += step
        if grid > limit:
            raise ValueError(f"no max up to {limit} seeds reaches power {power} "
                             f"for effect {effect} at SD {sd}")
    for max_seeds in range(max(initial, grid - step + 2), grid):
        if powered(max_seeds):
            return max_seeds
    return grid
