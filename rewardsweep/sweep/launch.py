"""``rewardsweep launch SPEC``: run a study on Ray Tune, resumably.

    spec -> (validate, expand) -> study folder -> Ray -> start checkpoint(s), once -> records

1. Load and validate the spec (a :class:`SpecError` before Ray starts), expand it into
   trials; ``--dry-run`` prints the trial table and stops there.
2. Copy the spec to ``<study>/spec.yaml``; read the records already there: trials with a
   final record are skipped (resume, top-up; see :mod:`rewardsweep.study.resume`).
3. Find Ray as a bare ``ray.init()`` would (``--address``, else ``RAY_ADDRESS``, else a
   local ``ray start`` cluster, else a new Ray on this machine's CPUs) and join it or fail
   in one line (:func:`.ray_cluster.ray_target`), before any pretraining.
4. Resolve each distinct start checkpoint once, on the driver (``ensure_start``:
   MLE-pretrain and cache for ``checkpoint: auto``, val mIoU once), save ``start.json`` and
   put the start dict into every trial config; run the remaining trials
   as one Ray Tune experiment ``<study>/ray/launch-<timestamp>`` with the spec's resources,
   concurrency and retries, a live progress view, W&B per trial (:mod:`.wandb_log`).
5. Make sure every trial that ran has a record (a trial whose worker died gets a
   ``failed`` one), print the summary and the ``rewardsweep report`` command.
"""

from __future__ import annotations

import copy
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from rewardsweep import storage
from rewardsweep.errors import UserError
from rewardsweep.study import layout, records, resume
from rewardsweep.study.layout import StudyPaths
from rewardsweep.sweep import bookkeeping
from rewardsweep.sweep.progress import ProgressView, print_summary
from rewardsweep.sweep.schedule import Plan, read_plan


@dataclass
class LaunchResult:
    study_dir: Path
    planned: int                                   # trials the spec names
    to_run: list[str] = field(default_factory=list)  # trial names this launch scheduled
    outcomes: dict[str, Any] = field(default_factory=dict)  # name -> tune.TrialOutcome
    interrupted: bool = False
    dry_run: bool = False
    slots: int = 0
    fit_s: float = 0.0                             # wall time of the Ray experiment
    total_s: float = 0.0                           # wall time of the whole launch
    experiment: Path | None = None                 # <study>/ray/launch-<ts>
    starts_computed: int = 0
    storage_error: str | None = None               # the study's storage failed mid-study (one line)
    stop_error: str | None = None                  # a trial must not run: damaged start file, other code (one line)
    summary: dict[str, Any] = field(default_factory=dict)


EXIT_INTERRUPTED = 130      # Ctrl+C (SIGINT)
EXIT_TERMINATED = 143       # SIGTERM (Slurm, Kubernetes, systemd stop a job with it): 128 + 15


def launch_command(args) -> int:
    """The CLI entry point (``rewardsweep launch``): exit 0; 1 when the study's storage failed
    mid-study, or a trial must not run (a damaged start file, a node with other code; the
    summary says so in one line), or a trial of the study is recorded failed or diverged
    (unless ``--allow-failures``), so scripts and CI notice; 130 when interrupted (Ctrl+C),
    143 when stopped by SIGTERM: finished records are kept either way."""
    with _sigterm_as_sigint():
        try:
            result = launch(
                args.spec, address=args.address, dry_run=args.dry_run, storage=args.storage,
                wandb_mode=args.wandb, retry_failed=args.retry_failed, max_concurrent=args.max_concurrent,
                verbose=getattr(args, "verbose", False), retry_diverged=getattr(args, "retry_diverged", False),
            )
        except KeyboardInterrupt:
            if _STOP["signal"] != signal.SIGTERM:
                raise   # the CLI's Ctrl+C line and status 130
            print("rewardsweep: stopped by SIGTERM; finished trials are kept, re-run the same command to resume",
                  file=sys.stderr)
            return EXIT_TERMINATED
    if result.storage_error or result.stop_error:
        return 1
    if result.interrupted:
        return EXIT_TERMINATED if _STOP["signal"] == signal.SIGTERM else EXIT_INTERRUPTED
    counts = result.summary.get("counts") or {}
    bad = int(counts.get("failed") or 0) + int(counts.get("diverged") or 0)
    if bad and not getattr(args, "allow_failures", False):
        print(f"rewardsweep: {bad} trial(s) of the study failed or diverged: exit status 1 "
              f"(`--allow-failures` exits 0)", file=sys.stderr)
        return 1
    return 0


