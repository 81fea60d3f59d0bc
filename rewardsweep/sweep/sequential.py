"""Sequential studies, launch side: the fixed design, each configuration's decision from the
records, and the trials each undecided configuration needs next.

The statistics are :mod:`rewardsweep.analysis.sequential` (pure functions); this module
owns the study's part of it:

- the design (looks, boundaries) is made from the spec once, stored in
  ``<study>/sequential.json`` before the first trial, and a relaunch whose spec would make
  another design is refused: changing the plan mid-study voids the error guarantee;
- a decision is always re-derived from the records alone (paired differences of
  ``miou_final`` in seed order, in mIoU points), so a resumed launch and ``rewardsweep
  report`` reach the decisions launch acted on; ``sequential.json`` also logs the
  decisions as they were taken, and the report checks the two agree;
- :class:`LookScheduler` is a Ray Tune searcher: it hands Tune the trials of each
  configuration's next look as soon as that configuration's previous look is complete and
  undecided (no barrier across configurations), and ends the experiment when nothing is
  left to decide, so slots stay busy at look boundaries.

A configuration whose trial failed (after Ray's retries) or diverged stops there, "failed":
its remaining looks would be read without that seed. ``--retry-failed`` reruns a failed
seed (a diverged one is final). A trial whose worker died without a record stops its
configuration too (the driver records it as failed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

from collections import Counter

from ray.tune.search import Searcher
from ray.tune.utils.util import unflatten_dict
from rich.console import Console

from rewardsweep.analysis.sequential import (DesignError, Outcome, SequentialDesign, StudyLook, cached_design,
                                             changed_inputs, power, sd_for_power, study_look)
from rewardsweep.errors import UserError
from rewardsweep.study import arms
from rewardsweep.study import records as records_mod
from rewardsweep.study.atomic import atomic_write_json
from rewardsweep.study.layout import StudyPaths, trial_name
from rewardsweep.study.resume import plan_state
from rewardsweep.study.timestamps import utc_now

__all__ = ["design_for", "fix_design", "ConfigState", "look_states", "wanted_trials", "LookScheduler",
           "Looks", "read_log"]

FAILED = "failed"       # the state of a configuration stopped by a failed trial


# --------------------------------------------------------------------------- the design

def design_for(spec: Any, n_configs: int) -> SequentialDesign:
    """The design a sequential spec asks for, over ``n_configs`` reward configurations (a
    :class:`UserError` naming the spec's seeds when no look could make a claim)."""
    try:
        return cached_design(**_plan(spec, n_configs))
    except ValueError as exc:
        raise UserError(f"{spec.where('seeds')}: seeds: {exc}") from None


def _plan(spec: Any, n_configs: int) -> dict[str, Any]:
    """What the spec decides of the design (``analysis.sequential.study_look``'s ``plan``)."""
    seq = spec.sequential
    return {"initial": seq.initial, "step": seq.step, "max_seeds": seq.max, "alpha": seq.alpha,
            "effect": seq.effect, "margin": seq.margin, "n_configs": n_configs}


def keep_log(paths: StudyPaths, log: dict[str, Any] | None, look: StudyLook,
             configurations: list[str] | None = None) -> None:
    """Store ``sequential.json`` (``log``: as read; None before the first trial): the design
    ``look`` made, with the ``configurations``; the SD once the first look fixed it (never
    over an SD already stored); one write for both. The one writer of the design: the
    launch (:class:`Looks`) and the scheduler (an SD fixed mid-run) both store through it."""
    if log is None:
        log = _new_log(look.made, configurations)
    elif look.settled is None or log["design"].get("sd") is not None:
        return
    if look.settled is not None:
        log["design"] = look.settled
        log["sd_fixed_at"] = utc_now()
    atomic_write_json(paths.sequential, log, indent=1)


def _new_log(made: dict[str, Any], configurations: list[str] | None) -> dict[str, Any]:
    """A new ``sequential.json``: the design and its method (``made``), before any decision."""
    return {**made, "configurations": configurations, "fixed_at": utc_now(), "decisions": []}


def read_log(paths: StudyPaths) -> dict[str, Any] | None:
    """``sequential.json`` (the design and the decisions launch took), or None."""
    try:
        return json.loads(paths.sequential.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UserError(f"{paths.sequential}: cannot read the sequential design ({exc}); restore it from a "
                        f"backup: the study's decisions depend on it") from None


def fix_design(paths: StudyPaths, design: SequentialDesign, configurations: list[str], where: str,
               write: bool = True) -> SequentialDesign:
    """The design this study decides with: the stored one (``sequential.json``) when there is
    one, else ``design``, stored before the first trial (``write``). A spec that would change
    the plan (looks, alpha, effect, margin, m) or the configurations is refused (``where``:
    "file:line" of its seeds). A study started under an older rule keeps it: the stored
    design, boundaries included, decides it as it was decided. (A launch does this in
    :class:`Looks`, from one :func:`~rewardsweep.analysis.sequential.study_look`.)"""
    log = read_log(paths)
    if log is not None:
        stored = SequentialDesign.from_dict(log["design"])
        _refuse_changes(paths, log, changed_inputs(stored, design), configurations, where)
        return stored
    if write:
        atomic_write_json(paths.sequential, _new_log({"design": design.to_dict(), "method": design.method},
                                                     configurations), indent=1)
    return design


def _refuse_changes(paths: StudyPaths, log: dict[str, Any], changed: list[str], configurations: list[str],
                    where: str) -> None:
    """A :class:`UserError` when the spec changes the stored design's plan (``changed``) or
    the configurations."""
    if not changed and log.get("configurations", configurations) != configurations:
        changed = ["the configurations (other config ids: a grid value or a shared setting changed)"]
    if changed:
        raise UserError(f"{where}: seeds: the sequential design of this study was fixed before its first "
                        f"trial ({paths.sequential}) and this spec changes it ({', '.join(changed)}); "
                        f"decisions under a changed plan lose their error guarantee: restore the spec, or "
                        f"give the study a new name")


def log_decisions(paths: StudyPaths, decided: list[dict[str, Any]]) -> None:
    """Add decisions launch just acted on to ``sequential.json`` (kept across launches; a
    configuration stopped by a failed trial is decided again once ``--retry-failed`` reran it)."""
    log = read_log(paths) or {}
    new = {d["config_id"]: d for d in decided}
    kept = [d for d in log.get("decisions", []) if not (d["decision"] == FAILED and d["config_id"] in new)]
    known = {d["config_id"] for d in kept}
    log["decisions"] = kept + [d for cid, d in new.items() if cid not in known]
    atomic_write_json(paths.sequential, log, indent=1)


def power_lines(design: SequentialDesign) -> list[str]:
    """What the dry run and the launch say of the design's power (simulated, seeded)."""
    if not design.robust:
        return [f"decided by the rewardsweep 0.3 rule (per-batch t-tests, exact only for normal differences): "
                f"this study was started with it"]
    lines = [f"claims from {design.first_claim} seeds (fewer cannot reach alpha/2m = {design.level:.3g} "
             f"without assuming normal differences)"]
    sd80 = sd_for_power(design)
    if design.sd is not None:
        lines.append(f"power for effect {design.effect:g}: {power(design, design.sd):.0%} at the SD of the paired "
                     f"differences the first look measured ({design.sd:.3g} points); 80% at SD <= {sd80:.3g}")
    else:
        lines.append(f"power for effect {design.effect:g}: 80% while the SD of the paired differences is at most "
                     f"{sd80:.3g} points ({power(design, 2 * sd80):.0%} at {2 * sd80:.3g}); the first look "
                     f"measures it and the report states the power at it")
    if design.margin is not None:
        from rewardsweep.analysis.sequential import equivalence_rate

        lines.append(f"with margin {design.margin:g}: a configuration with no difference ends equivalent in "
                     f"{equivalence_rate(design, sd80):.0%} of studies at SD {sd80:.3g} (null configurations run "
                     f"until equivalence is shown: a margin costs seeds)")
    return lines


# --------------------------------------------------------------------------- states from records

@dataclass(frozen=True)
class ConfigState:
    """One reward configuration's sequential state, as the records say."""

    config_id: str
    control_id: str
    outcome: Outcome
    failed: str | None = None      # "seed 3: diverged" when a trial stopped it

    @property
    def decision(self) -> str:
        return FAILED if self.failed else self.outcome.decision

    @property
    def open(self) -> bool:
        return self.failed is None and not self.outcome.done

    @property
    def seeds_needed(self) -> int:
        """Seeds (0..n-1) its next look needs; 0 when decided."""
        return self.outcome.next_seeds if self.open else 0


def _arm(recs: dict[str, dict], config_id: str, arm: str, max_seeds: int) -> dict[int, tuple[str, float]]:
    """seed -> (status, final mIoU) of one arm's records."""
    out = {}
    for seed in range(max_seeds):
        r = recs.get(trial_name(config_id, arm, seed))
        if r is not None:
            out[seed] = (r.get("status"), r.get("miou_final") or 0.0)
    return out


def _arms(plans: Iterable[Any], recs: dict[str, dict], max_seeds: int) -> dict[str, tuple]:
    """config id -> (control id, its records by seed, the control's) of every reward configuration."""
    out: dict[str, tuple] = {}
    for plan in plans:
        if plan.arm == arms.REWARD.name and plan.config_id not in out:
            out[plan.config_id] = (plan.control_id, _arm(recs, plan.config_id, arms.REWARD.name, max_seeds),
                                   _arm(recs, plan.control_id, arms.CONTROL.name, max_seeds))
    return out


def look_states(design: SequentialDesign | dict | None, plans: Iterable[Any], recs: dict[str, dict],
                plan: dict[str, Any] | None = None) -> tuple[StudyLook, dict[str, ConfigState]]:
    """One reading of the records (``recs``: trial name -> record) against the design
    (:func:`~rewardsweep.analysis.sequential.study_look`: the design with its SD fixed once
    every first look is in, each configuration's outcome, what to store), and every reward
    configuration's state. ``design``/``plan``: as ``study_look`` takes them (a launch
    hands the stored design, or None, with the spec's plan)."""
    pairs = _arms(plans, recs, plan["max_seeds"] if plan is not None else design.max_seeds)
    look = study_look(design, {cid: (reward, control) for cid, (_, reward, control) in pairs.items()}, plan)
    return look, {cid: ConfigState(cid, pairs[cid][0], outcome, None if outcome.done else look.stopped[cid])
                  for cid, outcome in look.outcomes.items()}


def wanted_trials(plans: Iterable[Any], states: dict[str, ConfigState]) -> list[Any]:
    """The trials the open configurations' next looks need: their own, their paired control's,
    the control's control_grid variants' and the no-op reference's, for seeds below the
    look's count, in the order they should run."""
    plans = list(plans)
    need: dict[str, int] = {}   # config id -> seeds needed
    for state in states.values():
        if state.seeds_needed:
            for cid in (state.config_id, state.control_id):
                need[cid] = max(need.get(cid, 0), state.seeds_needed)
    variants = {p.config_id: p.control_id for p in plans
                if p.arm == arms.CONTROL.name and p.control_id != p.config_id}
    for variant, control in variants.items():
        if control in need:
            need[variant] = max(need.get(variant, 0), need[control])
    # every other paired arm (the no-op reference, ...) runs the seeds of what names it
    linked = [a.link for a in arms.paired() if a.link and a is not arms.CONTROL]
    for p in plans:
        if p.arm == arms.REWARD.name and p.config_id in need:
            for link in linked:
                rid = p.config.get(link)
                if rid:
                    need[rid] = max(need.get(rid, 0), need[p.config_id])
    # Controls first: every configuration's look waits for them. Then each configuration's
    # trials together, so configurations finish their looks one after another and the next
    # looks are queued while slots are still busy with the others (no barrier at a look).
    rank = {cid: i for i, cid in enumerate(dict.fromkeys(p.config_id for p in plans))}
    picked = [p for p in plans if p.seed < need.get(p.config_id, 0)]
    return sorted(picked, key=lambda p: (arms.run_order(p.arm), rank[p.config_id] if p.arm == arms.REWARD.name else 0,
                                         p.seed))


def final_records(state: Any) -> dict[str, dict]:
    """trial name -> record of every trial that will not run again, from a
    :func:`rewardsweep.study.resume.plan_state` (its rule: a failed record cut short by an
    interrupt, or any failed one with ``retry_failed``, is not final)."""
    todo = {p.trial_name for p in state.todo}
    return {name: record for name, record in state.existing.items() if name not in todo}


def read_records(paths: StudyPaths, plans: Iterable[Any], retry_failed: bool = False) -> dict[str, dict]:
    """:func:`final_records` of the study folder as it is now."""
    return final_records(plan_state(plans, paths, retry_failed=retry_failed))


def decision_entry(state: ConfigState) -> dict[str, Any]:
    """What the log and W&B keep of a decision."""
    last = state.outcome.looks[-1] if state.outcome.looks else None
    return {"config_id": state.config_id, "control_id": state.control_id, "decision": state.decision,
            "decided_at": state.outcome.decided_at, "looks": len(state.outcome.looks),
            "z": None if last is None else last.z, "upper": None if last is None else last.upper,
            "failed": state.failed, "at": utc_now()}


# --------------------------------------------------------------------------- the scheduler

class LookScheduler(Searcher):
    """Hands Ray Tune the trials of each configuration's next look as soon as it is due.

    ``runnable``: the trial names this launch may run (a job exists for each). After every
    completed trial the records decide again; a configuration whose look is complete and
    undecided gets its next look's trials queued at once, a decided one gets nothing more.
    ``on_decision(entries)`` is told of new decisions (progress lines, the log),
    ``on_queue(n)`` of trials a look added.
    """

    def __init__(self, design: SequentialDesign, plans: list[Any], paths: StudyPaths, runnable: set[str],
                 recs: dict[str, dict], trial_key: str, on_decision=None, on_queue=None) -> None:
        super().__init__()
        self.design, self.plans, self.paths, self.trial_key = design, plans, paths, trial_key
        self.runnable, self.recs = set(runnable), recs
        self.queue: list[str] = []
        self.in_flight: dict[str, str] = {}     # Tune trial id -> trial name
        self.suggested: set[str] = set()        # every name handed to Tune (never twice)
        self.on_decision, self.on_queue = on_decision, on_queue
        self.decided: set[str] = set()          # configurations decided (by earlier launches: not announced)
        self.states = self._replan(announce=False)

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its search algorithm with the experiment state; records are the truth
        return {"design": self.design}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict | None:
        if self.queue:
            name = self.queue.pop(0)
            self.in_flight[trial_id] = name
            self.suggested.add(name)
            return {self.trial_key: name}
        return None if self.in_flight else Searcher.FINISHED

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        name = self.in_flight.pop(trial_id, None)
        if name is None:
            return
        record = self._record(name, result)
        # no record: the trial died (the driver records it as failed after the experiment);
        # its configuration stops here rather than waiting for a seed that will not come
        self.recs[name] = record if record is not None else {"status": "failed", "arm": name.split("-")[1],
                                                               "miou_final": None}
        self.states = self._replan()

    def _record(self, name: str, result: dict | None) -> dict | None:
        """The trial's record: on the study folder, or shipped back in its final result (a
        node without the shared filesystem), then written here so every reader sees it."""
        path = self.paths.records / f"{name}.json"
        try:
            record = records_mod.read_record(path)
            if records_mod.record_problem(record) is None:
                return record
        except (OSError, ValueError):
            pass
        shipped = unflatten_dict(result or {}).get("record")
        if isinstance(shipped, dict) and records_mod.record_problem(shipped) is None:
            records_mod.write_record(path, shipped)
            return shipped
        return None

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: a relaunch re-derives everything from the records."""

    def _replan(self, announce: bool = True) -> dict[str, ConfigState]:
        look, states = look_states(self.design, self.plans, self.recs)
        if look.settled is not None:
            self.design = look.design              # the first look is in: the design SD is fixed
            log = read_log(self.paths)
            if log is not None:
                keep_log(self.paths, log, look)
        new = [s for s in states.values() if not s.open and s.config_id not in self.decided]
        self.decided |= {s.config_id for s in new}
        busy = set(self.queue) | self.suggested | set(self.recs)
        added = [p.trial_name for p in wanted_trials(self.plans, states)
                 if p.trial_name not in busy and p.trial_name in self.runnable]
        self.queue.extend(added)
        if announce and new and self.on_decision is not None:
            self.on_decision([decision_entry(s) for s in new])
        if added and self.on_queue is not None:
            self.on_queue(len(added))
        return states


# --------------------------------------------------------------------------- in a launch

class Looks:
    """A sequential study in this launch: its design, the records' decisions, what is due.
    The launch's ``sweep.schedule.Schedule`` for a sequential study."""

    def __init__(self, spec, expansion, paths: StudyPaths, state: Any, fix: bool = False) -> None:
        """``state``: the launch's ``resume.plan_state`` of the study (what is final);
        ``fix``: store the design (``sequential.json``), under the study lock."""
        self.spec, self.paths, self.plans = spec, paths, expansion.trials
        self.recs = final_records(state)
        # decisions are taken on the stored design (boundaries, SD) once there is one
        log = read_log(paths)
        configurations = sorted({p.config_id for p in self.plans})
        try:
            look, self.states = look_states(None if log is None else log["design"], self.plans, self.recs,
                                            plan=_plan(spec, expansion.reward_configs))
        except DesignError as exc:
            raise UserError(f"{spec.where('seeds')}: seeds: {exc}") from None
        if log is not None:
            _refuse_changes(paths, log, look.changed, configurations, spec.where("seeds"))
        self.design, self.design_record = look.design, look.record
        if fix:
            keep_log(paths, log, look, configurations)
        self.wanted = [p.trial_name for p in wanted_trials(self.plans, self.states) if p.trial_name not in self.recs]
        self.decided: list[dict[str, Any]] = []
        failed = sum(1 for st in self.states.values() if st.failed)
        self.nothing_due = ("nothing to run: every configuration is decided"
                            + (f" or stopped by a failed trial ({failed}; `--retry-failed` reruns failed ones)"
                               if failed else ""))
        self.due = (f"{len(self.wanted)} due at the open configurations' next looks (at most {len(state.todo)}: "
                    f"seeds are added only while a configuration is undecided)")
        self.running = f"running each look's trials as its configuration comes due ({len(self.wanted)} now)"

    def print_plan(self, console: Console) -> None:
        d = self.design
        console.print(f"sequential: looks at {', '.join(map(str, d.looks))} seeds; alpha {d.alpha:g} over "
                      f"{d.n_configs} configuration(s) and every look; effect {d.effect:g} points"
                      + (f", margin {d.margin:g}" if d.margin else "")
                      + f"; |z| boundaries {', '.join(f'{c:.2f}' if c < float('inf') else '-' for c in d.efficacy)}",
                      highlight=False)
        for line in power_lines(d):
            console.print(f"sequential: {line}", highlight=False)
        counts = Counter(s.decision for s in self.states.values())
        console.print("sequential: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
                      + f"; {len(self.wanted)} trial(s) due now", highlight=False)

    def searcher(self, jobs: dict[str, dict], view: Any, trial_key: str):
        def on_decision(entries: list[dict[str, Any]]) -> None:
            self.decided += entries
            log_decisions(self.paths, entries)
            for e in entries:
                view.note(f"{e['config_id']}: {e['decision']}"
                          + (f" at {e['decided_at']} seeds" if e.get("decided_at") else "")
                          + (f" ({e['failed']})" if e.get("failed") else ""))

        return LookScheduler(self.design, self.plans, self.paths, set(jobs), self.recs, trial_key,
                             on_decision=on_decision, on_queue=view.add_planned)

    def summarise(self, plans: list[Any], wb: Any, labels: dict[str, str], notes: list[str]) -> list[Any]:
        """The decisions this launch took, as W&B runs; the plans a sequential study counts
        (what ran or is due) and a line per decision kind."""
        if wb is not None and wb.enabled and self.decided:
            from rewardsweep.sweep.wandb_log import log_decisions as log_decision_runs

            log_decision_runs(wb, self.decided, labels, self.design_record, self.spec.name)
            notes.append(f"W&B: {len(self.decided)} decision run(s) (job type 'decision', in each "
                         f"configuration's group)")
        recs = read_records(self.paths, self.plans)
        _, states = look_states(self.design, self.plans, recs)
        due = {p.trial_name for p in wanted_trials(self.plans, states)}
        counts = Counter(s.decision for s in states.values())
        used = sum(1 for p in self.plans if p.arm == arms.REWARD.name and p.trial_name in recs)
        notes.append("sequential: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
                     + f"; {used} reward trial(s) run of the {len(states) * self.design.max_seeds} a fixed "
                       f"study of {self.design.max_seeds} seeds would run")
        return [p for p in plans if p.trial_name in recs or p.trial_name in due]
