"""How a launch schedules its trials: a fixed study runs every trial without a final
record; a sequential one runs what its configurations' next looks need (``sequential.Looks``).

Both answer the same few questions, so ``launch`` reads the same for either:

    schedule = plan_schedule(spec, expansion, paths, state)
    schedule.wanted              # trial names due now (a dry run lists them)
    schedule.print_plan(console) # the plan, before anything runs
    schedule.searcher(...)       # the Tune searcher that hands out trials (None: all at once)
    schedule.ran(...)            # the jobs and outcomes this launch really ran
    schedule.after(...)          # bookkeeping after the experiment (W&B decision runs)
    schedule.counted(...)        # the plans the summary counts

The one branch on the study mode is :func:`plan_schedule`.
"""

from __future__ import annotations

from typing import Any, Protocol

from rich.console import Console

from rewardsweep.study.layout import StudyPaths


class Schedule(Protocol):
    wanted: list[str]

    def print_plan(self, console: Console) -> None: ...
    def due(self, state: Any) -> str: ...
    def nothing_due(self) -> str: ...
    def running(self, jobs: int) -> str: ...
    def total(self, jobs: int) -> int: ...
    def searcher(self, jobs: dict[str, dict], view: Any, trial_key: str) -> Any | None: ...
    def ran(self, searcher: Any, jobs: dict[str, dict], outcomes: dict[str, Any]) -> tuple[dict, dict]: ...
    def after(self, wb: Any, labels: dict[str, str], notes: list[str]) -> None: ...
    def counted(self, plans: list[Any], notes: list[str]) -> list[Any]: ...


class FixedSchedule:
    """Every trial of the spec without a final record, in one experiment, no searcher."""

    def __init__(self, state: Any) -> None:
        self.wanted = [p.trial_name for p in state.todo]

    def print_plan(self, console: Console) -> None:
        """Nothing to add to the trial table."""

    def due(self, state: Any) -> str:
        return f"{len(state.todo)} to run"

    def nothing_due(self) -> str:
        return "nothing to run: every trial of the spec has a final record"

    def running(self, jobs: int) -> str:
        return f"running {jobs} trial(s)"

    def total(self, jobs: int) -> int:
        return jobs

    def searcher(self, jobs: dict[str, dict], view: Any, trial_key: str) -> None:
        return None

    def ran(self, searcher: Any, jobs: dict[str, dict], outcomes: dict[str, Any]) -> tuple[dict, dict]:
        return jobs, outcomes

    def after(self, wb: Any, labels: dict[str, str], notes: list[str]) -> None:
        """Nothing beyond the trials' own W&B runs."""

    def counted(self, plans: list[Any], notes: list[str]) -> list[Any]:
        return plans


def plan_schedule(spec: Any, expansion: Any, paths: StudyPaths, state: Any, fix: bool = False) -> Schedule:
    """The study's schedule; ``fix``: a sequential study stores its design (under the lock)."""
    if spec.sequential:
        from rewardsweep.sweep.sequential import Looks

        return Looks(spec, expansion, paths, state, fix)
    return FixedSchedule(state)
