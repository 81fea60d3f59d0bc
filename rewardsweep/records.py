"""The trial record: the one contract between a trial, the sweep and the report.

A trial writes its own record (JSON, one file per trial) so the report never depends on
Ray's internal files. ``analysis`` reads these files and nothing else. Keep this module
free of torch, MMSeg, Ray and W&B imports.

Record fields (all JSON types):

- ``schema``: int, :data:`SCHEMA_VERSION`
- ``study``: study name; ``config_id``: short stable hash of the trial config minus seed
- ``arm``: ``"reward"``, ``"mle"`` (the cross-entropy control) or ``"noop"`` (the
  reference: the same batches forward, no update; BatchNorm drift and evaluation noise)
- ``control_id``: config id of the control this trial is paired with (``None`` if none;
  a control's own ``control_id`` is its ``config_id``)
- ``seed``: int; ``status``: one of :data:`STATUSES`; ``error``: str or None
- ``params``: the varied parameters as flat dotted keys (what a table shows)
- ``config``: the full trial config
- ``estimator``: ``"reinforce"``, ``"reward_weighted_ce"``, ``"mle"`` or ``"noop"``
- ``reference_id``: config id of the no-op reference this trial is paired with, or None
- ``treatment`` (reward arm): what reached the model, from the probes every
  ``diagnostics_every`` steps (``runners/probe.py``): ``reward_share``, ``reward_grad_norm``,
  ``other_grad_norm``, ``wd_norm``, ``signal_norm``, ``halves_cos``, ``reward_rise``,
  ``reward_rise_se``, ``probes``
- ``start``: ``{"checkpoint": path, "checkpoint_hash": str, "dataset": str}``; records
  with different ``start`` are never pooled silently
- ``class_names``: list of str
- ``miou_start``, ``miou_final``, ``delta_miou``, ``miou_best`` (secondary: selection on
  val): floats in [0, 1] or None
- ``per_class_iou_start``, ``per_class_iou_final``: lists aligned with ``class_names``
  (None for a class absent from val)
- ``curve``: list of ``{"step": int, "miou": float}`` (step 0 = start checkpoint)
- ``diagnostics_file``: path, relative to the study folder, of the per-step diagnostics
  (JSON lines: step, loss, reward_mean, reward_std, advantage_mean, advantage_std,
  grad_norm, lr). They are most of a trial's data and the report never needs them, so
  they live beside the record, not in it; ``diagnostics_summary`` holds their means over
  the last 10% of steps
- ``timings``: ``{"setup_s", "train_s", "eval_s", "total_s"}``
- ``versions``: package versions; ``host``: node name; ``started_at``/``finished_at``
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

SCHEMA_VERSION = 1
STATUSES = ("finished", "failed", "diverged")
ARMS = ("reward", "mle", "noop")
RECORDS_DIRNAME = "records"
DIAGNOSTICS_DIRNAME = "diagnostics"
VAL_COUNTS_DIRNAME = "val_counts"
TMP_PREFIX = ".tmp-"               # a record being written (renamed into place when complete)


def record_filename(config_id: str, arm: str, seed: int) -> str:
    return f"{config_id}-{arm}-seed{seed}.json"


def record_path(study_dir: str | os.PathLike, config_id: str, arm: str, seed: int) -> Path:
    return Path(study_dir) / RECORDS_DIRNAME / record_filename(config_id, arm, seed)


def diagnostics_path(study_dir: str | os.PathLike, config_id: str, arm: str, seed: int) -> Path:
    name = record_filename(config_id, arm, seed).removesuffix(".json") + ".jsonl"
    return Path(study_dir) / DIAGNOSTICS_DIRNAME / name


def write_diagnostics(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(row, allow_nan=True) + "\n" for row in rows))
    os.replace(tmp, path)
    return path


def read_diagnostics(path: str | os.PathLike) -> list[dict[str, Any]]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def val_counts_path(study_dir: str | os.PathLike, config_id: str, arm: str, seed: int) -> Path:
    return Path(study_dir) / VAL_COUNTS_DIRNAME / record_filename(config_id, arm, seed)


def write_val_counts(path: str | os.PathLike, class_names: list[str], intersect, union,
                     miou: float) -> Path:
    """The final evaluation's per-image confusion counts: ``intersect[i][c]`` and
    ``union[i][c]`` pixels of val image i (the val split's order) and class c, and the mIoU
    they give (a check). The report's val-image bootstrap resamples these rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"class_names": list(class_names), "miou": float(miou),
            "intersect": [[int(round(float(v))) for v in row] for row in intersect],
            "union": [[int(round(float(v))) for v in row] for row in union]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    os.replace(tmp, path)
    return path


def read_val_counts(path: str | os.PathLike) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def summarize_diagnostics(rows: list[dict[str, Any]], tail: float = 0.1) -> dict[str, float]:
    """Means of each numeric diagnostic over the last ``tail`` fraction of steps."""
    if not rows:
        return {}
    window = rows[-max(1, int(len(rows) * tail)):]
    # Keys every row of the window has (probe values exist on probe steps only).
    keys = [k for k, v in window[-1].items() if k not in ("kind", "step") and isinstance(v, (int, float))
            and all(k in r for r in window)]
    return {k: sum(float(r.get(k, float("nan"))) for r in window) / len(window) for k in keys}


def write_record(path: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write atomically: a reader never sees half a record, even if we are killed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # not *.json: what a writer killed mid-write leaves is never taken for a record
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".json.tmp", dir=path.parent)
    try:
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; collaborators read records too
        except OSError:  # a filesystem without modes (some SMB mounts): its default stands
            pass
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=1, sort_keys=True, allow_nan=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process umask, read without changing it (Linux), else by setting and restoring it."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def record_problem(record: Any) -> str | None:
    """Why ``record`` is not a valid trial record, or None if it is: the one rule that the
    launch (what is done, what reruns) and the report (what counts) both apply.

    A ``finished`` record must carry finite ``miou_start`` and ``miou_final``: one without
    them is not a result, so the launch reruns it and the report leaves it out.
    """
    if not isinstance(record, dict):
        return "not a trial record (expected a JSON object)"
    missing = [k for k in ("config_id", "arm", "seed", "status") if k not in record]
    if missing:
        return f"trial record lacks key(s) {', '.join(missing)}"
    if record["status"] not in STATUSES:
        return f"status {record['status']!r} is not one of {STATUSES}"
    if record["arm"] not in ARMS:
        return f"arm {record['arm']!r} is not one of {ARMS}"
    if isinstance(record["seed"], bool) or not isinstance(record["seed"], int):
        return f"seed is {record['seed']!r}, expected an integer"
    if record["status"] == "finished":
        for key in ("miou_start", "miou_final"):
            value = record.get(key)
            if not _is_number(value) or not math.isfinite(value):
                return f"status is finished but {key} is {value!r}, expected a finite number"
    return None


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """Read one record; raises ``ValueError`` naming the file if it is not a valid record."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: bad JSON, or bytes that are not UTF-8
        raise ValueError(f"{path}: not a readable trial record ({type(exc).__name__}: {exc})") from exc
    problem = record_problem(record)
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


def iter_record_paths(study_dir: str | os.PathLike) -> Iterator[Path]:
    folder = Path(study_dir) / RECORDS_DIRNAME
    if folder.is_dir():
        yield from sorted(folder.glob("*.json"))


def is_done(record: dict[str, Any]) -> bool:
    """Finished and diverged trials are final results; a failed one may be retried."""
    return record.get("status") in ("finished", "diverged")
