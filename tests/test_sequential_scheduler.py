"""The sequential scheduler's rules, driven by hand (no Ray started): what is final, what is
due, and what happens when a trial dies, fails, or its record comes back in the result."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rewardsweep.errors import SpecError, UserError
from rewardsweep.study import layout, records
from rewardsweep.study.synthetic import synthetic_record
from rewardsweep.sweep import sequential as seq
from rewardsweep.sweep.spec import load_study

KEY = "trial"


def _study(tmp_path: Path, kinds=("sample_loo", "batch_loo"), lrs=(1.0e-2,)) -> tuple:
    spec = tmp_path / "s.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: s
        model: tiny-synthetic
        seeds: {{initial: 2, step: 2, max: 8, effect: 1.0}}
        steps: 4
        eval_every: 4
        grid:
          baseline.kind: [{", ".join(kinds)}]
          lr.start: [{", ".join(map(str, lrs))}]
        storage: {tmp_path / "runs"}
        """))
    study = load_study(spec)
    paths = layout.StudyPaths(Path(study.spec.study_dir)).create()
    design = seq.design_for(study.spec, study.expansion.reward_configs)
    return study, paths, design


def _write(paths, plan, miou=0.6, status="finished", error="boom"):
    rec = synthetic_record(study="s", config_id=plan.config_id, arm=plan.arm, seed=plan.seed,
                           control_id=plan.control_id, params=plan.params, miou_start=0.6,
                           miou_final=miou if status == "finished" else None, status=status)
    if status == "failed":
        rec["error"] = error
    records.write_record(paths.record(plan.config_id, plan.arm, plan.seed), rec)
    return rec


def test_a_failed_record_cut_short_by_an_interrupt_is_not_final(tmp_path):
    study, paths, design = _study(tmp_path)
    plans = study.expansion.trials
    control = next(p for p in plans if p.arm == "mle" and p.seed == 0)
    for plan in plans:
        if plan.arm == "reward" and plan.seed == 0:
            _write(paths, plan)
    _write(paths, control, status="failed", error=None)      # Ctrl+C reached the worker: no error
    recs = seq.read_records(paths, plans)
    assert control.trial_name not in recs
    states = seq.look_states(design, plans, recs)[1]
    assert all(s.open for s in states.values())
    assert control.trial_name in {p.trial_name for p in seq.wanted_trials(plans, states)}
    _write(paths, control, status="failed", error="RuntimeError: boom")   # a real failure is final
    states = seq.look_states(design, plans, seq.read_records(paths, plans))[1]
    assert {s.decision for s in states.values()} == {"failed"}
    assert seq.read_records(paths, plans, retry_failed=True).get(control.trial_name) is None


def _drive(scheduler):
    """Suggest everything due, as Tune would; returns {tune id: name}."""
    out = {}
    while (s := scheduler.suggest(f"t{len(out) + len(scheduler.suggested)}")) not in (None, "FINISHED"):
        out[f"t{len(scheduler.suggested)}"] = s[KEY]
    return {tid: name for tid, name in scheduler.in_flight.items()}


def test_a_trial_that_dies_without_a_record_stops_its_configuration_and_is_not_rerun(tmp_path):
    study, paths, design = _study(tmp_path)
    plans = study.expansion.trials
    sched = seq.LookScheduler(design, plans, paths, {p.trial_name for p in plans}, {}, KEY)
    flight = _drive(sched)
    assert len(flight) == 6                                   # look 1: 2 seeds x (2 configs + control)
    dead = next(tid for tid, name in flight.items() if "-mle-" in name)
    for tid, name in flight.items():
        if tid != dead:
            _write(paths, next(p for p in plans if p.trial_name == name))
        sched.on_trial_complete(tid, result=None)
    assert {s.decision for s in sched.states.values()} == {"failed"}
    assert flight[dead] not in sched.queue                    # never suggested twice
    assert sched.suggest("next") == "FINISHED"


def test_a_record_shipped_back_in_the_result_is_kept_and_decides(tmp_path):
    """A node without the shared filesystem: the record arrives in Tune's (flattened) result."""
    from ray.tune.utils import flatten_dict

    study, paths, design = _study(tmp_path, kinds=("sample_loo",))
    plans = study.expansion.trials
    sched = seq.LookScheduler(design, plans, paths, {p.trial_name for p in plans}, {}, KEY)
    flight = _drive(sched)
    for tid, name in flight.items():
        plan = next(p for p in plans if p.trial_name == name)
        rec = _write(paths, plan, miou=0.6 + (0.05 if plan.arm == "reward" else 0.0) + 0.001 * plan.seed)
        paths.record(plan.config_id, plan.arm, plan.seed).unlink()     # not on the driver's disk
        sched.on_trial_complete(tid, result=flatten_dict({"final": True, "record": rec}))
        assert paths.record(plan.config_id, plan.arm, plan.seed).is_file()
    (state,) = sched.states.values()
    assert state.outcome.looks and state.outcome.looks[0].n == 2


