"""Sequential decisions: boundaries equal published values, the rules do what they say, a
study started under the 0.3 rule is decided the way it was.

The error rates under skew, collapses and few seeds are the scenario suite's
(tests/test_sequential_scenarios.py). Here: 10 reward configurations, looks at 5, 10, 15, 20, 24
seeds, alpha 5%, paired differences with SD 1 and an effect of interest of 1 (only effect/SD
matters), the default (robust) design. The simulations are vectorised; RNG seeds are fixed.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as st

from rewardsweep.analysis import sequential as sq
from rewardsweep.analysis import sequential_sim as sim

ALPHA, EFFECT, SD, CONFIGS = 0.05, 1.0, 1.0, 10
STUDIES = 4000


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


def test_no_alpha_is_spent_before_the_sign_flip_test_can_reach_the_level():
    """With n seeds the exact sign-flip test's smallest one-sided p is 2^-n: the first look
    that may claim is the first with 2^-n <= alpha/2m, and it spends at least 2^-n, so a
    claim there is possible; the total spent is still alpha/2m (the last boundary's P)."""
    shipped = sq.make_design(4, 4, 16, ALPHA, 0.2, None, 4)              # alpha/2m = 0.00625
    assert shipped.efficacy[0] == math.inf and shipped.first_claim == 8     # 2^-4 = 0.0625 > level
    assert st.norm.sf(shipped.efficacy[1]) >= 2.0 ** -8
    ten = sq.make_design(4, 4, 20, ALPHA, 0.2, None, 10)                  # alpha/2m = 0.0025
    assert ten.first_claim == 12 and ten.efficacy[:2] == (math.inf, math.inf)   # 2^-8 = 0.0039 > level
    with pytest.raises(ValueError, match="needs at least 9 seeds"):
        sq.make_design(2, 2, 8, ALPHA, 0.2, None, 10)


# --------------------------------------------------------------------------- error control

def test_family_wise_error_under_the_global_null(design):
    """4000 studies, 10 null configurations with normal differences: any false claim in
    <= 5% + 3 simulation SE, on the efficacy boundaries alone (futility not obeyed: the
    guarantee must not lean on it), independent and control-sharing configurations; as run
    (futility obeyed) it can only be lower."""
    bound = ALPHA + 3 * _se(ALPHA, STUDIES)
    bare = sq.make_design(5, 5, 24, ALPHA, EFFECT, None, CONFIGS, futility=None)
    assert bare.futility == (math.inf,) * 5 and bare.futility_cp == 0
    zeros = np.zeros(CONFIGS)
    rng = np.random.default_rng(1)
    worst = sim.summarise(bare, sim.simulate_diffs(zeros, SD, STUDIES, 24, rng, 0.0), zeros)
    assert worst.fwer <= bound, worst.fwer
    shared = sim.summarise(bare, sim.simulate_diffs(zeros, SD, STUDIES, 24, rng, 0.5), zeros)
    assert shared.fwer <= bound, shared.fwer
    as_run = sim.summarise(design, sim.simulate_diffs(zeros, SD, STUDIES, 24, rng, 0.5), zeros)
    assert as_run.fwer <= worst.fwer + 3 * worst.fwer_se


def test_reading_the_fixed_test_after_every_look_inflates_the_error(design):
    """The same null data read with the fixed-n paired t-test after every look: at Bonferroni
    alpha/10 per test (multiplicity handled, peeking not) the error is far above 5% + 3 SE.
    The simulation can see peeking."""
    diffs = sim.simulate_diffs(np.zeros(CONFIGS), SD, STUDIES, 24, np.random.default_rng(1), 0.0)
    hit = np.zeros(diffs.shape[:-1], dtype=bool)
    for n in design.looks:
        hit |= st.ttest_1samp(diffs[..., :n], 0.0, axis=-1).pvalue < ALPHA / CONFIGS
    peeking = float(np.mean(hit.any(axis=1)))
    assert peeking > ALPHA + 3 * _se(ALPHA, STUDIES), peeking
    assert peeking > 2 * sim.summarise(design, diffs, np.zeros(CONFIGS)).fwer


def test_a_claim_needs_the_skew_corrected_test_too():
    """Seven seeds near +0.5 and one that collapsed to -0.5: the t-test alone would claim
    "beats" (z 2.36 against the boundary 1.96), Hall's skew-corrected test does not (the
    left-skewed differences make a high mean weaker evidence than t says): "undecided".
    Seven seeds near +0.5 and one at +0.9 (right skew) still beat the control."""
    d = sq.make_design(4, 4, 8, ALPHA, 0.5, None, 1, futility=None)
    c = d.efficacy[1]
    collapsed = sq.look_decisions(d, [0.5, 0.55, 0.48, 0.52, 0.51, 0.56, 0.49, -0.5])
    assert collapsed.z[-1] >= c > collapsed.z_skew[-1]
    assert sq.DECISIONS[collapsed.decision[-1]] == "undecided"
    clean = sq.decide(d, [0.5, 0.55, 0.48, 0.52, 0.51, 0.56, 0.49, 0.9])
    assert clean.decision == "beats" and clean.looks[-1].z_skew >= c


# --------------------------------------------------------------------------- power, SD, seeds

def test_power_is_simulated_and_the_stated_sd_gives_it(design):
    """sd_for_power finds the SD at which power() is 80%; an independent simulation of 20,000
    configurations at that SD finds 80% +- 3 SE, and at twice that SD far less."""
    sd80 = sq.sd_for_power(design, 0.8, 4000)
    assert 0.5 < sd80 < 1.5
    mu = np.full(CONFIGS, EFFECT)
    got = sim.summarise(design, sim.scenario_diffs("normal", mu, sd80, 2000, 24, np.random.default_rng(9)), mu)
    assert abs(np.mean(got.power) - 0.8) <= 3 * _se(0.8, 20000) + 0.02, np.mean(got.power)
    assert sq.power(design, 2 * sd80, 4000) < 0.4


def test_the_design_sd_is_the_median_of_the_first_looks(design):
    """The design SD is the median over configurations of their first look's SD: one
    configuration that collapses (SD 20 here) does not make the design believe every
    configuration is that noisy."""
    rng = np.random.default_rng(3)
    d = rng.normal(0, 2.0, (3, CONFIGS, 24))
    d[:, 0, :5] *= 10
    want = np.median(np.std(d[..., :5], axis=-1, ddof=1), axis=-1)
    np.testing.assert_allclose(sq.design_sd(d[..., :5]), want, rtol=1e-12)
    assert (want < 4).all()
    out = sq.decide(design, d)
    np.testing.assert_allclose(out.sd, np.broadcast_to(want[:, None], (3, CONFIGS)))
    fixed = sq.decide(design.with_sd(1.0), d)                 # a stored SD wins
    assert (fixed.sd == 1.0).all()
    assert sq.settle_sd(design, [(d[0, 0, :5], False), (d[0, 1, :3], False)]).sd is None   # a look still running
    assert sq.settle_sd(design, [(d[0, 0, :5], False), (d[0, 1, :3], True)]).sd == pytest.approx(
        float(np.std(d[0, 0, :5], ddof=1)))                 # a stopped configuration is left out


def test_a_noisy_configuration_with_a_large_difference_is_not_futile():
    """Four configurations, one collapsing on some seeds (mean -1.6, SD about 2): futility reads
    its mean against its own spread and asks for the larger of the effect and what it shows, so
    it continues (and can be shown worse) instead of being stopped as "futile"."""
    d = sq.make_design(4, 4, 16, ALPHA, 0.2, None, 4)
    first = np.array([[0.3, 0.25, 0.33, 0.26], [0.05, -0.1, 0.12, 0.02], [0.0, 0.1, -0.05, 0.0],
                      [-0.2, -4.1, -0.3, -1.9]])
    out = sq.decide(d, np.pad(first, ((0, 0), (0, 12)), constant_values=np.nan)[:, :4])
    assert out.decision.tolist() == ["continue", "futile", "futile", "continue"]


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


def test_decisions_are_final_and_match_the_vectorised_call(design):
    """Once a configuration is decided, more seeds never change it; decide() on one
    configuration equals the vectorised call on studies of one configuration."""
    rng = np.random.default_rng(4)
    diffs = rng.normal(rng.choice([-1.5, 0.0, 0.5, 1.5], (200, 1)), 1.0, (200, 24))
    many = sq.decide(design, diffs[:, None, :])
    seen = set()
    for row, code, seeds in zip(diffs, many.code[:, 0], many.seeds[:, 0]):
        out = sq.decide(design, row)
        assert out.decision == sq.DECISIONS[code] and out.decided_at == seeds
        seen.add(out.decision)
        for n in design.looks:
            partial = sq.decide(design, row[:n])     # its own first look gives the same SD
            if partial.done:
                assert (partial.decision, partial.decided_at) == (out.decision, out.decided_at)
                assert partial.next_seeds == 0
    assert {"beats", "worse", "futile"} <= seen
    assert sim.next_seed_counts([sq.decide(design, r[:8]) for r in diffs[:3]]) == [
        sq.decide(design, r[:8]).next_seeds for r in diffs[:3]]


def test_equivalence_replaces_futility_with_a_margin():
    d = sq.make_design(4, 4, 12, ALPHA, EFFECT, 0.5, 3)
    tight = np.tile([0.01, -0.01], 6)                    # mean 0, tiny spread
    assert sq.decide(d, tight).decision == "equivalent"
    assert sq.decide(d, tight).decided_at == d.first_claim
    wide = np.random.default_rng(1).normal(0.0, 3.0, 12)
    out = sq.decide(d, wide)
    assert out.decision == "undecided" and out.decided_at == 12 and out.next_seeds == 0
    assert all(look.decision != "futile" for look in out.looks)
    assert sq.decide(d, np.ones(12)).decision == "beats"  # zero spread, positive mean
    same = sq.decide(d, np.zeros(12))                     # identical to its control
    assert same.decision == "equivalent" and same.looks[-1].z == 0.0


def test_design_round_trip_and_equality(design):
    back = sq.SequentialDesign.from_dict(json.loads(json.dumps(design.to_dict())))
    assert back == design
    assert back.efficacy == design.efficacy and back.futility == design.futility
    with_sd = sq.SequentialDesign.from_dict(json.loads(json.dumps(design.with_sd(0.7).to_dict())))
    assert with_sd.sd == 0.7 and with_sd == design
    assert sq.make_design(5, 5, 24, ALPHA, EFFECT, None, CONFIGS) == design
    for changed in (sq.make_design(5, 5, 20, ALPHA, EFFECT, None, CONFIGS),
                    sq.make_design(5, 5, 24, 0.01, EFFECT, None, CONFIGS),
                    sq.make_design(5, 5, 24, ALPHA, EFFECT, 0.3, CONFIGS),
                    sq.make_design(5, 5, 24, ALPHA, EFFECT, None, 9)):
        assert changed != design
    assert "Lan-DeMets" in design.method and "Bonferroni over 10" in design.method
    assert "skewness-corrected" in design.method
    with pytest.raises(ValueError, match="effect must be > 0"):
        sq.make_design(5, 5, 24, ALPHA, 0.0)


# --------------------------------------------------------------------------- the 0.3 rule

# sequential.json's design as rewardsweep 0.3.0 wrote it for search_spaces/sequential.yaml
V03_DESIGN = {"looks": [4, 8, 12, 16], "alpha": 0.05, "effect": 0.2, "margin": 0.15, "n_configs": 4,
              "spending": "hsd", "gamma": -2.0, "futility_beta": 0.15, "futility_spending": "hsd",
              "futility_gamma": 3.0, "statistic": "inverse-normal",
              "efficacy": [3.222853599176645, 3.03989341239832, 2.841178091119807, 2.6351535294441137],
              "futility": [1.3832645918060649, 1.4437171478823196, 1.5728900269597859, 1.7376899529688201]}
V03_ROWS = [
    [0.1414, 0.3481, -0.0793, 0.5792, 0.4277, 0.2416, 0.2376, 0.3608, 0.2465, 0.2548, 0.444, 0.4029, 0.2872, 0.2829, 0.3322, 0.1772],
    [-0.0808, 0.1097, -0.0261, -0.2749, -0.0955, 0.1313, -0.0465, -0.0297, 0.1284, 0.3649, -0.1426, 0.2696, -0.246, 0.035, -0.2339, 0.2703],
    [-0.1332, -0.0725, -0.4771, -0.1631, -0.4038, -0.3915, -0.1987, -0.1247, -0.2591, -0.4256, -0.4652, -0.0111, -0.1812, -0.1561, 0.1367, -0.4632],
    [0.5619, 0.6802, 0.3737, 0.2154, -0.0828, 0.2489, -0.0385, 0.0457, -0.0081, 0.1068, 0.3076, -0.0611, -0.1471, -0.1506, -0.1437, -0.2362],
    [0.0174, 0.4587, 0.0813, 0.2514, -0.0434, 0.2339, -0.1482, 0.0602, 0.6509, 0.0834, 0.424, 0.291, 0.1694, 0.0696, 0.4574, 0.1645],
    [0.2055, -0.2438, -0.0885, -0.0069, -0.0254, -0.3468, -0.2328, -0.1392, -0.2707, 0.0355, 0.0176, -0.4914, -0.4611, -0.3563, -0.0765, 0.3066],
    [-0.0765, 0.0501, -0.2126, -0.2094, -0.3914, -0.0057, 0.1894, -0.0713, 0.2793, 0.0396, -0.0073, 0.1035, 0.0975, 0.2296, -0.1604, -0.4576],
    [0.5229, 0.3777, 0.4946, 0.8329, 0.2794, 0.653, 0.6892, 0.5921, 0.7237, 0.4083, 0.3637, 0.7078, 0.6441, 0.7781, 0.5425, 0.8247]]
# what rewardsweep 0.3.0 (commit 00b7a29) decided on them, and its z at each look
V03_DECIDED = [("beats", 12), ("futile", 8), ("worse", 12), ("futile", 16), ("beats", 16), ("undecided", 16),
               ("futile", 8), ("beats", 8)]
V03_Z = [[1.348752, 2.87671, 3.908558], [-0.744926, -0.660144], [-1.637229, -2.712428, -3.271566],
         [2.309428, 2.006753, 2.158038, 0.456835], [1.502265, 1.265681, 2.138241, 2.718829],
         [-0.325773, -1.50083, -1.88353, -2.004734], [-1.36692, -1.333539], [2.55753, 3.638837]]


def test_a_design_stored_by_0_3_decides_as_0_3_did():
    """An old study keeps its rule: the stored 0.3 design (no new fields) decides the same
    differences with the same decisions, seed counts and z as rewardsweep 0.3.0 did."""
    old = sq.SequentialDesign.from_dict(V03_DESIGN)
    assert not old.robust and old.statistic == "inverse-normal" and old.sd is None and old.futility_cp == 0
    for row, (decision, at), zs in zip(V03_ROWS, V03_DECIDED, V03_Z):
        out = sq.decide(old, row)
        assert (out.decision, out.decided_at) == (decision, at)
        np.testing.assert_allclose([look.z for look in out.looks], zs, atol=2e-6)
    assert "0.3" not in old.method and "inverse-normal" in old.method
    assert sq.SequentialDesign.from_dict(old.to_dict()) == old
