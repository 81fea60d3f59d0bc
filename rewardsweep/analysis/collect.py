"""Collect trial records into tidy tables.

Input: the ``records/*.json`` of one or more study folders (a top-up adds folders or
trials: the union is the study) and, optionally, record-like dicts rebuilt from W&B runs
(:mod:`rewardsweep.analysis.wandb_io`). Output: a :class:`Collection`:

- ``trials``: one row per (config_id, arm, seed), params flattened as columns;
- ``curves``: long table ``trial, config_id, arm, seed, step, miou``;
- ``iou_start`` / ``iou_final``: per-class IoU, one row per trial, one column per class.

Rules:
- the same (config_id, arm, seed) found twice (a retried trial, an overlapping top-up)
  counts once: the newest finished record wins, else the newest record;
- records whose ``start`` (checkpoint hash, dataset) differ are never pooled: a
  :class:`~rewardsweep.errors.UserError` names the values and folders, unless ``start``
  selects one (a checkpoint-hash prefix or a dataset name);
- a record that cannot be read, or is not a valid record, is named in a warning and
  skipped; it never stops the report.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from rewardsweep.errors import UserError
from rewardsweep.analysis.treatment import KNOB_DIAGNOSTICS, TREATMENT_KEYS
from rewardsweep.study import arms as kinds
from rewardsweep.study.layout import RECORDS_DIRNAME, read_plan, study_name
from rewardsweep.study.records import batch_stream, read_record, record_problem
from rewardsweep.study.timestamps import timestamp_key

# Columns of the trials table that are not parameters (params never overwrite these).
BASE_COLUMNS = (
    "study", "source", "file", "config_id", "control_id", "arm", "seed", "status", "error",
    "estimator", "miou_start", "miou_final", "delta_miou", "miou_best",
    "checkpoint", "checkpoint_hash", "dataset", "started_at", "finished_at", "total_s", "host", "batches",
    "val_counts_file", "reference_id", "final_checkpoint", "final_checkpoint_sha256",
    *(f"treatment.{k}" for k in TREATMENT_KEYS),
    *(f"diag.{k}" for k in KNOB_DIAGNOSTICS),
)
PARAM_PREFIX = "param:"   # only used when a parameter name collides with a base column


@dataclass
class Entry:
    """One record as read, before validation."""

    source: str         # the study folder (or "wandb:ENTITY/PROJECT")
    name: str           # file path or run path, for messages
    record: dict
    mtime: float = 0.0


@dataclass
class Collection:
    trials: pd.DataFrame
    curves: pd.DataFrame
    iou_start: pd.DataFrame
    iou_final: pd.DataFrame
    class_names: list[str]
    param_columns: list[str]
    sources: list[str]
    warnings: list[str] = field(default_factory=list)
    n_duplicates: int = 0
    # configurations whose records were left out because the study's spec (as last launched,
    # plan.json) no longer names them: config_id -> records
    unnamed: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> pd.DataFrame:
        return self.trials[self.trials["status"] == "finished"]

    @property
    def iou_delta(self) -> pd.DataFrame:
        return self.iou_final - self.iou_start


# --------------------------------------------------------------------------- reading

def read_folder(folder: str | os.PathLike, warnings: list[str]) -> list[Entry]:
    """Every valid record of ``folder/records`` (the launch's rule, :func:`record_problem`,
    with the file's name and the folder's study); the others go to ``warnings``."""
    folder = Path(folder)
    records = folder / RECORDS_DIRNAME
    if not records.is_dir():
        return []
    study = study_name(folder)
    # os.scandir: the same files as layout.iter_record_paths, without 10k Path sorts.
    with os.scandir(records) as it:
        found = sorted((e.name, e.path) for e in it if e.name.endswith(".json") and e.is_file())
    entries = []
    for _, path in found:
        try:
            record = load_record(path, study=study)
            mtime = os.stat(path).st_mtime
        except (ValueError, OSError) as exc:
            warnings.append(f"{exc}; skipped")
            continue
        entries.append(Entry(str(folder), path, record, mtime))
    return entries


def load_record(path: str | os.PathLike, study: str | None = None) -> dict:
    """One record (``rewardsweep.study.records.read_record``); records are small because per-step
    diagnostics live in a sidecar file the report never reads."""
    return read_record(path, study=study)


def _num(value: Any, key: str, name: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: {key} is {value!r}, expected a number or null")
    return float(value)


def _scalar(value: Any) -> Any:
    """Params as table cells: lists/dicts become their JSON text (hashable, readable)."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def _floats(values: list, key: str, name: str) -> np.ndarray:
    """A list of numbers (None -> NaN) as a float array; ``ValueError`` naming the file."""
    try:
        return np.array(values, dtype=float)                    # fast path: no None
    except (TypeError, ValueError):
        return np.array([math.nan if v is None else _num(v, key, name) for v in values], dtype=float)


