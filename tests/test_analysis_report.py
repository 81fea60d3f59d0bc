"""`rewardsweep report` end to end: files, numbers equal to scipy/statsmodels, bad input."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from rewardsweep.analysis import stats
from rewardsweep.analysis.plots import MAX_ROWS, select_rows
from rewardsweep.cli import main
from rewardsweep.study.synthetic import SYNTHETIC_START as START
from tests.analysis_helpers import FakeApi, wandb_run, write_study

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _plain_console(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """12 seeds (BCa on), 4 configurations of known effect, a failed and a diverged seed,
    and one corrupt record: reported once with plots, shared by the tests below."""
    folder = tmp_path_factory.mktemp("runs") / "toy"
    truth = write_study(folder, effects=(0.012, 0.004, 0.0, -0.01), seeds=12,
                        bad={(0, 3): "failed", (1, 5): "diverged", ("control", 7): "failed"})
    (folder / "records" / "zz-corrupt.json").write_text("{ not json")
    (folder / "spec.yaml").write_text("name: toy\nwandb: {project: toyproj, mode: offline}\n")
    return folder, truth


@pytest.fixture(scope="module")
def reported(study):
    folder, truth = study
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["report", str(folder)])
    return folder, truth, rc, out.getvalue(), err.getvalue()


def _records(folder: Path) -> pd.DataFrame:
    rows = []
    for p in sorted((folder / "records").glob("*.json")):
        try:
            rows.append(json.loads(p.read_text()))
        except json.JSONDecodeError:
            continue
    return pd.DataFrame(rows)


def test_report_writes_every_output(reported):
    folder, _, rc, out, err = reported
    assert rc == 0
    rep = folder / "report"
    for name in ("report.md", "report.html", "summary.csv", "trials.csv", "delta_per_config.png",
                 "paired_differences.png", "curves.png", "per_class_delta.png"):
        assert (rep / name).is_file() and (rep / name).stat().st_size > 0, name
    html = (rep / "report.html").read_text()
    assert html.count("src='data:image/png;base64,") == 4
    assert "src='delta" not in html and "src='http" not in html and "<script" not in html   # self-contained
    assert "<a href='https://" in html                                  # the docs it cites are links
    md = (rep / "report.md").read_text()
    assert "![delta per configuration](delta_per_config.png)" in md
    assert "excluded from every mean" in md and "secondary" in md
    assert "zz-corrupt.json" in md                       # the warning is in the report too
    trials = pd.read_csv(rep / "trials.csv")
    assert len(trials) == 5 * 12
    assert {"config_id", "arm", "seed", "status", "delta_miou", "baseline.kind", "iou_delta:road"} <= set(trials)


def test_console_is_readable_at_100_columns(reported):
    _, _, _, out, err = reported
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert any("beats control" in line for line in lines)
    header = next(line for line in lines if line.startswith("config"))
    for col in ("ok/fl/dv", "Δ mIoU ±CI", "SD", "vs ctrl ±CI", "p adj", "P(>)", "verdict", "seeds"):
        assert col in header
    warning = [line for line in err.splitlines() if "zz-corrupt.json" in line]
    assert len(warning) == 1 and warning[0].startswith("rewardsweep: warning:") and "skipped" in warning[0]


def test_summary_numbers_equal_scipy_and_statsmodels(reported):
    folder, truth, *_ = reported
    summary = pd.read_csv(folder / "report" / "summary.csv", keep_default_na=True)
    recs = _records(folder)
    fin = recs[recs.status == "finished"]
    ctrl_id = truth["control_id"]
    ctrl = fin[fin.config_id == ctrl_id].set_index("seed")["delta_miou"]
    p_raw = {}
    for _, row in summary.iterrows():
        g = fin[(fin.config_id == row.config_id) & (fin.arm == row.arm)].sort_values("seed")
        x = g["delta_miou"].to_numpy()          # seed order: the bootstrap's resamples depend on it
        assert row.n_finished == len(x)
        assert row.mean_delta == pytest.approx(np.mean(x), rel=1e-12)
        assert row.sd_delta == pytest.approx(np.std(x, ddof=1), rel=1e-12)
        assert row.se_delta == pytest.approx(st.sem(x), rel=1e-12)
        ci = st.ttest_1samp(x, 0).confidence_interval(0.95)
        assert (row.ci_low, row.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)
        boot = st.bootstrap((x,), np.mean, method="BCa", n_resamples=stats.BCA_RESAMPLES,
                            rng=np.random.default_rng(stats.BCA_SEED))
        assert row.bca_low == pytest.approx(boot.confidence_interval.low, rel=1e-9)
        assert row.bca_high == pytest.approx(boot.confidence_interval.high, rel=1e-9)
        assert (row.min_delta, row.max_delta) == pytest.approx((x.min(), x.max()))
        assert row.mean_final == pytest.approx(g["miou_final"].mean(), rel=1e-12)
        per_class = np.mean(np.stack(g["per_class_iou_final"]) - np.stack(g["per_class_iou_start"]), axis=0)
        got = [row[f"iou_delta:{c}"] for c in g["class_names"].iloc[0]]
        np.testing.assert_allclose(got, per_class, rtol=1e-12)
        if row.arm == "mle":
            assert row.verdict == "control"
            continue
        a = g.set_index("seed")["delta_miou"]
        seeds = sorted(set(a.index) & set(ctrl.index))
        a, b = a.loc[seeds].to_numpy(), ctrl.loc[seeds].to_numpy()
        assert row.n_paired == len(seeds)
        t = st.ttest_rel(a, b)
        assert (row.t, row.p_ttest) == pytest.approx((t.statistic, t.pvalue), rel=1e-10)
        ci = t.confidence_interval(0.95)
        assert (row.diff_ci_low, row.diff_ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
        assert row.diff_mean == pytest.approx(np.mean(a - b), rel=1e-12)
        assert row.p_wilcoxon == pytest.approx(st.wilcoxon(a, b).pvalue, rel=1e-10)
        assert row.p_improve == pytest.approx(np.mean((a > b) + 0.5 * (a == b)))
        es = 0.005 / np.std(a - b, ddof=1)
        assert row.seeds_needed == math.ceil(TTestPower().solve_power(effect_size=es, alpha=0.05, power=0.8))
        assert row.seeds_used == len(seeds)
        # Hall's (1992) skew-corrected t, written out here: the verdict needs it and the t-test
        d, n = a - b, len(seeds)
        g1, tt = st.skew(d, bias=False), t.statistic
        hall = tt + g1 / (3 * n ** 0.5) * tt ** 2 + g1 ** 2 / (27 * n) * tt ** 3 + g1 / (6 * n ** 0.5)
        p_hall = 2 * st.t.sf(abs(hall), n - 1)
        assert row.p_skew == pytest.approx(p_hall, rel=1e-10)
        assert row.skewness == pytest.approx(g1, rel=1e-10)
        flips = st.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf)
        assert row.p_signflip == pytest.approx(flips.pvalue, rel=1e-12)
        p_raw[row.config_id] = max(t.pvalue, p_hall)
    ids = list(p_raw)
    adj = multipletests([p_raw[i] for i in ids], method="holm")[1]
    by_id = summary.set_index("config_id")
    for cid, p in zip(ids, adj):
        assert by_id.loc[cid, "p_adj"] == pytest.approx(p, rel=1e-12)
        diff = by_id.loc[cid, "diff_mean"]
        want = "beats control" if p < 0.05 and diff > 0 else "worse" if p < 0.05 and diff < 0 else "no evidence"
        assert by_id.loc[cid, "verdict"] == want
    # the study was built so that the first configuration beats the control, the last is worse
    assert by_id.loc[truth["config_ids"][0], "verdict"] == "beats control"
    assert by_id.loc[truth["config_ids"][3], "verdict"] == "worse"


def test_failures_are_counted_listed_and_flagged(reported):
    folder, truth, *_ = reported
    s = pd.read_csv(folder / "report" / "summary.csv", dtype={"failed_seeds": str, "diverged_seeds": str})
    s = s.set_index("config_id")
    c0, c1 = truth["config_ids"][0], truth["config_ids"][1]
    assert (s.loc[c0, "n_failed"], s.loc[c0, "failed_seeds"], bool(s.loc[c0, "lost_seeds"])) == (1, "3", True)
    assert (s.loc[c1, "n_diverged"], s.loc[c1, "diverged_seeds"]) == (1, "5")
    assert "lost seeds" in s.loc[c0, "flags"]
    # seed 7 failed in the control: every comparison loses it
    assert s.loc[truth["config_ids"][2], "n_paired"] == 11
    assert s.loc[c0, "n_paired"] == 10
    assert not bool(s.loc[truth["config_ids"][3], "lost_seeds"])


def test_no_argument_reports_the_most_recent_study(tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    write_study(runs / "older", effects=(0.01,), seeds=3)
    write_study(runs / "newer", effects=(0.01,), seeds=3)
    past = 1_600_000_000
    for p in (runs / "older" / "records").glob("*.json"):
        os.utime(p, (past, past))
    assert main(["report", "--runs", str(runs), "--no-plots"]) == 0
    assert (runs / "newer" / "report" / "summary.csv").is_file()
    assert not (runs / "older" / "report").exists()
    monkeypatch.chdir(tmp_path)                       # default --runs is ./runs
    for p in (runs / "newer" / "records").glob("*.json"):
        os.utime(p, (past - 10, past - 10))
    assert main(["report", "--no-plots"]) == 0
    assert (runs / "older" / "report" / "summary.csv").is_file()


def test_a_spec_path_reports_its_study_folder(tmp_path, monkeypatch):
    write_study(tmp_path / "store" / "mine", effects=(0.01,), seeds=3)
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: mine\nstorage: store\nseeds: 3\ngrid: {lr: [1, 2]}\n")
    monkeypatch.chdir(tmp_path / "store")             # storage relative to the spec's folder
    assert main(["report", str(spec), "--no-plots"]) == 0
    assert (tmp_path / "store" / "mine" / "report" / "report.md").is_file()


def test_no_plots_and_fdr_and_options(tmp_path, capsys):
    write_study(tmp_path / "s", effects=(0.01, 0.0), seeds=4)
    assert main(["report", str(tmp_path / "s"), "--no-plots", "--correction", "fdr_bh",
                 "--effect", "1.0", "--alpha", "0.1", "--power", "0.9"]) == 0
    rep = tmp_path / "s" / "report"
    assert not list(rep.glob("*.png")) and "data:image" not in (rep / "report.html").read_text()
    md = (rep / "report.md").read_text()
    assert "Benjamini-Hochberg" in md and "effect 1 mIoU points" in md
    s = pd.read_csv(rep / "summary.csv")
    row = s[s.arm == "reward"].iloc[0]
    es = 0.01 / row.diff_sd
    assert row.seeds_needed == max(2, math.ceil(TTestPower().solve_power(effect_size=es, alpha=0.1, power=0.9)))


def test_study_without_control_still_reports(tmp_path, capsys):
    write_study(tmp_path / "s", effects=(0.01, 0.0), seeds=4, control=False)
    assert main(["report", str(tmp_path / "s"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "no control comparison is possible" in out
    s = pd.read_csv(tmp_path / "s" / "report" / "summary.csv")
    assert set(s.verdict) == {"no control"} and s.p_adj.isna().all()
    assert set(s.seeds_basis) == {"delta mIoU"} and s.mean_delta.notna().all()
    assert "no control comparison is possible" in (tmp_path / "s" / "report" / "report.md").read_text()


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rewardsweep: error: "), err
    return err[0]


def test_bad_input_gives_one_clear_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "records").mkdir(parents=True)
    assert main(["report", str(empty)]) == 2
    assert "no trial records" in _one_line_error(capsys)

    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no such study folder" in _one_line_error(capsys)

    assert main(["report", "--runs", str(tmp_path / "noruns")]) == 2
    assert "no such folder of studies" in _one_line_error(capsys)
    assert main(["report", "--runs", str(tmp_path)]) == 2     # folders, none with records
    assert "no study with trial records" in _one_line_error(capsys)

    write_study(tmp_path / "allfail", effects=(0.01,), seeds=2,
                bad={(k, s): "failed" for k in ("control", 0) for s in range(2)} | {(0, 1): "diverged"})
    assert main(["report", str(tmp_path / "allfail")]) == 2
    line = _one_line_error(capsys)
    assert "no finished trials" in line and "3 failed" in line and "1 diverged" in line

    corrupt = tmp_path / "corrupt" / "records"
    corrupt.mkdir(parents=True)
    (corrupt / "a.json").write_text("[]")
    assert main(["report", str(corrupt.parent)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "a.json" in err[0] and "skipped" in err[0] and "no readable trial records" in err[1]

    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text("name: [unclosed\n")
    assert main(["report", str(bad_spec)]) == 2
    assert "cannot read the spec" in _one_line_error(capsys)
    bad_spec.write_text("seeds: 3\n")
    assert main(["report", str(bad_spec)]) == 2
    assert "'name'" in _one_line_error(capsys)


def test_mixed_start_checkpoints_in_a_top_up(tmp_path, capsys):
    write_study(tmp_path / "a", effects=(0.01,), seeds=3)
    write_study(tmp_path / "b", effects=(0.01,), seeds=3,
                start=dict(START, checkpoint_hash="0123456789abcdef"))
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--no-plots"]) == 2
    line = _one_line_error(capsys)
    assert "different start checkpoints" in line and "--start" in line
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--no-plots", "--start", "0123"]) == 0
    assert (tmp_path / "a" / "report" / "summary.csv").is_file()


def _offline_runs(folder: Path, complete: int = 1) -> list[dict]:
    """The offline runs under ``folder`` (oldest first), once ``complete`` of them have ended
    (``finish()`` returns before W&B's service writes the file's last block)."""
    import time

    from rewardsweep.sweep.wandb_offline import read_offline_run

    deadline = time.time() + 20
    while True:
        runs = [read_offline_run(d) | {"dir": d} for d in sorted(folder.glob("offline-run-*"))]
        if sum(r["exit_code"] is not None for r in runs) >= complete or time.time() > deadline:
            return runs
        time.sleep(0.2)


def test_wandb_summary_goes_where_wandb_env_says_and_a_rerun_updates_the_same_run(study, tmp_path, monkeypatch,
                                                                                   capsys):
    """Real W&B, offline: WANDB_PROJECT/ENTITY/DIR/MODE as the trials honour them; one stable
    run id per study (resumed: a rerun updates it); the report's tables, the forest plot's
    numbers and every plot logged; the same labels as the report."""
    folder, _ = study
    copy = tmp_path / "toy"
    import shutil

    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("report"))
    for key, value in {"WANDB_PROJECT": "eco-proj", "WANDB_ENTITY": "eco-team", "WANDB_DIR": str(tmp_path / "D"),
                       "WANDB_MODE": "offline"}.items():
        monkeypatch.setenv(key, value)
    assert main(["report", str(copy), "--wandb-summary"]) == 0
    out = capsys.readouterr().out
    assert "run 'report-toy' (job_type report, offline) in project eco-team/eco-proj" in out
    (run,) = _offline_runs(tmp_path / "D" / "wandb")
    assert f"upload it with: wandb sync {run['dir']}" in out
    assert (run["project"], run["entity"], run["run_id"], run["name"], run["job_type"]) == (
        "eco-proj", "eco-team", "report-toy", "report-toy", "report")
    assert {"toy", "report"} <= set(run["tags"]) and run["exit_code"] == 0
    assert not (copy / "wandb").exists() and not (copy / "report" / "wandb").exists()
    (logged,) = [h for h in run["history"] if "summary.path" in h]
    kinds = {k.rsplit(".", 1)[0]: v for k, v in logged.items() if k.endswith("._type")}
    assert kinds["summary"] == kinds["paired_differences"] == "table-file"
    assert kinds["tables/against_the_control_paired_by_seed_points"] == "table-file"
    assert {k for k, v in kinds.items() if v == "image-file"} == {
        "plots/paired_differences", "plots/delta_per_config", "plots/curves", "plots/per_class_delta"}
    csv = pd.read_csv(copy / "report" / "summary.csv")
    forest = json.loads((run["dir"] / "files" / logged["paired_differences.path"]).read_text())
    cols = forest["columns"]
    assert cols[:4] == ["label", "config_id", "mean_diff", "ci_low"]
    rewards = csv[csv.arm == "reward"]
    assert [row[0] for row in forest["data"]] == list(rewards["label"])          # the report's labels
    assert [row[2] for row in forest["data"]] == pytest.approx(list(rewards["diff_mean"] * 100), rel=1e-12)
    assert run["summary"]["beats_control"] == int((csv.verdict == "beats control").sum())
    # a second report updates the same run (same id, resumed); WANDB_DIR unset: beside the trials' runs
    monkeypatch.delenv("WANDB_DIR")
    assert main(["report", str(copy), "--wandb-summary", "--no-plots"]) == 0
    (again,) = _offline_runs(copy / "wandb")
    assert again["run_id"] == "report-toy" and again["project"] == "eco-proj"
    # --out moves the report, and a study folder that is not written to keeps no W&B run either
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert main(["report", str(copy), "--wandb-summary", "--no-plots", "--out", str(tmp_path / "elsewhere")]) == 0
    assert "W&B disabled (WANDB_MODE): no report run logged" in capsys.readouterr().out
    assert (tmp_path / "elsewhere" / "report.md").is_file() and not (tmp_path / "elsewhere" / "wandb").exists()


def test_wandb_collection_through_the_cli(tmp_path, monkeypatch, capsys):
    runs = [wandb_run(f"r{s}{a}", s, a, c, f + s / 1000)[0]
            for s in range(4) for a, c, f in (("mle", "ctrl", 0.605), ("reward", "cfg1", 0.63))]
    api = FakeApi(runs)
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(Api=lambda: api))
    assert main(["report", "--wandb", "me/proj", "--study", "toy", "--runs", str(tmp_path), "--no-plots"]) == 0
    assert api.calls == [("me/proj", {"tags": {"$in": ["toy"]}})]
    s = pd.read_csv(tmp_path / "toy" / "report" / "summary.csv").set_index("config_id")
    assert s.loc["cfg1", "n_paired"] == 4 and s.loc["cfg1", "verdict"] in ("beats control", "no evidence")
    assert "wandb:me/proj" in (tmp_path / "toy" / "report" / "report.md").read_text()
    assert main(["report", "--wandb", "me/proj", "--runs", str(tmp_path / "none")]) == 2
    assert "--study" in capsys.readouterr().err


def test_many_configurations_are_capped_in_plots():
    table = pd.DataFrame({"arm": ["mle"] + ["reward"] * 200, "config_id": [f"c{i}" for i in range(201)]})
    rows, caption, n_worst = select_rows(table)
    assert len(rows) == MAX_ROWS and rows[0] == 0 and rows[-1] == 200 and n_worst > 0
    assert rows[-n_worst:] == list(range(201 - n_worst, 201))
    assert "best" in caption and "worst" in caption and "of 200" in caption
    assert select_rows(table.head(10)) == (list(range(10)), "", 0)


def test_analysis_never_imports_ray_torch_mmseg_or_wandb(study, tmp_path):
    folder, _ = study
    code = (
        "import sys\n"
        "from rewardsweep.cli import main\n"
        f"rc = main(['report', {str(folder)!r}, '--no-plots', '--out', {str(tmp_path / 'out')!r}])\n"  # the shared report stays
        "import rewardsweep.analysis.plots, rewardsweep.analysis.wandb_io\n"
        "bad = [m for m in ('ray', 'torch', 'mmseg', 'mmengine', 'mmcv', 'wandb') if m in sys.modules]\n"
        "print('RC', rc, 'BAD', bad)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "RC 0 BAD []" in proc.stdout, proc.stdout[-500:]


# --------------------------------------------------------------------------- figures and labels

@pytest.mark.parametrize("correction", ["holm", "fdr_bh"])
def test_adjusted_intervals_agree_with_the_verdicts(tmp_path, correction):
    """The forest plot's adjusted intervals exclude 0 exactly when the verdict is not "no
    evidence"; for Holm each is the t-interval at alpha / (m - j + 1) at its step j."""
    write_study(tmp_path / "s", effects=tuple(np.linspace(-0.012, 0.012, 9)), seeds=6, sd=0.002)
    assert main(["report", str(tmp_path / "s"), "--no-plots", "--correction", correction]) == 0
    s = pd.read_csv(tmp_path / "s" / "report" / "summary.csv")
    rew = s[s.arm == "reward"]
    excludes = (rew.diff_adj_low > 0) | (rew.diff_adj_high < 0)
    assert list(excludes) == list(rew.verdict != "no evidence")
    assert {"beats control", "worse", "no evidence"} <= set(rew.verdict)      # all three occur
    wider = (rew.diff_adj_low <= rew.diff_ci_low + 1e-15) & (rew.diff_adj_high >= rew.diff_ci_high - 1e-15)
    assert wider.all()
    if correction == "holm":
        # the verdict needs the t-test AND the skew-corrected test: the larger p is adjusted, and the
        # interval is the hull of the t-interval and the skew-corrected interval at Holm's level
        p_verdict = np.fmax(rew.p_ttest.to_numpy(), rew.p_skew.to_numpy())
        order = np.argsort(p_verdict)
        m = len(rew)
        for j, i in enumerate(order):
            r = rew.iloc[i]
            if r.p_adj == pytest.approx((m - j) * p_verdict[i]):       # no running maximum here
                level, n = 0.05 / (m - j), int(r.n_paired)
                ci = st.t.interval(1 - level, n - 1, loc=r.diff_mean, scale=r.diff_sd / math.sqrt(n))

                def hall_p(mu, r=r, n=n):      # Hall's (1992) skew-corrected test of mean mu, written out
                    t = (r.diff_mean - mu) / (r.diff_sd / math.sqrt(n))
                    g = (t + r.skewness / (3 * n ** 0.5) * t ** 2 + r.skewness ** 2 / (27 * n) * t ** 3
                         + r.skewness / (6 * n ** 0.5))
                    return 2 * st.t.sf(abs(g), n - 1)

                assert r.diff_adj_low <= ci[0] + 1e-15 and r.diff_adj_high >= ci[1] - 1e-15
                for end, t_end in ((r.diff_adj_low, ci[0]), (r.diff_adj_high, ci[1])):
                    assert end == pytest.approx(t_end, rel=1e-9) or hall_p(end) == pytest.approx(level, rel=1e-6)


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_legends_never_cover_data_and_labels_are_never_cut(tmp_path):
    from rewardsweep.analysis.collect import collect
    from rewardsweep.analysis.plots import MAX_CURVES, curves_figure, deltas_figure, forest_figure
    from rewardsweep.analysis.summary import summarize

    write_study(tmp_path / "s", effects=tuple(np.linspace(-0.01, 0.014, 12)), seeds=3)
    coll = collect([tmp_path / "s"])
    summary = summarize(coll)
    for fig in (deltas_figure(summary, coll), forest_figure(summary)):
        renderer = fig.canvas.get_renderer()
        (ax,) = fig.axes
        legend = fig.legends[0].get_window_extent(renderer)
        assert not _overlaps(legend, ax.get_window_extent(renderer))
        assert not ax.get_legend()
        ticks = [t.get_text() for t in ax.get_yticklabels()]
        for lab in summary.table["label"]:
            if any(lab.split(" [")[0] in t.replace("\n", " ") for t in ticks):
                assert any(t.replace("\n", " ") == lab or t.replace("\n", "") == lab for t in ticks)
        assert not any("…" in t for t in ticks)
        # every tick label fits inside the figure (nothing cut at the left edge)
        assert all(t.get_window_extent(renderer).x0 >= 0 for t in ax.get_yticklabels())
    # the forest plot shows each compared configuration once, with its full label and id
    ticks = [t.get_text().replace("\n", " ") for t in forest_figure(summary).axes[0].get_yticklabels()]
    assert sorted(ticks) == sorted(summary.table.loc[summary.table.arm == "reward", "label"])
    # curves: small multiples of the best few, shared axes
    fig = curves_figure(summary, coll)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == MAX_CURVES
    assert all(ax.get_shared_y_axes().joined(visible[0], ax) for ax in visible)
    best = summary.table[summary.table.arm == "reward"].head(MAX_CURVES)
    for ax, lab in zip(visible, best["label"]):
        assert ax.get_title().replace("\n", " ").startswith(lab.split(" [")[0].split(" ")[0])
        assert lab.split(" [")[1][:-1] in ax.get_title()            # its config id