def test_a_retried_configuration_replaces_its_logged_failure(tmp_path):
    study, paths, design = _study(tmp_path)
    seq.fix_design(paths, design, sorted({p.config_id for p in study.expansion.trials}), "s.yaml:3")
    seq.log_decisions(paths, [{"config_id": "a", "decision": "failed"}, {"config_id": "b", "decision": "beats"}])
    seq.log_decisions(paths, [{"config_id": "a", "decision": "futile"}, {"config_id": "b", "decision": "worse"}])
    assert {d["config_id"]: d["decision"] for d in seq.read_log(paths)["decisions"]} == {"a": "futile", "b": "beats"}


def test_a_changed_set_of_configurations_is_refused(tmp_path):
    study, paths, design = _study(tmp_path, kinds=("sample_loo", "batch_loo"))
    seq.fix_design(paths, design, sorted({p.config_id for p in study.expansion.trials}), "s.yaml:3")
    other, _, design2 = _study(tmp_path, kinds=("sample_loo", "greedy"))   # same m, other configurations
    assert design2 == design
    with pytest.raises(UserError, match=r"^s.yaml:3: seeds: .*the configurations"):
        seq.fix_design(paths, design2, sorted({p.config_id for p in other.expansion.trials}), "s.yaml:3")
    (paths.sequential).write_text("{not json")
    with pytest.raises(UserError, match="cannot read the sequential design"):
        seq.read_log(paths)


def test_report_counts_each_controls_own_seeds_as_due():
    from rewardsweep.analysis.sequential_view import _due

    trials = pd.DataFrame([
        {"config_id": "r1", "arm": "reward", "control_id": "c1", "reference_id": None, "seed": 0},
        {"config_id": "r2", "arm": "reward", "control_id": "c2", "reference_id": None, "seed": 0},
        {"config_id": "c1", "arm": "mle", "control_id": "c1", "reference_id": None, "seed": 0},
        {"config_id": "c2", "arm": "mle", "control_id": "c2", "reference_id": None, "seed": 0},
        {"config_id": "v2", "arm": "mle", "control_id": "c2", "reference_id": None, "seed": 0},
    ])
    due = _due(trials, [{"config_id": "r1", "due": 4}, {"config_id": "r2", "due": 12}])
    assert due == {"r1": 4, "r2": 12, "c1": 4, "c2": 12, "v2": 12}


def test_a_one_seed_last_look_is_refused(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmodel: tiny-synthetic\nseeds: {initial: 4, step: 2, max: 5, effect: 0.2}\n"
                    "steps: 4\neval_every: 4\n")
    with pytest.raises(SpecError, match=r"s.yaml:3: seeds.max: max 5 adds a look of one seed"):
        load_study(path)
    path.write_text(path.read_text().replace("max: 5, effect: 0.2", "max: 9"))
    with pytest.raises(SpecError, match=r"s.yaml:3: seeds.effect: missing required key"):
        load_study(path)


def _looks(study, paths, fix=True):
    from rewardsweep.study.resume import plan_state

    return seq.Looks(study.spec, study.expansion, paths, plan_state(study.expansion.trials, paths), fix=fix)