def _float_list(values: Any, n: int, key: str, name: str) -> np.ndarray | None:
    if values is None:
        return None
    if not isinstance(values, list) or len(values) != n:
        raise ValueError(f"{name}: {key} has {len(values) if isinstance(values, list) else values!r} "
                         f"entries, expected {n} (one per class name)")
    return _floats(values, key, name)


def _validate(entry: Entry) -> dict:
    """The table row of one record; ``ValueError`` naming the file when it is invalid."""
    rec, name = entry.record, entry.name
    problem = record_problem(rec)  # the launch's rule too: what it reruns, the report leaves out
    if problem:
        raise ValueError(f"{name}: {problem}")
    seed = rec["seed"]
    start = rec.get("start") or {}
    if not isinstance(start, dict):
        raise ValueError(f"{name}: start is {start!r}, expected an object")
    row = {
        "study": rec.get("study"),
        "source": entry.source,
        "file": name,
        "config_id": str(rec["config_id"]),
        "control_id": None if rec.get("control_id") is None else str(rec["control_id"]),
        "reference_id": None if rec.get("reference_id") is None else str(rec["reference_id"]),
        "arm": rec["arm"],
        "seed": seed,
        "status": rec["status"],
        "error": rec.get("error"),
        "estimator": rec.get("estimator") if kinds.trains(rec["arm"]) == "reward" else rec["arm"],
        "checkpoint": start.get("checkpoint"),
        "checkpoint_hash": start.get("checkpoint_hash"),
        "dataset": start.get("dataset"),
        "started_at": rec.get("started_at"),
        "finished_at": rec.get("finished_at"),
        "host": rec.get("host"),
        # the per-image counts sidecar (relative to the study folder), for --bootstrap-images
        "val_counts_file": None,
    }
    if isinstance(rec.get("val_counts_file"), str) and not entry.source.startswith("wandb:"):
        # inside the study folder: record_problem checked it (links followed) when the file was read
        row["val_counts_file"] = str(Path(entry.source) / rec["val_counts_file"])
    kept = rec.get("final_checkpoint") if isinstance(rec.get("final_checkpoint"), dict) else {}
    row["final_checkpoint"] = str(Path(entry.source) / kept["file"]) if isinstance(kept.get("file"), str) else None
    row["final_checkpoint_sha256"] = kept.get("sha256")    # checkpoints: final (runners/final_checkpoint.py)
    for key in ("miou_start", "miou_final", "delta_miou", "miou_best"):
        row[key] = _num(rec.get(key), key, name)
    if math.isnan(row["delta_miou"]):
        row["delta_miou"] = row["miou_final"] - row["miou_start"]
    treatment = rec.get("treatment") if isinstance(rec.get("treatment"), dict) else {}
    for key in TREATMENT_KEYS:
        row[f"treatment.{key}"] = _num(treatment.get(key), f"treatment.{key}", name)
    diagnostics = rec.get("diagnostics_summary") if isinstance(rec.get("diagnostics_summary"), dict) else {}
    for key in KNOB_DIAGNOSTICS:   # an estimator knob's diagnostic (absent: knob off, or an older record)
        row[f"diag.{key}"] = _num(diagnostics.get(key), f"diagnostics_summary.{key}", name)
    timings = rec.get("timings") or {}
    row["batches"] = batch_stream(rec)
    row["total_s"] = _num(timings.get("total_s"), "timings.total_s", name) if isinstance(timings, dict) else math.nan
    params = rec.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError(f"{name}: params is {params!r}, expected an object")
    row["_params"] = {k: _scalar(v) for k, v in params.items()}
    curve = rec.get("curve") or []
    try:
        steps = np.array([p["step"] for p in curve], dtype=int)
        mious = _floats([p["miou"] for p in curve], "curve.miou", name)
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"{name}: curve is not a list of {{step, miou}} ({exc})") from None
    row["_curve"] = (steps, mious)
    names = rec.get("class_names")
    row["_classes"] = [str(c) for c in names] if isinstance(names, list) and names else None
    if row["_classes"]:          # without class names, per-class lists cannot be placed: ignored
        n = len(row["_classes"])
        row["_iou_start"] = _float_list(rec.get("per_class_iou_start"), n, "per_class_iou_start", name)
        row["_iou_final"] = _float_list(rec.get("per_class_iou_final"), n, "per_class_iou_final", name)
    else:
        row["_iou_start"] = row["_iou_final"] = None
    row["_mtime"] = entry.mtime
    return row


