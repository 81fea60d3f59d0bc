# A plain MMSegmentation config: rewardsweep's tiny DeepLabV3 (ResNet-18-ish, ~1M
# parameters) on its procedural synthetic scenes, trained with cross-entropy.
# The `_base_` of reward_finetune.py; runs on CPU in seconds per 10 iterations.
#
# The data: python -c "from rewardsweep.runners.synthetic_data import generate; generate('data/synthetic')"
# (or `rewardsweep pretrain`, which writes it under $REWARDSWEEP_CACHE).
custom_imports = dict(imports=['rewardsweep.mmseg'], allow_failed_imports=False)
default_scope = 'mmseg'

data_root = 'data/synthetic'
num_classes = 6
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(64, 64)),
    pretrained=None,
    backbone=dict(type='ResNetV1c', depth=18, stem_channels=16, base_channels=16, num_stages=4,
                  out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), norm_cfg=norm_cfg,
                  norm_eval=False, style='pytorch', contract_dilation=True),
    decode_head=dict(type='ASPPHead', in_channels=128, in_index=3, channels=48, dilations=(1, 2, 4, 6),
                     dropout_ratio=0.1, num_classes=num_classes, norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'),
)

train_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='RandomFlip', prob=0.5),
                  dict(type='PackSegInputs')]
val_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
train_dataloader = dict(
    batch_size=4, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='SyntheticScenesDataset', data_root=data_root,
                 data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SyntheticScenesDataset', data_root=data_root,
                 data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'), pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='PreciseIoUMetric', iou_metrics=['mIoU'])  # mIoU unrounded, in [0, 1]
test_evaluator = val_evaluator

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=0.0005))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=1000, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1000, val_interval=250)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(timer=dict(type='IterTimerHook'), logger=dict(type='LoggerHook', interval=50),
                     param_scheduler=dict(type='ParamSchedulerHook'),
                     checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000),
                     sampler_seed=dict(type='DistSamplerSeedHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork'), dist_cfg=dict(backend='nccl'))
log_level = 'WARNING'
load_from = None
resume = False
randomness = dict(seed=0)