def test_the_design_sd_waits_for_every_first_look_and_is_stored(tmp_path):
    """Nothing is decided until every configuration's first look is in; then the design SD
    (the median of the first looks' SDs) is fixed, stored in sequential.json, and decisions use it."""
    study, paths, design = _study(tmp_path)
    plans = study.expansion.trials
    seq.fix_design(paths, design, sorted({p.config_id for p in plans}), "s.yaml:3")
    reward = [p for p in plans if p.arm == "reward"]
    first, second = sorted({p.config_id for p in reward})
    for plan in plans:
        if plan.seed < 2 and plan.config_id != second:
            _write(paths, plan, miou=0.6 + (0.002 * plan.seed if plan.arm == "reward" else 0.0))
    sched = seq.LookScheduler(design, plans, paths, {p.trial_name for p in plans}, seq.read_records(paths, plans), KEY)
    assert all(s.open and s.outcome.next_seeds == 2 and not s.outcome.looks for s in sched.states.values())
    assert sched.design.sd is None and seq.read_log(paths)["design"]["sd"] is None
    for plan in plans:
        if plan.seed < 2 and plan.config_id == second:
            _write(paths, plan, miou=0.6 + 0.004 * plan.seed)
    sched.recs = seq.read_records(paths, plans)
    sched.states = sched._replan()
    diffs = {first: [0.0, 0.2], second: [0.0, 0.4]}                  # points
    want = float(np.median([np.std(v, ddof=1) for v in diffs.values()]))
    assert sched.design.sd == pytest.approx(want, rel=1e-9)
    assert seq.read_log(paths)["design"]["sd"] == pytest.approx(want, rel=1e-9)
    assert all(s.outcome.looks for s in sched.states.values())      # decided at look 1 now


def test_sequential_json_is_written_under_the_lock_only_and_once_with_the_sd(tmp_path):
    """The plan before the lock (fix=False) writes nothing; the launch's plan under the lock
    stores the design before the first trial and, when every first look is already in, its
    SD too: one sequential.json with both (the design fixed, then the SD; the decisions log
    empty)."""
    study, paths, design = _study(tmp_path)
    plans = study.expansion.trials
    for plan in plans:
        if plan.seed < 2:
            _write(paths, plan, miou=0.6 + (0.002 * plan.seed if plan.arm == "reward" else 0.0))
    before = _looks(study, paths, fix=False)
    assert not paths.sequential.exists() and before.design.sd is not None
    looks = _looks(study, paths)
    log = seq.read_log(paths)
    assert list(log) == ["design", "method", "configurations", "fixed_at", "decisions", "sd_fixed_at"]
    assert log["design"]["sd"] == pytest.approx(looks.design.sd, rel=1e-12) and log["decisions"] == []
    assert log["configurations"] == sorted({p.config_id for p in plans})
    written = paths.sequential.stat().st_mtime_ns
    assert _looks(study, paths).design.sd == looks.design.sd          # a relaunch reads it, writes nothing
    assert paths.sequential.stat().st_mtime_ns == written


def test_launch_decides_on_the_stored_boundaries(tmp_path):
    """The boundaries in sequential.json are the ones decisions use (not recomputed): a stored
    design with its claim boundaries lowered and no futility stop decides "beats" where the
    spec's design says "futile" (a small, steady gain: an effect of 1 point is ruled out)."""
    import json

    study, paths, design = _study(tmp_path, kinds=("sample_loo",))
    plans = study.expansion.trials
    for plan in plans:
        if plan.seed < 8:
            _write(paths, plan, miou=0.6 + (0.001 + 0.0001 * (plan.seed % 3) if plan.arm == "reward" else 0.0))
    assert {s.decision for s in _looks(study, paths).states.values()} == {"futile"}
    log = json.loads(paths.sequential.read_text())
    log["design"]["efficacy"] = [0.01 if c != "inf" else c for c in log["design"]["efficacy"]]
    log["design"]["futility"] = ["inf"] * len(log["design"]["futility"])
    log["design"]["futility_cp"] = 0.0
    paths.sequential.write_text(json.dumps(log))
    looks = _looks(study, paths)
    assert looks.design.efficacy[-1] == 0.01
    assert {s.decision for s in looks.states.values()} == {"beats"}


def test_a_study_started_under_the_0_3_rule_keeps_it(tmp_path, capsys):
    """A sequential.json written by rewardsweep 0.3 (per-batch t-tests, no design SD) is not
    refused by the new version: the same spec resumes with the stored design, its decisions
    are the 0.3 rule's, and the plan says so."""
    import json
    from rich.console import Console

    from rewardsweep.analysis import sequential as sq

    study, paths, _ = _study(tmp_path)
    plans = study.expansion.trials
    old = sq.make_design(2, 2, 8, 0.05, 1.0, None, 2, statistic="inverse-normal").to_dict()
    for key in ("futility_cp", "sd"):                                 # fields 0.3 did not write
        old.pop(key)
    paths.sequential.write_text(json.dumps({"design": old, "configurations": sorted({p.config_id for p in plans}),
                                            "decisions": []}))
    for plan in plans:
        if plan.seed < 2:
            _write(paths, plan, miou=0.6 + (0.05 + 0.001 * plan.seed if plan.arm == "reward" else 0.0))
    looks = _looks(study, paths)
    assert looks.design.statistic == "inverse-normal" and looks.design.efficacy == tuple(old["efficacy"])
    want = sq.decide(sq.SequentialDesign.from_dict(old), [5.0, 5.1])   # 0.3 decides at look 1 already
    for state in looks.states.values():
        assert state.outcome.decision == want.decision and len(state.outcome.looks) == 1
        assert state.outcome.looks[0].z == pytest.approx(want.looks[0].z, rel=1e-9)
        assert state.outcome.looks[0].z_skew is None                  # no skew correction in the 0.3 rule
    looks.print_plan(Console(file=None, force_terminal=False))
    assert "0.3 rule" in capsys.readouterr().out


