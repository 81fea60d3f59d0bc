"""rewardsweep as an MMSegmentation plugin, for your own configs and MMSeg's own tools.

Name it in a config's ``custom_imports`` and train with MMSeg's ``tools/train.py`` (or
MMEngine's ``Runner.from_cfg``)::

    custom_imports = dict(imports=["rewardsweep.mmseg"], allow_failed_imports=False)
    model = dict(decode_head=dict(type="RewardASPPHead", reward=dict(baseline=dict(kind="greedy"))))

Importing it (MMEngine does so while it reads the config) makes MMSeg importable on
mmcv-lite (:mod:`rewardsweep.mmcv_compat`; with a compiled mmcv nothing is changed), then
registers ``RewardHead`` and ``Reward<Head>`` for every decode head MMSeg has, the
procedural ``SyntheticScenesDataset``, the checked dataset types and ``PreciseIoUMetric``.
A worked example: ``examples/mmseg/``; the how-to: docs/mmseg.md.
"""

from __future__ import annotations

from rewardsweep.mmcv_compat import import_mmseg
from rewardsweep.reward.head import register_reward_heads
from rewardsweep.runners.dataset_types import register_dataset_types
from rewardsweep.runners.metric import register_metric

import_mmseg()
register_reward_heads()
register_dataset_types()
register_metric()
