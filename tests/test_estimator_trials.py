"""Every estimator knob in a real trial: tiny-synthetic, the real MMSeg model and Runner.

The pure functions have their exact tests (tests/test_reward_*.py); here each knob runs end
to end: the trial supplies the start model's logits (KL) and runs the epochs (clipped
surrogate), records its diagnostic in the sidecar and the record summary, keeps the
treatment probe working, and gives the same numbers twice.
"""

import math

import pytest

from rewardsweep.runners.trial import run_trial
from rewardsweep.study import layout, records

STEPS = 4


def _config(tmp_path, start, **overrides):
    cfg = dict(study="t", study_dir=str(tmp_path), config_id="cfg", arm="reward", seed=1,
               model="tiny-synthetic", start=start, steps=STEPS, eval_every=STEPS, batch_size=4, samples=2,
               baseline={"kind": "sample_loo"}, lr={"start": 1e-2, "end": 1e-4, "schedule": "poly"},
               diagnostics_every=2)
    cfg.update(overrides)
    return cfg


def _diagnostics(tmp_path, record):
    return records.read_diagnostics(tmp_path / record["diagnostics_file"])


def _run(tmp_path, start, **overrides):
    record = run_trial(_config(tmp_path, start, **overrides))
    assert record["status"] == "finished", record.get("error")
    rows = _diagnostics(tmp_path, record)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    # the probe ran at steps 2 and 4 (gradients at the last) whatever the estimator
    assert record["treatment"]["probes"] == 2
    assert math.isfinite(record["treatment"]["reward_rise"]) and math.isfinite(record["treatment"]["step_share"])
    assert math.isfinite(record["treatment"]["heldout_gain"])
    return record, rows


@pytest.mark.parametrize("kl_in", ["loss", "reward"])
def test_kl_to_the_start_model_is_zero_on_the_first_step_then_grows(tmp_path, tiny_start, kl_in):
    record, rows = _run(tmp_path, tiny_start, kl_coef=0.05, kl_in=kl_in)
    kl = [r["kl_start"] for r in rows]
    assert kl[0] == pytest.approx(0.0, abs=1e-6)       # the reference is the policy before any step
    assert all(k > 0 for k in kl[1:]) and kl[-1] > kl[1], kl    # it moves away, and the KL says so
    assert record["diagnostics_summary"]["kl_start"] == pytest.approx(kl[-1])
    if kl_in == "loss":   # the KL term is a force of its own in the probe, beside the policy term
        assert record["treatment"]["other_grad_norm"] > 0


def test_entropy_bonus_records_the_policy_entropy(tmp_path, tiny_start):
    record, rows = _run(tmp_path, tiny_start, entropy_coef=0.01)
    assert all(0 < r["entropy"] < math.log(6) for r in rows)      # nats per pixel, 6 classes
    assert record["diagnostics_summary"]["entropy"] == pytest.approx(rows[-1]["entropy"])


def test_group_normalisation_records_the_share_of_constant_groups(tmp_path, tiny_start):
    record, rows = _run(tmp_path, tiny_start, normalize_advantage="group", samples=4,
                        baseline={"kind": "group_mean"})
    assert all(0.0 <= r["constant_group_share"] <= 1.0 for r in rows)
    assert all(abs(r["advantage_mean"]) < 1e-5 for r in rows)    # each image centred (float32 sums)
    assert "constant_group_share" in record["diagnostics_summary"]


def test_clipped_surrogate_runs_its_epochs_on_one_batch(tmp_path, tiny_start):
    record, rows = _run(tmp_path, tiny_start, clip_range=0.2, epochs_per_batch=2)
    assert [r["epoch"] for r in rows] == [1.0, 2.0] * (STEPS // 2)
    for first, second in zip(rows[::2], rows[1::2]):
        # epoch 1: the sampling policy itself, every ratio 1; epoch 2: the same batch, moved
        assert first["ratio_min"] == first["ratio_max"] == 1.0 and first["clip_fraction"] == 0.0
        assert first["kl_old"] == 0.0 and second["kl_old"] > 0
        # the update moved the ratios, by little: epoch 2 sees epoch 1's dropout masks (two
        # masks alone would give per-pixel ratios of ~0.005 .. 25)
        assert 0.9 < second["ratio_min"] < 1.0 < second["ratio_max"] < 1.1
        assert second["reward_mean"] == first["reward_mean"]    # the same samples, not new ones
    assert 0.0 <= record["diagnostics_summary"]["clip_fraction"] <= 1.0


def test_same_config_and_seed_give_the_same_numbers_with_the_kl(tmp_path, tiny_start):
    a, rows_a = _run(tmp_path / "a", tiny_start, kl_coef=0.05, clip_range=0.2, epochs_per_batch=2)
    b, rows_b = _run(tmp_path / "b", tiny_start, kl_coef=0.05, clip_range=0.2, epochs_per_batch=2)
    assert rows_a == rows_b
    assert a["miou_final"] == b["miou_final"] and a["treatment"] == b["treatment"]


def test_the_report_shows_each_knobs_diagnostics_beside_the_flags(tmp_path, tiny_start):
    from rewardsweep.analysis.collect import collect
    from rewardsweep.analysis.render import treatment_table
    from rewardsweep.analysis.summary import summarize

    knobs = dict(kl_coef=0.05, entropy_coef=0.01, clip_range=0.2, epochs_per_batch=2)
    for cid, extra in (("knobs", knobs), ("plain", {})):
        run_trial(_config(tmp_path, tiny_start, config_id=cid, **extra))
    summary = summarize(collect([tmp_path])).table
    table = treatment_table(summary).set_index("config")
    knob, plain = table.loc["knobs"], table.loc["plain"]
    for column in ("KL to start (nats/px)", "entropy (nats/px)", "clipped (epochs 2+)", "ratio range"):
        assert knob[column] != "–" and plain[column] == "–", column
    numbers = summary.set_index("config_id").loc["knobs"]
    assert numbers["ratio_min"] < 1.0 < numbers["ratio_max"]   # epochs 2+ only: epoch 1's ratios are all 1
    assert numbers["kl_start"] > 0 and 0 < numbers["entropy"] < 2
    assert knob["rise"] != "" and plain["reward part of step"] != "–"   # the flags' columns still there