def test_a_design_that_can_never_claim_is_refused_in_one_line(tmp_path):
    """Two configurations at alpha 0.05 need p < 0.0125 per side, which no distribution-free
    test reaches with fewer than 7 seeds: max 6 is refused before any trial, naming the spec's
    seeds and what max would do."""
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmodel: tiny-synthetic\nseeds: {initial: 2, step: 2, max: 6, effect: 1.0}\n"
                    f"steps: 4\neval_every: 4\ngrid:\n  baseline.kind: [sample_loo, greedy]\nstorage: {tmp_path}\n")
    study = load_study(path)
    with pytest.raises(UserError, match=r"s.yaml:3: seeds: no look reaches .* raise max to at least 7") as info:
        seq.design_for(study.spec, study.expansion.reward_configs)
    assert "\n" not in str(info.value)


def test_the_report_waits_for_every_first_look_as_launch_does(tmp_path):
    """A report read while only some configurations have their first look (the others have no
    record yet) decides nothing, as launch does; once all are in it fixes the same design SD."""
    from rewardsweep.analysis.collect import collect
    from rewardsweep.analysis.sequential_view import decisions_table, sequential_view

    study, paths, design = _study(tmp_path)
    plans = study.expansion.trials
    seq.fix_design(paths, design, sorted({p.config_id for p in plans}), "s.yaml:3")
    second = sorted({p.config_id for p in plans if p.arm == "reward"})[1]
    for plan in plans:
        if plan.seed < 2 and plan.config_id != second:
            _write(paths, plan, miou=0.6 + (0.002 * plan.seed if plan.arm == "reward" else 0.0))
    view = sequential_view(paths.root, collect([paths.root]).trials)
    assert set(view.decisions["decision"]) == {"continue"} and view.design.sd is None
    assert "not fixed yet" in view.guarantee and len(decisions_table(view)) == 1
    for plan in plans:
        if plan.seed < 2 and plan.config_id == second:
            _write(paths, plan, miou=0.6 + 0.004 * plan.seed)
    view = sequential_view(paths.root, collect([paths.root]).trials)
    recs = seq.read_records(paths, plans)
    assert view.design.sd == pytest.approx(seq.look_states(design, plans, recs)[0].design.sd, rel=1e-12)
    assert "Power for an effect of 1 points" in view.guarantee


def test_one_look_reads_the_stored_design_against_the_spec_and_says_what_to_store(tmp_path):
    """study_look: a launch's one call into the statistics (design made or stored, checked
    against the spec's plan, SD settled, outcomes, the dicts sequential.json stores)."""
    from rewardsweep.analysis.sequential import DesignError, study_look

    study, paths, design = _study(tmp_path)
    plan = {"initial": 2, "step": 2, "max_seeds": 8, "alpha": 0.05, "effect": 1.0, "margin": None, "n_configs": 2}
    made = study_look(None, {}, plan)
    assert made.design == design and made.made["design"] == design.to_dict() and made.changed == []
    stored = study_look(design.to_dict(), {}, {**plan, "effect": 2.0})
    assert stored.made is None and stored.changed == ["effect 1.0 -> 2.0"]
    with pytest.raises(DesignError, match="alpha"):
        study_look(None, {}, {**plan, "alpha": 2.0})
    # every first look in: the SD is fixed here, and handed back as what to store
    pairs = {cid: ({s: ("finished", 0.6 + 0.01 * s) for s in range(2)}, {s: ("finished", 0.6) for s in range(2)})
             for cid in ("a", "b")}
    look = study_look(design.to_dict(), pairs, plan)
    assert look.design.sd is not None and look.settled == look.record == look.design.to_dict()
    assert study_look(look.design, pairs).settled is None          # already fixed: nothing new to store
