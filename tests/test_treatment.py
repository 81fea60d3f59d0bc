"""Did the treatment reach the model? The probe, the no-op arm, and training that
evaluation and probing leave untouched (issue: reward arms that really reward-tune)."""

import math

import pytest
import torch

from rewardsweep.study import records
from rewardsweep.runners.probe import summarize_probes
from rewardsweep.runners.trial import run_trial


def _config(tmp_path, start, **overrides):
    cfg = dict(study="t", study_dir=str(tmp_path), config_id="cfg", arm="reward", seed=3,
               model="tiny-synthetic", start=start, steps=8, eval_every=8, batch_size=4, samples=2,
               baseline={"kind": "sample_loo"}, lr={"start": 1e-2, "end": 1e-4, "schedule": "poly"},
               optimizer={"type": "SGD", "momentum": 0.9, "weight_decay": 5e-4}, aux_head="mle",
               normalize_advantage=False, diagnostics_every=4)  # the old defaults, explicit
    cfg.update(overrides)
    return cfg


def _diagnostics(record, study_dir):
    return records.read_diagnostics(study_dir / record["diagnostics_file"])


def _losses(record, study_dir):
    return [d["loss"] for d in _diagnostics(record, study_dir)]


def test_probes_and_evaluations_leave_training_unchanged(tmp_path, tiny_start):
    base = run_trial(_config(tmp_path / "a", tiny_start, diagnostics_every=0))
    probed = run_trial(_config(tmp_path / "b", tiny_start, diagnostics_every=1))  # gradients at 5 and 8
    evaluated = run_trial(_config(tmp_path / "c", tiny_start, eval_every=4))
    assert _losses(base, tmp_path / "a") == _losses(probed, tmp_path / "b") == _losses(evaluated, tmp_path / "c")
    assert base["miou_final"] == probed["miou_final"] == evaluated["miou_final"]
    assert [p["step"] for p in evaluated["curve"]] == [0, 4, 8]
    assert base["treatment"]["probes"] == 0
    assert probed["treatment"]["probes"] == 8
    # the final measures run after the last evaluation: the same in every trial of this config
    assert {k: base["treatment"][k] for k in ("weight_move", "heldout_gain")} == \
        {k: probed["treatment"][k] for k in ("weight_move", "heldout_gain")}
    rows = _diagnostics(probed, tmp_path / "b")
    assert [d["step"] for d in rows if "probe.step_share" in d] == [5, 8]
    assert [d["step"] for d in rows if "probe.reward_gain" in d] == list(range(1, 9))


def test_logged_lr_is_the_lr_the_step_used(tmp_path, tiny_start):
    record = run_trial(_config(tmp_path, tiny_start, lr={"start": 1e-2, "end": 1e-4, "schedule": "linear"}))
    lrs = [d["lr"] for d in _diagnostics(record, tmp_path)]
    assert lrs[0] == pytest.approx(1e-2)  # step 1 runs at lr.start
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] > 1e-4 * 0.999


def test_probe_measures_a_reward_term_drowned_by_aux_ce_and_weight_decay(tmp_path, tiny_start):
    """The old default (aux CE, weight decay, unnormalised advantage): the reward term is a
    sliver of the update, and the probe's numbers match a direct gradient computation."""
    record = run_trial(_config(tmp_path, tiny_start))
    t = record["treatment"]
    assert t["probes"] == 2
    assert t["other_grad_norm"] > 10 * t["reward_grad_norm"] > 0
    assert t["wd_norm"] == pytest.approx(5e-4 * math.sqrt(sum(
        float(v.double().pow(2).sum()) for k, v in torch.load(tiny_start["checkpoint"])["state_dict"].items()
        if "running" not in k and "num_batches" not in k)), rel=0.05)
    assert 0 < t["step_share"] < 0.1
    # SGD: every force goes through the same momentum and lr, so the step's share is the
    # share of (gradient + L2 pull) norms, and the weight decay's step is lr/(1-m) * |wd theta|
    assert t["step_share"] == pytest.approx(
        t["reward_grad_norm"] / (t["reward_grad_norm"] + t["other_grad_norm"] + t["wd_norm"]), rel=1e-6)
    last = [d for d in _diagnostics(record, tmp_path) if "probe.wd_step" in d][-1]
    weights = math.sqrt(sum(float(p.double().pow(2).sum()) for k, p in torch.load(
        tiny_start["checkpoint"])["state_dict"].items() if "running" not in k and "num_batches" not in k))
    assert last["probe.wd_step"] == pytest.approx(last["lr"] / (1 - 0.9) * last["probe.wd_norm"] / weights, rel=0.05)
    rows = [d for d in _diagnostics(record, tmp_path) if "probe.reward_gain" in d]
    assert [d["step"] for d in rows] == [4, 8]  # the gain every 4 steps, gradients at the last
    assert [d["step"] for d in rows if "probe.step_share" in d] == [8]
    assert all(math.isfinite(d["probe.reward_gain"]) and d["probe.reward_gain_se"] >= 0 for d in rows)


