"""One Ray Tune experiment of a launch's trials, tracked from the driver.

One Ray trial per (config, arm, seed); the Ray connection is :mod:`.ray_cluster`, what runs
inside a worker :mod:`.worker`. What keeps the per-trial overhead low (measured in
``benchmarks/bench_orchestration.py``):

- ``reuse_actors=True``: a Ray worker runs trial after trial, so torch, MMSeg and W&B are
  imported, and the W&B service started, once per worker rather than once per trial.
- W&B logs from inside the trial, not through a driver-side logger callback.
- Trials report to Tune only at evaluations and at the end (a handful of results per
  trial), never per step; trial configs travel once through the object store
  (``tune.with_parameters``) and Tune's param space holds only their names.
- Longest trials are scheduled first (each arm kind's cost, ``study.arms``), so at the end
  slots do not idle behind one long trial.

If a trial dies without writing a record (worker killed), the driver writes a ``failed``
one (``rewardsweep.study.records.lost_record``). Storage failing stops the experiment at
once (:class:`_StorageGate`): trials still to run, or cut short, run on the next launch.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from rewardsweep.sweep.ray_cluster import _quiet_loggers  # first: Tune's environment, before Tune is imported

from ray.tune import Callback, Stopper  # noqa: E402  (after the environment above)

from rewardsweep import storage  # noqa: E402
from rewardsweep.study import arms  # noqa: E402
from rewardsweep.sweep.worker import TRIAL_KEY, _trainable  # noqa: E402

# --------------------------------------------------------------------------- driver side

class TrialListener(Protocol):
    def trial_started(self, key: str, attempt: int) -> None: ...
    def trial_progress(self, key: str, result: dict[str, Any]) -> None: ...
    def trial_finished(self, key: str, result: dict[str, Any]) -> None: ...
    def trial_errored(self, key: str, error: str, retrying: bool, result: dict[str, Any]) -> None: ...


@dataclass
class TrialOutcome:
    """What the driver saw of one trial during this launch."""

    key: str
    state: str = "pending"        # pending | running | finished | diverged | failed | unsaved
    attempts: int = 0
    retries: int = 0
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None


def _error_text(trial) -> str:
    try:
        text = Path(trial.error_file).read_text().strip() if trial.error_file else ""
    except OSError:
        text = ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "the trial's worker died"


class _StorageGate(Stopper):
    """Stops the whole experiment once a trial reports that the study's storage is failing,
    or that its start checkpoint or its node's code is wrong: every further trial would
    train for nothing, or from the wrong thing. Holds the first such error line and its
    kind (``storage`` or ``stop``)."""

    def __init__(self) -> None:
        self.error: str | None = None
        self.kind: str | None = None

    def __getstate__(self):
        return {}  # Tune pickles its run config; the live state stays out of it

    def __setstate__(self, state):
        self.error = self.kind = None

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.error is not None


class _Tracker(Callback):
    """Driver-side bookkeeping; cheap (runs in the driver loop, no process per trial)."""

    def __getstate__(self):
        # Tune pickles its run config (experiment state); the live view stays out of it
        return {}

    def __setstate__(self, state):
        self._outcomes, self._listener, self._gate = {}, None, _StorageGate()

    def __init__(self, outcomes: dict[str, TrialOutcome], listener: TrialListener | None, gate: _StorageGate):
        self._outcomes, self._listener, self._gate = outcomes, listener, gate

    def _out(self, trial) -> TrialOutcome:
        key = trial.config[TRIAL_KEY]
        return self._outcomes.setdefault(key, TrialOutcome(key))

    def on_trial_start(self, iteration, trials, trial, **info):
        out = self._out(trial)
        out.state, out.attempts, out.started = "running", out.attempts + 1, time.time()
        if self._listener:
            self._listener.trial_started(out.key, out.attempts)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        out = self._out(trial)
        if result.get("final"):
            out.result = dict(result)
            stop = result.get("storage_error") or result.get("stop_error")
            if stop:  # the gate stops the experiment before on_trial_complete
                kind = "storage" if result.get("storage_error") else "stop"
                out.state, out.error, out.ended = ("unsaved" if kind == "storage" else "not_run"), stop, time.time()
                if self._gate.error is None:
                    self._gate.error, self._gate.kind = stop, kind
        elif self._listener:
            self._listener.trial_progress(out.key, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        out = self._out(trial)
        res = out.result or dict(trial.last_result or {})
        out.state = res.get("status") or "finished"
        out.error, out.ended = res.get("error"), time.time()
        if self._listener:
            self._listener.trial_finished(out.key, res)

    def _errored(self, trial, retrying: bool):
        out = self._out(trial)
        res = out.result if out.result.get("final") else {}
        out.error = res.get("error") or _error_text(trial)
        if retrying:
            out.retries += 1
            out.state = "pending"
        else:
            out.state, out.ended = "failed", time.time()
        if self._listener:
            self._listener.trial_errored(out.key, out.error, retrying, res)
        if retrying:
            out.result = {}

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._errored(trial, retrying=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._errored(trial, retrying=False)



def trial_cost(config: dict[str, Any]) -> float:
    """A rough relative cost, to schedule the longest trials first (LPT): the last trials
    to start are the short ones, so slots do not idle behind one long trial at the end.
    Each arm kind says what a step costs it (``study.arms``)."""
    steps = float(config.get("steps") or 1) * float(config.get("batch_size") or 1)
    kind = arms.KINDS.get(config.get("arm"))
    return kind.cost(steps, config) if kind is not None else steps


def run_experiment(jobs: dict[str, dict[str, Any]], *, trial_fn: Callable[..., dict], storage_path: str,
                   name: str, cpu: float = 1, gpu: float = 0, max_concurrent: int | None = None,
                   retries: int = 0, wandb_options: dict[str, Any] | None = None,
                   listener: TrialListener | None = None, verbose: bool = False,
                   storage_errors: list[str] | None = None, searcher: Any = None,
                   stop_errors: list[str] | None = None) -> dict[str, TrialOutcome]:
    """Run ``jobs`` (trial name -> {"config", "params"}) as one Ray Tune experiment.

    Ray must be initialised. Without ``searcher`` every job runs (longest first); with one
    (a Tune ``Searcher`` that suggests ``{TRIAL_KEY: name}`` and keeps the names it handed
    out in ``suggested``, e.g. a sequential study's ``LookScheduler``) Tune runs what it
    suggests, when it suggests it, and only those trials were part of the experiment.
    Returns what happened to each trial of the experiment; trials that never ran
    (the launch was interrupted, or stopped because storage failed) stay ``pending`` or
    ``running``. The first storage error line, if any, is appended to ``storage_errors``;
    the first line of a trial that must not run (a damaged start file, a node with other
    code) to ``stop_errors``: either stops the experiment.
    """
    from ray import tune

    _quiet_loggers(verbose)
    order = sorted(jobs, key=lambda k: -trial_cost(jobs[k]["config"]))  # longest first (stable)
    outcomes = {key: TrialOutcome(key) for key in order}
    gate = _StorageGate()
    trainable = tune.with_parameters(_trainable, jobs=jobs, trial_fn=trial_fn, wandb_options=wandb_options,
                                     cwd=os.getcwd())
    resources = {"cpu": cpu, "gpu": gpu} if gpu else {"cpu": cpu}
    space = {"param_space": {}} if searcher is not None else {"param_space": {TRIAL_KEY: tune.grid_search(order)}}
    search = {"search_alg": searcher, "num_samples": len(jobs)} if searcher is not None else {}
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        **space,
        tune_config=tune.TuneConfig(
            reuse_actors=True, max_concurrent_trials=max_concurrent, **search,
            trial_name_creator=lambda t: t.config[TRIAL_KEY],
            trial_dirname_creator=lambda t: t.config[TRIAL_KEY],
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=storage_path, verbose=0,
            failure_config=tune.FailureConfig(max_failures=retries, fail_fast=False),
            callbacks=[_Tracker(outcomes, listener, gate)], stop=gate,
        ),
    )
    try:
        tuner.fit()
    except Exception as exc:  # noqa: BLE001
        failure = storage.storage_failure(exc, storage_path)
        if gate.error is None and failure is None:
            raise
        # Tune's own files live on the same failing storage (its experiment state, error
        # files it then cannot read back): the storage error is the news, not this
        if gate.error is None:
            gate.error, gate.kind = f"{failure.filename}: cannot write: {storage.describe(failure)}", "storage"
    if gate.error is not None and gate.kind == "storage" and storage_errors is not None:
        storage_errors.append(gate.error)
    if gate.error is not None and gate.kind == "stop" and stop_errors is not None:
        stop_errors.append(gate.error)
    if searcher is not None:   # jobs no suggestion asked for were never part of this experiment
        return {key: out for key, out in outcomes.items() if key in searcher.suggested}
    return outcomes