# --------------------------------------------------------------------------- start checkpoints

def _start_key(row: dict) -> tuple[str, str]:
    return (row["checkpoint_hash"] or row["checkpoint"] or "unknown", row["dataset"] or "unknown")


def _select_start(rows: list[dict], start: str | None) -> list[dict]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault(_start_key(row), []).append(row)
    if start is not None:
        chosen = [k for k in groups if k[0].startswith(start) or k[1] == start]
        if len(chosen) != 1:
            have = ", ".join(f"{h[:12]} ({d})" for h, d in groups)
            what = "matches no" if not chosen else "matches several"
            raise UserError(f"--start {start!r} {what} start checkpoint of these records; they have: {have}")
        return groups[chosen[0]]
    if len(groups) > 1:
        parts = []
        for (hash_, dataset), members in groups.items():
            where = sorted({Path(m["source"]).name or m["source"] for m in members})
            parts.append(f"checkpoint {hash_[:12]} on {dataset} ({len(members)} records in {', '.join(where)})")
        raise UserError("records come from different start checkpoints and are never pooled: "
                        + "; ".join(parts) + "; pass --start HASH to report one of them")
    return rows


# --------------------------------------------------------------------------- the tables

def build(entries: Iterable[Entry], start: str | None = None,
          warnings: list[str] | None = None) -> Collection:
    """Validate, select one start checkpoint, de-duplicate and tabulate records."""
    warnings = [] if warnings is None else warnings
    entries = list(entries)
    sources = list(dict.fromkeys(e.source for e in entries))
    rows = []
    for entry in entries:
        try:
            rows.append(_validate(entry))
        except (ValueError, KeyError, TypeError) as exc:
            warnings.append(f"{exc}; skipped")
    if not rows:
        return _empty(sources, warnings)
    rows = _select_start(rows, start)

    # De-duplicate (config_id, arm, seed): newest finished wins, else newest (timestamps
    # compared as times: UTC and older local-time records meet in one study)
    order = sorted(range(len(rows)), key=lambda i: (
        rows[i]["status"] == "finished", timestamp_key(rows[i]["finished_at"]), rows[i]["_mtime"]))
    kept: dict[tuple, int] = {}
    for i in order:
        kept[(rows[i]["config_id"], rows[i]["arm"], rows[i]["seed"])] = i
    n_dup = len(rows) - len(kept)
    rows = [rows[i] for i in sorted(kept.values(), key=lambda i: (
        rows[i]["config_id"], rows[i]["arm"], rows[i]["seed"]))]

    # Class names: the first record that has them; others must agree.
    class_names: list[str] = next((r["_classes"] for r in rows if r["_classes"]), [])
    n_cls = len(class_names)
    iou_s = np.full((len(rows), n_cls), np.nan)
    iou_f = np.full((len(rows), n_cls), np.nan)
    odd = []
    for i, r in enumerate(rows):
        if r["_classes"] and r["_classes"] != class_names:
            odd.append(r["file"])
            continue
        if r["_iou_start"] is not None:
            iou_s[i] = r["_iou_start"]
        if r["_iou_final"] is not None:
            iou_f[i] = r["_iou_final"]

    if odd:
        more = f" and {len(odd) - 1} other record(s)" if len(odd) > 1 else ""
        ref = next(r["file"] for r in rows if r["_classes"])
        warnings.append(f"{odd[0]}{more}: class_names differ from {ref}; "
                        "their per-class IoU is left out")

    # Params: flat columns; a name that collides with a base column gets a prefix.
    param_keys = list(dict.fromkeys(k for r in rows for k in r["_params"]))
    colname = {k: (PARAM_PREFIX + k if k in BASE_COLUMNS else k) for k in param_keys}
    data: dict[str, list] = {c: [r[c] for r in rows] for c in BASE_COLUMNS}
    for k in param_keys:
        data[colname[k]] = [r["_params"].get(k) for r in rows]
    trials = pd.DataFrame(data)
    trials["seed"] = trials["seed"].astype(int)

    lengths = np.array([len(r["_curve"][0]) for r in rows], dtype=int)
    tidx_a = np.repeat(np.arange(len(rows)), lengths)
    curves = pd.DataFrame({
        "trial": tidx_a,
        "config_id": trials["config_id"].to_numpy()[tidx_a],
        "arm": trials["arm"].to_numpy()[tidx_a],
        "seed": trials["seed"].to_numpy()[tidx_a],
        "step": np.concatenate([r["_curve"][0] for r in rows]) if rows else np.zeros(0, int),
        "miou": np.concatenate([r["_curve"][1] for r in rows]) if rows else np.zeros(0),
    })
    return Collection(
        trials=trials, curves=curves,
        iou_start=pd.DataFrame(iou_s, columns=class_names),
        iou_final=pd.DataFrame(iou_f, columns=class_names),
        class_names=class_names, param_columns=[colname[k] for k in param_keys],
        sources=sources, warnings=warnings, n_duplicates=n_dup,
    )


