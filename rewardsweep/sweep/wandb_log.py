"""W&B: one run per trial, logged from inside the trial's own process.

Why from inside the trial: a driver-side logging callback (Ray's ``WandbLoggerCallback``)
starts a logging process per trial and ships every result through the driver, which costs
several seconds per trial. Here the trial's ``on_event`` callback writes straight to the
W&B service of its Ray worker; Ray reuses workers between trials, so ``wandb`` is imported
and its service started once per worker, and a run starts in a fraction of a second.

Layout of a run: name = the configuration's label (the report's: the parameters the study
varies, then the config id, :func:`run_labels`) and the seed (``baseline.kind=greedy
lr.start=0.01 [c6b0e147] seed 3``); ``group`` = study and label (W&B shows mean and spread
across seeds); ``job_type`` = arm; tags = study name, arm, config id and, once it ends, the
attempt's status (``finished``, ``failed``, ``diverged``: filter on ``finished`` for panels
of complete runs; a run that did not finish also ends with W&B's ``failed`` state);
``config`` = the full trial config (with ``config_id``) plus ``params`` and ``status``;
history = per-step diagnostics (``train/*``, non-finite values left out: the loss, the
reward and advantage, and per estimator knob ``train/kl_start``, ``train/entropy``,
``train/constant_group_share``, ``train/clip_fraction``, ``train/ratio_min``,
``train/ratio_max``, ``train/kl_old``, ``train/epoch``: ``runners/hooks.py``) and
per-evaluation mIoU (``val/miou``, ``val/iou/<class>``), each with ``step``, the training
step, declared (``define_metric``) as their x-axis; ``val/miou``'s summary keeps its last
and its best value; summary = ``miou_start``, ``miou_final``, ``delta_miou``, ``miou_best``,
``status``, ``error``, timings.

Where runs go and in which mode: :mod:`rewardsweep.wandb_settings` (the launch's
``--wandb`` flag, then ``WANDB_MODE``/``WANDB_PROJECT``/``WANDB_ENTITY``/``WANDB_DIR``, then
the spec's ``wandb:`` block, then offline, project ``rewardsweep``, ``<study>/wandb/``).

Modes: ``offline`` by default (``wandb sync`` later), ``online`` only when asked for *and*
an API key is configured (``WANDB_API_KEY`` or ``wandb login``), else offline with a
warning; ``disabled`` logs nothing. The key is never passed, written or logged by this
module: W&B reads it itself when it syncs.

W&B trouble never fails a trial: errors become one warning and the trial goes on.

Finishing a run does not block on writing or syncing: ``run.finish()`` hands the last
records to the W&B service and returns in milliseconds; the service completes the
offline file (its last 32 KiB block) moments later, even if the worker exits or is killed.
On a local launch the driver starts one W&B service before Ray and every worker attaches
to it (``start_shared_service``), so no worker pays for starting its own.
"""

from __future__ import annotations

import math
import os
import sys
import uuid
from typing import Any

from rewardsweep.wandb_settings import (  # noqa: F401  (the settings rule lives there)
    DEFAULT_PROJECT,
    WandbOptions,
    api_key_configured,
    resolve_options,
)

STEP_KEY = "step"   # the training step, the x-axis of every trial chart (W&B's own _step equals it)


def run_labels(plans: list[Any]) -> dict[str, str]:
    """{config id: its label}: the report's label (``analysis.labels``), e.g.
    ``baseline.kind=greedy lr.start=0.01 [c6b0e147]``, ``control (mle) [967f4a47]``, so a
    label copied from the report finds the configuration's runs in W&B."""
    from rewardsweep.analysis.labels import plan_labels

    return plan_labels(plans)


