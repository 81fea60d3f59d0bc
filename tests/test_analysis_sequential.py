"""Sequential decisions: boundaries equal published values, error control holds on simulated data.

The scenario of the simulations: 10 reward configurations, looks at 5, 10, 15, 20, 24 seeds
(``seeds: {initial: 5, step: 5, max: 24}``, max from ``propose_max``), alpha 5%, paired
differences with SD 1 and an effect of interest of 1 (both in mIoU points; only effect/SD
matters), the default design (inverse-normal statistic, HSD spending). A fixed design needs
18 seeds per configuration for 80% power at that effect (two-sided paired t-test at
Bonferroni alpha/10). The simulations are vectorised over studies; the RNG seeds are fixed.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as st

from rewardsweep.analysis import sequential as sq

ALPHA, EFFECT, SD, CONFIGS = 0.05, 1.0, 1.0, 10
STUDIES = 20_000


@pytest.fixture(scope="module")
def design():
    return sq.make_design(5, 5, 24, ALPHA, EFFECT, None, CONFIGS)


def _se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


# --------------------------------------------------------------------------- boundaries

def test_boundaries_equal_published_lan_demets_values():
    """Lan-DeMets O'Brien-Fleming- and Pocock-type boundaries for 5 equally spaced looks,
    one-sided 0.025 (Jennison & Turnbull 2000; R gsDesign sfLDOF / sfLDPocock)."""
    looks = (4, 8, 12, 16, 20)
    obf = sq.spending_boundaries(looks, 0.025, "obrien-fleming")
    np.testing.assert_allclose(obf, [4.877, 3.357, 2.680, 2.290, 2.031], atol=6e-4)
    pocock = sq.spending_boundaries(looks, 0.025, "pocock")
    np.testing.assert_allclose(pocock, [2.438, 2.427, 2.410, 2.397, 2.386], atol=6e-4)
    # the spending is exact: P(cross at look 1) = spent(t_1), the total is the level
    assert st.norm.sf(obf[0]) == pytest.approx(sq.spent(0.2, 0.025, "obrien-fleming"), rel=1e-9)
    assert sq.spent(1.0, 0.025, "hsd", -4.0) == pytest.approx(0.025)


def test_look_counts_cap_the_last_look():
    assert sq.look_counts(4, 4, 20) == (4, 8, 12, 16, 20)
    assert sq.look_counts(4, 5, 12) == (4, 9, 12)
    assert sq.look_counts(4, 4, 13) == (4, 8, 13)            # no 1-seed batch
    with pytest.raises(ValueError, match="step >= 2"):
        sq.look_counts(1, 4, 20)


# --------------------------------------------------------------------------- error control

def _null_diffs(seed: int, shared: float = 0.0):
    return sq.simulate_diffs(np.zeros(CONFIGS), SD, STUDIES, 24, np.random.default_rng(seed), shared)


def test_family_wise_error_under_the_global_null(design):
    """20000 studies, 10 null configurations, 5 looks: any false "beats"/"worse" in <= 5% +
    3 simulation SE (1.46 points). Checked on the efficacy boundaries alone (futility not
    obeyed: the guarantee must not lean on it), with independent configurations (the case
    Bonferroni is closest to exact), and with the default design as launch runs it."""
    bound = ALPHA + 3 * _se(ALPHA, STUDIES)
    no_futility = sq.make_design(5, 5, 24, ALPHA, EFFECT, None, CONFIGS, futility=None)
    assert len(no_futility.looks) == 5 and no_futility.futility == (math.inf,) * 5
    zeros = np.zeros(CONFIGS)
    worst = sq.summarise(no_futility, _null_diffs(1), zeros)
    assert worst.fwer <= bound, worst.fwer
    shared = sq.summarise(no_futility, _null_diffs(2, shared=0.5), zeros)
    assert shared.fwer <= bound, shared.fwer
    as_run = sq.summarise(design, _null_diffs(3, shared=0.5), zeros)
    assert as_run.fwer <= worst.fwer + 3 * worst.fwer_se     # futility can only lower it


def _peeking_fwer(diffs, looks, alpha_per_test):
    """Fixed-n two-sided paired t-test after every look, stop at the first p < alpha."""
    rejected = np.zeros(diffs.shape[:-1], dtype=bool)
    for n in looks:
        p = st.ttest_1samp(diffs[..., :n], 0.0, axis=-1).pvalue
        rejected |= p < alpha_per_test
    return float(np.mean(rejected.any(axis=1)))


def test_reading_the_fixed_test_after_every_look_inflates_the_error(design):
    """The same null data read with the fixed-n paired t-test after every look: at Bonferroni
    alpha/10 per test (multiplicity handled, peeking not) the family-wise error is far above
    5% + 3 SE; without any adjustment it is most studies. The simulation can see peeking."""
    diffs = _null_diffs(1)
    peeking = _peeking_fwer(diffs, design.looks, ALPHA / CONFIGS)
    assert peeking > ALPHA + 3 * _se(ALPHA, STUDIES), peeking
    assert peeking > 2 * sq.summarise(design, diffs, np.zeros(CONFIGS)).fwer
    assert _peeking_fwer(diffs, design.looks, ALPHA) > 0.5


# --------------------------------------------------------------------------- power, seeds

def test_proposed_max_gives_the_power_at_the_design_effect():
    """propose_max picks max = 24 for effect/SD 1 (its own simulation); an independent
    simulation of 20000 configurations at the effect finds power >= 80% - 3 SE, and one
    seed fewer falls short (the proposal is the smallest max that suffices)."""
    max_seeds = sq.propose_max(5, 5, ALPHA, EFFECT, SD, CONFIGS, power=0.8)
    assert max_seeds == 24
    d = sq.make_design(5, 5, max_seeds, ALPHA, EFFECT, None, CONFIGS)
    got = sq.simulate(d, [EFFECT], SD, STUDIES, np.random.default_rng(11), shared=0.0)
    assert got.power[0] >= 0.8 - 3 * _se(0.8, STUDIES), got.power[0]
    shorter = sq.make_design(5, 5, max_seeds - 1, ALPHA, EFFECT, None, CONFIGS)
    less = sq.simulate(shorter, [EFFECT], SD, STUDIES, np.random.default_rng(11), shared=0.0)
    assert less.power[0] < 0.8


def test_expected_seeds_against_a_fixed_design_with_the_same_power(design):
    """Expected seeds per configuration over the fixed design's 18, 4000 studies each
    (SE of each ratio about 0.003): under the global null the futility stop brings it to
    about 0.49 (goal <= 0.6 met); with half the configurations null about 0.71; all at the
    effect about 0.92 (goal not met: a batch of 5 seeds has its own t-test at alpha/20 per
    side, so the first looks rarely decide a true effect)."""
    fixed = sq.fixed_seeds_for_power(EFFECT / SD, ALPHA, CONFIGS, power=0.8)
    assert fixed == 18
    rng = np.random.default_rng(5)
    ratio = {}
    for name, mu in {"null": np.zeros(CONFIGS), "half": np.r_[np.zeros(5), np.full(5, EFFECT)],
                     "effect": np.full(CONFIGS, EFFECT)}.items():
        ratio[name] = sq.simulate(design, mu, SD, 4000, rng).seed_ratio(fixed)
    assert ratio["null"] <= 0.6, ratio
    assert ratio["half"] <= 0.75, ratio
    assert ratio["effect"] <= 0.96, ratio


# --------------------------------------------------------------------------- decide

def test_decide_is_deterministic_and_uses_only_full_looks(design):
    rows = np.random.default_rng(0).normal(0.5, 2.0, (50, 24))
    d = next(r for r in rows if sq.decide(design, r[:10]).decision == "continue")
    first = sq.decide(design, d[:13])
    assert first == sq.decide(design, d[:13])
    assert [r.n for r in first.looks] == [5, 10]
    assert first == sq.decide(design, d[:10])           # seeds 11-13 are no full look yet
    assert first.decision == "continue" and first.next_seeds == 15 and first.decided_at is None
    assert [r.decision for r in first.looks] == ["continue", "continue"]
    assert sq.decide(design, d[:4]).looks == () and sq.decide(design, d[:4]).next_seeds == 5
    assert sq.decide(design, d) == sq.decide(design, np.r_[d, 5.0])   # past max: ignored


def test_decisions_are_final_and_match_the_simulation(design):
    """Once a configuration is decided, more seeds never change it; and decide() on each
    simulated configuration equals the vectorised simulation's decision."""
    rng = np.random.default_rng(4)
    diffs = rng.normal(rng.choice([-1.5, 0.0, 0.5, 1.5], (200, 1)), 1.0, (200, 24))
    codes, idx = sq.first_decision(sq.look_decisions(design, diffs).decision)
    seen = set()
    for row, code, k in zip(diffs, codes, idx):
        out = sq.decide(design, row)
        assert out.decision == sq.DECISIONS[code]
        seen.add(out.decision)
        for n in design.looks:
            partial = sq.decide(design, row[:n])
            if partial.done:
                assert (partial.decision, partial.decided_at) == (out.decision, out.decided_at)
                assert partial.next_seeds == 0
        assert out.decided_at == design.looks[k]
    assert {"beats", "worse", "futile"} <= seen
    assert sq.next_seed_counts([sq.decide(design, r[:8]) for r in diffs[:3]]) == [
        sq.decide(design, r[:8]).next_seeds for r in diffs[:3]]


