"""Render a summary: console table (rich), report.md, self-contained report.html, CSVs.

The markdown and the HTML are built from one list of typed blocks so they always say the
same thing. The statistics' columns, console columns and explanations come from the
registry (``statistics.STATISTICS``); only the bookkeeping columns are spelled here.
Numbers in the console, markdown and HTML are mIoU *points* (x100); the CSVs keep the
records' unit (fractions in [0, 1]) at full precision.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rewardsweep.analysis import statistics
from rewardsweep.analysis.checkpoints import best_checkpoints, test_command
from rewardsweep.analysis.collect import Collection
from rewardsweep.analysis.formats import ci, count, finite, pts, pval
from rewardsweep.analysis.statistics import CONSOLE, PER_CONFIG, SEEDS, VS_CONTROL, View
from rewardsweep.analysis.summary import TREATMENT, Summary, wrap_label
from rewardsweep.links import doc_url, link_docs
from rewardsweep.study import arms as kinds

CONSOLE_ROWS = 30
CORRECTION_NAMES = {"holm": "Holm", "fdr_bh": "Benjamini-Hochberg"}


def _n(r) -> str:
    return f"{int(r['n_finished'])}/{int(r['n_failed'])}/{int(r['n_diverged'])}"


def _name(r) -> str:
    """The label without its [config id] (tables have an id column)."""
    return str(r["label"]).rsplit(" [", 1)[0]


# --------------------------------------------------------------------------- the registry's views

def views(table: str, summary_table: pd.DataFrame) -> list[View]:
    """The registry's columns of ``table``, in registry order, of the statistics shown for
    this study (judged on the whole summary table)."""
    return [v for st in statistics.STATISTICS if st.is_shown(summary_table)
            for v in st.views if v.table == table]


def explained(table: str, summary: Summary) -> str:
    """The explanations of the statistics shown in ``table``, one after the other."""
    t, s = summary.table, summary.settings
    return " ".join(text for st in statistics.STATISTICS
                    if st.is_shown(t) and any(v.table == table for v in st.views)
                    and (text := st.explanation(s)))


def _with_views(fixed: dict, rows: pd.DataFrame, vs: list[View], after: dict | None = None) -> pd.DataFrame:
    records = rows.to_dict("records")
    return pd.DataFrame({**fixed, **{v.header: [v.text(r) for r in records] for v in vs}, **(after or {})},
                        index=rows.index)


# --------------------------------------------------------------------------- tables in points

def config_table(t: pd.DataFrame) -> pd.DataFrame:
    return _with_views({
        "config": t["config_id"], "arm": t["arm"], "params": [_name(r) for _, r in t.iterrows()],
        "n ok/fail/div": [_n(r) for _, r in t.iterrows()],
    }, t, views(PER_CONFIG, t))


def _share_cell(r) -> str:
    if finite(r["step_share"]):
        return f"{100 * r['step_share']:.3g}%"
    if finite(r["reward_share"]):   # a record of 0.3 or earlier: a share of gradient norms
        return f"{100 * r['reward_share']:.3g}% (grad norms)"
    return "–"


def _interval_cell(mean, low, high, digits: int = 4) -> str:
    if not finite(mean):
        return "–"
    if not (finite(low) and finite(high)):
        return f"{mean:+.{digits}f}"
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def treatment_table(t: pd.DataFrame) -> pd.DataFrame:
    """Did the treatment reach the model? One row per reward configuration."""
    t = t[t["arm"].isin(kinds.named("treatment"))]
    records = t.to_dict("records")
    return pd.DataFrame({
        "config": t["config_id"], "params": [_name(r) for _, r in t.iterrows()],
        "reward part of step": [_share_cell(r) for r in records],
        "reward step / weights": t["reward_step"].map(lambda x: f"{x:.2g}" if finite(x) else "–"),
        "weights moved": t["weight_move"].map(lambda x: f"{100 * x:.2g}%" if finite(x) else "–"),
        "reward rise, train batches": [_interval_cell(r["reward_rise"], r["rise_low"], r["rise_high"])
                                       for r in records],
        "rise": t["rise_outcome"].replace("", "–"),
        "held-out rise": [_interval_cell(r["heldout_rise"], r["heldout_low"], r["heldout_high"])
                          + (" vs no-op" if r["heldout_vs"] == "no-op" and finite(r["heldout_rise"]) else "")
                          for r in records],
        **_knob_columns(t),
        "flags": t["treatment"].fillna("").replace("", "–"),
    })


def _knob_columns(t: pd.DataFrame) -> dict[str, list[str]]:
    """The estimator knobs' diagnostics (analysis/treatment.py KNOB_DIAGNOSTICS), a column each
    where some configuration of the study has it ("–" where it has not: the knob is off)."""
    def cells(key: str, fmt) -> list[str] | None:
        if key not in t or not t[key].map(finite).any():
            return None
        return [fmt(v) if finite(v) else "–" for v in t[key]]

    columns = {
        "KL to start (nats/px)": cells("kl_start", lambda v: f"{v:.2g}"),
        "entropy (nats/px)": cells("entropy", lambda v: f"{v:.3g}"),
        "equal-reward groups": cells("constant_group_share", lambda v: f"{100 * v:.2g}%"),
        "clipped (epochs 2+)": cells("clip_fraction", lambda v: f"{100 * v:.2g}%"),
    }
    if "ratio_min" in t and t["ratio_min"].map(finite).any():
        columns["ratio range"] = [f"{lo:.4g}–{hi:.4g}" if finite(lo) and finite(hi) else "–"
                                  for lo, hi in zip(t["ratio_min"], t["ratio_max"])]
    return {name: values for name, values in columns.items() if values is not None}


def _treatment_text(t: pd.DataFrame) -> str:
    from rewardsweep.analysis import treatment as tr

    rew = t[t["arm"].isin(kinds.named("treatment"))]
    level = rew["rise_level"].dropna()
    level_text = f"{level.iloc[0]:.4g}" if len(level) else f"{1 - tr.RISE_ALPHA:g}"
    return ("From each reward trial's probes (docs/method.md, 'Is my reward arm reward tuning?'). Reward part "
            "of step: the reward term's share of the step the optimizer takes (reward, other loss terms and the "
            "weight-decay pull, each after the learning rate, momentum or Adam's scaling). Reward step / weights: "
            "the size of that step relative to the weights' norm, per step. Weights moved: how far the weights "
            "ended from the start (all forces), relative to their norm. Reward rise: the sampled policy's reward "
            "(per-image mIoU) minus the start policy's on the same training batches with the same random "
            "numbers, second half of the trial, mean over seeds with its interval at level "
            f"{level_text} (Bonferroni over the {len(rew)} reward configurations: all intervals hold together at "
            f"{1 - tr.RISE_ALPHA:g}). Rise: 'rose' (interval above 0), 'did not rise' (interval below "
            f"{tr.MIN_RISE:g}, the minimum meaningful rise), else 'too few seeds to tell'. Held-out rise: the "
            "same gain on the val images after the last step, in eval mode, minus the no-op reference's on "
            "the same seed where the study has one. Where the study uses an estimator knob, its diagnostics (means "
            "over the last 10% of steps): the exact KL to the start model and the policy's entropy (nats per "
            "pixel), the share of images whose k rewards were all equal (zero advantage), the clipped "
            "surrogate's share of clipped pixel terms and its ratio range (epochs 2 and later). The reward "
            "part of the step counts the policy term only (a KL or entropy term is another force). "
            "A configuration is flagged when its reward term is under "
            f"{100 * tr.STEP_SHARE_MIN:g}% of the step, its step is below float32 resolution, its reward did "
            "not rise, or a trial collapsed (3+ points below start); its verdict then carries the flag.")


def best_control_table(t: pd.DataFrame) -> pd.DataFrame:
    t = t[t["arm"].isin(kinds.named("treatment")) & (t["best_control_id"].fillna("") != "")]
    return _first(pd.DataFrame({
        "config": t["config_id"], "params": [_name(r) for _, r in t.iterrows()],
        "best CE": t["best_control_id"], "chosen on": t["best_chosen"],
        "mean diff": t["best_diff_mean"].map(pts),
        "95% CI": [ci(a, b) for a, b in zip(t["best_ci_low"], t["best_ci_high"])],
        "adjusted p": t["best_p_adj"].map(pval), "verdict": t["best_verdict"],
    }), ("config", "params", "verdict", "adjusted p"))


def control_table(t: pd.DataFrame) -> pd.DataFrame:
    vs = views(VS_CONTROL, t)
    t = t[t["arm"].isin(kinds.named("treatment"))]
    return _first(_with_views({
        "config": t["config_id"], "params": [_name(r) for _, r in t.iterrows()],
        "control": t["control_id"].fillna("–"),
        "pairs": t["n_paired"].map(count),
    }, t, vs), ("config", "params", "verdict", "adjusted p"))


def _first(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """``df`` with ``columns`` (those it has) in front: what a narrow window shows unscrolled."""
    head = [c for c in columns if c in df.columns]
    return df[head + [c for c in df.columns if c not in head]]


def image_table(t: pd.DataFrame) -> pd.DataFrame:
    t = t[t["arm"].isin(kinds.named("treatment"))]
    return pd.DataFrame({
        "config": t["config_id"], "params": [_name(r) for _, r in t.iterrows()],
        "pairs": t["img_pairs"].map(count), "val images": t["img_n"].map(count),
        "mean diff": t["diff_mean"].map(pts),
        "95% CI, seeds only": [ci(a, b) for a, b in zip(t["diff_ci_low"], t["diff_ci_high"])],
        "95% CI, seeds x images": [ci(a, b) for a, b in zip(t["img_low"], t["img_high"])],
        "adjusted, seeds x images": [ci(a, b) for a, b in zip(t["img_adj_low"], t["img_adj_high"])],
        "SD seeds / images": [f"{pts(a, False)} / {pts(b, False)}" if finite(a) else "–"
                              for a, b in zip(t["img_seed_sd"], t["img_image_sd"])],
        "verdict": t["verdict"], "survives": t["img_survives"].replace("", "–"),
    })


def seeds_table(t: pd.DataFrame) -> pd.DataFrame:
    return _with_views({
        "config": t["config_id"], "arm": t["arm"], "params": [_name(r) for _, r in t.iterrows()],
        "seeds used": t["seeds_used"].map(count),
    }, t, views(SEEDS, t), after={
        "based on SD of": t["seeds_basis"],
        "failed seeds": t["failed_seeds"].replace("", "–"),
        "diverged seeds": t["diverged_seeds"].replace("", "–"),
        "missing seeds": t["missing_seeds"].replace("", "–"),
        "flags": t["flags"].replace("", "–"),
    })


def class_table(summary: Summary) -> pd.DataFrame:
    d = summary.iou_delta
    names = {(c, a): _name(r) for (c, a), (_, r) in zip(zip(summary.table["config_id"], summary.table["arm"]),
                                                         summary.table.iterrows())}
    out = pd.DataFrame({"config": [c for c, _ in d.index], "arm": [a for _, a in d.index],
                        "params": [names.get(k, "") for k in d.index]})
    for col in d.columns:
        out[str(col)] = d[col].map(lambda x: pts(x, digits=1)).to_numpy()
    return out


# --------------------------------------------------------------------------- blocks

@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    df: pd.DataFrame


@dataclass(frozen=True)
class Image:
    title: str
    path: Path


Block = Heading | Para | Bullets | Table | Image


def _headline(summary: Summary) -> list[str]:
    """The summary users read first: against the best cross-entropy of the budget (where the
    study has a control_grid), then against the same-lr control (saying when that control is
    no different from not training), then the treatment flags and the bookkeeping."""
    t, s = summary.table, summary.settings
    rew = t[t["arm"].isin(kinds.named("treatment"))]
    corr = CORRECTION_NAMES.get(s.correction, s.correction)
    lines = []
    best = rew[rew["best_control_id"].fillna("") != ""]
    if len(best):
        beat = best[best["best_verdict"] == "beats best CE"]
        worse = best[best["best_verdict"] == "worse than best CE"]
        lines.append(
            f"Against the best cross-entropy of the same budget: {len(beat)} of {len(best)} configurations beat "
            f"it, {len(worse)} are worse (paired by seed, {corr}-adjusted across {len(best)}; the best "
            "cross-entropy arm is chosen for each seed by its mean over the other seeds, so the choice never "
            "sees the seed it is compared on and favours neither arm): " + "; ".join(
                f"{r.label} {pts(r.best_diff_mean)} [{pts(r.best_ci_low)}, {pts(r.best_ci_high)}] "
                f"points vs {r.best_control_id} (chosen on {r.best_chosen}; {r.best_verdict})"
                for r in best.head(10).itertuples()))
    if summary.has_control:
        compared = rew[rew["n_paired"].notna()]
        beats = compared[compared["verdict"] == "beats control"]
        worse = compared[compared["verdict"] == "worse"]
        lines.append(
            f"Against the control at each configuration's own learning rate: {len(beats)} of {len(compared)} "
            f"beat it ({len(worse)} worse) at alpha {s.alpha:g} after {corr} adjustment across all "
            f"{len(compared)} comparisons (paired t-test on seeds finished in both arms).")
        if len(beats):
            more = f" and {len(beats) - 10} more" if len(beats) > 10 else ""
            lines.append("Beats control: " + "; ".join(
                f"{r.label} ({pts(r.diff_mean)} points)" for r in beats.head(10).itertuples()) + more)
        like_noop = compared[compared["control_like_noop"].fillna(False).astype(bool)]
        if len(like_noop):
            ctrl = t[t["arm"].isin(kinds.named("control")) & t["config_id"].isin(like_noop["control_id"])]
            beaters = like_noop[like_noop["verdict"] == "beats control"]
            lines.append(
                "The control is not distinguishable from the no-op reference (control minus no-op, paired: "
                + "; ".join(f"{r.config_id} {pts(r.ref_diff_mean)} [{pts(r.ref_ci_low)}, {pts(r.ref_ci_high)}]"
                            for r in ctrl.itertuples())
                + " points): at that learning rate cross-entropy did not measurably train, so "
                + (f"'beats control' for {', '.join(beaters['config_id'])} means 'beats not training', not "
                   "'beats cross-entropy'" if len(beaters) else
                   f"the control comparison of {', '.join(like_noop['config_id'])} is against not training")
                + ("; the comparison with the best cross-entropy above is the one that says whether reward "
                   "tuning is worth it." if len(best) else
                   "; add a control_grid of learning rates to compare with a cross-entropy that trains."))
    flagged = rew[rew["treatment"].fillna("") != ""]
    if len(flagged):
        lines.append(f"{len(flagged)} configuration(s) are not reward tuning (their verdict says so; "
                     "docs/method.md, 'Is my reward arm reward tuning?'): " + "; ".join(
                         f"{r.label}: {r.treatment}" for r in flagged.head(10).itertuples()))
    open_rise = rew[(rew["rise_outcome"] == "too few seeds to tell") & (rew["treatment"].fillna("") == "")]
    if len(open_rise):
        lines.append(f"{len(open_rise)} configuration(s) have too few seeds to tell whether their reward rose "
                     "(the interval contains 0 and reaches the minimum meaningful rise): " + "; ".join(
                         f"{r.label}: {r.reward_rise:+.4f} [{r.rise_low:+.4f}, {r.rise_high:+.4f}]"
                         for r in open_rise.head(10).itertuples()))
    under = t[t["underpowered"]]
    if len(under):
        lines.append(
            f"{len(under)} configuration(s) have fewer seeds than needed to detect "
            f"{s.effect * 100:g} mIoU points at alpha {s.alpha:g} and power {s.power:g}: a "
            "'no evidence' verdict there is not evidence of no effect.")
    lost = t[t["lost_seeds"]]
    if len(lost):
        ids = list(lost["label"])
        more = f" and {len(ids) - 10} more (see the seeds table)" if len(ids) > 10 else ""
        lines.append(f"{len(lost)} configuration(s) lost seeds (failed, diverged or missing): "
                     + "; ".join(ids[:10]) + more + ". Lost seeds are left out of every mean, "
                     "interval and test, and counted and flagged per configuration.")
    return lines


def blocks(summary: Summary, coll: Collection, plots: dict[str, Path], study: str) -> list[Block]:
    """The report as a list of blocks: the markdown and the HTML are both written from it."""
    t, s = summary.table, summary.settings
    trials = coll.trials
    fin = coll.finished
    first = fin.iloc[0] if len(fin) else trials.iloc[0]
    status = trials["status"].value_counts()
    roles = t["arm"].map(kinds.role).value_counts()
    out: list[Block] = [Heading(1, f"rewardsweep report: {study}")]
    out.append(Bullets([
        "sources: " + ", ".join(coll.sources),
        f"start checkpoint: {first['checkpoint_hash'] or first['checkpoint']} on dataset {first['dataset']}; "
        f"val mIoU at start {pts(first['miou_start'], False)} points",
        f"trials: {len(trials)} ({int(status.get('finished', 0))} finished, "
        f"{int(status.get('failed', 0))} failed, {int(status.get('diverged', 0))} diverged)"
        + (f"; {coll.n_duplicates} duplicate record(s) superseded by a newer one" if coll.n_duplicates else ""),
        f"configurations: {int(roles.get('treatment', 0))} reward, {int(roles.get('control', 0))} control"
        + (f", {int(roles['reference'])} no-op reference" if roles.get("reference", 0) else ""),
        "estimators: " + ", ".join(sorted(str(e) for e in trials["estimator"].dropna().unique())),
        "fixed parameters: " + (", ".join(f"{_param_name(k)}={_param_value(v)}"
                                          for k, v in summary.constant.items()) or "–"),
        f"settings: {s.confidence:.0%} intervals, alpha {s.alpha:g}, power {s.power:g}, "
        f"effect {s.effect * 100:g} mIoU points, {CORRECTION_NAMES.get(s.correction, s.correction)} adjustment",
    ]))
    out.append(Heading(2, "Summary"))
    for line in _headline(summary) + summary.notes:
        out.append(Para(line))
    if summary.sequential is not None:
        from rewardsweep.analysis.sequential_view import decisions_table

        out.append(Heading(2, "Sequential decisions"))
        out.append(Para(summary.sequential.guarantee + " Recomputed here from the records; 'launch acted "
                        "on' is what launch decided (sequential.json)."))
        out.append(Table(decisions_table(summary.sequential)))
    if coll.warnings:
        out.append(Heading(2, "Warnings"))
        out.append(Bullets(coll.warnings))
    if t["arm"].isin(kinds.named("treatment")).any():
        out.append(Heading(2, "Did the treatment reach the model?"))
        out.append(Para(_treatment_text(t)))
        out.append(Table(treatment_table(t)))
    out.append(Heading(2, "Delta mIoU per configuration (points)"))
    out.append(Para(" ".join(filter(None, [
        "Delta = final val mIoU minus the start checkpoint's, over finished seeds. "
        "n ok/fail/div: finished / failed / diverged seeds.", explained(PER_CONFIG, summary)]))))
    out.append(Table(config_table(t)))
    if summary.has_control:
        out.append(Heading(2, "Against the control, paired by seed (points)"))
        out.append(Para(explained(VS_CONTROL, summary)))
        out.append(Table(control_table(t)))
        if (t["best_control_id"].fillna("") != "").any():
            out.append(Heading(2, "Against the best cross-entropy of the same budget (points)"))
            out.append(Para("The control above runs at the reward arm's own learning rate: a fair budget "
                             "match, not a tuned cross-entropy. Here each configuration meets the best of the "
                             "cross-entropy arms of its budget (its control and the control_grid ones), paired "
                             "by seed. 'Best' is chosen for each seed separately: the arm with the highest mean "
                             "delta on the validation split over the other seeds (cross-fitted), so the choice "
                             "never sees the seed it is compared on and its winner's curse favours neither arm. "
                             "'best CE' names the arm chosen on most seeds ('chosen on')."))
            out.append(Table(best_control_table(t)))
    else:
        out.append(Para("No control arm: no comparison with cross-entropy training is possible."))
    if "img_survives" in t:
        out.append(Heading(2, "Validation-set uncertainty: seeds x val images (points)"))
        from rewardsweep.analysis.val_bootstrap import METHOD

        out.append(Para(METHOD))
        out.append(Table(image_table(t)))
    out.append(Heading(2, "Seeds and failures"))
    out.append(Para(" ".join(filter(None, [explained(SEEDS, summary), TREATMENT]))))
    out.append(Table(seeds_table(t)))
    if coll.class_names:
        out.append(Heading(2, "Per-class IoU change (points, mean over finished seeds)"))
        out.append(Table(class_table(summary)))
    kept = best_checkpoints(summary, coll)
    if kept is not None:
        out.append(Heading(2, "Checkpoints of the best configuration"))
        out.append(Para(f"{kept.label}: each seed's final weights and the MMEngine config that rebuilds the "
                        f"model (checkpoints: final), in {kept.folder}; sha256 shortened to 16 hex digits (the "
                        f"record has all 64). MMSeg's own tool evaluates one to its final mIoU: "
                        f"`{test_command(kept.table['config'].iat[0], kept.table['weights'].iat[0])}` "
                        f"(in that folder). Every other trial's are in trials.csv (final_checkpoint)."))
        out.append(Table(kept.table))
    if plots:
        out.append(Heading(2, "Plots"))
        for title, path in plots.items():
            out.append(Image(title, path))
    if summary.next_steps:
        out.append(Heading(2, "Next steps"))
        out.append(Bullets(summary.next_steps))
    out.append(Para("How to read this report: docs/report.md."))
    return out


def _md_cell(x) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def md_table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(_md_cell(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def to_markdown(bl: list[Block]) -> str:
    parts = []
    for b in bl:
        match b:
            case Heading(level, text):
                parts.append("#" * level + " " + text)
            case Para(text):
                parts.append(link_docs(text, _md_link))
            case Bullets(items):
                parts.append("\n".join(f"- {link_docs(str(x), _md_link)}" for x in items))
            case Table(df):
                parts.append(md_table(df))
            case Image(title, path):
                parts.append(f"![{title}]({Path(path).name})" + "".join(
                    f" [{v.suffix[1:].upper()}]({v.name})" for v in _vectors(path)))
    return "\n\n".join(parts) + "\n"


# Responsive: the page wraps at any width; a table wider than the page scrolls inside its
# own box, its first column (the config id) staying in view; numbers never wrap, headers
# and the params column wrap between words; narrow windows get tighter cells.
_CSS = ("body{font-family:system-ui,sans-serif;margin:1em auto;padding:0 1em;max-width:1400px;"
        "line-height:1.4}p,li{max-width:60em}"
        ".scroll{overflow-x:auto;margin:1em 0;max-width:100%}"
        "table{border-collapse:separate;border-spacing:0;font-size:12px}"
        "th,td{border:solid #ccc;border-width:0 1px 1px 0;padding:2px 6px;text-align:right;white-space:nowrap}"
        "tr>:first-child{border-left-width:1px;position:sticky;left:0;background:#fff}"
        "thead th{border-top-width:1px;white-space:normal;vertical-align:bottom;background:#f0f0f0}"
        ".text{text-align:left}td.text{white-space:normal;min-width:5em}"
        "th.params{text-align:left}td.params{text-align:left;white-space:normal;min-width:12em;max-width:28em}"
        "figure{margin:1em 0}img{max-width:100%;height:auto}figcaption{font-size:90%}"
        "code{background:#f4f4f4;padding:0 .2em;overflow-wrap:anywhere}"
        "@media (max-width:900px){body{padding:0 .5em}table{font-size:11px}th,td{padding:1px 4px}"
        "td.params{min-width:8em}}")
_TEXT_COLUMNS = {"config", "arm", "control", "verdict", "based on SD of", "flags", "survives",
                 "failed seeds", "diverged seeds", "missing seeds", "best CE", "weights", "sha256",
                 "chosen on", "rise"}   # + the registry's left-aligned views


def _header(text: str) -> str:
    """A header that wraps between its words, but not inside ``t-test`` or ``|E g|``."""
    import re

    text = re.sub(r"\|[^|]*\|", lambda m: m.group(0).replace(" ", "\u00a0"), text).replace("-", "\u2011")
    return html.escape(text)


def _vectors(path) -> list[Path]:
    """The vector copies saved beside a figure's PNG (``plots.save``)."""
    return [p for p in (Path(path).with_suffix(".svg"), Path(path).with_suffix(".pdf")) if p.is_file()]


