"""Simulating designs: the scenario generators and summaries the tests and benchmarks use.

Not part of any decision: :mod:`rewardsweep.analysis.sequential` decides, this module only
draws paired differences with known truth and counts what the decisions did with them
(tests/test_analysis_sequential.py, tests/test_sequential_scenarios.py,
benchmarks/bench_sequential.py, benchmarks/bench_scenarios.py).

Scenarios (:data:`SCENARIOS`): paired differences with mean 0 (the null) and a scale of 1,
multiplied by the SD and shifted by the true mean by :func:`scenario_diffs`:

- ``normal``; ``t3`` (Student t, 3 df, unit variance);
- ``lognormal+0.78``/``lognormal-0.78``/``lognormal+1.75``/``lognormal-1.75``: a centred
  lognormal with that skewness (sigma 0.25 and 0.5), unit variance, the sign its direction;
- ``collapse``: N(0, 1) on 90% of seeds and -5 on 10% (a collapse), shifted to mean 0 (the
  seeds that did not collapse are 0.5 better: the configuration "wins" on most seeds);
- ``outlier``: N(0, 1) with one seed per configuration at -10 (a random position).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rewardsweep.analysis import sequential as sq

SCENARIOS = ("normal", "t3", "outlier", "lognormal+0.78", "lognormal-0.78", "lognormal+1.75",
             "lognormal-1.75", "collapse")
_LOGNORMAL_SIGMA = {"0.78": 0.25, "1.75": 0.5}      # skewness of exp(sigma Z)
COLLAPSE_RATE, COLLAPSE_AT, OUTLIER_AT = 0.1, -5.0, -10.0


def null_draws(scenario: str, shape: tuple[int, ...], rng) -> np.ndarray:
    """Mean-0 paired differences of ``scenario`` with scale 1, ``shape`` ``[..., seeds]``."""
    if scenario == "normal":
        return rng.standard_normal(shape)
    if scenario == "t3":
        return rng.standard_t(3, shape) / math.sqrt(3.0)
    if scenario.startswith("lognormal"):
        sign = 1.0 if scenario[len("lognormal")] == "+" else -1.0
        s = _LOGNORMAL_SIGMA[scenario[len("lognormal") + 1:]]
        x = np.exp(s * rng.standard_normal(shape))
        mean, var = math.exp(s * s / 2), (math.exp(s * s) - 1) * math.exp(s * s)
        return sign * (x - mean) / math.sqrt(var)
    if scenario == "collapse":
        x = np.where(rng.random(shape) < COLLAPSE_RATE, COLLAPSE_AT, rng.standard_normal(shape))
        return x - COLLAPSE_RATE * COLLAPSE_AT
    if scenario == "outlier":
        x = rng.standard_normal(shape)
        where = rng.integers(0, shape[-1], shape[:-1])
        np.put_along_axis(x, where[..., None], OUTLIER_AT, axis=-1)
        return x
    raise ValueError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")


def scenario_diffs(scenario: str, true_means, sd: float, n_studies: int, n_seeds: int, rng,
                   shared: float = 0.0) -> np.ndarray:
    """Paired differences ``[studies, m, seeds]``: ``true_means[j] + sd * draw``. ``shared``:
    the share of the variance a common control adds (normal part, correlation between
    configurations; 0: independent configurations)."""
    mu = np.asarray(true_means, dtype=float)
    own = null_draws(scenario, (n_studies, mu.size, n_seeds), rng)
    if shared > 0:
        common = rng.standard_normal((n_studies, 1, n_seeds))
        own = math.sqrt(1 - shared) * own + math.sqrt(shared) * common
    return mu[None, :, None] + sd * own


def simulate_diffs(true_means, sd: float, n_studies: int, n_seeds: int, rng,
                   shared: float = 0.5) -> np.ndarray:
    """Normal paired differences ``[studies, m, seeds]`` with correlation ``shared`` between
    configurations (0.5: a common control with the same noise as each configuration)."""
    mu = np.asarray(true_means, dtype=float)
    own = rng.standard_normal((n_studies, mu.size, n_seeds))
    common = rng.standard_normal((n_studies, 1, n_seeds))
    return mu[None, :, None] + sd * (math.sqrt(1 - shared) * own + math.sqrt(shared) * common)


def rate(hits) -> tuple[float, float]:
    """A share and its simulation standard error ``sqrt(p (1 - p) / n)``."""
    hits = np.asarray(hits, dtype=float)
    p = float(np.mean(hits))
    return p, math.sqrt(max(p * (1 - p), 1e-12) / hits.size)


@dataclass(frozen=True)
class SimulationSummary:
    studies: int
    fwer: float             # share of studies with any false "beats"/"worse"
    power: np.ndarray       # [m] P(right-signed claim) where the true mean is not 0, else NaN
    decided: np.ndarray     # [m, len(DECISIONS)] share of studies ending in each decision
    mean_seeds: np.ndarray  # [m] expected seeds used by each configuration
    fwer_se: float
    seeds_se: float = float("nan")   # SE of the mean seeds per configuration (over studies)

    def seed_ratio(self, fixed_seeds: float) -> float:
        """Expected seeds per configuration over a fixed design's seeds per configuration."""
        return float(np.mean(self.mean_seeds) / fixed_seeds)


