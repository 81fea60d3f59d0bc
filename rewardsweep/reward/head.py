"""Turn any MMSeg decode head into a reward head, without copying or editing it.

The study copied each head file by hand (RewardASPPHead, RewardFCNHead, ...). Here one
mixin replaces only ``loss()``; ``forward``/``predict`` and every parameter name are
the wrapped head's own, so an MLE checkpoint loads unchanged and evaluation behaves
exactly like the original head. In a config::

    decode_head=dict(type="RewardHead", head=dict(type="ASPPHead", ...), reward=dict(...))

or, equivalently, ``type="RewardASPPHead"`` with the head's own keys plus ``reward=``
(the form that reads best on top of a ``_base_`` config: only ``type`` and ``reward``
change). In your own configs, ``custom_imports=dict(imports=["rewardsweep.mmseg"])``
registers both (:mod:`rewardsweep.mmseg`).
"""

from __future__ import annotations

from typing import Any

import torch

_CLASS_CACHE: dict[type, type] = {}


class RewardHeadMixin:
    """Mixed in front of a decode head class: its ``loss`` is the reward objective.

    Two attributes let the runner (``runners/reward_step.py``) drive the knobs that need
    more than one forward pass: ``reward_reference``, the start model's raw logits for the
    next batch (the KL term; taken by the next ``loss`` call), and ``reward_replay``, set
    while the runner runs epochs 2..E of the clipped surrogate on the kept batch.
    """

    reward_loss_weight: float = 1.0
    reward_reference: torch.Tensor | None = None
    reward_replay: bool = False

    def configure_reward(self, reward: dict[str, Any]) -> None:
        from rewardsweep.reward.objective import RewardObjective
        from rewardsweep.reward.settings import RewardSettings

        reward = dict(reward)
        self.reward_loss_weight = float(reward.pop("loss_weight", 1.0))
        settings = RewardSettings.from_config(reward, source="reward head", num_classes=self.num_classes)
        self.reward_settings = settings
        # Class weights (if any) come from the settings; the objective builds them.
        self.reward_objective = RewardObjective(settings, self.num_classes, self.ignore_index)

    def loss(self, inputs, batch_data_samples, train_cfg) -> dict[str, torch.Tensor]:
        from mmseg.models.utils import resize

        seg_logits = self.forward(inputs)
        labels = self._stack_batch_gt(batch_data_samples)
        # In fp32 under any autocast (precision: amp | bf16): the resize, softmax, sampling,
        # log-probabilities and mIoU of the reward never run in half precision.
        with torch.autocast(device_type=seg_logits.device.type, enabled=False):
            seg_logits = resize(seg_logits.float(), size=labels.shape[2:], mode="bilinear",
                                align_corners=self.align_corners)
            if self.reward_replay:
                loss, stats = self.reward_objective.replay(seg_logits, gt=labels.squeeze(1))
            else:
                ref, self.reward_reference = self.reward_reference, None
                if ref is not None:
                    ref = resize(ref.float(), size=labels.shape[2:], mode="bilinear",
                                 align_corners=self.align_corners)
                loss, stats = self.reward_objective(seg_logits, labels.squeeze(1), ref_logits=ref)
        losses = {"loss_reward": loss * self.reward_loss_weight}
        device = seg_logits.device
        losses.update({key: torch.tensor(float(value), device=device) for key, value in stats.items()})
        return losses


def reward_heads(model) -> list:
    """The model's heads that carry a reward objective (decode head, maybe the aux head)."""
    heads = [getattr(model, "decode_head", None)]
    aux = getattr(model, "auxiliary_head", None)
    heads += list(aux) if isinstance(aux, torch.nn.ModuleList) else [aux]
    return [h for h in heads if h is not None and hasattr(h, "reward_objective")]


def reward_head_class(base: type) -> type:
    """``Reward<Base>``: the mixin in front of ``base`` (cached, so built once per class)."""
    if base not in _CLASS_CACHE:
        _CLASS_CACHE[base] = type(f"Reward{base.__name__}", (RewardHeadMixin, base),
                                  {"__doc__": f"{base.__name__} trained with a reward objective."})
    return _CLASS_CACHE[base]


_REWARD_HINT = "reward=dict(baseline=dict(kind='greedy')) (the reward settings; dict() for the defaults)"


def build_reward_head(head: dict[str, Any] | None = None, reward: dict[str, Any] | None = None,
                      **inherited: Any):
    """Build ``head`` (any registered decode head config) as a reward head.

    ``inherited``: keys beside ``head`` and ``reward``, which is where a ``_base_`` config's
    decode head keys (in_channels, num_classes, ...) land when the child sets
    ``type="RewardHead"``; they fill in what ``head`` does not set.
    """
    from mmseg.registry import MODELS

    from rewardsweep.errors import ConfigError

    if not isinstance(head, dict) or "type" not in head:
        raise ConfigError(f"RewardHead: needs head=dict(type=<a decode head, e.g. 'ASPPHead'>, ...), got "
                          f"head={head!r}")
    if reward is None:
        raise ConfigError(f"RewardHead (head {head['type']}): missing {_REWARD_HINT}")
    head = {**inherited, **head}
    base = MODELS.get(head.pop("type"))
    if base is None:
        raise ConfigError(f"RewardHead: head type {head!r} is not a decode head registered in MMSeg")
    module = reward_head_class(base)(**head)
    module.configure_reward(reward)
    return module


def register_reward_heads() -> None:
    """Register ``RewardHead`` and ``Reward<Head>`` for every decode head MMSeg knows."""
    from rewardsweep.mmcv_compat import import_mmseg

    import_mmseg()
    from mmseg.models.decode_heads.decode_head import BaseDecodeHead
    from mmseg.registry import MODELS

    if MODELS.get("RewardHead") is None:
        MODELS.register_module(name="RewardHead", module=build_reward_head)
    for name, cls in list(MODELS.module_dict.items()):
        if isinstance(cls, type) and issubclass(cls, BaseDecodeHead) and not issubclass(cls, RewardHeadMixin):
            reward_name = f"Reward{name}"
            if MODELS.get(reward_name) is None:
                MODELS.register_module(name=reward_name, module=_named_builder(name))


def _named_builder(base_name: str):
    def build(reward: dict[str, Any] | None = None, **head: Any):
        if reward is None:
            from rewardsweep.errors import ConfigError

            raise ConfigError(f"Reward{base_name}: missing {_REWARD_HINT}")
        return build_reward_head({"type": base_name, **head}, reward)

    build.__name__ = f"build_reward_{base_name}"
    return build


def wrap_head_config(head_cfg: dict[str, Any], reward: dict[str, Any]) -> dict[str, Any]:
    """The config of ``head_cfg`` turned into a reward head (its loss_decode is unused)."""
    return {"type": "RewardHead", "head": dict(head_cfg), "reward": dict(reward)}
