"""MMEngine hooks that turn a training run into events, progress and early failure.

Runners never import Ray or W&B: a trial hands an ``on_event`` callback to
:class:`EventHook`, and whoever runs the trial (the sweep, a test, a notebook) decides
where events go.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

from rewardsweep.errors import TrialDiverged

EventCallback = Callable[[dict[str, Any]], None]
# The decode head's statistics a step event carries under their own name (the objective's
# stats, reward/objective.py): the reward and advantage, then one or more per estimator knob:
# share of images whose k rewards are equal (k >= 2), exact KL to the start model and entropy
# (nats per pixel, when their knob is on), and the clipped surrogate's clip fraction, ratio
# range, KL to the sampling policy and epoch (1..E).
DIAGNOSTIC_KEYS = ("reward_mean", "reward_std", "advantage_mean", "advantage_std", "constant_group_share",
                   "kl_start", "entropy", "clip_fraction", "ratio_min", "ratio_max", "kl_old", "epoch")


def _float(value: Any) -> float:
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return float("nan")


class RandomState:
    """Every random stream training draws from (python, numpy, torch CPU and CUDA).

    Evaluation creates a DataLoader iterator, which draws a seed from torch's global
    generator: without this, changing ``eval_every`` would change the training that follows.
    """

    def __init__(self) -> None:
        import random

        import numpy as np
        import torch

        self._python = random.getstate()
        self._numpy = np.random.get_state()
        self._torch = torch.get_rng_state()
        # only where CUDA is in use: asking would start a CUDA context in a CPU trial on a GPU node
        self._cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def restore(self) -> None:
        import random

        import numpy as np
        import torch

        random.setstate(self._python)
        np.random.set_state(self._numpy)
        torch.set_rng_state(self._torch)
        if self._cuda is not None:
            torch.cuda.set_rng_state_all(self._cuda)


def make_event_hook(on_event: EventCallback | None, class_names: tuple[str, ...], debug: dict | None = None,
                    progress: Callable[[int, dict], None] | None = None,
                    probes: dict[int, dict[str, float]] | None = None):
    """An MMEngine hook instance (built lazily so this module imports without MMEngine).

    ``probes`` (step -> values), filled by the treatment probe during a step, is merged
    into that step's event as ``probe.<name>``.
    """
    from mmengine.hooks import Hook

    from rewardsweep.runners.metric import split_metrics

    debug = dict(debug or {})
    probes = probes if probes is not None else {}

    class EventHook(Hook):
        priority = "LOW"  # after the optimizer step and the timer

        def __init__(self) -> None:
            self.diagnostics: list[dict[str, float]] = []
            self.curve: list[dict[str, float]] = []
            self.evals: list[dict[str, Any]] = []
            self.train_seconds = 0.0
            self.eval_seconds = 0.0
            self.data_seconds = 0.0  # training waiting for the loader (included in train_seconds)
            self._iter_end = 0.0
            self._train_start = 0.0
            self._val_start = 0.0
            self._step_lr = float("nan")
            self._random_state: RandomState | None = None

        def before_train(self, runner) -> None:
            self._train_start = self._iter_end = time.perf_counter()

        def after_train(self, runner) -> None:
            # Training time is the whole loop (data loading included) minus evaluations.
            self.train_seconds = time.perf_counter() - self._train_start - self.eval_seconds

        def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
            # since the last step (or evaluation) ended, the loop only waited for this batch
            self.data_seconds += time.perf_counter() - self._iter_end
            step = runner.iter + 1
            if debug.get("raise_at_step") == step:
                raise RuntimeError(f"debug: trial forced to fail at step {step}")
            # The lr this step uses: the scheduler steps in after_train_iter, before we log.
            self._step_lr = float(next(iter(runner.optim_wrapper.get_lr().values()))[0])
            if debug.get("kill_at_step") == step:  # the process dies as if killed (OOM killer, node lost)
                import os
                import signal

                os.kill(os.getpid(), signal.SIGKILL)

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            step = runner.iter + 1
            outputs = dict(outputs or {})
            loss = _float(outputs.get("loss", float("nan")))
            if debug.get("nan_at_step") == step:
                loss = float("nan")
            grad_norm = _float(runner.message_hub.get_scalar("train/grad_norm").current()) \
                if "train/grad_norm" in runner.message_hub.log_scalars else float("nan")
            event = {"kind": "step", "step": step, "loss": loss, "grad_norm": grad_norm, "lr": self._step_lr}
            for key, value in outputs.items():
                # The decode head's reward statistics are the trial's (reward_mean, ...);
                # everything else keeps MMSeg's name (decode.loss_ce, aux.reward_mean, ...).
                head, _, name = key.partition(".")
                if head == "decode" and name in DIAGNOSTIC_KEYS:
                    event[name] = _float(value)
                elif head in ("decode", "aux"):
                    event[key] = _float(value)
            event.update({f"probe.{k}": v for k, v in probes.get(step, {}).items()})
            self.diagnostics.append(event)
            self.train_seconds = time.perf_counter() - self._train_start - self.eval_seconds
            if on_event:
                on_event(dict(event))
            if progress:
                progress(step, event)
            if not math.isfinite(loss):
                raise TrialDiverged(f"loss became {loss} at step {step}")
            self._iter_end = time.perf_counter()

        def before_val(self, runner) -> None:
            self._val_start = time.perf_counter()
            self._random_state = RandomState()

        def after_val(self, runner) -> None:
            self._random_state.restore()

        def after_val_epoch(self, runner, metrics=None) -> None:
            self.eval_seconds += time.perf_counter() - self._val_start
            self._iter_end = time.perf_counter()
            miou, per_class = split_metrics(dict(metrics or {}), class_names)
            step = runner.iter if runner.train_loop is not None and runner.iter else 0
            event = {"kind": "eval", "step": int(step), "miou": miou, "per_class_iou": per_class}
            self.curve.append({"step": int(step), "miou": miou})
            self.evals.append(event)
            if on_event:
                on_event(dict(event))

    return EventHook()


def start_weights_hook(checkpoint: str):
    """Load the start checkpoint's weights before training, silently.

    MMEngine's ``load_from`` prints "The model and loaded state dict do not match exactly"
    (with ``print``, past every log level) whenever the trial drops a head the checkpoint
    has, e.g. ``aux_head: off``: noise, since ``pretrain.check_checkpoint_matches`` already
    refused a checkpoint that lacks any tensor the model needs.
    """
    from mmengine.hooks import Hook
    from mmengine.runner import load_checkpoint

    class StartWeightsHook(Hook):
        priority = "VERY_HIGH"

        def before_train(self, runner) -> None:
            load_checkpoint(runner.model, checkpoint, map_location="cpu", strict=False, logger="silent")

    return StartWeightsHook()


class ConsoleProgress:
    """A rich progress bar over iterations (used by pretraining)."""

    def __init__(self, total: int, description: str) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), TimeRemainingColumn(),
            transient=False,
        )
        self._task = self._progress.add_task(description, total=total, loss=float("nan"))

    def __enter__(self) -> "ConsoleProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def __call__(self, step: int, event: dict) -> None:
        self._progress.update(self._task, completed=step, loss=event.get("loss", float("nan")))