def summarise(design: sq.SequentialDesign, diffs, true_means) -> SimulationSummary:
    """Run the design on simulated ``diffs`` ``[studies, m, max]`` and summarise."""
    mu = np.asarray(true_means, dtype=float)
    out = sq.decide(design, diffs)
    code, seeds = out.code, out.seeds
    false = ((code == sq.BEATS) & (mu <= 0)) | ((code == sq.WORSE) & (mu >= 0))
    right = np.where(mu > 0, code == sq.BEATS, code == sq.WORSE)
    studies = code.shape[0]
    fwer, fwer_se = rate(false.any(axis=1))
    decided = np.stack([np.mean(code == c, axis=0) for c in range(len(sq.DECISIONS))], axis=-1)
    per_study = seeds.mean(axis=1)
    return SimulationSummary(studies, fwer, np.where(mu != 0, right.mean(axis=0), np.nan), decided,
                             seeds.mean(axis=0), fwer_se, float(np.std(per_study, ddof=1) / math.sqrt(studies)))


def simulate(design: sq.SequentialDesign, true_means, sd: float, n_studies: int, rng,
             shared: float = 0.5) -> SimulationSummary:
    """:func:`summarise` on :func:`simulate_diffs` (vectorised over studies)."""
    d = simulate_diffs(true_means, sd, n_studies, design.max_seeds, rng, shared)
    return summarise(design, d, true_means)


def fixed_seeds_for_power(effect_sd: float, alpha: float, n_configs: int, power: float = 0.8) -> int:
    """Seeds per configuration a fixed design needs for ``power`` at effect/SD ``effect_sd``.

    The two-sided paired t-test at Bonferroni ``alpha / n_configs``
    (:func:`rewardsweep.analysis.stats.seeds_needed`, equal to statsmodels' ``TTestPower``).
    """
    from rewardsweep.analysis.stats import seeds_needed

    return int(seeds_needed(1.0, float(effect_sd), alpha / n_configs, power))


def next_seed_counts(outcomes) -> list[int]:
    """The total seeds each configuration needs for its next look (0 when decided)."""
    return [o.next_seeds for o in outcomes]


def propose_max(initial: int, step: int, alpha: float, effect: float, sd: float,
                n_configs: int = 1, power: float = 0.8, margin: float | None = None,
                n_studies: int = 20_000, seed: int = 0, limit: int = 1000, **design_options) -> int:
    """The smallest ``max`` at which the design has ``power`` for a true difference
    ``effect`` when the paired differences have SD ``sd`` (:func:`sequential.power`, seeded).
    First the smallest max on the look grid, then the seed counts just below it."""
    def powered(max_seeds: int) -> bool:
        try:
            design = sq.make_design(initial, step, max_seeds, alpha, effect, margin, n_configs, **design_options)
        except ValueError:
            return False                    # no look can make a claim yet
        return sq.power(design, sd, n_studies, seed) >= power

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


# --------------------------------------------------------------------------- the scenario suite

def claims(design: sq.SequentialDesign, scenario: str, sd: float, n_studies: int, rng,
           n_configs: int | None = None) -> dict:
    """The global null under ``scenario``: the share of studies with any false claim (the
    family-wise error, with its SE) and with a false "beats" / "worse"."""
    m = n_configs or design.n_configs
    d = scenario_diffs(scenario, np.zeros(m), sd, n_studies, design.max_seeds, rng)
    code = sq.decide(design, d).code
    fwer, se = rate(((code == sq.BEATS) | (code == sq.WORSE)).any(axis=1))
    return {"fwer": fwer, "se": se, "beats": rate((code == sq.BEATS).any(axis=1))[0],
            "worse": rate((code == sq.WORSE).any(axis=1))[0], "studies": n_studies}


def fixed_n_verdicts(diffs, alpha: float = 0.05, rule: str = "robust") -> np.ndarray:
    """The report's fixed-n verdicts on simulated paired differences ``[studies, m, n]``: +1
    "beats control", -1 "worse", 0 "no evidence". ``rule``: "robust" (the t-test AND the
    skew-corrected test, the larger p Holm-adjusted; what the report does) or "t" (paired t
    and Holm, rewardsweep 0.3)."""
    from rewardsweep.analysis import stats

    d = np.asarray(diffs, dtype=float)
    p = stats.paired_ttest(d, np.zeros_like(d))[4]
    if rule == "robust" and d.shape[-1] >= 3:
        p = np.fmax(p, stats.skew_corrected_test(d)[1])
    adjusted = stats.adjust_pvalues(p.reshape(-1, d.shape[1]), "holm", alpha).reshape(p.shape)
    mean = d.mean(axis=-1)
    return np.where(adjusted < alpha, np.sign(mean), 0).astype(int)


