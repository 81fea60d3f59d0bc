"""What is left to run: the one owner of "is this trial final?".

Trial records are the source of truth. A launch runs the (config, arm, seed) triples of
the spec that do not yet have a *final* record: ``finished`` and ``diverged`` are final
(re-running a diverged trial would diverge again), ``failed`` is final unless the user
asks for ``--retry-failed``, or unless the trial was cut short rather than failed: its
record has no error (Ctrl+C reached the worker), or the last launch that scheduled it
was interrupted while it was pending or running (:func:`interrupted_trials`). Records of
trials the spec no longer names (seeds lowered, a grid value removed) are kept and left
alone. So an interrupted study resumes, and raising ``seeds`` tops it up, by launching
the same spec again.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping

from rewardsweep.study import records
from rewardsweep.study.layout import StudyPaths, iter_record_paths, study_name, trial_name

CUT_SHORT_STATES = ("pending", "running")   # a trial's state in a launch log when the launch stopped


@dataclass
class PlanState:
    """The trials of a spec sorted by what their records say."""

    todo: list[Any] = field(default_factory=list)            # no record, or failed + retry_failed
    done: list[Any] = field(default_factory=list)            # finished or diverged
    failed_kept: list[Any] = field(default_factory=list)     # failed, not retried (no --retry-failed)
    unreadable: list[Path] = field(default_factory=list)     # records that are not valid (rerun)
    problems: list[str] = field(default_factory=list)        # why, one line each, naming the file
    retried_failed: list[Any] = field(default_factory=list)  # failed and scheduled again
    interrupted: list[Any] = field(default_factory=list)     # failed record left by an interruption (rerun)
    existing: dict[str, dict] = field(default_factory=dict)  # key -> record, for the plans that have one
    orphans: int = 0                                         # records the spec no longer names


def interrupted_trials(paths: StudyPaths, current: Mapping[str, str] | None = None) -> set[str]:
    """Trials that the last launch to schedule them left pending or running: a ``failed``
    record of such a trial is not final (stopped from outside, or retries left), so it runs
    again.

    Reads the launch logs (``ray/launch-*/rewardsweep-launch.json``, oldest first);
    ``current`` is ``{trial name: state}`` of a launch whose log is not written yet, and
    counts as the newest.
    """
    last: dict[str, str] = {}
    for log in paths.launch_logs():
        try:
            trials = json.loads(log.read_text()).get("trials", {})
        except (OSError, json.JSONDecodeError):
            continue
        for key, info in trials.items():
            last[key] = info.get("state", "")
    last.update(current or {})
    return {key for key, state in last.items() if state in CUT_SHORT_STATES}


def plan_state(plans: Iterable[Any], paths: StudyPaths, retry_failed: bool = False,
               interrupted: Collection[str] | None = None, retry_diverged: bool = False,
               study: str | None = None) -> PlanState:
    """Sort ``plans`` (anything with ``config_id``, ``arm``, ``seed``) by their records.

    Reads the records and, unless ``interrupted`` (trial names, see
    :func:`interrupted_trials`) is given, the launch logs. A record is valid by
    :func:`.records.record_problem`, with its file's name and ``study`` (the launch's spec
    name; default: :func:`.layout.study_name`); an invalid one reruns. Records the
    spec no longer names are kept, unless they are invalid too (set aside with the rest).
    """
    state = PlanState()
    named: set[str] = set()
    study = study or study_name(paths.root)
    interrupted = interrupted_trials(paths) if interrupted is None else interrupted
    for plan in plans:
        key = trial_name(plan.config_id, plan.arm, plan.seed)
        named.add(key)
        path = paths.record(plan.config_id, plan.arm, plan.seed)
        if not path.exists():
            state.todo.append(plan)
            continue
        try:
            record = records.read_record(path, study=study)
        except ValueError as exc:
            state.unreadable.append(path)
            state.problems.append(str(exc))
            state.todo.append(plan)
            continue
        state.existing[key] = record
        if record.get("status") == "failed" and (not record.get("error") or key in interrupted):
            # stopped from outside (a failed record without an error: Ctrl+C reached the
            # worker) or interrupted with retries left: not a final failure; run it again
            state.interrupted.append(plan)
            state.todo.append(plan)
        elif record.get("status") == "diverged" and retry_diverged:
            state.retried_failed.append(plan)
            state.todo.append(plan)
        elif records.is_done(record):
            state.done.append(plan)
        elif retry_failed:
            state.retried_failed.append(plan)
            state.todo.append(plan)
        else:
            state.failed_kept.append(plan)
    for path in iter_record_paths(paths.root):
        if path.stem in named:
            continue
        try:
            records.read_record(path, study=study)
            state.orphans += 1
        except ValueError as exc:  # not this study's record of any trial: set aside, never counted
            state.unreadable.append(path)
            state.problems.append(str(exc))
    return state


def set_aside_invalid(paths: StudyPaths, invalid: Iterable[Path]) -> Path | None:
    """Move invalid records to ``records/invalid/`` before their trials rerun: the rerun's
    record takes their place, and nothing a user might still want is overwritten."""
    target = paths.invalid_records
    moved = None
    for path in invalid:
        target.mkdir(exist_ok=True)
        os.replace(path, target / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
        moved = target
    return moved
