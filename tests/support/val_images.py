"""Simulated studies with per-image val counts, for the seeds x images interval's coverage
(tests/test_analysis_stats.py, benchmarks/bench_scenarios.py).

The crossed model of docs/report.md ("Validation-set uncertainty") on the logit scale of each
class's recall, 6 classes present in 95% to 20% of the images (lognormal sizes): class base +
image difficulty (both arms) + a seed effect both arms share + an arm's own seed effect (SD v)
+ seed x image noise per arm (SD eps), and for the configuration its gain + an image x class
interaction (SD tau). Three regimes (the review of 2026-12-05): images dominate, seeds
dominate, or the per-trial image noise is large. The true difference is the population one
(20,000 images, 300 seed draws with the same shared effects: MC error about 0.01-0.1 points).
"""

from __future__ import annotations

import math

import numpy as np

from rewardsweep.analysis import stats

CLASSES = 6
PRESENT = np.linspace(0.95, 0.2, CLASSES)
BASE = np.linspace(1.2, -0.3, CLASSES)
GAIN = 0.05
REGIMES = {"images dominate": (0.12, 0.005, 0.05), "seeds dominate": (0.02, 0.06, 0.05),
           "per-trial noise dominates": (0.06, 0.02, 0.15)}       # (tau, v, eps)
# truth(regime, images=40_000, seeds=1000), computed once (about a minute each)
TRUTH = {"images dominate": 0.010450137444713015, "seeds dominate": 0.011014931813258244,
         "per-trial noise dominates": 0.010756925397612693}


def _images(rng, lead: tuple, n: int):
    present = rng.random(lead + (n, CLASSES)) < PRESENT
    size = np.exp(rng.normal(6, 1, lead + (n, CLASSES))) * present
    return size, rng.normal(0, 0.5, lead + (n, 1)), rng.standard_normal(lead + (n, CLASSES)), \
        rng.random(lead + (n, CLASSES)) < 0.05


def _counts(images, shift, eps, tau, gain):
    size, difficulty, interaction, spurious = images
    recall = 1 / (1 + np.exp(-(BASE + difficulty + shift + eps + gain + tau * interaction)))
    tp = size * recall
    return tp, size + size * 0.3 * (1 - recall) + np.where((size == 0) & spurious, 50.0, 0.0)


def _miou(tp, union):
    with np.errstate(all="ignore"):
        u = union.sum(-2)
        return np.nanmean(tp.sum(-2) / np.where(u > 0, u, np.nan), axis=-1)


def truth(regime: str, seed: int = 99, images: int = 20_000, seeds: int = 300) -> float:
    """The population difference (configuration minus control), mIoU as a fraction."""
    tau, v, eps = REGIMES[regime]
    rng = np.random.default_rng(seed)
    pop = _images(rng, (), images)
    out = []
    for _ in range(seeds):
        shared = rng.normal(0, 0.3)
        a = _counts(pop, shared + rng.normal(0, v), rng.normal(0, eps, (images, 1)), tau, GAIN)
        b = _counts(pop, shared + rng.normal(0, v), rng.normal(0, eps, (images, 1)), 0.0, 0.0)
        out.append(_miou(*a) - _miou(*b))
    return float(np.mean(out))


def studies(regime: str, n_studies: int, n_seeds: int, n_images: int, rng, resamples: int = 400):
    """``(miou_a, miou_b, full_a, full_b, jack_a, jack_b)`` of ``n_studies`` simulated studies,
    the arguments of :func:`stats.crossed_interval` with a leading study axis."""
    tau, v, eps = REGIMES[regime]
    images = _images(rng, (n_studies, 1), n_images)                        # [N, 1, I, C]
    shared = rng.normal(0, 0.3, (n_studies, n_seeds, 1, 1))
    ta, ua = _counts(images, shared + rng.normal(0, v, shared.shape), rng.normal(0, eps, (n_studies, n_seeds, n_images, 1)),
                     tau, GAIN)
    tb, ub = _counts(images, shared + rng.normal(0, v, shared.shape), rng.normal(0, eps, (n_studies, n_seeds, n_images, 1)),
                     0.0, 0.0)
    weights = np.stack([stats.image_resample_weights(n_images, resamples, int(s))
                        for s in rng.integers(0, 2 ** 31, n_studies)])          # [N, B, I]
    jack = stats.image_jackknife_weights(n_images)
    return (stats.resampled_miou(ta, ua, weights), stats.resampled_miou(tb, ub, weights),
            _miou(ta, ua), _miou(tb, ub),
            stats.resampled_miou(ta, ua, np.broadcast_to(jack, (n_studies,) + jack.shape)),
            stats.resampled_miou(tb, ub, np.broadcast_to(jack, (n_studies,) + jack.shape)))


def coverage(regime: str, n_studies: int, n_seeds: int, n_images: int, seed: int = 1,
             confidence: float = 0.95) -> dict:
    """Share of studies whose seeds x images interval (and the seeds-only t-interval) covers
    the true difference, with the simulation SE."""
    true = TRUTH[regime]
    a, b, fa, fb, ja, jb = studies(regime, n_studies, n_seeds, n_images, np.random.default_rng(seed))
    low, high = stats.crossed_interval(a, b, fa, fb, confidence, ja, jb)
    _, tlow, thigh, _, _ = stats.paired_ttest(fa, fb, confidence)
    hit = (low <= true) & (true <= high)
    t_hit = (tlow <= true) & (true <= thigh)
    p = float(np.mean(hit))
    return {"coverage": p, "se": math.sqrt(p * (1 - p) / n_studies), "t_coverage": float(np.mean(t_hit)),
            "width": float(np.mean(high - low)), "t_width": float(np.mean(thigh - tlow)), "truth": true}
