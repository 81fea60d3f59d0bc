"""What a launch plans, and how it schedules its trials: a fixed study runs every trial
without a final record; a sequential one runs what its configurations' next looks need
(``sequential.Looks``).

:func:`read_plan` reads the plan in one go (the study folder, what its records say, the
schedule), so ``launch`` reads the same for either mode:

    plan = read_plan(spec, expansion, retry)   # plan.paths, plan.state, plan.schedule, plan.due
    schedule.wanted              # trial names due now (a dry run lists them)
    schedule.print_plan(console) # the plan, before anything runs
    schedule.searcher(...)       # the Tune searcher that hands out trials (None: all at once);
                                 # the experiment then holds only the trials it handed out
    schedule.summarise(...)      # W&B decision runs; the plans the summary counts

A schedule says in words what is due when it is made (``due``, ``nothing_due``,
``running``): the launch prints them, it does not ask again. The one branch on the study
mode is :func:`plan_schedule`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console

from rewardsweep.study.layout import StudyPaths
from rewardsweep.study.resume import PlanState, plan_state


class Schedule(Protocol):
    wanted: list[str]        # trial names due now
    due: str                 # "N to run" / "N due at the next looks"
    nothing_due: str         # why a launch with nothing due ends
    running: str             # what the experiment runs

    def print_plan(self, console: Console) -> None: ...
    def searcher(self, jobs: dict[str, dict], view: Any, trial_key: str) -> Any | None: ...
    def summarise(self, plans: list[Any], wb: Any, labels: dict[str, str], notes: list[str]) -> list[Any]: ...


class FixedSchedule:
    """Every trial of the spec without a final record, in one experiment, no searcher."""

    def __init__(self, state: PlanState) -> None:
        self.wanted = [p.trial_name for p in state.todo]
        self.due = f"{len(state.todo)} to run"
        self.nothing_due = "nothing to run: every trial of the spec has a final record"
        self.running = f"running {len(state.todo)} trial(s)"

    def print_plan(self, console: Console) -> None:
        """Nothing to add to the trial table."""

    def searcher(self, jobs: dict[str, dict], view: Any, trial_key: str) -> None:
        return None

    def summarise(self, plans: list[Any], wb: Any, labels: dict[str, str], notes: list[str]) -> list[Any]:
        """Every plan counts; nothing beyond the trials' own W&B runs."""
        return plans


def plan_schedule(spec: Any, expansion: Any, paths: StudyPaths, state: PlanState, fix: bool = False) -> Schedule:
    """The study's schedule; ``fix``: a sequential study stores its design (under the lock)."""
    if spec.sequential:
        from rewardsweep.sweep.sequential import Looks

        return Looks(spec, expansion, paths, state, fix)
    return FixedSchedule(state)


@dataclass
class Plan:
    """A launch's plan: the spec and its trials, the study folder, what its records say
    (``state``, :func:`rewardsweep.study.resume.plan_state`) and the schedule, with what
    the launch says of it (``due``: the line before the trials run)."""

    spec: Any
    expansion: Any
    paths: StudyPaths
    state: PlanState
    schedule: Schedule
    retry: dict[str, bool]
    due: str

    @property
    def plans(self) -> list[Any]:
        return self.expansion.trials

    def done(self) -> set[str] | None:
        """Trial names with a final record (None before the study folder has records)."""
        if not self.paths.records.is_dir():
            return None
        todo = {p.trial_name for p in self.state.todo}
        return {p.trial_name for p in self.plans if p.trial_name not in todo}

    def again(self, fix: bool = True) -> "Plan":
        """Read again (under the study lock: another launch may have finished trials since);
        ``fix``: a sequential study stores its design now."""
        return read_plan(self.spec, self.expansion, self.retry, fix=fix)


def read_plan(spec: Any, expansion: Any, retry: dict[str, bool], fix: bool = False) -> Plan:
    """The plan of a loaded study (``spec``, ``expansion``: :func:`.spec.load_study`);
    ``retry``: ``retry_failed`` / ``retry_diverged``."""
    paths = StudyPaths(Path(spec.study_dir))
    state = plan_state(expansion.trials, paths, study=spec.name, **retry)
    schedule = plan_schedule(spec, expansion, paths, state, fix)
    state_words = (f"{len(state.failed_kept)} failed kept, " + schedule.due
                   + (f" ({len(state.retried_failed)} failed retried)" if state.retried_failed else "")
                   + (f" ({len(state.interrupted)} interrupted earlier)" if state.interrupted else ""))
    due = (f"[bold]{spec.name}[/]: {len(expansion.trials)} trials, {len(state.done)} already done, "
           + state_words)
    return Plan(spec, expansion, paths, state, schedule, dict(retry), due)
