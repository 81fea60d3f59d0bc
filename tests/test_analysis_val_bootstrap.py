"""``rewardsweep report --bootstrap-images``: the verdicts checked against val-image resampling."""

from __future__ import annotations

import json

import pandas as pd

from rewardsweep.cli import main
from tests.analysis_helpers import write_study


def _study(folder):
    # config 0: a gain on every image; config 1: a large gain on 3 of 40 images only (its
    # "beats control" hinges on them); config 2: no gain
    return write_study(folder, effects=(0.01, 0.0, 0.0), seeds=8, sd=0.002, val_images=40,
                       image_effects={1: {0: 0.3, 1: 0.3, 2: 0.3}}, rng_seed=1)


def test_a_verdict_that_hinges_on_a_few_images_does_not_survive(tmp_path, capsys):
    truth = _study(tmp_path / "s")
    assert main(["report", str(tmp_path / "s"), "--bootstrap-images", "--no-plots"]) == 0
    out = capsys.readouterr().out
    s = pd.read_csv(tmp_path / "s" / "report" / "summary.csv", keep_default_na=False).set_index("config_id")
    uniform, few, none = truth["config_ids"]
    assert s.loc[uniform, "verdict"] == s.loc[few, "verdict"] == "beats control"
    assert s.loc[uniform, "img_survives"] == "yes" and s.loc[few, "img_survives"] == "no"
    assert s.loc[none, "img_survives"] == ""                      # no verdict to check
    assert float(s.loc[few, "img_n"]) == 40 and float(s.loc[few, "img_pairs"]) == 8
    # the val images widen the interval of the few-image gain far more than the uniform one
    width = lambda c, lo, hi: float(s.loc[c, hi]) - float(s.loc[c, lo])      # noqa: E731
    assert width(few, "img_low", "img_high") > 5 * width(few, "diff_ci_low", "diff_ci_high")
    assert width(uniform, "img_low", "img_high") < 2 * width(uniform, "diff_ci_low", "diff_ci_high")
    # the adjusted interval is the wider one, the point estimate inside both
    for c in (uniform, few):
        assert float(s.loc[c, "img_adj_low"]) <= float(s.loc[c, "img_low"]) <= float(s.loc[c, "diff_mean"])
    md = (tmp_path / "s" / "report" / "report.md").read_text()
    assert "## Validation-set uncertainty" in md
    line = next(x for x in md.splitlines() if x.startswith("- Val-image bootstrap:"))
    assert "1 of 2 decided verdicts survive" in line and few in line and uniform not in line.split("Not surviving")[1]
    assert "Val-image bootstrap" in out
    # the same records give the same numbers (fixed RNG seed)
    assert main(["report", str(tmp_path / "s"), "--bootstrap-images", "--no-plots"]) == 0
    again = pd.read_csv(tmp_path / "s" / "report" / "summary.csv", keep_default_na=False).set_index("config_id")
    assert again.loc[few, "img_low"] == s.loc[few, "img_low"]


def test_missing_or_inconsistent_counts_are_named(tmp_path, capsys):
    truth = _study(tmp_path / "s")
    # a count file that no longer matches its record is left out, with a warning
    path = next((tmp_path / "s" / "val_counts").glob(f"{truth['config_ids'][0]}-reward-seed0.json"))
    data = json.loads(path.read_text())
    data["intersect"][0] = [0] * len(data["intersect"][0])
    path.write_text(json.dumps(data))
    assert main(["report", str(tmp_path / "s"), "--bootstrap-images", "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "1 val count file(s) left out" in err and path.name in err
    s = pd.read_csv(tmp_path / "s" / "report" / "summary.csv").set_index("config_id")
    assert s.loc[truth["config_ids"][0], "img_pairs"] == 7
    # a study without counts says so and still reports
    write_study(tmp_path / "old", effects=(0.01,), seeds=3)
    assert main(["report", str(tmp_path / "old"), "--bootstrap-images", "--no-plots"]) == 0
    assert "no finished trial has per-image val counts" in capsys.readouterr().err
    # without the option the next steps point to it, where the trials kept their counts
    assert main(["report", str(tmp_path / "s"), "--no-plots"]) == 0
    assert "--bootstrap-images` also resamples" in (tmp_path / "s" / "report" / "report.md").read_text()
    assert main(["report", str(tmp_path / "old"), "--no-plots"]) == 0
    assert "--bootstrap-images" not in (tmp_path / "old" / "report" / "report.md").read_text()


def test_too_few_seeds_get_no_interval_and_a_warning(tmp_path, capsys):
    """With 2 paired seeds the seed part has 1 degree of freedom: no seeds x images interval,
    and the warning names the comparison; the number of image resamples is reported and covers
    the adjusted levels (50 draws beyond each end at least)."""
    truth = write_study(tmp_path / "s", effects=(0.01, 0.0), seeds=2, sd=0.002, val_images=20)
    assert main(["report", str(tmp_path / "s"), "--bootstrap-images", "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "fewer than 3 paired seeds" in err and truth["config_ids"][0] in err
    s = pd.read_csv(tmp_path / "s" / "report" / "summary.csv").set_index("config_id")
    assert s["img_low"].isna().all()
    truth = _study(tmp_path / "t")
    assert main(["report", str(tmp_path / "t"), "--bootstrap-images", "--no-plots"]) == 0
    s = pd.read_csv(tmp_path / "t" / "report" / "summary.csv").set_index("config_id")
    levels = s.loc[truth["config_ids"], "adj_level"]
    assert (s.loc[truth["config_ids"], "img_resamples"] * (1 - levels.max()) / 2 >= 50).all()
