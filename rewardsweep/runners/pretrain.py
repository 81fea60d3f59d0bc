"""The MLE start checkpoint: pretrain once with cross-entropy, cache, evaluate once.

Every trial of a study starts from the same checkpoint and shares its val mIoU
(``miou_start``), so both are computed here once per study (:func:`ensure_start`), not
once per trial. ``checkpoint: auto`` trains the preset through MMEngine's Runner and
caches the result by a content hash of (model config, data, seed, iterations, lr), so a
second call, or a second study, reuses it.

The cache is safe to share and to move: one process pretrains an entry while the others
wait on its lock and then reuse it; the key never contains the cache's own path; an
entry is used only if its checkpoint still has the hash it was saved with (a damaged one
is pretrained again), and it appears whole (written, synced, renamed into place).
A trial checks the same hash before it trains (:func:`verify_start`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from rewardsweep.checkpoint_file import checkpoint_problem, file_hash
from rewardsweep.errors import ConfigError, StartCheckpointError
from rewardsweep.runners.presets import ModelSetting, resolve_setting
from rewardsweep.storage import (EVAL_TMP_PREFIX, PRETRAIN_TMP_PREFIX, default_cache_dir, file_lock, fsync_tree,
                                 make_temp_dir, remove_stale_temp_dirs)

__all__ = ["file_hash", "pretrain_key", "verify_start", "ensure_start", "evaluate_checkpoint",
           "check_checkpoint_matches", "pretrain_threads", "available_cores", "pretrain_command"]


def pretrain_key(setting: ModelSetting, seed: int, iters: int, lr: float, batch_size: int) -> str:
    """The cache key of a pretrained start: what it was trained on and how, never where the
    cache is (the embedded dataset lives in the cache: its paths count from the cache's root),
    so a copied or moved cache is still found."""
    cache = str(default_cache_dir().resolve())
    payload = json.dumps(
        {"model": _portable(setting.model, cache), "train": _portable(setting.train_dataset, cache),
         "dataset": setting.dataset_id, "seed": seed, "iters": iters, "lr": lr, "batch_size": batch_size,
         # v2: keys free of the cache's location. Pretraining keeps MMEngine's random stream
         # (no per-sample seeding, runner_config's seeded_augmentation=False), so v2 entries hold
         # exactly what this code trains.
         "v": 2},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _portable(node: Any, cache: str) -> Any:
    """``node`` with every path inside the cache written relative to it (``<cache>/...``)."""
    if isinstance(node, dict):
        return {k: _portable(v, cache) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_portable(v, cache) for v in node]
    if isinstance(node, str) and (node == cache or node.startswith(cache + os.sep)):
        return "<cache>" + node[len(cache):]
    return node


def verify_start(start: dict[str, Any]) -> None:
    """Raise :class:`StartCheckpointError` (one line) unless the start's checkpoint file is
    readable and has the hash the study knows it by: a trial never trains from a file that
    was damaged or replaced after the driver checked it (it would diverge, or fail, and be
    recorded against a start it did not use)."""
    expected, path = start.get("checkpoint_hash"), start.get("checkpoint")
    if not expected or not path:
        return
    try:
        actual = file_hash(path)
    except OSError as exc:
        raise StartCheckpointError(f"start checkpoint {path}: cannot be read ({exc.strerror or exc}); "
                                   f"launch again: the driver checks it and pretrains it again or refuses") from None
    if actual != expected:
        raise StartCheckpointError(f"start checkpoint {path}: its hash is {actual}, not {expected} as when the "
                                   f"study resolved it (damaged or replaced since); launch again: the driver "
                                   f"checks it and pretrains it again or refuses")


def check_checkpoint_matches(model, path: str | os.PathLike) -> None:
    """Fail with one line if the checkpoint's weights do not fit ``model``.

    MMEngine loads non-strictly and only warns, which would silently tune a randomly
    initialised model. Keys the model lacks (e.g. an auxiliary head switched off) are fine.
    """
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ConfigError(f"checkpoint: '{path}' is not a readable PyTorch checkpoint ({type(exc).__name__})")
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ConfigError(f"checkpoint: '{path}' holds no state_dict")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    mismatched = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if mismatched:
        k = mismatched[0]
        raise ConfigError(
            f"checkpoint: '{path}' does not match the model: {len(mismatched)} tensor(s) differ in shape, "
            f"e.g. {k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}")
    if missing:
        raise ConfigError(
            f"checkpoint: '{path}' does not match the model: {len(missing)} of {len(own)} tensors missing, "
            f"e.g. {missing[0]}")


def _strip_to_weights(src: Path, dst: Path) -> None:
    """Keep only the weights (no optimizer state): smaller and loads faster."""
    import torch

    state = torch.load(str(src), map_location="cpu", weights_only=False)
    # No MMEngine meta (time stamps, run names): the same weights give the same bytes, so
    # the checkpoint hash names the weights and records from equal starts pool.
    torch.save({"state_dict": state["state_dict"]}, str(dst))


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def pretrain_threads() -> int:
    """Threads for MLE pretraining on CPU: the available cores (CPU affinity), 1 to 4.

    A fixed function of the machine, never of its load, so the cached checkpoint is the
    same whoever else runs (the thread count changes float reduction order). On 2 cores
    that is 2, as in earlier releases, so their cached start checkpoints (and the numbers
    measured from them) stay valid. What made a busy machine 100x slower was spinning
    OpenMP threads, not their number: with ``OMP_WAIT_POLICY=PASSIVE`` two threads ran
    1.3x slower next to a CPU-bound process (benchmarks/bench_load.py).
    """
    return max(1, min(4, available_cores()))


def _train(setting: ModelSetting, seed: int, iters: int, lr: float, batch_size: int, work_dir: str,
           show_progress: bool) -> tuple[Path, dict[str, Any]]:
    from rewardsweep.runners.hooks import ConsoleProgress, make_event_hook
    from rewardsweep.runners.runner_config import build_runner, runner_config

    import torch

    # CPU results depend on the intra-op thread count (reduction order), and the cached
    # checkpoint must not depend on OMP_NUM_THREADS: fix it per machine, then restore.
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(pretrain_threads())
    progress = ConsoleProgress(iters, f"pretrain {setting.name}") if show_progress else None
    hook = make_event_hook(None, setting.class_names,
                           progress=_Estimate(progress, iters, setting.name) if progress else None)
    cfg = runner_config(
        setting, work_dir=work_dir, iters=iters, batch_size=batch_size,
        lr={"start": lr, "end": lr * 1e-2, "schedule": "poly", "power": 0.9},
        optimizer={"type": "SGD", "momentum": 0.9, "weight_decay": 0.0005},
        eval_every=iters, seed=seed, save_checkpoint=True,
        # MLE pretraining always loads in this process (workers=0), so its batches never depend
        # on a worker count; keeping MMEngine's random stream keeps every start made before
        # per-sample seeding (0.3 and earlier, and the plateau start of docs/method.md) byte for
        # byte reproducible, which a study folder's pinned start (start.json) relies on.
        seeded_augmentation=False,
    )
    runner = build_runner(cfg, hooks=[hook])
    started = time.perf_counter()
    try:
        if progress:
            with progress:
                runner.train()
        else:
            runner.train()
    finally:
        torch.set_num_threads(previous_threads)
    seconds = time.perf_counter() - started
    first_losses = [d["loss"] for d in hook.diagnostics[:20]]
    last_losses = [d["loss"] for d in hook.diagnostics[-20:]]
    stats = {
        "train_seconds": seconds,
        "loss_first": sum(first_losses) / len(first_losses),
        "loss_last": sum(last_losses) / len(last_losses),
        "iters": iters,
    }
    return Path(work_dir) / f"iter_{iters}.pth", {**hook.evals[-1], **stats}


class _Estimate:
    """Passes progress on, and once, after the first few iterations, prints how long the
    whole pretraining will take at the speed measured on this machine now."""

    def __init__(self, progress, iters: int, name: str, measure: int = 10) -> None:
        self.progress, self.iters, self.name = progress, iters, name
        self.measure = max(1, min(measure, iters - 1))
        self._first: float | None = None

    def __call__(self, step: int, event: dict) -> None:
        now = time.perf_counter()
        if step == 1:
            self._first = now  # the first iteration pays for warm-up: not measured
        elif self._first is not None and step == 1 + self.measure:
            per_iter = (now - self._first) / self.measure
            from rich import get_console  # the console the progress bar draws on

            get_console().print(
                f"pretraining {self.name}: {self.iters} iterations at {per_iter * 1000:.0f} ms/iter (measured "
                f"over iterations 2-{step}, {pretrain_threads()} thread(s)): ~{per_iter * self.iters:.0f} s in "
                f"all, ~{per_iter * (self.iters - step):.0f} s to go", highlight=False, soft_wrap=True)
        self.progress(step, event)


def evaluate_checkpoint(setting: ModelSetting, checkpoint: str | os.PathLike) -> dict[str, Any]:
    """Dataset-level val mIoU and per-class IoU of ``checkpoint``."""
    from rewardsweep.runners.hooks import make_event_hook
    from rewardsweep.runners.runner_config import build_runner, runner_config

    hook = make_event_hook(None, setting.class_names)
    with _temp_dir(EVAL_TMP_PREFIX) as work_dir:
        cfg = runner_config(setting, work_dir=work_dir, iters=1, batch_size=1, lr={"start": 1e-3},
                            eval_every=1, load_from=str(checkpoint))
        cfg.pop("train_dataloader")
        cfg.pop("train_cfg")
        cfg.pop("optim_wrapper")
        cfg.pop("param_scheduler")
        runner = build_runner(cfg, hooks=[hook])
        check_checkpoint_matches(runner.model, checkpoint)
        runner.val()
    return hook.evals[-1]


def ensure_start(model: str = "tiny-synthetic", checkpoint: str = "auto", data_root: str | None = None,
                 seed: int = 0, cache_dir: str | os.PathLike | None = None, iters: int | None = None,
                 force: bool = False, show_progress: bool = False, lr: float | None = None,
                 batch_size: int | None = None) -> dict[str, Any]:
    """The study's start: checkpoint path and hash, dataset id, val mIoU and per-class IoU.

    ``iters``, ``lr``, ``batch_size``: the preset's pretraining defaults unless given (a
    study folder gives the ones its ``start.json`` recorded: ``sweep.bookkeeping.pinned_recipe``)."""
    setting = resolve_setting(model, data_root)
    if checkpoint != "auto":
        from rewardsweep.download import cached_download, is_url

        path = cached_download(checkpoint) if is_url(checkpoint) else Path(checkpoint)
        if not path.is_file():
            raise ConfigError(f"checkpoint: '{checkpoint}' does not exist (expected 'auto' or a checkpoint file)")
        problem = checkpoint_problem(path)
        if problem:
            raise ConfigError(f"checkpoint: '{checkpoint}' {problem}")
        result = evaluate_checkpoint(setting, path)
        return _start_dict(setting, path, result, pretrained=None)

    iters = iters or setting.pretrain.iters
    lr, batch_size = lr or setting.pretrain.lr, batch_size or setting.pretrain.batch_size
    key = pretrain_key(setting, seed, iters, lr, batch_size)
    folder = Path(cache_dir or default_cache_dir() / "checkpoints") / f"{setting.name}-{key}"
    if not force:
        cached, _ = _cached_entry(folder)
        if cached is not None:
            return {**cached, "cached": True}
    folder.parent.mkdir(parents=True, exist_ok=True)
    # one process pretrains this entry; the others wait here, then reuse what it made
    with file_lock(folder.parent / f"{folder.name}.lock", waiting=_waiting_line(setting.name)):
        cached, problem = _cached_entry(folder)
        if cached is not None and not force:
            return {**cached, "cached": True}
        if problem:
            _say(f"warning: cached start checkpoint {folder}: {problem}; pretraining it again")
        remove_stale_temp_dirs(PRETRAIN_TMP_PREFIX, folder.parent)  # left by a killed pretraining
        with _temp_dir(PRETRAIN_TMP_PREFIX, folder.parent) as work_dir:
            trained, result = _train(setting, seed, iters, lr, batch_size, work_dir, show_progress)
            staging = Path(work_dir) / "final"
            staging.mkdir()
            _strip_to_weights(trained, staging / "start.pth")
            start = _start_dict(setting, folder / "start.pth", result,
                                pretrained={k: result[k] for k in ("train_seconds", "loss_first", "loss_last", "iters")}
                                | {"seed": seed, "lr": lr, "batch_size": batch_size},
                                checkpoint_hash=file_hash(staging / "start.pth"))
            (staging / "start.json").write_text(json.dumps(start, indent=1))
            fsync_tree(staging)       # on disk before the rename makes it the cache entry
            if folder.exists():       # a damaged entry: out of the way first, then removed
                aside = Path(work_dir) / "replaced"
                os.replace(folder, aside)
            os.replace(staging, folder)  # the cache entry appears whole or not at all
            fsync_tree(folder.parent, files=False)
    return {**start, "cached": False}


def _cached_entry(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the cached start, None) if ``folder`` holds a whole entry whose checkpoint has its
    recorded hash; else (None, what is wrong, or None when there is no entry)."""
    ckpt, info = folder / "start.pth", folder / "start.json"
    if not ckpt.is_file() and not info.is_file():
        return None, None
    try:
        start = json.loads(info.read_text())
        expected = start["checkpoint_hash"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"its start.json is unreadable ({type(exc).__name__})"
    try:
        actual = file_hash(ckpt)
    except OSError as exc:
        return None, f"its start.pth cannot be read ({exc.strerror or exc})"
    if actual != expected:
        return None, f"its start.pth has hash {actual}, not {expected} as saved (damaged)"
    # the entry is where it is now: a moved cache keeps working
    return {**start, "checkpoint": str(ckpt.resolve())}, None


def _waiting_line(name: str):
    def say(holder: str) -> None:
        _say(f"waiting for another process pretraining the {name} start checkpoint ({holder}); "
             f"it will be reused")
    return say


def _say(line: str) -> None:
    from rich import get_console  # the console the launch and the progress bars draw on

    get_console().print(line, highlight=False, soft_wrap=True, markup=False)


@contextmanager
def _temp_dir(prefix: str, parent: str | os.PathLike | None = None) -> Iterator[str]:
    """A temporary folder named after its owner (host, pid): removed on every exit path
    here, and by a later run if this process is killed (``storage.remove_stale_temp_dirs``)."""
    path = make_temp_dir(prefix, parent)
    try:
        yield str(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _start_dict(setting: ModelSetting, checkpoint: Path, result: dict, pretrained: dict | None,
                checkpoint_hash: str | None = None) -> dict[str, Any]:
    return {
        "model": setting.name,
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_hash": checkpoint_hash or file_hash(checkpoint),
        "dataset": setting.dataset_id,
        "miou": result["miou"],
        "per_class_iou": result["per_class_iou"],
        "class_names": list(setting.class_names),
        "pretrained": pretrained,
    }


def pretrain_command(args) -> int:
    """``rewardsweep pretrain``: train or reuse the start checkpoint and print its val mIoU."""
    from rich.console import Console
    from rich.table import Table

    from rewardsweep.storage import check_writable

    started = time.perf_counter()
    check_writable(args.cache_dir or default_cache_dir() / "checkpoints", "checkpoint cache",
                   fix="--cache-dir or REWARDSWEEP_CACHE moves it")
    start = ensure_start(args.model, "auto", args.data_root, args.seed, args.cache_dir, args.iters,
                         force=args.force, show_progress=True)
    console = Console(width=100)
    source = "reused from cache" if start["cached"] else f"trained in {start['pretrained']['train_seconds']:.1f} s"
    console.print(f"start checkpoint ({source}): {start['checkpoint']}")
    table = Table(title=f"val IoU of the start checkpoint ({start['model']})")
    table.add_column("class")
    table.add_column("IoU", justify="right")
    for name, iou in zip(start["class_names"], start["per_class_iou"]):
        table.add_row(name, "-" if iou is None else f"{iou:.4f}")
    table.add_row("[bold]mIoU", f"[bold]{start['miou']:.4f}")
    console.print(table)
    console.print(f"done in {time.perf_counter() - started:.1f} s")
    return 0
