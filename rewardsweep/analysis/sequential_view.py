"""The report's view of a sequential study: each configuration's looks and decision,
recomputed from the records, and checked against the decisions launch acted on.

The design comes from ``<study>/sequential.json`` (fixed before the first trial); the
paired differences and the decisions come from :mod:`rewardsweep.analysis.sequential`,
the same functions launch uses, so the two can only disagree if the records changed
after launch read them, and then the report says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rewardsweep.analysis.robustness import assumptions
from rewardsweep.analysis.sequential import Outcome, SequentialDesign, decide, paired_series, power, settle_sd
from rewardsweep.study import arms
from rewardsweep.study.layout import SEQUENTIAL_FILENAME


@dataclass
class SequentialView:
    design: SequentialDesign
    decisions: pd.DataFrame          # one row per reward configuration
    looks: pd.DataFrame              # one row per (configuration, look)
    disagreements: list[str] = field(default_factory=list)   # config ids where launch's log differs
    due: dict[str, int] = field(default_factory=dict)        # config id -> seeds it was meant to run
    sd_note: str = ""                                          # where the design SD came from

    def seeds_due(self, config_id: str, arm: str) -> set[int] | None:
        """The seeds a configuration was meant to run by now: up to its decision (or its
        current look); a control, its control_grid variants and the no-op reference up to
        the most any configuration they serve needed."""
        n = self.due.get(config_id)
        return None if n is None else set(range(int(n)))

    def label(self, labels: dict[str, str]) -> None:
        """Name the configurations as the summary does."""
        for frame in (self.decisions, self.looks):
            if len(frame):
                frame["label"] = [labels.get(c, c) for c in frame["config_id"]]

    @property
    def guarantee(self) -> str:
        """What the design promises, in words, and what each decision means."""
        d = self.design
        if d.robust:
            promise = (f"Guarantee: the chance of any false 'beats' or 'worse' among the {d.n_configs} "
                       f"configuration(s), over all looks, is at most {d.alpha:g} if the paired differences are "
                       f"normal and independent across seeds; with skewed differences it is measured (up to about "
                       f"{2 * d.alpha:g} at skewness 1.75), and no test of a mean can bound it when a configuration "
                       f"collapses on a few seeds the study did not see (each claim below says what its data show; "
                       f"docs/report.md, 'Sequential studies').")
            stated = (f"Power for an effect of {d.effect:g} points: {power(d, d.sd):.0%} at the design SD "
                      f"{d.sd:.3g} points {self.sd_note}." if d.sd is not None and d.sd > 0 else
                      "The design SD is not fixed yet: decisions wait until every configuration's first look "
                      "is in." if d.sd is None else "")
        else:
            promise = (f"Guarantee (rewardsweep 0.3 rule, with which this study was started): the chance of any "
                       f"false 'beats' or 'worse' among the {d.n_configs} configuration(s), over all looks, is at "
                       f"most {d.alpha:g} only if the paired differences are normal: with 4-seed batches a skewed "
                       f"configuration or one that collapses now and then breaks it (docs/report.md, "
                       f"'Sequential studies'); new studies use the robust rule.")
            stated = ""
        return " ".join(filter(None, [
            f"Sequential study: looks at {', '.join(map(str, d.looks))} seeds; a configuration gets the next "
            f"look's seeds only while it is undecided against its paired control.",
            f"Method: {d.method}.", promise, stated,
            f"'equivalent': |difference| < {d.margin:g} points shown." if d.margin else "",
            (f"'futile': a difference of {d.effect:g} points is not there (far from what the seeds show, or "
             f"out of reach by {d.max_seeds} seeds)" if d.robust else
             f"'futile': a difference of {d.effect:g} points is ruled out")
            + f"; 'undecided': still open at {d.max_seeds} seeds; 'continue': open, its next look not run yet; "
              f"'failed': a trial of its next look failed (`launch --retry-failed` reruns it) or diverged "
              f"(final: change the setting).",
        ]))


def _arm(trials: pd.DataFrame, config_id: str, arm: str) -> dict[int, tuple[str, float]]:
    rows = trials[(trials["config_id"] == config_id) & (trials["arm"] == arm)]
    return {int(r.seed): (r.status, float(r.miou_final) if pd.notna(r.miou_final) else float("nan"))
            for r in rows.itertuples()}


def sequential_view(folder: Path, trials: pd.DataFrame, labels: dict[str, str] | None = None
                    ) -> SequentialView | None:
    """The view, or None when the study is not sequential (no ``sequential.json``)."""
    path = Path(folder) / SEQUENTIAL_FILENAME
    if not path.is_file():
        return None
    log = json.loads(path.read_text())
    design = SequentialDesign.from_dict(log["design"])
    acted = {d["config_id"]: d for d in log.get("decisions", [])}
    labels = labels or {}
    rows, looks, disagree = [], [], []
    rewards = trials[trials["arm"].isin(arms.named("treatment"))].drop_duplicates("config_id")
    series = {r.config_id: paired_series(_arm(trials, r.config_id, r.arm), _arm(trials, r.control_id, arms.CONTROL.name),
                                         design.max_seeds) for r in rewards.itertuples()}
    sd_note = "(fixed from the first look, sequential.json)"
    if design.robust and design.sd is None and len(series) >= design.n_configs:   # every first look in?
        design = settle_sd(design, [(d, f is not None) for d, f in series.values()])
        sd_note = "(from the first look of the records; launch had not stored it)"
    for r in rewards.itertuples():
        diffs, failed = series[r.config_id]
        if design.robust and design.sd is None:           # a first look still running
            outcome = Outcome((), "continue", None, design.looks[0])
        else:
            outcome = decide(design, diffs)
        decision = "failed" if failed and not outcome.done else outcome.decision
        logged = acted.get(r.config_id)
        if logged is not None and logged["decision"] != decision:
            disagree.append(r.config_id)
        present = trials[(trials["config_id"] == r.config_id) & (trials["arm"] == r.arm)]["seed"]
        due = outcome.decided_at or (int(present.max()) + 1 if failed else outcome.next_seeds)
        rests = ""
        if decision in ("beats", "worse") and outcome.decided_at:
            used = diffs[: outcome.decided_at]
            rests = assumptions(used, range(len(used))).note(2 * _claim_level(design, outcome))
        rows.append({"config_id": r.config_id, "label": labels.get(r.config_id, r.config_id),
                     "decision": decision, "decided_at": outcome.decided_at, "seeds_paired": len(diffs),
                     "due": due, "rests_on": rests,
                     "looks": len(outcome.looks), "launch_decision": None if logged is None else logged["decision"],
                     "stopped_by": failed})
        for look in outcome.looks:
            looks.append({"config_id": r.config_id, "label": labels.get(r.config_id, r.config_id),
                          "look": look.look + 1, "n": look.n, "mean_diff": look.mean, "t": look.t, "z": look.z,
                          "upper": look.upper, "lower": look.lower, "z_futility": look.z_futility,
                          "futility": look.futility, "z_equivalence": look.z_equivalence,
                          "z_skew": look.z_skew, "decision": look.decision})
    return SequentialView(design, pd.DataFrame(rows), pd.DataFrame(looks), disagree, _due(trials, rows), sd_note)


def _claim_level(design: SequentialDesign, outcome) -> float:
    """The one-sided nominal level of the look a claim was made at (``Phi(-c_k)``)."""
    from scipy.stats import norm

    return float(norm.sf(outcome.looks[-1].upper))


def _due(trials: pd.DataFrame, rows: list[dict]) -> dict[str, int]:
    """config id -> seeds due, for every arm: a reward configuration's own; what serves
    several configurations (a control, its variants, the no-op reference) the most of theirs."""
    due = {r["config_id"]: int(r["due"]) for r in rows}
    first = trials.drop_duplicates(["config_id", "arm"])
    treated = first["arm"].isin(arms.named("treatment"))
    reward = first[treated]
    for r in first[~treated].itertuples():
        kind = arms.KINDS.get(r.arm)
        link = kind.link if kind is not None else None
        if kind is not None and kind.role == "control":   # a control_grid variant names its control
            paired = r.control_id if isinstance(r.control_id, str) and r.control_id != r.config_id else r.config_id
            serves = reward[reward[link] == paired]["config_id"]
        else:
            serves = reward[reward[link] == r.config_id]["config_id"] if link in first else reward["config_id"]
        due[r.config_id] = max((due.get(c, 0) for c in serves), default=0)
    return due


def decisions_table(view: SequentialView) -> pd.DataFrame:
    """One row per configuration: its decision, where it was taken, its looks' statistics."""
    rows = []
    for r in view.decisions.itertuples():
        path = view.looks[view.looks["config_id"] == r.config_id] if len(view.looks) else view.looks
        rows.append({
            "configuration": str(r.label).rsplit(" [", 1)[0], "id": r.config_id, "decision": r.decision,
            "at seeds": "–" if pd.isna(r.decided_at) else int(r.decided_at),
            "looks (n: mean diff, z vs ±boundary)": "; ".join(
                f"{int(k.n)}: {k.mean_diff:+.2f}, z {k.z:+.2f}"
                + (f" (skew-corrected {k.z_skew:+.2f})" if "z_skew" in path and pd.notna(k.z_skew) else "")
                + (f" vs ±{k.upper:.2f}" if k.upper < float("inf") else " (no claim yet)")
                for k in path.itertuples()),
            "what the claim rests on": r.rests_on or "–",
            "launch acted on": r.launch_decision or "–",
        })
    return pd.DataFrame(rows)


