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
import re
from pathlib import Path
from typing import TYPE_CHECKING

from rewardsweep.analysis.collect import Entry
from rewardsweep.errors import UserError
from rewardsweep.study import arms as kinds
from rewardsweep.study.records import STATUSES

if TYPE_CHECKING:
    import pandas as pd

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


def report_run_id(study: str) -> str:
    """The summary run's W&B id: one per study, so rerunning the report updates that run."""
    return "report-" + re.sub(r"[^A-Za-z0-9_.-]", "-", study)


def report_tables(blocks) -> dict[str, "pd.DataFrame"]:
    """The report's tables as it renders them (mIoU points), keyed by a slug of their heading."""
    from rewardsweep.analysis.render import Heading, Table

    out, heading = {}, "report"
    for block in blocks:
        if isinstance(block, Heading):
            heading = block.text
        elif isinstance(block, Table):
            slug = re.sub(r"[^a-z0-9]+", "_", heading.lower()).strip("_")
            out[slug if slug not in out else f"{slug}_{len(out)}"] = block.df
    return out


def forest_table(summary_table: "pd.DataFrame") -> "pd.DataFrame":
    """The numbers behind the forest plot (points): each compared configuration's mean paired
    difference, its 95% t-interval and its adjusted interval, and the verdict."""
    t = summary_table[~summary_table["arm"].isin(kinds.named("control")) & summary_table["n_paired"].notna()]
    cols = {"diff_mean": "mean_diff", "diff_ci_low": "ci_low", "diff_ci_high": "ci_high",
            "diff_adj_low": "adjusted_low", "diff_adj_high": "adjusted_high"}
    out = t[["label", "config_id"]].copy()
    for src, dst in cols.items():
        out[dst] = t[src].astype(float) * 100
    out["n_paired"] = t["n_paired"]
    out["verdict"] = t["verdict"]
    return out.reset_index(drop=True)


def _table(wandb, df: "pd.DataFrame"):
    return wandb.Table(dataframe=df.astype(object).where(df.notna(), None))


def log_summary(summary_table, plots: dict, *, study: str, options, settings: dict,
                tables: dict | None = None) -> tuple[str, Path | None]:
    """Log the report as the study's W&B run of job_type ``report`` (id :func:`report_run_id`,
    resumed, so a rerun updates it): the summary table (labels first, as in every output),
    the report's tables, the forest plot's numbers as a Table, every plot as an image.
    ``options``: :class:`rewardsweep.wandb_settings.WandbOptions` (project, entity, mode,
    folder, as the trials resolve them). Returns the mode and the offline run's folder."""
    import wandb

    os.makedirs(options.dir, exist_ok=True)
    run = wandb.init(project=options.project, entity=options.entity, dir=options.dir, mode=options.mode,
                     id=report_run_id(study), resume="allow", name=f"report-{study}", job_type="report",
                     tags=list(dict.fromkeys([*options.tags, study, "report"])), config=settings,
                     settings=wandb.Settings(silent=True, console="off", save_code=False, disable_git=True,
                                             x_disable_stats=True))
    folder = Path(run.dir).parent if options.mode == "offline" else None
    try:
        # the configuration's label (parameters, then [config id]) first, as in every output
        first = [c for c in ("label", "config_id", "arm", "verdict") if c in summary_table]
        ordered = summary_table[first + [c for c in summary_table.columns if c not in first]]
        payload = {"summary": _table(wandb, ordered)}
        if {"n_paired", "diff_mean"} <= set(summary_table):
            payload["paired_differences"] = _table(wandb, forest_table(summary_table))
        for name, df in (tables or {}).items():
            payload[f"tables/{name}"] = _table(wandb, df)
        for title, path in plots.items():
            payload["plots/" + Path(path).stem] = wandb.Image(str(path), caption=title)
        run.log(payload)
        if "verdict" in summary_table:
            verdicts = summary_table["verdict"].astype(str)
            run.summary.update({"configurations": int(len(summary_table)),
                                "beats_control": int((verdicts == "beats control").sum()),
                                "worse": int((verdicts == "worse").sum())})
    finally:
        run.finish()
    return options.mode, folder
