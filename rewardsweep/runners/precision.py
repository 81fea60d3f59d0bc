"""A trial's numeric precision (the ``precision`` key) as an MMEngine optimizer wrapper.

- ``fp32`` (the default; also what an unset key means): ``OptimWrapper``.
- ``amp``: MMEngine's ``AmpOptimWrapper``, float16 autocast with dynamic loss scaling
  (CUDA only: MMEngine refuses it elsewhere, and fp16 on a CPU is slower than fp32).
- ``bf16``: bfloat16 autocast, no loss scaling (bf16 has fp32's exponent range), on a GPU
  or a CPU (:class:`AutocastOptimWrapper`; MMEngine's ``AmpOptimWrapper`` needs a GPU).

Whatever the precision, the reward is computed in fp32: the reward head leaves autocast
for the resize, softmax, sampling, log-probabilities and per-image mIoU
(:meth:`rewardsweep.reward.head.RewardHeadMixin.loss`); MMSeg's cross-entropy runs in fp32
under autocast too. Evaluation runs in fp32 (the study's outcome is measured the same way
for every precision).

Imports MMEngine at the top: imported inside the functions that build a runner.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from rewardsweep.config.trial import PRECISIONS
from rewardsweep.errors import ConfigError
# clip_grad with a huge max_norm never clips; it makes MMEngine compute and log the grad norm.
_CLIP = dict(max_norm=1e12, error_if_nonfinite=False)


def optim_wrapper_config(optimizer: dict, precision: str | None = None, device: str | None = None) -> dict:
    """The ``optim_wrapper`` of a runner config for ``precision`` on ``device`` (``cuda``/``cpu``;
    None: CUDA if torch sees one)."""
    precision = precision or "fp32"
    base = dict(optimizer=optimizer, clip_grad=dict(_CLIP))
    if precision == "fp32":
        return dict(type="OptimWrapper", **base)
    if precision == "amp":
        on_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
        if not on_cuda:
            raise ConfigError("precision: amp (float16 with loss scaling) needs a GPU and this trial runs on "
                              "the CPU; expected fp32 or bf16 here")
        return dict(type="AmpOptimWrapper", dtype="float16", loss_scale="dynamic", **base)
    if precision == "bf16":
        register_precision()
        return dict(type="AutocastOptimWrapper", dtype="bfloat16", **base)
    raise ConfigError(f"precision: {precision!r} is not allowed; expected one of {', '.join(PRECISIONS)}")


class AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward passes run under ``torch.autocast`` (on the device the
    model's parameters are on) with ``dtype``; no loss scaling (for bfloat16)."""

    def __init__(self, dtype: str | torch.dtype = "bfloat16", **kwargs) -> None:
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        device_type = next(model.parameters()).device.type
        with super().optim_context(model), torch.autocast(device_type=device_type, dtype=self.cast_dtype):
            yield


def register_precision() -> None:
    """Put :class:`AutocastOptimWrapper` in MMEngine's registry (idempotent)."""
    OPTIM_WRAPPERS.register_module(name="AutocastOptimWrapper", module=AutocastOptimWrapper, force=True)
