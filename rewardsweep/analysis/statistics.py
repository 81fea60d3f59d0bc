"""The report's statistics, each named once: what it computes, the summary columns it fills,
and where the report shows it and how (docs/report.md, "Adding a statistic").

The numbers come from the pure functions of ``stats.py`` (scipy/statsmodels); this registry
only names and places them, the way rliable passes an aggregate function in. ``summary.py``
computes every entry that has a ``fn`` (and fills the columns of those that have none with
its family-wide steps: adjustment across configurations, verdicts, power); ``render.py``
builds the per-configuration table, the control table, the seeds table, the console table
and the explanation under each table from the entries' ``views`` and ``explain``;
``summary.csv`` holds every entry's ``columns``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rewardsweep.analysis import stats
from rewardsweep.analysis.formats import ci, count, diff, num, pm, pts, pval
from rewardsweep.analysis.robustness import robustness_columns
from rewardsweep.study import arms as kinds

if TYPE_CHECKING:
    import pandas as pd

    from rewardsweep.analysis.summary import Settings

# Where a view appears.
PER_CONFIG = "per-configuration"   # "Delta mIoU per configuration" table, every arm
VS_CONTROL = "vs-control"          # "Against the control, paired by seed" table, reward arms
SEEDS = "seeds"                    # "Seeds and failures" table
CONSOLE = "console"                # the table printed by `rewardsweep report`
TABLES = (PER_CONFIG, VS_CONTROL, SEEDS, CONSOLE)

# What ``fn`` is computed over.
PAIRED = "paired"                  # (configuration, control) delta mIoU on the seeds both finished

NAN = float("nan")


@dataclass(frozen=True)
class View:
    """One column of one rendered table: its header and how a summary row becomes its text."""

    table: str                                      # one of TABLES
    header: str
    text: Callable[[Mapping[str, Any]], str]        # a summary row (column -> value) -> the cell
    style: Callable[[Mapping[str, Any]], str] | None = None   # console: the cell's rich style
    narrow: bool = True                             # console: kept when too narrow for labels
    align: str = "right"                            # "left" for words (verdicts), numbers right


@dataclass(frozen=True)
class Statistic:
    """A statistic of one configuration, or of one configuration against its control.

    ``fn`` is pure and vectorised over configurations, seeds on the last axis:
    ``fn(x, settings)`` with ``x`` ``[configurations, seeds]`` (the finished seeds' finite
    values of the trial column ``over``, at least one each), or, when ``over`` is
    :data:`PAIRED`, ``fn(a, b, settings)`` with the configuration's and its control's delta
    mIoU on the same seeds (``a[i, j]`` and ``b[i, j]`` are seed j of comparison i; there
    may be no seed at all: return NaN there). It returns one array ``[configurations]``
    per name in ``columns``, a tuple when there are several. Without ``fn`` the columns are
    filled by a family-wide step of ``summary.py``; the entry still names, fills and shows them.
    """

    name: str
    columns: tuple[str, ...]                        # summary.csv columns, in fn's output order
    fn: Callable[..., Any] | None = None
    over: str = "delta_miou"                        # a trial column, or PAIRED
    views: tuple[View, ...] = ()
    explain: str | Callable[[Settings], str] = ""   # sentence(s) under the table(s) it is shown in
    fill: Any = NAN                                 # where it does not apply; a tuple: per column
    when: Callable[[Settings], bool] | None = None  # computed only when (say, --margin given)
    shown: Callable[[pd.DataFrame], bool] | None = None   # views shown only when, on the summary table

    def explanation(self, settings: Settings) -> str:
        return self.explain(settings) if callable(self.explain) else self.explain

    def fills(self) -> tuple:
        """The value of each column on a row the statistic does not apply to."""
        return self.fill if isinstance(self.fill, tuple) else (self.fill,) * len(self.columns)

    def is_shown(self, table: pd.DataFrame) -> bool:
        return self.shown is None or bool(self.shown(table))


def per_row(fn: Callable[..., tuple]) -> Callable[..., tuple]:
    """Lift a 1-D function returning a tuple of floats (``stats.bca_interval``) to the
    registry's ``[configurations, seeds]`` convention, one call per configuration."""
    def lifted(*arrays):
        *data, settings = arrays
        out = [fn(*(x[i] for x in data), settings) for i in range(len(data[0]))]
        cols = np.array(out, dtype=float).reshape(len(out), -1)
        return tuple(cols[:, j] for j in range(cols.shape[1]))
    return lifted


def _has_control(t: pd.DataFrame) -> bool:
    return bool(t["arm"].isin(kinds.named("control")).any())


def _any_text(column: str) -> Callable[[pd.DataFrame], bool]:
    return lambda t: column in t and bool((t[column].fillna("").astype(str) != "").any())


def _any_finite(column: str) -> Callable[[pd.DataFrame], bool]:
    return lambda t: column in t and bool(np.isfinite(t[column].to_numpy(float)).any())


