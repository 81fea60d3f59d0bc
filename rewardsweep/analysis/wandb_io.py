"""W&B: collect trial runs through the public API, log a report run. wandb is imported lazily.

A trial run, as ``rewardsweep.sweep.wandb_log`` logs it (see docs/report.md), carries:

- tags: the study name (what ``--study`` filters on), the arm, the final status;
- ``run.config``: the full trial config (``config_id``, ``control_id``, ``arm``, ``seed``,
  ``estimator``, ``start`` with ``checkpoint``, ``checkpoint_hash``, ``dataset``,
  ``per_class_iou`` and ``class_names``) plus ``params`` and ``status``;
- ``run.summary``: ``miou_start``, ``miou_final``, ``delta_miou``, ``miou_best``, ``status``,
  ``error``, and (W&B keeps the last value of each history key) ``val/iou/<class>``;
- history: ``val/miou`` at each evaluation step (step 0 = the start checkpoint).

A run whose config nests the record under one key (``record``) is read the same way. Runs
of job_type ``report`` (our own summaries) and runs without ``config_id``, ``arm``,
``seed`` and a final ``status`` are skipped (counted in one warning).
"""

from __future__ import annotations

import os
from pathlib import Path

from rewardsweep.analysis.collect import Entry
from rewardsweep.errors import UserError
from rewardsweep.study.records import STATUSES

REQUIRED = ("config_id", "arm", "seed")
SUMMARY_KEYS = ("miou_start", "miou_final", "delta_miou", "miou_best", "error",
                "per_class_iou_start", "per_class_iou_final")
HISTORY_KEY = "val/miou"
CLASS_KEY = "val/iou/"


def _get(mapping, key):
    try:
        return mapping.get(key)
    except Exception:  # W&B summary objects raise on odd keys
        return None


def run_to_record(run) -> dict | None:
    """Rebuild a trial record from a W&B run; ``None`` when the run is not a finished trial."""
    config = dict(run.config or {})
    summary = run.summary
    status = _get(summary, "status") or config.get("status")
    if any(k not in config for k in REQUIRED) or status not in STATUSES:
        return None
    record = dict(config)
    record["status"] = status
    for key in SUMMARY_KEYS:
        value = _get(summary, key)
        if value is not None:
            record[key] = value
    start = config.get("start") if isinstance(config.get("start"), dict) else {}
    names = config.get("class_names") or start.get("class_names")
    if names:
        record["class_names"] = list(names)
        if record.get("per_class_iou_start") is None and start.get("per_class_iou") is not None:
            record["per_class_iou_start"] = start["per_class_iou"]
        if record.get("per_class_iou_final") is None and status == "finished":
            final = [_get(summary, CLASS_KEY + str(c)) for c in names]
            if any(v is not None for v in final):
                record["per_class_iou_final"] = final
    if record.get("miou_start") is None and isinstance(start.get("miou"), (int, float)):
        record["miou_start"] = start["miou"]
    if not record.get("curve"):
        try:
            rows = run.history(keys=[HISTORY_KEY], pandas=False)
        except Exception:
            rows = []
        record["curve"] = [{"step": int(r["_step"]), "miou": float(r[HISTORY_KEY])}
                           for r in rows if r.get(HISTORY_KEY) is not None and "_step" in r]
    return record


def collect_wandb(path: str, study: str, api=None, warnings: list[str] | None = None) -> list[Entry]:
    """Trial runs of project ``ENTITY/PROJECT`` tagged ``study``, as collect entries."""
    if "/" not in path:
        raise UserError(f"--wandb {path!r}: expected ENTITY/PROJECT")
    if api is None:
        import wandb

        try:
            api = wandb.Api()
        except Exception as exc:  # no key, no network
            raise UserError(f"--wandb {path}: cannot reach the W&B API ({exc})") from None
    try:
        runs = list(api.runs(path, filters={"tags": {"$in": [study]}}))
    except Exception as exc:
        raise UserError(f"--wandb {path}: cannot list runs ({exc})") from None
    entries, skipped = [], 0
    for run in runs:
        if getattr(run, "job_type", None) == "report":
            continue
        record = run_to_record(run)
        if record is None:
            skipped += 1
            continue
        entries.append(Entry(f"wandb:{path}", f"wandb:{path}/{run.id}", record, 0.0))
    if skipped and warnings is not None:
        warnings.append(f"wandb:{path}: {skipped} run(s) tagged {study!r} are not finished trials "
                        f"(no {', '.join(REQUIRED)} in run.config, or still running); skipped")
    return entries


def log_summary(summary_table, plots: dict, *, study: str, project: str, entity: str | None,
                mode: str | None, folder: Path, settings: dict) -> str:
    """Log the summary table and plots as a W&B run of job_type ``report``; return its mode."""
    import wandb

    mode = os.environ.get("WANDB_MODE") or mode or "offline"
    run = wandb.init(project=project, entity=entity, job_type="report", name=f"report-{study}",
                     tags=[study, "report"], config=settings, dir=str(folder), mode=mode)
    try:
        # the configuration's label (parameters, then [config id]) first, as in every output
        first = [c for c in ("label", "config_id", "arm", "verdict") if c in summary_table]
        ordered = summary_table[first + [c for c in summary_table.columns if c not in first]]
        table = ordered.astype(object).where(ordered.notna(), None)
        payload = {"summary": wandb.Table(dataframe=table)}
        for title, path in plots.items():
            payload["plots/" + Path(path).stem] = wandb.Image(str(path), caption=title)
        run.log(payload)
    finally:
        run.finish()
    return mode