def test_equivalence_and_last_look():
    d = sq.make_design(4, 4, 12, ALPHA, EFFECT, 0.5, 3, futility=None)
    tight = np.tile([0.01, -0.01], 6)                    # mean 0, tiny spread
    assert sq.decide(d, tight).decision == "equivalent"
    assert sq.decide(d, tight).decided_at == 4
    wide = np.random.default_rng(1).normal(0.0, 3.0, 12)
    out = sq.decide(d, wide)
    assert out.decision == "undecided" and out.decided_at == 12 and out.next_seeds == 0
    assert sq.decide(d, np.ones(4)).decision == "beats"  # zero spread, positive mean
    same = sq.decide(d, np.zeros(4))                     # identical to its control
    assert same.decision == "equivalent" and same.looks[0].z == 0.0


def test_design_round_trip_and_equality(design):
    back = sq.SequentialDesign.from_dict(json.loads(json.dumps(design.to_dict())))
    assert back == design
    assert back.efficacy == design.efficacy and back.futility == design.futility
    assert sq.make_design(5, 5, 24, ALPHA, EFFECT, None, CONFIGS) == design
    for changed in (sq.make_design(5, 5, 20, ALPHA, EFFECT, None, CONFIGS),
                    sq.make_design(5, 5, 24, 0.01, EFFECT, None, CONFIGS),
                    sq.make_design(5, 5, 24, ALPHA, EFFECT, 0.3, CONFIGS),
                    sq.make_design(5, 5, 24, ALPHA, EFFECT, None, 9)):
        assert changed != design
    assert "Lan-DeMets" in design.method and "Bonferroni over 10" in design.method
    with pytest.raises(ValueError, match="effect must be > 0"):
        sq.make_design(5, 5, 24, ALPHA, 0.0)
