"""The report's figures (matplotlib, Agg, no pyplot global state): each as a PNG at
:data:`PNG_DPI` and as vector SVG and PDF beside it, for a paper (:func:`save`).

Many configurations stay readable: the per-configuration plots show the controls, the
best configurations and the worst few (``select_rows``) and say so in their title; the
curves are small multiples of the best few, each with its control. Labels are the
configurations' labels wrapped onto lines (never cut); legends sit below the axes, never
over data. The full numbers are always in the CSVs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rewardsweep.analysis.collect import Collection
from rewardsweep.analysis.summary import Summary, wrap_label
from rewardsweep.study import arms as kinds

MAX_ROWS = 30        # configurations in the dot plot and the heatmap
MAX_WORST = 6        # of which the worst ones (the rest: the best)
MAX_CURVES = 6       # reward configurations in the curve plot (plus controls)
VERDICT_COLOURS = {"beats control": "#1a9850", "worse": "#d73027", "no evidence": "#4d4d4d",
                   "control": "#2c7bb6", "no control": "#4d4d4d"}
TUNED_CE = "#7b3294"     # a control_grid cross-entropy (its own lr): never a verdict's colour
REFERENCE = "#969696"    # the no-op reference
# the colour of each non-treatment role (study.arms); a reward configuration's is its verdict's
ROLE_COLOURS = {"control": VERDICT_COLOURS["control"], "reference": REFERENCE}
PNG_DPI = 200            # the PNG beside each figure's vector SVG and PDF (the HTML shows it at half size)
VECTOR_FORMATS = ("svg", "pdf")


def verdict_colour(verdict) -> str:
    """A verdict's colour; a flagged one ("no evidence [not reward tuning]") by its words."""
    text = verdict if isinstance(verdict, str) else ""
    return VERDICT_COLOURS.get(text.split(" [", 1)[0], "#4d4d4d")


def save(fig, path: Path) -> Path:
    """``path`` (a PNG at :data:`PNG_DPI`) and the same figure as SVG and PDF beside it."""
    fig.savefig(path, dpi=PNG_DPI)
    for ext in VECTOR_FORMATS:
        fig.savefig(path.with_suffix("." + ext))
    return path


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _margins(fig, left: float, bottom: float, top: float, right: float = 0.2) -> None:
    """Fixed margins in inches (tight_layout would draw every figure twice: slow at 10k dots)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h)


LABEL_WIDTH = 36     # characters per line of a wrapped label


def _label_inches(labels, fontsize: float = 7) -> float:
    longest = max((len(line) for x in labels for line in str(x).split("\n")), default=0)
    return 0.3 + 0.58 * fontsize / 72 * longest


def label(row, width: int = LABEL_WIDTH) -> str:
    """The configuration's label (parameters, then [config id]) wrapped onto lines, never cut."""
    return "\n".join(wrap_label(str(row["label"]), width))


def _row_inches(labels) -> float:
    """Height per row so that the tallest wrapped label (7 pt lines) fits."""
    lines = max((str(x).count("\n") + 1 for x in labels), default=1)
    return max(0.28, 0.12 * lines + 0.08)


def _legend_below(fig, handles, ncol: int | None = None) -> None:
    """The legend in the bottom margin, outside every axes: it never covers data."""
    fig.legend(handles=handles, loc="lower center", ncol=ncol or len(handles), fontsize=7,
               frameon=False, bbox_to_anchor=(0.5, 0.0))


