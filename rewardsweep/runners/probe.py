"""Did the treatment reach the model? Probes of a reward trial's update, and the no-op arm.

At the same nominal learning rate a policy gradient can be thousands of times smaller
than cross-entropy or weight decay (docs/method.md, "Is my reward arm reward tuning?"),
and then a reward arm measures BatchNorm drift. Every ``every`` steps (and at the last
step) the probe measures, on that step's own batch and forward pass:

- the gradient norm of the reward term, of every other loss term (e.g. the aux head's
  cross-entropy) and of the weight-decay pull ``wd * theta``, and the reward term's share;
- the policy gradient's signal: the gradients of two halves of the batch are independent
  draws of the same expected gradient, so ``g_a . g_b`` estimates ``|E g|^2`` without
  noise bias, and their cosine is a signal-to-noise ratio;
- the reward's rise: the reward of the current policy minus that of the frozen start
  policy on the same batch with the same random numbers (common random numbers remove
  the batch-to-batch spread, ~0.017 per step on tiny-synthetic).

Probes never change training: the start policy's forward runs under a forked RNG and
``autograd.grad`` draws no random numbers, so a trial's losses are the same with or without
them (tested). The no-op arm (``arm: noop``) runs the same batches forward in train mode
without any update: its val mIoU is the zero line of BatchNorm drift and evaluation noise.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable

import torch

# Labellings per image for the reward gain (more than training's k: the gain is a small
# difference of jumpy per-image mIoUs, and sampling is cheap next to a forward pass).
RISE_SAMPLES = 16
# The gradient probe (one or two extra backward passes) runs at every GRADIENT_EVERY-th probe.
GRADIENT_EVERY = 5


def _total(terms: list[torch.Tensor]) -> float:
    """Sum of per-tensor sums, with one device sync (not one per parameter)."""
    return float(torch.stack(terms).sum()) if terms else 0.0


def _flat_norm(grads: list[torch.Tensor | None]) -> float:
    return math.sqrt(_total([g.double().pow(2).sum() for g in grads if g is not None]))


def _flat_dot(a: list[torch.Tensor | None], b: list[torch.Tensor | None]) -> float:
    return _total([(x.double() * y.double()).sum() for x, y in zip(a, b) if x is not None and y is not None])


def _loss_scale(optim_wrapper) -> float:
    """The loss scale of mixed precision (``precision: amp``; 1 without): the probe's own
    backward passes are scaled like the step's (small fp16 gradients would underflow), and
    every gradient it reports is unscaled."""
    scaler = getattr(optim_wrapper, "loss_scaler", None)
    return float(scaler.get_scale()) if scaler is not None and scaler.is_enabled() else 1.0


def _grads(loss: torch.Tensor, params: list[torch.nn.Parameter], scale: float = 1.0) -> list[torch.Tensor | None]:
    if not loss.requires_grad:
        return [None] * len(params)
    grads = torch.autograd.grad(loss * scale, params, retain_graph=True, allow_unused=True)
    return [None if g is None else g / scale for g in grads] if scale != 1.0 else list(grads)


def weight_decay_norm(optimizer: torch.optim.Optimizer) -> float:
    """``|wd * theta|`` over the optimizer's parameter groups (the L2 pull, gradient units)."""
    terms = [(float(group["weight_decay"]) * p.detach().double()).pow(2).sum()
             for group in optimizer.param_groups if group.get("weight_decay") for p in group["params"]]
    return math.sqrt(_total(terms))


def reward_heads(model) -> list:
    """The model's heads that carry a reward objective (decode head, maybe the aux head)."""
    heads = [getattr(model, "decode_head", None)]
    aux = getattr(model, "auxiliary_head", None)
    heads += list(aux) if isinstance(aux, torch.nn.ModuleList) else [aux]
    return [h for h in heads if h is not None and hasattr(h, "reward_objective")]


def _reward_terms(model) -> torch.Tensor:
    """The per-image reward loss ``[B]`` (with graph) of the last forward, all reward heads."""
    return sum(h.reward_objective.last_batch.per_image_loss * h.reward_loss_weight for h in reward_heads(model))


def _update_capturing_grads(optim_wrapper, loss: torch.Tensor, params: list) -> list[torch.Tensor | None]:
    """``optim_wrapper.update_params(loss)``, returning the gradients it stepped with.

    The step's own backward pass gives the total gradient for free; the probe then needs
    extra backward passes only for the parts it must tell apart.
    """
    captured: list[torch.Tensor | None] = []
    real_step = optim_wrapper.step

    def step(**kwargs):
        scale = _loss_scale(optim_wrapper)  # the step unscales them itself, after this
        captured.extend(None if p.grad is None else p.grad.detach() / scale for p in params)
        return real_step(**kwargs)

    optim_wrapper.step = step
    try:
        optim_wrapper.update_params(loss)
    finally:
        del optim_wrapper.step  # back to the class's method
    return captured