_STOP: dict[str, Any] = {"signal": None, "at": None, "installed": False}   # how and when a launch was stopped


def _on_sigterm(signum, frame) -> None:
    """SIGTERM as Ctrl+C: Tune's own SIGINT handler stops the experiment and keeps what
    finished; outside it, KeyboardInterrupt (pretraining, waiting for a lock)."""
    _STOP["signal"], _STOP["at"] = signal.SIGTERM, time.time()
    os.kill(os.getpid(), signal.SIGINT)


@contextmanager
def _sigterm_as_sigint():
    """SIGTERM stops a launch the way Ctrl+C does (finished trials kept, Ray shut down).
    ``ray.init`` installs its own SIGTERM handler (exit at once); :func:`_reclaim_sigterm`
    puts this one back after it."""
    _STOP.update(signal=None, at=None)
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread
        yield
        return
    _STOP["installed"] = True
    try:
        yield
    finally:
        _STOP["installed"] = False
        signal.signal(signal.SIGTERM, previous)


def _reclaim_sigterm() -> None:
    """After ``ray.init``: SIGTERM is ours again (when the CLI installed the handler)."""
    if _STOP["installed"]:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _default_trial_fn():
    from rewardsweep.runners.trial import run_trial

    return run_trial


def launch(spec_path: str | os.PathLike, *, address: str | None = None, dry_run: bool = False,
           storage: str | None = None, wandb_mode: str | None = None, retry_failed: bool = False,
           max_concurrent: int | None = None, trial_fn: Callable[..., dict] | None = None,
           ensure_start: Callable[..., dict] | None = None,
           config_hook: Callable[[Any, dict], None] | None = None,
           num_cpus: int | None = None, console: Console | None = None,
           verbose: bool = False, retry_diverged: bool = False) -> LaunchResult:
    """Run every trial of the spec that has no final record yet. See the module docstring.

    ``trial_fn`` (default ``runners.trial.run_trial``) and ``ensure_start`` (default
    ``runners.pretrain.ensure_start``) can be swapped (tests, other trainers); they must be
    importable or picklable, since Ray ships ``trial_fn`` to its workers.
    ``config_hook(plan, config)`` may edit each trial config before it is scheduled (the
    tests use it to set ``debug`` hooks, which a spec cannot). ``num_cpus`` caps the CPUs
    a local Ray uses (default: all of this machine's).
    """
    from rewardsweep.sweep.spec import load_study

    began = time.perf_counter()
    study = load_study(spec_path, storage=storage, wandb_mode=wandb_mode, max_concurrent=max_concurrent)
    plan = read_plan(study.spec, study.expansion, dict(retry_failed=retry_failed, retry_diverged=retry_diverged))
    if dry_run:
        return _dry_run(plan)
    options = _Options(address=address, wandb_mode=wandb_mode, trial_fn=trial_fn, ensure_start=ensure_start,
                       config_hook=config_hook, num_cpus=num_cpus, verbose=verbose, began=began,
                       console=console or Console(stderr=True, highlight=False, soft_wrap=True))
    return _start(plan, options)


def _dry_run(plan: Plan) -> LaunchResult:
    """Print the trial table (and a sequential study's plan); start nothing."""
    from rewardsweep.sweep.table import render

    render(plan.spec, plan.expansion, console=Console(highlight=False), done=plan.done())
    plan.schedule.print_plan(Console(highlight=False))
    return LaunchResult(study_dir=plan.paths.root, planned=len(plan.plans), dry_run=True, to_run=plan.schedule.wanted)