def select_rows(table: pd.DataFrame, cap: int = MAX_ROWS,
                worst: int = MAX_WORST) -> tuple[list[int], str, int]:
    """Row positions to plot (table order: controls, then best to worst), a caption, and
    how many of them are the worst ones (0 when everything fits)."""
    n = len(table)
    if n <= cap:
        return list(range(n)), "", 0
    controls = kinds.named("control")
    ctrl = [i for i in range(n) if table["arm"].iat[i] in controls]
    rest = [i for i in range(n) if table["arm"].iat[i] not in controls]
    room = max(cap - len(ctrl), 2)
    worst = min(worst, room // 2)
    chosen = ctrl + rest[: room - worst] + (rest[-worst:] if worst else [])
    return chosen, f"{room - worst} best and {worst} worst of {len(rest)} configurations", worst


def _handles(items):
    """Legend entries drawn in neutral grey where the data's colour means the verdict."""
    from matplotlib.lines import Line2D

    out = []
    for kind, colour, text in items:
        if kind == "dot":
            out.append(Line2D([], [], ls="none", marker="o", ms=4, color=colour, alpha=0.6, label=text))
        elif kind == "diamond":
            out.append(Line2D([], [], ls="none", marker="D", ms=5, color=colour, label=text))
        elif kind == "circle":
            out.append(Line2D([], [], ls="none", marker="o", ms=5, color=colour, label=text))
        elif kind == "wide":
            out.append(Line2D([], [], color=colour, lw=6, label=text))
        elif kind == "bar":
            out.append(Line2D([], [], color=colour, lw=2.4, label=text))
        elif kind == "thin":
            out.append(Line2D([], [], color=colour, lw=1.0, label=text))
        elif kind == "dashed":
            out.append(Line2D([], [], color=colour, lw=1.0, ls="--", label=text))
        elif kind == "dashdot":
            out.append(Line2D([], [], color=colour, lw=1.0, ls="-.", label=text))
        elif kind == "dotted":
            out.append(Line2D([], [], color=colour, lw=1.2, ls=":", label=text))
        elif kind == "band":
            from matplotlib.patches import Patch

            out.append(Patch(color=colour, alpha=0.25, lw=0, label=text))
    return out


def _verdict_handles(verdicts) -> list:
    words = {str(v).split(" [", 1)[0] for v in verdicts if isinstance(v, str)}
    return _handles([("bar", VERDICT_COLOURS[v], v) for v in VERDICT_COLOURS if v in words])


def _arm_colour(row) -> str:
    """A row's colour: a reward configuration's verdict; a paired control's blue, a tuned
    cross-entropy's purple, the no-op reference's light grey (none of them a verdict)."""
    kind = kinds.KINDS.get(row["arm"])
    if kind is None or kind.role == "treatment":
        return verdict_colour(row["verdict"])
    if kind.variant_label and isinstance(row.get("control_id"), str):
        return TUNED_CE
    return ROLE_COLOURS[kind.role]


def _grow_for_legend(fig, bottom: float, handles: list, ncol: int) -> float:
    """A taller bottom margin (and figure) when the legend below needs more than 2 rows."""
    extra = 0.17 * max(0, -(-len(handles) // ncol) - 2)
    if extra:
        w, h = fig.get_size_inches()
        fig.set_size_inches(w, h + extra)
    return bottom + extra


def plot_deltas(summary: Summary, coll: Collection, path: Path) -> Path:
    return save(deltas_figure(summary, coll), path)


def deltas_figure(summary: Summary, coll: Collection):
    """Delta mIoU per configuration: every seed a dot, the mean, its 95% t-interval."""
    table = summary.table
    rows, caption, n_worst = select_rows(table)
    sub = table.iloc[rows].reset_index(drop=True)
    fin = coll.finished
    labels = [label(r) for _, r in sub.iterrows()]
    row_h = _row_inches(labels)
    top, bottom = (0.55 if caption else 0.4), 0.95
    fig = _figure(9, top + bottom + row_h * len(sub) + 0.2)
    ax = fig.add_subplot(1, 1, 1)
    ypos = {(c, a): len(sub) - 1 - i for i, (c, a) in enumerate(zip(sub["config_id"], sub["arm"]))}
    key = list(zip(fin["config_id"], fin["arm"]))
    y = np.array([ypos.get(k, np.nan) for k in key], dtype=float)
    keep = np.isfinite(y)
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, keep.sum())
    ax.scatter(fin["delta_miou"].to_numpy()[keep] * 100, y[keep] + jitter, s=9, alpha=0.45,
               color="#7f7f7f", linewidths=0, zorder=2)
    yy = np.array([ypos[(c, a)] for c, a in zip(sub["config_id"], sub["arm"])], dtype=float)
    colours = np.array([_arm_colour(r) for _, r in sub.iterrows()], dtype=object)
    lo, hi = sub["ci_low"].to_numpy(float) * 100, sub["ci_high"].to_numpy(float) * 100
    mean = sub["mean_delta"].to_numpy(float) * 100
    ok = np.isfinite(lo)
    ax.hlines(yy[ok], lo[ok], hi[ok], colors=list(colours[ok]), lw=2.2, zorder=3)
    ax.scatter(mean, yy, marker="D", s=28, c=list(colours), zorder=4)
    ax.axvline(0, color="black", lw=0.8)
    if n_worst:   # a dotted line where the best end and the worst begin
        ax.axhline(n_worst - 0.5, color="#999999", lw=0.8, ls=":")
    control = sub["arm"].isin(kinds.named("control"))
    paired = control & sub["control_id"].isna()      # the paired controls
    tuned = control & sub["control_id"].notna()      # control_grid variants (own lr)
    for x in sub.loc[paired, "mean_delta"]:
        ax.axvline(x * 100, color=VERDICT_COLOURS["control"], lw=0.8, ls="--")
    for x in sub.loc[tuned, "mean_delta"]:
        ax.axvline(x * 100, color=TUNED_CE, lw=0.8, ls="-.")
    ax.set_yticks(yy)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_ylim(-0.7, len(sub) - 0.3)
    ax.set_xlabel("delta mIoU after tuning (points)")
    title = "delta mIoU per configuration: every seed, the mean and its 95% t-interval"
    ax.set_title(title + (f"\n{caption}" if caption else ""), fontsize=9)
    lines = [("dashed", VERDICT_COLOURS["control"], "control mean")] if paired.any() else []
    lines += [("dashdot", TUNED_CE, "cross-entropy, own lr: mean")] if tuned.any() else []
    arms = [("bar", TUNED_CE, kinds.CONTROL.variant_label)] if tuned.any() else []
    arms += [("bar", ROLE_COLOURS[k.role], k.label) for k in kinds.KINDS.values()
             if k.role == "reference" and (sub["arm"] == k.name).any()]
    handles = _handles([("dot", "#7f7f7f", "one seed"), ("diamond", "#4d4d4d", "mean"),
                        ("bar", "#4d4d4d", "95% t-interval (colour: verdict)"), *lines]) \
        + _verdict_handles(sub["verdict"]) + _handles(arms)
    _legend_below(fig, handles, ncol=4)
    ax.grid(axis="x", alpha=0.3)
    bottom = _grow_for_legend(fig, bottom, handles, 4)
    _margins(fig, _label_inches(labels), bottom, top)
    return fig


def plot_forest(summary: Summary, path: Path) -> Path | None:
    fig = forest_figure(summary)
    return None if fig is None else save(fig, path)


def forest_figure(summary: Summary):
    """The paired differences the verdicts rest on: configuration minus control per seed.

    Wide grey bar: the unadjusted 95% paired t-interval (the table's CI). Line, coloured by
    verdict: the interval at the level the multiple-testing adjustment used for that
    comparison (``stats.adjusted_intervals``), so it excludes 0 exactly when the verdict
    is "beats control" or "worse". The equivalence margin is shaded when given.
    """
    table = summary.table
    comp = table[~table["arm"].isin(kinds.named("control")) & table["n_paired"].notna()].reset_index(drop=True)
    if comp.empty:
        return None
    rows, caption, n_worst = select_rows(comp)
    sub = comp.iloc[rows].reset_index(drop=True)
    s = summary.settings
    labels = [label(r) for _, r in sub.iterrows()]
    row_h = _row_inches(labels)
    top, bottom = (0.85 if caption else 0.7), 0.95
    fig = _figure(9, top + bottom + row_h * len(sub) + 0.2)
    ax = fig.add_subplot(1, 1, 1)
    yy = np.arange(len(sub))[::-1].astype(float)
    colours = np.array([verdict_colour(v) for v in sub["verdict"]], dtype=object)
    lo, hi = sub["diff_ci_low"].to_numpy(float) * 100, sub["diff_ci_high"].to_numpy(float) * 100
    alo, ahi = sub["diff_adj_low"].to_numpy(float) * 100, sub["diff_adj_high"].to_numpy(float) * 100
    mean = sub["diff_mean"].to_numpy(float) * 100
    if s.margin:
        ax.axvspan(-s.margin * 100, s.margin * 100, color="#fee08b", alpha=0.35, lw=0, zorder=0)
    ok = np.isfinite(lo)
    ax.hlines(yy[ok], lo[ok], hi[ok], colors="#bdbdbd", lw=6, zorder=2)
    ok = np.isfinite(alo)
    ax.hlines(yy[ok], alo[ok], ahi[ok], colors=list(colours[ok]), lw=1.6, zorder=3)
    ax.scatter(np.r_[alo[ok], ahi[ok]], np.r_[yy[ok], yy[ok]], marker="|", s=60,
               c=list(colours[ok]) * 2, linewidths=1.6, zorder=3)
    ax.scatter(mean, yy, marker="o", s=22, c="white", edgecolors="black", linewidths=0.8, zorder=4)
    ax.axvline(0, color="black", lw=0.8)
    if n_worst:
        ax.axhline(n_worst - 0.5, color="#999999", lw=0.8, ls=":")
    ax.set_yticks(yy)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_ylim(-0.7, len(sub) - 0.3)
    ax.set_xlabel("configuration minus control, paired by seed (mIoU points)")
    corr = {"holm": "Holm", "fdr_bh": "Benjamini-Hochberg"}.get(s.correction, s.correction)
    title = (f"paired difference against the control (configuration minus control, same seed)\n"
             f"mean, 95% t-interval (grey bar) and {corr}-adjusted interval (line)")
    ax.set_title(title + (f"\n{caption}" if caption else ""), fontsize=9)
    items = [("circle", "white", "mean difference"), ("wide", "#bdbdbd", "95% t-interval, unadjusted"),
             ("thin", "#4d4d4d", f"{corr}-adjusted interval: excludes 0 exactly when the verdict is not 'no evidence'")]
    if s.margin:
        items.append(("band", "#fee08b", f"equivalence margin ±{s.margin * 100:g}"))
    handles = _handles(items)
    handles[0].set_markeredgecolor("black")
    words = {str(v).split(" [", 1)[0] for v in sub["verdict"]}
    handles += _handles([("thin", VERDICT_COLOURS[v], v) for v in VERDICT_COLOURS if v in words])
    _legend_below(fig, handles, ncol=3)
    ax.grid(axis="x", alpha=0.3)
    bottom = _grow_for_legend(fig, bottom, handles, 3)
    _margins(fig, _label_inches(labels), bottom, top)
    return fig


def plot_curves(summary: Summary, coll: Collection, path: Path) -> Path | None:
    fig = curves_figure(summary, coll)
    return None if fig is None else save(fig, path)


def curves_figure(summary: Summary, coll: Collection):
    """Small multiples: one panel per reward configuration shown (the best few), drawn in its
    verdict's colour, with its control dashed (black), the best cross-entropy of its budget
    dash-dotted and the no-op reference dotted where the study has them; shared axes. With
    5 or more seeds a 95% band around the mean; with fewer (where a t-band is too wide to
    read) every seed's own curve, thin. A study without reward configurations shows its
    other arms, one per panel."""
    curves = summary.curves
    if curves.empty:
        return None
    table = summary.table
    shown = table[table["arm"].isin(kinds.named("treatment")) & (table["n_finished"] > 0)].head(MAX_CURVES)
    if shown.empty:
        shown = table[table["n_finished"] > 0].head(MAX_CURVES)
    groups = {k: g for k, g in curves.groupby(["config_id", "arm"], sort=False)}
    fin = coll.curves[coll.curves["trial"].isin(coll.trials.index[coll.trials["status"] == "finished"])]
    per_seed = {k: g for k, g in fin.groupby(["config_id", "arm"], sort=False)}
    rows = {(r["config_id"], r["arm"]): r for _, r in table.iterrows()}
    refs = _reference_of(coll)
    k = len(shown)
    ncol = min(3, k)
    nrow = -(-k // ncol)
    lines = max(label(r, 44).count("\n") + 2 for _, r in shown.iterrows())
    panel, title_h, head, foot = 1.9, 0.11 * lines + 0.3, 0.4, 0.55      # inches (foot: + the legend's rows)
    fig = _figure(9, head + foot + nrow * (panel + title_h))
    axes = fig.subplots(nrow, ncol, sharex=True, sharey=True, squeeze=False)
    many = int(curves["n"].max()) >= 5 if len(curves) else False

    def draw(ax, key, colour, ls, lw, band=True):
        g = groups.get(key)
        if g is None:
            return False
        x = g["step"].to_numpy()
        if not band:
            pass                      # a comparison line: its mean only (its spread is in its own row)
        elif many:
            band = np.isfinite(g["low"].to_numpy(float))
            ax.fill_between(x[band], g["low"].to_numpy(float)[band] * 100,
                            g["high"].to_numpy(float)[band] * 100, color=colour, alpha=0.15, lw=0)
        else:
            for _, one in per_seed.get(key, pd.DataFrame()).groupby("trial"):
                ax.plot(one["step"], one["miou"] * 100, color=colour, lw=0.6, alpha=0.4, ls=ls)
        ax.plot(x, g["mean"] * 100, color=colour, lw=lw, ls=ls)
        return True

    drawn = {"control": 0, "tuned": 0, "reference": 0}
    for i, (_, r) in enumerate(shown.iterrows()):
        ax = axes[i // ncol][i % ncol]
        if kinds.role(r["arm"]) == "treatment":
            if draw(ax, (r["control_id"], kinds.CONTROL.name), "black", "--", 1.4, band=False):
                drawn["control"] += 1
            best = r.get("best_control_id")
            if isinstance(best, str) and best and best != r["control_id"] and draw(ax, (best, kinds.CONTROL.name), TUNED_CE,
                                                                                "-.", 1.2, band=False):
                drawn["tuned"] += 1
            ref = refs.get(r["config_id"])
            if ref is not None and draw(ax, (ref, kinds.REFERENCE.name), REFERENCE, ":", 1.4, band=False):
                drawn["reference"] += 1
        colour = _arm_colour(r)
        draw(ax, (r["config_id"], r["arm"]), colour, "-", 1.8)
        verdict = r["verdict"] if isinstance(r["verdict"], str) and kinds.role(r["arm"]) == "treatment" else ""
        ax.set_title(label(r, 44) + (f"\n{verdict}" if verdict else ""), fontsize=7,
                     color=verdict_colour(verdict) if verdict else "black")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for j in range(k, nrow * ncol):
        axes[j // ncol][j % ncol].set_visible(False)
    for col in range(ncol):            # the lowest panel of each column carries the x-axis
        lowest = axes[max(r for r in range(nrow) if r * ncol + col < k)][col]
        lowest.tick_params(labelbottom=True)
        lowest.set_xlabel("training step", fontsize=8)
    for row in axes:
        row[0].set_ylabel("val mIoU (points)", fontsize=8)
    n_rest = int(table["arm"].isin(kinds.named("treatment")).sum())
    extra = f"; the best {k} of {n_rest} configurations" if n_rest > k else ""
    how = "mean and 95% band across seeds" if many else "mean (thick) and every seed (thin)"
    how += "; the lines to compare with: their means" if any(drawn.values()) else ""
    fig.suptitle(f"val mIoU over tuning: {how}{extra}", fontsize=9)
    items = [("thin", "#4d4d4d", "configuration (colour: its verdict)")] if shown["arm"].isin(kinds.named("treatment")).any() else []
    where = lambda n: " mean" if n == k else " mean (where it has one)"  # noqa: E731
    if drawn["control"]:
        items.append(("dashed", "black", "its control" + where(drawn["control"])))
    if drawn["tuned"]:
        items.append(("dashdot", TUNED_CE, "best cross-entropy, own lr" + where(drawn["tuned"])))
    if drawn["reference"]:
        items.append(("dotted", REFERENCE, "no-op reference" + where(drawn["reference"])))
    handles = _handles(items) + _verdict_handles(shown.loc[shown["arm"].isin(kinds.named("treatment")), "verdict"])
    ncol_legend = min(3, len(handles)) or 1
    foot += 0.17 * -(-len(handles) // ncol_legend)          # room for the legend's rows under the x-axis
    fig.set_size_inches(9, head + foot + nrow * (panel + title_h))
    if handles:
        _legend_below(fig, handles, ncol=ncol_legend)
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=0.8 / w, right=1 - 0.2 / w, bottom=foot / h, top=1 - (head + title_h) / h,
                        hspace=title_h / panel, wspace=0.08)
    return fig


def _reference_of(coll: Collection) -> dict[str, str]:
    """config id -> its no-op reference's config id (where the study has one)."""
    t = coll.trials
    if "reference_id" not in t or not (t["arm"] == kinds.REFERENCE.name).any():
        return {}
    pairs = t[["config_id", "reference_id"]].dropna().drop_duplicates("config_id")
    return dict(zip(pairs["config_id"], pairs["reference_id"]))


def _cmap(name: str):
    from matplotlib import colormaps

    return colormaps[name]


def plot_heatmap(summary: Summary, path: Path) -> Path | None:
    delta = summary.iou_delta
    if delta.shape[1] == 0 or delta.empty:
        return None
    rows, caption, _ = select_rows(summary.table)
    sub = summary.table.iloc[rows]
    values = delta.to_numpy(float)[rows] * 100
    n_r, n_c = values.shape
    labels = [label(r, 56) for _, r in sub.iterrows()]     # wider lines: fewer, and a shorter figure
    left = _label_inches(labels)
    bottom = _label_inches([str(c) for c in delta.columns]) * 0.85 + 0.2
    fig = _figure(min(max(7.0, left + 1.6 + 0.4 * n_c), 20), bottom + 0.6 + _row_inches(labels) * n_r)
    ax = fig.add_subplot(1, 1, 1)
    finite = values[np.isfinite(values)]
    vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
    vmax = vmax or 1.0
    im = ax.imshow(values, cmap=_cmap("RdBu"), vmin=-vmax, vmax=vmax, aspect="auto",
                   interpolation="nearest")
    ax.set_xticks(range(n_c))
    ax.set_xticklabels([str(c) for c in delta.columns], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n_r))
    ax.set_yticklabels(labels, fontsize=7)
    if n_r * n_c <= 400:
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:+.1f}" if round(v, 1) else "0.0", ha="center", va="center", fontsize=6,
                        color="white" if abs(v) > 0.6 * vmax else "black")
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label="IoU change (points)")
    title = "per-class IoU change after tuning (mean over finished seeds)"
    ax.set_title(title + (f"\n{caption}" if caption else ""), fontsize=9)
    _margins(fig, left, bottom, 0.55 if caption else 0.4, right=1.3)
    return save(fig, path)


def make_plots(summary: Summary, coll: Collection, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    if summary.sequential is not None:
        from rewardsweep.analysis.sequential_view import plot_paths

        paths = plot_paths(summary.sequential, folder / "sequential_looks.png")
        if paths:
            out["sequential looks against the boundaries"] = paths
    forest = plot_forest(summary, folder / "paired_differences.png")
    if forest:   # first: the verdicts rest on these differences
        out["paired differences against the control"] = forest
    out["delta per configuration"] = plot_deltas(summary, coll, folder / "delta_per_config.png")
    curves = plot_curves(summary, coll, folder / "curves.png")
    if curves:
        out["mIoU curves"] = curves
    heat = plot_heatmap(summary, folder / "per_class_delta.png")
    if heat:
        out["per-class IoU change"] = heat
    return out