def _empty(sources: list[str], warnings: list[str]) -> Collection:
    trials = pd.DataFrame({c: [] for c in BASE_COLUMNS})
    curves = pd.DataFrame({c: [] for c in ("trial", "config_id", "arm", "seed", "step", "miou")})
    return Collection(trials, curves, pd.DataFrame(), pd.DataFrame(), [], [], sources, warnings)


def collect(folders: Iterable[str | os.PathLike], start: str | None = None,
            extra: Iterable[Entry] = (), all_configs: bool = False) -> Collection:
    """Read the records of ``folders`` (plus ``extra`` entries, e.g. from W&B) into tables.

    Records of configurations that a folder's spec, as last launched (``plan.json``), no
    longer names (a grid value removed, a default changed) are left out unless
    ``all_configs``: they would join the table and the comparison family unnoticed.
    ``Collection.unnamed`` says which were left out.
    """
    warnings: list[str] = []
    entries: list[Entry] = []
    unnamed: dict[str, int] = {}
    for folder in folders:
        found = read_folder(folder, warnings)
        plan = read_plan(folder)
        if plan is not None and not all_configs:
            named = set(plan["configurations"])
            for entry in found:
                if str(entry.record["config_id"]) not in named:
                    unnamed[str(entry.record["config_id"])] = unnamed.get(str(entry.record["config_id"]), 0) + 1
            found = [e for e in found if str(e.record["config_id"]) in named]
        entries.extend(found)
    entries.extend(extra)
    collection = build(entries, start=start, warnings=warnings)
    collection.unnamed = unnamed
    return collection


__all__ = ["Entry", "Collection", "collect", "build", "read_folder"]
