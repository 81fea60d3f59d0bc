"""Per-configuration statistics of a collected study (see ``docs/report.md``).

One row per configuration, the control arm included (keyed by ``config_id`` and ``arm``).
All mIoU numbers are in the records' unit (fractions in [0, 1]); rendering converts to
points. Only finished trials enter means, intervals and tests; failed and diverged ones
are counted, their seeds listed, and the configuration flagged.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rewardsweep.analysis import arms, stats
from rewardsweep.analysis.collect import PARAM_PREFIX, Collection

TREATMENT = (
    "Failed and diverged trials are excluded from every mean, interval and test (they have "
    "no trustworthy final mIoU); they are counted per configuration, their seeds are listed, "
    "and a configuration that lost seeds is flagged, because dropping them can flatter a "
    "configuration whose bad runs are the ones that break. A comparison with the control uses "
    "only seeds that finished in both the configuration and its control."
)
SECONDARY = (
    "Best mIoU during tuning (mean_best_secondary) picks the best evaluation on the same "
    "validation split it is measured on: it is optimistic by construction and reported only "
    "as a secondary number; the primary outcome is delta mIoU after the last step."
)


@dataclass
class Settings:
    alpha: float = 0.05
    power: float = 0.8
    effect: float = 0.005            # in the records' unit (0.5 mIoU points)
    correction: str = "holm"
    confidence: float = stats.CONFIDENCE
    bootstrap_seed: int = stats.BCA_SEED
    margin: float | None = None      # equivalence margin (records' unit): TOST when set
    bootstrap_images: bool = False   # add the seeds x val images bootstrap (val_bootstrap.py)


@dataclass
class Summary:
    table: pd.DataFrame              # one row per configuration
    iou_delta: pd.DataFrame          # (config_id, arm) x class: mean per-class IoU change
    curves: pd.DataFrame             # config_id, arm, step, n, mean, low, high
    settings: Settings
    has_control: bool
    varying: list[str]               # param columns that differ between configurations
    constant: dict                   # param columns with one value in the whole study
    notes: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)    # every seed some trial of the study has
    next_steps: list[str] = field(default_factory=list)   # filled by analysis.next_steps


def _fmt_seeds(seeds) -> str:
    return " ".join(str(s) for s in sorted(seeds))


def _params_label(row: dict, varying: list[str]) -> str:
    """``baseline.kind=greedy lr.start=0.0001``: the varied parameters, by their full spec names."""
    parts = []
    for col in varying:
        value = row.get(col)
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        if isinstance(value, float):
            value = f"{value:g}"
        parts.append(f"{col.removeprefix(PARAM_PREFIX)}={value}")
    return " ".join(parts)


ARM_NAMES = {"mle": "control (mle)", "tuned": "cross-entropy, own lr", "noop": "no-op reference"}


def config_label(params: str, config_id: str, arm: str) -> str:
    """The one name of a configuration in every output: its parameters, then its id.
    ``arm``: reward, mle (a paired control), tuned (a control_grid variant) or noop."""
    name = f"{ARM_NAMES[arm]} {params}".strip() if arm in ARM_NAMES else (params or "(no varied parameter)")
    return f"{name} [{config_id}]"


def _word_pieces(word: str) -> list[str]:
    """Where a long ``key.sub=value`` may break: before a ``.`` of the key, after the ``=``
    (never inside the value: ``lr.start=1e-2`` must not read ``lr.start=1e`` / ``-2``)."""
    if "=" not in word:
        return [word]
    key, value = word.split("=", 1)
    parts = re.split(r"(?=\.)", key)
    parts[-1] += "="
    return parts + ([value] if value else [])


def wrap_label(text: str, width: int) -> list[str]:
    """A label in lines of at most ``width`` characters, never cut: breaks at spaces, then
    inside a long ``key=value`` (:func:`_word_pieces`), and only then inside a word."""
    lines: list[str] = []
    for line in textwrap.wrap(text, max(width, 4), break_long_words=False, break_on_hyphens=False) or [""]:
        if len(line) <= width:
            lines.append(line)
            continue
        cur = ""
        for piece in _word_pieces(line):
            while len(piece) > width:                       # longer than a line: fold
                if cur:
                    lines.append(cur)
                    cur = ""
                lines.append(piece[:width])
                piece = piece[width:]
            if len(cur) + len(piece) > width:
                lines.append(cur)
                cur = piece
            else:
                cur += piece
        if cur:
            lines.append(cur)
    return lines


def summarize(coll: Collection, settings: Settings | None = None) -> Summary:
    s = settings or Settings()
    trials = coll.trials
    notes: list[str] = []
    fin_mask = (trials["status"] == "finished").to_numpy()
    fin = trials[fin_mask]

    # Params that vary between configurations vs. constant in the study.
    # (over the reward arm: a key only controls carry does not label anything).
    varying, constant = [], {}
    reward = trials[trials["arm"] == "reward"]
    mle = trials[trials["arm"] == "mle"]
    ctrl_varying = []  # what tells control_grid variants apart (their own lr / optimizer)
    for col in coll.param_columns:
        values = reward[col].astype(object).where(reward[col].notna(), "–").astype(str).unique()
        if len(values) > 1:
            varying.append(col)
        elif len(values) == 1 and values[0] != "–":
            constant[col] = reward[col].iloc[0]
        if col not in varying and mle[col].astype(object).where(mle[col].notna(), "–").astype(str).nunique() > 1:
            ctrl_varying.append(col)

    expected = set(trials["seed"].tolist())
    has_control = bool((trials["arm"] == "mle").any())
    if not has_control:
        notes.append("This study has no control arm: per-configuration statistics only, "
                     "no control comparison is possible.")

    # Moments of delta mIoU per configuration (finished seeds), in one pass.
    keys = ["config_id", "arm"]
    mom = fin.groupby(keys, sort=True).agg(
        n=("delta_miou", "count"), mean=("delta_miou", "mean"), sd=("delta_miou", "std"),
        se=("delta_miou", "sem"), min=("delta_miou", "min"), max=("delta_miou", "max"),
        final=("miou_final", "mean"), best=("miou_best", "mean"))
    low, high = stats.t_interval_from_moments(mom["mean"].to_numpy(), mom["sd"].to_numpy(),
                                              mom["n"].to_numpy(), s.confidence)
    mom["ci_low"], mom["ci_high"] = low, high
    mom_rows = {k: r for k, r in zip(mom.index, mom.to_dict("records"))}

    # Plain arrays for the per-configuration loop (pandas per group is slow at 10k trials).
    seed_a = trials["seed"].to_numpy(int)
    status_a = trials["status"].to_numpy(object)
    delta_a = trials["delta_miou"].to_numpy(float)
    ctrl_a = trials["control_id"].to_numpy(object)
    est_a = trials["estimator"].to_numpy(object)
    var_a = {col: trials[col].to_numpy(object) for col in varying + ctrl_varying}
    fin_a = status_a == "finished"

    # The controls' finished deltas by seed, for pairing.
    ctrl: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for (cid, arm), idx in trials.groupby(keys, sort=False).indices.items():
        if arm == "mle":
            idx = idx[fin_a[idx]]
            order = np.argsort(seed_a[idx], kind="stable")
            ctrl[cid] = (seed_a[idx][order], delta_a[idx][order])

    nan = float("nan")
    rows: list[dict] = []
    to_pair: list[tuple[int, np.ndarray, np.ndarray]] = []
    for (cid, arm), idx in sorted(trials.groupby(keys, sort=False).indices.items()):
        i0 = idx[0]
        st_g, seeds_g = status_a[idx], seed_a[idx]
        fmask = st_g == "finished"
        x = delta_a[idx][fmask]
        m = mom_rows.get((cid, arm))
        bca = stats.bca_interval(x, s.confidence, seed=s.bootstrap_seed)
        failed = seeds_g[st_g == "failed"].tolist()
        diverged = seeds_g[st_g == "diverged"].tolist()
        missing = sorted(expected - set(seeds_g.tolist()))
        first = {col: var_a[col][i0] for col in varying}
        tuned = arm == "mle" and ctrl_a[i0] not in (None, cid)
        shown = _params_label({**first, **{c: var_a[c][i0] for c in ctrl_varying}}, varying + ctrl_varying) \
            if tuned else _params_label(first, varying)
        row = {
            "config_id": cid, "arm": arm,
            "params": shown,
            "label": config_label(shown, cid, "tuned" if tuned else arm),
            "control_id": ctrl_a[i0] if tuned or arm == "reward" else None,
            "estimator": est_a[i0],
            **first,
            "n_seeds": int(len(idx)), "n_finished": int(fmask.sum()), "n_failed": len(failed),
            "n_diverged": len(diverged), "n_missing": len(missing),
            "failed_seeds": _fmt_seeds(failed), "diverged_seeds": _fmt_seeds(diverged),
            "missing_seeds": _fmt_seeds(missing),
            "lost_seeds": bool(failed or diverged or missing),
        }
        for out_key, mkey in (("mean_delta", "mean"), ("sd_delta", "sd"), ("se_delta", "se"),
                              ("ci_low", "ci_low"), ("ci_high", "ci_high"), ("min_delta", "min"),
                              ("max_delta", "max"), ("mean_final", "final"),
                              ("mean_best_secondary", "best")):
            row[out_key] = float(m[mkey]) if m is not None else nan
        row["bca_low"], row["bca_high"] = bca
        if arm in ("mle", "noop"):
            row["verdict"] = "control" if arm == "mle" else "reference"
        else:
            cids = list(dict.fromkeys(c for c in ctrl_a[idx] if c is not None))
            if len(cids) > 1:
                notes.append(f"configuration {cid} names several controls ({', '.join(cids)}); "
                             f"compared with {cids[0]}")
            if not cids:
                row["verdict"] = "no control"
            elif cids[0] not in ctrl or not len(ctrl[cids[0]][0]):
                row["verdict"] = "no control"
                notes.append(f"configuration {cid}: its control {cids[0]} has no finished trials")
            else:
                cs, cd = ctrl[cids[0]]
                fs = seeds_g[fmask]
                _, ia, ic = np.intersect1d(fs, cs, assume_unique=True, return_indices=True)
                to_pair.append((len(rows), x[ia], cd[ic]))
        row["seeds_used"], row["seeds_basis"] = row["n_finished"], "delta mIoU"
        rows.append(row)

    # Paired comparisons, vectorised over configurations with the same number of pairs.
    comps = stats.compare_paired_many([(a, b) for _, a, b in to_pair], s.confidence)
    for (i, _, _), comp in zip(to_pair, comps):
        rows[i].update({
            "n_paired": comp.n, "diff_mean": comp.diff_mean, "diff_sd": comp.diff_sd,
            "diff_ci_low": comp.ci_low, "diff_ci_high": comp.ci_high, "t": comp.t,
            "p_ttest": comp.p_ttest, "w": comp.w, "p_wilcoxon": comp.p_wilcoxon,
            "wilcoxon_note": comp.wilcoxon_note, "p_improve": comp.p_improve,
            "seeds_used": comp.n, "seeds_basis": "paired difference",
        })
    if s.margin:
        for i, a, b in to_pair:
            rows[i]["p_equiv"] = stats.equivalence_test(a, b, s.margin)
    # Seeds needed and the smallest effect the seeds used can detect: from the SD of the
    # paired differences where there is a comparison, else from the SD of delta mIoU.
    for row in rows:
        sd_basis = row["diff_sd"] if "diff_sd" in row else row["sd_delta"]
        row["seeds_needed"] = stats.seeds_needed(sd_basis, s.effect, s.alpha, s.power)
        row["detectable"] = stats.min_detectable_effect(sd_basis, row["seeds_used"], s.alpha, s.power)

    table = pd.DataFrame(rows)
    for col in ("n_paired", "diff_mean", "diff_sd", "diff_ci_low", "diff_ci_high", "t", "p_ttest",
                "w", "p_wilcoxon", "p_improve"):
        if col not in table:
            table[col] = np.nan
    if "wilcoxon_note" not in table:
        table["wilcoxon_note"] = ""
    table["wilcoxon_note"] = table["wilcoxon_note"].fillna("")

    # Multiple testing across every configuration compared with a control.
    tested = (table["arm"] == "reward").to_numpy() & np.isfinite(table["p_ttest"].to_numpy(float))
    table["p_adj"] = np.nan
    if tested.any():
        table.loc[tested, "p_adj"] = stats.adjust_pvalues(
            table.loc[tested, "p_ttest"].to_numpy(float), s.correction, s.alpha)
    compared = (table["arm"] == "reward") & table["n_paired"].notna()
    # Equivalence (TOST) p-values, adjusted the same way as the difference tests.
    table["p_equiv"] = table["p_equiv"] if "p_equiv" in table else np.nan
    table["p_equiv_adj"] = np.nan
    testable = compared.to_numpy() & np.isfinite(table["p_equiv"].to_numpy(float))
    if testable.any():
        table.loc[testable, "p_equiv_adj"] = stats.adjust_pvalues(
            table.loc[testable, "p_equiv"].to_numpy(float), s.correction, s.alpha)
    with np.errstate(invalid="ignore"):
        table["equivalent"] = table["p_equiv_adj"].to_numpy(float) < s.alpha
    table["adj_level"], table["diff_adj_low"], table["diff_adj_high"] = stats.adjusted_intervals(
        table["diff_mean"], table["diff_sd"], table["n_paired"], table["p_ttest"], table["p_adj"],
        s.alpha)
    table.loc[compared, "verdict"] = stats.verdict(
        table.loc[compared, "p_adj"].to_numpy(float), table.loc[compared, "diff_mean"].to_numpy(float),
        s.alpha)
    # The control makes no claim of its own: only configurations are flagged.
    table["underpowered"] = ((table["arm"] == "reward") & table["seeds_needed"].notna()
                             & (table["seeds_used"] < table["seeds_needed"])).astype(bool)
    table["flags"] = [_flags(r) for r in table.itertuples()]
    arms.add_reference(table, trials, s.confidence)
    arms.add_best_control(table, trials, s.confidence, s.correction, s.alpha)
    arms.add_treatment(table, trials)  # last: a flag is appended to the verdict

    # Order: controls, the reference, then configurations by mean paired difference (or delta).
    key = table["diff_mean"].where(table["diff_mean"].notna(), table["mean_delta"])
    order = table["arm"].map({"mle": 0, "noop": 1}).fillna(2)
    table = (table.assign(_ctrl=order, _key=-key.fillna(-np.inf))
             .sort_values(["_ctrl", "_key", "config_id"]).drop(columns=["_ctrl", "_key"])
             .reset_index(drop=True))

    if (table["n_finished"] == 0).any():
        names = ", ".join(table.loc[table["n_finished"] == 0, "config_id"])
        notes.append(f"no finished trial in configuration(s) {names}")

    # Per-class IoU change, mean over finished seeds.
    if coll.class_names:
        delta = coll.iou_delta[fin_mask]
        delta.index = pd.MultiIndex.from_frame(fin[["config_id", "arm"]])
        iou_delta = delta.groupby(level=[0, 1], sort=False).mean()
        order = pd.MultiIndex.from_frame(table[["config_id", "arm"]])
        iou_delta = iou_delta.reindex(order)
    else:
        iou_delta = pd.DataFrame(index=pd.MultiIndex.from_frame(table[["config_id", "arm"]]))

    return Summary(table, iou_delta, curve_stats(coll, s.confidence), s, has_control,
                   varying, constant, notes, sorted(expected))


def _flags(r) -> str:
    out = []
    if r.n_finished == 0:
        out.append("no finished seed")
    if r.lost_seeds:
        out.append("lost seeds")
    if r.underpowered:
        out.append("too few seeds")
    if isinstance(r.wilcoxon_note, str) and r.wilcoxon_note and r.arm == "reward":
        out.append("wilcoxon " + r.wilcoxon_note.split(":")[0])
    return "; ".join(out)


def curve_stats(coll: Collection, confidence: float = stats.CONFIDENCE) -> pd.DataFrame:
    """Mean mIoU per (configuration, step) over finished seeds, with its t-interval band."""
    fin_trials = coll.trials.index[coll.trials["status"] == "finished"]
    c = coll.curves[coll.curves["trial"].isin(fin_trials)]
    if c.empty:
        return pd.DataFrame(columns=["config_id", "arm", "step", "n", "mean", "sd", "low", "high"])
    agg = (c.groupby(["config_id", "arm", "step"], sort=True)["miou"]
           .agg(n="count", mean="mean", sd="std").reset_index())
    low, high = stats.t_interval_from_moments(agg["mean"].to_numpy(), agg["sd"].to_numpy(),
                                              agg["n"].to_numpy(), confidence)
    agg["low"], agg["high"] = low, high
    return agg
