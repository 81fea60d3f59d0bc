"""The worker side of a trial: what runs inside a Ray worker around ``trial_fn``.

A Ray worker runs trial after trial (``reuse_actors``): torch, MMSeg and W&B are imported
once per worker. W&B logs from inside the trial (``wandb_log.TrialLogger`` on its
``on_event``); the trial reports to Tune only at evaluations and at the end.

Failures: a trial that raises is retried by Ray (``FailureConfig(max_failures=retries)``);
each attempt's record is written by the trial itself, so after the last attempt a
``failed`` record remains. A trial that diverges (NaN loss) is *not* retried: the trial
code is deterministic given the seed, a retry would diverge again, so the wrapper records
it and returns normally. Storage failing (the study folder full or read-only) is not a
trial failure: the worker checks with a real write before it starts a trial and catches a
failing record write after; either way the trial ends ``unsaved`` (no record, no retry)
and the driver stops the experiment (``tune._StorageGate``).
"""

from __future__ import annotations

import copy
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

from rewardsweep import storage
from rewardsweep.sweep import ray_cluster  # noqa: F401  (Tune's environment, before Tune is imported)
from rewardsweep.code_identity import mismatch
from rewardsweep.config.trial import TrialConfig, trial_view
from rewardsweep.errors import ConfigError, StartCheckpointError, TrialDiverged, trial_error
from rewardsweep.study import layout, records

TRIAL_KEY = "trial"          # the only entry of Tune's param space: the trial's name
RUNTIME_KEY = "runtime"      # where the worker puts node id / host / attempt into the trial config

_WORKER_TRIALS = 0           # trials this worker process has run (shows actor reuse)


# --------------------------------------------------------------------------- worker side

def _runtime_info(attempt_started: float) -> dict[str, Any]:
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(),
                            "worker_trial_index": _WORKER_TRIALS}
    try:
        import ray

        if ray.is_initialized():  # (get_runtime_context() would start Ray outside of it)
            ctx = ray.get_runtime_context()
            info["node_id"] = ctx.get_node_id()
            info["node_ip"] = ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - not in Ray (a direct call in a test)
        pass
    try:
        import warnings

        import ray
        from ray import tune

        if not ray.is_initialized():
            raise RuntimeError("not in Ray")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # outside a Tune trial these warn and return None
            tctx = tune.get_context()
            info["ray_trial_id"] = tctx.get_trial_id()
            info["ray_experiment"] = tctx.get_experiment_name()
    except Exception:  # noqa: BLE001
        pass
    info["attempt_started"] = round(attempt_started, 3)
    return info


def _attempt_record(exc: BaseException, config: dict[str, Any], since: float) -> dict[str, Any] | None:
    """The record this failed attempt wrote: the one its exception carries
    (:class:`~rewardsweep.errors.TrialError`), else (a ``trial_fn`` other than
    ``run_trial``, or a config error) the file, if this attempt wrote it."""
    carried = trial_error(exc)
    if carried is not None and carried.record is not None:
        return carried.record
    trial = trial_view(config)
    if not trial.study_dir:
        return None
    path = layout.record_path(trial.study_dir, trial.config_id, trial.arm, trial.seed)
    try:
        if path.stat().st_mtime + 1.0 < since:
            return None
        return records.read_record(path)
    except (OSError, ValueError):
        return None


def _final_result(record: dict[str, Any] | None, status: str, error: str | None,
                  runtime: dict[str, Any], seconds: float, trial_s: float, wandb_s: float) -> dict[str, Any]:
    record = record or {}
    return {
        "final": True, "status": status, "error": error,
        "miou_start": record.get("miou_start"), "miou_final": record.get("miou_final"),
        "delta_miou": record.get("delta_miou"),
        # wall seconds in the worker: all of it, inside the trial function, in W&B start+finish
        "trial_seconds": seconds, "trial_fn_seconds": trial_s, "wandb_seconds": wandb_s,
        "timings": record.get("timings") or {},
        "node_id": runtime.get("node_id"), "host": runtime.get("host"), "pid": runtime.get("pid"),
        "worker_trial_index": runtime.get("worker_trial_index"),
        # the record itself, so the driver can keep it even without a shared filesystem
        "record": record or None,
    }


