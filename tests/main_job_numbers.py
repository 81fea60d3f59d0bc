"""Per-seed numbers recorded from the real main job (search_spaces/baseline.yaml from the
tiny preset's start: 2500 MLE iterations at lr 0.4, val mIoU 0.7404, checkpoint
63b9878e4ca73c66), for tests of rules that must hold on them (docs/method.md, "The main job")."""

# treatment.reward_rise of seeds 0-5 of the main job's reward configurations, with 0.3's trial
# batches (one augmentation stream per trial)
RISES = {
    "sample_loo": [0.003054, 0.002350, 0.003393, 0.003604, 0.004690, 0.002875],
    "batch_loo": [0.004748, -0.000396, 0.002975, 0.000566, 0.004886, 0.000721],
}

# The same, rerun with per-sample seeded trial batches (runners/loaders.py), same start
RISES_SEEDED = {
    "sample_loo": [0.003045, 0.006353, 0.002375, 0.002251, 0.005388, 0.001153],
    "batch_loo": [0.005206, 0.005882, 0.002305, 0.001682, 0.002345, 0.002036],
}