def _css_width(png: bytes) -> int | None:
    """A PNG's width in CSS pixels at 100 dpi, from its pHYs chunk (matplotlib writes the
    dpi there): a 200-dpi figure shows at its 100-dpi size and stays sharp when zoomed."""
    import struct

    if png[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    width = struct.unpack(">I", png[16:20])[0]
    pos = 8
    while pos + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"pHYs" and length == 9:
            ppu, _, unit = struct.unpack(">IIB", png[pos + 8:pos + 17])
            dpi = ppu * 0.0254 if unit == 1 else 0
            return round(width * 100 / dpi) if dpi > 0 else None
        if kind == b"IDAT":
            return None
        pos += 12 + length
    return None


def html_table(df: pd.DataFrame) -> str:
    """A table in its own scrolling box; text columns left-aligned, params wrapping."""
    text = _TEXT_COLUMNS | {v.header for st in statistics.STATISTICS for v in st.views if v.align == "left"}
    cls = ["params" if c == "params" else "text" if c in text else "" for c in df.columns]
    head = "".join((f"<th class='{k}'>" if k else "<th>") + _header(str(c)) + "</th>"
                   for k, c in zip(cls, df.columns))
    body = []
    for row in df.itertuples(index=False):
        cells = "".join((f"<td class='{k}'>" if k else "<td>") + html.escape(str(v)) + "</td>"
                        for k, v in zip(cls, row))
        body.append(f"<tr>{cells}</tr>")
    return (f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>"
            + "".join(body) + "</tbody></table></div>")


def _inline(text: str) -> str:
    """Escape, show `backticked` commands as code, and link the docs/<name>.md it cites."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else link_docs(p, _html_link) for i, p in enumerate(parts))


def _html_link(shown: str, url: str) -> str:
    return f"<a href='{html.escape(url)}'>{shown}</a>"


def _md_link(shown: str, url: str) -> str:
    return f"[{shown}]({url})"


def to_html(bl: list[Block], title: str) -> str:
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
             "<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"]
    for b in bl:
        match b:
            case Heading(level, text):
                parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
            case Para(text):
                parts.append(f"<p>{_inline(text)}</p>")
            case Bullets(items):
                parts.append("<ul>" + "".join(f"<li>{_inline(str(x))}</li>" for x in items) + "</ul>")
            case Table(df):
                parts.append(html_table(df))
            case Image(title, path):
                raw = Path(path).read_bytes()
                width = _css_width(raw)
                data = base64.b64encode(raw).decode("ascii")
                vectors = ", ".join(f"<a href='{html.escape(v.name)}'>{v.suffix[1:].upper()}</a>" for v in _vectors(path))
                parts.append(f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'"
                             + (f" width='{width}'" if width else "") + ">"
                             f"<figcaption>{html.escape(title)}" + (f" (vector: {vectors})" if vectors else "")
                             + "</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- CSVs

def trials_csv(coll: Collection) -> pd.DataFrame:
    t = coll.trials.copy()
    if coll.class_names:
        delta = coll.iou_delta
        delta.columns = [f"iou_delta:{c}" for c in delta.columns]
        t = pd.concat([t, delta.set_index(t.index)], axis=1)
    return t


def write_files(summary: Summary, coll: Collection, plots: dict[str, Path], folder: Path,
                study: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"summary.csv": folder / "summary.csv", "trials.csv": folder / "trials.csv",
             "report.md": folder / "report.md", "report.html": folder / "report.html"}
    table = summary.table
    if summary.iou_delta.shape[1]:
        per_class = summary.iou_delta.copy()
        per_class.columns = [f"iou_delta:{c}" for c in per_class.columns]
        table = pd.concat([table, per_class.reset_index(drop=True)], axis=1)
    table.to_csv(paths["summary.csv"], index=False)
    if summary.sequential is not None:
        paths["sequential.csv"] = folder / "sequential.csv"
        summary.sequential.looks.to_csv(paths["sequential.csv"], index=False)
    trials_csv(coll).to_csv(paths["trials.csv"], index=False)
    bl = blocks(summary, coll, plots, study)
    paths["report.md"].write_text(to_markdown(bl))
    paths["report.html"].write_text(to_html(bl, f"rewardsweep report: {study}"))
    return paths


# --------------------------------------------------------------------------- console

def console_table(summary: Summary, max_rows: int = CONSOLE_ROWS, width: int = 100):
    """A rich Table ``width`` characters wide (the best ``max_rows`` rows; controls first),
    and the labels to print under it when the console is too narrow to hold them.

    Wide enough: the label (parameters, then [config id]) takes the width the numbers leave
    and is wrapped onto more lines (:func:`summary.wrap_label`), never cut. Narrower: the
    full 8-character config id stands for the label (the labels follow the table, keyed by
    id) and every column stays; where they do not fit on one line, cells wrap at their
    natural breaks (``+0.69`` / ``±0.14``, between words) and headers between words.
    """
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    t = summary.table
    cols = views(CONSOLE, t)
    heads = ["ok/fl/dv"] + [v.header for v in cols]
    left = {v.header for v in cols if v.align == "left"}
    rows = []
    for r in t.head(max_rows).to_dict("records"):
        cells = [(_n(r), "")] + [(v.text(r), v.style(r) if v.style else "") for v in cols]
        rows.append((str(r["label"]), cells))
    widths = [max([len(h)] + [len(c[i][0]) for _, c in rows]) for i, h in enumerate(heads)]
    label_width = width - sum(widths) - 2 * len(heads)
    narrow = label_width < 16        # too narrow for labels: config ids here, labels below
    ids = t["config_id"].head(max_rows).tolist()
    if narrow:
        id_width = max([6] + [len(c) for c in ids])
        widths = _fit_columns(heads, [c for _, c in rows], width - id_width - 2 * len(heads))
    table = RichTable(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True,
                      show_edge=False, header_style="bold")
    table.add_column("config" if narrow else "configuration", overflow="fold", no_wrap=narrow,
                     min_width=id_width if narrow else None, max_width=None if narrow else label_width)
    for h, w in zip(heads, widths):
        table.add_column(_wrapped(h, w, header=True), justify="left" if h in left else "right", no_wrap=True, min_width=w,
                         max_width=w if narrow else None, overflow="fold")
    for cid, (label, cells) in zip(ids, rows):
        first = cid if narrow else "\n".join(wrap_label(label, label_width))
        table.add_row(Text(first), *[Text(_wrapped(text, w) if narrow else text, style=style)
                                     for (text, style), w in zip(cells, widths)])
    return table, ([label for label, _ in rows] if narrow else [])


def _pieces(text: str, header: bool = False) -> list[str]:
    """Where a console cell may break: between words, and in a number before its ``±``."""
    if header:
        return text.split(" ")
    return [p for word in text.split(" ") for p in word.replace("±", "\0±").split("\0") if p]


def _wrapped(text: str, width: int, header: bool = False) -> str:
    """``text`` in lines of at most ``width`` characters, broken only at :func:`_pieces`."""
    lines: list[str] = []
    for piece in _pieces(text, header):
        glue = "" if piece.startswith("±") and not header else " "
        if lines and len(lines[-1]) + len(glue) + len(piece) <= width:
            lines[-1] += glue + piece
        else:
            lines.append(piece)
    return "\n".join(lines) or text


def _fit_columns(heads: list[str], rows: list[list[tuple[str, str]]], room: int) -> list[int]:
    """Column widths that fit ``room`` characters with rows as few lines tall as can be:
    each column starts at its longest unbreakable piece; the tallest cells are widened
    first, level by level, while they can all get a line shorter; what is left then makes
    whole the columns cheapest to make whole (a ``+0.39±0.19`` before a long verdict)."""
    cells = [[r[i][0] for r in rows] for i in range(len(heads))]
    widths = [max([len(p) for p in _pieces(h, header=True)] + [len(p) for x in col for p in _pieces(x) or [x]])
              for h, col in zip(heads, cells)]
    full = [max([w] + [len(x) for x in col]) for w, col in zip(widths, cells)]   # headers may wrap

    def height(i: int, width: int) -> int:
        return max([_wrapped(x, width).count("\n") + 1 for x in cells[i]] or [1])

    spare = room - sum(widths)
    while spare > 0:
        heights = [height(i, w) for i, w in enumerate(widths)]
        tallest = max(heights)
        if tallest == 1:
            break
        wider = {i: next(w for w in range(widths[i] + 1, full[i] + 1) if height(i, w) < tallest)
                 for i, h in enumerate(heights) if h == tallest}
        cost = sum(w - widths[i] for i, w in wider.items())
        if cost > spare:
            break
        for i, w in wider.items():
            widths[i] = w
        spare -= cost
    for i in sorted(range(len(heads)), key=lambda i: full[i] - widths[i]):
        if 0 < full[i] - widths[i] <= spare:
            spare -= full[i] - widths[i]
            widths[i] = full[i]
    return widths


def print_console(summary: Summary, coll: Collection, files: dict[str, Path], console=None) -> None:
    from rich.console import Console

    if console is None:
        import os
        import sys

        # A pipe or a file gets 100 columns (rich would default to 80); a terminal its own width.
        width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 100
        console = Console(width=width)
    t = summary.table
    console.print(f"[bold]{len(coll.trials)} trials, {len(t)} configurations[/] · mIoU in points · "
                  "±: 95% CI half-width · seeds: used/needed (! too few)")
    table, below = console_table(summary, width=console.width)
    console.print(table)
    for label in below:              # keyed by the id that stands for it in the table
        name, _, cid = label.rpartition(" [")
        lines = wrap_label(name, max(console.width - len(cid) - 1, 16))
        console.print(f"{cid[:-1]} {lines[0]}", highlight=False, markup=False)
        for line in lines[1:]:
            console.print(" " * len(cid) + line, highlight=False, markup=False)
    if len(t) > CONSOLE_ROWS:
        console.print(f"… {len(t) - CONSOLE_ROWS} more configurations in report.md / summary.csv")
    for line in _headline(summary) + summary.notes:
        console.print(line, highlight=False, markup=False)
    if summary.sequential is not None:
        console.print("[bold]Sequential decisions[/] (recomputed from the records)")
        for r in summary.sequential.decisions.itertuples():
            at = "" if pd.isna(r.decided_at) else f" at {int(r.decided_at)} seeds"
            console.print(f"- {_name({'label': r.label})}: {r.decision}{at}"
                          + ("" if r.launch_decision in (None, r.decision) else
                             f" (launch acted on: {r.launch_decision})"), highlight=False, markup=False)
    kept = best_checkpoints(summary, coll)
    if kept is not None:
        console.print(f"checkpoints of the best configuration ({kept.label}), with the .py beside each that "
                      "rebuilds the model:", highlight=False, markup=False)
        for path in kept.paths():
            console.print("  " + path, highlight=False, markup=False, soft_wrap=True)
    if summary.next_steps:
        console.print("[bold]Next steps[/]")
        for line in summary.next_steps:
            console.print("- " + line, highlight=False, markup=False)
    if "report.md" in files:
        console.print(f"report: {files['report.md'].parent}", highlight=False, soft_wrap=True)
        console.print(f"how to read it:\n{doc_url('report.md')}", highlight=False, soft_wrap=True)


def _param_name(column: str) -> str:
    """A parameter as the spec names it (collect prefixes the few that collide with columns)."""
    from rewardsweep.analysis.collect import PARAM_PREFIX

    return column.removeprefix(PARAM_PREFIX)


def _param_value(value) -> str:
    """Whole numbers read as written (a pandas float column turns 2 into 2.0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
