"""PNG plots of a report (matplotlib, Agg, no pyplot global state).

Many configurations stay readable: the per-configuration plots show the controls, the
best configurations and the worst few (``select_rows``) and say so in their title; the
curve plot shows the controls and the best few. The full numbers are always in the CSVs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rewardsweep.analysis.collect import Collection
from rewardsweep.analysis.summary import Summary

MAX_ROWS = 30        # configurations in the dot plot and the heatmap
MAX_WORST = 6        # of which the worst ones (the rest: the best)
MAX_CURVES = 6       # reward configurations in the curve plot (plus controls)
VERDICT_COLOURS = {"beats control": "#1a9850", "worse": "#d73027", "no evidence": "#4d4d4d",
                   "control": "#2c7bb6", "no control": "#4d4d4d"}


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


def _label_inches(labels, fontsize: float = 7) -> float:
    return 0.3 + 0.58 * fontsize / 72 * max((len(x) for x in labels), default=0)


def label(row, width: int = 48) -> str:
    text = str(row["label"])
    return text if len(text) <= width else text[: width - 1] + "…"


def select_rows(table: pd.DataFrame, cap: int = MAX_ROWS,
                worst: int = MAX_WORST) -> tuple[list[int], str, int]:
    """Row positions to plot (table order: controls, then best to worst), a caption, and
    how many of them are the worst ones (0 when everything fits)."""
    n = len(table)
    if n <= cap:
        return list(range(n)), "", 0
    ctrl = [i for i in range(n) if table["arm"].iat[i] == "mle"]
    rest = [i for i in range(n) if table["arm"].iat[i] != "mle"]
    room = max(cap - len(ctrl), 2)
    worst = min(worst, room // 2)
    chosen = ctrl + rest[: room - worst] + (rest[-worst:] if worst else [])
    return chosen, f"{room - worst} best and {worst} worst of {len(rest)} configurations", worst


def plot_deltas(summary: Summary, coll: Collection, path: Path) -> Path:
    table = summary.table
    rows, caption, n_worst = select_rows(table)
    sub = table.iloc[rows].reset_index(drop=True)
    fin = coll.finished
    fig = _figure(9, 1.4 + 0.28 * len(sub))
    ax = fig.add_subplot(1, 1, 1)
    ypos = {(c, a): len(sub) - 1 - i for i, (c, a) in enumerate(zip(sub["config_id"], sub["arm"]))}
    key = list(zip(fin["config_id"], fin["arm"]))
    y = np.array([ypos.get(k, np.nan) for k in key], dtype=float)
    keep = np.isfinite(y)
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, keep.sum())
    ax.scatter(fin["delta_miou"].to_numpy()[keep] * 100, y[keep] + jitter, s=9, alpha=0.45,
               color="#7f7f7f", linewidths=0, label="one seed", zorder=2)
    yy = np.array([ypos[(c, a)] for c, a in zip(sub["config_id"], sub["arm"])], dtype=float)
    colours = [VERDICT_COLOURS.get(v, "#4d4d4d") for v in sub["verdict"]]
    lo, hi = sub["ci_low"].to_numpy(float) * 100, sub["ci_high"].to_numpy(float) * 100
    mean = sub["mean_delta"].to_numpy(float) * 100
    ok = np.isfinite(lo)
    ax.hlines(yy[ok], lo[ok], hi[ok], colors=np.array(colours, dtype=object)[ok], lw=2.2, zorder=3,
              label="95% t-interval")
    ax.scatter(mean, yy, marker="D", s=28, c=colours, zorder=4, label="mean")
    ax.axvline(0, color="black", lw=0.8)
    if n_worst:   # a dotted line where the best end and the worst begin
        ax.axhline(n_worst - 0.5, color="#999999", lw=0.8, ls=":")
    for _, r in sub[sub["arm"] == "mle"].iterrows():
        ax.axvline(r["mean_delta"] * 100, color=VERDICT_COLOURS["control"], lw=0.8, ls="--")
    ax.set_yticks(yy)
    labels = [label(r) for _, r in sub.iterrows()]
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_ylim(-0.7, len(sub) - 0.3)
    ax.set_xlabel("delta mIoU after tuning (points; dashed: control mean)")
    title = "delta mIoU per configuration (dots: seeds; diamond: mean; bar: 95% CI)"
    ax.set_title(title + (f"\n{caption}" if caption else ""), fontsize=9)
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    _margins(fig, _label_inches(labels), 0.55, 0.55 if caption else 0.4)
    fig.savefig(path)
    return path


def plot_curves(summary: Summary, path: Path) -> Path | None:
    curves = summary.curves
    if curves.empty:
        return None
    table = summary.table
    ctrl = table[table["arm"] == "mle"]
    best = table[(table["arm"] != "mle") & (table["n_finished"] > 0)].head(MAX_CURVES)
    shown = pd.concat([ctrl, best])
    fig = _figure(9, 5)
    ax = fig.add_subplot(1, 1, 1)
    groups = {k: g for k, g in curves.groupby(["config_id", "arm"], sort=False)}
    cmap = _cmap("tab10")
    for i, (_, r) in enumerate(shown.iterrows()):
        g = groups.get((r["config_id"], r["arm"]))
        if g is None:
            continue
        is_ctrl = r["arm"] == "mle"
        colour = "black" if is_ctrl else cmap(i % 10)
        x = g["step"].to_numpy()
        ax.plot(x, g["mean"] * 100, color=colour, lw=2.2 if is_ctrl else 1.4,
                ls="--" if is_ctrl else "-", label=label(r, 40))
        band = np.isfinite(g["low"].to_numpy(float))
        ax.fill_between(x[band], g["low"].to_numpy(float)[band] * 100, g["high"].to_numpy(float)[band] * 100,
                        color=colour, alpha=0.15, lw=0)
    ax.set_xlabel("training step")
    ax.set_ylabel("val mIoU (points)")
    n_rest = int((table["arm"] != "mle").sum())
    extra = f" (best {len(best)} of {n_rest})" if n_rest > len(best) else ""
    ax.set_title(f"mIoU over tuning: mean and 95% CI across seeds; controls dashed{extra}", fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="best")
    ax.grid(alpha=0.3)
    _margins(fig, 0.8, 0.6, 0.4)
    fig.savefig(path)
    return path


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
    left = _label_inches([label(r, 40) for _, r in sub.iterrows()])
    bottom = _label_inches([str(c) for c in delta.columns]) * 0.85 + 0.2
    fig = _figure(min(max(7.0, left + 1.6 + 0.4 * n_c), 20), bottom + 0.6 + 0.26 * n_r)
    ax = fig.add_subplot(1, 1, 1)
    finite = values[np.isfinite(values)]
    vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
    vmax = vmax or 1.0
    im = ax.imshow(values, cmap=_cmap("RdBu"), vmin=-vmax, vmax=vmax, aspect="auto",
                   interpolation="nearest")
    ax.set_xticks(range(n_c))
    ax.set_xticklabels([str(c) for c in delta.columns], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n_r))
    labels = [label(r, 40) for _, r in sub.iterrows()]
    ax.set_yticklabels(labels, fontsize=7)
    if n_r * n_c <= 400:
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(v) > 0.6 * vmax else "black")
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label="IoU change (points)")
    title = "per-class IoU change after tuning (mean over finished seeds)"
    ax.set_title(title + (f"\n{caption}" if caption else ""), fontsize=9)
    _margins(fig, left, bottom, 0.55 if caption else 0.4, right=1.3)
    fig.savefig(path)
    return path


def make_plots(summary: Summary, coll: Collection, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {"delta per configuration": plot_deltas(summary, coll, folder / "delta_per_config.png")}
    curves = plot_curves(summary, folder / "curves.png")
    if curves:
        out["mIoU curves"] = curves
    heat = plot_heatmap(summary, folder / "per_class_delta.png")
    if heat:
        out["per-class IoU change"] = heat
    return out
