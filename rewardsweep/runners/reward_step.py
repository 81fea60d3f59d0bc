"""The reward arm's step when a knob needs more than the policy's forward pass.

Two knobs of the reward settings (``reward/settings.py``) need the runner's help:

- the **KL to the start model** (``kl_coef``): every training forward pass of the policy
  first runs the frozen start model on the same preprocessed images and hands each reward
  head the start model's logits (``head.reward_reference``). The start model is the one
  copy the treatment probe already holds (``runners/probe.py``: taken after the start
  weights load, before the first step), so a trial keeps one frozen model, not two. It
  runs without gradient in the policy's own mode (train-mode BatchNorm with batch
  statistics; dropout on, with the same masks as the policy's decode head, drawn from a
  fork of the random streams, which training's streams never see), so on the first step
  the reference *is* the policy and the KL is exactly 0. Eval-mode BatchNorm would make it
  a penalty on the gap between batch and running statistics instead.
- the **clipped surrogate with several epochs per batch** (``epochs_per_batch`` E >= 2):
  a trial's ``steps`` counts optimizer steps, so the schedule, evaluations, probes and
  diagnostics keep their step numbers. Step ``t`` with ``(t - 1) mod E == 0`` is epoch 1 of
  a new batch (the objective draws the labellings and keeps them with the sampling
  policy's log-probabilities); the next E - 1 steps replay that batch (``reward_replay``:
  the heads call ``RewardObjective.replay``), and the batch the loader gave them is
  unused (loading it is the price of keeping MMEngine's loop as it is).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from rewardsweep.reward.head import reward_heads

__all__ = ["attach_reference", "freeze_start", "install_reward_step", "replaying"]


def freeze_start(start_model) -> None:
    """Make ``start_model`` (a copy of the trial's model) the frozen start policy: no
    gradients, and reward heads whose objective has no KL, entropy or epochs (the probe
    runs it only for its logits; a KL of the start model to itself would need a reference)."""
    from rewardsweep.reward.objective import RewardObjective

    for p in start_model.parameters():
        p.requires_grad_(False)
    for head in reward_heads(start_model):
        head.reward_objective = RewardObjective(head.reward_settings.plain(), head.num_classes, head.ignore_index)
        head.reward_reference, head.reward_replay = None, False


@contextlib.contextmanager
def replaying(heads) -> Iterator[None]:
    """While inside, the reward heads ``heads`` replay their kept batch (epochs 2..E)."""
    for head in heads:
        head.reward_replay = True
    try:
        yield
    finally:
        for head in heads:
            head.reward_replay = False


def install_reward_step(runner, start_model) -> None:
    """Wire the knobs of the model's reward heads into ``runner`` (nothing when none is on).

    Call after the probe wrapped ``train_step`` (the epochs wrap whatever step there is)."""
    model = runner.model
    heads = reward_heads(model)
    if not heads:
        return
    settings = heads[0].reward_settings  # the aux head's, when it is a reward head, are the same
    if settings.needs_reference:
        attach_reference(model, start_model)
    if settings.epochs > 1:
        _install_epochs(runner, heads, settings.epochs)


def attach_reference(model, start_model):
    """Before each training forward of ``model`` (``mode="loss"``, train mode, not a replay),
    the frozen ``start_model``'s raw logits of the same images for every reward head.
    Returns the hook's handle."""
    heads, start_heads = reward_heads(model), reward_heads(start_model)
    start_model.train()

    def hook(module, args, kwargs):
        if kwargs.get("mode", "tensor") != "loss" or not module.training or heads[0].reward_replay:
            return None
        inputs = kwargs["inputs"] if "inputs" in kwargs else args[0]
        devices = [inputs.device] if inputs.is_cuda else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            feats = start_model.extract_feat(inputs)
            for head, start_head in zip(heads, start_heads):
                head.reward_reference = start_head.forward(feats)
        return None

    return model.register_forward_pre_hook(hook, with_kwargs=True)


def _install_epochs(runner, heads, epochs: int) -> None:
    """Steps 2..E of each batch replay the batch of its first step, with its dropout masks."""
    model = runner.model
    step_fn = model.train_step
    kept: dict[str, object] = {}

    def train_step(data, optim_wrapper):
        if runner.iter % epochs == 0:  # epoch 1 of a new batch
            kept["data"], kept["rng"] = data, _rng_state()
            return step_fn(data, optim_wrapper)
        # the random streams as they were before epoch 1's forward pass, in a fork: the
        # decode head's dropout draws the same masks (its first random draw in either pass),
        # so a ratio measures the update, not two dropout masks (which alone give per-pixel
        # log-ratios of -5 .. +3, docs/method.md); training's own streams go on untouched
        devices = [torch.device("cuda", i) for i in range(torch.cuda.device_count())] if kept["rng"][1] else []
        with replaying(heads), torch.random.fork_rng(devices=devices):
            torch.set_rng_state(kept["rng"][0])
            if kept["rng"][1]:
                torch.cuda.set_rng_state_all(kept["rng"][1])
            return step_fn(kept["data"], optim_wrapper)

    model.train_step = train_step


def _rng_state() -> tuple[torch.Tensor, list | None]:
    """torch's CPU random state, and CUDA's where CUDA is in use."""
    return torch.get_rng_state(), (torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None)