@dataclass
class _Options:
    """What the caller chose for this launch beyond the spec (see :func:`launch`)."""

    address: str | None
    wandb_mode: str | None
    trial_fn: Callable[..., dict] | None
    ensure_start: Callable[..., dict] | None
    config_hook: Callable[[Any, dict], None] | None
    num_cpus: int | None
    verbose: bool
    began: float
    console: Console


def _start(plan: Plan, options: _Options) -> LaunchResult:
    """Before the lock: W&B settings, the preflight and where Ray is (an unreachable cluster
    fails in seconds, before any work); then the launch, under the study lock."""
    from rewardsweep.sweep import ray_cluster
    from rewardsweep.sweep.wandb_log import resolve_options

    spec, paths = plan.spec, plan.paths
    wb = resolve_options(spec.wandb, options.wandb_mode, paths.root, spec.name)
    bookkeeping.preflight(paths, wandb=wb.enabled, source=spec.source)  # before anything trains
    target = ray_cluster.ray_target(options.address) if plan.schedule.wanted and not ray_cluster.ray_is_up() else None
    paths.create()
    with bookkeeping.StudyLock(paths):
        return _Launch(plan, wb, target, options).run()


class _Launch:
    """One launch under the study lock, in phases: prepare (what is due, read again under
    the lock; the study folder's bookkeeping; the trial configs), start Ray, run the
    experiment, settle (records, W&B set-aside, summary, launch log)."""

    def __init__(self, plan: Plan, wb, target, options: _Options) -> None:
        self.plan, self.spec, self.paths = plan, plan.spec, plan.paths
        self.wb, self.target, self.o, self.console = wb, target, options, options.console
        self.notes: list[str] = []
        self.cpu = float(plan.spec.resources.get("cpu", 1))
        self.gpu = float(plan.spec.resources.get("gpu", 0))

    def run(self) -> LaunchResult:
        self.plan = self.plan.again(fix=True)   # under the lock; a sequential study fixes its design
        bookkeeping.prepare_folder(self.plan, self.console, self.notes)
        schedule = self.plan.schedule
        result = LaunchResult(study_dir=self.paths.root, planned=len(self.plan.plans), to_run=schedule.wanted)
        schedule.print_plan(self.console)
        if not result.to_run:
            return self.nothing_to_run(result)
        self.console.print(self.plan.due)
        jobs, labels = self.jobs()
        self.trial_fn = self.o.trial_fn or _default_trial_fn()
        owned = self.start_ray()
        from rewardsweep.sweep import ray_cluster

        try:
            jobs = self.experiment(jobs, result)
        finally:
            if owned:
                ray_cluster.shutdown_ray()
        return self.settle(jobs, result, labels)

    def nothing_to_run(self, result: LaunchResult) -> LaunchResult:
        self.notes.insert(0, self.plan.schedule.nothing_due)
        if self.plan.state.failed_kept:
            self.notes.append(f"{len(self.plan.state.failed_kept)} failed trial(s) kept; `--retry-failed` reruns them")
        return self.finish(result, {}, resume.interrupted_trials(self.paths))

    def jobs(self) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """The trial configs of this launch (start checkpoints are filled in later, once);
        leftovers of killed runs removed; W&B notes and earlier unfinished runs set aside."""
        from rewardsweep.code_identity import code_identity
        from rewardsweep.sweep.wandb_log import run_labels

        labels = run_labels(self.plan.plans)
        driver = code_identity()   # every trial checks that it runs the same code (a cluster node may not)
        jobs: dict[str, dict[str, Any]] = {}
        for plan in self.plan.state.todo:
            config = copy.deepcopy(plan.config)
            if self.o.config_hook is not None:
                self.o.config_hook(plan, config)
            jobs[plan.trial_name] = {"config": config, "params": dict(plan.params),
                                     "label": labels.get(plan.config_id), "driver": driver}
        leftovers = storage.remove_leftovers()  # temp folders of runs that were killed
        records.remove_partial_writes(self.paths.root)   # half-written records of killed writers
        if leftovers:
            self.notes.append(f"removed {len(leftovers)} temporary folder(s) left by killed runs, e.g. {leftovers[0]}")
        wb = self.wb
        if wb.note:
            self.console.print(f"[yellow]warning:[/] {wb.note}")
        if wb.mode == "offline":
            _set_aside_unfinished_runs(jobs, Path(wb.runs_dir), self.notes)
        if wb.enabled:
            self.notes.append(f"W&B {wb.mode} ({wb.source}): project {wb.project}"
                              + (f", entity {wb.entity}" if wb.entity else "") + ", runs grouped by configuration"
                              + (f" under {wb.runs_dir} (`wandb sync {wb.runs_dir}/offline-run-*` uploads one run "
                                 f"per trial attempt)" if wb.mode == "offline" else ""))
        return jobs, labels

    # ------------------------------------------------------------------ Ray and the experiment

    def start_ray(self) -> bool:
        """Join or start Ray (before the start checkpoint: no pretraining for a launch that
        cannot run); True when this launch started it (and shuts it down)."""
        from rewardsweep.sweep import ray_cluster

        target = self.target
        if target is None and not ray_cluster.ray_is_up():
            target = ray_cluster.ray_target(self.o.address)
        if self.wb.enabled and target is not None and not target.joins:
            from rewardsweep.sweep.wandb_log import start_shared_service

            start_shared_service()  # before ray.init: the local workers inherit it
        owned = ray_cluster.init_ray(num_cpus=self.o.num_cpus, verbose=self.o.verbose, target=target) if target else False
        _reclaim_sigterm()   # ray.init installed its own SIGTERM handler
        if owned and target.joins:
            self.console.print(f"joined the Ray cluster at {target.address or target.given} (from {target.origin})")
        elif owned:
            self.console.print(f"started a private Ray on this machine ({ray_cluster.cluster_cpus():g} CPUs"
                               + (", --address local" if target.origin == "--address" else
                                  ", RAY_ADDRESS=local" if target.origin == "RAY_ADDRESS" else "") + ")"
                               + (f"; {target.note}" if target.note else ""), highlight=False, soft_wrap=True)
        return owned

    def experiment(self, jobs: dict[str, dict], result: LaunchResult) -> dict[str, dict]:
        """Slots, the start checkpoints (once), then one Ray Tune experiment; the jobs it ran."""
        from rewardsweep.sweep import ray_cluster
        from rewardsweep.sweep import tune as tune_mod

        spec, cpu, gpu, schedule = self.spec, self.cpu, self.gpu, self.plan.schedule
        result.experiment = self.paths.launch_dir(bookkeeping.launch_stamp())
        result.slots = ray_cluster.cluster_slots(cpu, gpu, spec.max_concurrent, len(jobs))
        if result.slots == 0:
            raise UserError(f"{spec.source}: resources: a trial needs cpu {cpu:g} gpu {gpu:g} but the Ray "
                            f"cluster has no node with that much free; lower resources or add nodes")
        self.resolve_starts(jobs, result)
        self.console.print(f"{schedule.running}, {result.slots} at a time "
                           f"(cpu {cpu:g}, gpu {gpu:g} each); Ray experiment {result.experiment}")
        fit_began, self.fit_wall = time.perf_counter(), time.time()
        self.storage_errors: list[str] = []
        self.stop_errors: list[str] = []
        view = ProgressView(total=len(schedule.wanted), slots=result.slots, console=self.console,
                            title=spec.name)
        searcher = schedule.searcher(jobs, view, tune_mod.TRIAL_KEY)
        with view:
            result.outcomes = tune_mod.run_experiment(
                jobs, trial_fn=self.trial_fn, storage_path=str(self.paths.ray),
                name=result.experiment.name, cpu=cpu, gpu=gpu, max_concurrent=spec.max_concurrent,
                retries=spec.retries, wandb_options=self.wb.to_dict() if self.wb.enabled else None,
                listener=view, verbose=self.o.verbose, storage_errors=self.storage_errors, searcher=searcher,
                stop_errors=self.stop_errors)
        result.fit_s = time.perf_counter() - fit_began
        return {key: job for key, job in jobs.items() if key in result.outcomes}   # a searcher's picks: those it ran

    def resolve_starts(self, jobs: dict[str, dict], result: LaunchResult) -> None:
        """Each start verified (hash) before any trial; a damaged cache entry is pretrained again."""
        try:
            starts, result.starts_computed = bookkeeping.resolve_starts(
                self.paths, [job["config"] for job in jobs.values()], ensure_start=self.o.ensure_start,
                on_resolve=lambda req: self.console.print(
                    f"start checkpoint: {req['model']} ({req['checkpoint']}"
                    + (f", {req['iters']} pretrain iters" if req.get("iters") else "")
                    + "): pretraining if not cached, evaluating on val once ..."))
        except OSError as exc:
            if exc.errno not in storage.STORAGE_ERRNOS:
                raise
            raise storage.StorageError(f"{exc.filename or 'storage'}: cannot write the start checkpoint: "
                                       f"{storage.describe(exc)}; free space or fix permissions, then launch "
                                       f"again") from None
        for entry in starts:
            self.notes.append(f"start {entry.get('model')} {Path(str(entry.get('checkpoint'))).name}: "
                              f"val mIoU {entry.get('miou', float('nan')):.4f}")

    # ------------------------------------------------------------------ settle

    def settle(self, jobs: dict[str, dict], result: LaunchResult, labels: dict[str, str]) -> LaunchResult:
        """Every trial that ran has a record; interrupted W&B runs set aside; the summary
        and the launch log."""
        paths, notes, wb = self.paths, self.notes, self.wb
        result.storage_error = self.storage_errors[0] if self.storage_errors else None
        result.stop_error = self.stop_errors[0] if self.stop_errors else None
        try:
            result.interrupted = _keep_records(jobs, result.outcomes, paths, notes,
                                               stopped_at=_STOP["at"] if _STOP["installed"] else None)
        except OSError as exc:  # the driver's own writes (a lost trial's record) hit the failing storage
            if exc.errno not in storage.STORAGE_ERRNOS:
                raise
            result.storage_error = result.storage_error or f"{exc.filename}: cannot write: {storage.describe(exc)}"
        if result.storage_error or result.stop_error:
            result.interrupted = False  # not stopped by the user: the summary says why instead
        if (result.interrupted or result.storage_error or result.stop_error) and wb.mode == "offline":
            _set_aside_interrupted_runs(jobs, result.outcomes, Path(wb.runs_dir), since=self.fit_wall, notes=notes)
        # this launch's trial states count as the newest launch log (written below, with the counts)
        this_launch = {key: out.state for key, out in result.outcomes.items()}
        return self.finish(result, labels, resume.interrupted_trials(paths, current=this_launch))

    # ------------------------------------------------------------------ summarise

    def finish(self, result: LaunchResult, labels: dict[str, str], interrupted: set[str]) -> LaunchResult:
        """The summary, from the records on disk (all launches), as a resume would see them:
        ``interrupted`` (``resume.interrupted_trials``) are the trials a resume reruns. A
        sequential study logs this launch's decisions to W&B, counts the trials its looks
        asked for and says where each configuration stands. Then the launch log (when an
        experiment ran) and the summary printed."""
        result.total_s = time.perf_counter() - self.o.began
        plans = self.plan.schedule.summarise(self.plan.plans, self.wb, labels, self.notes)
        state = resume.plan_state(plans, self.paths, retry_failed=False, interrupted=interrupted, study=self.spec.name)
        result.summary = _summary(self.spec.name, self.paths, plans, state, result, self.notes)
        if result.storage_error:
            result.summary["notes"].append(
                f"storage failing, launch stopped: {result.storage_error}; trials still to run were not started "
                f"(finished records are kept): free space or fix permissions, then launch again to resume")
        if result.stop_error:
            result.summary["notes"].append(
                f"launch stopped: {result.stop_error}; no trial ran from it or recorded it (finished records are kept)")
        if result.experiment is not None:
            _write_launch_log(result.experiment / layout.LAUNCH_FILENAME,
                              _launch_log(self.spec, result, self.wb.mode, self.cpu, self.gpu))
        print_summary(self.console, result.summary)
        return result


