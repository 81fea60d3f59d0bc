"""One trial: fine-tune from the start checkpoint, evaluate, write the trial record.

The trial config (docs/architecture.md) says everything a trial does; the record
(:mod:`rewardsweep.study.records`) is everything it reports. Nothing here knows about Ray or
W&B: they attach through ``on_event``. A trial that raises or diverges still writes its
record (status ``failed``/``diverged``) before re-raising, so no seed is silently lost;
the exception carries that record (:class:`~rewardsweep.errors.TrialError`).
"""

from __future__ import annotations

import copy
import errno
import math
import os
import platform
import shutil
import time
import traceback
from typing import Any

from rewardsweep import storage
from rewardsweep.errors import StartCheckpointError, TrialDiverged, TrialFailed, UserError
from rewardsweep.runners.hooks import EventCallback, make_event_hook, start_weights_hook
from rewardsweep.runners.presets import ModelSetting, resolve_setting
from rewardsweep.config.trial import TrialConfig, validate_trial_config, with_defaults
from rewardsweep.reward.settings import REWARD_KEYS
from rewardsweep.study import arms, layout, records
from rewardsweep.study.timestamps import utc_now


def reward_model_config(setting: ModelSetting, reward: dict[str, Any]) -> dict[str, Any]:
    """The preset's model with its decode head (and maybe aux head) as reward heads.

    ``reward``: plain data, as an MMSeg config holds it (the head validates it again,
    ``RewardSettings.from_config``): the reward keys and ``batch_size``; a trial passes
    :meth:`TrialConfig.reward_part`. Without ``aux_head`` the aux head keeps its cross-entropy."""
    from rewardsweep.reward.head import register_reward_heads, wrap_head_config

    register_reward_heads()
    model = copy.deepcopy(setting.model)
    reward = {key: copy.deepcopy(value) for key, value in reward.items() if key in (*REWARD_KEYS, "batch_size")}
    aux = reward.get("aux_head", "mle")
    model["decode_head"] = wrap_head_config(model["decode_head"], reward)
    if aux == "off" or not model.get("auxiliary_head"):
        model["auxiliary_head"] = None
    elif aux == "reward":
        aux_cfg = model["auxiliary_head"]
        weight = float(aux_cfg.get("loss_decode", {}).get("loss_weight", 0.4))
        model["auxiliary_head"] = wrap_head_config(aux_cfg, {**reward, "loss_weight": weight})
    return model


def _versions() -> dict[str, str]:
    import mmcv
    import mmengine
    import mmseg
    import torch

    import rewardsweep

    return {"python": platform.python_version(), "torch": torch.__version__, "mmcv": mmcv.__version__,
            "mmengine": mmengine.__version__, "mmseg": mmseg.__version__, "rewardsweep": rewardsweep.__version__}


def _params(config: dict[str, Any]) -> dict[str, Any]:
    params = config.get("params")
    if params:
        return dict(params)
    flat: dict[str, Any] = {}
    for key in ("estimator", "samples", "normalize_advantage", "aux_head", "steps", "class_weights"):
        flat[key] = config.get(key)
    for group in ("baseline", "lr"):
        for key, value in (config.get(group) or {}).items():
            flat[f"{group}.{key}"] = value
    return flat


def run_trial(config: dict[str, Any], on_event: EventCallback | None = None,
              write: bool = True) -> dict[str, Any]:
    """Run one trial and return its record (also written under ``config['study_dir']``).

    ``config`` is plain data (it crosses Ray as JSON, and the record keeps it as given, with
    the defaults filled in). Until the schema has checked it (that needs the preset's
    number of classes, and a config that fails is still recorded with its start), only the
    record, the start and the thread count read it; everything that trains reads the
    validated :class:`TrialConfig` (``cfg``), and what the arm trains comes from its kind
    (``study.arms``: ``ArmKind.trains``), not its name.

    Raises :class:`TrialFailed` or :class:`TrialDiverged` (``.record``: the record written)
    or, for a bad config, the :class:`UserError` as it is."""
    trial = _Trial(with_defaults(config), on_event)
    interrupted = False
    try:
        trial.start()   # the model's setting, the start checkpoint (verified), the record's start
        trial.build()   # the validated config, reward head, hooks, MMEngine's runner on the start
        trial.train()   # train, evaluate: the record's results
    except TrialDiverged as exc:
        trial.record.update(status="diverged", error=str(exc))
        exc.record = trial.record
        raise
    except (KeyboardInterrupt, SystemExit, StartCheckpointError):
        interrupted = True  # not a result: the sweep reruns the trial, so write no record
        raise
    except UserError as exc:  # a bad config: recorded, and reported to the user as it is
        trial.record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    except Exception as exc:
        trial.record.update(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0],
                            traceback=traceback.format_exc(limit=8))
        raise TrialFailed(trial.record["error"], record=trial.record) from exc
    finally:
        trial.finish(write=write and not interrupted)
    return trial.record


