"""precision: fp32 | amp | bf16, workers and cudnn_benchmark: spec keys, config ids, the step.

bf16 autocast runs on a CPU, so the reward head's fp32 island is tested here for real;
amp (float16 + loss scaling) needs a GPU and is exercised by benchmarks/gpu_check.py.
Costs ~15 s (one tiny bf16 trial).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
import torch

from rewardsweep.errors import ConfigError, SpecError
from rewardsweep.sweep.expand import expand
from rewardsweep.sweep.spec import load_spec

SPEC = """\
name: p
model: tiny-synthetic
seeds: 1
steps: 3
eval_every: 3
fixed: {{samples: 2{fixed}}}
{top}
"""


def _spec(tmp_path: Path, fixed: str = "", top: str = "", name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(SPEC.format(fixed=fixed, top=top)))
    return path


def _ids(path: Path) -> dict[str, str]:
    return {t.arm: t.config_id for t in expand(load_spec(path))}


def test_new_keys_keep_the_ids_of_studies_that_do_not_set_them(tmp_path):
    plain = _ids(_spec(tmp_path))
    # run-time choices never change a configuration's id
    assert _ids(_spec(tmp_path, top="resources: {cpu: 4, gpu: 0.5, workers: 2}\ncudnn_benchmark: false",
                      name="q.yaml")) == plain
    amp = expand(load_spec(_spec(tmp_path, fixed=", precision: amp", name="amp.yaml")))
    ids = {t.arm: t.config_id for t in amp}
    assert ids["reward"] != plain["reward"] and ids["mle"] != plain["mle"]  # a different experiment
    assert {t.config["precision"] for t in amp} == {"amp"}  # the control trains in the same precision
    assert {t.config["control_id"] for t in amp} == {ids["mle"]}


def test_workers_and_cudnn_benchmark_reach_the_trial_config(tmp_path):
    trials = expand(load_spec(_spec(tmp_path, top="resources: {cpu: 4, workers: 2}\ncudnn_benchmark: false")))
    assert {(t.config["workers"], t.config["cudnn_benchmark"], t.config["threads"]) for t in trials} == {(2, False, 4)}
    default = expand(load_spec(_spec(tmp_path, name="d.yaml")))
    assert {(t.config["workers"], t.config["cudnn_benchmark"]) for t in default} == {(None, True)}


@pytest.mark.parametrize("fixed, top, message", [
    (", precision: fp16", "", r"p\.yaml:6: fixed\.precision: 'fp16' is not allowed; expected one of fp32, amp, bf16"),
    ("", "resources: {cpu: 2, workers: -1}", r"p\.yaml:7: resources\.workers: -1 .*loader worker processes"),
    ("", "cudnn_benchmark: yes", r"p\.yaml:7: cudnn_benchmark: 'yes' is not a boolean"),
])
def test_bad_values_are_one_line_errors(tmp_path, fixed, top, message):
    with pytest.raises(SpecError, match=message) as info:
        load_spec(_spec(tmp_path, fixed=fixed, top=top))
    assert "\n" not in str(info.value)


def test_amp_on_a_cpu_is_refused_in_one_line():
    from rewardsweep.runners.precision import optim_wrapper_config

    with pytest.raises(ConfigError, match="precision: amp .* needs a GPU"):
        optim_wrapper_config({"type": "SGD", "lr": 0.1}, "amp", device="cpu")
    assert optim_wrapper_config({"type": "SGD", "lr": 0.1}, None)["type"] == "OptimWrapper"
    assert optim_wrapper_config({"type": "SGD", "lr": 0.1}, "amp", device="cuda")["type"] == "AmpOptimWrapper"


def _tiny_reward_model():
    from mmseg.registry import MODELS

    from rewardsweep.runners.presets import resolve_setting
    from rewardsweep.runners.trial import reward_model_config

    setting = resolve_setting("tiny-synthetic")
    torch.manual_seed(0)
    cfg = reward_model_config(setting, {"samples": 2, "baseline": {"kind": "sample_loo"}, "batch_size": 4})
    return MODELS.build(cfg).train(), setting.num_classes


def _batch(num_classes: int, batch: int = 4, size=(64, 64)):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(batch):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, *size), generator=g))
        s.set_metainfo(dict(img_shape=size, ori_shape=size, pad_shape=size))
        samples.append(s)
    return {"inputs": [torch.randint(0, 256, (3, *size), generator=g, dtype=torch.uint8) for _ in range(batch)],
            "data_samples": samples}


def test_a_bf16_step_runs_the_network_in_bf16_and_the_reward_in_fp32(monkeypatch):
    from mmengine.optim import build_optim_wrapper

    from rewardsweep.reward.objective import RewardObjective
    from rewardsweep.runners.precision import optim_wrapper_config

    model, num_classes = _tiny_reward_model()
    wrapper = build_optim_wrapper(model, optim_wrapper_config({"type": "SGD", "lr": 0.1}, "bf16", device="cpu"))
    seen: dict[str, object] = {}
    model.decode_head.conv_seg.register_forward_hook(lambda m, i, out: seen.update(head_out=out.dtype))
    original = RewardObjective.__call__

    def spy(self, logits, gt, generator=None, **kwargs):
        seen["reward_logits"] = logits.dtype
        seen["autocast_in_reward"] = torch.is_autocast_enabled("cpu")
        return original(self, logits, gt, generator, **kwargs)

    monkeypatch.setattr(RewardObjective, "__call__", spy)
    before = [p.detach().clone() for p in model.parameters()]
    log_vars = model.train_step(_batch(num_classes), wrapper)
    assert seen == {"head_out": torch.bfloat16, "reward_logits": torch.float32, "autocast_in_reward": False}
    assert math.isfinite(float(log_vars["loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # it stepped


def test_a_bf16_trial_finishes(tiny_start):
    from rewardsweep.runners.trial import run_trial

    record = run_trial(dict(model="tiny-synthetic", start=tiny_start, steps=3, eval_every=3, batch_size=4,
                            seed=0, samples=2, precision="bf16"), write=False)
    assert record["status"] == "finished", record.get("error")
    assert record["timings"]["workers"] == 0  # a CPU trial loads in its own process
    assert 0.0 <= record["timings"]["data_wait_s"] <= record["timings"]["train_s"]


def test_the_probe_unscales_the_gradients_of_a_loss_scaled_step(monkeypatch):
    """Under amp the step's gradients are loss-scaled: the probe's own backward passes are
    scaled alike and every gradient norm it reports is unscaled (MMEngine's AmpOptimWrapper,
    allowed on a CPU here with a CPU GradScaler; bf16 autocast so that both runs compute alike)."""
    import copy

    from mmengine.optim import AmpOptimWrapper
    from mmengine.optim.optimizer import amp_optimizer_wrapper

    from rewardsweep.runners.probe import probe_step

    monkeypatch.setattr(amp_optimizer_wrapper, "is_cuda_available", lambda: True)
    model, num_classes = _tiny_reward_model()
    model.auxiliary_head = None  # one loss term: the probe then takes one extra backward pass
    values = {}
    for scale in (1.0, 2.0**12):
        m = copy.deepcopy(model)
        start = copy.deepcopy(model)
        wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(m.parameters(), lr=0.1), dtype="bfloat16")
        wrapper.loss_scaler = torch.amp.GradScaler("cpu", init_scale=scale, enabled=scale != 1.0)
        torch.manual_seed(0)
        _, values[scale] = probe_step(m, start, _batch(num_classes), wrapper, gradients=True, seed=1)
    for key in ("reward_grad_norm", "signal_dot", "halves_cos"):
        assert values[2.0**12][key] == pytest.approx(values[1.0][key], rel=1e-3), key
    assert values[1.0]["reward_grad_norm"] > 0
