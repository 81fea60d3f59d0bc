"""The study folder and its bookkeeping: the spec copy, the start checkpoint, what is left to run.

Trial records are the source of truth. A launch runs the (config, arm, seed) triples of
the spec that do not yet have a *final* record: ``finished`` and ``diverged`` are final
(re-running a diverged trial would diverge again), ``failed`` is final unless the user
asks for ``--retry-failed``. Records of trials the spec no longer names (seeds lowered,
a grid value removed) are kept and left alone. So an interrupted study resumes, and
raising ``seeds`` tops it up, by launching the same spec again.

Layout (see ``docs/architecture.md``)::

    <study_dir>/spec.yaml          the spec as last launched (older differing copies: spec-history/)
    <study_dir>/start.json         the start checkpoint and its val mIoU, computed once
    <study_dir>/records/*.json     one per trial
    <study_dir>/ray/launch-<ts>/   Ray Tune's experiment of one launch (+ rewardsweep-launch.json)
    <study_dir>/wandb/             offline W&B runs

No Ray, W&B or torch imports here.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from rewardsweep import records, storage

START_FILENAME = "start.json"
SPEC_FILENAME = "spec.yaml"
LAUNCH_FILENAME = "rewardsweep-launch.json"


@dataclass(frozen=True)
class StudyPaths:
    root: Path

    @property
    def spec(self) -> Path:
        return self.root / SPEC_FILENAME

    @property
    def start(self) -> Path:
        return self.root / START_FILENAME

    @property
    def records(self) -> Path:
        return self.root / records.RECORDS_DIRNAME

    @property
    def ray(self) -> Path:
        return self.root / "ray"

    @property
    def wandb(self) -> Path:
        return self.root / "wandb"

    def record(self, config_id: str, arm: str, seed: int) -> Path:
        return records.record_path(self.root, config_id, arm, seed)

    def create(self) -> "StudyPaths":
        self.records.mkdir(parents=True, exist_ok=True)
        self.ray.mkdir(parents=True, exist_ok=True)
        return self


def trial_key(config_id: str, arm: str, seed: int) -> str:
    """The name of a trial everywhere (record file stem, Ray trial name, W&B run name)."""
    return Path(records.record_filename(config_id, arm, seed)).stem


def launch_stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid() % 100000:05d}"


# --------------------------------------------------------------------------- preflight

def preflight(paths: StudyPaths, wandb: bool, source: str = "the spec") -> None:
    """Before pretraining or any trial: can the study folder, the checkpoint cache and the
    W&B folder be written? One :class:`~rewardsweep.storage.StorageError` line if not."""
    storage.check_writable(paths.root, "study folder", fix=f"set by storage: in {source} or --storage")
    storage.check_writable(paths.records, "records folder")
    storage.check_writable(storage.default_cache_dir(), "checkpoint cache",
                           fix="set REWARDSWEEP_CACHE to move it")
    if wandb:
        storage.check_writable(paths.wandb, "W&B folder", fix="or launch with --wandb disabled")


# --------------------------------------------------------------------------- spec copy

def copy_spec(spec_path: str | os.PathLike, paths: StudyPaths) -> Path | None:
    """Copy the spec to ``<study>/spec.yaml``; an older, different copy moves to spec-history/.

    Returns the path the previous copy was moved to, if it differed (a top-up or an edit).
    """
    src = Path(spec_path)
    dst = paths.spec
    moved = None
    if dst.exists():
        if src.resolve() == dst.resolve() or filecmp.cmp(src, dst, shallow=False):
            return None
        history = paths.root / "spec-history"
        history.mkdir(parents=True, exist_ok=True)
        moved = history / f"spec-{time.strftime('%Y%m%d-%H%M%S', time.localtime(dst.stat().st_mtime))}.yaml"
        os.replace(dst, moved)
    tmp = dst.with_name(".spec.yaml.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return moved


# --------------------------------------------------------------------------- start checkpoint

def start_request(config: dict[str, Any]) -> dict[str, Any]:
    """What identifies a trial's start: model, checkpoint (auto or a path), data, pretrain iters.

    Most studies have one start; a study may vary ``checkpoint`` or ``pretrain.iters``
    (``steps.yaml``), and then each distinct start is resolved once.
    """
    pretrain = config.get("pretrain") or {}
    return {"model": config.get("model"), "checkpoint": config.get("checkpoint") or "auto",
            "data_root": config.get("data_root"), "iters": pretrain.get("iters")}


def _request_id(request: dict[str, Any]) -> str:
    return json.dumps(request, sort_keys=True)


def resolve_starts(paths: StudyPaths, configs: Iterable[dict[str, Any]],
                   ensure_start: Callable[..., dict] | None = None,
                   on_resolve: Callable[[dict[str, Any]], None] | None = None) -> tuple[list[dict], int]:
    """Fill ``config["start"]`` of every config; each distinct start is computed once per study.

    Runs on the driver before Ray starts: ``ensure_start`` MLE-pretrains and caches the
    checkpoint when ``checkpoint: auto`` and evaluates its val mIoU once. The results live
    in ``start.json`` (``{"starts": [{"request": ..., <start dict>}, ...]}``); a later
    launch reuses an entry while its checkpoint file still exists, so not even the val
    evaluation runs again. Returns (the start entries used, how many were computed now).
    """
    configs = list(configs)
    saved: dict[str, dict] = {}
    if paths.start.is_file():
        try:
            for entry in json.loads(paths.start.read_text()).get("starts", []):
                saved[_request_id(entry["request"])] = entry
        except (OSError, json.JSONDecodeError, AttributeError, KeyError, TypeError):
            saved = {}
    used: dict[str, dict] = {}
    computed = 0
    for config in configs:
        request = start_request(config)
        rid = _request_id(request)
        if rid not in used:
            entry = saved.get(rid)
            if not entry or not Path(str(entry.get("checkpoint"))).is_file():
                extra: dict[str, Any] = {}
                if ensure_start is None:
                    from rewardsweep.runners.pretrain import ensure_start as ensure_start  # noqa: PLW0127
                    extra["show_progress"] = True  # pretraining takes a minute or more: show it
                if on_resolve is not None:
                    on_resolve(request)
                began = time.perf_counter()
                start = dict(ensure_start(model=request["model"], checkpoint=request["checkpoint"],
                                          data_root=request["data_root"], iters=request["iters"], **extra))
                entry = {**clean_start(start), "request": request, "resolved_at": _now(),
                         "resolve_seconds": round(time.perf_counter() - began, 3),
                         "from_cache": bool(start.get("cached"))}
                saved[rid] = entry
                computed += 1
                _write_json(paths.start, {"starts": list(saved.values())})
            used[rid] = entry
        config["start"] = clean_start(used[rid])
    return list(used.values()), computed


def clean_start(start: dict[str, Any]) -> dict[str, Any]:
    """The part of a start entry that goes into every trial config."""
    return {k: v for k, v in start.items()
            if k not in ("request", "resolved_at", "resolve_seconds", "cached", "from_cache")}


# --------------------------------------------------------------------------- what is left to run

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


def interrupted_trials(paths: StudyPaths) -> set[str]:
    """Trials that a launch left pending or running when it was interrupted (by the launch
    logs, in order): a ``failed`` record of such a trial is not final. It was stopped from
    outside (Ctrl+C reaches the workers too) or had retries left, so it runs again."""
    last: dict[str, str] = {}
    for log in sorted(paths.ray.glob(f"launch-*/{LAUNCH_FILENAME}"), key=lambda p: p.stat().st_mtime):
        try:
            trials = json.loads(log.read_text()).get("trials", {})
        except (OSError, json.JSONDecodeError):
            continue
        for key, info in trials.items():
            last[key] = info.get("state", "")
    return {key for key, st in last.items() if st in ("pending", "running")}


def plan_state(plans: Iterable[Any], paths: StudyPaths, retry_failed: bool = False) -> PlanState:
    state = PlanState()
    named: set[str] = set()
    interrupted = interrupted_trials(paths)
    for plan in plans:
        key = trial_key(plan.config_id, plan.arm, plan.seed)
        named.add(key)
        path = paths.record(plan.config_id, plan.arm, plan.seed)
        if not path.exists():
            state.todo.append(plan)
            continue
        try:
            record = records.read_record(path)
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
        elif records.is_done(record):
            state.done.append(plan)
        elif retry_failed:
            state.retried_failed.append(plan)
            state.todo.append(plan)
        else:
            state.failed_kept.append(plan)
    state.orphans = sum(1 for p in records.iter_record_paths(paths.root) if p.stem not in named)
    return state


def set_aside_invalid(paths: StudyPaths, invalid: Iterable[Path]) -> Path | None:
    """Move invalid records to ``records/invalid/`` before their trials rerun: the rerun's
    record takes their place, and nothing a user might still want is overwritten."""
    target = paths.records / "invalid"
    moved = None
    for path in invalid:
        target.mkdir(exist_ok=True)
        os.replace(path, target / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
        moved = target
    return moved


# --------------------------------------------------------------------------- failures with no record

def write_lost_record(config: dict[str, Any], params: dict[str, Any], error: str,
                      host: str | None = None) -> Path:
    """A ``failed`` record for a trial that died without writing its own (worker killed,
    node lost, out of memory): failures are data and never silently dropped."""
    start = config.get("start") or {}
    arm = config["arm"]
    record = {
        "schema": records.SCHEMA_VERSION,
        "study": config.get("study"),
        "config_id": config["config_id"],
        "control_id": config.get("control_id"),
        "reference_id": config.get("reference_id"),
        "arm": arm,
        "seed": config["seed"],
        "status": "failed",
        "error": error,
        "params": dict(params),
        "config": config,
        "estimator": config.get("estimator") if arm == "reward" else arm,
        "start": {k: start.get(k) for k in ("checkpoint", "checkpoint_hash", "dataset")},
        "class_names": start.get("class_names"),
        "miou_start": start.get("miou"),
        "miou_final": None, "delta_miou": None, "miou_best": None,
        "per_class_iou_start": start.get("per_class_iou"), "per_class_iou_final": None,
        "curve": [], "diagnostics": [],
        "timings": {"setup_s": None, "train_s": None, "eval_s": None, "total_s": None},
        "versions": {}, "host": host or socket.gethostname(),
        "started_at": None, "finished_at": _now(),
        "written_by": "rewardsweep.sweep (the trial died without writing a record)",
    }
    path = records.record_path(config["study_dir"], config["config_id"], arm, config["seed"])
    return records.write_record(path, record)


# --------------------------------------------------------------------------- one launch at a time

class StudyLock:
    """An exclusive lock on a study folder for the duration of a launch: two launches of
    the same study would run the same trials twice. Released when the process ends, even
    if it is killed (``flock``)."""

    def __init__(self, paths: StudyPaths) -> None:
        self.path = paths.root / ".launch.lock"
        self._handle = None

    def __enter__(self) -> "StudyLock":
        import fcntl

        from rewardsweep.errors import UserError

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(f"{self.path.parent}: another launch of this study is running ({holder}); "
                            f"wait for it or stop it, then launch again") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {_now()}\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the flock
            self._handle = None


# --------------------------------------------------------------------------- helpers

def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


def write_launch_log(path: Path, payload: dict[str, Any]) -> None:
    _write_json(path, payload)