def test_labels_are_the_same_everywhere(reported, tmp_path):
    """One label per configuration: the full spec names of the varied parameters, then the
    config id; in summary.csv, the markdown/html tables (params + config columns) and the
    console (wrapped at 100 columns, whole on a wide console)."""
    folder, truth, _, out, _ = reported
    s = pd.read_csv(folder / "report" / "summary.csv").set_index("config_id")
    every = [truth["params"][c] for c in truth["config_ids"]]
    varied = sorted(k for k in every[0] if len({str(p[k]) for p in every}) > 1)
    assert varied == ["baseline.kind"]
    for cid in truth["config_ids"]:
        params = truth["params"][cid]
        want = " ".join(f"{k}={params[k]:g}" if isinstance(params[k], float) else f"{k}={params[k]}"
                        for k in varied)
        assert s.loc[cid, "params"] == want
        assert s.loc[cid, "label"] == f"{want} [{cid}]"
        md = (folder / "report" / "report.md").read_text()
        assert md.count(f"| {cid} | reward | {want} |") >= 2       # per-config and seeds tables
        # the console: every word of the label, none cut
        assert all(w in out for w in s.loc[cid, "label"].split()), cid
    assert "…" not in out
    # a wide console keeps each label on one line
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        os.environ["COLUMNS"] = "200"
        try:
            main(["report", str(folder), "--no-plots", "--out", str(tmp_path / "wide")])  # the shared report stays
        finally:
            del os.environ["COLUMNS"]
    wide = buf.getvalue().splitlines()
    assert max(len(x) for x in wide) <= 200
    for cid in truth["config_ids"]:
        assert any(s.loc[cid, "label"] in line for line in wide)
    html = (tmp_path / "wide" / "report.html").read_text()
    assert "name='viewport'" in html and "overflow-x:auto" in html
    assert html.count("<div class='scroll'><table>") == html.count("<table>") >= 4
    assert "<td class='params'>" in html


