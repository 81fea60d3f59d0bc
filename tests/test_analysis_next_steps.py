"""The report's "Next steps": decided comparisons, a top-up command that works as printed,
the smallest detectable effect, and equivalence (TOST) told apart from "no evidence"."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from rewardsweep.analysis import stats
from rewardsweep.cli import build_parser, main
from tests.analysis_helpers import write_study

ROOT = Path(__file__).resolve().parents[1]
# decided up and down, two small effects (undecided or equivalent), one lost seed
EFFECTS = (0.012, 0.004, 0.0005, -0.01)


@pytest.fixture()
def study(tmp_path):
    folder = tmp_path / "runs" / "toy"
    truth = write_study(folder, effects=EFFECTS, seeds=6, bad={(0, 3): "failed"})
    spec = (ROOT / "search_spaces" / "smoke.yaml").read_text()
    spec = spec.replace("name: smoke", "name: toy").replace("seeds: 2", "seeds: 6")
    (folder / "spec.yaml").write_text(spec)
    return folder, truth


def _steps(md: str) -> list[str]:
    section = md.split("## Next steps", 1)[1].split("\n## ", 1)[0]
    return [line[2:] for line in section.splitlines() if line.startswith("- ")]


def test_top_up_command_works_as_printed(study, tmp_path, monkeypatch, capsys):
    """Report from another folder (so the spec's relative storage would miss the study), do
    what the top-up line says, and check the printed launch lands in this study folder and
    plans the raised number of seeds, without starting Ray (a dry run)."""
    folder, _ = study
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["report", str(folder), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "Next steps" in out
    steps = _steps((folder / "report" / "report.md").read_text())
    assert (folder / "report" / "report.html").read_text().count("Next steps") == 1
    top = next(s for s in steps if s.startswith("Top up:"))
    total, spec_path = re.search(r"set `seeds: (\d+)` in (\S+) \(now 6\)", top).groups()
    command = re.search(r"run `([^`]+)`", top).group(1)
    argv = shlex.split(command)
    assert argv[:3] == ["rewardsweep", "launch", spec_path] and Path(spec_path).is_file()
    # the user's edit, as the line says
    spec = Path(spec_path)
    spec.write_text(re.sub(r"(?m)^seeds: 6$", f"seeds: {total}", spec.read_text()))
    args = build_parser().parse_args(argv[1:])
    from rewardsweep.sweep import ray_cluster
    from rewardsweep.sweep.launch import launch

    monkeypatch.setattr(ray_cluster, "init_ray", lambda *a, **k: pytest.fail("dry run started Ray"))
    result = launch(args.spec, storage=args.storage, dry_run=True)
    assert Path(result.study_dir).resolve() == folder.resolve()
    assert result.planned == 3 * int(total)        # smoke: 2 configurations + the control
    # the total is the current seeds plus the most any undecided configuration needs more
    s = pd.read_csv(folder / "report" / "summary.csv")
    open_ = s[(s.verdict == "no evidence") & (s.seeds_used < s.seeds_needed)]
    assert len(open_) and int(total) == 6 + int((open_.seeds_needed - open_.seeds_used).max())
    # from the study's own folder the spec lands by itself: no --storage
    monkeypatch.chdir(folder.parent.parent)
    assert main(["report", "runs/toy", "--no-plots"]) == 0
    top = next(s for s in _steps((folder / "report" / "report.md").read_text()) if s.startswith("Top up:"))
    assert "run `rewardsweep launch runs/toy/spec.yaml`" in top


def test_decided_detectable_and_no_evidence_lines(study, capsys):
    folder, truth = study
    assert main(["report", str(folder), "--no-plots"]) == 0
    s = pd.read_csv(folder / "report" / "summary.csv").set_index("config_id")
    steps = _steps((folder / "report" / "report.md").read_text())
    decided = next(x for x in steps if x.startswith("Decided"))
    assert truth["config_ids"][0] in decided and "beats control" in decided
    assert truth["config_ids"][3] in decided and "worse" in decided
    # detectable now = minimum detectable effect at the seeds used (statsmodels where finite)
    for cid in truth["config_ids"]:
        row = s.loc[cid]
        es = TTestPower().solve_power(nobs=row.seeds_used, alpha=0.05, power=0.8)
        assert row.detectable == pytest.approx(es * row.diff_sd, rel=1e-6)
    assert any(x.startswith("Smallest effect the current seeds detect") for x in steps)
    assert any("not evidence of no effect" in x and "--margin POINTS" in x for x in steps)
    assert any("--retry-failed" in x for x in steps)        # config 0 lost seed 3
    assert "detectable now" in (folder / "report" / "report.md").read_text()


def test_margin_gives_an_equivalence_test(study, capsys):
    folder, truth = study
    assert main(["report", str(folder), "--no-plots", "--margin", "1.0"]) == 0
    s = pd.read_csv(folder / "report" / "summary.csv")
    rew = s[s.arm == "reward"].set_index("config_id")
    recs = pd.read_csv(folder / "report" / "trials.csv")
    fin = recs[recs.status == "finished"]
    ctrl = fin[fin.arm == "mle"].set_index("seed")["delta_miou"]
    p = {}
    for cid in truth["config_ids"]:
        a = fin[(fin.config_id == cid) & (fin.arm == "reward")].set_index("seed")["delta_miou"]
        seeds = sorted(set(a.index) & set(ctrl.index))
        p[cid] = ttost_paired(a.loc[seeds].to_numpy(), ctrl.loc[seeds].to_numpy(), -0.01, 0.01)[0]
        assert rew.loc[cid, "p_equiv"] == pytest.approx(p[cid], rel=1e-10)
    adj = multipletests(list(p.values()), method="holm")[1]
    np.testing.assert_allclose(rew.loc[list(p), "p_equiv_adj"], adj, rtol=1e-10)
    assert list(rew.loc[list(p), "equivalent"]) == list(adj < 0.05)
    assert rew.loc[truth["config_ids"][2], "equivalent"]          # a true effect of 0.05 points
    assert not rew.loc[truth["config_ids"][0], "equivalent"]      # +1.2 points is not within 1
    steps = _steps((folder / "report" / "report.md").read_text())
    eq = next(x for x in steps if x.startswith("Equivalent to the control within ±1 points"))
    assert truth["config_ids"][2] in eq and "TOST" in eq
    assert "TOST adjusted p" in (folder / "report" / "report.md").read_text()
    assert main(["report", str(folder), "--margin", "0"]) == 2
    assert "--margin 0" in capsys.readouterr().err


def test_enough_seeds_but_no_evidence_is_explained():
    """The 5/3 case: seeds used >= needed next to "no evidence" gets its own line."""
    from rewardsweep.analysis.next_steps import next_steps
    from rewardsweep.analysis.summary import Settings, Summary

    table = pd.DataFrame([
        {"config_id": "c1", "arm": "reward", "label": "c1 kind=greedy", "verdict": "no evidence",
         "seeds_used": 5, "seeds_needed": 3.0, "diff_sd": 0.002, "sd_delta": 0.003, "p_ttest": 0.4,
         "diff_mean": 0.0004, "detectable": stats.min_detectable_effect(0.002, 5), "n_failed": 0,
         "n_seeds": 5, "n_finished": 5, "equivalent": False, "p_equiv": np.nan},
    ])
    summary = Summary(table, pd.DataFrame(), pd.DataFrame(), Settings(), True, [], {}, seeds=list(range(5)))
    lines = next_steps(summary, None)
    line = next(x for x in lines if x.startswith("No evidence although the seeds suffice"))
    assert "5/3" in line and "c1 kind=greedy" in line and "probably smaller than 0.5 points" in line
    assert not any(x.startswith("Top up") for x in lines)
