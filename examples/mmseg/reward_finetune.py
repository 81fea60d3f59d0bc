# Reward fine-tuning of the model of tiny_synthetic.py with MMSeg's own tools:
#
#   python $(python -c "import mmseg,os;print(os.path.dirname(mmseg.__file__))")/.mim/tools/train.py \
#       examples/mmseg/reward_finetune.py
#   (MMSeg's tools/train.py; or MMEngine: Runner.from_cfg(Config.fromfile(...)).train())
#
# Only what differs from the base is written here. The decode head becomes a reward head
# by its type, `Reward<Head>` (here RewardASPPHead): every key of the base's head is kept,
# so an MLE checkpoint of the base loads unchanged; `reward=` holds the reward settings
# (docs/method.md: estimator, samples, baseline, normalize_advantage, class_weights).
# `custom_imports` (in the base) loads rewardsweep.mmseg, which registers the reward heads,
# the synthetic dataset and PreciseIoUMetric, and lets MMSeg run on mmcv-lite.
_base_ = ['./tiny_synthetic.py']

model = dict(decode_head=dict(type='RewardASPPHead',
                              reward=dict(estimator='reinforce', samples=1, baseline=dict(kind='greedy'))))

load_from = 'work_dirs/tiny_synthetic/iter_1000.pth'  # the cross-entropy (MLE) start checkpoint
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=200, by_epoch=False)]
train_cfg = dict(max_iters=200, val_interval=50)
