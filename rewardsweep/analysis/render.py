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
from rewardsweep.analysis.collect import Collection
from rewardsweep.analysis.formats import ci, count, finite, pts, pval
from rewardsweep.analysis.statistics import CONSOLE, PER_CONFIG, SEEDS, VS_CONTROL, View
from rewardsweep.analysis.summary import TREATMENT, Summary, wrap_label

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


def treatment_table(t: pd.DataFrame) -> pd.DataFrame:
    """Did the treatment reach the model? One row per reward configuration."""
    t = t[t["arm"] == "reward"]
    return pd.DataFrame({
        "config": t["config_id"], "params": [_name(r) for _, r in t.iterrows()],
        "reward share": t["reward_share"].map(lambda x: f"{100 * x:.3g}%" if finite(x) else "–"),
        "reward rise ± SE": [f"{m:+.4f} ± {e:.4f}" if finite(m) and finite(e) else "–"
                             for m, e in zip(t["reward_rise"], t["reward_rise_se"])],
        "signal |E g|": t["signal_norm"].map(lambda x: f"{x:.2g}" if finite(x) else "–"),
        "flags": t["treatment"].fillna("").replace("", "–"),
    })


def best_control_table(t: pd.DataFrame) -> pd.DataFrame:
    t = t[(t["arm"] == "reward") & (t["best_control_id"].fillna("") != "")]
    return pd.DataFrame({
        "config": t["config_id"], "params": [_name(r) for _, r in t.iterrows()],
        "best CE": t["best_control_id"],
        "mean diff": t["best_diff_mean"].map(pts),
        "95% CI": [ci(a, b) for a, b in zip(t["best_ci_low"], t["best_ci_high"])],
        "adjusted p": t["best_p_adj"].map(pval), "verdict": t["best_verdict"],
    })


def control_table(t: pd.DataFrame) -> pd.DataFrame:
    vs = views(VS_CONTROL, t)
    t = t[t["arm"] == "reward"]
    return _with_views({
        "config": t["config_id"], "params": [_name(r) for _, r in t.iterrows()],
        "control": t["control_id"].fillna("–"),
        "pairs": t["n_paired"].map(count),
    }, t, vs)