def start_shared_service() -> bool:
    """Start one W&B service in the driver, before a local Ray starts its workers.

    W&B records the service's socket in ``WANDB_SERVICE``; the raylet and every worker it
    spawns inherit the variable and attach to this one service instead of each starting
    its own (a second or two of CPU per worker on a small machine). Only for a Ray started
    by this process: workers of an existing cluster (``--address``) do not inherit the
    driver's environment and start their own. Returns True if the service is shared.
    """
    if os.environ.get("WANDB_SERVICE"):
        return True
    try:
        import wandb
        from wandb.sdk import wandb_setup

        wandb.setup(settings=_settings(wandb))
        wandb_setup.singleton().ensure_service()
    except Exception as exc:  # noqa: BLE001 - an optimisation only
        _warn(f"could not start a shared W&B service ({type(exc).__name__}: {exc}); each worker starts its own")
        return False
    return bool(os.environ.get("WANDB_SERVICE"))


# --------------------------------------------------------------------------- worker side

_WARNED: set[str] = set()


def _warn(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"rewardsweep: warning: {message}", file=sys.stderr)


def _settings(wandb):
    # Everything that costs start-up time and that a trial does not need: system metrics
    # sampling, machine/git/code metadata, console capture (MMEngine's log lines), the
    # requirements dump. Measured: ~0.2 s per run start on a warm worker.
    return wandb.Settings(
        silent=True, console="off", save_code=False, disable_git=True, disable_code=True,
        disable_job_creation=True, x_disable_stats=True, x_disable_meta=True,
        x_disable_machine_info=True, x_save_requirements=False, init_timeout=120,
    )


class TrialLogger:
    """One W&B run for one trial attempt; every method is safe to call after a W&B error."""

    def __init__(self, options: WandbOptions | dict[str, Any], config: dict[str, Any],
                 params: dict[str, Any] | None = None, label: str | None = None) -> None:
        self.options = options if isinstance(options, WandbOptions) else WandbOptions(**options)
        self.config = config
        self.params = dict(params or {})
        self.label = label or f"{config['config_id']} {config['arm']}"
        self.run = None
        self._history_ok = True
        self._class_names = list((config.get("start") or {}).get("class_names") or [])

    # ---- lifecycle
    def start(self) -> "TrialLogger":
        if not self.options.enabled:
            return self
        try:
            self.run = self._init(self.options.mode)
        except Exception as exc:  # noqa: BLE001 - logging must never fail a trial
            if self.options.mode == "online":
                _warn(f"W&B online start failed ({type(exc).__name__}: {exc}); this trial logs offline")
                try:
                    self.run = self._init("offline")
                except Exception as exc2:  # noqa: BLE001
                    _warn(f"W&B disabled for this trial ({type(exc2).__name__}: {exc2})")
            else:
                _warn(f"W&B disabled for this trial ({type(exc).__name__}: {exc})")
        if self.run is not None:
            self._declare_metrics()
            start = self.config.get("start") or {}
            if isinstance(start.get("miou"), (int, float)):
                self._log({"val/miou": start["miou"]}, step=0)
        return self

    def _init(self, mode: str):
        import wandb

        cfg = self.config
        os.makedirs(self.options.dir, exist_ok=True)
        study = cfg.get("study") or (self.options.tags[0] if self.options.tags else "")
        return wandb.init(
            project=self.options.project, entity=self.options.entity, dir=self.options.dir, mode=mode,
            # a fresh id per attempt: a retried or resumed trial never appends to an old run
            id=f"{cfg['config_id']}-{cfg['arm']}-s{cfg['seed']}-{uuid.uuid4().hex[:6]}",
            name=f"{self.label} seed {cfg['seed']}", group=_group(study, self.label),
            job_type=str(cfg["arm"]), tags=[*self.options.tags, str(cfg["arm"]), str(cfg["config_id"])],
            config={**_jsonable(cfg), "params": _jsonable(self.params), "status": "running"},
            reinit="create_new", settings=_settings(wandb),
        )

    def _declare_metrics(self) -> None:
        """``step`` (the training step) is every chart's x-axis; ``val/miou`` keeps its last
        value (the final mIoU) and its best in the run's summary."""
        try:
            self.run.define_metric(STEP_KEY)
            for glob in ("train/*", "val/*"):
                self.run.define_metric(glob, step_metric=STEP_KEY)
            self.run.define_metric("val/miou", step_metric=STEP_KEY, summary="last,max")
        except Exception as exc:  # noqa: BLE001 - logging must never fail a trial
            _warn(f"W&B define_metric failed ({type(exc).__name__}: {exc})")

    def on_event(self, event: dict[str, Any]) -> None:
        if self.run is None:
            return
        kind = event.get("kind")
        step = event.get("step")
        if kind == "step":
            # a NaN loss (divergence) is in the record; in a chart it would only poison the means
            data = {f"train/{k}": v for k, v in event.items()
                    if k not in ("kind", "step") and isinstance(v, (int, float)) and not isinstance(v, bool)
                    and math.isfinite(v)}
            self._log(data, step=step)
        elif kind == "eval":
            data = {"val/miou": event.get("miou")}
            for i, iou in enumerate(event.get("per_class_iou") or []):
                name = self._class_names[i] if i < len(self._class_names) else str(i)
                if iou is not None:
                    data[f"val/iou/{name}"] = iou
            self._log(data, step=step)

    def finish(self, record: dict[str, Any] | None = None, status: str | None = None,
               error: str | None = None) -> None:
        if self.run is None:
            return
        run, self.run = self.run, None
        try:
            record = record or {}
            status = record.get("status") or status or "failed"
            error = record.get("error") if record else error
            summary = {"status": status, "error": error}
            for k in ("miou_start", "miou_final", "delta_miou", "miou_best"):
                summary[k] = record.get(k)
            if summary["miou_start"] is None:
                summary["miou_start"] = (self.config.get("start") or {}).get("miou")
            for k, v in (record.get("timings") or {}).items():
                summary[f"timings/{k}"] = v
            for k, v in (record.get("treatment") or {}).items():  # did the reward reach the model?
                summary[f"treatment/{k}"] = v
            run.summary.update(summary)
            run.config.update({"status": status}, allow_val_change=True)
            run.tags = tuple(dict.fromkeys([*run.tags, status]))
            run.finish(exit_code=0 if status == "finished" else 1)
        except Exception as exc:  # noqa: BLE001
            _warn(f"W&B finish failed ({type(exc).__name__}: {exc})")

    # ---- helpers
    def _log(self, data: dict[str, Any], step: int | None) -> None:
        if not self._history_ok:
            return
        try:
            self.run.log({**data, STEP_KEY: step} if step is not None else data, step=step)
        except Exception as exc:  # noqa: BLE001
            _warn(f"W&B log failed ({type(exc).__name__}: {exc}); further history of this trial is dropped")
            self._history_ok = False


