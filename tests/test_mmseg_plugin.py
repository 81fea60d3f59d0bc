"""rewardsweep as an MMSeg plugin: the example pair of plain configs (``_base_`` and
``custom_imports=['rewardsweep.mmseg']``) runs through MMSeg's own tools, including the
hand-off of the base's MMEngine checkpoint (``load_from = .../iter_N.pth``) to the reward
config on the installed torch (``weights_only`` loading since torch 2.6).

Every step runs in a fresh interpreter that imports nothing of rewardsweep itself first:
the config's ``custom_imports`` is what must make MMSeg work on mmcv-lite and register the
reward head, the synthetic dataset and the metric (the path MMSeg's tools take).
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
EXAMPLES = ROOT / "examples" / "mmseg"

# MMEngine's Runner.from_cfg, as tools/train.py uses it, with the loaded weights checked
SCRIPT = r"""
import argparse, json, sys
import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

parser = argparse.ArgumentParser()
parser.add_argument("config")
parser.add_argument("work_dir")
parser.add_argument("--cfg-options", nargs="+", action=DictAction)   # as tools/train.py parses them
args = parser.parse_args()
cfg = Config.fromfile(args.config)
cfg.merge_from_dict(args.cfg_options)
cfg.work_dir = args.work_dir
runner = Runner.from_cfg(cfg)
runner.load_or_resume()                      # what train() does first: load_from
base = torch.load(cfg.load_from, map_location="cpu")["state_dict"]   # torch's default: weights_only
own = runner.model.state_dict()
loaded = all(torch.equal(own[k], v) for k, v in base.items() if k in own)
head = runner.model.decode_head
losses = []
runner.register_hook(type("Grab", (__import__("mmengine.hooks", fromlist=["Hook"]).Hook,), {
    "after_train_iter": lambda self, r, batch_idx, data_batch=None, outputs=None: losses.append(
        {k: float(v.detach()) for k, v in (outputs or {}).items()})})())
runner.train()
print(json.dumps({"head": type(head).__name__, "baseline": head.reward_settings.baseline_kind,
                  "loaded": loaded, "n_loaded": len(base), "losses": losses,
                  "shim": getattr(sys.modules.get("mmcv.ops"), "REWARDSWEEP_SHIM", False)}))
"""


def _mmseg_tool(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("mmseg")
    return Path(spec.origin).parent / ".mim" / "tools" / name


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, (args[0], proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def test_example_pair_trains_hands_off_and_tests_with_mmsegs_tools(tmp_path, cache_dir):
    """tools/train.py trains the base (2 iterations, MMEngine's CheckpointHook writes
    iter_2.pth); the reward config loads it through load_from and trains a reward head;
    tools/test.py evaluates the reward model's own checkpoint."""
    from rewardsweep.runners.synthetic_data import ensure_dataset

    data = str(ensure_dataset())
    short = ["train_cfg.max_iters=2", "train_cfg.val_interval=2", "default_hooks.checkpoint.interval=2",
             *(f"{loader}.dataset.data_root={data}" for loader in ("train_dataloader", "val_dataloader",
                                                                   "test_dataloader"))]
    _run([str(_mmseg_tool("train.py")), str(EXAMPLES / "tiny_synthetic.py"), "--cfg-options", *short], tmp_path)
    base = tmp_path / "work_dirs" / "tiny_synthetic" / "iter_2.pth"
    assert base.is_file()                                  # written by MMEngine, with its message hub

    # the hand-off: reward_finetune.py's own load_from, pointed at the base's iter_2.pth
    proc = _run(["-c", SCRIPT, str(EXAMPLES / "reward_finetune.py"), str(tmp_path / "reward"),
                 "--cfg-options", f"load_from={base}", *short], tmp_path)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded"] and out["n_loaded"] > 50           # every base tensor is in the reward model
    assert out["head"] == "RewardASPPHead" and out["baseline"] == "greedy"
    assert len(out["losses"]) == 2 and all("decode.loss_reward" in step and "decode.reward_mean" in step
                                           for step in out["losses"])
    reward = tmp_path / "reward" / "iter_2.pth"
    assert reward.is_file()

    _run([str(_mmseg_tool("test.py")), str(EXAMPLES / "reward_finetune.py"), str(reward),
          "--work-dir", str(tmp_path / "test"), "--cfg-options", *short[3:]], tmp_path)
    assert 0.0 <= mmseg_test_metrics(tmp_path / "test")["mIoU"] <= 1.0    # PreciseIoUMetric: unrounded, in [0, 1]


def mmseg_test_metrics(work_dir: Path) -> dict:
    """The metrics tools/test.py logged (MMEngine's ``<work_dir>/<timestamp>/<timestamp>.json``)."""
    (path,) = [p for p in work_dir.glob("*/*.json")]
    return json.loads(path.read_text().splitlines()[-1])


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
