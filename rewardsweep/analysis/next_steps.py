"""What to do after reading a report: the "Next steps" lines at the end of every output.

Which comparisons are decided, which need how many more seeds (with the launch command
that adds them), the smallest effect the current seeds can detect, and what "no
evidence" does and does not say (an equivalence test when a margin is given).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rewardsweep.analysis import stats
from rewardsweep.analysis.summary import Summary
from rewardsweep.study import arms as kinds

MAX_NAMED = 8        # configurations named per line; the rest are counted


@dataclass(frozen=True)
class TopUp:
    """How to launch more seeds of this study: the spec and, if needed, ``--storage``."""
    spec: str                        # the spec path as the user can type it
    storage: str | None              # --storage so the launch lands in this study folder
    seeds: int | list | None         # the spec's ``seeds:`` as written (a count or a list)

    def command(self, extra: str = "") -> str:
        parts = ["rewardsweep", "launch", shlex.quote(self.spec)]
        if self.storage:
            parts += ["--storage", shlex.quote(self.storage)]
        return " ".join(parts) + (f" {extra}" if extra else "")

    def raise_to(self, total: int) -> str:
        """The edit of ``seeds:`` that gives ``total`` seeds."""
        if isinstance(self.seeds, list):
            have = [int(x) for x in self.seeds]
            new, k = [], max(have, default=-1) + 1
            while len(have) + len(new) < total:
                if k not in have:
                    new.append(k)
                k += 1
            return f"add seeds {', '.join(map(str, new))} to `seeds:` in {self.spec}"
        return f"set `seeds: {total}` in {self.spec}" + (f" (now {self.seeds})" if self.seeds else "")


def _names(rows: pd.DataFrame, fmt=None) -> str:
    fmt = fmt or (lambda r: r["label"])
    named = [fmt(r) for _, r in rows.head(MAX_NAMED).iterrows()]
    more = len(rows) - len(named)
    return "; ".join(named) + (f"; and {more} more (summary.csv)" if more > 0 else "")


def _p(x: float) -> str:
    return f"{x * 100:.2f}"


def next_steps(summary: Summary, topup: TopUp | None, target: str = "STUDY",
               has_val_counts: bool = False) -> list[str]:
    """The lines of the "Next steps" section (plain text, one thought per line).
    ``has_val_counts``: some trials kept per-image val counts (``--bootstrap-images`` can run)."""
    t, s = summary.table, summary.settings
    rew = t[t["arm"].isin(kinds.named("treatment"))]
    lines: list[str] = []
    flagged = rew[rew["treatment"].fillna("") != ""] if "treatment" in rew else rew.iloc[:0]
    if len(flagged):
        lines.append(f"Not reward tuning ({len(flagged)}): fix the setting before adding seeds, more seeds "
                     "of these measure something else (docs/method.md, 'Is my reward arm reward tuning?'): "
                     + _names(flagged, lambda r: f"{r['label']}: {r['treatment']}"))
    unresolved = rew[(rew["rise_outcome"] == "too few seeds to tell") & (rew["treatment"].fillna("") == "")] \
        if "rise_outcome" in rew else rew.iloc[:0]
    if len(unresolved):
        lines.append(f"Too few seeds to tell whether the reward rose ({len(unresolved)}): more seeds, or more "
                     "steps, settle it (docs/method.md, 'Is my reward arm reward tuning?'): " + _names(unresolved))
    if summary.sequential is not None:
        return lines + _sequential_lines(summary, topup)
    effect = f"{s.effect * 100:g} points"
    if not summary.has_control:
        lines.append("Nothing can be decided against cross-entropy: the study has no control arm. "
                     "Add `control: mle` to the spec and launch it again (only the control's trials run).")
    decided = rew[rew["verdict"].isin(["beats control", "worse"])]
    if len(decided):
        lines.append(f"Decided ({len(decided)} of {len(rew)}; adjusted p < {s.alpha:g}): " + _names(
            decided, lambda r: f"{r['label']}: {r['verdict']} by {r['diff_mean'] * 100:+.2f} points"))
    equivalent = rew[rew["equivalent"].fillna(False).astype(bool)] if s.margin else rew.iloc[:0]
    if len(equivalent):
        lines.append(f"Equivalent to the control within ±{s.margin * 100:g} points (TOST, adjusted p < "
                     f"{s.alpha:g}): " + _names(equivalent))
    open_ = rew[(rew["verdict"] == "no evidence") & ~rew.index.isin(equivalent.index)]
    short = open_[open_["seeds_needed"].notna() & (open_["seeds_used"] < open_["seeds_needed"])]
    enough = open_[open_["seeds_needed"].notna() & (open_["seeds_used"] >= open_["seeds_needed"])]
    if len(short):
        more = (short["seeds_needed"] - short["seeds_used"]).astype(int)
        lines.append(f"Undecided for lack of seeds ({len(short)}): " + _names(
            short.assign(_more=more), lambda r: f"{r['label']}: {int(r['seeds_used'])} seeds, "
                                                f"needs {int(r['_more'])} more to detect {effect}"))
        n_now = len(summary.seeds)
        total = n_now + int(more.max())
        m = int(np.isfinite(rew["p_ttest"].to_numpy(float)).sum()) or 1
        sds = short["diff_sd"].where(short["diff_sd"].notna(), short["sd_delta"])
        strict = max(stats.seeds_needed(sd, s.effect, s.alpha / m, s.power) for sd in sds)
        if topup is not None:
            lines.append(f"Top up: {topup.raise_to(total)}, then run `{topup.command()}` (only the new "
                         "(configuration, seed) pairs run, for every configuration and the control; "
                         f"then `rewardsweep report {target}` again).")
        else:
            lines.append(f"Top up: raise `seeds:` to {total} in the spec you launched and launch it "
                         "again (only the new seeds run; this study folder has no spec.yaml).")
        if m > 1 and np.isfinite(strict) and strict > short["seeds_needed"].max():
            lines.append(f"Seeds needed are for one test at alpha {s.alpha:g}; the verdicts are adjusted "
                         f"over {m} comparisons, and at Bonferroni's alpha/{m} (Holm's strictest step) "
                         f"the neediest of these needs {int(strict)} paired seeds.")
    if len(enough):
        lines.append(
            f"No evidence although the seeds suffice ({len(enough)}; seeds column used/needed, e.g. "
            f"{int(enough['seeds_used'].iloc[0])}/{int(enough['seeds_needed'].iloc[0])}): "
            + _names(enough) + f". Enough seeds means a true difference of {effect} would be "
            f"detected with probability {s.power:g} by one test at alpha {s.alpha:g}; it was not, "
            f"so the difference is probably smaller than {effect} (or was missed: power is not 1, "
            "and the verdict is adjusted for every comparison). More seeds of these answer little.")
    det = rew["detectable"].to_numpy(float)
    det = det[np.isfinite(det)]
    if det.size:
        lines.append(
            f"Smallest effect the current seeds detect (power {s.power:g}, alpha {s.alpha:g}, from "
            f"each configuration's SD): {_p(det.min())} to {_p(det.max())} points (median "
            f"{_p(float(np.median(det)))}); per configuration in the seeds table.")
    if s.margin:
        tested = rew[np.isfinite(rew["p_equiv"].to_numpy(float))]
        not_eq = tested[~tested["equivalent"].astype(bool) & (tested["verdict"] == "no evidence")]
        if len(not_eq):
            lines.append(f"Neither different nor shown equivalent within ±{s.margin * 100:g} points "
                         f"({len(not_eq)}): " + _names(not_eq) + ". Inconclusive: more seeds can settle it.")
    elif len(open_):
        lines.append(f"\"No evidence\" is not evidence of no effect. To test whether a configuration is "
                     f"equivalent to the control within a margin you care about, run `rewardsweep report "
                     f"{target} --margin POINTS` (TOST equivalence test, adjusted like the verdicts).")
    if "img_survives" in rew:
        dec = rew[rew["img_survives"].isin(["yes", "no"])]
        lost = dec[dec["img_survives"] == "no"]
        if len(dec):
            lines.append(f"Val-image bootstrap: {len(dec) - len(lost)} of {len(dec)} decided verdicts survive "
                         "resampling the val images as well as the seeds"
                         + (". Not surviving: " + _names(lost) + ". Their verdict may hinge on a few val "
                            "images; a larger (or another) val split would settle it." if len(lost) else "."))
    elif has_val_counts:
        lines.append(f"Only seed variance is counted above; `rewardsweep report {target} --bootstrap-images` "
                     "also resamples the val images, and says which verdicts survive.")
    failed = rew[(rew["n_failed"] > 0)]
    if len(failed) and topup is not None:
        lines.append(f"{len(failed)} configuration(s) have failed seeds: `{topup.command('--retry-failed')}` "
                     "reruns them.")
    if not lines:
        lines.append("Nothing to decide: no configuration was compared with the control.")
    return lines


def _sequential_lines(summary: Summary, topup: Any) -> list[str]:
    """A sequential study's next steps: its decisions, and relaunching (never a hand top-up)."""
    d = summary.sequential.decisions
    lines = []
    for decision in ("beats", "worse", "equivalent", "futile", "undecided", "failed"):
        rows = d[d["decision"] == decision]
        if len(rows):
            lines.append(f"Sequential {decision} ({len(rows)}): " + "; ".join(
                str(r.label) + ("" if pd.isna(r.decided_at) else f" at {int(r.decided_at)} seeds")
                for r in rows.itertuples()))
    open_ = d[d["decision"] == "continue"]
    if len(open_):
        command = f"`{topup.command()}`" if topup is not None else "the launch command again"
        lines.append(f"Open ({len(open_)}): run {command}; it runs only their next looks and stops each "
                     "when it is decided. Do not raise the seeds by hand: the design fixes them, and "
                     "looking at fixed-n results between looks is what the design protects against.")
    lines.append("The verdict columns of the tables are fixed-n tests of the seeds that ran; in a sequential "
                 "study seeds were added while a result was open, so those p-values do not hold their level: "
                 "the sequential decisions above do (docs/report.md, 'Sequential studies').")
    if summary.sequential.disagreements:
        lines.append("The records give other decisions than launch acted on for "
                     + ", ".join(summary.sequential.disagreements) + ": records changed after launch read them.")
    return lines