_VERDICT_STYLE = {"beats control": "green", "worse": "red", "control": "blue", "reference": "blue"}


def _verdict_style(r) -> str:
    v = r["verdict"]
    return "yellow" if "[" in v else _VERDICT_STYLE.get(v, "")   # "[not reward tuning]": flagged


def _verdict_text(r) -> str:
    """The verdict, saying next to "beats control" when that control did not train (it is
    not distinguishable from the no-op reference: ``arms.add_reference``)."""
    v = r["verdict"]
    if v.startswith("beats control") and bool(r.get("control_like_noop", False)):
        return f"{v} (control ≈ no-op)"
    return v


def _seeds_cell(r) -> str:
    used = count(r["seeds_used"])
    text = used if kinds.role(r["arm"]) != "treatment" else f"{used}/{count(r['seeds_needed'])}"
    return text + "!" if r["underpowered"] else text


def _power_text(s: Settings) -> str:
    return (f"Seeds needed to detect {s.effect * 100:g} mIoU points with a two-sided t-test "
            f"at alpha {s.alpha:g} and power {s.power:g}, from the observed SD of the paired "
            "differences (or of delta mIoU where there is no control). Detectable now: the smallest true "
            f"difference the seeds used detect with power {s.power:g} at alpha {s.alpha:g} "
            "(minimum detectable effect, points).")