def image_table(t: pd.DataFrame) -> pd.DataFrame:
    t = t[t["arm"] == "reward"]
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
    t, s = summary.table, summary.settings
    rew = t[t["arm"] == "reward"]
    lines = []
    if summary.has_control:
        compared = rew[rew["n_paired"].notna()]
        beats = compared[compared["verdict"] == "beats control"]
        worse = compared[compared["verdict"] == "worse"]
        corr = CORRECTION_NAMES.get(s.correction, s.correction)
        lines.append(
            f"{len(beats)} of {len(compared)} configurations compared with the control beat it "
            f"({len(worse)} worse) at alpha {s.alpha:g} after {corr} adjustment across all "
            f"{len(compared)} comparisons (paired t-test on seeds finished in both arms).")
        if len(beats):
            more = f" and {len(beats) - 10} more" if len(beats) > 10 else ""
            lines.append("Beats control: " + "; ".join(
                f"{r.label} ({pts(r.diff_mean)} points)" for r in beats.head(10).itertuples()) + more)
    flagged = rew[rew["treatment"].fillna("") != ""]
    if len(flagged):
        lines.append(f"{len(flagged)} configuration(s) are not reward tuning (their verdict says so; "
                     "docs/method.md, 'Is my reward arm reward tuning?'): " + "; ".join(
                         f"{r.label}: {r.treatment}" for r in flagged.head(10).itertuples()))
    best = rew[rew["best_control_id"].fillna("") != ""]
    if len(best):
        beat = best[best["best_verdict"] == "beats best CE"]
        lines.append(f"Against the best cross-entropy of the same budget (selected on the validation split, "
                     f"which favours it): {len(beat)} of {len(best)} configurations beat it, "
                     f"{int((best['best_verdict'] == 'worse than best CE').sum())} are worse. "
                     "'Beats control' above is against the control at the reward arm's own lr.")
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
    out: list[Block] = [Heading(1, f"rewardsweep report: {study}")]
    out.append(Bullets([
        "sources: " + ", ".join(coll.sources),
        f"start checkpoint: {first['checkpoint_hash'] or first['checkpoint']} on dataset {first['dataset']}; "
        f"val mIoU at start {pts(first['miou_start'], False)} points",
        f"trials: {len(trials)} ({int(status.get('finished', 0))} finished, "
        f"{int(status.get('failed', 0))} failed, {int(status.get('diverged', 0))} diverged)"
        + (f"; {coll.n_duplicates} duplicate record(s) superseded by a newer one" if coll.n_duplicates else ""),
        f"configurations: {int((t['arm'] == 'reward').sum())} reward, {int((t['arm'] == 'mle').sum())} control"
        + (f", {int((t['arm'] == 'noop').sum())} no-op reference" if (t["arm"] == "noop").any() else ""),
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
    if (t["arm"] == "reward").any():
        out.append(Heading(2, "Did the treatment reach the model?"))
        out.append(Para("From each reward trial's probes (docs/method.md): reward share = the reward term's "
                         "part of the update's gradient norm (reward + other losses + weight decay); reward "
                         "rise = the sampled reward's gain over the start policy on the same batches (common "
                         "random numbers), second half of the trial, mean ± SE over seeds; signal = the expected "
                         "policy gradient's norm. A configuration is flagged when its reward term is under 10% "
                         "of the update, its reward did not rise (one-sided t-test across seeds, 5%), or a "
                         "trial collapsed (3+ points below start); its verdict then carries the flag."))
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
                             "by seed. 'Best' is the highest mean delta on the validation split, the same split "
                             "these deltas are measured on: the selection favours the control."))
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
    if plots:
        out.append(Heading(2, "Plots"))
        for title, path in plots.items():
            out.append(Image(title, path))
    if summary.next_steps:
        out.append(Heading(2, "Next steps"))
        out.append(Bullets(summary.next_steps))
    out.append(Para("How to read this report: docs/report.md in the rewardsweep repository."))
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
                parts.append(text)
            case Bullets(items):
                parts.append("\n".join(f"- {x}" for x in items))
            case Table(df):
                parts.append(md_table(df))
            case Image(title, path):
                parts.append(f"![{title}]({Path(path).name})")
    return "\n\n".join(parts) + "\n"


# Responsive: the page wraps at any width; a table wider than the page scrolls inside its
# own box (the numbers never wrap); the params column wraps at spaces.
_CSS = ("body{font-family:system-ui,sans-serif;margin:1em auto;padding:0 1em;max-width:1400px;"
        "line-height:1.4}p,li{max-width:60em}"
        ".scroll{overflow-x:auto;margin:1em 0;max-width:100%}"
        "table{border-collapse:collapse;font-size:12px}"
        "th,td{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}"
        "th{background:#f0f0f0}.text{text-align:left}"
        "th.params{text-align:left}td.params{text-align:left;white-space:normal;min-width:14em;max-width:28em}"
        "figure{margin:1em 0}img{max-width:100%;height:auto}"
        "code{background:#f4f4f4;padding:0 .2em;overflow-wrap:anywhere}")
_TEXT_COLUMNS = {"config", "arm", "control", "verdict", "based on SD of", "flags", "survives",
                 "failed seeds", "diverged seeds", "missing seeds", "best CE"}   # + the registry's left-aligned views


def html_table(df: pd.DataFrame) -> str:
    """A table in its own scrolling box; text columns left-aligned, params wrapping."""
    text = _TEXT_COLUMNS | {v.header for st in statistics.STATISTICS for v in st.views if v.align == "left"}
    cls = ["params" if c == "params" else "text" if c in text else "" for c in df.columns]
    head = "".join((f"<th class='{k}'>" if k else "<th>") + html.escape(str(c)) + "</th>"
                   for k, c in zip(cls, df.columns))
    body = []
    for row in df.itertuples(index=False):
        cells = "".join((f"<td class='{k}'>" if k else "<td>") + html.escape(str(v)) + "</td>"
                        for k, v in zip(cls, row))
        body.append(f"<tr>{cells}</tr>")
    return (f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>"
            + "".join(body) + "</tbody></table></div>")


def _inline(text: str) -> str:
    """Escape, and show `backticked` commands as code."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


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
                data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
                parts.append(f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
                             f"<figcaption>{html.escape(title)}</figcaption></figure>")
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

    The numbers never wrap; the label (parameters, then [config id]) takes the width they
    leave and is wrapped onto more lines (:func:`summary.wrap_label`), never cut.
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
        cells = [Text(_n(r))] + [Text(v.text(r), style=v.style(r) if v.style else "") for v in cols]
        rows.append((str(r["label"]), cells))
    widths = [max([len(h)] + [len(c[i]) for _, c in rows]) for i, h in enumerate(heads)]
    label_width = width - sum(widths) - 2 * len(heads)
    narrow = label_width < 16        # too narrow for labels: config ids here, labels below
    if narrow:                       # and the columns a reader misses least go
        keep = [0] + [i + 1 for i, v in enumerate(cols) if v.narrow]
        heads, widths = [heads[i] for i in keep], [widths[i] for i in keep]
        rows = [(label, [c[i] for i in keep]) for label, c in rows]
    table = RichTable(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True,
                       show_edge=False, header_style="bold")
    table.add_column("config" if narrow else "configuration", overflow="fold",
                     no_wrap=narrow, max_width=None if narrow else label_width)
    for h, w in zip(heads, widths):
        table.add_column(h, justify="left" if h in left else "right", no_wrap=True, min_width=w)
    ids = t["config_id"].head(max_rows).tolist()
    for cid, (label, cells) in zip(ids, rows):
        table.add_row(Text(cid if narrow else "\n".join(wrap_label(label, label_width))), *cells)
    return table, ([label for label, _ in rows] if narrow else [])


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
    for label in below:
        console.print(label, highlight=False, markup=False)
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
    if summary.next_steps:
        console.print("[bold]Next steps[/]")
        for line in summary.next_steps:
            console.print("- " + line, highlight=False, markup=False)
    if "report.md" in files:
        console.print(f"report: {files['report.md'].parent}", highlight=False)


def _param_name(column: str) -> str:
    """A parameter as the spec names it (collect prefixes the few that collide with columns)."""
    from rewardsweep.analysis.collect import PARAM_PREFIX

    return column.removeprefix(PARAM_PREFIX)


def _param_value(value) -> str:
    """Whole numbers read as written (a pandas float column turns 2 into 2.0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