def _write_launch_log(path: Path, payload: dict[str, Any]) -> None:
    """The launch log is bookkeeping: on failing storage it is skipped, not fatal."""
    try:
        bookkeeping.write_launch_log(path, payload)
    except OSError as exc:
        if exc.errno not in storage.STORAGE_ERRNOS:
            raise


def _keep_records(jobs: dict[str, dict], outcomes: dict[str, Any], paths: StudyPaths,
                  notes: list[str], stopped_at: float | None = None) -> bool:
    """Every trial that ran ends with a record; returns True if some never finished (interrupted).

    ``stopped_at``: when a signal stopped the launch. A worker that died after it, without
    a record, was stopped too (systemd and Slurm signal every process of the job), not
    failed: it runs again on resume."""
    interrupted = False
    lost = 0
    for key, job in jobs.items():
        out = outcomes.get(key)
        config = job["config"]
        path = paths.record(config["config_id"], config["arm"], config["seed"])
        state = getattr(out, "state", "pending")
        if state in ("pending", "running"):
            interrupted = True
            continue
        if state in ("unsaved", "not_run"):  # ran but unsaved, or must not run: it runs next launch
            continue
        if state == "failed" and stopped_at is not None and not path.exists() \
                and (out.ended or 0) >= stopped_at - 1:
            interrupted = True
            continue
        shipped = (out.result or {}).get("record") if out is not None else None
        if shipped and not _same_record(path, shipped):
            # the trial ran on a node whose filesystem we do not share: keep its record here
            records.write_record(path, shipped)
        elif not path.exists():
            error = (out.error if out is not None else None) or "the trial died without a record"
            records.write_record(path, records.lost_record(config, job.get("params") or {}, error=error))
            lost += 1
    if lost:
        notes.append(f"{lost} trial(s) died without writing a record; recorded as failed")
    return interrupted