STATISTICS: tuple[Statistic, ...] = (
    # ---------------------------------------------------------------- one configuration
    Statistic("mean", ("mean_delta",), lambda x, s: np.mean(x, axis=-1),
              views=(View(PER_CONFIG, "mean Δ", lambda r: pts(r["mean_delta"])),
                     View(CONSOLE, "Δ mIoU ±CI", lambda r: pm(r["mean_delta"], r["ci_low"], r["ci_high"])))),
    Statistic("sd", ("sd_delta",), lambda x, s: stats.sd(x),
              views=(View(PER_CONFIG, "SD", lambda r: pts(r["sd_delta"], False)),
                     View(CONSOLE, "SD", lambda r: pts(r["sd_delta"], False), narrow=False))),
    Statistic("se", ("se_delta",), lambda x, s: stats.se(x),
              views=(View(PER_CONFIG, "SE", lambda r: pts(r["se_delta"], False)),)),
    Statistic("t interval", ("ci_low", "ci_high"), lambda x, s: stats.t_interval(x, s.confidence)[1:],
              views=(View(PER_CONFIG, "95% t-CI", lambda r: ci(r["ci_low"], r["ci_high"])),)),
    Statistic("BCa interval", ("bca_low", "bca_high"),
              per_row(lambda x, s: stats.bca_interval(x, s.confidence, seed=s.bootstrap_seed)),
              views=(View(PER_CONFIG, "95% BCa CI", lambda r: ci(r["bca_low"], r["bca_high"])),),
              explain=f"BCa interval only with {stats.BCA_MIN_N} or more seeds."),
    Statistic("min", ("min_delta",), lambda x, s: np.min(x, axis=-1),
              views=(View(PER_CONFIG, "min", lambda r: pts(r["min_delta"])),)),
    Statistic("max", ("max_delta",), lambda x, s: np.max(x, axis=-1),
              views=(View(PER_CONFIG, "max", lambda r: pts(r["max_delta"])),)),
    Statistic("final mIoU", ("mean_final",), lambda x, s: np.mean(x, axis=-1), over="miou_final",
              views=(View(PER_CONFIG, "final mIoU", lambda r: pts(r["mean_final"], False)),)),
    Statistic("best mIoU", ("mean_best_secondary",), lambda x, s: np.mean(x, axis=-1), over="miou_best",
              views=(View(PER_CONFIG, "best (secondary)", lambda r: pts(r["mean_best_secondary"], False)),),
              explain="Best mIoU during tuning (mean_best_secondary) picks the best evaluation on the same "
                      "validation split it is measured on: it is optimistic by construction and reported only "
                      "as a secondary number; the primary outcome is delta mIoU after the last step."),
    Statistic("vs no-op", ("ref_diff_mean", "ref_ci_low", "ref_ci_high", "ref_n"),   # arms.add_reference
              views=(View(PER_CONFIG, "vs no-op (95% CI)",
                          lambda r: diff(r["ref_diff_mean"], r["ref_ci_low"], r["ref_ci_high"])),
                     View(CONSOLE, "vs no-op ±CI",
                          lambda r: pm(r["ref_diff_mean"], r["ref_ci_low"], r["ref_ci_high"]))),
              shown=_any_finite("ref_diff_mean")),
    Statistic("vs best CE", ("best_diff_mean", "best_ci_low", "best_ci_high"),   # arms.add_best_control
              views=(View(CONSOLE, "vs best CE ±CI",
                          lambda r: pm(r["best_diff_mean"], r["best_ci_low"], r["best_ci_high"]), narrow=False),),
              shown=_any_finite("best_diff_mean")),
    # ---------------------------------------------------------------- against the control
    Statistic("paired t-test", ("diff_mean", "diff_ci_low", "diff_ci_high", "t", "p_ttest"),
              lambda a, b, s: stats.paired_ttest(a, b, s.confidence), over=PAIRED,
              views=(View(VS_CONTROL, "mean diff", lambda r: pts(r["diff_mean"])),
                     View(VS_CONTROL, "95% CI", lambda r: ci(r["diff_ci_low"], r["diff_ci_high"])),
                     View(VS_CONTROL, "t-test p", lambda r: pval(r["p_ttest"])),
                     View(CONSOLE, "vs ctrl ±CI", lambda r: pm(r["diff_mean"], r["diff_ci_low"], r["diff_ci_high"])),
                     View(CONSOLE, "p adj", lambda r: pval(r["p_adj"]))),
              explain="mean diff: configuration minus control on the same seed, averaged; its "
                      "95% CI from the paired t-test.",
              shown=_has_control),
    Statistic("SD of the differences", ("diff_sd",), lambda a, b, s: stats.sd(a - b), over=PAIRED),
    Statistic("skew-corrected test", ("p_skew", "skewness", "p_signflip", "n_outlying"),
              lambda a, b, s: robustness_columns(a - b), over=PAIRED,
              views=(View(VS_CONTROL, "skew-corr. p", lambda r: pval(r["p_skew"])),
                     View(VS_CONTROL, "sign-flip p", lambda r: pval(r["p_signflip"]))),
              explain="skew-corr. p: Hall's skewness-corrected t-test; a verdict needs it and the t-test "
                      "(the adjusted p is the larger of the two, adjusted). sign-flip p: the exact sign-flip "
                      "test, valid for any symmetric distribution of the differences (up to 30 seeds).",
              shown=_has_control),
    Statistic("Wilcoxon", ("w", "p_wilcoxon", "wilcoxon_note"), lambda a, b, s: stats.wilcoxon_test(a, b),
              over=PAIRED, fill=(NAN, NAN, ""),
              views=(View(VS_CONTROL, "Wilcoxon p", lambda r: pval(r["p_wilcoxon"])),),
              explain="Wilcoxon p: a check that does not assume normal differences."),
    Statistic("P(better)", ("p_improve",), lambda a, b, s: stats.prob_improvement(a, b), over=PAIRED,
              views=(View(VS_CONTROL, "P(better)", lambda r: num(r["p_improve"])),
                     View(CONSOLE, "P(>)", lambda r: num(r["p_improve"]), narrow=False)),
              explain="P(better): fraction of paired seeds on which the configuration beat the control "
                      "(ties count 1/2).",
              shown=_has_control),
    Statistic("TOST", ("p_equiv",), per_row(lambda a, b, s: (stats.equivalence_test(a, b, s.margin),)),
              over=PAIRED, when=lambda s: bool(s.margin)),
    # ---------------------------------------------------------------- family-wide (summary.py)
    Statistic("adjusted p", ("p_adj",),
              views=(View(VS_CONTROL, "adjusted p", lambda r: pval(r["p_adj"])),)),
    Statistic("verdict", ("verdict",),
              views=(View(VS_CONTROL, "verdict", _verdict_text, align="left"),
                     View(CONSOLE, "verdict", _verdict_text, style=_verdict_style, align="left")),
              explain="The verdict uses the adjusted p (the t-test and the skew-corrected test must both reject) and the sign of the mean difference. "
                      "'(control ≈ no-op)': the control's paired interval against the no-op reference "
                      "contains 0, so it did not measurably train and 'beats control' means 'beats not "
                      "training' (see the comparison with the best cross-entropy).",
              fill="", shown=_has_control),
    Statistic("equivalence", ("p_equiv_adj", "equivalent"),
              views=(View(VS_CONTROL, "TOST adjusted p", lambda r: pval(r["p_equiv_adj"])),
                     View(VS_CONTROL, "equivalent", lambda r: "yes" if r["equivalent"] else "no", align="left")),
              explain="TOST adjusted p: the equivalence test within the margin (--margin), adjusted "
                      "like the verdicts; equivalent when below alpha.",
              shown=_any_finite("p_equiv")),
    Statistic("adjusted interval", ("adj_level", "diff_adj_low", "diff_adj_high")),
    Statistic("what a verdict rests on", ("rests_on",), fill="",
              views=(View(VS_CONTROL, "rests on", lambda r: r["rests_on"] or "–", align="left"),),
              explain="rests on: for a 'beats control' or 'worse', what the seeds show about the "
                      "assumptions it needs (docs/report.md, 'What a verdict rests on').",
              shown=_any_text("rests_on")),
    Statistic("power", ("seeds_needed", "detectable"),
              views=(View(SEEDS, "seeds needed", lambda r: count(r["seeds_needed"])),
                     View(SEEDS, "detectable now", lambda r: pts(r["detectable"], False)),
                     View(CONSOLE, "seeds", _seeds_cell,
                          style=lambda r: "yellow" if r["underpowered"] else "")),
              explain=_power_text),
)
