"""Ray Tune glue: start or join Ray, run one Ray experiment of trials, report back.

One Ray trial per (config, arm, seed). What keeps the per-trial overhead low (measured in
``benchmarks/bench_orchestration.py``):

- ``reuse_actors=True``: a Ray worker runs trial after trial, so torch, MMSeg and W&B are
  imported, and the W&B service started, once per worker rather than once per trial.
- W&B logs from inside the trial (``wandb_log.TrialLogger`` on the trial's ``on_event``),
  not through a driver-side logger callback.
- Trials report to Tune only at evaluations and at the end (a handful of results per
  trial), never per step; trial configs travel once through the object store
  (``tune.with_parameters``) and Tune's param space holds only their names.
- Longest trials are scheduled first (reward arms before the cheaper control), so at the
  end slots do not idle behind one long trial.

Failures: a trial that raises is retried by Ray (``FailureConfig(max_failures=retries)``);
each attempt's record is written by the trial itself, so after the last attempt a
``failed`` record remains. A trial that diverges (NaN loss) is *not* retried: the trial
code is deterministic given the seed, a retry would diverge again, so the wrapper records
it and returns normally. If a trial dies without writing a record (worker killed), the
driver writes a ``failed`` one (``rewardsweep.study.records.lost_record``).

Storage failing (the study folder full or read-only) is not a trial failure: the trial
is fine, only its record cannot be saved. The worker checks with a real write before it
starts a trial and catches a failing record write after; either way the trial ends
``unsaved`` (no record, no retry) and the driver stops the experiment at once
(:class:`_StorageGate`): trials still to run, or cut short, run on the next launch.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

# Quiet Tune before it is imported: no console reporter, no "resume with Tuner.restore"
# hints (rewardsweep resumes from records), no per-result CSV/TensorBoard files.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_WARN_THRESHOLD_S", "60")

from ray.tune import Callback, Stopper  # noqa: E402  (after the environment above)

from rewardsweep import storage  # noqa: E402
from rewardsweep.code_identity import mismatch  # noqa: E402
from rewardsweep.errors import ConfigError, StartCheckpointError, TrialDiverged, trial_error  # noqa: E402
from rewardsweep.study import arms, layout, records  # noqa: E402

TRIAL_KEY = "trial"          # the only entry of Tune's param space: the trial's name
RUNTIME_KEY = "runtime"      # where the worker puts node id / host / attempt into the trial config

_WORKER_TRIALS = 0           # trials this worker process has run (shows actor reuse)


# --------------------------------------------------------------------------- Ray

@dataclass(frozen=True)
class RayTarget:
    """Where a launch's Ray is: a new private instance here (``address`` None) or a running
    cluster, and why (:func:`ray_target`)."""

    given: str | None = None      # what to hand to ray.init ("local": a new private instance)
    address: str | None = None    # host:port of the cluster we join; None: start one here
    origin: str = "local"         # "--address", "--address auto", "RAY_ADDRESS" or "local"
    note: str | None = None       # a `ray start` cluster on this node that a plain launch left alone

    @property
    def joins(self) -> bool:
        return self.address is not None or (self.given or "").startswith("ray://")


CONNECT_TIMEOUT_S = 5.0       # a TCP probe of the cluster's GCS port before ray.init


def ray_target(address: str | None = None) -> RayTarget:
    """Resolve and reach the Ray cluster a launch uses.

    ``--address`` (``auto``: the cluster ``ray start`` runs on this node; ``HOST:PORT``;
    ``ray://...``; ``local``: a new private Ray), else ``RAY_ADDRESS`` (same forms), else
    a new private Ray on this machine. A plain launch never joins a ``ray start`` cluster
    by itself, unlike a bare ``ray.init()``: on a shared node that cluster may be someone
    else's, from another environment (docs/cluster.md, "Which Ray a launch uses"); the
    target's ``note`` says that one runs and how to join it.

    Raises :class:`UserError` in one line, within seconds, when the address names no
    running cluster: ``ray.init`` itself retries an unreachable address for minutes.
    """
    from rewardsweep.errors import UserError

    env = os.environ.get("RAY_ADDRESS") or None
    given = address or env
    origin = ("--address auto" if address == "auto" else "--address") if address else \
        ("RAY_ADDRESS" if env else "local")
    if given is None or given == "local":
        note = None
        if given is None:
            running = _local_cluster()
            if running:
                note = (f"a `ray start` cluster runs on this node ({running}) but a plain launch never joins "
                        f"one; --address auto does")
        return RayTarget(given="local", origin=origin, note=note)
    shown = f"{origin} {given}" if origin != "--address auto" else "--address auto"
    if given.startswith("ray://"):
        return RayTarget(given=given, origin=origin)  # Ray Client: ray.init reports its own errors
    try:
        # Ray's own resolution ("auto": the `ray start` record); private, so a Ray without
        # it just gets the address handed to ray.init unprobed
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:
        return RayTarget(given=given, address=given, origin=origin)
    try:
        found = canonicalize_bootstrap_address(given)
    except ConnectionError:
        raise UserError(f"{shown}: no running Ray cluster found on this machine; start one with "
                        f"`ray start --head`, give its HOST:PORT, or leave --address out to run "
                        f"on a private Ray on this machine") from None
    except (ValueError, OSError) as exc:
        raise UserError(f"{shown}: not a Ray address ({exc}); expected HOST:PORT, auto or local") from None
    if found is None:
        return RayTarget(given="local", origin="local")
    problem = _probe_gcs(found)
    if problem:
        stale = " (a stale address of a stopped `ray start`? run `ray stop`)" if given == "auto" else ""
        raise UserError(f"{shown}: cannot reach the Ray cluster at {found}{stale}: {problem}; "
                        f"is `ray start --head` running there?")
    return RayTarget(given=given, address=found, origin=origin)


def _local_cluster() -> str | None:
    """The address of a live cluster that ``ray start`` recorded on this node, if any."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        found = canonicalize_bootstrap_address("auto")
    except Exception:  # noqa: BLE001 - none recorded (ConnectionError), or a Ray without this helper
        return None
    if not found or _probe_gcs(found, timeout=1.0):
        return None
    return found


_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _probe_gcs(address: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why ``address`` is no Ray GCS (None: it looks like one), in a few seconds at most.

    A TCP connect, then the HTTP/2 greeting every gRPC server (the GCS is one) answers with
    a SETTINGS frame. Needed because ``ray.init`` retries a dead or wrong port for minutes,
    printing C++ warnings, and cannot be interrupted meanwhile."""
    host, _, port = address.rpartition(":")
    try:
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    except (OSError, ValueError) as exc:
        return str(getattr(exc, "strerror", None) or exc)
    with sock:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return None  # a TLS handshake comes first; ray.init checks the rest
        try:
            sock.sendall(_H2_PREFACE)
            reply = sock.recv(9)
        except OSError:
            return f"it accepts a connection but gives no gRPC answer within {timeout:g} s (not a Ray port?)"
    if len(reply) < 4 or reply[3] != 0x04:
        return f"something listens there but does not answer as a Ray cluster (gRPC) within {timeout:g} s"
    return None


def init_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
             verbose: bool = False, target: RayTarget | None = None) -> bool:
    """Join the cluster ``address`` resolves to (:func:`ray_target`) or start Ray on this
    machine (all its CPUs, or ``num_cpus``). Returns True if we made the connection (the
    caller shuts it down), False if Ray was already up."""
    import ray

    from rewardsweep.errors import UserError

    if ray.is_initialized():
        return False
    target = target or ray_target(address)
    if not verbose:
        # "Token authentication is enabled ..." is Ray's default, not news for a user
        logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
        logging.getLogger("ray").setLevel(logging.ERROR)
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=verbose,
                                  logging_level=logging.INFO if verbose else logging.WARNING,
                                  configure_logging=True)
    if target.joins:
        # a cluster's resources are its own: ray.init refuses num_cpus/num_gpus when joining
        try:
            ray.init(address=target.given, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"{target.origin}: could not join the Ray cluster at "
                            f"{target.address or target.given}: {first}") from None
    else:  # "local": a new private instance, even when a `ray start` cluster runs on this node
        ray.init(address=target.given or "local", num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)
    _quiet_loggers(verbose)
    return True


def _quiet_loggers(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.ERROR
    for name in ("ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(level if verbose else logging.CRITICAL)


def ray_is_up() -> bool:
    import ray

    return ray.is_initialized()


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def cluster_cpus() -> float:
    """The CPUs of the cluster Ray is connected to."""
    import ray

    return float(ray.cluster_resources().get("CPU", 0))


def cluster_slots(cpu: float, gpu: float, max_concurrent: int | None, trials: int) -> int:
    """How many trials can run at once on the cluster Ray is connected to."""
    import ray

    res = ray.cluster_resources()
    slots = int(res.get("CPU", 0) // cpu) if cpu else trials
    if gpu:
        slots = min(slots, int(res.get("GPU", 0) // gpu))
    if max_concurrent:
        slots = min(slots, max_concurrent)
    return max(0, min(slots, trials))


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
    if not config.get("study_dir"):
        return None
    path = layout.record_path(config["study_dir"], config["config_id"], config["arm"], config["seed"])
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
    other_code = mismatch(job.get("driver"))
    if other_code:  # a node with another rewardsweep: its results would not be the driver's study
        where = runtime.get("node_ip") or runtime.get("host")
        return _stopped(f"trial {_job_name(config)} on node {where}: {other_code}; install the driver's "
                        f"rewardsweep on every node (docs/cluster.md)", runtime, report, time.perf_counter() - clock0)
    if config.get("study_dir"):
        try:  # a second's write now rather than a trial's training lost at its record
            storage.check_writable(Path(config["study_dir"]) / layout.RECORDS_DIRNAME, "records folder")
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
        failure = storage.storage_failure(exc, config["study_dir"]) if config.get("study_dir") else None
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


def _job_name(config: dict[str, Any]) -> str:
    if config.get("config_id") and config.get("arm") and config.get("seed") is not None:
        return layout.trial_name(config["config_id"], config["arm"], config["seed"])
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


# --------------------------------------------------------------------------- driver side

class TrialListener(Protocol):
    def trial_started(self, key: str, attempt: int) -> None: ...
    def trial_progress(self, key: str, result: dict[str, Any]) -> None: ...
    def trial_finished(self, key: str, result: dict[str, Any]) -> None: ...
    def trial_errored(self, key: str, error: str, retrying: bool, result: dict[str, Any]) -> None: ...


@dataclass
class Outcome:
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

    def __init__(self, outcomes: dict[str, Outcome], listener: TrialListener | None, gate: _StorageGate):
        self._outcomes, self._listener, self._gate = outcomes, listener, gate

    def _out(self, trial) -> Outcome:
        key = trial.config[TRIAL_KEY]
        return self._outcomes.setdefault(key, Outcome(key))

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
                   stop_errors: list[str] | None = None) -> dict[str, Outcome]:
    """Run ``jobs`` (trial name -> {"config", "params"}) as one Ray Tune experiment.

    Ray must be initialised. Without ``searcher`` every job runs (longest first); with one
    (a Tune ``Searcher`` that suggests ``{TRIAL_KEY: name}``, e.g. a sequential study's
    ``LookScheduler``) Tune runs what it suggests, when it suggests it. Returns what happened to each trial; trials that never ran
    (the launch was interrupted, or stopped because storage failed) stay ``pending`` or
    ``running``. The first storage error line, if any, is appended to ``storage_errors``;
    the first line of a trial that must not run (a damaged start file, a node with other
    code) to ``stop_errors``: either stops the experiment.
    """
    from ray import tune

    _quiet_loggers(verbose)
    order = sorted(jobs, key=lambda k: -trial_cost(jobs[k]["config"]))  # longest first (stable)
    outcomes = {key: Outcome(key) for key in order}
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
    return outcomes
