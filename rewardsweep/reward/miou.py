"""Per-image mIoU reward, vectorised over images and samples (``docs/method.md``).

``R(y, g)`` is the mean, over the classes whose union ``{y=c} ∪ {g=c}`` over the valid
pixels is non-empty, of ``|{y=c} ∩ {g=c}| / |{y=c} ∪ {g=c}|``. An image without a valid
pixel has no reward: it gets ``reward = 0`` and ``valid = False`` (callers give it weight 0).

Every (image, sample) gets its own C x C confusion matrix; all of them come from one
``torch.bincount`` over ``offset(image, sample) + C * label + prediction`` (ignored pixels
go to a spare bin that is dropped), so there is no Python loop over images.
"""

from __future__ import annotations

import math

import torch

__all__ = ["confusion_matrices", "per_image_miou"]


def _index_dtype(bound: int) -> torch.dtype:
    """Smallest integer dtype that holds every value up to ``bound`` (int16 is fastest)."""
    if bound < 2**15 - 1:
        return torch.int16
    if bound < 2**31 - 1:
        return torch.int32
    return torch.int64


def _align_gt(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Insert singleton sample dims after the batch dim so that ``gt`` broadcasts to ``pred``."""
    if gt.dim() < pred.dim() and gt.dim() >= 3:
        gt = gt.reshape(gt.shape[:1] + (1,) * (pred.dim() - gt.dim()) + gt.shape[1:])
    try:
        shape = torch.broadcast_shapes(gt.shape, pred.shape)
    except RuntimeError:
        shape = None
    if shape != pred.shape:
        raise ValueError(
            f"gt of shape {tuple(gt.shape)} does not broadcast to pred of shape {tuple(pred.shape)}"
        )
    return gt


def _check_pred(pred: torch.Tensor, num_classes: int) -> None:
    if pred.numel():
        lo, hi = pred.aminmax()
        if lo.item() < 0 or hi.item() >= num_classes:
            raise ValueError(f"predictions must lie in [0, {num_classes}); got [{lo.item()}, {hi.item()}]")


def _bad_labels(message: str, num_classes: int) -> ValueError:
    return ValueError(f"labels must lie in [0, {num_classes}) or equal ignore_index; {message}")


def confusion_matrices(
    pred: torch.Tensor,
    gt: torch.Tensor,
    num_classes: int,
    ignore_index: int = 255,
    check: bool = True,
) -> torch.Tensor:
    """One confusion matrix per leading index of ``pred``: int64 ``[..., C, C]``, rows = label.

    ``pred``: integer ``[..., H, W]``; ``gt``: integer ``[B, H, W]`` (or any shape that
    broadcasts to ``pred`` once singleton dims are inserted after the batch dim, e.g. the
    k dim of ``[B, k, H, W]``). Pixels whose label is ``ignore_index`` are not counted.
    ``check`` raises ValueError for predictions outside ``[0, C)`` or labels outside
    ``[0, C)`` other than ``ignore_index`` (two min/max passes and a clamp; on CUDA it
    synchronises). Without it such values silently corrupt the counts.
    """
    if pred.dim() < 2:
        raise ValueError(f"pred must be [..., H, W]; got shape {tuple(pred.shape)}")
    if pred.dtype.is_floating_point or gt.dtype.is_floating_point:
        raise TypeError("pred and gt must be integer label maps")
    C = int(num_classes)
    if C < 1:
        raise ValueError(f"num_classes must be >= 1; got {num_classes}")
    gt = _align_gt(pred, gt)
    lead = pred.shape[:-2]
    n = math.prod(lead)
    rows = C + 1  # row C collects labels >= C that are not ignore_index (checked below)
    n_bins = n * rows * C
    # Every intermediate value fits in ``dt``: 1 + offset + label*C + pred, for any label
    # in [min(0, ignore_index), max(C, ignore_index)].
    dt = _index_dtype(n_bins + (max(abs(int(ignore_index)), C) + 1) * C + 1)
    lo = 0
    if check:
        _check_pred(pred, C)
        if gt.numel():  # in gt's own dtype, before the cast could wrap a bad value into range
            lo, hi = (v.item() for v in gt.aminmax())
            if lo < 0 and lo != ignore_index:
                raise _bad_labels(f"got {lo}", C)
            if hi >= C and hi != ignore_index:
                raise _bad_labels(f"got {hi}", C)
    g = gt.to(dt)
    valid_pixels = g != ignore_index
    if check:
        if lo < 0 and ((g < 0) & valid_pixels).any():  # a negative ignore_index below another negative
            raise _bad_labels("got a negative label", C)
        # labels in [C, ignore_index) land in the spare row C, checked below (not in place:
        # g may be gt itself)
        g = g.clamp(max=C)
    # 0 for ignored pixels (a spare bin, dropped), else 1 + offset(image, sample) + label*C + pred
    offsets = (torch.arange(n, device=pred.device, dtype=dt) * (rows * C) + 1).view(*lead, 1, 1)
    index = g * C + pred.to(dt)  # broadcast to pred's shape
    index.add_(offsets).mul_(valid_pixels)
    counts = torch.bincount(index.reshape(-1), minlength=n_bins + 1)[1:].view(*lead, rows, C)
    if check and counts[..., C, :].any():
        raise _bad_labels(f"got labels >= {C}", C)
    return counts[..., :C, :]


def per_image_miou(
    pred: torch.Tensor,
    gt: torch.Tensor,
    num_classes: int,
    ignore_index: int = 255,
    check: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mIoU of ``pred`` ``[..., H, W]`` against ``gt`` ``[B, H, W]``.

    Returns ``(reward, valid)``, float32 and bool tensors of shape ``pred.shape[:-2]``
    (e.g. ``[B]`` or ``[B, k]``), on ``pred``'s device. Classes absent from both the
    prediction and the label (over valid pixels) are left out of the mean; an image with
    no valid pixel gets reward 0 and ``valid = False``. Never NaN.
    """
    conf = confusion_matrices(pred, gt, num_classes, ignore_index, check)
    inter = conf.diagonal(dim1=-2, dim2=-1)
    union = conf.sum(-1) + conf.sum(-2) - inter
    present = union > 0
    iou = inter.float() / union.clamp_min(1).float()  # 0 where the class is absent from both
    n_present = present.sum(-1)
    valid = n_present > 0  # a valid pixel's label class always has a non-empty union
    reward = iou.sum(-1) / n_present.clamp_min(1).float()
    return reward.float(), valid
