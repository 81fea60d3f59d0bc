"""Keep a trial's final weights, and the MMEngine config that rebuilds and evaluates them.

With ``checkpoints: final`` in a spec, each finished trial writes, before its record,

    <study>/checkpoints/<trial>.pth   {"state_dict": ..., "meta": {...}}: plain tensors and
                                      built-ins, so ``torch.load`` loads it with weights_only
    <study>/checkpoints/<trial>.py    an MMSeg config: the preset's model with its plain
                                      decode head (a reward head only changes the loss, so
                                      the weights are the same tensors), the val split as
                                      val and test data, PreciseIoUMetric

both written atomically, and the record names them with the weights' sha256. MMSeg's own
tool evaluates one to the trial's recorded ``miou_final``::

    python <mmseg>/.mim/tools/test.py runs/smoke/checkpoints/<trial>.py runs/smoke/checkpoints/<trial>.pth

(``custom_imports`` in the config loads ``rewardsweep.mmseg`` for the dataset and the metric.)
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
from pathlib import Path
from typing import Any

from rewardsweep.study.atomic import atomic_write
from rewardsweep.study.layout import checkpoint_paths


def sha256_of(path: str | os.PathLike) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def rebuild_config(setting, trained_model: dict[str, Any], val_dataloader: dict[str, Any]) -> dict[str, Any]:
    """The MMEngine config of a kept checkpoint: the model as MMSeg builds it for inference
    (the preset's plain heads; no auxiliary head where the trial dropped it) and the val
    split as both val and test data, evaluated by PreciseIoUMetric (mIoU in [0, 1], unrounded)."""
    model = copy.deepcopy(setting.model)
    if not trained_model.get("auxiliary_head"):
        model["auxiliary_head"] = None
    loader = copy.deepcopy(val_dataloader)
    evaluator = {"type": "PreciseIoUMetric", "ignore_index": setting.ignore_index, "iou_metrics": ["mIoU"]}
    return {
        "custom_imports": {"imports": ["rewardsweep.mmseg"], "allow_failed_imports": False},
        "default_scope": "mmseg",
        "model": model,
        "val_dataloader": loader, "val_evaluator": evaluator, "val_cfg": {"type": "ValLoop"},
        "test_dataloader": copy.deepcopy(loader), "test_evaluator": dict(evaluator), "test_cfg": {"type": "TestLoop"},
        "env_cfg": {"cudnn_benchmark": False, "mp_cfg": {"mp_start_method": "fork", "opencv_num_threads": 0},
                    "dist_cfg": {"backend": "gloo"}},
        "log_level": "INFO",
    }


def save_final(study_dir: str | os.PathLike, record: dict[str, Any], model, config: dict[str, Any]) -> dict[str, Any]:
    """Write the trial's final weights and rebuild config; return the record's
    ``final_checkpoint`` entry (paths relative to the study folder, sha256 of the weights)."""
    import torch
    from mmengine.config import Config
    from mmengine.model import is_model_wrapper

    module = model.module if is_model_wrapper(model) else model
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    meta = {"rewardsweep": {k: record.get(k) for k in ("study", "config_id", "arm", "seed", "miou_final")},
            "dataset_meta": {"classes": list(record.get("class_names") or [])}}
    weights, cfg_path = checkpoint_paths(study_dir, record["config_id"], record["arm"], record["seed"])
    # through memory: torch.save names its archive after the file, and a temporary file's
    # random name would make equal weights differ in bytes (and in sha256)
    buffer = io.BytesIO()
    torch.save({"state_dict": state, "meta": meta}, buffer)
    atomic_write(weights, buffer.getvalue())
    digest = sha256_of(weights)
    header = (f"# rewardsweep: the model of trial {weights.stem} (study {record.get('study')}, "
              f"final val mIoU {record.get('miou_final')!r}) and its val split.\n"
              f"# Evaluate: python <mmseg>/.mim/tools/test.py {cfg_path.name} {weights.name}\n"
              f"# weights: {weights.name}, sha256 {digest}\n")
    atomic_write(cfg_path, header + Config(config).pretty_text)
    root = Path(study_dir)
    return {"file": str(weights.relative_to(root)), "sha256": digest, "bytes": weights.stat().st_size,
            "config_file": str(cfg_path.relative_to(root))}
