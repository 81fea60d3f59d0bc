"""The report's figures say what they draw: every line style and colour a legend names is
in the figure, and only those; a configuration is drawn in its verdict's colour; the paired
control and a tuned cross-entropy are told apart. And they are fit for a paper: SVG and
PDF beside a 200-dpi PNG, shown in the HTML at their 100-dpi size."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex

from rewardsweep.analysis.collect import collect
from rewardsweep.analysis.plots import (PNG_DPI, REFERENCE, TUNED_CE, VERDICT_COLOURS, curves_figure,
                                        deltas_figure, make_plots, verdict_colour)
from rewardsweep.analysis.summary import summarize
from rewardsweep.study.layout import record_path
from rewardsweep.study.records import write_record
from rewardsweep.study.synthetic import synthetic_config_id, synthetic_record
from tests.analysis_helpers import write_study


def _add_arm(folder: Path, arm: str, control_id: str | None, effect: float, seeds: int, params: dict,
             reference_of: list[str] = ()) -> str:
    """Records of a control_grid cross-entropy (arm mle, its own id, control_id = the paired
    control) or of a no-op reference (arm noop), on the study's seeds."""
    cid = synthetic_config_id(params, arm)
    for s in range(seeds):
        rec = synthetic_record(study="toy", config_id=cid, arm=arm, seed=s, control_id=control_id, params=params,
                               miou_start=0.61, miou_final=0.61 + effect + 0.001 * s)
        write_record(record_path(folder, cid, arm, s), rec)
    for other in reference_of:           # every configuration names this reference
        for path in folder.glob(f"records/{other}-*.json"):
            import json

            rec = json.loads(path.read_text())
            rec["reference_id"] = cid
            path.write_text(json.dumps(rec))
    return cid


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Four reward configurations (beats, no evidence x2, worse), their control, a tuned
    cross-entropy better than the control, and a no-op reference; 6 seeds."""
    folder = tmp_path_factory.mktemp("fig") / "toy"
    truth = write_study(folder, effects=(0.012, 0.0005, 0.0, -0.01), seeds=6, sd=0.001)
    tuned = _add_arm(folder, "mle", truth["control_id"], 0.01, 6, {"lr.start": 0.03})
    noop = _add_arm(folder, "noop", None, -0.001, 6, {},
                    reference_of=[truth["control_id"], tuned, *truth["config_ids"]])
    coll = collect([folder])
    return folder, coll, summarize(coll), tuned, noop


def _lines(ax):
    return [(to_hex(line.get_color()), line.get_linestyle()) for line in ax.get_lines()]


def test_curves_draw_each_configuration_in_its_verdict_colour_with_what_the_legend_names(study):
    _, coll, summary, tuned, noop = study
    fig = curves_figure(summary, coll)
    rewards = summary.table[summary.table["arm"] == "reward"]
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == len(rewards)                                 # reward configurations only
    assert {"beats control", "worse", "no evidence"} <= set(rewards["verdict"].str.split(" \\[").str[0])
    for ax, (_, r) in zip(panels, rewards.iterrows()):
        drawn = _lines(ax)
        assert (verdict_colour(r["verdict"]), "-") in drawn            # its own mean, in its verdict's colour
        assert ("#000000", "--") in drawn                              # its control, dashed
        assert (to_hex(REFERENCE), ":") in drawn                       # the no-op reference, dotted
        assert (to_hex(TUNED_CE), "-.") in drawn                       # the best cross-entropy of its budget
        assert to_hex(ax.title.get_color()) == verdict_colour(r["verdict"])
        assert r["label"].split(" [")[1][:-1] in ax.get_title()
        # no verdict colour that is not this configuration's
        others = {c for v, c in VERDICT_COLOURS.items() if c != verdict_colour(r["verdict"])}
        assert not any(colour in others for colour, _ in drawn)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:4] == ["configuration (colour: its verdict)", "its control mean",
                          "best cross-entropy, own lr mean", "no-op reference mean"]
    assert "every panel" not in fig._suptitle.get_text()


def test_curves_legend_says_where_a_control_is_missing(tmp_path):
    write_study(tmp_path / "s", effects=(0.01, 0.0), seeds=3, control=False)
    coll = collect([tmp_path / "s"])
    fig = curves_figure(summarize(coll), coll)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert not any(t.startswith("its control") for t in legend) and "no control" in legend   # a verdict
    assert not any(ls == "--" for ax in fig.axes for _, ls in _lines(ax))


def test_deltas_tell_the_paired_control_from_a_tuned_cross_entropy(study):
    _, coll, summary, tuned, _ = study
    fig = deltas_figure(summary, coll)
    (ax,) = fig.axes
    vertical = [(to_hex(line.get_color()), line.get_linestyle()) for line in ax.get_lines()
                if len(set(line.get_xdata())) == 1 and line.get_xdata()[0] != 0]
    assert sorted(vertical) == sorted([(VERDICT_COLOURS["control"], "--"), (to_hex(TUNED_CE), "-.")])
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {"control mean", "cross-entropy, own lr: mean"} <= legend
    paired = summary.table[(summary.table["arm"] == "mle") & summary.table["control_id"].isna()]
    dashed = next(line for line in ax.get_lines() if line.get_linestyle() == "--")
    assert dashed.get_xdata()[0] == pytest.approx(paired["mean_delta"].iat[0] * 100)


def _png_dpi(path: Path) -> float:
    data = path.read_bytes()
    i = data.index(b"pHYs")
    ppu, _, unit = struct.unpack(">IIB", data[i + 4:i + 13])
    return ppu * 0.0254 if unit == 1 else float("nan")


def test_every_figure_has_vector_copies_and_a_sharp_png_shown_at_its_size(study, tmp_path):
    from rewardsweep.cli import main

    folder, coll, summary, *_ = study
    paths = make_plots(summary, coll, tmp_path)
    assert len(paths) == 4
    for path in paths.values():
        assert _png_dpi(path) == pytest.approx(PNG_DPI, abs=0.5)
        assert path.with_suffix(".svg").read_text().lstrip().startswith(("<?xml", "<svg"))
        assert path.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    assert main(["report", str(folder), "--out", str(tmp_path / "out")]) == 0
    html = (tmp_path / "out" / "report.html").read_text()
    md = (tmp_path / "out" / "report.md").read_text()
    for name in ("paired_differences", "delta_per_config", "curves", "per_class_delta"):
        png = tmp_path / "out" / f"{name}.png"
        width = struct.unpack(">I", png.read_bytes()[16:20])[0]
        assert f"width='{round(width * 100 / PNG_DPI)}'" in html
        assert f"<a href='{name}.svg'>SVG</a>" in html and f"<a href='{name}.pdf'>PDF</a>" in html
        assert f"[SVG]({name}.svg) [PDF]({name}.pdf)" in md
    assert not (folder / "report").exists() or not (folder / "report" / "curves.svg").exists()
    assert np.isfinite(_png_dpi(tmp_path / "out" / "curves.png"))
