"""One mixin turns any MMSeg decode head into a reward head: same weights, same predictions."""

import pytest
import torch

from rewardsweep.reward.head import register_reward_heads, reward_head_class

REWARD = {"estimator": "reinforce", "samples": 2, "baseline": {"kind": "sample_loo"}}

HEADS = {
    "ASPPHead": dict(in_channels=32, in_index=3, channels=16, dilations=(1, 2)),
    "FCNHead": dict(in_channels=32, in_index=3, channels=16, num_convs=1),
    "PSPHead": dict(in_channels=32, in_index=3, channels=16, pool_scales=(1, 2)),
    "SegformerHead": dict(in_channels=[8, 16, 24, 32], in_index=[0, 1, 2, 3], channels=16),
}


def _features(batch=2):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(batch, c, 8, 8, generator=g) for c in (8, 16, 24, 32)]


def _samples(batch=2, num_classes=4):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(batch):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, 32, 32), generator=g))
        s.set_metainfo(dict(img_shape=(32, 32), ori_shape=(32, 32), pad_shape=(32, 32)))
        out.append(s)
    return out


@pytest.mark.parametrize("name", sorted(HEADS))
def test_any_head_becomes_a_reward_head_with_identical_eval(name):
    register_reward_heads()
    from mmseg.registry import MODELS

    common = dict(num_classes=4, norm_cfg=dict(type="BN"), align_corners=False, dropout_ratio=0.0)
    torch.manual_seed(0)
    plain = MODELS.build(dict(type=name, **HEADS[name], **common))
    wrapped = MODELS.build(dict(type="RewardHead", head=dict(type=name, **HEADS[name], **common), reward=REWARD))
    assert isinstance(wrapped, type(plain)) and type(wrapped).__name__ == f"Reward{name}"
    assert list(wrapped.state_dict()) == list(plain.state_dict())  # MLE checkpoints load unchanged
    wrapped.load_state_dict(plain.state_dict())
    plain.eval(), wrapped.eval()
    metas = [s.metainfo for s in _samples()]
    with torch.no_grad():
        assert torch.equal(plain.predict(_features(), metas, {}), wrapped.predict(_features(), metas, {}))
    wrapped.train()
    losses = wrapped.loss(_features(), _samples(), {})
    assert set(losses) >= {"loss_reward", "reward_mean", "advantage_std"}
    losses["loss_reward"].backward()
    assert wrapped.conv_seg.weight.grad is not None and wrapped.conv_seg.weight.grad.abs().sum() > 0


def test_named_registration_and_class_cache():
    register_reward_heads()
    from mmseg.registry import MODELS
    from mmseg.models.decode_heads import FCNHead

    head = MODELS.build(dict(type="RewardFCNHead", reward=REWARD, in_channels=32, channels=16, num_convs=1,
                             num_classes=3, norm_cfg=dict(type="BN")))
    assert type(head) is reward_head_class(FCNHead)
    assert head.reward_settings.baseline_kind == "sample_loo"