def _set_aside_interrupted_runs(jobs: dict[str, dict], outcomes: dict[str, Any], runs_dir: Path,
                                since: float, notes: list[str]) -> None:
    """Move the offline W&B runs of trials cut short by the interruption to wandb/interrupted/,
    so that `wandb sync <study>/wandb/offline-run-*` uploads only complete runs (the trial
    runs again from scratch on resume, with a new run)."""
    moved = 0
    runs = _runs_by_trial(runs_dir)
    for key, out in outcomes.items():
        if getattr(out, "state", None) != "running":
            continue
        cfg = jobs[key]["config"]
        if cfg.get("study_dir") and layout.record_path(cfg["study_dir"], cfg["config_id"], cfg["arm"],
                                                       cfg["seed"]).is_file():
            continue  # it finished as the interrupt came (its record is written): it is not rerun
        candidates = [d for d in runs.get(_run_key(cfg), []) if d.stat().st_mtime >= since - 1]
        if candidates and _set_aside(max(candidates, key=lambda d: d.stat().st_mtime), runs_dir):
            moved += 1
    if moved:
        notes.append(f"{moved} W&B run(s) of interrupted trials moved to {runs_dir / 'interrupted'}")


def _set_aside_unfinished_runs(jobs: dict[str, dict], runs_dir: Path, notes: list[str]) -> None:
    """Before trials run again: set aside their earlier runs that never ended (the driver
    was killed, so :func:`_set_aside_interrupted_runs` could not). Runs with an exit (a
    failed attempt) stay: they are attempts like any other."""
    from rewardsweep.sweep.wandb_offline import read_offline_run

    moved = 0
    runs = _runs_by_trial(runs_dir)
    for job in jobs.values():
        for run in runs.get(_run_key(job["config"]), []):
            try:
                ended = read_offline_run(run)["exit_code"] is not None
            except Exception:  # noqa: BLE001 - unreadable: unfinished
                ended = False
            if not ended and _set_aside(run, runs_dir):
                moved += 1
    if moved:
        notes.append(f"{moved} unfinished W&B run(s) of an earlier, killed launch moved to "
                     f"{runs_dir / 'interrupted'}")


