"""Dataset-level IoU with full precision and per-class values.

MMSeg's ``IoUMetric`` builds one confusion matrix over the whole split (what docs/method.md
asks for) but rounds mIoU to 0.01 points and only prints the per-class table. Reward
tuning moves mIoU by fractions of a point, so we keep MMSeg's accumulation and area
arithmetic (its static methods) and return unrounded values in [0, 1].

Imports MMSeg at the top: the runners import this module inside the functions that run a
model (and :mod:`rewardsweep.mmseg` at its top), never at module level.
"""

from __future__ import annotations

import numpy as np

from rewardsweep.mmcv_compat import import_mmseg

import_mmseg()  # before the first mmseg import: mmseg needs the mmcv.ops stand-in on mmcv-lite

from mmseg.evaluation import IoUMetric  # noqa: E402
from mmseg.registry import METRICS  # noqa: E402


def _numpy(x) -> np.ndarray:
    """A (possibly CUDA) tensor or array as float64 numpy."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


class PreciseIoUMetric(IoUMetric):
    """``IoUMetric`` whose results are unrounded: ``mIoU`` in [0, 1] and ``IoU.<class>``."""

    def compute_metrics(self, results: list) -> dict[str, float]:
        # Per-image counts of this evaluation (rows in the val split's order), kept for
        # the trial's val_counts sidecar: the report's val-image bootstrap needs them.
        self.per_image = (np.stack([_numpy(r[0]) for r in results]),
                          np.stack([_numpy(r[1]) for r in results]))
        intersect, union, pred_area, label_area = (sum(parts) for parts in zip(*results))
        areas = self.total_area_to_metrics(intersect, union, pred_area, label_area, ["mIoU"])
        iou = np.asarray(areas["IoU"], dtype=np.float64)
        metrics: dict[str, float] = {"mIoU": float(np.nanmean(iou)), "aAcc": float(areas["aAcc"])}
        for name, value in zip(self.dataset_meta["classes"], iou):
            metrics[f"IoU.{name}"] = float(value)  # NaN: class absent from val and predictions
        return metrics


def register_metric() -> None:
    """Register ``PreciseIoUMetric`` in MMSeg's metric registry (idempotent)."""
    METRICS.register_module(name=PreciseIoUMetric.__name__, module=PreciseIoUMetric, force=True)


def split_metrics(metrics: dict[str, float], class_names: tuple[str, ...]) -> tuple[float, list[float | None]]:
    """(mIoU, per-class IoU aligned with ``class_names``, None for NaN) from a metrics dict."""
    per_class = []
    for name in class_names:
        value = metrics.get(f"IoU.{name}", metrics.get(f"val/IoU.{name}"))
        per_class.append(None if value is None or not np.isfinite(value) else float(value))
    miou = metrics.get("mIoU", metrics.get("val/mIoU"))
    return float(miou), per_class


def last_per_image_counts(runner) -> tuple[np.ndarray, np.ndarray] | None:
    """``(intersect, union)`` per val image [images, classes] of the runner's last evaluation."""
    try:
        metrics = runner.val_loop.evaluator.metrics
    except Exception:
        return None
    for metric in metrics:
        if getattr(metric, "per_image", None) is not None:
            return metric.per_image
    return None
