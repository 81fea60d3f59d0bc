"""Did the treatment reach the model? Probes of a reward trial's update, and the no-op arm.

At the same nominal learning rate a policy gradient can be thousands of times smaller
than cross-entropy or weight decay (docs/method.md, "Is my reward arm reward tuning?"),
and then a reward arm measures BatchNorm drift. Every ``every`` steps (and at the last
step) the probe measures, on that step's own batch and forward pass:

- the reward's rise: the reward of the current policy minus that of the frozen start
  policy on the same batch with the same random numbers (common random numbers remove
  the batch-to-batch spread, ~0.017 per step on tiny-synthetic);
- at every :data:`GRADIENT_EVERY`-th probe, what each force does to the weights *after the
  optimizer*: the step the reward term's gradient causes (learning rate, momentum, Adam's
  scaling; the policy term only), the step of every other loss term (a KL or entropy term
  of the reward heads included) and of the weight-decay pull, relative to
  the weights' norm (:func:`optimizer_steps`); and the half-batch dot product ``g_a . g_b``,
  an unbiased estimate of ``|E g|^2`` (never clipped).

At the end of every trial, whatever its arm (:func:`final_measures`): how far the weights
moved from the start, and the sampled policy's reward gain over the start policy on the
held-out val images (same uniforms for every arm and seed: arms are compared paired by
seed, the no-op's gain is BatchNorm drift).

Probes never change training: the start policy's forward runs under a forked RNG and
``autograd.grad`` draws no random numbers, so a trial's losses are the same with or without
them (tested); the final measures run after the last evaluation, from their own generator.
The no-op arm (``arm: noop``, or any arm kind that trains "none") runs the same batches
forward in train mode without any update: its val mIoU is the zero line of BatchNorm drift
and evaluation noise.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable

import torch

from rewardsweep.reward.head import reward_heads
from rewardsweep.runners.reward_step import freeze_start, install_reward_step

# Labellings per image for the reward gain (more than training's k: the gain is a small
# difference of jumpy per-image mIoUs, and sampling is cheap next to a forward pass).
RISE_SAMPLES = 16
# The gradient probe (one or two extra backward passes) runs at every GRADIENT_EVERY-th probe.
GRADIENT_EVERY = 5
# The uniforms of the held-out gain: one fixed stream, the same for every arm and seed.
HELDOUT_SEED = 0


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


def optimizer_steps(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter],
                    terms: dict[str, list[torch.Tensor | None]]) -> dict[str, float]:
    """The norm of the parameter step each gradient term causes through ``optimizer``, in
    its current state, and the weight-decay pull's (key ``"weight_decay"``).

    A gradient's *eventual* step, summed over the steps momentum carries it: SGD moves by
    ``lr (1 - dampening) / (1 - momentum)`` times it (``1 + (1 - dampening) momentum /
    (1 - momentum)`` with Nesterov), its L2 pull ``wd * theta`` the same way; Adam and AdamW
    divide it by ``sqrt(v_hat) + eps`` (their current second moment, shared by every term:
    the division is what makes a tiny gradient move Adam's weights as far as a large one)
    and multiply by ``lr``; AdamW's decoupled decay moves by ``lr * wd * theta``. Linear in
    each term, so the terms' steps add up to the step the optimizer takes from their sum.
    Other optimizers: the plain ``lr * g`` (named so in docs/method.md).
    """
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    sums = {name: [] for name in (*terms, "weight_decay")}
    for i, p in enumerate(params):
        group = group_of.get(id(p))
        if group is None:
            continue
        lr, wd = float(group["lr"]), float(group.get("weight_decay") or 0.0)
        kind = type(optimizer).__name__
        scale: torch.Tensor | float
        if kind in ("Adam", "AdamW"):
            state = optimizer.state.get(p, {})
            beta2, eps = group["betas"][1], group["eps"]
            v, t = state.get("exp_avg_sq"), float(state.get("step", 0))
            if v is None or t == 0:
                scale = lr  # before Adam's first step it has no scale yet
            else:
                scale = lr / ((v.detach().double() / (1 - beta2 ** t)).sqrt() + eps)
            decoupled = kind == "AdamW" or group.get("decoupled_weight_decay", False)
            pull = (lr * wd * p.detach().double()) if decoupled else (scale * wd * p.detach().double())
        else:
            momentum = float(group.get("momentum") or 0.0)
            dampening = float(group.get("dampening") or 0.0)
            if momentum and group.get("nesterov"):
                scale = lr * (1 + (1 - dampening) * momentum / (1 - momentum))
            elif momentum:
                scale = lr * (1 - dampening) / (1 - momentum)
            else:
                scale = lr
            pull = scale * wd * p.detach().double()
        if wd:
            sums["weight_decay"].append(pull.pow(2).sum())
        for name, grads in terms.items():
            g = grads[i]
            if g is not None:
                sums[name].append((scale * g.detach().double()).pow(2).sum())
    return {name: math.sqrt(_total(vals)) for name, vals in sums.items()}


def _reward_terms(model) -> torch.Tensor:
    """The per-image reward signal ``[B]`` (with graph) of the last forward, all reward heads:
    the policy term only. A KL or entropy term is a force of its own, counted with the
    other loss terms (so ``step_share`` stays the reward's share of the step)."""
    return sum(h.reward_objective.last_batch.terms["policy"] * h.reward_loss_weight for h in reward_heads(model))


def _regularized(model) -> bool:
    """The last forward's reward loss has terms besides the policy term (KL, entropy)."""
    return any(len(h.reward_objective.last_batch.terms) > 1 for h in reward_heads(model))


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


def crn_gain(logits_now: torch.Tensor, logits_then: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor,
             num_classes: int, ignore_index: int, samples: int, generator: torch.Generator,
             greedy: bool = False) -> torch.Tensor:
    """Per valid image, the mean reward of ``samples`` labellings of the ``now`` policy minus
    the ``then`` policy's, both drawn with the same uniforms (common random numbers:
    inverse-CDF sampling, y = #classes whose cumulative probability is <= u, as
    ``estimators.sample_labellings``). ``greedy``: the argmax labelling's reward instead."""
    from rewardsweep.reward.miou import per_image_miou

    B, C, H, W = logits_now.shape
    u = torch.rand((B, samples, 1, H, W), generator=generator).to(logits_now.device)
    rewards = []
    for logits in (logits_now, logits_then):
        if greedy:
            labellings = logits.max(1).indices.unsqueeze(1)
        else:
            cdf = torch.softmax(logits.float(), dim=1).cumsum(1).unsqueeze(1)  # [B, 1, C, H, W]
            labellings = (u >= cdf).sum(2).clamp_max_(C - 1)
        R, _ = per_image_miou(labellings, labels, num_classes, ignore_index, check=False)
        rewards.append(R)
    return (rewards[0] - rewards[1]).mean(-1)[valid.bool()].double()


def _mean_se(gain: torch.Tensor) -> tuple[float, float]:
    if gain.numel() == 0:
        return float("nan"), float("nan")
    se = float(gain.std() / math.sqrt(gain.numel())) if gain.numel() >= 2 else float("nan")
    return float(gain.mean()), se


def reward_gain(model, start_model, samples: int, seed: int) -> tuple[float, float]:
    """Mean (and SE over images) of the current policy's reward minus the start policy's, on
    the batch both just saw, from ``samples`` labellings per image drawn with the same
    uniforms for both (common random numbers; the training streams are not touched)."""
    head, start_head = reward_heads(model)[0], reward_heads(start_model)[0]
    now, then = head.reward_objective.last_batch, start_head.reward_objective.last_batch
    objective = head.reward_objective
    # reward_weighted_ce's reward is the argmax labelling's mIoU (it samples nothing)
    greedy = objective.settings.estimator == "reward_weighted_ce"
    gain = crn_gain(now.logits, then.logits, now.labels, now.valid, objective.num_classes,
                    objective.ignore_index, samples, torch.Generator().manual_seed(seed), greedy)
    return _mean_se(gain)


def probe_step(model, start_model, data: dict, optim_wrapper, gradients: bool,
               seed: int) -> tuple[dict, dict[str, float]]:
    """One training step with the probe: (log_vars as ``train_step`` returns them, probe values).

    Always: the reward gain over the start policy (one extra forward, no grad). With
    ``gradients``: the gradient norms, each force's step after the optimizer and the
    half-batch signal (one or two extra backward passes: one when the reward is the only
    loss term, whose second half is then the rest of the step's own gradient).
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
    # Loss terms other than the reward's policy term (MMEngine sums every key that says "loss";
    # the reward heads' KL and entropy terms are inside their loss_reward).
    other_terms = any("loss" in key and not key.endswith("loss_reward") for key in losses) or _regularized(model)
    # every extra gradient before the step: its backward frees the graph and it moves the weights
    scale = _loss_scale(optim_wrapper)
    g_a = _grads(per_image[:half].mean(), params, scale) if B >= 2 else None
    g_b = _grads(per_image[half:].mean(), params, scale) if B >= 2 and other_terms else None
    g_one = _grads(per_image.mean(), params, scale) if B < 2 and other_terms else None
    before = [p.detach().clone() for p in params]
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
    g_other = combine(1.0, g_total, -1.0, g_reward) if other_terms else [None] * len(params)
    values["reward_grad_norm"] = _flat_norm(g_reward)
    values["other_grad_norm"] = _flat_norm(g_other) if other_terms else 0.0
    values["wd_norm"] = weight_decay_norm(optim_wrapper.optimizer)
    # what each force does to the weights after the optimizer, relative to their norm
    weight_norm = _flat_norm(before)
    steps = optimizer_steps(optim_wrapper.optimizer, params, {"reward": g_reward, "other": g_other})
    scale = 1.0 / weight_norm if weight_norm > 0 else float("nan")
    values["reward_step"] = steps["reward"] * scale
    values["other_step"] = steps["other"] * scale
    values["wd_step"] = steps["weight_decay"] * scale
    parts = steps["reward"] + steps["other"] + steps["weight_decay"]
    values["step_share"] = steps["reward"] / parts if parts > 0 else 0.0
    values["update_step"] = _flat_norm([p.detach() - b for p, b in zip(params, before)]) * scale
    return log_vars, values


def install_probe(runner, start_model, every: int, steps: int,
                  on_probe: Callable[[int, dict[str, float]], None]) -> None:
    """Wrap ``runner.model.train_step``: the reward gain every ``every`` steps, the gradients
    at every :data:`GRADIENT_EVERY`-th probe, both at the last step. ``start_model`` is the
    frozen start policy (a copy of the model as loaded, before the first step)."""
    model = runner.model
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


def _val_logits(model, data: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode logits at the label size, and the labels ``[B, H, W]``, of one val batch."""
    from mmseg.models.utils import resize

    data = model.data_preprocessor(data, False)
    logits = model._run_forward(data, mode="tensor")
    labels = torch.stack([s.gt_sem_seg.data.squeeze(0) for s in data["data_samples"]]).long()
    align = getattr(model.decode_head, "align_corners", False)
    return resize(logits, size=labels.shape[-2:], mode="bilinear", align_corners=align), labels


def weight_move(model, start_model) -> float:
    """``|theta_end - theta_start| / |theta_start|`` over the trained parameters."""
    start = dict(start_model.named_parameters())
    pairs = [(p.detach(), start[name].detach()) for name, p in model.named_parameters()
             if p.requires_grad and name in start]
    norm = _flat_norm([b for _, b in pairs])
    return _flat_norm([a - b for a, b in pairs]) / norm if norm > 0 else float("nan")


@torch.no_grad()
def final_measures(runner, start_model, num_classes: int, ignore_index: int,
                   samples: int = RISE_SAMPLES) -> dict[str, float]:
    """After training, every arm: how far the weights moved, and the held-out reward gain.

    ``heldout_gain`` (+- ``heldout_gain_se`` over ``heldout_images``): the sampled policy's
    per-image mIoU on the val images minus the start policy's, both in eval mode (as val mIoU
    is measured), ``samples`` labellings per image from one fixed stream of uniforms
    (:data:`HELDOUT_SEED`), the same for every arm and seed.
    """
    model = runner.model
    values = {"weight_move": weight_move(model, start_model)}
    loader = getattr(runner, "val_dataloader", None)
    if loader is None or not hasattr(model, "decode_head"):
        return values
    modes = (model.training, start_model.training)
    model.eval()
    start_model.eval()
    generator = torch.Generator().manual_seed(HELDOUT_SEED)
    gains = []
    try:
        for data in loader:
            now, labels = _val_logits(model, data)
            then, _ = _val_logits(start_model, data)
            valid = ((labels != ignore_index).flatten(1).any(1))
            gains.append(crn_gain(now, then, labels.to(now.device), valid, num_classes, ignore_index,
                                  samples, generator))
    finally:
        model.train(modes[0])
        start_model.train(modes[1])
    gain = torch.cat(gains) if gains else torch.zeros(0, dtype=torch.float64)
    values["heldout_gain"], values["heldout_gain_se"] = _mean_se(gain)
    values["heldout_images"] = int(gain.numel())
    return values


def probe_hook(trains: str, every: int, steps: int, sink: Callable[[int, dict[str, float]], None],
               on_final: Callable[[dict[str, float]], None] | None = None, num_classes: int = 0,
               ignore_index: int = 255):
    """An MMEngine hook: the probe and reward step (an arm that ``trains`` "reward") or the
    no-op step ("none"; ``study.arms.ArmKind.trains``), built lazily, and for every arm the
    final measures (:func:`final_measures`) handed to ``on_final``. "cross_entropy" trains
    as MMSeg does."""
    from mmengine.hooks import Hook

    class TreatmentProbeHook(Hook):
        priority = "VERY_HIGH"

        def before_train(self, runner) -> None:
            self.start_model = copy.deepcopy(runner.model)  # the start policy, frozen
            freeze_start(self.start_model)
            # the probe's train-mode forwards move its BatchNorm statistics; the held-out
            # gain compares with the start as it was
            self.start_state = copy.deepcopy(self.start_model.state_dict())
            if trains == "none":
                install_noop(runner)
            elif trains == "reward":
                if every:
                    install_probe(runner, self.start_model, every, steps, sink)
                # the KL's reference and the clipped surrogate's epochs (the one start model)
                install_reward_step(runner, self.start_model)

        def after_train(self, runner) -> None:
            if on_final is not None:
                from rewardsweep.runners.hooks import RandomState

                state = RandomState()  # the val loader's iterator draws from the global RNG
                self.start_model.load_state_dict(self.start_state)
                try:
                    on_final(final_measures(runner, self.start_model, num_classes, ignore_index))
                finally:
                    state.restore()

    return TreatmentProbeHook()


def _finite_values(probes: list[dict[str, Any]], key: str) -> list[float]:
    return [p[key] for p in probes if isinstance(p.get(key), (int, float)) and math.isfinite(p[key])]


def summarize_probes(probes: list[dict[str, Any]], steps: int) -> dict[str, float | int]:
    """A trial's treatment summary (the record's ``treatment``) from its probe rows.

    - ``reward_step`` / ``other_step`` / ``wd_step``: mean step each force causes after the
      optimizer, relative to the weights' norm (per step); ``step_share``: the reward's
      part of their sum; ``update_step``: the actual step, all forces;
    - ``reward_grad_norm`` / ``other_grad_norm`` / ``wd_norm``: mean gradient norms;
    - ``signal_dot``: mean half-batch ``g_a . g_b``, an unbiased estimate of ``|E g|^2``
      (never clipped); ``halves_cos``: its mean cosine (signal-to-noise);
    - ``reward_rise`` +- ``reward_rise_se``: mean reward gain over the start policy at the
      probes of the second half of the trial (the last probe included), with its SE.
    """
    if not probes:
        return {"probes": 0}

    def mean(key: str) -> float:
        vals = _finite_values(probes, key)
        return sum(vals) / len(vals) if vals else float("nan")

    out: dict[str, float | int] = {"probes": len(probes)}
    for key in ("reward_step", "other_step", "wd_step", "step_share", "update_step",
                "reward_grad_norm", "other_grad_norm", "wd_norm", "signal_dot", "halves_cos"):
        out[key] = mean(key)
    late = [p for p in probes if p["step"] > steps / 2 and isinstance(p.get("reward_gain"), (int, float))]
    if late:
        out["reward_rise"] = sum(p["reward_gain"] for p in late) / len(late)
        ses = [p.get("reward_gain_se", float("nan")) for p in late]
        out["reward_rise_se"] = math.sqrt(sum(s * s for s in ses)) / len(late)
    return out
