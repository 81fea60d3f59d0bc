"""A launch's own bookkeeping in the study folder: preflight, the spec copy, the start
checkpoint(s), one launch at a time.

Where files are is :mod:`rewardsweep.study.layout`; what is left to run is
:mod:`rewardsweep.study.resume`. No Ray, W&B or torch imports here.
"""

from __future__ import annotations

import filecmp
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from rewardsweep import storage
from rewardsweep.errors import UserError
from rewardsweep.study.atomic import atomic_write, atomic_write_json
from rewardsweep.study.layout import StudyPaths
from rewardsweep.study.timestamps import utc_now


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


# --------------------------------------------------------------------------- before the trials

def prepare_folder(plan: Any, console: Any, notes: list[str]) -> None:
    """Under the study lock, before any trial: the spec copied (``spec.yaml``) and the plan
    written (``plan.json``); invalid records set aside (a warning each: their trials run
    again); a note on records the spec no longer names. ``plan``: :class:`.schedule.Plan`."""
    from rich.markup import escape

    from rewardsweep.study.resume import set_aside_invalid

    paths, state = plan.paths, plan.state
    copy_spec(plan.spec.path, paths)
    write_plan(paths, plan.spec.name, plan.plans)
    for problem in state.problems:
        console.print(f"[yellow]warning:[/] {escape(problem)}; moved to records/invalid/ (a trial the "
                      f"spec names runs again)", highlight=False, soft_wrap=True)
    if state.unreadable:
        set_aside_invalid(paths, state.unreadable)
        notes.append(f"{len(state.unreadable)} invalid record(s) set aside in {paths.invalid_records}; "
                     f"the trials the spec names run again")
    if state.orphans:
        notes.append(f"{state.orphans} record(s) in the study folder belong to trials this spec no longer "
                     f"names (the spec, or a default it relies on, changed since: see 'Upgrading from 0.1.0' "
                     f"in the README); kept, not rerun")


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
        history = paths.spec_history
        history.mkdir(parents=True, exist_ok=True)
        moved = history / f"spec-{time.strftime('%Y%m%d-%H%M%S', time.localtime(dst.stat().st_mtime))}.yaml"
        os.replace(dst, moved)
    atomic_write(dst, src.read_bytes())
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

    Runs on the driver before any trial: ``ensure_start`` MLE-pretrains and caches the
    checkpoint when ``checkpoint: auto`` and evaluates its val mIoU once. The results live
    in ``start.json`` (``{"starts": [{"request": ..., <start dict>}, ...]}``); a later
    launch reuses an entry while its checkpoint file still has the entry's hash, so not
    even the val evaluation runs again. A missing, unreadable or changed file is resolved
    again (a damaged cache entry is pretrained again). The study folder pins its start: an
    ``auto`` start is pretrained again with the recipe the entry recorded (iterations, lr,
    batch size, seed), not with today's preset defaults, and must come out with the
    recorded hash; otherwise a :class:`UserError` says so in one line before any trial runs
    (trials from another start could never be pooled with the finished ones). Returns (the
    start entries used, how many were computed now).
    """
    from rewardsweep.errors import UserError

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
            known = entry.get("checkpoint_hash") if entry else None
            if not entry or start_file_problem(entry):
                extra: dict[str, Any] = {}
                if ensure_start is None:
                    from rewardsweep.runners.pretrain import ensure_start as ensure_start  # noqa: PLW0127
                    extra["show_progress"] = True  # pretraining takes a minute or more: show it
                if on_resolve is not None:
                    on_resolve(request)
                pinned = pinned_recipe(entry, request)
                began = time.perf_counter()
                start = dict(ensure_start(model=request["model"], checkpoint=request["checkpoint"],
                                          data_root=request["data_root"],
                                          **{"iters": request["iters"], **pinned}, **extra))
                if known and start.get("checkpoint_hash") != known:
                    raise UserError(_changed_start(paths, request, known, start))
                entry = {**clean_start(start), "request": request, "resolved_at": utc_now(),
                         "resolve_seconds": round(time.perf_counter() - began, 3),
                         "from_cache": bool(start.get("cached"))}
                saved[rid] = entry
                computed += 1
                atomic_write_json(paths.start, {"starts": list(saved.values())}, indent=1, sort_keys=True, default=str)
            used[rid] = entry
        config["start"] = clean_start(used[rid])
    return list(used.values()), computed


def start_file_problem(entry: dict[str, Any]) -> str | None:
    """Why a start entry's checkpoint file cannot be used as it is (missing, unreadable,
    another hash), or None."""
    from rewardsweep.checkpoint_file import file_hash

    path = Path(str(entry.get("checkpoint")))
    try:
        actual = file_hash(path)
    except OSError as exc:
        return f"{path}: cannot be read ({exc.strerror or exc})"
    if entry.get("checkpoint_hash") and actual != entry["checkpoint_hash"]:
        return f"{path}: hash {actual}, not {entry['checkpoint_hash']}"
    return None


def _changed_start(paths: StudyPaths, request: dict[str, Any], known: str, start: dict[str, Any]) -> str:
    what = "pretraining it again gave" if request["checkpoint"] == "auto" else "the file now is"
    return (f"start checkpoint {request['checkpoint']} of {request['model']}: {what} checkpoint "
            f"{start.get('checkpoint_hash')}, but this study's trials started from {known} ({paths.start}); "
            f"the two are never mixed: restore that file, or launch under a new study name (or move "
            f"{paths.start.name} aside to go on from the new one; the report then needs --start HASH)")
def pinned_recipe(entry: dict[str, Any] | None, request: dict[str, Any]) -> dict[str, Any]:
    """The pretraining recipe a study's ``start.json`` entry recorded, as ``ensure_start``
    arguments (``iters``, ``lr``, ``batch_size``, ``seed``); empty for a checkpoint file or
    an entry that recorded none (then the request's own values apply)."""
    pretrained = (entry or {}).get("pretrained")
    if request.get("checkpoint") != "auto" or not isinstance(pretrained, dict):
        return {}
    return {k: pretrained[k] for k in ("iters", "lr", "batch_size", "seed") if pretrained.get(k) is not None}


def clean_start(start: dict[str, Any]) -> dict[str, Any]:
    """The part of a start entry that goes into every trial config."""
    return {k: v for k, v in start.items()
            if k not in ("request", "resolved_at", "resolve_seconds", "cached", "from_cache")}


# --------------------------------------------------------------------------- the plan

def write_plan(paths: StudyPaths, name: str, plans: Iterable[Any]) -> None:
    """``plan.json``: the study's name and the configurations (id -> arm) and seeds its spec
    names at this launch. The report checks records against it (their study) and leaves
    out configurations the spec no longer names (``layout.read_plan``)."""
    plans = list(plans)
    configurations = {p.config_id: p.arm for p in plans}
    atomic_write_json(paths.plan, {"study": name, "written_at": utc_now(), "configurations": configurations,
                                   "seeds": sorted({int(p.seed) for p in plans})}, indent=1, sort_keys=True)


# --------------------------------------------------------------------------- one launch at a time

class StudyLock:
    """An exclusive lock on a study folder for the duration of a launch: two launches of
    the same study would run the same trials twice. Released when the process ends, even
    if it is killed (``flock``)."""

    def __init__(self, paths: StudyPaths) -> None:
        self.path = paths.lock
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
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {utc_now()}\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the flock
            self._handle = None


# --------------------------------------------------------------------------- the launch log

def write_launch_log(path: Path, payload: dict[str, Any]) -> None:
    """``ray/launch-<ts>/rewardsweep-launch.json``: what one launch ran and how each trial ended
    (``resume.interrupted_trials`` reads the trial states)."""
    atomic_write_json(path, payload, indent=1, sort_keys=True, default=str)
