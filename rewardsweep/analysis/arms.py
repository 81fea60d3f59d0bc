"""The comparisons beyond "configuration vs its paired control" (docs/report.md):

- **treatment**: is each reward configuration reward tuning at all (``treatment.py`` rules
  on its trials' probe summaries)? A flagged verdict carries the flag;
- **no-op reference**: every arm minus the no-update reference on the same seeds, so
  BatchNorm drift and evaluation noise have their own zero line; and whether the paired
  control trained at all (a control no different from the no-op makes "beats control"
  mean "beats not training");
- **best cross-entropy**: each reward configuration against the best control of its budget
  (the paired control and its ``control_grid`` variants), chosen for each seed on the other
  seeds (cross-fitted): the selection never sees the seed it is compared on, so its
  winner's curse favours neither arm.

Each adds columns to the summary table; the statistics come from ``stats`` like the rest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rewardsweep.analysis import stats
from rewardsweep.analysis import treatment as tr
from rewardsweep.study import arms as kinds

# What a flagged verdict says after its words.
NOT_TUNING, COLLAPSED = "[not reward tuning]", "[collapsed]"
BEST_VERDICTS = {"beats control": "beats best CE", "worse": "worse than best CE", "no evidence": "no evidence"}


def _finished_by_seed(trials: pd.DataFrame, arm: str,
                      column: str = "delta_miou") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """config id -> (sorted seeds, ``column``) of the finished trials of ``arm``."""
    fin = trials[(trials["arm"] == arm) & (trials["status"] == "finished")]
    out = {}
    if column not in fin:
        return out
    for cid, g in fin.groupby("config_id", sort=False):
        g = g.sort_values("seed", kind="stable")
        out[str(cid)] = (g["seed"].to_numpy(int), g[column].to_numpy(float))
    return out


def _pairs(mine: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray]):
    _, ia, ib = np.intersect1d(mine[0], other[0], assume_unique=True, return_indices=True)
    return mine[1][ia], other[1][ib]


TREATMENT_COLUMNS = ("step_share", "reward_share", "reward_step", "weight_move", "reward_rise", "rise_low",
                     "rise_high", "rise_level", "rise_seeds", "heldout_rise", "heldout_low", "heldout_high",
                     "signal_dot", "signal_low", "signal_high")


def add_treatment(table: pd.DataFrame, trials: pd.DataFrame) -> None:
    """Per reward configuration, over its finished seeds: ``step_share`` (the reward's part of
    the step after the optimizer; ``reward_share``, a share of gradient norms, for records
    by 0.3 and earlier), ``reward_step`` and ``weight_move`` (means), the rise ``reward_rise`` with
    its simultaneous interval ``rise_low``/``rise_high`` at ``rise_level`` and
    ``rise_outcome``, the held-out rise ``heldout_rise`` (minus the no-op's on the same seed
    where there is one: ``heldout_vs``), the half-batch ``signal_dot`` with its interval, and
    ``treatment`` (the flags, "; "-joined). Flagged verdicts carry :data:`NOT_TUNING` or
    :data:`COLLAPSED`."""
    for k in TREATMENT_COLUMNS:
        table[k] = np.nan
    table["rise_outcome"] = ""
    table["heldout_vs"] = ""
    table["treatment"] = ""
    col = {k: f"treatment.{k}" for k in tr.TREATMENT_KEYS}
    if "treatment.reward_rise" not in trials:
        return
    fin = trials[trials["arm"].isin(kinds.named("treatment")) & (trials["status"] == "finished")]
    groups = fin.groupby("config_id", sort=False).indices
    rows = [i for i, r in table.iterrows() if kinds.role(r["arm"]) == "treatment" and r["config_id"] in groups]

    def values(g: pd.DataFrame, key: str) -> np.ndarray:
        return g[col[key]].to_numpy(float) if col[key] in g else np.full(len(g), np.nan)

    def mean(x: np.ndarray) -> float:
        return float(np.nanmean(x)) if np.isfinite(x).any() else np.nan

    # one family: every configuration with a rise; Bonferroni makes the intervals simultaneous
    m = sum(np.isfinite(values(fin.iloc[groups[table.at[i, "config_id"]]], "reward_rise")).any() for i in rows)
    level = 1 - tr.RISE_ALPHA / max(m, 1)
    refs = _finished_by_seed(trials, "noop", col["heldout_gain"])
    for i in rows:
        g = fin.iloc[groups[table.at[i, "config_id"]]].sort_values("seed", kind="stable")
        step_share, legacy_share = values(g, "step_share"), values(g, "reward_share")
        new = np.isfinite(step_share).any()
        table.at[i, "step_share"] = mean(step_share)
        table.at[i, "reward_share"] = mean(legacy_share)
        table.at[i, "reward_step"] = mean(values(g, "reward_step"))
        table.at[i, "weight_move"] = mean(values(g, "weight_move"))
        rise = tr.rise_interval(values(g, "reward_rise"), values(g, "reward_rise_se"), level)
        table.loc[i, ["reward_rise", "rise_low", "rise_high", "rise_seeds"]] = rise
        table.at[i, "rise_level"] = level
        if rise[3]:
            table.at[i, "rise_outcome"] = tr.rise_outcome(rise[1], rise[2])
        heldout = values(g, "heldout_gain")
        rid = g["reference_id"].dropna().iloc[0] if "reference_id" in g and g["reference_id"].notna().any() else None
        if np.isfinite(heldout).any():
            seeds = g["seed"].to_numpy(int)
            if isinstance(rid, str) and rid in refs:
                a, b = _pairs((seeds, heldout), refs[rid])
                table.at[i, "heldout_vs"] = "no-op"
            else:
                a, b = heldout, np.zeros_like(heldout)
                table.at[i, "heldout_vs"] = "start"
            table.loc[i, ["heldout_rise", "heldout_low", "heldout_high"]] = tr.paired_interval(a, b, level)[:3]
        dots = values(g, "signal_dot")
        table.loc[i, ["signal_dot", "signal_low", "signal_high"]] = tr.paired_interval(
            dots, np.zeros_like(dots), level)[:3]
        flags = tr.treatment_flags(step_share if new else legacy_share, values(g, "reward_step"), rise[:3],
                                   g["delta_miou"].to_numpy(float),
                                   share_of="the step" if new else "the update's gradient norm")
        table.at[i, "treatment"] = "; ".join(flags)
        if flags:
            tag = COLLAPSED if flags[0].startswith("collapsed") else NOT_TUNING
            table.at[i, "verdict"] = f"{table.at[i, 'verdict']} {tag}"


def add_reference(table: pd.DataFrame, trials: pd.DataFrame, confidence: float) -> None:
    """``ref_diff_mean``/``ref_ci_low``/``ref_ci_high``/``ref_n``: arm minus its no-op reference.
    On each reward configuration, ``control_like_noop``: its paired control is not
    distinguishable from the no-op (the control's interval against it contains 0), so
    "beats control" there means "beats not training"."""
    for k in ("ref_diff_mean", "ref_ci_low", "ref_ci_high", "ref_n"):
        table[k] = np.nan
    table["control_like_noop"] = False
    if "reference_id" not in trials or not trials["arm"].isin(kinds.named("reference")).any():
        return
    refs = _finished_by_seed(trials, "noop")
    ref_of = trials.groupby(["config_id", "arm"], sort=False)["reference_id"].first()
    jobs = []
    for i, r in table.iterrows():
        rid = ref_of.get((r["config_id"], r["arm"]))
        if kinds.role(r["arm"]) == "reference" or not isinstance(rid, str) or rid not in refs:
            continue
        mine = _finished_by_seed(trials[trials["config_id"] == r["config_id"]], r["arm"]).get(r["config_id"])
        if mine is not None:
            a, b = _pairs(mine, refs[rid])
            if len(a):
                jobs.append((i, a, b))
    for (i, _, _), c in zip(jobs, stats.compare_paired_many([(a, b) for _, a, b in jobs], confidence)):
        table.loc[i, ["ref_diff_mean", "ref_ci_low", "ref_ci_high", "ref_n"]] = [c.diff_mean, c.ci_low, c.ci_high, c.n]
    controls = table[table["arm"].isin(kinds.named("control"))].set_index("config_id")
    for i, r in table.iterrows():
        cid = r["control_id"]
        if kinds.role(r["arm"]) == "treatment" and isinstance(cid, str) and cid in controls.index:
            low, high = controls.at[cid, "ref_ci_low"], controls.at[cid, "ref_ci_high"]
            table.at[i, "control_like_noop"] = bool(np.isfinite(low) and low <= 0 <= high)


def cross_fitted_best(arms: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[int, str]:
    """Seed -> the cross-entropy arm chosen for it: the highest mean delta over the *other*
    seeds (leave-one-seed-out), among the arms that ran that seed; ties go to the first
    config id. With one seed in all there is nothing to leave out: the best on it."""
    seeds = sorted(set().union(*(set(s.tolist()) for s, _ in arms.values()))) if arms else []
    chosen = {}
    for seed in seeds:
        best, best_mean = None, -np.inf
        for cid in sorted(arms):
            s, d = arms[cid]
            if seed not in s:
                continue
            others = d[s != seed]
            score = others.mean() if others.size else d.mean()
            if score > best_mean:
                best, best_mean = cid, score
        if best is not None:
            chosen[int(seed)] = best
    return chosen


def add_best_control(table: pd.DataFrame, trials: pd.DataFrame, confidence: float, correction: str,
                     alpha: float) -> None:
    """Against the best cross-entropy of the same budget, where a study has several:
    ``best_control_id`` (the arm chosen on most seeds), ``best_chosen`` (e.g. "3 of 6
    seeds"), ``best_diff_mean``, ``best_ci_low``/``high``, ``best_p_adj`` and ``best_verdict``
    (adjusted across these comparisons like the main verdicts). The best arm is chosen per
    seed on the other seeds (:func:`cross_fitted_best`)."""
    for k in ("best_control_id", "best_verdict", "best_chosen"):
        table[k] = ""
    for k in ("best_diff_mean", "best_ci_low", "best_ci_high", "best_p_adj"):
        table[k] = np.nan
    ctrl = table[table["arm"].isin(kinds.named("control")) & (table["n_finished"] > 0)]
    if ctrl.empty:
        return
    base = ctrl["control_id"].fillna(ctrl["config_id"])   # a variant names its paired control
    controls = _finished_by_seed(trials, "mle")
    jobs = []
    for i, r in table.iterrows():
        if kinds.role(r["arm"]) != "treatment" or not isinstance(r["control_id"], str):
            continue
        group = [str(c) for c in ctrl.loc[base == r["control_id"], "config_id"] if str(c) in controls]
        if len(group) < 2:
            continue
        mine = _finished_by_seed(trials[trials["config_id"] == r["config_id"]], "reward").get(r["config_id"])
        if mine is None:
            continue
        chosen = cross_fitted_best({c: controls[c] for c in group})
        a, b, picks = [], [], []
        for seed, delta in zip(*mine):
            cid = chosen.get(int(seed))
            if cid is None:
                continue
            s, d = controls[cid]
            a.append(delta)
            b.append(float(d[s == seed][0]))
            picks.append(cid)
        if a:
            jobs.append((i, picks, np.array(a), np.array(b)))
    if not jobs:
        return
    comps = stats.compare_paired_many([(a, b) for _, _, a, b in jobs], confidence)
    p = np.array([c.p_ttest for c in comps], dtype=float)
    ok = np.isfinite(p)
    p_adj = np.full_like(p, np.nan)
    if ok.any():
        p_adj[ok] = stats.adjust_pvalues(p[ok], correction, alpha)
    words = stats.verdict(p_adj, np.array([c.diff_mean for c in comps]), alpha)
    for (i, picks, _, _), c, q, w in zip(jobs, comps, p_adj, np.atleast_1d(words)):
        mode = max(sorted(set(picks)), key=picks.count)
        table.at[i, "best_control_id"] = mode
        table.at[i, "best_chosen"] = f"{picks.count(mode)} of {len(picks)} seeds"
        table.loc[i, ["best_diff_mean", "best_ci_low", "best_ci_high", "best_p_adj"]] = [
            c.diff_mean, c.ci_low, c.ci_high, q]
        table.at[i, "best_verdict"] = BEST_VERDICTS[str(w)]
