"""The trial record: the one contract between a trial, the sweep and the report.

A trial writes its own record (JSON, one file per trial, :func:`.layout.record_path`) so
the report never depends on Ray's internal files; ``analysis`` reads these files and
nothing else. :class:`TrialRecord` lists the fields; records are built only by
:func:`trial_record` (a trial), :func:`lost_record` (the sweep, for a trial that died
without writing one) and :func:`.synthetic.synthetic_record` (tests, benchmarks).
Stdlib only: no torch, MMSeg, Ray or W&B.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypedDict

from rewardsweep.study import arms as arm_kinds
from rewardsweep.study.atomic import TMP_PREFIX, atomic_write, atomic_write_json
from rewardsweep.study.layout import RECORDS_DIRNAME, trial_name
from rewardsweep.study.timestamps import utc_now

SCHEMA_VERSION = 1
STATUSES = ("finished", "failed", "diverged")
ARMS = arm_kinds.NAMES          # study.arms declares them

Status = Literal["finished", "failed", "diverged"]
Arm = Literal["reward", "mle", "noop"]


class Start(TypedDict):
    checkpoint: str | None
    checkpoint_hash: str | None
    dataset: str | None


class TrialRecord(TypedDict, total=False):
    """A record as it is on disk (all JSON types). :func:`record_problem` says which
    fields a valid one must have; older records may lack the newer fields."""

    schema: int                     # SCHEMA_VERSION
    study: str | None               # study name
    config_id: str                  # short stable hash of the trial config minus seed
    arm: Arm                        # reward | mle (the cross-entropy control) | noop (the reference:
                                    # same batches forward, no update; BatchNorm drift, eval noise)
    control_id: str | None          # config id of the paired control (a control's own: its config_id)
    reference_id: str | None        # config id of the paired no-op reference
    seed: int
    status: Status
    error: str | None
    traceback: str                  # a failed trial's traceback (last frames)
    params: dict[str, Any]          # the varied parameters, flat dotted keys (what a table shows)
    config: dict[str, Any]          # the full trial config
    estimator: str                  # reinforce | reward_weighted_ce | mle | noop
    treatment: dict[str, Any]       # what reached the model (runners/probe.py; the keys:
                                    # analysis.treatment.TREATMENT_KEYS): every arm weight_move,
                                    # heldout_gain; a reward arm its probe summary too
    start: Start                    # records with different start are never pooled silently
    class_names: list[str] | None
    miou_start: float | None        # floats in [0, 1]
    miou_final: float | None
    delta_miou: float | None
    miou_best: float | None         # secondary: selection on val
    per_class_iou_start: list[float | None] | None   # aligned with class_names (None: absent from val)
    per_class_iou_final: list[float | None] | None
    curve: list[dict[str, Any]]     # {"step": int, "miou": float}; step 0 = start checkpoint
    diagnostics_file: str | None    # relative to the study folder: per-step diagnostics (JSON lines)
    diagnostics_summary: dict[str, float]   # their means over the last 10% of steps
    val_counts_file: str            # relative to the study folder: per-image val counts
    final_checkpoint: dict[str, Any]  # checkpoints: final: {file, config_file} (relative to the
                                    # study folder), sha256 and bytes of the final weights
    timings: dict[str, float | None]        # setup_s, train_s, eval_s, total_s
    versions: dict[str, str]        # package versions
    host: str                       # node name
    runtime: dict[str, Any] | None  # where it ran (set by the sweep: node id, pid, attempt)
    started_at: str | None          # timestamps.utc_now() (older records: local time with %z offset)
    finished_at: str | None
    written_by: str                 # set when someone other than the trial wrote it


# --------------------------------------------------------------------------- constructors

def _identity(config: dict[str, Any], params: dict[str, Any]) -> TrialRecord:
    arm = config["arm"]
    return {
        "schema": SCHEMA_VERSION,
        "study": config.get("study", "adhoc"),
        "config_id": config.get("config_id", "adhoc"),
        **{link: config.get(link) for link in arm_kinds.links()},
        "arm": arm,
        "seed": int(config["seed"]),
        "status": "failed",
        "error": None,
        "params": dict(params),
        "config": config,
        "estimator": config.get("estimator") if arm_kinds.trains(arm) == "reward" else arm,
    }


def trial_record(config: dict[str, Any], params: dict[str, Any], host: str) -> TrialRecord:
    """The record a trial starts with: ``failed`` until the trial says otherwise, so that
    one cut short by an exception is still recorded (the trial fills in the rest)."""
    return {
        **_identity(config, params),
        "host": host,
        "runtime": config.get("runtime"),
        "started_at": utc_now(),
        "curve": [],
        "miou_final": None, "delta_miou": None, "miou_best": None,
        "per_class_iou_final": None,
        "diagnostics_file": None,
        "diagnostics_summary": {},
    }


def lost_record(config: dict[str, Any], params: dict[str, Any], error: str,
                host: str | None = None) -> TrialRecord:
    """A ``failed`` record for a trial that died without writing its own (worker killed,
    node lost, out of memory): failures are data and never silently dropped."""
    start = config.get("start") or {}
    return {
        **_identity(config, params),
        "error": error,
        "start": {k: start.get(k) for k in ("checkpoint", "checkpoint_hash", "dataset")},
        "class_names": start.get("class_names"),
        "miou_start": start.get("miou"),
        "miou_final": None, "delta_miou": None, "miou_best": None,
        "per_class_iou_start": start.get("per_class_iou"), "per_class_iou_final": None,
        "curve": [], "diagnostics": [],
        "timings": {"setup_s": None, "train_s": None, "eval_s": None, "total_s": None},
        "versions": {}, "host": host or socket.gethostname(),
        "started_at": None, "finished_at": utc_now(),
        "written_by": "rewardsweep.sweep (the trial died without writing a record)",
    }


# --------------------------------------------------------------------------- validity

def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


SEED_LIMIT = 2 ** 32   # numpy's seed range
_SCORES = ("miou_start", "miou_final", "miou_best")       # an IoU: in [0, 1] when finite
_SIDECARS = ("val_counts_file", "diagnostics_file")       # read by the report: inside the study folder


def _score_problem(key: str, value: Any, lo: float = 0.0) -> str | None:
    if value is None:
        return None
    if not _is_number(value):
        return f"{key} is {value!r}, expected a number or null"
    if math.isfinite(value) and not lo <= value <= 1.0:
        return f"{key} is {value!r}, outside [{lo:g}, 1]"
    return None


def _scores_problem(record: dict) -> str | None:
    for key in _SCORES:
        problem = _score_problem(key, record.get(key))
        if problem:
            return problem
    problem = _score_problem("delta_miou", record.get("delta_miou"), lo=-1.0)
    if problem:
        return problem
    for key in ("per_class_iou_start", "per_class_iou_final"):
        values = record.get(key)
        if values is None:
            continue
        if not isinstance(values, list):
            return f"{key} is {type(values).__name__}, expected a list of numbers"
        for i, value in enumerate(values):
            problem = _score_problem(f"{key}[{i}]", value)
            if problem:
                return problem
    curve = record.get("curve")
    if curve is not None:
        if not isinstance(curve, list):
            return f"curve is {type(curve).__name__}, expected a list of {{step, miou}}"
        for i, point in enumerate(curve):
            if not isinstance(point, dict) or isinstance(point.get("step"), bool) \
                    or not isinstance(point.get("step"), int):
                return f"curve[{i}] is {point!r}, expected {{step: integer, miou: number}}"
            problem = _score_problem(f"curve[{i}].miou", point.get("miou"))
            if problem:
                return problem
    return None


def _sidecar_problem(record: dict, folder: Path | None) -> str | None:
    """Sidecar files (read by the report) are relative paths that stay inside the study
    folder, symbolic links followed when ``folder`` is given."""
    for key in _SIDECARS:
        value = record.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value or "\0" in value:
            return f"{key} is {value!r}, expected a path inside the study folder or null"
        pure = PurePosixPath(value.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts or value.startswith("~"):
            return f"{key} is {value!r}, outside the study folder; expected a path inside it"
        if folder is not None:
            root = folder.resolve()
            try:
                inside = (root / pure).resolve().is_relative_to(root)
            except (OSError, RuntimeError):  # a symlink loop
                inside = False
            if not inside:
                return f"{key} {value!r} leads outside the study folder {root} (a symbolic link?); " \
                       f"expected a file inside it"
    return None


def record_problem(record: Any, *, name: str | None = None, study: str | None = None,
                   folder: Path | None = None) -> str | None:
    """Why ``record`` is not a valid trial record, or None if it is: the one rule that the
    launch (what is done, what reruns) and the report (what counts) both apply.

    Types and ranges: ``config_id`` text, ``arm`` and ``status`` known, ``seed`` an
    integer in [0, 2^32), mIoU values in [0, 1] (a change in [-1, 1]), a ``finished``
    record with finite ``miou_start`` and ``miou_final`` (one without them is not a
    result), sidecar files inside the study folder (``folder``, when given: links are
    followed). Identity: ``name`` (the file's stem)
    must be the trial the record holds, and ``study`` (when given) its study, so a copied
    or renamed file never counts for another trial or study.
    """
    if not isinstance(record, dict):
        return "not a trial record (expected a JSON object)"
    missing = [k for k in ("config_id", "arm", "seed", "status") if k not in record]
    if missing:
        return f"trial record lacks key(s) {', '.join(missing)}"
    config_id = record["config_id"]
    if not isinstance(config_id, str) or not config_id or len(config_id) > 64 \
            or any(c in config_id for c in "/\\\0"):
        return f"config_id is {config_id!r}, expected a configuration id (text)"
    if record["status"] not in STATUSES:
        return f"status {record['status']!r} is not one of {STATUSES}"
    if record["arm"] not in ARMS:
        return f"arm {record['arm']!r} is not one of {ARMS}"
    seed = record["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        return f"seed is {seed!r}, expected an integer"
    if not 0 <= seed < SEED_LIMIT:
        return f"seed is {seed}, expected an integer in [0, 2^32)"
    for key in (*arm_kinds.links(), "study"):
        if record.get(key) is not None and not isinstance(record[key], str):
            return f"{key} is {record[key]!r}, expected text or null"
    if name is not None and name != trial_name(config_id, record["arm"], seed):
        return (f"holds trial {trial_name(config_id, record['arm'], seed)} but the file is named {name}; "
                f"a record's file name is its trial")
    if study is not None and record.get("study") is not None and record["study"] != study:
        return f"belongs to study {record['study']!r}, not to this study {study!r} (copied in from another study?)"
    if record["status"] == "finished":
        for key in ("miou_start", "miou_final"):
            value = record.get(key)
            if not _is_number(value) or not math.isfinite(value):
                return f"status is finished but {key} is {value!r}, expected a finite number"
    return _scores_problem(record) or _sidecar_problem(record, folder)


def batch_stream(record: dict[str, Any]) -> str:
    """Which training batches a trial saw: ``"seeded"`` (each sample's augmentation seeded from
    the trial's seed, position and index: the same batches with any worker count; records
    since the loader change, which also added ``timings.data_wait_s``) or ``"shared"`` (0.3.0
    and earlier: MMEngine's one random stream). The same seed gives other batches in each,
    so a study topped up across that change mixes the two (the report says so)."""
    timings = record.get("timings")
    return "seeded" if isinstance(timings, dict) and "data_wait_s" in timings else "shared"


def is_done(record: dict[str, Any]) -> bool:
    """Finished and diverged trials are final results; a failed one may be retried."""
    return record.get("status") in ("finished", "diverged")


# --------------------------------------------------------------------------- files

def write_record(path: str | os.PathLike, record: TrialRecord | dict[str, Any]) -> Path:
    """Write atomically: a reader never sees half a record, even if we are killed."""
    return atomic_write_json(path, record, indent=1, sort_keys=True, allow_nan=True)


MAX_RECORD_BYTES = 64 * 1024 * 1024   # a record is kilobytes (curves, per-class IoU); a larger file is not one


def read_record(path: str | os.PathLike, study: str | None = None) -> TrialRecord:
    """Read one record; raises ``ValueError`` naming the file if it is not a valid record
    (:func:`record_problem`, with the file's name, its study folder (``records/..``) and
    ``study`` when given)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_RECORD_BYTES + 1)
        if len(data) > MAX_RECORD_BYTES:
            raise ValueError(f"larger than {MAX_RECORD_BYTES >> 20} MiB")
        record = json.loads(data)
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, bytes that are not UTF-8
        raise ValueError(f"{path}: not a readable trial record ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())})") from exc
    problem = record_problem(record, name=path.stem, study=study, folder=path.parent.parent)
    if problem:
        raise ValueError(f"{path}: {problem}")
    return record


def remove_partial_writes(study_dir: str | os.PathLike, older_than_s: float = 600.0) -> int:
    """Delete half-written records (``.tmp-*``) that a killed writer left. Only old ones: a
    record takes milliseconds to write, and a straggling worker of a killed launch may
    still be writing one."""
    folder = Path(study_dir) / RECORDS_DIRNAME
    removed = 0
    cutoff = time.time() - older_than_s
    for path in folder.glob(f"{TMP_PREFIX}*") if folder.is_dir() else ():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            pass
    return removed


def write_diagnostics(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """Per-step diagnostics (step, loss, reward_mean, reward_std, advantage_mean,
    advantage_std, grad_norm, lr), JSON lines. Most of a trial's data and the report never
    needs them, so they live beside the record, not in it."""
    return atomic_write(path, "".join(json.dumps(row, allow_nan=True) + "\n" for row in rows))


def read_diagnostics(path: str | os.PathLike) -> list[dict[str, Any]]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


# The clipped surrogate's ratio statistics are trivial on epoch 1 of a batch (the sampling
# policy itself: ratios 1, nothing clipped): their summary is over epochs 2..E only.
REPLAY_KEYS = ("clip_fraction", "ratio_min", "ratio_max", "kl_old")


def summarize_diagnostics(rows: list[dict[str, Any]], tail: float = 0.1) -> dict[str, float]:
    """Means of each numeric diagnostic over the last ``tail`` fraction of steps
    (:data:`REPLAY_KEYS`: over the window's steps of epoch 2 and later, when it has some)."""
    if not rows:
        return {}
    window = rows[-max(1, int(len(rows) * tail)):]
    # Keys every row of the window has (probe values exist on probe steps only).
    keys = [k for k, v in window[-1].items() if k not in ("kind", "step") and isinstance(v, (int, float))
            and all(k in r for r in window)]
    out = {k: sum(float(r.get(k, float("nan"))) for r in window) / len(window) for k in keys}
    replays = [r for r in window if r.get("epoch", 1) > 1]
    for k in REPLAY_KEYS:
        if k in out and replays:
            out[k] = sum(float(r[k]) for r in replays) / len(replays)
    return out


def write_val_counts(path: str | os.PathLike, class_names: list[str], intersect, union,
                     miou: float) -> Path:
    """The final evaluation's per-image confusion counts: ``intersect[i][c]`` and
    ``union[i][c]`` pixels of val image i (the val split's order) and class c, and the mIoU
    they give (a check). The report's val-image bootstrap resamples these rows."""
    data = {"class_names": list(class_names), "miou": float(miou),
            "intersect": [[int(round(float(v))) for v in row] for row in intersect],
            "union": [[int(round(float(v))) for v in row] for row in union]}
    return atomic_write_json(path, data, separators=(",", ":"))


def read_val_counts(path: str | os.PathLike) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