def _run_key(config: dict[str, Any]) -> str:
    return f"{config['config_id']}-{config['arm']}-s{config['seed']}"


def _runs_by_trial(runs_dir: Path) -> dict[str, list[Path]]:
    """The offline runs in ``runs_dir`` by trial, from one listing of the folder. A run's
    folder is ``offline-run-<date>_<time>-<config_id>-<arm>-s<seed>-<6 hex>`` (its id is
    set in :class:`.wandb_log.TrialLogger`)."""
    out: dict[str, list[Path]] = {}
    try:
        entries = list(os.scandir(runs_dir))
    except OSError:
        return out
    for entry in entries:
        parts = entry.name.split("-")
        if entry.name.startswith("offline-run-") and len(parts) >= 7 and entry.is_dir():
            out.setdefault("-".join(parts[3:-1]), []).append(Path(entry.path))
    return out


def _set_aside(run: Path, runs_dir: Path) -> bool:
    target = runs_dir / "interrupted"
    try:
        target.mkdir(parents=True, exist_ok=True)
        os.replace(run, target / run.name)
        return True
    except OSError:
        return False


def _same_record(path: Path, record: dict) -> bool:
    try:
        on_disk = records.read_record(path)
    except (OSError, ValueError):
        return False
    return on_disk.get("started_at") == record.get("started_at") and on_disk.get("status") == record.get("status")