def test_wandb_summary_table_reads_back_from_the_offline_run(study, tmp_path, monkeypatch, capsys):
    """Real W&B, offline: the report run holds the per-configuration summary as a Table whose
    rows are summary.csv's, labels first and identical."""
    from rewardsweep.sweep.wandb_offline import read_offline_run

    folder, _ = study
    copy = tmp_path / "toy"
    import shutil

    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("report"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    for key in ("WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(key, raising=False)
    assert main(["report", str(copy), "--wandb-summary", "--no-plots"]) == 0
    (run_dir,) = (copy / "wandb").glob("offline-run-*")          # where the trials' runs are
    import time

    deadline = time.time() + 20     # finish() returns before W&B's service writes the last block
    while (run := read_offline_run(run_dir))["exit_code"] is None and time.time() < deadline:
        time.sleep(0.2)
    assert run["job_type"] == "report" and run["name"] == "report-toy" and run["exit_code"] == 0
    assert run["project"] == "toyproj"                                # the spec's, as for the trials
    ref = next(h for h in run["history"] if "summary.path" in h)
    assert ref["summary._type"] == "table-file" and ref["summary.nrows"] == 5
    table = json.loads((run_dir / "files" / ref["summary.path"]).read_text())
    cols = table["columns"]
    assert cols[:4] == ["label", "config_id", "arm", "verdict"]
    csv = pd.read_csv(copy / "report" / "summary.csv")
    assert [row[0] for row in table["data"]] == list(csv["label"])
    assert [row[cols.index("diff_mean")] for row in table["data"]][1:] == pytest.approx(
        list(csv["diff_mean"])[1:], rel=1e-12)


@pytest.mark.parametrize("columns", ["80"])
def test_a_narrow_console_keeps_full_ids_and_every_column(reported, monkeypatch, capsys, columns, tmp_path):
    """At 80 columns: the full config id stands for each row, no column is dropped (a cell
    wraps at its ``±`` instead), and the labels follow the table keyed by that id."""
    folder, truth, *_ = reported
    monkeypatch.setenv("COLUMNS", columns)
    assert main(["report", str(folder), "--no-plots", "--out", str(tmp_path / "narrow")]) == 0  # the shared report stays
    lines = capsys.readouterr().out.splitlines()
    assert max(len(x) for x in lines) <= int(columns)
    header = "\n".join(lines[:lines.index(next(x for x in lines if x.startswith("─")))])
    for col in ("ok/fl/dv", "SD", "p adj", "P(>)", "verdict", "seeds", "config"):
        assert col in header, col                                      # nothing dropped
    s = pd.read_csv(folder / "report" / "summary.csv").set_index("config_id")
    for cid in truth["config_ids"]:
        row = next(x for x in lines if x.startswith(cid + " "))         # the whole id in the table
        assert s.loc[cid, "verdict"].split()[0] in row and f"{int(s.loc[cid, 'n_finished'])}/" in row
        assert f"{cid} {s.loc[cid, 'label'].rsplit(' [', 1)[0]}" in lines  # keyed below the table
    assert "…" not in "\n".join(lines)


@pytest.mark.parametrize("width", [8, 12, 16, 24, 40])
def test_wrap_label_never_cuts_and_never_splits_a_value(width):
    from rewardsweep.analysis.summary import wrap_label

    text = "baseline.coef=0.1 baseline.kind=sample_loo lr.start=1e-05 class_weights.smooth=0.05 [cc51902e]"
    lines = wrap_label(text, width)
    assert all(len(x) <= width for x in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")     # nothing lost, nothing added
    for value in ("0.1", "1e-05", "0.05", "sample_loo"):
        if len(value) <= width:
            assert any(value in x for x in lines), (value, lines)   # a value stays whole
