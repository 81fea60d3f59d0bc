"""``checkpoints: none | final | {final: [arms]}``: which trials keep their final weights,
config ids that never change with it, one-line errors, and the report naming the best
configuration's checkpoints. (The smoke study keeps real ones: tests/test_launch.py
evaluates one with MMSeg's tools/test.py; tests/test_trial.py checks a single trial.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rewardsweep.cli import main
from rewardsweep.errors import SpecError
from rewardsweep.study.layout import checkpoint_paths, record_path
from rewardsweep.sweep.spec import load_study
from tests.analysis_helpers import write_study

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "search_spaces" / "smoke.yaml"


def smoke_with(tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load(SMOKE.read_text())
    raw.pop("checkpoints", None)
    raw.update(changes)
    path = tmp_path / f"smoke-{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def kept(path: Path) -> dict[str, str | None]:
    return {p.trial_name: p.config.get("checkpoints") for p in load_study(path).expansion.trials}


def test_the_key_marks_the_arms_that_keep_weights_and_never_changes_a_config_id(tmp_path):
    none = kept(smoke_with(tmp_path))
    assert set(none.values()) == {None}                       # default: none, and no key in the config
    final = kept(smoke_with(tmp_path, checkpoints="final"))
    rewards = kept(smoke_with(tmp_path, checkpoints={"final": ["reward"]}))
    assert set(final) == set(rewards) == set(none)             # the same trial names: the same config ids
    assert set(final.values()) == {"final"}
    assert {name: v for name, v in rewards.items() if v} == {n: "final" for n in none if "-reward-" in n}
    assert kept(smoke_with(tmp_path, checkpoints="none")) == none == kept(smoke_with(tmp_path, checkpoints=None))


@pytest.mark.parametrize("value, expected", [
    ("all", r"checkpoints: 'all' is not allowed; expected none, final \(every arm\) or \{final: \[arms\]\}"),
    ("finale", r"did you mean 'final'\?"),
    ({"final": ["rewards"]}, r"checkpoints: 'rewards' in final: is not an arm; expected some of reward, mle, "
                             r"noop \(did you mean 'reward'\?\)"),
    ({"best": ["reward"]}, r"expected none, final"),
])
def test_a_bad_value_is_one_line_naming_file_line_and_key(tmp_path, value, expected):
    path = smoke_with(tmp_path, checkpoints=value)
    with pytest.raises(SpecError, match=expected) as info:
        load_study(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}:") and ": checkpoints: " in message


def test_the_report_names_the_best_configurations_checkpoints(tmp_path, capsys):
    """The best reward configuration (largest paired difference) is named with each seed's
    weights, config and sha256; other configurations' are in trials.csv only."""
    folder = tmp_path / "toy"
    truth = write_study(folder, effects=(0.0, 0.012, -0.004), seeds=3)
    best = truth["config_ids"][1]
    for cid in truth["config_ids"]:                           # as a trial with checkpoints: final writes them
        for seed in range(3):
            path = record_path(folder, cid, "reward", seed)
            rec = json.loads(path.read_text())
            weights, config = checkpoint_paths(folder, cid, "reward", seed)
            rec["final_checkpoint"] = {"file": str(weights.relative_to(folder)), "sha256": str(seed) * 64,
                                       "bytes": 1, "config_file": str(config.relative_to(folder))}
            path.write_text(json.dumps(rec))
    assert main(["report", str(folder), "--no-plots"]) == 0
    out = capsys.readouterr().out
    md = (folder / "report" / "report.md").read_text()
    assert "## Checkpoints of the best configuration" in md
    section = md.split("## Checkpoints of the best configuration")[1].split("##")[0]
    assert f"[{best}]" in section and "tools/test.py" in section
    for seed in range(3):
        assert f"| {seed} |" in section and f"{best}-reward-seed{seed}.pth" in section
        assert f"{best}-reward-seed{seed}.py" in section and str(seed) * 16 in section
        assert str(folder / "checkpoints" / f"{best}-reward-seed{seed}.pth") in out    # the console too
    assert not any(f"{cid}-reward-seed" in section for cid in truth["config_ids"] if cid != best)
    trials = (folder / "report" / "trials.csv").read_text()
    assert trials.count("/checkpoints/") == 9


def test_a_study_that_kept_none_has_no_checkpoint_section(tmp_path):
    write_study(tmp_path / "toy", seeds=3)
    assert main(["report", str(tmp_path / "toy"), "--no-plots"]) == 0
    assert "Checkpoints of the best" not in (tmp_path / "toy" / "report" / "report.md").read_text()
