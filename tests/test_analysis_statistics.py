"""The statistics registry: one new entry reaches every output of `rewardsweep report`."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest

from rewardsweep.analysis import statistics
from rewardsweep.analysis.collect import collect
from rewardsweep.analysis.formats import pts
from rewardsweep.analysis.statistics import CONSOLE, PAIRED, PER_CONFIG, STATISTICS, TABLES, VS_CONTROL, Statistic, View
from rewardsweep.analysis.summary import summarize
from rewardsweep.cli import main
from tests.analysis_helpers import write_study

MEDIAN_DIFF = Statistic(
    "median paired difference", ("median_diff",), lambda a, b, s: np.median(a - b, axis=-1), over=PAIRED,
    views=(View(VS_CONTROL, "median diff", lambda r: pts(r["median_diff"])),
           View(CONSOLE, "med diff", lambda r: pts(r["median_diff"]))),
    explain="median diff: the median of the per-seed differences, robust to one odd seed.")
MEDIAN_DELTA = Statistic(
    "median delta", ("median_delta",), lambda x, s: np.median(x, axis=-1),
    views=(View(PER_CONFIG, "median Δ", lambda r: pts(r["median_delta"])),
           View(CONSOLE, "med Δ", lambda r: pts(r["median_delta"]))),
    explain="median Δ: the median seed.")


def _expected(truth, stat: Statistic) -> dict[tuple[str, str], float]:
    """The toy statistic computed here from the generated deltas, by (config, arm)."""
    delta = truth["delta"]
    by = {}
    for (cid, arm, seed), d in delta.items():
        by.setdefault((cid, arm), {})[seed] = d
    ctrl = by[(truth["control_id"], "mle")]
    if stat is MEDIAN_DELTA:
        return {k: float(np.median([v[s] for s in sorted(v)])) for k, v in by.items()}
    return {(cid, "reward"): float(np.median([by[(cid, "reward")][s] - ctrl[s]
                                              for s in sorted(set(by[(cid, "reward")]) & set(ctrl))]))
            for cid in truth["config_ids"]}


@pytest.mark.parametrize("stat", [MEDIAN_DIFF, MEDIAN_DELTA], ids=["paired", "per-configuration"])
def test_one_entry_reaches_every_output(stat, tmp_path, monkeypatch):
    truth = write_study(tmp_path / "s", effects=(0.01, 0.0, -0.008), seeds=5,
                        bad={(0, 2): "failed", ("control", 4): "diverged"})
    monkeypatch.setattr(statistics, "STATISTICS", STATISTICS + (stat,))
    (column,) = stat.columns
    want = _expected(truth, stat)

    table = summarize(collect([tmp_path / "s"])).table.set_index(["config_id", "arm"])
    assert table[column].dropna().to_dict() == pytest.approx(want, rel=1e-12)    # the DataFrame

    monkeypatch.setenv("COLUMNS", "200")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["report", str(tmp_path / "s"), "--no-plots"]) == 0
    rep = tmp_path / "s" / "report"
    csv = pd.read_csv(rep / "summary.csv").set_index(["config_id", "arm"])       # the CSV
    assert csv[column].dropna().to_dict() == pytest.approx(want, rel=1e-12)
    md, html = (rep / "report.md").read_text(), (rep / "report.html").read_text()
    table_view = next(v for v in stat.views if v.table != CONSOLE)
    console_view = next(v for v in stat.views if v.table == CONSOLE)
    md_lines = md.splitlines()
    first = next(i for i, line in enumerate(md_lines) if f" {table_view.header} |" in line)   # the markdown
    cells = [c.strip() for c in md_lines[first].strip("|").split("|")]
    at = cells.index(table_view.header)
    rows = {}
    for line in md_lines[first + 2:]:
        if not line.startswith("|"):
            break
        parts = [c.strip() for c in line.strip("|").split("|")]
        if (parts[0], parts[1] if PER_CONFIG == table_view.table else "reward") in want:
            rows[parts[0]] = parts[at]
    assert rows == {cid: pts(v) for (cid, _), v in want.items()}
    assert stat.explain in md
    assert f"<th>{table_view.header}</th>" in html and stat.explain in html                  # the HTML
    for (cid, _), v in want.items():
        assert f"<td>{pts(v)}</td>" in html
    lines = out.getvalue().splitlines()                                                       # the console
    head = next(line for line in lines if line.lstrip().startswith("configuration"))
    assert console_view.header in head
    start = head.index(console_view.header)
    end = start + len(console_view.header)
    for (cid, _), v in want.items():
        line = next(x for x in lines if f"[{cid}]" in x)           # its row (the headline comes after)
        assert pts(v) in line[:end + 1] and line[end - len(pts(v)):end] == pts(v)   # right-aligned under its header


def test_every_entry_is_well_formed_and_fills_its_columns(tmp_path):
    names = [c for st in STATISTICS for c in st.columns]
    assert len(names) == len(set(names))
    assert len({st.name for st in STATISTICS}) == len(STATISTICS)
    assert all(v.table in TABLES and v.header for st in STATISTICS for v in st.views)
    write_study(tmp_path / "s", effects=(0.01,), seeds=3)
    table = summarize(collect([tmp_path / "s"])).table
    assert set(names) <= set(table.columns)
    # a statistic with a fn that applies to no row keeps its fill value (no --margin: no TOST)
    assert table["p_equiv"].isna().all() and (table.loc[table.arm == "mle", "wilcoxon_note"] == "").all()