class _Trial:
    """One trial's state through its phases (``run_trial`` says the order and what an
    exception means); ``finish`` runs whatever happened."""

    def __init__(self, config: dict[str, Any], on_event: EventCallback | None) -> None:
        import torch

        from rewardsweep.runners.loaders import loader_workers
        from rewardsweep.runners.pretrain import available_cores

        self.wall_start = time.perf_counter()
        self.config, self.on_event = config, on_event
        self.record = records.trial_record(config, _params(config), host=platform.node())
        self.trains = arms.trains(self.record["arm"])  # an unknown arm fails the schema in build()
        self.work_dir = str(storage.make_temp_dir(storage.TRIAL_TMP_PREFIX))
        self.cfg: TrialConfig | None = None
        self.hook = self.runner = self.setting = self.start_info = self.run_cfg = None
        self.probes: dict[int, dict[str, float]] = {}  # step -> treatment probe values (reward arm)
        self.final: dict[str, float] = {}  # every arm: weight move, held-out reward gain (runners/probe.py)
        self.val_counts = None
        self.keep = None  # (model, rebuild config) when the trial's final weights are kept
        self.setup_seconds = 0.0
        # the spec's cpu count, but never more threads than cores we may run on; on a GPU the
        # loader workers get all of them but the one that drives the GPU (runners/loaders.py)
        self.on_gpu = torch.cuda.is_available()
        cpus = max(1, min(int(config.get("threads") or 1), available_cores()))
        self.workers = loader_workers(cpus, self.on_gpu, config.get("workers"))
        torch.set_num_threads(max(1, cpus - self.workers))
        if self.on_gpu and torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats()  # a reused Ray worker ran other trials before

    def start(self) -> None:
        from rewardsweep.runners.pretrain import ensure_start, verify_start

        config, record = self.config, self.record
        self.setting = resolve_setting(config["model"], config.get("data_root"))
        start = config.get("start") or ensure_start(config["model"], config.get("checkpoint", "auto"),
                                                    config.get("data_root"))
        verify_start(start)  # the file the study named, or no training and no record (StartCheckpointError)
        self.start_info = start
        record["start"] = {"checkpoint": start["checkpoint"], "checkpoint_hash": start["checkpoint_hash"],
                           "dataset": start["dataset"]}
        record["class_names"] = list(self.setting.class_names)
        record["miou_start"] = start["miou"]
        record["per_class_iou_start"] = start["per_class_iou"]
        record["curve"] = [{"step": 0, "miou": start["miou"]}]

    def build(self) -> None:
        from rewardsweep.runners.pretrain import check_checkpoint_matches
        from rewardsweep.runners.probe import probe_hook
        from rewardsweep.runners.runner_config import build_runner, runner_config

        setting, checkpoint = self.setting, self.start_info["checkpoint"]
        # the trial-config schema, before anything trains (one-line ConfigError); from here
        # on the trial reads the validated config
        cfg = self.cfg = validate_trial_config(self.config, source=f"trial {self.config.get('config_id', '?')}",
                                               num_classes=setting.num_classes)
        model = reward_model_config(setting, cfg.reward_part()) if self.trains == "reward" else None
        self.hook = make_event_hook(self.on_event, setting.class_names, debug=cfg.debug, probes=self.probes)
        every = cfg.diagnostics_every if self.trains == "reward" else 0
        probe = probe_hook(self.trains, every, cfg.steps, self.probes.__setitem__, on_final=self.final.update,
                           num_classes=setting.num_classes, ignore_index=setting.ignore_index)
        self.run_cfg = runner_config(
            setting, work_dir=self.work_dir, iters=cfg.steps, batch_size=cfg.batch_size,
            lr=cfg.lr.model_dump(), optimizer=cfg.optimizer.model_dump(), eval_every=cfg.eval_every,
            seed=cfg.seed, load_from=None, model=model, workers=self.workers, precision=cfg.precision,
            cudnn_benchmark=cfg.cudnn_benchmark,
        )
        setup_start = time.perf_counter()
        # order matters: the start weights load first, then the probe copies the start policy
        self.runner = build_runner(self.run_cfg, hooks=[start_weights_hook(checkpoint), self.hook, probe])
        check_checkpoint_matches(self.runner.model, checkpoint)
        self.setup_seconds = time.perf_counter() - setup_start

    def train(self) -> None:
        from rewardsweep.runners.metric import last_per_image_counts

        self.runner.train()
        self.val_counts = last_per_image_counts(self.runner)
        evals, start_miou = self.hook.evals, self.start_info["miou"]
        last = evals[-1]
        self.record.update(status="finished", miou_final=last["miou"], delta_miou=last["miou"] - start_miou,
                           miou_best=max(e["miou"] for e in evals), per_class_iou_final=last["per_class_iou"])
        if not math.isfinite(last["miou"]):
            self.record["status"] = "diverged"
        if self.cfg.checkpoints == "final":
            from rewardsweep.runners.final_checkpoint import rebuild_config

            self.keep = (self.runner.model,
                         rebuild_config(self.setting, self.run_cfg["model"], self.run_cfg["val_dataloader"]))

    def finish(self, write: bool) -> None:
        """The record's curve, diagnostics, treatment, timings and versions, however the
        trial ended; then its files (``write``: not for an interrupted trial)."""
        import torch

        from rewardsweep.runners.loaders import release_loaders
        from rewardsweep.runners.probe import summarize_probes

        record, hook = self.record, self.hook
        diagnostics = hook.diagnostics if hook is not None else []
        if hook is not None:
            record["curve"] = record["curve"][:1] + hook.curve
        record["diagnostics_summary"] = records.summarize_diagnostics(diagnostics)
        if self.trains == "reward":
            rows = [{"step": step, **values} for step, values in sorted(self.probes.items())]
            steps = self.cfg.steps if self.cfg is not None else 0
            record["treatment"] = {**summarize_probes(rows, steps), **self.final}
        elif self.final:
            record["treatment"] = dict(self.final)
        if self.runner is not None:
            release_loaders(self.runner)
        record["timings"] = {"setup_s": self.setup_seconds,
                             "train_s": hook.train_seconds if hook is not None else 0.0,
                             "eval_s": hook.eval_seconds if hook is not None else 0.0,
                             "data_wait_s": hook.data_seconds if hook is not None else 0.0,
                             "total_s": time.perf_counter() - self.wall_start, "workers": self.workers}
        if self.on_gpu and torch.cuda.is_initialized():
            record["timings"]["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        record["finished_at"] = utc_now()
        try:
            record["versions"] = _versions()
        except Exception:  # pragma: no cover - versions are informative only
            record["versions"] = {}
        study_dir = self.config.get("study_dir")
        try:
            if write and study_dir:
                _write(study_dir, record, diagnostics, self.val_counts, self.keep, self.config.get("debug"))
        finally:
            shutil.rmtree(self.work_dir, ignore_errors=True)  # even when the write fails


def _write(study_dir: str, record: dict[str, Any], diagnostics: list, val_counts, keep, debug: dict | None) -> None:
    """The trial's files under ``study_dir``: diagnostics, val counts, kept weights, and
    the record last (it says "done"). Runs for every trial that ends, valid config or not."""
    config_id, arm, seed = record["config_id"], record["arm"], record["seed"]
    sidecar = layout.diagnostics_path(study_dir, config_id, arm, seed)
    path = layout.record_path(study_dir, config_id, arm, seed)
    try:
        _debug_write_failure(debug, path)
        records.write_diagnostics(sidecar, diagnostics)
        record["diagnostics_file"] = str(sidecar.relative_to(study_dir))
        if val_counts is not None and record["status"] == "finished":
            counts = layout.val_counts_path(study_dir, config_id, arm, seed)
            records.write_val_counts(counts, record["class_names"], *val_counts, record["miou_final"])
            record["val_counts_file"] = str(counts.relative_to(study_dir))
        if keep is not None and record["status"] == "finished":  # before the record: it says "done"
            from rewardsweep.runners.final_checkpoint import save_final

            record["final_checkpoint"] = save_final(study_dir, record, *keep)
        records.write_record(path, record)
    except OSError as exc:  # name the record: a failed write() alone names no file
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def _debug_write_failure(debug: dict | None, path) -> None:
    """Test hook ``debug: {"write_error": "ENOSPC"}``: the record write fails as it would
    on a full disk (``EACCES``: a read-only one)."""
    code = (debug or {}).get("write_error")
    if code:
        number = getattr(errno, code)
        raise OSError(number, os.strerror(number), str(path))
