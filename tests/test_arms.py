"""The arm registry (``rewardsweep/study/arms.py``): every part that treats arms reads it.

The proof of "a new arm kind is one registry entry": a copy of the package with one
``ArmKind`` added to ``study/arms.py`` and no other file changed expands, validates,
schedules, labels, tabulates and reports the new arm (a subprocess on the copy, ~10 s), and
trains it: a real ``run_trial`` of the new kind gives the no-op's numbers (~15 s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import rewardsweep
from rewardsweep.study import arms
from rewardsweep.config.trial import RUNTIME_FIELDS
from rewardsweep.sweep.expand import expand_study
from rewardsweep.sweep.spec import load_study

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "search_spaces" / "smoke.yaml"

# The whole edit: a second zero line (say, the start evaluated again on the same batches),
# turned on by `reference: frozen`, paired by budget like the no-op, trained like it (no update).
NEW_KIND = '''
FROZEN = ArmKind(
    name="frozen", role="reference", label="frozen reference", verdict="reference",
    describe="frozen reference: the start, evaluated again", counted_as="frozen reference",
    run_order=3, report_order=1, trains="none", switch=("reference", "frozen"),
    shares=_BUDGET, link="frozen_id", shows=("steps", "checkpoint"), resets=("lr", "optimizer"),
    cost=lambda steps, config: steps / 4)
KINDS[FROZEN.name] = FROZEN
NAMES = tuple(KINDS)
'''

PROBE = '''
import json, sys
from pathlib import Path
from rewardsweep.study import arms, layout, synthetic
from rewardsweep.study.atomic import atomic_write_json
from rewardsweep.study.records import record_problem
from rewardsweep.config.trial import validate_trial_config
from rewardsweep.sweep.spec import load_study
from rewardsweep.sweep import sequential, table, tune
from rewardsweep.analysis.labels import plan_labels
from rewardsweep.analysis.collect import collect
from rewardsweep.analysis.summary import summarize
from rewardsweep.analysis.plots import _arm_colour, ROLE_COLOURS

spec, folder = Path(sys.argv[1]), Path(sys.argv[2])
study = load_study(spec)
exp = study.expansion
out = {"file": arms.__file__, "configs": exp.configs, "trials": [
    (p.config_id, p.arm, p.seed, p.config.get("control_id"), p.config.get("frozen_id")) for p in exp.trials]}
frozen = [p for p in exp.trials if p.arm == "frozen"]
validate_trial_config({**frozen[0].config, "start": None}, source="frozen")          # the schema takes it
out["cost"] = [tune.trial_cost(p.config) for p in exp.trials]
out["table"] = table.summary_lines(study.spec, exp)
states = {p.config_id: sequential.ConfigState(p.config_id, p.control_id,
                                              sequential.Outcome((), "continue", None, 2), None)
          for p in exp.trials if p.arm == "reward"}
out["wanted"] = [(p.arm, p.seed) for p in sequential.wanted_trials(exp.trials, states)]
out["labels"] = plan_labels(exp.trials)
for i, p in enumerate(exp.trials):          # made-up results, one record per trial
    rec = synthetic.synthetic_record(study=study.spec.name, config_id=p.config_id, arm=p.arm, seed=p.seed,
                                     control_id=p.config.get("control_id"), params=p.params,
                                     miou_start=0.5, miou_final=0.5 + 0.01 * (i % 3))
    rec["frozen_id"] = p.config.get("frozen_id")
    assert record_problem(rec) is None, record_problem(rec)
    atomic_write_json(layout.record_path(folder, p.config_id, p.arm, p.seed), rec)
t = summarize(collect([folder])).table
out["report"] = [(r["arm"], r["verdict"], r["label"]) for _, r in t.iterrows()]
out["colour"] = _arm_colour(t[t["arm"] == "frozen"].iloc[0]) == ROLE_COLOURS["reference"]
print(json.dumps(out))
'''


# A trial of the new kind through run_trial, and a no-op trial on the same config, seed and
# start: trained like the no-op (ArmKind.trains "none"), the two are the same numbers.
TRAIN = '''
import json, sys
from pathlib import Path
from rewardsweep.runners.trial import run_trial
from rewardsweep.study import layout, records
from rewardsweep.sweep.spec import load_study

spec, folder, start = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
(plan,) = [p for p in load_study(spec).expansion.trials if p.arm == "frozen" and p.seed == 0]
config = {**plan.config, "start": start, "steps": 2, "eval_every": 2, "checkpoints": "none",
          "study_dir": str(folder)}
out = {}
for arm, config_id in (("frozen", plan.config_id), ("noop", "noop0")):
    run_trial({**config, "arm": arm, "config_id": config_id})
    rec = records.read_record(layout.record_path(folder, config_id, arm, 0))
    assert records.record_problem(rec) is None, records.record_problem(rec)
    out[arm] = {k: rec[k] for k in ("arm", "status", "estimator", "miou_final", "per_class_iou_final", "treatment")}
    out[arm]["losses"] = [d.get("loss") for d in records.read_diagnostics(folder / rec["diagnostics_file"])]
print(json.dumps(out))
'''


def _copy_with_new_kind(tmp: Path) -> Path:
    """The package copied with NEW_KIND appended to study/arms.py: the only file changed."""
    pkg = tmp / "pkg"
    shutil.copytree(Path(rewardsweep.__file__).parent, pkg / "rewardsweep",
                    ignore=shutil.ignore_patterns("__pycache__"))
    registry = pkg / "rewardsweep" / "study" / "arms.py"
    registry.write_text(registry.read_text() + NEW_KIND)
    changed = [p.relative_to(pkg) for p in (pkg / "rewardsweep").rglob("*.py")
               if p.read_bytes() != (Path(rewardsweep.__file__).parent / p.relative_to(pkg / "rewardsweep")).read_bytes()]
    assert changed == [Path("rewardsweep/study/arms.py")]
    return pkg


def test_a_new_arm_kind_is_one_registry_entry(tmp_path):
    pkg = _copy_with_new_kind(tmp_path)
    spec = tmp_path / "frozen.yaml"
    spec.write_text(SMOKE.read_text().replace("control: mle", "control: mle\nreference: frozen")
                    .replace("storage: runs", f"storage: {tmp_path / 'runs'}"))
    env = {**os.environ, "PYTHONPATH": str(pkg)}
    done = subprocess.run([sys.executable, "-c", PROBE, str(spec), str(tmp_path / "study")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["file"].startswith(str(pkg))                                  # the copy ran

    # expansion: one frozen reference per budget, linked from every reward config and control
    assert out["configs"] == {"reward": 2, "mle": 1, "frozen": 1}
    trials = [tuple(t) for t in out["trials"]]
    (fid,) = {cid for cid, arm, *_ in trials if arm == "frozen"}
    assert all(link == fid for _, arm, _, _, link in trials)
    assert [arm for _, arm, *_ in trials] == ["mle", "mle", "frozen", "frozen", "reward", "reward", "reward", "reward"]
    # ids: the new arm changes no existing configuration's id (its link is not hashed)
    smoke = {(p.config_id, p.arm, p.seed) for p in load_study(SMOKE).expansion.trials}
    assert smoke == {(c, a, s) for c, a, s, *_ in trials if a != "frozen"}
    # cost, dry-run counts, scheduling order, labels, report rows and colours
    assert out["cost"][2] == 6 * 4 / 4
    assert "frozen reference 2 trials (1 config)" in out["table"][1]
    assert out["wanted"][-2:] == [["frozen", 0], ["frozen", 1]]               # run_order 3: last
    assert out["labels"][fid] == f"frozen reference [{fid}]"
    assert [r[:2] for r in out["report"]][:2] == [["mle", "control"], ["frozen", "reference"]]
    assert out["colour"]


def test_a_new_arm_kind_trains_through_run_trial(tmp_path, tiny_start):
    """The same one-entry edit trains: a real ``run_trial`` (tiny preset, 2 steps) of the new
    kind, dispatched on ``ArmKind.trains`` (runners/trial.py, runners/probe.py), gives the
    no-op's numbers on the same config and seed (a subprocess on the copy, ~15-25 s)."""
    pkg = _copy_with_new_kind(tmp_path)
    spec = tmp_path / "frozen.yaml"
    spec.write_text(SMOKE.read_text().replace("control: mle", "control: mle\nreference: frozen")
                    .replace("storage: runs", f"storage: {tmp_path / 'runs'}"))
    env = {**os.environ, "PYTHONPATH": str(pkg)}
    done = subprocess.run([sys.executable, "-c", TRAIN, str(spec), str(tmp_path / "study"), json.dumps(tiny_start)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    frozen, noop = out["frozen"], out["noop"]
    assert frozen["arm"] == "frozen" and frozen["status"] == "finished" and frozen["estimator"] == "frozen"
    assert frozen["treatment"]["weight_move"] == 0.0          # no update: the no-op step ran
    assert "probes" not in frozen["treatment"]                 # and no reward probe
    assert len(frozen["losses"]) == 2
    same = ("status", "miou_final", "per_class_iou_final", "treatment", "losses")
    assert {k: frozen[k] for k in same} == {k: noop[k] for k in same}


def test_the_registry_is_what_every_reader_uses():
    """The names the schema, records and spec accept are the registry's."""
    from rewardsweep.config import spec_schema
    from rewardsweep.config.trial import TRIAL_DEFAULTS, TrialConfig
    from rewardsweep.study import records

    assert records.ARMS == arms.NAMES == ("reward", "mle", "noop")
    assert spec_schema.CHECKPOINT_ARMS == arms.NAMES
    assert spec_schema.CONTROLS == ("mle", "none") and spec_schema.REFERENCES == ("noop", "none")
    assert set(arms.links()) == {"control_id", "reference_id"} <= set(TrialConfig.model_fields)
    assert not set(arms.links()) & set(TRIAL_DEFAULTS)
    assert set(arms.links()) <= set(RUNTIME_FIELDS)                            # never hashed
    exp = expand_study(load_study(SMOKE).spec)
    assert exp.configs == {"reward": 2, "mle": 1}
    assert [arms.run_order(a) for a in ("mle", "reward", "noop", "other")] == [0, 1, 2, 3]
    assert arms.report_order(["mle", "noop", "reward", "other"]) == [0, 1, 2, 3]


def test_no_arm_name_is_spelled_outside_the_registry_in_the_launch_side():
    """The launch side (expand, table, tune, sequential, labels) names arms only through
    ``study.arms``; a new arm then needs no edit there."""
    pattern = ("\"mle\"", "\"noop\"", "'mle'", "'noop'")
    for rel in ("sweep/expand.py", "sweep/table.py", "sweep/tune.py", "sweep/sequential.py",
                "analysis/labels.py", "analysis/plots.py"):
        text = (Path(rewardsweep.__file__).parent / rel).read_text()
        hits = [line.strip() for line in text.splitlines() if any(p in line for p in pattern)
                and not line.lstrip().startswith("#")]
        assert not hits, (rel, textwrap.shorten(" | ".join(hits), 300))
