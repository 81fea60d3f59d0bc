"""Sequential studies end to end: real Ray Tune runs the looks' trials as the scheduler asks
for them; each configuration stops when it is decided; the design is fixed; launch, a
resumed launch and the report all reach the same decisions.

The in-process tests use a stand-in trainer (tests/support/simulated_trial.py) that writes
real records with known effects, so decisions can be checked; the interrupt-and-resume
test runs the real tiny model through the CLI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rewardsweep.errors import SpecError, UserError
from rewardsweep.study import layout
from rewardsweep.sweep.spec import load_study
from tests.support.simulated_trial import fake_start, simulated_trial

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
# effect of each configuration (points) against its control; sd of the paired difference 1 point (ema: 3)
EFFECTS = {"none": 6.0, "greedy": 0.0, "ema": 1.0}
SDS = {"ema": 3.0}            # a noisy configuration: still open when the others are decided


def _spec(folder: Path, name: str = "seq", seeds: str = "{initial: 3, step: 3, max: 12, effect: 2.0, margin: 2.0}",
          kinds=("none", "greedy", "ema")) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        model: tiny-synthetic
        seeds: {seeds}
        steps: 10
        eval_every: 10
        control: mle
        fixed: {{samples: 2}}
        grid:
          baseline.kind: [{", ".join(kinds)}]
        resources: {{cpu: 1}}
        retries: 0
        wandb: {{mode: offline, tags: [seqtest]}}
        storage: {folder / "runs"}
        """))
    return path


def _effects(plan, config):
    kind = plan.params.get("baseline.kind")
    config["debug"] = {"simulate": {"effect": EFFECTS.get(kind, 0.0), "sd": SDS.get(kind, 1.0)}}


@pytest.fixture(scope="module")
def ray_local():
    from rewardsweep.sweep import ray_cluster

    assert ray_cluster.init_ray(num_cpus=2)
    yield
    ray_cluster.shutdown_ray()


@pytest.fixture(scope="module")
def sequential_study(ray_local, tmp_path_factory):
    from rewardsweep.sweep.launch import launch

    folder = tmp_path_factory.mktemp("seq")
    spec = _spec(folder)
    result = launch(spec, trial_fn=simulated_trial, ensure_start=fake_start, config_hook=_effects)
    return spec, folder / "runs" / "seq", result


def _states(spec: Path, study: Path):
    from rewardsweep.sweep import sequential as seq

    loaded = load_study(spec)
    design = seq.design_for(loaded.spec, loaded.expansion.reward_configs)
    states = seq.look_states(design, loaded.expansion.trials, seq.read_records(layout.StudyPaths(study), loaded.expansion.trials))[1]
    kinds = {p.config_id: p.params["baseline.kind"] for p in loaded.expansion.trials if p.arm == "reward"}
    return design, {kinds[cid]: s for cid, s in states.items()}


def test_configurations_stop_when_decided_at_different_seed_counts(sequential_study):
    spec, study, result = sequential_study
    design, states = _states(spec, study)
    assert design.looks == (3, 6, 9, 12) and design.first_claim == 9    # 2^-n <= alpha/2m from 7 seeds
    assert states["none"].decision == "beats"            # +6 points: decided at the first look that may claim
    assert states["none"].outcome.decided_at == 9
    assert states["greedy"].decision == "equivalent"     # no difference, margin 2 points
    at = {k: s.outcome.decided_at for k, s in states.items()}
    assert len(set(at.values())) >= 2, at                 # decided at different seed counts
    recorded = {p.stem for p in layout.iter_record_paths(study)}
    for kind, state in states.items():                    # nothing run past a decision
        runs = {n for n in recorded if n.startswith(f"{state.config_id}-reward-")}
        assert len(runs) == (state.outcome.decided_at or design.max_seeds), (kind, sorted(runs))
    control = states["none"].control_id
    assert len({n for n in recorded if n.startswith(f"{control}-mle-")}) == max(
        s.outcome.decided_at or design.max_seeds for s in states.values())
    assert len(result.outcomes) == len(recorded) < 4 * design.max_seeds   # fewer trials than a fixed study


def test_the_log_and_the_report_give_the_decisions_launch_acted_on(sequential_study, tmp_path):
    from rewardsweep.analysis.report import build_report

    spec, study, _ = sequential_study
    _, states = _states(spec, study)
    log = json.loads((study / "sequential.json").read_text())
    acted = {d["config_id"]: (d["decision"], d["decided_at"]) for d in log["decisions"]}
    assert acted == {s.config_id: (s.decision, s.outcome.decided_at) for s in states.values()}
    _, summary, files, plots = build_report([study], out=tmp_path / "report", study="seq")
    view = summary.sequential
    assert view is not None and not view.disagreements
    assert dict(zip(view.decisions["config_id"], view.decisions["decision"])) == \
        {cid: d for cid, (d, _) in acted.items()}
    assert (view.decisions["decision"] == view.decisions["launch_decision"]).all()
    looks = view.looks[view.looks["config_id"] == states["none"].config_id]
    assert list(looks["n"]) == [3, 6, 9] and (looks["upper"] > 0).all()
    table = summary.table.set_index("config_id")
    assert not table["lost_seeds"].any(), table["missing_seeds"]   # seeds never due are not lost
    text = files["report.md"].read_text()
    assert "Sequential decisions" in text and "at most 0.05" in text
    assert "sequential looks against the boundaries" in plots and files["sequential.csv"].is_file()