def test_probe_sees_a_reward_only_update(tmp_path, tiny_start):
    record = run_trial(_config(tmp_path, tiny_start, aux_head="off", normalize_advantage=True,
                               optimizer={"type": "SGD", "momentum": 0.9, "weight_decay": 0.0}))
    t = record["treatment"]
    assert t["step_share"] == pytest.approx(1.0)
    assert t["other_grad_norm"] == 0 and t["wd_norm"] == 0 and t["other_step"] == 0 and t["wd_step"] == 0
    assert t["weight_move"] > 0 and t["heldout_images"] == 64 and math.isfinite(t["heldout_gain"])
    # normalised advantages: the whole update is the policy gradient, ~0.03 in norm
    diag = [d for d in _diagnostics(record, tmp_path) if "probe.reward_grad_norm" in d]
    for d in diag:
        assert d["probe.reward_grad_norm"] == pytest.approx(d["grad_norm"], rel=1e-4)


def test_optimizer_steps_follow_sgd_and_adam():
    """The step a gradient causes after the optimizer: SGD's lr/(1 - momentum), Adam's
    lr/(sqrt(v_hat) + eps), whose scale-freeness makes a tiny gradient move as far as a big one."""
    from rewardsweep.runners.probe import optimizer_steps

    w = torch.nn.Parameter(torch.ones(4))
    sgd = torch.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=0.01)
    g = [torch.full((4,), 0.5)]
    steps = optimizer_steps(sgd, [w], {"reward": g})
    assert steps["reward"] == pytest.approx(0.1 / 0.1 * 1.0)          # 0.1/(1-0.9) * |0.5 * 1_4| = 1.0
    assert steps["weight_decay"] == pytest.approx(1.0 * 0.01 * 2.0)   # same factor * |wd theta|
    adam = torch.optim.Adam([w], lr=1e-3)
    w.grad = torch.full((4,), 1e-6)
    adam.step()                                                       # v = (1-beta2) g^2, v_hat = g^2
    tiny = optimizer_steps(adam, [w], {"reward": [torch.full((4,), 1e-6)]})["reward"]
    assert tiny == pytest.approx(1e-3 * 1e-6 / (1e-6 + 1e-8) * 2.0, rel=1e-4)   # ~lr per element


def test_noop_arm_changes_batchnorm_statistics_only(tmp_path, tiny_start):
    record = run_trial(_config(tmp_path, tiny_start, arm="noop", config_id="ref"))
    assert record["status"] == "finished" and record["estimator"] == "noop"
    # no probe; the weights stay put, and the held-out gain is BatchNorm drift alone
    assert record["treatment"]["weight_move"] == 0 and "reward_rise" not in record["treatment"]
    assert math.isfinite(record["treatment"]["heldout_gain"])
    assert len(_diagnostics(record, tmp_path)) == 8
    assert record["miou_final"] != record["miou_start"]  # BN running statistics drifted
    assert abs(record["delta_miou"]) < 0.05


def test_summarize_probes_takes_the_late_half_for_the_rise():
    rows = [{"step": 10, "reward_gain": 1.0, "reward_gain_se": 0.3, "signal_dot": 4.0, "step_share": 0.5},
            {"step": 20, "reward_gain": 0.2, "reward_gain_se": 0.1, "signal_dot": -2.0, "step_share": 0.7},
            {"step": 30, "reward_gain": 0.4, "reward_gain_se": 0.1, "signal_dot": -5.0, "step_share": 0.9}]
    s = summarize_probes(rows, steps=30)
    assert s["probes"] == 3
    assert s["reward_rise"] == pytest.approx(0.3)          # steps 20 and 30 (> 15)
    assert s["reward_rise_se"] == pytest.approx(math.sqrt(0.02) / 2)
    assert s["signal_dot"] == pytest.approx(-1.0)           # mean(4, -2, -5): unbiased, never clipped
    assert s["step_share"] == pytest.approx(0.7)
    assert summarize_probes([], 30) == {"probes": 0}