def run_one(job: dict[str, Any], trial_fn: Callable[..., dict], wandb_options: dict[str, Any] | None,
            report: Callable[[dict], None] | None = None, cwd: str | None = None) -> dict[str, Any]:
    """Run one trial attempt in this process: W&B run, the trial, the final report.

    Raises for a failed attempt (so Ray retries it); returns normally for finished and
    diverged trials.
    """
    global _WORKER_TRIALS
    from rewardsweep.sweep.wandb_log import TrialLogger

    began, clock0 = time.time(), time.perf_counter()
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)  # Tune switches to the trial folder; relative paths mean the launch folder
    config = copy.deepcopy(job["config"])
    runtime = _runtime_info(began)
    config[RUNTIME_KEY] = runtime
    trial = trial_view(config)  # its names, unchecked: the trial checks (and records) its config
    other_code = mismatch(job.get("driver"))
    if other_code:  # a node with another rewardsweep: its results would not be the driver's study
        where = runtime.get("node_ip") or runtime.get("host")
        return _stopped(f"trial {_job_name(trial)} on node {where}: {other_code}; install the driver's "
                        f"rewardsweep on every node (docs/cluster.md)", runtime, report, time.perf_counter() - clock0)
    if trial.study_dir:
        try:  # a second's write now rather than a trial's training lost at its record
            storage.check_writable(Path(trial.study_dir) / layout.RECORDS_DIRNAME, "records folder")
        except storage.StorageError as exc:
            return _unsaved(str(exc), runtime, report, time.perf_counter() - clock0, 0.0, 0.0)
    _WORKER_TRIALS += 1
    wandb_clock = time.perf_counter()
    logger = TrialLogger(wandb_options, config, job.get("params"), job.get("label")).start() if wandb_options else None
    wandb_s = time.perf_counter() - wandb_clock

    def on_event(event: dict[str, Any]) -> None:
        if logger is not None:
            logger.on_event(event)
        if report is not None and event.get("kind") == "eval":
            report({"final": False, "step": event.get("step"), "miou": event.get("miou")})

    clock = time.perf_counter()
    try:
        record = trial_fn(config, on_event=on_event)
    except StartCheckpointError as exc:  # no record: the driver checks the file again next launch
        wandb_s += _finish(logger, None, "failed", str(exc))
        return _stopped(str(exc), runtime, report, time.perf_counter() - clock0)
    except Exception as exc:
        trial_s = time.perf_counter() - clock
        failure = storage.storage_failure(exc, trial.study_dir) if trial.study_dir else None
        if failure is not None:  # the trial ran; its record could not be saved
            line = f"{failure.filename}: cannot write: {storage.describe(failure)}"
            wandb_s += _finish(logger, None, "failed", line)
            return _unsaved(line, runtime, report, time.perf_counter() - clock0, trial_s, wandb_s)
        record = _attempt_record(exc, config, began)
        diverged = isinstance(trial_error(exc), TrialDiverged) or (record or {}).get("status") == "diverged"
        status = "diverged" if diverged else "failed"
        error = (record or {}).get("error") or f"{type(exc).__name__}: {exc}"
        wandb_s += _finish(logger, record, status, error)
        final = _final_result(record, status, error, runtime, time.perf_counter() - clock0, trial_s, wandb_s)
        if report is not None:
            report(final)
        if diverged or isinstance(exc, ConfigError):
            return final  # recorded; deterministic: a retry would diverge, or fail, again
        raise
    trial_s = time.perf_counter() - clock
    wandb_s += _finish(logger, record)
    final = _final_result(record, (record or {}).get("status", "finished"), (record or {}).get("error"),
                          runtime, time.perf_counter() - clock0, trial_s, wandb_s)
    if report is not None:
        report(final)
    return final


def _unsaved(line: str, runtime: dict[str, Any], report: Callable[[dict], None] | None, seconds: float,
             trial_s: float, wandb_s: float) -> dict[str, Any]:
    """The final result of a trial whose record cannot be written: no retry (it would fail
    the same way), no record; the driver stops the experiment and the trial reruns later."""
    final = _final_result(None, "unsaved", line, runtime, seconds, trial_s, wandb_s)
    final["storage_error"] = line
    if report is not None:
        report(final)
    return final


def _stopped(line: str, runtime: dict[str, Any], report: Callable[[dict], None] | None,
             seconds: float) -> dict[str, Any]:
    """The final result of a trial that must not run here (its start file is damaged, its
    node runs other code): no record, no retry; the driver stops the experiment, since
    every other trial would meet the same, and says why in one line."""
    final = _final_result(None, "not_run", line, runtime, seconds, 0.0, 0.0)
    final["stop_error"] = line
    if report is not None:
        report(final)
    return final


def _job_name(trial: TrialConfig) -> str:
    """The trial's name, or "?" where its config does not name it (config id, arm, seed)."""
    if trial.config_id and {"arm", "seed"} <= trial.model_fields_set and trial.arm and trial.seed is not None:
        return layout.trial_name(trial.config_id, trial.arm, trial.seed)
    return "?"


def _finish(logger, record, status=None, error=None) -> float:
    if logger is None:
        return 0.0
    clock = time.perf_counter()
    logger.finish(record, status=status, error=error)
    return time.perf_counter() - clock


def _trainable(tune_config: dict[str, Any], jobs: dict[str, dict], trial_fn: Callable[..., dict],
               wandb_options: dict[str, Any] | None, cwd: str | None) -> None:
    from ray import tune

    run_one(jobs[tune_config[TRIAL_KEY]], trial_fn, wandb_options, report=tune.report, cwd=cwd)


