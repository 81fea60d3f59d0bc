"""rewardsweep as an MMSeg plugin: a plain config file with ``_base_`` and
``custom_imports=['rewardsweep.mmseg']`` trains through MMEngine's ``Runner.from_cfg``.

Run in a fresh interpreter that imports nothing of rewardsweep itself first: the config's
``custom_imports`` is what must make MMSeg work on mmcv-lite and register the reward head,
the synthetic dataset and the metric (the path MMSeg's ``tools/train.py`` takes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rewardsweep.errors import ConfigError

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mmseg" / "reward_finetune.py"

SCRIPT = r"""
import json, sys
from mmengine.config import Config
from mmengine.runner import Runner

cfg = Config.fromfile(sys.argv[1])
data_root, work_dir = sys.argv[2], sys.argv[3]
for loader in (cfg.train_dataloader, cfg.val_dataloader):
    loader.dataset.data_root = data_root
cfg.work_dir, cfg.load_from = work_dir, None
cfg.train_cfg.max_iters, cfg.train_cfg.val_interval = 3, 3
cfg.param_scheduler = []
cfg.default_hooks.checkpoint.interval = 3
runner = Runner.from_cfg(cfg)
head = runner.model.decode_head
losses = []
runner.register_hook(type("Grab", (__import__("mmengine.hooks", fromlist=["Hook"]).Hook,), {
    "after_train_iter": lambda self, r, batch_idx, data_batch=None, outputs=None: losses.append(
        {k: float(v.detach()) for k, v in (outputs or {}).items()})})())
metrics = runner.train() and runner.val()
print(json.dumps({"head": type(head).__name__, "baseline": head.reward_settings.baseline_kind,
                  "losses": losses, "miou": metrics.get("mIoU"),
                  "shim": getattr(sys.modules.get("mmcv.ops"), "REWARDSWEEP_SHIM", False)}))
"""


def test_plain_mmseg_config_with_base_trains_a_reward_head(tmp_path, cache_dir):
    from rewardsweep.runners.synthetic_data import ensure_dataset

    data_root = ensure_dataset()
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(EXAMPLE), str(data_root), str(tmp_path / "work")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["head"] == "RewardASPPHead" and out["baseline"] == "greedy"
    assert len(out["losses"]) == 3 and all("decode.loss_reward" in step and "decode.reward_mean" in step for step in out["losses"])
    assert 0.0 <= out["miou"] <= 1.0                                # PreciseIoUMetric: unrounded, in [0, 1]
    assert (tmp_path / "work" / "iter_3.pth").is_file()


def test_missing_reward_names_the_head():
    import rewardsweep.mmseg  # noqa: F401 - registers the heads
    from mmseg.registry import MODELS

    head = dict(in_channels=16, channels=8, num_classes=3, num_convs=1)
    with pytest.raises(ConfigError, match=r"RewardFCNHead: missing reward=dict\("):
        MODELS.build(dict(type="RewardFCNHead", **head))
    with pytest.raises(ConfigError, match=r"RewardHead \(head FCNHead\): missing reward="):
        MODELS.build(dict(type="RewardHead", head=dict(type="FCNHead", **head)))


def test_reward_head_form_takes_keys_inherited_from_base():
    """``type='RewardHead'`` over a ``_base_`` head: the base's keys arrive beside ``head``."""
    import rewardsweep.mmseg  # noqa: F401
    from mmengine.config import Config
    from mmseg.registry import MODELS

    base = dict(type="FCNHead", in_channels=16, channels=8, num_classes=3, num_convs=1)
    merged = Config(dict(decode_head=base))
    merged.merge_from_dict({"decode_head": dict(type="RewardHead", head=dict(type="FCNHead", channels=4),
                                                reward=dict(baseline=dict(kind="greedy")))})
    built = MODELS.build(merged.decode_head)
    assert type(built).__name__ == "RewardFCNHead" and built.channels == 4 and built.num_classes == 3
