"""Per-image mIoU reward against a brute-force Python reference (METHOD.md, "Reward")."""

import math

import pytest
import torch

from rewardsweep.reward import miou as miou_mod
from rewardsweep.reward.miou import confusion_matrices, per_image_miou

IGNORE = 255


def reference_miou(pred, gt, num_classes, ignore_index=IGNORE):
    """Pixel by pixel, class by class: (reward, valid) of one image, as METHOD.md words it."""
    pred, gt = pred.flatten().tolist(), gt.flatten().tolist()
    pairs = [(p, g) for p, g in zip(pred, gt) if g != ignore_index]
    ious = []
    for c in range(num_classes):
        inter = sum(1 for p, g in pairs if p == c and g == c)
        union = sum(1 for p, g in pairs if p == c or g == c)
        if union > 0:
            ious.append(inter / union)
    if not ious:
        return 0.0, False
    return sum(ious) / len(ious), True


def random_case(gen, shape, num_classes, p_ignore=0.2, absent=()):
    """Random labels with some ignored pixels; classes in ``absent`` appear nowhere."""
    allowed = torch.tensor([c for c in range(num_classes) if c not in absent])
    pred = allowed[torch.randint(len(allowed), shape, generator=gen)]
    gt = allowed[torch.randint(len(allowed), shape, generator=gen)]
    gt[torch.rand(shape, generator=gen) < p_ignore] = IGNORE
    return pred, gt


def test_matches_reference_on_random_batches():
    gen = torch.Generator().manual_seed(0)
    C = 5
    pred, gt = random_case(gen, (6, 7, 9), C, absent=(3,))  # class 3 absent from both
    gt[2] = IGNORE  # an image without a valid pixel
    gt[4, :, :] = torch.where(torch.rand(7, 9, generator=gen) < 0.9, IGNORE, gt[4])  # almost all ignored
    pred[5] = gt[5].clamp_max(C - 1)  # a perfect prediction where labelled
    reward, valid = per_image_miou(pred, gt, C, IGNORE)
    assert reward.dtype == torch.float32 and valid.dtype == torch.bool
    assert reward.shape == valid.shape == (6,)
    for i in range(6):
        ref, ref_valid = reference_miou(pred[i], gt[i], C)
        assert valid[i].item() == ref_valid
        assert reward[i].item() == pytest.approx(ref, abs=1e-6)
    assert not valid[2] and reward[2].item() == 0.0
    assert reward[5].item() == pytest.approx(1.0)
    assert torch.isfinite(reward).all()


def test_k_samples_broadcast_gt():
    gen = torch.Generator().manual_seed(1)
    B, k, C = 3, 4, 4
    pred = torch.randint(C, (B, k, 5, 6), generator=gen)
    _, gt = random_case(gen, (B, 5, 6), C, p_ignore=0.3)
    gt[1] = IGNORE
    reward, valid = per_image_miou(pred, gt, C, IGNORE)
    assert reward.shape == valid.shape == (B, k)
    for i in range(B):
        for j in range(k):
            ref, ref_valid = reference_miou(pred[i, j], gt[i], C)
            assert valid[i, j].item() == ref_valid
            assert reward[i, j].item() == pytest.approx(ref, abs=1e-6)


def test_hand_example_absent_class_not_counted():
    # 2x2, 3 classes; class 2 absent from both -> mean over classes 0 and 1 only.
    pred = torch.tensor([[0, 0], [1, 1]])
    gt = torch.tensor([[0, 1], [1, IGNORE]])
    reward, valid = per_image_miou(pred[None], gt[None], 3)
    # valid pixels: (0,0) (0,1) (1,0); class 0: I=1, U=2; class 1: I=1, U=2
    assert valid.item() and reward.item() == pytest.approx(0.5)


def test_single_bincount_no_python_loop(monkeypatch):
    calls = []
    real = torch.bincount

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(miou_mod.torch, "bincount", counting)
    pred = torch.randint(3, (8, 2, 4, 4))
    gt = torch.randint(3, (8, 4, 4))
    per_image_miou(pred, gt, 3)
    assert len(calls) == 1


def test_confusion_rows_are_labels_and_dtypes_scale():
    pred = torch.tensor([[[1, 1, 0]]])
    gt = torch.tensor([[[0, 1, IGNORE]]])
    conf = confusion_matrices(pred, gt, 2)
    assert conf.tolist() == [[[0, 1], [0, 1]]]
    # enough (image, sample) pairs to need an int32/int64 index
    gen = torch.Generator().manual_seed(2)
    pred = torch.randint(19, (40, 100, 2, 3), generator=gen)
    gt = torch.randint(19, (40, 2, 3), generator=gen)
    reward, _ = per_image_miou(pred, gt, 19)
    ref, _ = reference_miou(pred[39, 99], gt[39], 19)
    assert reward[39, 99].item() == pytest.approx(ref, abs=1e-6)


def test_out_of_range_labels_raise():
    pred = torch.tensor([[[0, 3]]])
    gt = torch.tensor([[[0, 1]]])
    with pytest.raises(ValueError, match="predictions"):
        per_image_miou(pred, gt, 3)
    with pytest.raises(ValueError, match="labels"):
        per_image_miou(torch.zeros_like(gt), torch.tensor([[[7, IGNORE]]]), 3)
    with pytest.raises(ValueError, match="broadcast"):
        per_image_miou(torch.zeros(2, 3, 3, dtype=torch.long), torch.zeros(3, 3, 3, dtype=torch.long), 3)


def test_other_ignore_index():
    pred = torch.tensor([[[0, 1, 1]]])
    gt = torch.tensor([[[0, -1, 1]]])
    reward, valid = per_image_miou(pred, gt, 2, ignore_index=-1)
    assert valid.item() and reward.item() == pytest.approx(1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(3)
    pred, gt = random_case(gen, (4, 3, 16, 16), 7)
    r_cpu, v_cpu = per_image_miou(pred, gt[:, 0], 7)
    r_gpu, v_gpu = per_image_miou(pred.cuda(), gt[:, 0].cuda(), 7)
    assert r_gpu.device.type == "cuda" and r_gpu.dtype == torch.float32
    assert torch.allclose(r_cpu, r_gpu.cpu()) and torch.equal(v_cpu, v_gpu.cpu())
    assert not math.isnan(r_gpu.sum().item())