def fixed_n_claims(scenario: str, n_seeds: int, m: int, n_studies: int, rng, rule: str = "robust",
                   alpha: float = 0.05) -> dict:
    """Family-wise error of the fixed-n verdicts under the global null of ``scenario``."""
    v = fixed_n_verdicts(scenario_diffs(scenario, np.zeros(m), 1.0, n_studies, n_seeds, rng), alpha, rule)
    fwer, se = rate((v != 0).any(axis=1))
    return {"fwer": fwer, "se": se, "studies": n_studies}


def interval_coverage(scenario: str, n_seeds: int, n_studies: int, rng, confidence: float = 0.95) -> dict:
    """How often the report's 95% intervals of the mean paired difference cover the true mean
    (0) under ``scenario``: the paired t-interval ("95% CI"), the interval of the verdict's
    rule (hull of t and skew-corrected; the forest plot's at its adjusted level) and, from 10
    seeds, the BCa bootstrap."""
    from rewardsweep.analysis import stats

    d = null_draws(scenario, (n_studies, n_seeds), rng)
    _, lo, hi = stats.t_interval(d, confidence)
    rlo, rhi = stats.robust_interval(d, confidence)
    out = {"t": rate((lo <= 0) & (0 <= hi)), "robust": rate((rlo <= 0) & (0 <= rhi))}
    if n_seeds >= stats.BCA_MIN_N:
        bca = np.array([stats.bca_interval(row, confidence, n_resamples=999) for row in d[:1000]])
        out["bca"] = rate((bca[:, 0] <= 0) & (0 <= bca[:, 1]))
    return {k: {"coverage": v[0], "se": v[1]} for k, v in out.items()}


def fixed_n_power(effect_sd: float, n_seeds: int, m: int, n_configs: int = 8000, seed: int = 0,
                  alpha: float = 0.05) -> float:
    """Power of the robust fixed-n verdict (t AND skew-corrected, Bonferroni alpha/m; normal
    differences) at effect/SD ``effect_sd`` with ``n_seeds`` seeds."""
    from rewardsweep.analysis import stats

    rng = np.random.default_rng(seed)
    d = effect_sd + rng.standard_normal((n_configs, n_seeds))
    p = stats.paired_ttest(d, np.zeros_like(d))[4]
    if n_seeds >= 3:
        p = np.fmax(p, stats.skew_corrected_test(d)[1])
    return float(np.mean((p < alpha / m) & (d.mean(axis=-1) > 0)))


def fixed_seeds_robust(effect_sd: float, alpha: float, m: int, power: float, limit: int = 200) -> int:
    """Seeds a fixed design with the report's robust verdict needs for ``power`` (simulated)."""
    for n in range(3, limit):
        if fixed_n_power(effect_sd, n, m, alpha=alpha) >= power:
            return n
    return limit


def efficiency(design: sq.SequentialDesign, sd: float, n_studies: int, rng) -> dict:
    """Expected seeds per configuration with every configuration null, half at the effect and
    all at the effect (normal differences at SD ``sd``), against a fixed design of the same
    power: the paired t-test at alpha/m (statsmodels' power) and the report's robust verdict."""
    m, eff = design.n_configs, design.effect
    out: dict = {"sd": sd}
    for label, k in (("null", 0), ("half", m // 2), ("effect", m)):
        mu = np.r_[np.zeros(m - k), np.full(k, eff)]
        s = summarise(design, scenario_diffs("normal", mu, sd, n_studies, design.max_seeds, rng), mu)
        out[label] = {"seeds": float(np.mean(s.mean_seeds)), "se": s.seeds_se, "summary": s}
    full = out["effect"]["summary"]
    out["power"] = float(np.nanmean(full.power))
    out["futile_at_effect"] = float(full.decided[:, sq.FUTILE].mean())
    out["fixed_t"] = fixed_seeds_for_power(eff / sd, design.alpha, m, out["power"])
    out["fixed_robust"] = fixed_seeds_robust(eff / sd, design.alpha, m, out["power"])
    for label in ("null", "half", "effect"):
        cell = out[label]
        del cell["summary"]
        cell["ratio_t"] = cell["seeds"] / out["fixed_t"]
        cell["ratio_robust"] = cell["seeds"] / out["fixed_robust"]
        cell["ratio_se"] = cell["se"] / out["fixed_t"]
    return out


def equivalence(design: sq.SequentialDesign, sd: float, n_studies: int, rng) -> dict:
    """With a margin: the share of null configurations that end "equivalent" at SD ``sd``, and
    the equivalence error at a true difference equal to the margin (per configuration; its
    bound is alpha/2m)."""
    m = design.n_configs
    null = sq.decide(design, scenario_diffs("normal", np.zeros(m), sd, n_studies, design.max_seeds, rng))
    at = sq.decide(design, scenario_diffs("normal", np.full(m, design.margin), sd, 4 * n_studies,
                                          design.max_seeds, rng))
    eq, eq_se = rate(null.code == sq.EQUIVALENT)
    err, err_se = rate(at.code == sq.EQUIVALENT)
    return {"sd": sd, "equivalent": eq, "equivalent_se": eq_se, "seeds": float(null.seeds.mean()),
            "error_at_margin": err, "error_se": err_se, "bound": design.level}
