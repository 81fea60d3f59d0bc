"""Per-configuration statistics of a collected study (see ``docs/report.md``).

One row per configuration, the control arm included (keyed by ``config_id`` and ``arm``).
All mIoU numbers are in the records' unit (fractions in [0, 1]); rendering converts to
points. Only finished trials enter means, intervals and tests; failed and diverged ones
are counted, their seeds listed, and the configuration flagged.
"""

from __future__ import annotations

import re
import textwrap
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rewardsweep.analysis import arms, robustness, statistics, stats
from rewardsweep.analysis.collect import PARAM_PREFIX, Collection
from rewardsweep.analysis.treatment import add_knob_diagnostics
from rewardsweep.study import arms as kinds
from rewardsweep.analysis.labels import ARM_NAMES, config_label, params_label, varying_keys  # noqa: F401

TREATMENT = (
    "Failed and diverged trials are excluded from every mean, interval and test (they have "
    "no trustworthy final mIoU); they are counted per configuration, their seeds are listed, "
    "and a configuration that lost seeds is flagged, because dropping them can flatter a "
    "configuration whose bad runs are the ones that break. A comparison with the control uses "
    "only seeds that finished in both the configuration and its control."
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
    sequential: Any = None           # analysis.sequential_view.SequentialView of a sequential study


def _fmt_seeds(seeds) -> str:
    return " ".join(str(s) for s in sorted(seeds))


def _params_label(row: dict, varying: list[str]) -> str:
    """``baseline.kind=greedy lr.start=0.0001``: the varied parameters, by their full spec names."""
    return params_label(row, varying, prefix=PARAM_PREFIX)


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


def summarize(coll: Collection, settings: Settings | None = None, seeds_due=None) -> Summary:
    """The summary table of a study: bookkeeping per configuration, then every statistic
    of :data:`statistics.STATISTICS`, then the family-wide steps (adjustment, verdicts,
    power, flags) and the comparisons of ``arms``.

    ``seeds_due(config_id, arm) -> set | None``: the seeds a configuration was meant to run
    (a sequential study stops a configuration early; its unrun seeds are not lost); by
    default every seed some trial of the study has."""
    s = settings or Settings()
    trials = coll.trials
    notes: list[str] = []
    varying, ctrl_varying, constant = _parameters(coll)
    expected = set(trials["seed"].tolist())
    has_control = bool(trials["arm"].isin(kinds.named("control")).any())
    if not has_control:
        notes.append("This study has no control arm: per-configuration statistics only, "
                     "no control comparison is possible.")

    notes.extend(_batch_stream_notes(trials))
    configs = _configurations(trials, varying, ctrl_varying, expected, seeds_due)
    pairs = _pairing(trials, configs, notes)
    table = pd.DataFrame([c.row for c in configs])
    _statistics(table, trials, [c.finished for c in configs], pairs, s)
    _adjust(table, s)
    _power(table, s)
    _flag(table)
    arms.add_reference(table, trials, s.confidence)
    arms.add_best_control(table, trials, s.confidence, s.correction, s.alpha)
    arms.add_treatment(table, trials)  # last: a flag is appended to the verdict
    add_knob_diagnostics(table, trials)
    table = _ordered(table)

    if (table["n_finished"] == 0).any():
        names = ", ".join(table.loc[table["n_finished"] == 0, "config_id"])
        notes.append(f"no finished trial in configuration(s) {names}")
    return Summary(table, _iou_delta(coll, table), curve_stats(coll, s.confidence), s, has_control,
                   varying, constant, notes, sorted(expected))


# --------------------------------------------------------------------------- bookkeeping

def _parameters(coll: Collection) -> tuple[list[str], list[str], dict]:
    """Param columns that vary between reward configurations, those that only tell
    control_grid variants apart (their own lr / optimizer), and those constant in the study
    (judged on the reward arm: a key only controls carry does not label anything)."""
    trials = coll.trials
    reward = trials[trials["arm"].isin(kinds.named("treatment"))]
    mle = trials[trials["arm"].isin(kinds.named("control"))]
    # the labels' rule (analysis.labels): what varies, judged on the reward arm's values
    varying = varying_keys({col: reward[col].unique() for col in coll.param_columns}) if len(reward) else []
    ctrl_varying = [col for col in varying_keys({c: mle[c].unique() for c in coll.param_columns})
                    if col not in varying] if len(mle) else []
    constant = {col: reward[col].iloc[0] for col in coll.param_columns
                if len(reward) and col not in varying and pd.notna(reward[col].iloc[0])}
    return varying, ctrl_varying, constant


@dataclass
class _Config:
    row: dict                # the configuration's bookkeeping columns
    idx: np.ndarray          # its trials (positions in ``trials``)
    finished: np.ndarray     # its finished trials, in the same order


def _configurations(trials: pd.DataFrame, varying: list[str], ctrl_varying: list[str],
                    expected: set, seeds_due=None) -> list[_Config]:
    """One entry per (config_id, arm): names, counts and lost seeds; no statistics yet."""
    seed_a = trials["seed"].to_numpy(int)     # plain arrays: pandas per group is slow at 10k trials
    status_a = trials["status"].to_numpy(object)
    ctrl_a = trials["control_id"].to_numpy(object)
    est_a = trials["estimator"].to_numpy(object)
    var_a = {col: trials[col].to_numpy(object) for col in varying + ctrl_varying}
    out = []
    for (cid, arm), idx in sorted(trials.groupby(["config_id", "arm"], sort=False).indices.items()):
        i0 = idx[0]
        status, seeds = status_a[idx], seed_a[idx]
        fmask = status == "finished"
        failed = seeds[status == "failed"].tolist()
        diverged = seeds[status == "diverged"].tolist()
        due = seeds_due(cid, arm) if seeds_due is not None else None
        missing = sorted((expected if due is None else due) - set(seeds.tolist()))
        first = {col: var_a[col][i0] for col in varying}
        tuned = kinds.role(arm) == "control" and ctrl_a[i0] not in (None, cid)
        shown = _params_label({**first, **{c: var_a[c][i0] for c in ctrl_varying}}, sorted(varying + ctrl_varying)) \
            if tuned else _params_label(first, varying)
        n_finished = int(fmask.sum())
        row = {
            "config_id": cid, "arm": arm,
            "params": shown,
            "label": config_label(shown, cid, "tuned" if tuned else arm),
            "control_id": ctrl_a[i0] if tuned or kinds.role(arm) == "treatment" else None,
            "estimator": est_a[i0],
            **first,
            "n_seeds": int(len(idx)), "n_finished": n_finished, "n_failed": len(failed),
            "n_diverged": len(diverged), "n_missing": len(missing),
            "failed_seeds": _fmt_seeds(failed), "diverged_seeds": _fmt_seeds(diverged),
            "missing_seeds": _fmt_seeds(missing),
            "lost_seeds": bool(failed or diverged or missing),
            "verdict": kinds.KINDS[arm].verdict if arm in kinds.KINDS else "",
            "seeds_used": n_finished, "seeds_basis": "delta mIoU", "n_paired": np.nan,
        }
        out.append(_Config(row, idx, idx[fmask]))
    return out


def _batch_stream_notes(trials: pd.DataFrame) -> list[str]:
    """A study topped up across the loader change mixes two batch streams
    (``records.batch_stream``): say how many trials and seeds, and what it costs."""
    if "batches" not in trials:
        return []
    done = trials[trials["status"] == "finished"]
    streams = done.groupby("batches")["seed"].count()
    if len(streams) < 2:
        return []
    mixed = sorted(int(seed) for seed, group in done.groupby("seed") if group["batches"].nunique() > 1)
    seeds = f"; seeds {_fmt_seeds(mixed)} have arms on both, so their pairs do not share batches " \
            f"(paired differences are noisier there, not biased)" if mixed else ""
    return [f"{streams['shared']} finished trial(s) were recorded before per-sample seeded batches "
            f"(rewardsweep 0.3.0 and earlier: MMEngine's one random stream) and {streams['seeded']} after; "
            f"a seed gives other batches in each, so rerunning an old trial would not reproduce its "
            f"number{seeds}"]


def _pairing(trials: pd.DataFrame, configs: list[_Config], notes: list[str]) -> dict[int, tuple]:
    """Row -> (configuration, control) delta mIoU on the seeds finished in both, for every
    reward configuration whose control has finished trials; the others get verdict
    "no control" (and a note saying why)."""
    seed_a = trials["seed"].to_numpy(int)
    delta_a = trials["delta_miou"].to_numpy(float)
    ctrl_a = trials["control_id"].to_numpy(object)
    controls: dict[str, tuple[np.ndarray, np.ndarray]] = {}     # control's finished deltas by seed
    for c in configs:
        if kinds.role(c.row["arm"]) == "control":
            order = np.argsort(seed_a[c.finished], kind="stable")
            controls[c.row["config_id"]] = (seed_a[c.finished][order], delta_a[c.finished][order])
    pairs = {}
    for i, c in enumerate(configs):
        row = c.row
        if kinds.role(row["arm"]) != "treatment":
            continue
        cid = row["config_id"]
        cids = list(dict.fromkeys(x for x in ctrl_a[c.idx] if x is not None))
        if len(cids) > 1:
            notes.append(f"configuration {cid} names several controls ({', '.join(cids)}); "
                         f"compared with {cids[0]}")
        if not cids:
            row["verdict"] = "no control"
            continue
        if cids[0] not in controls or not len(controls[cids[0]][0]):
            row["verdict"] = "no control"
            notes.append(f"configuration {cid}: its control {cids[0]} has no finished trials")
            continue
        cs, cd = controls[cids[0]]
        _, ia, ic = np.intersect1d(seed_a[c.finished], cs, assume_unique=True, return_indices=True)
        pairs[i] = (delta_a[c.finished][ia], cd[ic])
        row["n_paired"] = row["seeds_used"] = len(ia)
        row["seeds_basis"] = "paired difference"
    return pairs


# --------------------------------------------------------------------------- the registry

def _batches(trials: pd.DataFrame, finished: list[np.ndarray], pairs: dict[int, tuple], over: str):
    """The input of a statistic over ``over``, in batches of equal length (one vectorised
    call each): ``[(rows, arrays)]``, ``arrays`` ``[len(rows), seeds]``. A configuration
    with no finite value is in no batch; a comparison with no seed is (length 0)."""
    by_n: dict[int, list[int]] = {}
    if over == statistics.PAIRED:
        data = pairs
    else:
        values = trials[over].to_numpy(float)
        data = {}
        for i, f in enumerate(finished):
            x = values[f]
            x = x[np.isfinite(x)]
            if x.size:
                data[i] = (x,)
    for i, arrays in data.items():
        by_n.setdefault(arrays[0].size, []).append(i)
    return [(np.array(rows), [np.stack([data[i][k] for i in rows]).reshape(len(rows), n)
                              for k in range(len(data[rows[0]]))])
            for n, rows in by_n.items()]


def _statistics(table: pd.DataFrame, trials: pd.DataFrame, finished: list[np.ndarray],
                pairs: dict[int, tuple], s: Settings) -> None:
    """Every column of the registry: computed where the entry has a ``fn`` (and applies),
    its fill value elsewhere; a family-wide entry's columns start at their fill value."""
    n = len(table)
    batches: dict[str, list] = {}
    for st in statistics.STATISTICS:
        cols = [np.full(n, f, dtype=object if isinstance(f, str) else float) for f in st.fills()]
        if st.fn is not None and (st.when is None or st.when(s)):
            if st.over not in batches:
                batches[st.over] = _batches(trials, finished, pairs, st.over)
            for rows, arrays in batches[st.over]:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")         # degenerate input: NaN, not a warning
                    result = st.fn(*arrays, s)
                for col, values in zip(cols, result if isinstance(result, tuple) else (result,)):
                    col[rows] = np.broadcast_to(np.asarray(values, dtype=col.dtype), rows.shape)
        elif any(c in table for c in st.columns):
            continue                                        # filled by the bookkeeping (verdict)
        for name, col in zip(st.columns, cols):
            table[name] = col


# --------------------------------------------------------------------------- family-wide steps

def _adjusted(p: pd.Series, family: pd.Series, s: Settings) -> np.ndarray:
    """``p`` adjusted across the rows of ``family`` that have one (NaN elsewhere)."""
    p = p.to_numpy(float)
    ok = family.to_numpy(bool) & np.isfinite(p)
    out = np.full(p.shape, np.nan)
    if ok.any():
        out[ok] = stats.adjust_pvalues(p[ok], s.correction, s.alpha)
    return out


def _adjust(table: pd.DataFrame, s: Settings) -> None:
    """Multiple testing across every configuration compared with a control: adjusted
    t-test and equivalence p-values, the intervals that agree with them, the verdicts."""
    compared = table["arm"].isin(kinds.named("treatment")) & table["n_paired"].notna()
    # a verdict needs the t-test and the skew-corrected test: the larger p is adjusted
    p_verdict = np.fmax(table["p_ttest"].to_numpy(float), table["p_skew"].to_numpy(float))
    table["p_adj"] = _adjusted(pd.Series(p_verdict, index=table.index), compared, s)
    table["p_equiv_adj"] = _adjusted(table["p_equiv"], compared, s)
    with np.errstate(invalid="ignore"):
        table["equivalent"] = table["p_equiv_adj"].to_numpy(float) < s.alpha
    table["adj_level"], table["diff_adj_low"], table["diff_adj_high"] = stats.robust_adjusted_intervals(
        table["diff_mean"], table["diff_sd"], table["n_paired"], table["skewness"], p_verdict, table["p_adj"],
        s.alpha)
    table.loc[compared, "verdict"] = stats.verdict(
        table.loc[compared, "p_adj"].to_numpy(float), table.loc[compared, "diff_mean"].to_numpy(float),
        s.alpha)
    claims = compared & table["verdict"].isin(["beats control", "worse"])
    table["rests_on"] = [robustness.note(r, 1 - r["adj_level"]) if claim else ""
                         for claim, (_, r) in zip(claims, table.iterrows())]


def _power(table: pd.DataFrame, s: Settings) -> None:
    """Seeds needed and the smallest effect the seeds used can detect: from the SD of the
    paired differences where there is a comparison, else from the SD of delta mIoU."""
    sd = table["diff_sd"].where(table["n_paired"].notna(), table["sd_delta"]).to_numpy(float)
    used = table["seeds_used"].to_numpy()
    table["seeds_needed"] = [stats.seeds_needed(x, s.effect, s.alpha, s.power) for x in sd]
    table["detectable"] = [stats.min_detectable_effect(x, n, s.alpha, s.power) for x, n in zip(sd, used)]


def _flag(table: pd.DataFrame) -> None:
    """``underpowered`` (a configuration with fewer seeds than needed; the control makes no
    claim of its own) and ``flags``, the "; "-joined reasons to distrust a row."""
    table["underpowered"] = (table["arm"].isin(kinds.named("treatment")) & table["seeds_needed"].notna()
                             & (table["seeds_used"] < table["seeds_needed"])).astype(bool)
    table["flags"] = [_flags(r) for r in table.itertuples()]


def _flags(r) -> str:
    out = []
    if r.n_finished == 0:
        out.append("no finished seed")
    if r.lost_seeds:
        out.append("lost seeds")
    if r.underpowered:
        out.append("too few seeds")
    if isinstance(r.wilcoxon_note, str) and r.wilcoxon_note and kinds.role(r.arm) == "treatment":
        out.append("wilcoxon " + r.wilcoxon_note.split(":")[0])
    return "; ".join(out)


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Arms in ``study.arms`` report order (controls, the reference, then the reward
    configurations), each by mean paired difference (or delta)."""
    key = table["diff_mean"].where(table["diff_mean"].notna(), table["mean_delta"])
    order = pd.Series(kinds.report_order(table["arm"]), index=table.index)
    return (table.assign(_ctrl=order, _key=-key.fillna(-np.inf))
            .sort_values(["_ctrl", "_key", "config_id"]).drop(columns=["_ctrl", "_key"])
            .reset_index(drop=True))


def _iou_delta(coll: Collection, table: pd.DataFrame) -> pd.DataFrame:
    """Per-class IoU change, mean over finished seeds, in the table's row order."""
    order = pd.MultiIndex.from_frame(table[["config_id", "arm"]])
    if not coll.class_names:
        return pd.DataFrame(index=order)
    fin_mask = (coll.trials["status"] == "finished").to_numpy()
    delta = coll.iou_delta[fin_mask]
    delta.index = pd.MultiIndex.from_frame(coll.trials.loc[fin_mask, ["config_id", "arm"]])
    return delta.groupby(level=[0, 1], sort=False).mean().reindex(order)


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