def reward_gain(model, start_model, samples: int, seed: int) -> tuple[float, float]:
    """Mean (and SE over images) of the current policy's reward minus the start policy's, on
    the batch both just saw, from ``samples`` labellings per image drawn with the same
    uniforms for both (common random numbers; the training streams are not touched)."""
    from rewardsweep.reward.miou import per_image_miou

    head, start_head = reward_heads(model)[0], reward_heads(start_model)[0]
    now, then = head.reward_objective.last_batch, start_head.reward_objective.last_batch
    objective = head.reward_objective
    # reward_weighted_ce's reward is the argmax labelling's mIoU (it samples nothing)
    greedy = objective.settings.estimator == "reward_weighted_ce"
    B, C, H, W = now.logits.shape
    # one set of uniforms for both policies: inverse-CDF sampling, y = #classes whose
    # cumulative probability is <= u (what estimators.sample_labellings does, vectorised)
    u = torch.rand((B, samples, 1, H, W), generator=torch.Generator().manual_seed(seed)).to(now.logits.device)
    rewards = []
    for logits in (now.logits, then.logits):
        if greedy:
            labellings = logits.max(1).indices.unsqueeze(1)
        else:
            cdf = torch.softmax(logits.float(), dim=1).cumsum(1).unsqueeze(1)  # [B, 1, C, H, W]
            labellings = (u >= cdf).sum(2).clamp_max_(C - 1)
        R, _ = per_image_miou(labellings, now.labels, objective.num_classes, objective.ignore_index, check=False)
        rewards.append(R)
    gain = (rewards[0] - rewards[1]).mean(-1)[now.valid.bool()].double()
    if gain.numel() == 0:
        return float("nan"), float("nan")
    se = float(gain.std() / math.sqrt(gain.numel())) if gain.numel() >= 2 else float("nan")
    return float(gain.mean()), se


