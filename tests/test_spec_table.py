"""The --dry-run trial table: counts, collapsed seeds, at most 100 columns."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from rewardsweep.sweep.expand import expand_study
from rewardsweep.sweep.spec import load_spec
from rewardsweep.sweep.table import MAX_WIDTH, collapse_seeds, dry_run, format_value, render

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"


def test_collapse_seeds():
    assert collapse_seeds([0, 1, 2, 3, 4]) == "0-4"
    assert collapse_seeds([9, 0, 1, 2, 7, 10]) == "0-2,7,9-10"
    assert collapse_seeds([5]) == "5"
    assert collapse_seeds([]) == "-"


def test_format_value():
    assert format_value(None) == "-"
    assert format_value(True) == "true"
    assert format_value(1e-4) == "0.0001"
    assert format_value([1, 2]) == "[1,2]"
    assert format_value(list(range(20))) == "[20 values]"


@pytest.mark.parametrize("path", sorted(SPACES.glob("*.yaml")), ids=lambda p: p.stem)
def test_table_fits_100_columns(path: Path):
    out = io.StringIO()
    assert dry_run(path, file=out) == 0
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= MAX_WIDTH
    exp = expand_study(load_spec(path))
    assert f"{len(exp.trials)} trials" in text
    for t in exp.trials:
        assert t.config_id in text


def test_baseline_table_content():
    out = io.StringIO()
    dry_run(SPACES / "baseline.yaml", file=out)
    text = out.getvalue()
    assert "36 trials: 6 configurations x 6 seeds (0-5)" in text
    flat = " ".join(text.split())
    assert "reward 12 trials (2 configs), mle control 18 trials (3 configs), no-op reference 6 trials (1 config)" in flat
    assert "no duplicates (2 grid/sample points)" in text
    import re

    rows = [line for line in text.splitlines() if re.match(r"[0-9a-f]{8}  ", line)]
    assert len(rows) == 6
    assert all(" 0-5 " in row for row in rows)
    assert any("baseline.kind=batch_loo" in row for row in rows)
    assert any("its own lr/optimizer" in row for row in rows)   # the tuned cross-entropy
    assert any("no-op reference" in row for row in rows)
    assert "samples=2" in text  # fixed values are listed once, above the table


def test_render_marks_recorded_trials():
    spec = load_spec(SPACES / "smoke.yaml")
    exp = expand_study(spec)
    done = {t.trial_name for t in exp.trials[:3]}
    out = io.StringIO()
    from rich.console import Console

    render(spec, exp, console=Console(file=out, width=MAX_WIDTH), done=done)
    text = out.getvalue()
    assert "3 already recorded, 3 to run" in text
    assert "(done)" in text