def test_wandb_gets_each_decision_in_the_configuration_group(sequential_study):
    from rewardsweep.sweep.wandb_offline import read_offline_run

    spec, study, _ = sequential_study
    _, states = _states(spec, study)
    runs = [read_offline_run(d) for d in sorted((study / "wandb").glob("offline-run-*"))]
    decisions = {r["config"]["config_id"]: r for r in runs if r["job_type"] == "decision"}
    assert set(decisions) == {s.config_id for s in states.values()}
    trials = [r for r in runs if r["job_type"] == "reward"]
    for state in states.values():
        run = decisions[state.config_id]
        assert run["summary"]["sequential/decision"] == state.decision
        assert run["group"] in {t["group"] for t in trials if t["config"]["config_id"] == state.config_id}


def test_a_relaunch_runs_nothing_more_and_a_changed_design_is_refused(sequential_study, tmp_path):
    from rewardsweep.sweep.launch import launch

    spec, study, _ = sequential_study
    before = {p.name: p.stat().st_mtime_ns for p in (study / "records").glob("*.json")}
    again = launch(spec, trial_fn=simulated_trial, ensure_start=fake_start, config_hook=_effects)
    assert again.to_run == [] and before == {p.name: p.stat().st_mtime_ns for p in (study / "records").glob("*.json")}
    changed = spec.with_name("changed.yaml")
    changed.write_text(spec.read_text().replace("max: 12", "max: 15").replace("name: seq", "name: seq"))
    with pytest.raises(UserError, match=r"seeds: the sequential design of this study was fixed .*looks"):
        launch(changed, trial_fn=simulated_trial, ensure_start=fake_start, dry_run=True)


@pytest.mark.parametrize("seeds,expect", [
    ("{initial: 3, step: 3, max: 2, effect: 1}", "seeds.max: max 2 is below initial 3"),
    ("{initial: 3, step: 1, max: 9, effect: 1}", "seeds.step: 1 is too small"),
    ("{initial: 3, step: 3, max: 9}", "seeds.effect: missing required key"),
    ("{initial: 3, step: 3, max: 9, effect: 1, alfa: 0.1}", "did you mean 'alpha'"),
    ("{initial: 3, step: 3, max: 9, effect: 1, alpha: 0.7}", "seeds.alpha: 0.7 is out of range"),
])
def test_bad_sequential_seeds_are_one_line(tmp_path, seeds, expect):
    with pytest.raises(SpecError) as info:
        load_study(_spec(tmp_path, seeds=seeds))
    assert expect in str(info.value) and "\n" not in str(info.value)


def test_interrupted_sequential_launch_resumes_with_the_same_decisions(tmp_path):
    """The real tiny model through the CLI: SIGINT mid-study, relaunch, same decisions."""
    spec = _spec(tmp_path, "resume", seeds="{initial: 2, step: 2, max: 8, effect: 0.001}", kinds=("none", "greedy"))
    text = spec.read_text().replace("steps: 10", "steps: 4").replace("eval_every: 10", "eval_every: 4")
    spec.write_text(text.replace("fixed: {samples: 2}", "checkpoint: auto\npretrain: {iters: 30}\nbatch_size: 2\n"
                                 "fixed: {samples: 2, lr: {start: 1.0e-2, end: 1.0e-4}}"))
    study = tmp_path / "runs" / "resume"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "rewardsweep.cli", "launch", str(spec)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if len(list((study / "records").glob("*.json"))) >= 3 if study.exists() else False:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[0]
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    first = {p.name: p.stat().st_mtime_ns for p in (study / "records").glob("*.json")}
    proc = subprocess.run([sys.executable, "-m", "rewardsweep.cli", "launch", str(spec)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = {p.name: p.stat().st_mtime_ns for p in (study / "records").glob("*.json")}
    assert all(after[name] == mtime for name, mtime in first.items())   # nothing finished was rerun
    design, states = _states(spec, study)
    log = json.loads((study / "sequential.json").read_text())
    assert {d["config_id"]: d["decision"] for d in log["decisions"]} == \
        {s.config_id: s.decision for s in states.values()}
    assert all(not s.open for s in states.values())
