"""W&B: one run per trial, logged from inside the trial's own process.

Why from inside the trial: a driver-side logging callback (Ray's ``WandbLoggerCallback``)
starts a logging process per trial and ships every result through the driver, which costs
several seconds per trial. Here the trial's ``on_event`` callback writes straight to the
W&B service of its Ray worker; Ray reuses workers between trials, so ``wandb`` is imported
and its service started once per worker, and a run starts in a fraction of a second.

Layout of a run: name = the parameters the study varies plus the seed (``baseline.kind=greedy
lr.start=0.01 seed 3``, :func:`run_labels`); ``group`` = study and those parameters (W&B
shows mean and spread across seeds); ``job_type`` = arm; tags = study name, arm, config id
and, once it ends, the attempt's status (``finished``, ``failed``, ``diverged``: filter on
``finished`` for panels of complete runs; a run that did not finish also ends with W&B's
``failed`` state); ``config`` = the full trial config (with ``config_id``) plus ``params``
and ``status``; history = per-step diagnostics (``train/*``, non-finite values left out)
and per-evaluation mIoU (``val/miou``, ``val/iou/<class>``); summary = ``miou_start``,
``miou_final``, ``delta_miou``, ``miou_best``, ``status``, ``error``, timings.

Settings, each from the first that gives it: the launch's ``--wandb`` flag (mode only),
the environment as W&B defines it (``WANDB_MODE``, ``WANDB_PROJECT``, ``WANDB_ENTITY``,
``WANDB_DIR``), the spec's ``wandb:`` block, the defaults (offline, project
``rewardsweep``, runs under ``<study>/wandb/``). The environment beats the spec because it
is what a W&B user sets for one session (``WANDB_MODE=disabled``) while the spec is the
study's lasting record; the flag beats both because it is typed for this one launch.

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
import netrc
import os
import sys
import uuid
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

from rewardsweep.config.study import WANDB_MODES

DEFAULT_PROJECT = "rewardsweep"


@dataclass(frozen=True)
class WandbOptions:
    """Resolved on the driver, shipped to every trial (plain data: no key in here)."""

    mode: str = "offline"            # offline | online | disabled
    project: str = DEFAULT_PROJECT
    entity: str | None = None
    dir: str = "."                   # runs go to <dir>/wandb/
    tags: tuple[str, ...] = ()
    note: str | None = None          # why the mode differs from what was asked
    source: str = "default"          # where the mode came from: --wandb, WANDB_MODE, spec, default

    @property
    def enabled(self) -> bool:
        return self.mode != "disabled"

    @property
    def runs_dir(self) -> str:
        """Where W&B puts the offline runs (``offline-run-*``)."""
        return os.path.join(self.dir, "wandb")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def api_key_configured() -> bool:
    """True if W&B would find a key: ``WANDB_API_KEY`` or a netrc entry for the W&B host.

    Only answers yes/no; the key itself is never read into our process state.
    """
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC") or None).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


_MODE_ALIASES = {"dryrun": "offline", "run": "online"}  # W&B's older names


def resolve_options(spec_wandb: Any, cli_mode: str | None, study_dir: str | os.PathLike,
                    study_name: str) -> WandbOptions:
    """The W&B settings of a launch: CLI flag > environment > spec > default (module
    docstring); ``online`` without an API key falls back to offline with a note."""
    from rewardsweep.errors import UserError

    settings = _as_dict(spec_wandb)
    env_mode = os.environ.get("WANDB_MODE") or None
    if env_mode is not None:
        env_mode = _MODE_ALIASES.get(env_mode.lower(), env_mode.lower())
        if env_mode not in WANDB_MODES:
            raise UserError(f"WANDB_MODE: {os.environ['WANDB_MODE']!r} is not one of {', '.join(WANDB_MODES)}")
    for source, mode in (("--wandb", cli_mode), ("WANDB_MODE", env_mode), ("spec", settings.get("mode")),
                         ("default", "offline")):
        if mode:
            break
    if mode not in WANDB_MODES:
        raise UserError(f"wandb.mode: {mode!r} is not one of {', '.join(WANDB_MODES)}")
    note = None
    if mode == "online" and not api_key_configured():
        mode = "offline"
        note = ("W&B online was asked for but no API key is configured (WANDB_API_KEY or `wandb login`); "
                "logging offline, upload later with `wandb sync`")
    tags = tuple(dict.fromkeys([study_name, *[str(t) for t in settings.get("tags") or ()]]))
    env_dir = os.environ.get("WANDB_DIR")
    return WandbOptions(mode=mode,
                        project=os.environ.get("WANDB_PROJECT") or settings.get("project") or DEFAULT_PROJECT,
                        entity=os.environ.get("WANDB_ENTITY") or settings.get("entity"),
                        dir=os.path.abspath(os.path.expanduser(env_dir)) if env_dir else str(study_dir),
                        tags=tags, note=note, source=source)


def run_labels(plans: list[Any]) -> dict[str, str]:
    """{config id: what a W&B legend shows for it}: the parameters that vary between the
    study's configurations of the same arm, e.g. ``baseline.kind=greedy lr.start=0.01``;
    the control arm's labels start with ``control``, the no-op reference's with ``no-op reference``."""
    labels: dict[str, str] = {}
    for arm in sorted({p.arm for p in plans}):
        mine = {p.config_id: p.params for p in plans if p.arm == arm}
        keys = [k for k in dict.fromkeys(k for params in mine.values() for k in params)
                if len({_fmt(params.get(k)) for params in mine.values()}) > 1]
        for cid, params in mine.items():
            parts = [f"{k}={_fmt(params.get(k))}" for k in keys]
            if arm != "reward":
                parts.insert(0, "no-op reference" if arm == "noop" else "control")
            labels[cid] = " ".join(parts) or arm
    return labels


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "null" if value is None else str(value)


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return dict(vars(value))


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
            self.run.log(data, step=step)
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
                  design: Any, study: str) -> None:
    """A sequential study's decisions, one small run per configuration in its group.

    The trials' own runs have finished by the time a look decides, so the decision goes
    into a run of its own (job type ``decision``) next to them: grouping by configuration
    shows it with the configuration's runs, and its summary holds ``sequential/decision``,
    the seeds it was taken at and the last look's statistic and boundary.
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
                                     "design": _jsonable(design.to_dict())},
                             reinit="create_new", settings=_settings(wandb))
            run.summary.update({f"sequential/{k}": _jsonable(v) for k, v in entry.items()})
            run.finish()
        except Exception as exc:  # noqa: BLE001 - logging never fails a study
            _warn(f"W&B decision run of {entry['config_id']} failed ({type(exc).__name__}: {exc})")