def plot_paths(view: SequentialView, path: Path) -> Path | None:
    """Each configuration's z statistic look by look, against the efficacy boundaries."""
    if view.looks.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = view.design
    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=110)
    bound = [c if c < float("inf") else float("nan") for c in d.efficacy]     # no claim at that look
    ax.plot(d.looks, bound, color="black", lw=1.2, ls="--", marker="_", label="boundary: beats (z above)")
    ax.plot(d.looks, [-c for c in bound], color="black", lw=1.2, ls=":", marker="_", label="boundary: worse (z below)")
    ax.axhline(0, color="0.7", lw=0.8)
    markers = {"beats": "^", "worse": "v", "equivalent": "s", "futile": "x", "undecided": "o", "continue": ".",
               "failed": "X"}
    for cid, rows in view.looks.groupby("config_id", sort=False):
        rows = rows.sort_values("n")
        decision = view.decisions.set_index("config_id").loc[cid, "decision"]
        label = str(rows["label"].iloc[0]).rsplit(" [", 1)[0][:40]
        line, = ax.plot(rows["n"], rows["z"], marker=".", lw=1.2, label=f"{label}: {decision}")
        ax.plot(rows["n"].iloc[-1], rows["z"].iloc[-1], marker=markers.get(decision, "o"), ms=9,
                color=line.get_color())
    ax.set_xlabel("seeds at the look")
    ax.set_ylabel("z (paired difference against the control)")
    ax.set_xticks(list(d.looks))
    ax.set_title("Sequential looks: each configuration's statistic and the boundaries", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
