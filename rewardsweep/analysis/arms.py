"""The comparisons beyond "configuration vs its paired control" (docs/report.md):

- **treatment**: is each reward configuration reward tuning at all (``treatment.py`` flags
  from its trials' probe summaries)? A flagged verdict carries the flag;
- **no-op reference**: every arm minus the no-update reference on the same seeds, so
  BatchNorm drift and evaluation noise have their own zero line;
- **best cross-entropy**: each reward configuration against the best control of its budget
  (the paired control and its ``control_grid`` variants), selected on the validation split.

Each adds columns to the summary table; the statistics come from ``stats`` like the rest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rewardsweep.analysis import stats
from rewardsweep.analysis.treatment import treatment_flags

# What a flagged verdict says after its words.
NOT_TUNING, COLLAPSED = "[not reward tuning]", "[collapsed]"
BEST_VERDICTS = {"beats control": "beats best CE", "worse": "worse than best CE", "no evidence": "no evidence"}


def _finished_by_seed(trials: pd.DataFrame, arm: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """config id -> (sorted seeds, delta mIoU) of the finished trials of ``arm``."""
    fin = trials[(trials["arm"] == arm) & (trials["status"] == "finished")]
    out = {}
    for cid, g in fin.groupby("config_id", sort=False):
        g = g.sort_values("seed", kind="stable")
        out[str(cid)] = (g["seed"].to_numpy(int), g["delta_miou"].to_numpy(float))
    return out


def _pairs(mine: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray]):
    _, ia, ib = np.intersect1d(mine[0], other[0], assume_unique=True, return_indices=True)
    return mine[1][ia], other[1][ib]


def add_treatment(table: pd.DataFrame, trials: pd.DataFrame) -> None:
    """Columns ``reward_share``, ``reward_rise``, ``reward_rise_se``, ``signal_norm`` and
    ``treatment`` (the flags, "; "-joined) per reward configuration; flagged verdicts carry
    :data:`NOT_TUNING` or :data:`COLLAPSED`."""
    cols = {k: f"treatment.{k}" for k in ("reward_share", "reward_rise", "reward_rise_se", "signal_norm")}
    for k in (*cols, "treatment"):
        table[k] = np.nan if k != "treatment" else ""
    if not all(c in trials for c in cols.values()):
        return
    fin = trials[(trials["arm"] == "reward") & (trials["status"] == "finished")]
    groups = fin.groupby("config_id", sort=False).indices
    for i, r in table.iterrows():
        if r["arm"] != "reward" or r["config_id"] not in groups:
            continue
        g = fin.iloc[groups[r["config_id"]]]
        share, rise, se = (g[cols[k]].to_numpy(float) for k in ("reward_share", "reward_rise", "reward_rise_se"))
        rises = rise[np.isfinite(rise)]
        table.at[i, "reward_share"] = np.nanmean(share) if np.isfinite(share).any() else np.nan
        table.at[i, "signal_norm"] = (np.sqrt(np.nanmean(g[cols["signal_norm"]].to_numpy(float) ** 2))
                                      if np.isfinite(g[cols["signal_norm"]].to_numpy(float)).any() else np.nan)
        if rises.size:
            table.at[i, "reward_rise"] = rises.mean()
            table.at[i, "reward_rise_se"] = (rises.std(ddof=1) / np.sqrt(rises.size) if rises.size >= 2
                                             else se[np.isfinite(rise)][0])
        flags = treatment_flags(share, rise, se, g["delta_miou"].to_numpy(float))
        table.at[i, "treatment"] = "; ".join(flags)
        if flags:
            tag = COLLAPSED if flags[0].startswith("collapsed") else NOT_TUNING
            table.at[i, "verdict"] = f"{r['verdict']} {tag}"


def add_reference(table: pd.DataFrame, trials: pd.DataFrame, confidence: float) -> None:
    """``ref_diff_mean``/``ref_ci_low``/``ref_ci_high``/``ref_n``: arm minus its no-op reference."""
    for k in ("ref_diff_mean", "ref_ci_low", "ref_ci_high", "ref_n"):
        table[k] = np.nan
    if "reference_id" not in trials or not (trials["arm"] == "noop").any():
        return
    refs = _finished_by_seed(trials, "noop")
    ref_of = trials.groupby(["config_id", "arm"], sort=False)["reference_id"].first()
    jobs = []
    for i, r in table.iterrows():
        rid = ref_of.get((r["config_id"], r["arm"]))
        if r["arm"] == "noop" or not isinstance(rid, str) or rid not in refs:
            continue
        mine = _finished_by_seed(trials[trials["config_id"] == r["config_id"]], r["arm"]).get(r["config_id"])
        if mine is not None:
            a, b = _pairs(mine, refs[rid])
            if len(a):
                jobs.append((i, a, b))
    for (i, _, _), c in zip(jobs, stats.compare_paired_many([(a, b) for _, a, b in jobs], confidence)):
        table.loc[i, ["ref_diff_mean", "ref_ci_low", "ref_ci_high", "ref_n"]] = [c.diff_mean, c.ci_low, c.ci_high, c.n]


def add_best_control(table: pd.DataFrame, trials: pd.DataFrame, confidence: float, correction: str,
                     alpha: float) -> None:
    """Against the best cross-entropy of the same budget, where a study has several:
    ``best_control_id``, ``best_diff_mean``, ``best_ci_low``/``high``, ``best_p_adj`` and
    ``best_verdict`` (adjusted across these comparisons like the main verdicts)."""
    for k in ("best_control_id", "best_verdict"):
        table[k] = ""
    for k in ("best_diff_mean", "best_ci_low", "best_ci_high", "best_p_adj"):
        table[k] = np.nan
    ctrl = table[(table["arm"] == "mle") & (table["n_finished"] > 0)]
    if ctrl.empty:
        return
    base = ctrl["control_id"].fillna(ctrl["config_id"])   # a variant names its paired control
    controls = _finished_by_seed(trials, "mle")
    jobs = []
    for i, r in table.iterrows():
        if r["arm"] != "reward" or not isinstance(r["control_id"], str):
            continue
        group = ctrl[base == r["control_id"]]
        if len(group) < 2:
            continue
        best = str(group.loc[group["mean_delta"].idxmax(), "config_id"])
        mine = _finished_by_seed(trials[trials["config_id"] == r["config_id"]], "reward").get(r["config_id"])
        if mine is None or best not in controls:
            continue
        a, b = _pairs(mine, controls[best])
        if len(a):
            jobs.append((i, best, a, b))
    if not jobs:
        return
    comps = stats.compare_paired_many([(a, b) for _, _, a, b in jobs], confidence)
    p = np.array([c.p_ttest for c in comps], dtype=float)
    ok = np.isfinite(p)
    p_adj = np.full_like(p, np.nan)
    if ok.any():
        p_adj[ok] = stats.adjust_pvalues(p[ok], correction, alpha)
    words = stats.verdict(p_adj, np.array([c.diff_mean for c in comps]), alpha)
    for (i, best, _, _), c, q, w in zip(jobs, comps, p_adj, np.atleast_1d(words)):
        table.at[i, "best_control_id"] = best
        table.loc[i, ["best_diff_mean", "best_ci_low", "best_ci_high", "best_p_adj"]] = [
            c.diff_mean, c.ci_low, c.ci_high, q]
        table.at[i, "best_verdict"] = BEST_VERDICTS[str(w)]
