"""Treatment flags: each raised by its own evidence, silent when the arm reward-tunes."""

import numpy as np
import pytest
from scipy import stats

from rewardsweep.analysis.treatment import (
    COLLAPSE_POINTS,
    SHARE_MIN,
    collapse_flag,
    rise_flag,
    rise_p_value,
    share_flag,
    treatment_flags,
)


def test_share_flag_names_the_share_below_the_threshold():
    assert share_flag([0.006, 0.007]) == "reward term 0.65% of the update"
    assert share_flag([SHARE_MIN, SHARE_MIN]) is None
    assert share_flag([np.nan]) is None  # no probe: nothing to say


def test_rise_flag_uses_a_one_sided_t_test_across_seeds():
    rising = [0.003, 0.0031, 0.0029, 0.0034]
    assert rise_p_value(rising, [0.001] * 4) == pytest.approx(
        stats.ttest_1samp(rising, 0, alternative="greater").pvalue)
    assert rise_flag(rising, [0.001] * 4) is None
    flat = [0.0001, -0.0002, 0.0000, 0.0001]
    assert rise_flag(flat, [0.001] * 4) == "reward did not rise (+0.0000 +- 0.0001)"
    assert rise_flag([-0.001, -0.002], [0.001] * 2).startswith("reward did not rise (-0.0015")


def test_rise_of_one_seed_uses_its_own_standard_error():
    assert rise_p_value([0.004], [0.001]) == pytest.approx(stats.norm.sf(4.0))
    assert rise_flag([0.0005], [0.001]) == "reward did not rise (+0.0005 +- 0.0010)"


def test_collapse_flag_counts_collapsed_seeds():
    limit = -COLLAPSE_POINTS / 100
    assert collapse_flag([0.002, limit + 1e-6]) is None
    assert collapse_flag([0.002, -0.123, -0.05, np.nan]) == "collapsed: final mIoU 12.3 points below start (2 of 3 seeds)"


def test_treatment_flags_orders_collapse_first_and_is_empty_for_a_working_arm():
    assert treatment_flags([1.0] * 3, [0.003, 0.004, 0.0035], [0.0005] * 3, [0.004, 0.005, 0.006]) == []
    flags = treatment_flags([0.006] * 2, [0.0, -0.0001], [0.0003] * 2, [-0.2, 0.001])
    assert flags[0].startswith("collapsed") and flags[1].startswith("reward term") and flags[2].startswith("reward did not rise")