def probe_step(model, start_model, data: dict, optim_wrapper, gradients: bool,
               seed: int) -> tuple[dict, dict[str, float]]:
    """One training step with the probe: (log_vars as ``train_step`` returns them, probe values).

    Always: the reward gain over the start policy (one extra forward, no grad). With
    ``gradients``: the gradient norms and the half-batch signal (one or two extra backward
    passes: one when the reward is the only loss term, whose second half is then the rest
    of the step's own gradient).
    """
    heads = reward_heads(model) + reward_heads(start_model)
    for head in heads:
        head.reward_objective.keep_logits = True
    try:
        with optim_wrapper.optim_context(model):
            data = model.data_preprocessor(data, True)
            with torch.random.fork_rng(devices=[data["inputs"].device] if data["inputs"].is_cuda else []):
                with torch.no_grad():
                    start_model._run_forward(data, mode="loss")
            losses = model._run_forward(data, mode="loss")
    finally:
        for head in heads:
            head.reward_objective.keep_logits = False
    parsed, log_vars = model.parse_losses(losses)
    values: dict[str, float] = {}
    values["reward_gain"], values["reward_gain_se"] = reward_gain(model, start_model, RISE_SAMPLES, seed)
    if not gradients:
        optim_wrapper.update_params(parsed)
        return log_vars, values

    per_image = _reward_terms(model)
    params = [p for p in model.parameters() if p.requires_grad]
    B = per_image.shape[0]
    half = max(1, B // 2)
    # Loss terms other than the reward heads' (MMEngine sums every key that says "loss").
    other_terms = any("loss" in key and not key.endswith("loss_reward") for key in losses)
    # every extra gradient before the step: its backward frees the graph and it moves the weights
    scale = _loss_scale(optim_wrapper)
    g_a = _grads(per_image[:half].mean(), params, scale) if B >= 2 else None
    g_b = _grads(per_image[half:].mean(), params, scale) if B >= 2 and other_terms else None
    g_one = _grads(per_image.mean(), params, scale) if B < 2 and other_terms else None
    g_total = _update_capturing_grads(optim_wrapper, parsed, params)

    def combine(fa, a, fb, b):  # fa * a + fb * b; None is a zero gradient (a parameter the term misses)
        return [None if x is None and y is None else
                (fb * y if x is None else fa * x if y is None else fa * x + fb * y) for x, y in zip(a, b)]

    if B >= 2:
        if g_b is None:  # reward is the only term: total = (half * g_a + (B - half) * g_b) / B
            g_b = combine(B / (B - half), g_total, -half / (B - half), g_a)
        g_reward = combine(half / B, g_a, (B - half) / B, g_b)
        norm_a, norm_b = _flat_norm(g_a), _flat_norm(g_b)
        dot = _flat_dot(g_a, g_b)
        values["signal_dot"] = dot
        values["halves_cos"] = dot / (norm_a * norm_b) if norm_a * norm_b > 0 else 0.0
    else:
        g_reward = g_total if not other_terms else g_one
    values["reward_grad_norm"] = _flat_norm(g_reward)
    values["other_grad_norm"] = _flat_norm(combine(1.0, g_total, -1.0, g_reward)) if other_terms else 0.0
    values["wd_norm"] = weight_decay_norm(optim_wrapper.optimizer)
    parts = values["reward_grad_norm"] + values["other_grad_norm"] + values["wd_norm"]
    values["reward_share"] = values["reward_grad_norm"] / parts if parts > 0 else 0.0
    return log_vars, values


def install_probe(runner, every: int, steps: int, on_probe: Callable[[int, dict[str, float]], None]) -> None:
    """Wrap ``runner.model.train_step``: the reward gain every ``every`` steps, the gradients
    at every :data:`GRADIENT_EVERY`-th probe, both at the last step.

    The frozen start policy is a copy of the model as loaded (before the first step).
    """
    model = runner.model
    start_model = copy.deepcopy(model)
    for p in start_model.parameters():
        p.requires_grad_(False)
    original = model.train_step

    def train_step(data, optim_wrapper):
        step = runner.iter + 1
        if every and (step % every == 0 or step == steps):
            gradients = step % (every * GRADIENT_EVERY) == 0 or step == steps
            log_vars, values = probe_step(model, start_model, data, optim_wrapper, gradients, seed=step)
            on_probe(step, values)
            return log_vars
        return original(data, optim_wrapper)

    model.train_step = train_step


def install_noop(runner) -> None:
    """The no-op arm's step: forward in train mode (BatchNorm statistics move), no update."""
    model = runner.model

    def train_step(data, optim_wrapper):
        with torch.no_grad():
            data = model.data_preprocessor(data, True)
            losses = model._run_forward(data, mode="loss")
            _, log_vars = model.parse_losses(losses)
        return log_vars

    model.train_step = train_step


def probe_hook(every: int, steps: int, sink: Callable[[int, dict[str, float]], None], noop: bool = False):
    """An MMEngine hook that installs the probe (reward arm) or the no-op step (built lazily)."""
    from mmengine.hooks import Hook

    class TreatmentProbeHook(Hook):
        priority = "VERY_HIGH"

        def before_train(self, runner) -> None:
            if noop:
                install_noop(runner)
            elif every:
                install_probe(runner, every, steps, sink)

    return TreatmentProbeHook()


def summarize_probes(probes: list[dict[str, Any]], steps: int) -> dict[str, float | int]:
    """A trial's treatment summary (the record's ``treatment``) from its probe rows.

    - ``reward_share``: mean share of the reward term in the update's gradient norms;
    - ``reward_grad_norm`` / ``other_grad_norm`` / ``wd_norm``: means;
    - ``signal_norm``: ``sqrt(max(0, mean(g_a . g_b)))``, the expected policy gradient's norm;
    - ``halves_cos``: mean cosine of the two halves' gradients (signal-to-noise);
    - ``reward_rise`` +- ``reward_rise_se``: mean reward gain over the start policy at the
      probes of the second half of the trial (the last probe included), with its SE.
    """
    if not probes:
        return {"probes": 0}

    def mean(key: str) -> float:
        vals = [p[key] for p in probes if isinstance(p.get(key), (int, float)) and math.isfinite(p[key])]
        return sum(vals) / len(vals) if vals else float("nan")

    out: dict[str, float | int] = {"probes": len(probes)}
    for key in ("reward_share", "reward_grad_norm", "other_grad_norm", "wd_norm", "halves_cos"):
        out[key] = mean(key)
    dot = mean("signal_dot")
    out["signal_norm"] = math.sqrt(max(0.0, dot)) if math.isfinite(dot) else float("nan")
    late = [p for p in probes if p["step"] > steps / 2 and isinstance(p.get("reward_gain"), (int, float))]
    if late:
        out["reward_rise"] = sum(p["reward_gain"] for p in late) / len(late)
        ses = [p.get("reward_gain_se", float("nan")) for p in late]
        out["reward_rise_se"] = math.sqrt(sum(s * s for s in ses)) / len(late)
    return out