def _summary(study: str, paths: StudyPaths, plans: list[Any], state: Any, result: LaunchResult,
             notes: list[str]) -> dict[str, Any]:
    finished = [p for p in state.done if state.existing[p.trial_name]["status"] == "finished"]
    diverged = [p for p in state.done if state.existing[p.trial_name]["status"] == "diverged"]
    counts = {"planned": len(plans), "finished": len(finished), "diverged": len(diverged),
              "failed": len(state.failed_kept), "missing": len(state.todo)}
    failures = []
    for plan in diverged + state.failed_kept:
        error = state.existing[plan.trial_name].get("error")
        failures.append({"key": plan.trial_name, "status": state.existing[plan.trial_name]["status"],
                         "error": error.splitlines()[0] if error else None})
    return {"study": study, "study_dir": str(paths.root), "counts": counts, "failures": failures,
            "notes": notes,
            "ran": sum(1 for o in result.outcomes.values() if o.state not in ("pending", "running"))
            if result.outcomes else None,
            "wall_s": result.total_s, "interrupted": result.interrupted}


def _launch_log(spec, result: LaunchResult, wandb_mode: str, cpu: float, gpu: float) -> dict[str, Any]:
    trials = {}
    for key, out in result.outcomes.items():
        res = out.result or {}
        trials[key] = {"state": out.state, "attempts": out.attempts, "retries": out.retries, "error": out.error,
                       "started": out.started, "ended": out.ended,
                       **{k: res.get(k) for k in ("node_id", "host", "pid", "worker_trial_index",
                                                  "trial_seconds", "trial_fn_seconds", "wandb_seconds", "timings")}}
    return {"study": spec.name, "spec": str(spec.path), "experiment": str(result.experiment),
            "slots": result.slots, "resources": {"cpu": cpu, "gpu": gpu}, "max_concurrent": spec.max_concurrent,
            "retries": spec.retries, "wandb": wandb_mode, "fit_s": result.fit_s, "total_s": result.total_s,
            "interrupted": result.interrupted, "starts_computed": result.starts_computed,
            "counts": result.summary.get("counts"), "trials": trials}