def _group(study: str, label: str) -> str:
    """A configuration's W&B group: its trials' runs and its decision run share it."""
    return f"{study}: {label}" if study else label


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def log_decisions(options: WandbOptions, decisions: list[dict[str, Any]], labels: dict[str, str],
                  design: dict[str, Any], study: str) -> None:
    """A sequential study's decisions, one small run per configuration in its group.

    The trials' own runs have finished by the time a look decides, so the decision goes
    into a run of its own (job type ``decision``) next to them: grouping by configuration
    shows it with the configuration's runs, and its summary holds ``sequential/decision``,
    the seeds it was taken at and the last look's statistic and boundary. ``design``: the
    design as ``sequential.json`` stores it (``SequentialDesign.to_dict()``).
    """
    if not options.enabled:
        return
    import wandb

    os.makedirs(options.dir, exist_ok=True)
    for entry in decisions:
        label = labels.get(entry["config_id"]) or entry["config_id"]
        try:
            run = wandb.init(project=options.project, entity=options.entity, dir=options.dir, mode=options.mode,
                             id=f"{entry['config_id']}-decision-{uuid.uuid4().hex[:6]}", name=f"{label} decision",
                             group=_group(study, label),
                             job_type="decision", tags=[*options.tags, "decision", entry["config_id"]],
                             config={"config_id": entry["config_id"], "control_id": entry["control_id"],
                                     "design": _jsonable(design)},
                             reinit="create_new", settings=_settings(wandb))
            run.summary.update({f"sequential/{k}": _jsonable(v) for k, v in entry.items()})
            run.finish()
        except Exception as exc:  # noqa: BLE001 - logging never fails a study
            _warn(f"W&B decision run of {entry['config_id']} failed ({type(exc).__name__}: {exc})")
